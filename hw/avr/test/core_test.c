/*
 * Host tests of the firmware's portable core (framing, CRC, limits, stored
 * configuration, pulse plans, the protocol state machine), compiled with the host's gcc
 * and run by tests/test_avr_core.py. One line per check that fails, then a summary;
 * the exit status is the number of failed checks (0: all passed).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "frame.h"
#include "limits.h"
#include "pulse_plan.h"
#include "session.h"

static int failures, checks;
static const char *current;

static void check(int ok, const char *fmt, ...)
{
    checks++;
    if (ok)
        return;
    failures++;
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL %s: ", current);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* --- platform hooks: record what the session does -------------------------------------- */

static uint8_t sent[64][256];
static uint8_t sent_len[64];
static int sent_count;
static setting_t outputs[SESSION_CHANNELS];

void session_hal_send(const uint8_t *body, uint8_t n)
{
    if (sent_count < 64) {
        memcpy(sent[sent_count], body, n);
        sent_len[sent_count++] = n;
    }
}

void session_hal_output(uint8_t channel, const setting_t *setting) { outputs[channel] = *setting; }

uint32_t session_hal_grid_start(void) { return 5000; }

/* A host frame (type, seq, payload) with its CRC, as the receiver hands it over. */
static uint16_t frame_of(uint8_t *out, uint8_t type, uint8_t seq, const uint8_t *payload,
                         uint8_t n)
{
    out[0] = type;
    out[1] = seq;
    memcpy(out + 2, payload, n);
    uint16_t crc = crc16(out, (uint16_t)(n + 2));
    out[n + 2] = (uint8_t)(crc >> 8);
    out[n + 3] = (uint8_t)crc;
    return (uint16_t)(n + 4);
}

/* A host frame that arrived at arrived_ms, acted on at now_ms (later when it waited in
 * the receive ring behind others). */
static void host_late(session_t *s, uint8_t type, uint8_t seq, const uint8_t *payload,
                      uint8_t n, uint32_t arrived_ms, uint32_t now_ms)
{
    uint8_t f[260];
    sent_count = 0;
    session_frame(s, f, frame_of(f, type, seq, payload, n), arrived_ms, now_ms,
                  now_ms * 1000u);
}

/* A host frame acted on in the millisecond it arrived. */
static void host(session_t *s, uint8_t type, uint8_t seq, const uint8_t *payload, uint8_t n,
                 uint32_t now_ms)
{
    host_late(s, type, seq, payload, n, now_ms, now_ms);
}

/* The last frame sent is an ACK of seq with code. */
static int acked(uint8_t seq, uint8_t code)
{
    if (!sent_count)
        return 0;
    uint8_t *f = sent[sent_count - 1];
    return f[0] == T_ACK && f[2] == seq && f[4] == code;
}

static uint8_t *stim_item(uint8_t *p, uint8_t channel, uint8_t on, uint16_t amp, uint16_t width,
                          uint16_t freq_chz)
{
    p[0] = channel;
    p[1] = on;
    p[2] = (uint8_t)amp, p[3] = (uint8_t)(amp >> 8);
    p[4] = (uint8_t)width, p[5] = (uint8_t)(width >> 8);
    p[6] = (uint8_t)freq_chz, p[7] = (uint8_t)(freq_chz >> 8);
    return p + 8;
}

static uint8_t stim_payload(uint8_t *p, uint8_t channel, uint16_t amp)
{
    memset(p, 0, 5);
    p[4] = 1;
    stim_item(p + 5, channel, 1, amp, 300, 4000);
    return 13;
}

static void open_session(session_t *s, uint8_t version)
{
    session_init(s, &limits_default_config);
    host(s, T_HELLO, 1, &version, 1, 0);
}

/* --- framing ---------------------------------------------------------------------------- */

static void test_crc(void)
{
    current = "crc";
    check(crc16((const uint8_t *)"123456789", 9) == 0x29B1, "check value");
    uint8_t body[] = {0x06, 0x05, 0xe8, 0x03, 0x00, 0x00};
    check(crc16(body, sizeof(body)) == 0xF8DF, "docs/protocol.md section 11 HEARTBEAT");
}

static void test_cobs(void)
{
    current = "cobs";
    uint8_t in[254], enc[256], dec[256];
    for (int n = 0; n <= 254; n++) {
        for (int pattern = 0; pattern < 3; pattern++) {
            for (int i = 0; i < n; i++)
                in[i] = pattern == 0 ? (uint8_t)(i + 1) : pattern == 1 ? 0 : (uint8_t)(i % 7);
            uint16_t len = cobs_encode(in, (uint16_t)n, enc);
            check(len == n + 1 || (n == 254 && pattern == 0 && len == 255),
                  "length of %d bytes (pattern %d): %u", n, pattern, len);
            check(!memchr(enc, 0, len), "no zero in the encoding (%d, %d)", n, pattern);
            memcpy(dec, enc, len);
            int16_t back = cobs_decode(dec, len);
            check(back == n && !memcmp(dec, in, (size_t)n), "round trip (%d, %d)", n, pattern);
        }
    }
    uint8_t broken[] = {0x05, 0x01, 0x02};
    check(cobs_decode(broken, 3) == -1, "a block past the end");
    uint8_t zero_code[] = {0x00, 0x01};
    check(cobs_decode(zero_code, 2) == -1, "a code byte of zero");
}

static void test_frame_encode(void)
{
    current = "frame_encode";
    uint8_t body[] = {0x06, 0x05, 0xe8, 0x03, 0x00, 0x00};
    uint8_t want[] = {0x05, 0x06, 0x05, 0xe8, 0x03, 0x01, 0x03, 0xf8, 0xdf, 0x00};
    uint8_t wire[FRAME_WIRE_MAX];
    uint16_t n = frame_encode(body, sizeof(body), wire);
    check(n == sizeof(want) && !memcmp(wire, want, n), "docs/protocol.md HEARTBEAT bytes");
    uint8_t big[253] = {0};
    check(frame_encode(big, 253, wire) == 0, "a body over 252 bytes is refused");
    check(frame_encode(big, 252, wire) == 256, "the largest frame: 255 bytes and delimiter");
}

static uint8_t feed(frame_rx_t *rx, const uint8_t *p, size_t n)
{
    uint8_t last = FRAME_RX_NONE;
    for (size_t i = 0; i < n; i++) {
        uint8_t r = frame_rx_byte(rx, p[i]);
        if (r != FRAME_RX_NONE)
            last = r;
    }
    return last;
}

static void test_receiver(void)
{
    current = "receiver";
    frame_rx_t rx;
    frame_rx_init(&rx);
    uint8_t good[] = {0x05, 0x06, 0x05, 0xe8, 0x03, 0x01, 0x03, 0xf8, 0xdf, 0x00};
    check(feed(&rx, good, sizeof(good)) == FRAME_RX_OK && rx.frame_len == 8 &&
              rx.buf[0] == 0x06 && rx.buf[2] == 0xe8,
          "a valid frame");
    uint8_t idle[] = {0, 0, 0};
    check(feed(&rx, idle, 3) == FRAME_RX_NONE, "delimiters alone are an idle line");
    uint8_t flipped[sizeof(good)];
    memcpy(flipped, good, sizeof(good));
    flipped[3] ^= 0x10;
    check(feed(&rx, flipped, sizeof(flipped)) == FRAME_RX_BAD, "a flipped bit fails the CRC");
    check(feed(&rx, good, sizeof(good)) == FRAME_RX_OK, "decoding resumes after it");
    uint8_t longline[300];
    memset(longline, 0x11, sizeof(longline));
    check(feed(&rx, longline, sizeof(longline)) == FRAME_RX_NONE, "an overlong run waits");
    check(frame_rx_byte(&rx, 0) == FRAME_RX_BAD, "and is one bad frame at its delimiter");
    check(feed(&rx, good, sizeof(good)) == FRAME_RX_OK, "decoding resumes after that too");
    uint8_t short_frame[] = {0x03, 0x01, 0x02, 0x00};
    check(feed(&rx, short_frame, 4) == FRAME_RX_BAD, "under 4 decoded bytes is bad");
    feed(&rx, good, 4);
    frame_rx_damaged(&rx);
    check(feed(&rx, good + 4, sizeof(good) - 4) == FRAME_RX_BAD,
          "bytes lost inside a frame: it is bad, whole as the rest looks");
    frame_rx_damaged(&rx);
    check(feed(&rx, good, sizeof(good)) == FRAME_RX_OK,
          "bytes lost between frames: the next whole frame is taken");
    frame_rx_damaged(&rx);
    check(feed(&rx, good + 4, sizeof(good) - 4) == FRAME_RX_BAD,
          "and a frame that lost its start fails its CRC");
}

/* --- limits, configuration, pulse plans ------------------------------------------------- */

static void test_limits(void)
{
    current = "limits";
    const board_config_t *c = &limits_default_config;
    setting_t s = {1, 6000, 500, 6000, 500, 1000};
    check(limits_check_setting(c, &s) == ACK_OK, "every limit exactly: OK");
    s.amplitude_10ua = 6001;
    check(limits_check_setting(c, &s) == ACK_OVER_AMPLITUDE, "amplitude");
    s.pulse_width_us = 501; /* amplitude still over: it is the first checked */
    check(limits_check_setting(c, &s) == ACK_OVER_AMPLITUDE, "amplitude first");
    s.amplitude_10ua = 6000;
    check(limits_check_setting(c, &s) == ACK_OVER_PULSE_WIDTH, "pulse width");
    s.pulse_width_us = 500, s.frequency_chz = 6001;
    check(limits_check_setting(c, &s) == ACK_OVER_FREQUENCY, "frequency");
    s.frequency_chz = 6000, s.gap_us = 501;
    check(limits_check_setting(c, &s) == ACK_OVER_INTERPHASE_GAP, "gap");
    s.gap_us = 0, s.ratio_x100 = 99;
    check(limits_check_setting(c, &s) == ACK_BAD_WIDTH_RATIO, "ratio below 1");
    s.ratio_x100 = 1001;
    check(limits_check_setting(c, &s) == ACK_BAD_WIDTH_RATIO, "ratio beyond the limit");
    board_config_t lower = *c;
    lower.max_charge_cuc = 2000; /* 20 uC */
    setting_t q = {1, 4000, 500, 4000, 0, 100}; /* 40 mA x 500 us = 20 uC */
    check(limits_check_setting(&lower, &q) == ACK_OK, "charge at the limit: OK");
    q.amplitude_10ua = 4001; /* 20.005 uC */
    check(limits_check_setting(&lower, &q) == ACK_OVER_CHARGE, "charge per phase");
    q.ratio_x100 = 99;
    check(limits_check_setting(&lower, &q) == ACK_BAD_WIDTH_RATIO, "charge checked last");
    check(limits_config_valid(&lower), "a lower charge limit is a valid configuration");
    lower.max_charge_cuc = 3001;
    check(!limits_config_valid(&lower), "a charge limit above the compiled one is not");
    lower.max_charge_cuc = 0;
    check(!limits_config_valid(&lower), "nor is a charge limit of 0");
    setting_t short_phase = {1, 6000, 3, 4000, 0, 100};
    check(limits_check_setting(c, &short_phase) == ACK_OK && !setting_delivers(&short_phase),
          "a 3 us phase is accepted and delivers nothing");
    short_phase.pulse_width_us = 4;
    check(setting_delivers(&short_phase), "a 4 us phase delivers");
    setting_t off = {0, 65535, 65535, 65535, 65535, 0};
    check(limits_check_setting(c, &off) == ACK_OK, "a setting that is off is never refused");
    check(limits_config_valid(c), "the compiled configuration is valid");
}

static void test_config(void)
{
    current = "config";
    board_config_t cfg = limits_default_config, got;
    cfg.board_id = 0x01020304;
    cfg.comm_timeout_ms = 400;
    cfg.max_amplitude_10ua = 4000;
    uint8_t block[CONFIG_BLOCK_BYTES];
    config_encode(&cfg, block);
    check(config_parse(block, &got) && got.board_id == 0x01020304 && got.comm_timeout_ms == 400 &&
              got.max_amplitude_10ua == 4000,
          "round trip");
    block[8] ^= 1;
    check(!config_parse(block, &got) && got.comm_timeout_ms == 100, "damaged: compiled values");
    uint8_t erased[CONFIG_BLOCK_BYTES];
    memset(erased, 0xFF, sizeof(erased));
    check(!config_parse(erased, &got), "erased EEPROM: compiled values");
    cfg.max_amplitude_10ua = 6001; /* looser than compiled */
    config_encode(&cfg, block);
    check(!config_parse(block, &got) && got.max_amplitude_10ua == 6000, "a looser limit");
    cfg.max_amplitude_10ua = 4000;
    cfg.comm_timeout_ms = 501;
    config_encode(&cfg, block);
    check(!config_parse(block, &got), "a timeout beyond 500 ms");
    cfg.comm_timeout_ms = 400;
    cfg.max_charge_cuc = 1500;
    config_encode(&cfg, block);
    cfg.max_duty_permille = 500;
    config_encode(&cfg, block);
    check(config_parse(block, &got) && got.max_charge_cuc == 1500 && got.max_duty_permille == 500,
          "charge and duty limits stored");
    cfg.max_duty_permille = 801;
    config_encode(&cfg, block);
    check(!config_parse(block, &got), "a duty limit above the compiled 80 %%");
    cfg.max_duty_permille = 500;
    config_encode(&cfg, block);
    /* A block of layout 1 (firmware 2.1.0): 23 bytes, no charge limit, CRC at 21. */
    block[2] = 1;
    uint16_t crc = crc16(block, 21);
    block[21] = (uint8_t)(crc >> 8), block[22] = (uint8_t)crc;
    check(config_parse(block, &got) && got.comm_timeout_ms == 400 && got.max_charge_cuc == 3000 &&
              got.max_duty_permille == 800,
          "a layout 1 block: its limits, the compiled charge and duty limits");
}

static void test_pulse_plans(void)
{
    current = "pulse_plan";
    pulse_plan_t p;
    setting_t s = {1, 3500, 300, 4000, 50, 400};
    pulse_plan(&s, &p);
    check(p.delivers && p.cathodic_ticks == 600 && p.gap_ticks == 100 && p.anodic_ticks == 2400,
          "35 mA, 300 us, gap 50 us, ratio 4: ticks");
    /* 1750 x 600 / 2400 = 437.5: rounded down, never above the leading phase's charge */
    check(p.cathodic_dac == 1750 && p.anodic_dac == 437, "DAC counts %u %u", p.cathodic_dac,
          p.anodic_dac);
    check(p.period_ticks == 50000, "40 Hz: 25 ms");
    s.amplitude_10ua = 3501; /* 35.01 mA: half a DAC count, rounded down, never up */
    pulse_plan(&s, &p);
    check(p.cathodic_dac == 1750, "35.01 mA is DAC count %u, not above it", p.cathodic_dac);
    s.amplitude_10ua = 3500;
    s.pulse_width_us = 3;
    pulse_plan(&s, &p);
    check(!p.delivers && p.cathodic_ticks == 0 && p.cathodic_dac == 0,
          "a 3 us phase delivers nothing, never a lengthened one");
    s.pulse_width_us = 4;
    pulse_plan(&s, &p);
    check(p.delivers && p.cathodic_ticks == 8 && p.anodic_ticks == 32, "a 4 us phase: 8 ticks");
    setting_t off = {0, 3500, 300, 4000, 0, 100};
    pulse_plan(&off, &p);
    check(!p.delivers, "off delivers nothing");
    setting_t zero = {1, 0, 300, 4000, 0, 100};
    pulse_plan(&zero, &p);
    check(!p.delivers, "zero amplitude delivers nothing");
    /* Every setting within the limits: the recovery phase carries no more charge than the
     * leading one, and less by under one DAC count over the anodic phase. */
    int worst_ok = 1;
    for (uint16_t amp = 10; amp <= 6000; amp += 397)
        for (uint16_t w = 1; w <= 500; w += 13)
            for (uint16_t r = 100; r <= 1000; r += 37) {
                setting_t t = {1, amp, w, 2000, 0, r};
                pulse_plan(&t, &p);
                long net = (long)p.cathodic_dac * p.cathodic_ticks -
                           (long)p.anodic_dac * p.anodic_ticks;
                if (p.delivers && (net < 0 || net >= (long)p.anodic_ticks ||
                                   p.anodic_ticks < p.cathodic_ticks))
                    worst_ok = 0;
            }
    check(worst_ok, "recovery charge at most the leading, short of it by under a DAC count");
}

/* --- the protocol state machine ---------------------------------------------------------- */

static void test_hello(void)
{
    current = "hello";
    session_t s;
    open_session(&s, 3);
    check(sent_count == 1 && sent[0][0] == T_INFO && sent_len[0] == 2 + 32, "INFO of 32 bytes");
    check(s.session && s.version == 3, "a version 3 session");
    uint8_t *info = sent[0] + 2;
    check(info[0] == 1 && info[1] == 3 && info[2] == FIRMWARE_MAJOR && info[9] == 2,
          "hello_seq, version, firmware, channels");
    uint8_t v1 = 1;
    host(&s, T_HELLO, 2, &v1, 1, 1);
    check(sent_len[0] == 2 + 28 && s.version == 1 && s.session, "version 1: 28 bytes");
    uint8_t v9 = 9;
    host(&s, T_HELLO, 3, &v9, 1, 2);
    check(!s.session && sent[0][3] == SESSION_PROTOCOL_VERSION, "an unknown version: INFO of the newest, no session");
    host(&s, T_START_STREAM, 4, NULL, 0, 3);
    check(acked(4, ACK_NOT_READY), "nothing but HELLO, GET_STATUS, STOP_ALL without a session");
    host(&s, T_STOP_ALL, 5, NULL, 0, 4);
    check(acked(5, ACK_OK), "STOP_ALL obeyed without a session");
    session_t s4;
    open_session(&s4, 4);
    check(sent_len[0] == 2 + 36 && sent[0][2 + 32] == (3000 & 0xFF) &&
              sent[0][2 + 33] == (3000 >> 8) && sent[0][2 + 34] == (800 & 0xFF) &&
              sent[0][2 + 35] == (800 >> 8),
          "INFO of version 4: 36 bytes, the charge and duty limits last");
}

static void test_sequence_and_types(void)
{
    current = "sequence";
    session_t s;
    open_session(&s, 3);
    host(&s, T_START_STREAM, 2, NULL, 0, 1);
    check(acked(2, ACK_OK) && s.streaming && s.grid_started && s.grid_t0_us == 5000,
          "START_STREAM starts the grid");
    host(&s, T_HEARTBEAT, 2, (const uint8_t *)"\0\0\0\0", 4, 2);
    check(acked(2, ACK_STALE_SEQ), "a repeated seq is stale");
    host(&s, T_HEARTBEAT, (uint8_t)(2 + 128), (const uint8_t *)"\0\0\0\0", 4, 3);
    check(acked(130, ACK_STALE_SEQ), "128 ahead is stale");
    host(&s, T_HEARTBEAT, 3, (const uint8_t *)"\0\0\0", 3, 4);
    check(acked(3, ACK_BAD_LENGTH), "a wrong length");
    host(&s, 0x42, 4, NULL, 0, 5);
    check(acked(4, ACK_UNKNOWN_TYPE), "an unknown type");
    host(&s, T_ACK, 5, (const uint8_t *)"\0\0\0", 3, 6);
    check(acked(5, ACK_UNKNOWN_TYPE), "a board-to-host type");
    uint8_t on = 1;
    host(&s, T_DEBUG_TRUTH, 6, &on, 1, 7);
    check(acked(6, ACK_UNKNOWN_TYPE), "DEBUG_TRUTH without a truth source");
    uint8_t v1 = 1;
    host(&s, T_HELLO, 7, &v1, 1, 8);
    uint8_t shaped[17] = {0};
    shaped[4] = 1;
    host(&s, T_STIM_SHAPED, 8, shaped, 17, 9);
    check(acked(8, ACK_UNKNOWN_TYPE), "STIM_SHAPED in a version 1 session");
}

static void test_stim(void)
{
    current = "stim";
    session_t s;
    open_session(&s, 3);
    uint8_t payload[32];
    host(&s, T_STIM, 2, payload, stim_payload(payload, 0, 3500), 1);
    check(acked(2, ACK_OK) && outputs[0].on && outputs[0].amplitude_10ua == 3500 &&
              outputs[0].ratio_x100 == 100,
          "STIM switches channel 0 on, symmetric");
    host(&s, T_STIM, 3, payload, stim_payload(payload, 0, 7000), 2);
    check(acked(3, ACK_OVER_AMPLITUDE) && !outputs[0].on && s.refused == 1,
          "over the limit: refused and the channel switched off");
    host(&s, T_STIM, 4, payload, stim_payload(payload, 2, 3500), 3);
    check(acked(4, ACK_BAD_CHANNEL), "a channel out of range");
    uint8_t twice[21] = {0};
    twice[4] = 2;
    stim_item(stim_item(twice + 5, 0, 1, 3500, 300, 4000), 0, 1, 3500, 300, 4000);
    host(&s, T_STIM, 5, twice, 21, 4);
    check(acked(5, ACK_BAD_CHANNEL) && !outputs[0].on, "a channel named twice, nothing applied");
    host(&s, T_STIM, 6, payload, stim_payload(payload, 1, 3500), 5);
    host(&s, T_STOP_ALL, 7, NULL, 0, 6);
    check(acked(7, ACK_OK) && !outputs[1].on && session_outputs_on(&s) == 0, "STOP_ALL");
    host(&s, T_STIM, 8, payload, stim_payload(payload, 1, 3500), 7);
    check(outputs[1].on, "on again");
    sent_count = 0;
    session_rx_lost(&s, 123456u);
    check(!outputs[1].on && session_outputs_on(&s) == 0,
          "bytes lost (perhaps a STOP_ALL): every output off");
    check(!s.session && s.fault == FAULT_RX_LOST && sent_count == 1 && sent[0][0] == T_FAULT &&
              sent[0][2] == FAULT_RX_LOST && sent[0][3] == 0xFF,
          "and FAULT RX_LOST ends the session");
    sent_count = 0;
    session_rx_lost(&s, 123457u);
    check(sent_count == 0 && s.fault == FAULT_RX_LOST, "outside a session: off, no FAULT");
}

/* The communication timeout at tick at_ms, not before: the session alive at at_ms - 1,
 * then ended with every output off and FAULT COMM_TIMEOUT the one frame sent. */
static void check_timeout_at(session_t *s, uint32_t at_ms, const char *why)
{
    session_tick_ms(s, at_ms - 1, (at_ms - 1) * 1000u);
    check(s->session, "%s: alive at %u ms", why, (unsigned)(at_ms - 1));
    sent_count = 0;
    session_tick_ms(s, at_ms, at_ms * 1000u);
    check(!s->session && session_outputs_on(s) == 0 && sent_count == 1 &&
              sent[0][0] == T_FAULT && sent[0][2] == FAULT_COMM_TIMEOUT,
          "%s: off, FAULT COMM_TIMEOUT at %u ms", why, (unsigned)at_ms);
}

static void test_timeouts(void)
{
    current = "timeouts";
    session_t s;
    open_session(&s, 3);
    uint8_t payload[32];
    host(&s, T_STIM, 2, payload, stim_payload(payload, 0, 3500), 10);
    session_tick_ms(&s, 110, 110000);
    check(outputs[0].on, "still on at exactly the timeout");
    check_timeout_at(&s, 111, "1 ms later");
    uint8_t v3 = 3;
    host(&s, T_HELLO, 3, &v3, 1, 200);
    check(sent[0][2 + 27] == FAULT_COMM_TIMEOUT, "the next INFO reports it");
    host(&s, T_HELLO, 4, &v3, 1, 201);
    check(sent[0][2 + 27] == FAULT_NONE, "once");
    /* On-time: heartbeats keep the link alive, the channel stays on too long. */
    host(&s, T_STIM, 5, payload, stim_payload(payload, 0, 3500), 1000);
    session_tick_ms(&s, 1000, 1000000);
    check(s.session && outputs[0].on, "no fault in the millisecond the channel went on");
    uint8_t seq = 6;
    uint32_t t;
    for (t = 1050; t <= 4100 && s.session; t += 50) {
        host(&s, T_HEARTBEAT, seq++, (const uint8_t *)"\0\0\0\0", 4, t);
        session_tick_ms(&s, t, t * 1000);
    }
    check(!s.session && !outputs[0].on && s.fault == FAULT_ON_TIME && t > 4000,
          "ON_TIME after 3000 ms on");
}

/* The communication timeout counts from the arrival of the frame that kept the session
 * alive, not from when the main loop took it from the receive ring (until 2.2.1: a frame
 * of a burst that waited 3 ms kept the outputs on 3 ms past comm_timeout_ms + 1 ms of
 * it). s.cfg.comm_timeout_ms is 100. */
static void test_timeout_from_arrival(void)
{
    current = "timeout from arrival";
    session_t s;
    open_session(&s, 3);
    uint8_t payload[32];
    host_late(&s, T_STIM, 2, payload, stim_payload(payload, 0, 3500), 10, 13);
    session_tick_ms(&s, 110, 110000);
    check(outputs[0].on, "on at exactly the timeout after its arrival");
    check_timeout_at(&s, 111, "101 ms after the STIM arrived, though acted on at 13 ms");
    /* HELLO and STOP_ALL keep a session alive from their arrival too. */
    uint8_t v4 = 4;
    host_late(&s, T_HELLO, 3, &v4, 1, 200, 204);
    host_late(&s, T_STIM, 4, payload, stim_payload(payload, 0, 3500), 205, 205);
    host_late(&s, T_STOP_ALL, 5, NULL, 0, 250, 252);
    check_timeout_at(&s, 351, "101 ms after the STOP_ALL arrived (a HELLO at 200 ms)");
    /* A stale frame keeps nothing alive, however it arrived. */
    host(&s, T_HELLO, 6, &v4, 1, 400);
    host_late(&s, T_HEARTBEAT, 6, (const uint8_t *)"\0\0\0\0", 4, 450, 450);
    check(acked(6, ACK_STALE_SEQ), "a stale HEARTBEAT refused");
    check_timeout_at(&s, 501, "101 ms after the HELLO, the stale frame not counted");
}

/* An arrival kept in 16 bits (the receive ring's stamps) is widened back exactly, also
 * across a wrap of the low bits, for waits up to 65.535 s. */
static void test_widen_ms(void)
{
    current = "widen ms";
    check(clock_widen_ms(1000, 997) == 997, "3 ms ago");
    check(clock_widen_ms(1000, 1000) == 1000, "now");
    check(clock_widen_ms(0x00010002u, 0xFFFEu) == 0x0000FFFEu, "across a wrap of 16 bits");
    check(clock_widen_ms(0x12345678u, (uint16_t)(0x12345678u - 65535u)) ==
              0x12345678u - 65535u,
          "65.535 s ago");
}

/* Channel 0 on for on_ms, off for off_ms, over and over from t = 0 for total_ms, the link
 * kept alive, a tick every millisecond; the time of the first fault (0: none). */
static uint32_t run_duty_pattern(session_t *s, uint32_t on_ms, uint32_t off_ms,
                                 uint32_t total_ms)
{
    uint8_t on[32], off[32];
    stim_payload(on, 0, 3500);
    stim_payload(off, 0, 3500);
    off[6] = 0;
    uint8_t seq = 2;
    for (uint32_t t = 0; t < total_ms; t++) {
        uint32_t phase = t % (on_ms + off_ms);
        if (phase == 0)
            host(s, T_STIM, seq++, on, 13, t);
        else if (phase == on_ms)
            host(s, T_STIM, seq++, off, 13, t);
        else if (t % 50 == 0)
            host(s, T_HEARTBEAT, seq++, (const uint8_t *)"\0\0\0\0", 4, t);
        session_tick_ms(s, t, t * 1000u);
        if (!s->session)
            return t;
    }
    return 0;
}

static void test_duty(void)
{
    current = "duty";
    session_t s;
    /* 2.5 s on, 0.1 s off: 96 %, never 3 s at a time. The on-time limit alone would let
     * it run forever; the duty limit (80 % of 10 s = 8000 ms) ends it 500 ms into the
     * fourth train (3 x 2500 ms + 500 ms), at 3 x 2600 + 500 = 8300 ms. */
    open_session(&s, 4);
    uint32_t t = run_duty_pattern(&s, 2500, 100, 30000);
    check(s.fault == FAULT_DUTY && !outputs[0].on && t >= 8299 && t <= 8302,
          "FAULT DUTY at %lu ms (fault %u)", (unsigned long)t, s.fault);
    /* The next HELLO does not rest the muscle: switching on again faults at once. */
    uint8_t v4 = 4;
    host(&s, T_HELLO, 200, &v4, 1, t + 10);
    check(sent[0][2 + 27] == FAULT_DUTY, "the next INFO reports it");
    uint8_t on[32];
    stim_payload(on, 0, 3500);
    host(&s, T_STIM, 201, on, 13, t + 11);
    session_tick_ms(&s, t + 11, (t + 11) * 1000u);
    check(!s.session && s.fault == FAULT_DUTY, "no rest, no stimulation");
    /* 2 s on, 0.6 s off: 77 %, within 80 % over any 10 s: 30 s without a fault. */
    open_session(&s, 4);
    check(run_duty_pattern(&s, 2000, 600, 30000) == 0 && s.fault == FAULT_NONE,
          "77 %% runs on");
    /* A stored limit of 50 %: 2 s on, 0.6 s off ends after 5000 ms on. */
    board_config_t half = limits_default_config;
    half.max_duty_permille = 500;
    session_init(&s, &half);
    host(&s, T_HELLO, 1, &v4, 1, 0);
    t = run_duty_pattern(&s, 2000, 600, 30000);
    check(s.fault == FAULT_DUTY && t >= 6199 && t <= 6202, "50 %%: FAULT DUTY at %lu ms",
          (unsigned long)t);
}

static void test_samples_and_truth(void)
{
    current = "samples";
    session_t s;
    open_session(&s, 3);
    uint8_t truth_source[4] = {0xC0, 0, 0, 0};
    session_truth_frame(&s, truth_source, 4);
    uint8_t v3 = 3;
    host(&s, T_HELLO, 2, &v3, 1, 1);
    check(sent[0][2 + 26] & CAP_DEBUG_TRUTH, "a truth source makes the capability");
    uint8_t on = 1;
    host(&s, T_DEBUG_TRUTH, 3, &on, 1, 2);
    host(&s, T_START_STREAM, 4, NULL, 0, 3);
    sensor_sample_t r = {{0, 0, 488}, 5494, FLAG_HEEL_CONTACT | FLAG_GYRO_SAGITTAL};
    for (uint32_t k = 0; k < 40; k++) {
        uint8_t row[4 + 4 + 7] = {T_TRUTH_ROW, 0};
        row[2] = (uint8_t)k;
        row[6] = (uint8_t)k; /* ankle angle low byte */
        session_truth_frame(&s, row, sizeof(row));
        sent_count = 0;
        session_sample(&s, k, &r, k * 2);
    }
    uint8_t *sample = sent[0] + 2;
    uint32_t t_us = (uint32_t)sample[4] | ((uint32_t)sample[5] << 8) | ((uint32_t)sample[6] << 16);
    check(sent_count == 1 && sent[0][0] == T_SAMPLE && t_us == 5000u + 39u * 2000u &&
              sample[12] == (488 & 0xFF) && sample[13] == (488 >> 8),
          "SAMPLE with the grid time (5000 + 39 x 2000 us) and the gyro");
    host(&s, T_STOP_STREAM, 5, NULL, 0, 100);
    check(sent_count == 2 && sent[0][0] == T_TRUTH_SAMPLES && sent[0][2 + 4] == 8 &&
              sent[0][2] == 32 && acked(5, ACK_OK),
          "the 8 rows left go out before the ACK of STOP_STREAM");
    host(&s, T_START_STREAM, 6, NULL, 0, 101);
    /* A reading without the gyro (an I2C failure) keeps the heel switch and force it
     * read; no reading at all is every sensor lost; a heel sensor without a reading is
     * HEEL_LOST. Until 2.1.0 the first two went out as flags 0, force 0: heel off, 0 N. */
    sensor_sample_t no_gyro = {{0, 0, 0}, 5494, FLAG_HEEL_CONTACT};
    sent_count = 0;
    session_sample(&s, 40, &no_gyro, 200);
    check(sent_count == 1 && sent[0][2 + 20] == (5494 & 0xFF) && sent[0][2 + 21] == (5494 >> 8) &&
              sent[0][2 + 22] == FLAG_HEEL_CONTACT,
          "a reading without the gyro: heel contact and 549.4 N as read, no gyro bit");
    sent_count = 0;
    session_sample(&s, 41, NULL, 200);
    check(sent_count == 1 && sent[0][2 + 20] == 0xFF && sent[0][2 + 21] == 0xFF &&
              sent[0][2 + 22] == FLAG_HEEL_LOST,
          "no reading: heel switch lost, force absent, no gyro bit");
    sensor_sample_t heel_lost = {{0, 0, 488}, 5494, FLAG_HEEL_LOST | FLAG_GYRO_SAGITTAL};
    sent_count = 0;
    session_sample(&s, 42, &heel_lost, 200);
    check(sent_count == 1 && sent[0][2 + 22] == (FLAG_HEEL_LOST | FLAG_GYRO_SAGITTAL) &&
              s.sensor_failures == 0,
          "a lost heel sample with the gyro: HEEL_LOST, the gyro valid, no sensor failure");
    for (uint32_t k = 43; k < 43 + SENSOR_FAIL_LIMIT - 1; k++)
        session_sample(&s, k, k % 2 ? NULL : &no_gyro, 200);
    check(s.session, "a few readings missing: no fault yet");
    sent_count = 0;
    session_sample(&s, 47, &no_gyro, 200);
    check(!s.session && sent_count == 1 && sent[0][0] == T_FAULT && sent[0][2] == FAULT_SENSOR,
          "%d readings without the gyro: FAULT SENSOR", SENSOR_FAIL_LIMIT);
}

int main(void)
{
    test_crc();
    test_cobs();
    test_frame_encode();
    test_receiver();
    test_limits();
    test_config();
    test_pulse_plans();
    test_hello();
    test_sequence_and_types();
    test_stim();
    test_timeouts();
    test_timeout_from_arrival();
    test_widen_ms();
    test_duty();
    test_samples_and_truth();
    printf("%d checks, %d failed\n", checks, failures);
    return failures;
}
