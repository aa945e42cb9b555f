/* USART drivers: see uart.h. */
#include "uart.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/atomic.h>

#include "board.h"

#define UBRR_VALUE ((BOARD_F_CPU_HZ / (8UL * BOARD_BAUD)) - 1) /* U2X: 1 */
#define TX_RING 1024u /* power of two */

/* A receive ring: 255 bytes (docs/protocol.md section 3: a board buffers at least
 * that much), its indices wrap by themselves. A byte that finds it full is lost; the
 * ring remembers where, so the reader learns of it after every older byte. */
typedef struct {
    uint8_t data[256];
    uint8_t head, tail;
    uint8_t lost;    /* bytes were lost and the reader has not been told */
    uint8_t lost_at; /* head when the latest were lost: the bytes before it are older */
} rx_ring_t;

static volatile rx_ring_t host_rx, debug_rx;
static volatile uint8_t tx_ring[TX_RING];
static volatile uint16_t tx_head, tx_tail;
volatile uint16_t uart_rx_overflows;
uint16_t uart_tx_dropped;

void uart_init(void)
{
    UBRR0 = UBRR_VALUE;
    UCSR0A = _BV(U2X0);
    UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);
    UCSR0B = _BV(RXEN0) | _BV(TXEN0) | _BV(RXCIE0);
    /* The debug port receives only; its idle line is held high by the pull-up. */
    PORTD |= _BV(PD2);
    UBRR1 = UBRR_VALUE;
    UCSR1A = _BV(U2X1);
    UCSR1C = _BV(UCSZ11) | _BV(UCSZ10);
    UCSR1B = _BV(RXEN1) | _BV(RXCIE1);
}

static inline void rx_push(volatile rx_ring_t *ring, uint8_t b)
{
    uint8_t next = (uint8_t)(ring->head + 1);
    if (next == ring->tail) {
        uart_rx_overflows++;
        ring->lost = 1;
        ring->lost_at = ring->head;
        return;
    }
    ring->data[ring->head] = b;
    ring->head = next;
}

static uint8_t rx_pop(volatile rx_ring_t *ring, uint8_t *byte)
{
    uint8_t tail = ring->tail;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        if (ring->lost && tail == ring->lost_at) {
            ring->lost = 0;
            return UART_LOST;
        }
    }
    if (tail == ring->head)
        return UART_NONE;
    *byte = ring->data[tail];
    ring->tail = (uint8_t)(tail + 1);
    return UART_BYTE;
}

ISR(USART0_RX_vect) { rx_push(&host_rx, UDR0); }

ISR(USART1_RX_vect) { rx_push(&debug_rx, UDR1); }

void uart_poll_rx(void)
{
    if (UCSR0A & _BV(RXC0))
        rx_push(&host_rx, UDR0);
    if (UCSR1A & _BV(RXC1))
        rx_push(&debug_rx, UDR1);
}

ISR(USART0_UDRE_vect)
{
    uint16_t tail = tx_tail;
    if (tail == tx_head) {
        UCSR0B &= (uint8_t)~_BV(UDRIE0);
        return;
    }
    UDR0 = tx_ring[tail];
    tx_tail = (uint16_t)((tail + 1) & (TX_RING - 1));
}

uint8_t uart_host_pop(uint8_t *byte) { return rx_pop(&host_rx, byte); }

uint8_t uart_debug_pop(uint8_t *byte) { return rx_pop(&debug_rx, byte); }

uint8_t uart_rx_waiting(void)
{
    return host_rx.tail != host_rx.head || debug_rx.tail != debug_rx.head || host_rx.lost ||
           debug_rx.lost;
}

uint8_t uart_host_send(const uint8_t *data, uint16_t n)
{
    uint16_t head, tail;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        head = tx_head;
        tail = tx_tail;
    }
    uint16_t free_bytes = (uint16_t)((tail - head - 1) & (TX_RING - 1));
    if (n > free_bytes) {
        uart_tx_dropped++;
        return 0;
    }
    for (uint16_t i = 0; i < n; i++) {
        tx_ring[head] = data[i];
        head = (uint16_t)((head + 1) & (TX_RING - 1));
    }
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        tx_head = head;
        UCSR0B |= _BV(UDRIE0);
    }
    return 1;
}
