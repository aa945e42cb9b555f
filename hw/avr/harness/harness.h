/*
 * The simavr harness of the board: the firmware's .elf on a simulated ATmega2560, its
 * host link on a pseudo-terminal, its sensors and outputs connected to the simulated
 * patient (a Python process, `fes board-emulator --mcu avr`, over two pipes).
 *
 *   main.c      options, the simulated chip, pacing with the wall clock, signals
 *   hostlink.c  USART0 <-> pty, and a frame analyser of both directions for the log
 *   rxline.c    the host's line into USART0 at the chip's byte time and receive buffer
 *   patient.c   the pipe protocol, the MPU-6050 model, heel switch and force, USART1
 *   outputs.c   phase lines, channel lines and the DAC as the output stage sees them:
 *               pulses measured, checked and passed to the patient; timing pins
 *   eventlog.c  the JSON-lines event log
 */
#ifndef FES_HARNESS_H
#define FES_HARNESS_H

#include <stdint.h>
#include <stdio.h>

#include <avr_uart.h>
#include <sim_avr.h>

/* --- main.c ------------------------------------------------------------------------- */
typedef struct {
    const char *elf;
    const char *log;
    int from_patient; /* fd: replies of the patient */
    int to_patient;   /* fd: requests to the patient */
    double speed;     /* board time / wall time */
    double unplug_at_s; /* walk time of the unplug, < 0: never */
    double rx_overrun_at_s; /* walk time of an injected host byte overrun, < 0: never */
    int rx_lose_end_of;     /* frame type whose first frame's delimiter is lost, 0: none */
    double host_byte_gap_us; /* idle line between two host bytes (a slow bridge), us */
    int truth;
    int bench; /* print the timing figures on stderr at exit */
    int log_pulses; /* one log line per pulse */
    const char *boot_hex; /* a bootloader instead of the .elf (see main.c) */
} options_t;

extern options_t opt;
extern avr_t *avr;
/* Board time in seconds. */
double board_time_s(void);
/* Ask the main loop to stop (reason for the log and the exit status). */
void harness_stop(const char *reason, int status);

/* --- eventlog.c --------------------------------------------------------------------- */
void log_open(const char *path);
/* Start an event line: {"event": name, "monotonic_s": ..., "board_t_s": ...; the caller
 * adds ", key: value" pairs with log_printf and ends it with log_end. */
void log_begin(const char *name);
/* The same, for an event that happened at board time board_t_s. */
void log_begin_at(const char *name, double board_t_s);
void log_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_end(void);
void log_close(void);

/* --- hostlink.c --------------------------------------------------------------------- */
/* Open the pty; returns its slave path. */
const char *hostlink_open(void);
void hostlink_connect(void);
/* A USART of the chip for the harness: no console echo; the hooks of its output byte
 * and of its receiver's XOFF (either may be NULL) and XON; returns its input IRQ. */
avr_irq_t *uart_attach(char uart, avr_irq_notify_t on_output, avr_irq_notify_t on_xon,
                       avr_irq_notify_t on_xoff);
/* Move bytes between the pty and USART0 (called every pacing step): the host's bytes go
 * onto the line, which then runs by itself at the chip's byte time while they last. */
void hostlink_service(void);
/* The chip was reset: its USART dropped the byte on the line. */
void hostlink_chip_reset(void);
/* Wait for input on the pty at most timeout_ns (pacing); returns early when some came. */
void hostlink_wait(int64_t timeout_ns);
/* Close the pty as a pulled cable would (logged, with the board time of the last frame
 * from the host); the firmware runs on. */
void hostlink_unplug(void);
int hostlink_plugged(void);
/* The Mega's auto-reset: from now on, each open of the pty by a host (DTR rising on a
 * real board) asks for a reset of the chip, which hostlink_take_reset reports once. */
void hostlink_reset_on_open(void);
int hostlink_take_reset(void);
/* Nonzero once the firmware's USART0 receiver is on. */
int hostlink_listening(void);
/* The reason of the latest change of outputs, as the frames tell it. */
const char *hostlink_reason(void);
void hostlink_report(void);

/* --- rxline.c ----------------------------------------------------------------------- */
/* The next byte the host sent, if one waits (returns 0 if none). */
typedef int (*rxline_next_t)(uint8_t *byte);
/* A byte entered the chip's receive FIFO (the firmware can read it) at chip time t_s. */
typedef void (*rxline_received_t)(uint8_t byte, double t_s);
/* Drive usart's receiver: its byte time from its registers, watched from now on. */
void rxline_connect(avr_uart_t *usart, avr_irq_t *usart_input, rxline_next_t next,
                    rxline_received_t on_received);
/* If the line is idle and the host sent a byte, start it now; returns whether it did.
 * The line then runs by itself, byte after byte, while next gives bytes. */
int rxline_start(void);
/* The chip was reset: the line is idle, the byte time unknown until configured. */
void rxline_reset(void);
/* After every instruction: notice the firmware's reads of UDR0 (a byte waiting in the
 * shift register moves into the FIFO at once, as on the chip). */
void rxline_watch(void);
/* Bytes lost to a full receive buffer so far, injected ones included (each logged
 * "rx_overrun"). */
uint32_t rxline_overruns(void);
/* Fault injection: the next host byte to complete is lost, DOR0 set, as in an overrun. */
void rxline_lose_next(void);
/* Idle line of gap_us between two host bytes from now on (a bridge that trickles). */
void rxline_set_gap_us(double gap_us);
/* The longest a byte waited in the receive FIFO before the firmware read it, us. */
double rxline_wait_max_us(void);
/* Where the firmware was (pc, a byte address) when that byte entered the FIFO: the code
 * that kept it from reading sooner, or what interrupted it. */
uint32_t rxline_wait_max_pc(void);
/* Where it was just after it read that byte (the instruction after the read of UDR0). */
uint32_t rxline_wait_max_read_pc(void);

/* --- patient.c ---------------------------------------------------------------------- */
void patient_connect(void);
/* Move queued truth bytes into USART1 (called every pacing step). */
void patient_service(void);
/* After a reset of the chip (a host's open of a Mega's port, the AVR's watchdog): the
 * sensors stay powered, so their lines are driven again as they were, and the truth
 * source announces itself again to the restarted firmware. */
void patient_reset(void);
/* Samples exchanged so far (grid points the gyro was read at). */
uint32_t patient_samples(void);
void patient_report(void);

/* --- outputs.c ---------------------------------------------------------------------- */
void outputs_connect(void);
/* Take Timer1's compare outputs off the pins again (after a reset of the chip). */
void outputs_rewire_timer(void);
/* Pulses of channel 0 since the last call: count, mean cathodic current (mA) and
 * width (us): what reaches the patient's muscle in the next sample period. */
void outputs_take_period(uint16_t *count, float *amplitude_ma, float *width_us);
/* Bit c set: channel c's active line is high. */
uint8_t outputs_active(void);
int outputs_hv(void);
/* Board time of a sleep of the core (cycles), for the busy fraction. */
void outputs_account_sleep(avr_cycle_count_t cycles);
/* Log a change of the active lines once its reason is known (force: now). */
void outputs_flush(int force);
void outputs_report(void);

#endif
