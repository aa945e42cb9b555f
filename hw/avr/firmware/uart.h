/*
 * USART0 (the host link) and USART1 (the debug port), interrupt driven, 1 000 000 baud.
 * Received bytes wait in rings for the main loop; frames to the host wait in a transmit
 * ring drained by the data-register-empty interrupt.
 */
#ifndef FES_UART_H
#define FES_UART_H

#include <stdint.h>

/* What a pop found: nothing, a byte, or the place where bytes were lost (every byte
 * received before them has been popped; the next ones came after them): to a full
 * receive ring, or, since 2.2.4, in the chip's receiver, a data overrun or a frame error
 * its flags (DORn, FEn) reported with the byte read after the loss or with the damaged
 * byte, which is dropped. */
enum { UART_NONE = 0, UART_BYTE = 1, UART_LOST = 2 };

void uart_init(void);
/* Next received byte of the host link, or where bytes were lost (see above). For a
 * delimiter (0x00, the end of a frame), *arrived_ms is the board's millisecond
 * (clock_ms) at which the receiver took it from the line, however long it then waited in
 * the ring behind other frames (since 2.2.2: the communication timeout counts from it). */
uint8_t uart_host_pop(uint8_t *byte, uint32_t *arrived_ms);
/* The same for the debug port. */
uint8_t uart_debug_pop(uint8_t *byte);
/* Queue n bytes for the host, all or none (returns 0 when the ring is full). */
uint8_t uart_host_send(const uint8_t *data, uint16_t n);
/* Nonzero while received bytes wait. */
uint8_t uart_rx_waiting(void);
/* Nonzero while bytes of the host link wait in its ring (or a loss not yet popped). */
uint8_t uart_host_waiting(void);
/* With interrupts disabled (the pulse engine's waits for an edge): move a byte that
 * arrived into its ring, at most one per port. Not ~100 cycles, as this said until 2.2.4:
 * a host delimiter (its arrival stamped with clock_ms) and a debug byte take ~155 cycles
 * (2.2.4's disassembly; the pulse engine's spin_until budgets for it). */
void uart_poll_rx(void);
/* The same for the host link alone: ~120 cycles at most (a delimiter with DOR0). */
void uart_poll_host(void);
/* With interrupts disabled, where time is not critical: move every byte that arrived into
 * the rings, as the receive interrupts would. The chip holds two unread bytes (its
 * two-level receive FIFO) and a third in its shift register until the next start bit,
 * where that one is lost (data overrun): at 1 Mbaud, back to back, a byte must be read
 * within 20.5 us (328 cycles) of its arrival. So the pulse engine drains the receivers
 * wherever no edge is to be armed: at the top and the end of its interrupt, around each
 * DAC word, before, during and after each plan, and at the start of the frame path's
 * pulses_set when no pulse is under way (2.2.2 served
 * them only in its waits and between the DAC words, and lost host bytes under the
 * heaviest traffic at the real byte time: docs/hardware.md). */
void uart_drain_rx(void);
/* With interrupts disabled, anywhere: move the host link's waiting bytes (at most the
 * chip's two and the one it then takes in) into its ring, as its receive interrupt would;
 * bounded (a byte every 10 us at most, each taken in ~40 cycles), where uart_drain_rx,
 * which also empties the debug port, is not (simavr queues the truth relay's bytes by the
 * dozen). Since 2.2.4, where a wait on the debug port could make a pulse late: after the
 * pulse engine sets its next wake-up or arms edges, between a DAC word's two bytes; and
 * in the clock's interrupt around the start of a reading (docs/hardware.md, Budgets). */
void uart_drain_host(void);

/* With interrupts disabled: a byte of the host link that the caller read itself, UCSR0A
 * (status) before UDR0 (byte), as the receive interrupt would take it (since 2.2.6: the
 * pulse engine reads the receiver in an edge's last approach, where taking a byte costs
 * too much, and hands the bytes on once the edge is armed). */
void uart_host_took(uint8_t status, uint8_t byte);

extern volatile uint16_t uart_rx_overflows;
extern uint16_t uart_tx_dropped;

#endif
