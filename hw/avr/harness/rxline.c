/*
 * The host's line into USART0 as the ATmega2560's receiver takes it, where simavr 1.6's
 * USART differs (docs/hardware.md, "simavr 1.6 (Debian's) differs from the chip"):
 *
 * - The byte time. simavr computes it when UBRR0L is written, before the firmware sets
 *   U2X0, and counts a parity bit the frame does not have (22 us per byte at this
 *   firmware's settings). Here it is computed from the registers as the firmware leaves
 *   them, after every write to UBRR0L/H and UCSR0A/B/C: a bit is (UBRR0 + 1) x 8 cycles
 *   with U2X0, x 16 without; a frame is a start bit, the data bits, a parity bit only if
 *   UPM0 asks for one, and the stop bits (10 bits at 1 000 000 baud: 10 us). simavr's
 *   own byte time (its receive and transmit pumps) is set to it as well.
 * - The receive buffer. simavr queues up to 64 unread bytes; the chip has a two-level
 *   receive FIFO and the receive shift register (ATmega640/1280/1281/2560/2561
 *   datasheet, Atmel 2549Q 2014, USART "Receive Buffer" and "Data OverRun"): a frame
 *   whose stop bit completes while two unread bytes wait stays in the shift register;
 *   it moves into the FIFO as soon as the firmware reads UDR0, but if the next frame's
 *   start bit comes first, it is lost and DOR0 is set. The harness holds simavr's FIFO
 *   to those two bytes: a byte enters it only when it has arrived and there is room,
 *   RXC0 is raised at that moment, and a lost byte is logged ("rx_overrun", with the
 *   chip time, the byte and the unread count) and counted.
 *
 * A byte completes when the receiver samples the middle of its stop bit, half a bit
 * before the line can carry the next start bit; host bytes follow each other back to
 * back while the host has sent them.
 *
 * DOR0 as the chip keeps it: with the frame that follows the lost one in the FIFO ("the
 * error flags are located in the receive buffer together with the frame for which they
 * indicate the error status", "one or more serial frames lost between the frame last read
 * from UDRn and the next frame read from UDRn": the datasheet above, "Receiver Error
 * Flags"), so UCSR0A shows it while that frame is the next to read. simavr 1.6 sets and
 * clears it by its own rules (cleared by any read of UDR0 and when a byte comes to an
 * empty FIFO; bytes refused while it is up), so the harness sets it from its own record
 * after every instruction (show_dor).
 *
 * Fault injection (--rx-overrun-at-s, --rx-lose-end-of, rxline_lose_next): the next
 * byte to complete is lost as the chip loses an overrun byte, whatever the firmware's
 * timing, so that a test can show what the firmware does with a loss it could not
 * prevent. --host-byte-gap-us (rxline_set_gap_us): the line idles that long between two
 * host bytes, as a USB-serial bridge that hands on a frame in pieces.
 */
#include <avr_uart.h>
#include <sim_interrupts.h>
#include <sim_io.h>
#include <sim_regbit.h>
#include <stdlib.h>

#include "harness.h"

/* UCSRnC's parity mode bits UPMn1:0 (bits 5:4; 0 = no parity). simavr's avr_uart_t
 * names no such field. */
#define UPM_SHIFT 4
#define UPM_MASK 0x3
/* The chip's receive FIFO: two bytes. */
#define RX_FIFO_BYTES 2

static avr_uart_t *uart;
static avr_irq_t *input;
static rxline_next_t next_byte;
static rxline_received_t received;

static avr_cycle_count_t bit_cycles, frame_cycles;
static uint32_t baud;
static unsigned frame_bits;

/* The line's state: idle, a byte on it before its stop bit is sampled, or after; and a
 * byte in the shift register waiting for room in the FIFO. */
enum { LINE_IDLE, LINE_TO_STOP, LINE_TO_END };
static int phase = LINE_IDLE;
static uint8_t on_line, in_shift;
static int shift_full;
static uint32_t overruns;
static int lose_next; /* rxline_lose_next: the next byte to complete is lost */
static double gap_us; /* rxline_set_gap_us: idle line between two host bytes */
static int gapped;    /* that idle time has passed before the next byte */
static int dor_next;  /* a byte was lost: the next to enter the FIFO carries DOR0 */
/* Cycle at which each unread byte entered the FIFO, oldest first; the longest a byte
 * waited there before the firmware read it. */
static avr_cycle_count_t entered[RX_FIFO_BYTES];
static uint32_t entered_pc[RX_FIFO_BYTES]; /* where the firmware was as each entered */
static uint8_t entered_dor[RX_FIFO_BYTES]; /* DOR0 stored with each */
static unsigned entered_n;
static avr_cycle_count_t wait_max;
static uint32_t wait_max_pc, wait_max_read_pc;

/* Unread bytes in simavr's FIFO (never more than the chip's two). */
static unsigned unread(void)
{
    return (unsigned)((uart->input.write - uart->input.read) & (uart_fifo_fifo_size - 1));
}

static double chip_s(avr_cycle_count_t when) { return (double)when / (double)avr->frequency; }

/* UCSR0A's DOR0 as the chip shows it: that of the next byte to read. */
static void show_dor(void) { avr_regbit_setto(avr, uart->dor, entered_n && entered_dor[0]); }

/* The byte enters the FIFO at cycle when: RXC0 goes up at once, as on the chip. */
static void deliver(uint8_t byte, avr_cycle_count_t when)
{
    if (!avr_regbit_get(avr, uart->rxen))
        return; /* the receiver is off: the chip ignores the line */
    unsigned before = unread();
    avr_regbit_clear(avr, uart->dor); /* else simavr refuses it (top of this file) */
    avr_raise_irq(input, byte);
    if (unread() != before + 1) {
        show_dor();
        /* The harness clears simavr's DOR first and holds its FIFO to two bytes, so
         * simavr never refuses one: this is a harness fault, said, not hidden. */
        log_begin_at("harness_error", chip_s(when));
        log_printf(", \"what\": \"simavr refused a host byte\", \"byte\": %u", byte);
        log_end();
        return;
    }
    avr_raise_interrupt(avr, &uart->rxc);
    if (entered_n < RX_FIFO_BYTES) {
        entered[entered_n] = when;
        entered_dor[entered_n] = (uint8_t)dor_next;
        dor_next = 0;
        entered_pc[entered_n++] = avr->pc;
    }
    show_dor();
    received(byte, chip_s(when));
}

/* The byte in the shift register moves into the FIFO if the firmware made room. */
static void settle_shift(avr_cycle_count_t when)
{
    if (shift_full && unread() < RX_FIFO_BYTES) {
        shift_full = 0;
        deliver(in_shift, when);
    }
}

/* byte is lost at cycle when, DOR0 set; injected: by rxline_lose_next. */
static void overrun(uint8_t byte, avr_cycle_count_t when, int injected)
{
    overruns++;
    dor_next = 1;
    log_begin_at("rx_overrun", chip_s(when));
    /* Where the firmware was (a byte address for avr-addr2line) and whether it had
     * interrupts enabled: what kept it from reading UDR0 in time. */
    log_printf(", \"lost_byte\": %u, \"unread\": %u, \"pc\": %u, \"interrupts_on\": %u, "
               "\"injected\": %d",
               byte, unread(), (unsigned)avr->pc, avr->sreg[S_I], injected);
    log_end();
}

/* A start bit at cycle when: the byte still in the shift register is lost (DOR0). */
static void start_bit(avr_cycle_count_t when)
{
    settle_shift(when);
    if (!shift_full)
        return;
    shift_full = 0;
    overrun(in_shift, when, 0);
}

/* The stop bit of the byte on the line is sampled: into the FIFO or the shift register. */
static void complete(avr_cycle_count_t when)
{
    if (lose_next) {
        lose_next = 0;
        overrun(on_line, when, 1);
        return;
    }
    if (unread() < RX_FIFO_BYTES) {
        deliver(on_line, when);
    } else {
        in_shift = on_line;
        shift_full = 1;
    }
}

static avr_cycle_count_t stop_sample_after(void) { return frame_cycles - bit_cycles / 2; }

static avr_cycle_count_t line_timer(avr_t *core, avr_cycle_count_t when, void *param)
{
    (void)core;
    (void)param;
    switch (phase) {
    case LINE_TO_STOP:
        complete(when);
        phase = LINE_TO_END;
        return when + bit_cycles / 2;
    case LINE_TO_END:
        if (gap_us > 0.0 && !gapped) { /* a bridge that trickles: the line idles first */
            gapped = 1;
            return when + (avr_cycle_count_t)(gap_us * 1e-6 * (double)avr->frequency);
        }
        gapped = 0;
        if (next_byte(&on_line)) {
            start_bit(when);
            phase = LINE_TO_STOP;
            return when + stop_sample_after();
        }
        phase = LINE_IDLE; /* a byte in the shift register waits: rxline_watch */
        return 0;
    default:
        return 0;
    }
}

void rxline_watch(void)
{
    if (!uart)
        return;
    unsigned n = unread();
    if (entered_n <= n)
        return;
    while (entered_n > n) { /* the firmware read the oldest */
        avr_cycle_count_t waited = avr->cycle - entered[0];
        if (waited > wait_max) {
            wait_max = waited;
            wait_max_pc = entered_pc[0];
            wait_max_read_pc = avr->pc;
        }
        entered[0] = entered[1];
        entered_pc[0] = entered_pc[1];
        entered_dor[0] = entered_dor[1];
        entered_n--;
    }
    settle_shift(avr->cycle);
    show_dor();
    /* A byte still waits: on the chip RXC0 stays up and its interrupt is requested for
     * as long as it is (a level); simavr 1.6 requests it once per raise and raises again
     * only at its next pump, up to a byte time later, and it clears RXC after a second
     * read within a byte time even when a byte remains (its "2-character rx buffer"
     * throttle). So the request is renewed here after every read. */
    if (unread() && !uart->rxc.pending)
        avr_raise_interrupt(avr, &uart->rxc);
}

double rxline_wait_max_us(void) { return (double)wait_max * 1e6 / (double)avr->frequency; }

uint32_t rxline_wait_max_pc(void) { return wait_max_pc; }

uint32_t rxline_wait_max_read_pc(void) { return wait_max_read_pc; }

int rxline_start(void)
{
    if (phase == LINE_TO_STOP || phase == LINE_TO_END || !frame_cycles)
        return 0;
    if (!next_byte(&on_line))
        return 0;
    start_bit(avr->cycle);
    phase = LINE_TO_STOP;
    avr_cycle_timer_register(avr, stop_sample_after(), line_timer, NULL);
    return 1;
}

/* Byte time from the registers as they are now (see the top of this file). */
static void configure(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)value;
    (void)param;
    static const unsigned data_bits[8] = {5, 6, 7, 8, 8, 8, 8, 9};
    uint32_t ubrr = avr_regbit_get(avr, uart->ubrrl) | ((uint32_t)avr_regbit_get(avr, uart->ubrrh) << 8);
    bit_cycles = (ubrr + 1) * (avr_regbit_get(avr, uart->u2x) ? 8u : 16u);
    unsigned parity = ((avr->data[uart->r_ucsrc] >> UPM_SHIFT) & UPM_MASK) != 0;
    unsigned size = avr_regbit_get(avr, uart->ucsz) | (avr_regbit_get(avr, uart->ucsz2) << 2);
    unsigned bits = 1 + data_bits[size] + parity + 1 + avr_regbit_get(avr, uart->usbs);
    frame_cycles = bit_cycles * bits;
    uart->cycles_per_byte = frame_cycles;
    uint32_t now_baud = (uint32_t)(avr->frequency / bit_cycles);
    /* Logged once the receiver is on (the firmware writes UBRR0 byte by byte first). */
    if (avr_regbit_get(avr, uart->rxen) && (now_baud != baud || bits != frame_bits)) {
        baud = now_baud;
        frame_bits = bits;
        log_begin("host_line");
        log_printf(", \"baud\": %u, \"frame_bits\": %u, \"byte_us\": %.4f", baud, bits,
                   (double)frame_cycles * 1e6 / (double)avr->frequency);
        log_end();
    }
}

static void watch_writes(avr_io_addr_t addr)
{
    avr_irq_register_notify(avr_iomem_getirq(avr, addr, NULL, AVR_IOMEM_IRQ_ALL), configure,
                            NULL);
}

void rxline_connect(avr_uart_t *usart, avr_irq_t *usart_input, rxline_next_t next,
                    rxline_received_t on_received)
{
    uart = usart;
    input = usart_input;
    next_byte = next;
    received = on_received;
    watch_writes(uart->ubrrl.reg);
    watch_writes(uart->ubrrh.reg);
    watch_writes(uart->r_ucsra);
    watch_writes(uart->r_ucsrb);
    watch_writes(uart->r_ucsrc);
}

void rxline_reset(void)
{
    /* The chip's reset emptied its receiver and cancelled the harness's timers; its
     * registers are back at their reset values until the firmware configures them. */
    phase = LINE_IDLE;
    shift_full = 0;
    entered_n = 0;
    dor_next = 0;
    bit_cycles = frame_cycles = 0;
    baud = 0;
    frame_bits = 0;
}

uint32_t rxline_overruns(void) { return overruns; }

void rxline_lose_next(void) { lose_next = 1; }

void rxline_set_gap_us(double us) { gap_us = us; }
