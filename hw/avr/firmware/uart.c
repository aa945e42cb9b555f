/* USART drivers: see uart.h. */
#include "uart.h"

#include <stddef.h>

#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/atomic.h>

#include "board.h"
#include "clock.h"

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
/* When each delimiter in host_rx arrived: the low 16 bits of the board's millisecond,
 * in the delimiter's slot (other slots unused). Written before the byte is published
 * (head advanced), read before its slot is freed (tail advanced): the interrupt never
 * writes a slot the main loop may be reading, so the two-byte read needs no lock. 16 bits
 * (512 bytes, not 1024) suffice: a byte waits in the ring far less than 65 s (the AVR's
 * watchdog resets a main loop stuck for 60 ms). */
static volatile uint16_t host_rx_at[256];
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

/* Bytes were lost before the next byte to be pushed: the reader learns of it once it has
 * popped every byte before. */
static inline void rx_mark_lost(volatile rx_ring_t *ring)
{
    ring->lost = 1;
    ring->lost_at = ring->head;
}

static inline void rx_push(volatile rx_ring_t *ring, uint8_t b)
{
    uint8_t next = (uint8_t)(ring->head + 1);
    if (next == ring->tail) {
        uart_rx_overflows++;
        rx_mark_lost(ring);
        return;
    }
    ring->data[ring->head] = b;
    ring->head = next;
}

/* A byte of the host link; a delimiter's arrival time goes into its slot first. The slot
 * at head is free also when the ring is full (one slot always is), and the byte that
 * would have used it is then lost with its time: the frame it ended is damaged. The
 * debug port's push stays 2.2.1's (a first 2.2.2 checked for a stamp in the push both
 * ports share: frame path with the truth relay 6337-6386 cycles on average against
 * 5824 so, python -m controller.bench.avr). */
static inline void host_push(uint8_t b)
{
    if (b == 0)
        host_rx_at[host_rx.head] = (uint16_t)clock_ms();
    rx_push(&host_rx, b);
}

/* The next byte of ring (see uart.h); for a delimiter with at[], *arrived_ms its arrival,
 * the 16 bits kept widened by the board time now. */
static uint8_t rx_pop(volatile rx_ring_t *ring, const volatile uint16_t *at, uint8_t *byte,
                      uint32_t *arrived_ms)
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
    if (at && *byte == 0)
        *arrived_ms = clock_widen_ms(clock_ms(), at[tail]);
    ring->tail = (uint8_t)(tail + 1);
    return UART_BYTE;
}

/* The receiver's error flags of the byte about to be read: a data overrun (bytes lost
 * before it: the chip's 2-byte FIFO was full) or a frame error (the byte itself is
 * damaged). Read from UCSRnA before UDRn, as the datasheet asks (ATmega2560, Atmel 2549Q
 * 2014, "Receiver Error Flags": reading UDRn moves the FIFO on). Until 2.2.3 the firmware
 * never read them, and an overrun showed only as a damaged frame. */
#define RX_ERRORS(n) (_BV(DOR##n) | _BV(FE##n))

/* A byte of USART0 whose UCSR0A read status: a loss is marked where it happened, so
 * that the main loop switches every output off there, as for bytes lost to a full ring
 * (uart.h, UART_LOST); a byte with a frame error is dropped. */
static inline void host_keep(uint8_t status, uint8_t b)
{
    if (status & RX_ERRORS(0)) {
        rx_mark_lost(&host_rx);
        if (status & _BV(FE0))
            return;
    }
    host_push(b);
}

static inline void host_take(uint8_t status) { host_keep(status, UDR0); }

void uart_host_took(uint8_t status, uint8_t byte) { host_keep(status, byte); }

/* The same for USART1 (the debug port: a loss there damages a truth frame only). Its own
 * registers by name, as host_take's: one function given the port would reach them
 * through pointers, slower in the receive interrupts whose speed these serve. */
static inline void debug_take(uint8_t status)
{
    uint8_t b = UDR1;
    if (status & RX_ERRORS(1)) {
        rx_mark_lost(&debug_rx);
        if (status & _BV(FE1))
            return;
    }
    rx_push(&debug_rx, b);
}

/* Every byte waiting, not one per interrupt: a second byte does not wait for the
 * interrupt's return and entry again (80 cycles). */
ISR(USART0_RX_vect)
{
    uint8_t status;
    while ((status = UCSR0A) & _BV(RXC0))
        host_take(status);
}

ISR(USART1_RX_vect) { debug_take(UCSR1A); }

void uart_drain_host(void)
{
    uint8_t status;
    while ((status = UCSR0A) & _BV(RXC0))
        host_take(status);
}

void uart_poll_host(void)
{
    uint8_t status = UCSR0A;
    if (status & _BV(RXC0))
        host_take(status);
}

void uart_poll_rx(void)
{
    uart_poll_host();
    uint8_t status = UCSR1A;
    if (status & _BV(RXC1))
        debug_take(status);
}

/* The host's receiver between any two bytes of the debug port's: in simulation the
 * truth relay's bytes queue there by the dozen (simavr's 64-byte FIFO), and a host byte
 * that came while they were read waited for the next drain (18-21.8 us with 2.2.3, one
 * lost with the relay in a 10 s bench run). */
void uart_drain_rx(void)
{
    uint8_t status;
    for (;;) {
        uart_drain_host();
        if (!((status = UCSR1A) & _BV(RXC1)))
            return;
        debug_take(status);
    }
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

uint8_t uart_host_pop(uint8_t *byte, uint32_t *arrived_ms)
{
    return rx_pop(&host_rx, host_rx_at, byte, arrived_ms);
}

uint8_t uart_debug_pop(uint8_t *byte) { return rx_pop(&debug_rx, NULL, byte, NULL); }

uint8_t uart_rx_waiting(void)
{
    return host_rx.tail != host_rx.head || debug_rx.tail != debug_rx.head || host_rx.lost ||
           debug_rx.lost;
}

uint8_t uart_host_waiting(void) { return host_rx.tail != host_rx.head || host_rx.lost; }

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
