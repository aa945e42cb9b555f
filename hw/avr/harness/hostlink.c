/*
 * The host link: USART0 of the simulated chip on a pseudo-terminal, as the Mega's
 * USB-serial bridge puts it on /dev/ttyACM0. Bytes from the host go onto the line one
 * after the other, each taking the chip's byte time at the baud rate the firmware set
 * (10 us at 1 000 000 baud), into the chip's two-byte receive buffer, where a byte that
 * finds no room is lost as on the chip (rxline.c); bytes the firmware sends leave at
 * once. The pty ignores the baud rate.
 *
 * Both directions also go through the firmware's own frame decoder (frame.c), so the
 * log shows what crossed the link: every host frame as its delimiter arrives
 * ("host_frame": type, seq, how many earlier frames still awaited the board's answer),
 * HELLO, START/STOP_STREAM, STOP_ALL, refusals, FAULT frames, and the round trip from a
 * SAMPLE to the first command naming it.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pty.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <termios.h>
#include <unistd.h>

#include <avr_uart.h>

#include "board.h"
#include "frame.h"
#include "harness.h"
#include "session.h"

#define TX_LIMIT 65536 /* bytes held for a host that does not read, then dropped */
#define RX_CHUNK 4096
#define RTT_SLOTS 1024
#define RTT_MAX_KEPT 200000

static int master = -1, slave = -1;
static char path[128];
static int plugged;
/* Reset on open (hostlink_reset_on_open): the harness holds no slave fd, so the master
 * reads EIO while no host has the port open; the first read that does not is an open. */
static int reset_on_open, port_held = 1, reset_pending;
static avr_irq_t *uart_in;

static uint8_t tx_buf[TX_LIMIT];
static size_t tx_len;
static uint8_t rx_buf[RX_CHUNK];
static size_t rx_len, rx_done;

static frame_rx_t from_host, to_host;
static uint32_t frames_from_host, bad_from_host, frames_to_host, tx_dropped;
static const char *reason = "power_up";

/* The reason a host frame gives the outputs' next change. A change still waiting to be
 * logged (outputs_flush) happened before this frame arrived, so it is not this frame's
 * doing: it is logged first, with the reason it had. Without this, a FAULT's change that
 * waited for the pulse under way to end (0.66 ms after a lost byte) was logged as the
 * host's STOP_ALL that came 0.2 ms after it (test_avr_board, chip_loses: 1 run in 12). */
static void host_reason(const char *why)
{
    if (strcmp(why, reason) != 0)
        outputs_flush(1);
    reason = why;
}

/* Round trips: board time each SAMPLE left, by index. */
static double sample_sent_s[RTT_SLOTS];
static uint32_t sample_sent_index[RTT_SLOTS];
static int sample_sent_valid[RTT_SLOTS];
static int64_t answered = -1;
static double *rtt_ms;
static size_t rtt_n;

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static const char *ack_name(uint8_t code)
{
    static const char *names[] = {"ok", "unknown_type", "bad_length", "bad_channel",
                                  "over_amplitude", "over_pulse_width", "over_frequency",
                                  "not_ready", "stale_seq", "over_interphase_gap",
                                  "bad_width_ratio", "over_charge"};
    return code < sizeof(names) / sizeof(names[0]) ? names[code] : "unknown";
}

static const char *fault_name(uint8_t code)
{
    static const char *names[] = {"none", "comm_timeout", "on_time", "sensor", "duty",
                                  "rx_lost"};
    return code < sizeof(names) / sizeof(names[0]) ? names[code] : "unknown";
}

static double last_frame_s = -1.0;

/* --- host frames awaiting the board's answer ---------------------------------------------
 * docs/protocol.md section 3: every host frame is answered by one frame, in order (INFO
 * and ACK name the seq they answer, STATUS answers the oldest GET_STATUS). A frame the
 * board never saw whole (bytes lost) is never answered: an answer to a later seq drops
 * it. Counted when the answer's last byte leaves the chip's USART. */
#define AWAITING_MAX 256
static struct {
    uint8_t type, seq;
} awaiting[AWAITING_MAX];
static unsigned awaiting_first, awaiting_n;

static void await_answer(uint8_t type, uint8_t seq)
{
    if (awaiting_n == AWAITING_MAX) { /* a board that answers nothing: keep the newest */
        awaiting_first = (awaiting_first + 1) % AWAITING_MAX;
        awaiting_n--;
    }
    unsigned at = (awaiting_first + awaiting_n++) % AWAITING_MAX;
    awaiting[at].type = type;
    awaiting[at].seq = seq;
}

/* The board answered: the oldest frame awaiting an answer if it is a GET_STATUS (seq <
 * 0: a STATUS, which names no seq; one sent every 100 ms while streaming answers
 * nothing), else the frame of that seq and any older ones. */
static void board_answered(int seq)
{
    for (unsigned k = 0; k < awaiting_n; k++) {
        unsigned at = (awaiting_first + k) % AWAITING_MAX;
        int match = seq < 0 ? awaiting[at].type == T_GET_STATUS : awaiting[at].seq == seq;
        if (match) {
            awaiting_first = (at + 1) % AWAITING_MAX;
            awaiting_n -= k + 1;
        }
        if (match || seq < 0)
            return;
    }
}

/* A host frame whose delimiter arrived at board time t_s (valid or not). */
static void host_frame(const uint8_t *f, uint16_t n, double t_s)
{
    log_begin_at("host_frame", t_s);
    if (!f) {
        log_printf(", \"bad\": true");
        log_end();
        return;
    }
    log_printf(", \"type\": %u, \"seq\": %u, \"awaiting\": %u", f[0], f[1], awaiting_n);
    log_end();
    await_answer(f[0], f[1]);
    frames_from_host++;
    last_frame_s = t_s;
    switch (f[0]) {
    case T_HELLO:
        host_reason("hello");
        log_begin("hello");
        log_printf(", \"version\": %u, \"seq\": %u", n > 2 ? f[2] : 0, f[1]);
        log_end();
        break;
    case T_START_STREAM:
        log_begin("stream_start");
        log_end();
        break;
    case T_STOP_STREAM:
        log_begin("stream_stop");
        log_end();
        break;
    case T_STOP_ALL:
        host_reason("stop_all");
        log_begin("stop_all");
        log_printf(", \"on\": [");
        for (int c = 0, first = 1; c < SESSION_CHANNELS; c++)
            if (outputs_active() & (1 << c)) {
                log_printf(first ? "%d" : ", %d", c);
                first = 0;
            }
        log_printf("]");
        log_end();
        break;
    case T_STIM:
    case T_STIM_SHAPED:
    case T_HEARTBEAT:
        if (f[0] != T_HEARTBEAT)
            host_reason("stim");
        if (n >= 8) {
            uint32_t ref = get32(f + 2);
            uint32_t slot = ref % RTT_SLOTS;
            if ((int64_t)ref > answered && sample_sent_valid[slot] &&
                sample_sent_index[slot] == ref) {
                answered = ref;
                if (rtt_n < RTT_MAX_KEPT) {
                    if (!rtt_ms)
                        rtt_ms = malloc(sizeof(double) * RTT_MAX_KEPT);
                    if (rtt_ms)
                        rtt_ms[rtt_n++] = (t_s - sample_sent_s[slot]) * 1e3;
                }
            }
        }
        break;
    default:
        break;
    }
}

static void board_frame(const uint8_t *f, uint16_t n)
{
    frames_to_host++;
    if (f[0] == T_ACK || f[0] == T_FAULT || f[0] == T_INFO)
        outputs_flush(0); /* a change older than a millisecond has its reason already */
    if ((f[0] == T_ACK || f[0] == T_INFO) && n > 2)
        board_answered(f[2]);
    else if (f[0] == T_STATUS)
        board_answered(-1);
    if (f[0] == T_SAMPLE && n >= 6) {
        uint32_t index = get32(f + 2);
        uint32_t slot = index % RTT_SLOTS;
        sample_sent_s[slot] = board_time_s();
        sample_sent_index[slot] = index;
        sample_sent_valid[slot] = 1;
    } else if (f[0] == T_ACK && n >= 5 + 2) {
        uint8_t code = f[4];
        if (code >= ACK_BAD_CHANNEL && code != ACK_NOT_READY && code != ACK_STALE_SEQ) {
            if (code != ACK_BAD_CHANNEL)
                reason = ack_name(code);
            outputs_flush(1);
            log_begin("refused");
            log_printf(", \"code\": \"%s\", \"seq\": %u", ack_name(code), f[2]);
            log_end();
        }
    } else if (f[0] == T_FAULT && n >= 4 + 6) {
        reason = fault_name(f[2]);
        outputs_flush(1);
        log_begin("fault");
        log_printf(", \"code\": \"%s\"", fault_name(f[2]));
        log_end();
    } else if (f[0] == T_INFO && n >= 4 + 28) {
        log_begin("info");
        log_printf(", \"protocol_version\": %u, \"firmware\": \"%u.%u.%u\", "
                   "\"capabilities\": %u, \"last_fault\": \"%s\"",
                   f[3], f[4], f[5], f[6], f[28], fault_name(f[29]));
        log_end();
    }
}

/* A byte the firmware wrote to UDR0. */
static void uart_out_hook(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    uint8_t byte = (uint8_t)value;
    uint8_t got = frame_rx_byte(&to_host, byte);
    if (got == FRAME_RX_OK)
        board_frame(to_host.buf, to_host.frame_len);
    if (!plugged)
        return;
    if (tx_len >= TX_LIMIT) {
        tx_dropped++;
        return;
    }
    tx_buf[tx_len++] = byte;
}

static int listening;

static void xon_hook(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)value;
    (void)param;
    listening = 1;
}

int hostlink_listening(void) { return listening; }

const char *hostlink_open(void)
{
    if (openpty(&master, &slave, path, NULL, NULL) < 0)
        return NULL;
    struct termios tio;
    tcgetattr(slave, &tio);
    cfmakeraw(&tio);
    tcsetattr(slave, TCSANOW, &tio);
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    fcntl(master, F_SETFD, FD_CLOEXEC);
    fcntl(slave, F_SETFD, FD_CLOEXEC);
    plugged = 1;
    frame_rx_init(&from_host);
    frame_rx_init(&to_host);
    return path;
}

avr_irq_t *uart_attach(char uart, avr_irq_notify_t on_output, avr_irq_notify_t on_xon,
                       avr_irq_notify_t on_xoff)
{
    uint32_t flags = 0; /* no console echo, no polling sleeps */
    avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS(uart), &flags);
    if (on_output)
        avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ(uart), UART_IRQ_OUTPUT),
                                on_output, NULL);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ(uart), UART_IRQ_OUT_XON),
                            on_xon, NULL);
    if (on_xoff)
        avr_irq_register_notify(
            avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ(uart), UART_IRQ_OUT_XOFF), on_xoff, NULL);
    return avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ(uart), UART_IRQ_INPUT);
}

/* simavr's USART of that name (its registers and receive FIFO, for rxline.c). */
static avr_uart_t *find_uart(char name)
{
    for (avr_io_t *io = avr->io_port; io; io = io->next)
        if (!strcmp(io->kind, "uart") && ((avr_uart_t *)io)->name == name)
            return (avr_uart_t *)io;
    return NULL;
}

static int line_next(uint8_t *byte);

/* --rx-lose-end-of T: the delimiter of the first host frame of type T is lost in the
 * chip's receiver (rxline_lose_next), so the frame lacks its last byte and the chip flags
 * the loss only with the host's next byte. The type is the frame's first decoded byte:
 * its second byte on the line, after a COBS code above 1 (a code of 1 would decode to 0,
 * no type). Called as each byte goes onto the line, the one that then completes. */
static void lose_end_of(uint8_t byte)
{
    static unsigned pos; /* bytes of this frame on the line before this one */
    static int type = -1, done;
    if (byte != 0) {
        if (pos == 0)
            type = byte > 1 ? -2 : -1; /* -2: the next byte is the type */
        else if (pos == 1 && type == -2)
            type = byte;
        pos++;
        return;
    }
    if (opt.rx_lose_end_of && !done && pos > 0 && type == opt.rx_lose_end_of) {
        done = 1;
        rxline_lose_next();
    }
    pos = 0;
    type = -1;
}
static void line_received(uint8_t byte, double t_s);

void hostlink_connect(void)
{
    uart_in = uart_attach('0', uart_out_hook, xon_hook, NULL);
    avr_uart_t *usart0 = find_uart('0');
    if (!usart0) {
        fprintf(stderr, "simavr-board: simavr's %s has no USART0\n", BOARD_MCU);
        exit(1);
    }
    rxline_connect(usart0, uart_in, line_next, line_received);
    rxline_set_gap_us(opt.host_byte_gap_us);
}

/* --- the line ----------------------------------------------------------------------------
 * rxline.c runs it at the chip's byte time and receive buffer; it takes the host's bytes
 * from here, and each byte that enters the chip's receive FIFO goes through the frame
 * analyser at that chip time. Until 7 Dec 2026 a byte went into simavr's receive FIFO as
 * it started, at simavr's byte time (22 us, not 10), and simavr's FIFO held 64 unread
 * bytes where the chip holds two; before that morning the harness put up to 64 bytes
 * into it at once and took a frame's time when its delimiter went in. */
static int line_next(uint8_t *byte)
{
    if (!plugged || rx_done == rx_len || reset_pending)
        return 0;
    *byte = rx_buf[rx_done++];
    lose_end_of(*byte);
    return 1;
}

static void line_received(uint8_t byte, double t_s)
{
    uint8_t got = frame_rx_byte(&from_host, byte);
    if (got == FRAME_RX_OK) {
        host_frame(from_host.buf, from_host.frame_len, t_s);
    } else if (got == FRAME_RX_BAD) {
        bad_from_host++;
        host_frame(NULL, 0, t_s);
    }
}

void hostlink_chip_reset(void)
{
    /* The reset emptied the USART (the byte on the line with it) and cancelled the
     * line's timer; the frames in the firmware's buffer will not be answered. */
    rxline_reset();
    awaiting_n = 0;
}

void hostlink_reset_on_open(void)
{
    reset_on_open = 1;
    port_held = 0;
    if (slave >= 0)
        close(slave);
    slave = -1;
}

int hostlink_take_reset(void)
{
    int pending = reset_pending;
    reset_pending = 0;
    return pending;
}

/* With reset on open: whether a host holds the port; an open is logged and asks for a
 * reset. While nobody holds it the board's output is lost, as a USB serial bridge loses
 * what a closed port is sent. */
static int port_in_use(void)
{
    if (!reset_on_open)
        return 1;
    int held = port_held;
    if (rx_done == rx_len) {
        ssize_t r = read(master, rx_buf, sizeof(rx_buf));
        rx_len = r > 0 ? (size_t)r : 0;
        rx_done = 0;
        held = !(r < 0 && errno == EIO);
    }
    if (held && !port_held) {
        reset_pending = 1;
        log_begin("port_opened");
        log_end();
    } else if (port_held && !held) {
        /* Logged so that a test opens the port again only after this: a close and an
         * open within one pacing step go unseen, and with them the reset. */
        log_begin("port_closed");
        log_end();
    }
    if (!held || reset_pending)
        tx_len = 0;
    port_held = held;
    return held;
}

void hostlink_service(void)
{
    /* Bytes of a host that just opened the port wait for the reset it asked for. */
    if (!plugged || !port_in_use() || reset_pending)
        return;
    if (tx_len) {
        ssize_t w = write(master, tx_buf, tx_len);
        if (w > 0) {
            memmove(tx_buf, tx_buf + w, tx_len - (size_t)w);
            tx_len -= (size_t)w;
        }
    }
    if (rx_done == rx_len) {
        ssize_t r = read(master, rx_buf, sizeof(rx_buf));
        rx_len = r > 0 ? (size_t)r : 0;
        rx_done = 0;
    }
    rxline_start();
}

void hostlink_wait(int64_t timeout_ns)
{
    if (timeout_ns <= 0)
        return;
    struct timeval tv = {(time_t)(timeout_ns / 1000000000), (long)(timeout_ns % 1000000000) / 1000};
    if (!plugged || !port_held || rx_done < rx_len) {
        select(0, NULL, NULL, NULL, &tv);
        return;
    }
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(master, &rd);
    select(master + 1, &rd, NULL, NULL, &tv);
}

void hostlink_unplug(void)
{
    if (!plugged)
        return;
    log_begin("unplug");
    log_printf(", \"on\": [");
    for (int c = 0, first = 1; c < SESSION_CHANNELS; c++)
        if (outputs_active() & (1 << c)) {
            log_printf(first ? "%d" : ", %d", c);
            first = 0;
        }
    log_printf("], \"last_host_frame_board_t_s\": %.7f", last_frame_s);
    log_end();
    plugged = 0;
    close(master);
    if (slave >= 0)
        close(slave);
    master = slave = -1;
    tx_len = 0;
    rx_len = rx_done = 0;
}

int hostlink_plugged(void) { return plugged; }

const char *hostlink_reason(void) { return reason; }

static int compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void hostlink_report(void)
{
    log_begin("counters");
    log_printf(", \"rx_frames\": %u, \"rx_bad_frames\": %u, \"tx_frames\": %u, "
               "\"tx_dropped_host_not_reading\": %u, \"rx_overruns\": %u, "
               "\"rx_wait_max_us\": %.4f, \"rx_wait_max_pc\": %u, \"rx_wait_max_read_pc\": %u",
               frames_from_host, bad_from_host, frames_to_host, tx_dropped, rxline_overruns(),
               rxline_wait_max_us(), rxline_wait_max_pc(), rxline_wait_max_read_pc());
    log_end();
    log_begin("round_trips");
    log_printf(", \"count\": %zu", rtt_n);
    if (rtt_n) {
        qsort(rtt_ms, rtt_n, sizeof(double), compare);
        size_t over = 0;
        for (size_t i = 0; i < rtt_n; i++)
            over += rtt_ms[i] > 2.0;
        log_printf(", \"median_ms\": %.4f, \"p99_ms\": %.4f, \"max_ms\": %.4f, "
                   "\"over_one_period\": %zu",
                   rtt_ms[rtt_n / 2], rtt_ms[(size_t)floor(0.99 * (double)(rtt_n - 1))],
                   rtt_ms[rtt_n - 1], over);
    }
    log_end();
}
