/* The board's protocol state machine: see session.h and docs/protocol.md. */
#include "session.h"

#include <string.h>

#include "board.h"

#define STATUS_PERIOD_MS 100
#define ACCEL_FULL_SCALE_G 16
#define INFO_V1_BYTES 28
#define INFO_V2_BYTES 32
#define INFO_V4_BYTES 36

/* --- little-endian helpers ---------------------------------------------------------- */

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | ((uint16_t)p[1] << 8)); }

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint8_t *put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    p = put16(p, (uint16_t)v);
    return put16(p, (uint16_t)(v >> 16));
}

/* --- frames out --------------------------------------------------------------------- */

static uint8_t tx_body[2 + 5 + TRUTH_MAX_ROWS * TRUTH_ROW_BYTES];

static void send(session_t *s, uint8_t type, uint8_t n)
{
    s->tx_seq++;
    tx_body[0] = type;
    tx_body[1] = s->tx_seq;
    session_hal_send(tx_body, (uint8_t)(n + 2));
}

static void ack(session_t *s, const uint8_t *frame, uint8_t code)
{
    uint8_t *p = tx_body + 2;
    p[0] = frame[1];
    p[1] = frame[0];
    p[2] = code;
    send(s, T_ACK, 3);
}

uint8_t session_outputs_on(const session_t *s)
{
    uint8_t mask = 0;
    for (uint8_t c = 0; c < SESSION_CHANNELS; c++)
        if (setting_delivers(&s->out[c]))
            mask |= (uint8_t)(1u << c);
    return mask;
}

static void status(session_t *s, uint32_t now_us)
{
    uint8_t *p = put32(tx_body + 2, now_us);
    *p++ = session_outputs_on(s);
    *p++ = s->fault;
    uint8_t stretch = s->stretch_ticks > STATUS_STRETCH_MAX ? STATUS_STRETCH_MAX : s->stretch_ticks;
    s->stretch_ticks = 0;
    *p++ = (uint8_t)((s->session ? 1 : 0) | (s->streaming ? 2 : 0) | (stretch << 2));
    p = put16(p, s->rx_frames);
    p = put16(p, s->rx_bad);
    p = put16(p, s->refused);
    p = put16(p, s->rtt_last_us > 0xFFFFu ? 0xFFFFu : (uint16_t)s->rtt_last_us);
    put16(p, s->rtt_max_us > 0xFFFFu ? 0xFFFFu : (uint16_t)s->rtt_max_us);
    s->rtt_max_us = 0;
    send(s, T_STATUS, 17);
}

/* --- outputs ------------------------------------------------------------------------ */

static void duty_count(session_t *s, uint32_t upto_ms);

static void set_output(session_t *s, uint8_t c, const setting_t *setting, uint32_t now_ms)
{
    duty_count(s, now_ms - 1u); /* the milliseconds before it, as the outputs were */
    s->out[c] = *setting;
    if (!setting_delivers(setting)) {
        s->on_timed[c] = 0;
    } else if (!s->on_timed[c]) {
        /* From the next millisecond: the pulse engine switches the channel on within
         * this one, and the limit must not cut a train short. */
        s->on_timed[c] = 1;
        s->on_since_ms[c] = now_ms + 1;
    }
    session_hal_output(c, setting);
}

static void all_off(session_t *s)
{
    static const setting_t off = {0, 0, 0, 0, 0, 100};
    for (uint8_t c = 0; c < SESSION_CHANNELS; c++)
        set_output(s, c, &off, s->now_ms);
}

static void truth_reset(session_t *s)
{
    s->truth_count = 0;
    s->truth_event_count = 0;
}

static void fault(session_t *s, uint8_t code, uint8_t channel, uint32_t now_us)
{
    all_off(s);
    s->fault = code;
    s->session = 0;
    s->streaming = 0;
    truth_reset(s);
    uint8_t *p = tx_body + 2;
    p[0] = code;
    p[1] = channel;
    put32(p + 2, now_us);
    send(s, T_FAULT, 6);
}

/* --- receiving ---------------------------------------------------------------------- */

/* Payload length rule of each type: nonzero when n payload bytes fit the type. Board
 * to host types are known too, so that the answer to one sent by a host is as the
 * reference's (UNKNOWN_TYPE for a whole one, BAD_LENGTH for a broken one). */
static uint8_t length_ok(uint8_t type, const uint8_t *payload, uint16_t n)
{
    switch (type) {
    case T_HELLO: case T_DEBUG_TRUTH: return n == 1;
    case T_START_STREAM: case T_STOP_STREAM: case T_STOP_ALL: case T_GET_STATUS:
        return n == 0;
    case T_HEARTBEAT: return n == 4;
    case T_STIM: return n >= 5 && payload[4] && n == 5u + 8u * payload[4];
    case T_STIM_SHAPED: return n >= 5 && payload[4] && n == 5u + 12u * payload[4];
    case T_INFO:
        if (n >= 2 && payload[1] == 1) return n == INFO_V1_BYTES;
        if (n >= 2 && (payload[1] == 2 || payload[1] == 3)) return n == INFO_V2_BYTES;
        if (n >= 2 && payload[1] == 4) return n == INFO_V4_BYTES;
        return n >= INFO_V1_BYTES;
    case T_ACK: return n == 3;
    case T_SAMPLE: return n == 23;
    case T_STATUS: return n == 17;
    case T_FAULT: return n == 6;
    case T_TRUTH_EVENT: return n == 5;
    case T_TRUTH_SAMPLES: return n >= 5 && n == 5u + 7u * payload[4];
    default: return 2; /* unknown type */
    }
}

static uint8_t newer(const session_t *s, uint8_t seq)
{
    uint8_t ahead = (uint8_t)(seq - s->last_seq);
    return ahead >= 1 && ahead <= 127;
}

static uint8_t speaks(uint8_t version)
{
    return version >= 1 && version <= SESSION_PROTOCOL_VERSION;
}

static void hello(session_t *s, const uint8_t *frame, uint32_t arrived_ms)
{
    const board_config_t *c = &s->cfg;
    uint8_t asked = frame[2];
    all_off(s);
    uint8_t reported = s->fault;
    s->session = speaks(asked);
    s->version = s->session ? asked : SESSION_PROTOCOL_VERSION;
    s->streaming = 0;
    s->truth_enabled = 0;
    truth_reset(s);
    s->fault = FAULT_NONE;
    s->last_seq = frame[1];
    s->last_rx_ms = arrived_ms;

    uint8_t *p = tx_body + 2;
    *p++ = frame[1];
    *p++ = s->version;
    *p++ = FIRMWARE_MAJOR;
    *p++ = FIRMWARE_MINOR;
    *p++ = FIRMWARE_PATCH;
    p = put32(p, c->board_id);
    *p++ = SESSION_CHANNELS;
    p = put16(p, c->sample_rate_hz);
    p = put16(p, c->max_amplitude_10ua);
    p = put16(p, c->max_pulse_width_us);
    p = put16(p, c->max_frequency_chz);
    p = put16(p, c->max_on_time_ms);
    p = put16(p, c->comm_timeout_ms);
    p = put16(p, IMU_GYRO_FULL_SCALE_DPS);
    *p++ = ACCEL_FULL_SCALE_G;
    *p++ = IMU_SAGITTAL_AXIS;
    *p++ = (uint8_t)(CAP_HEEL_SWITCH | CAP_HEEL_FORCE | (s->truth_source ? CAP_DEBUG_TRUTH : 0));
    *p++ = reported;
    uint8_t n = INFO_V1_BYTES;
    if (s->version >= SESSION_SHAPED_VERSION) {
        p = put16(p, c->max_gap_us);
        p = put16(p, c->max_ratio_x100);
        n = INFO_V2_BYTES;
    }
    if (s->version >= SESSION_CHARGE_VERSION) {
        p = put16(p, c->max_charge_cuc);
        put16(p, c->max_duty_permille);
        n = INFO_V4_BYTES;
    }
    send(s, T_INFO, n);
}

static void round_trip(session_t *s, uint32_t ref, uint32_t now_us)
{
    if ((s->answered_any && ref <= s->answered) || ref >= s->next_index)
        return;
    uint8_t slot = (uint8_t)(ref % RTT_MEMORY);
    if (!s->sent_valid[slot] || s->sent_index[slot] != ref)
        return;
    s->answered_any = 1;
    s->answered = ref;
    uint32_t rtt = now_us - s->sent_us[slot];
    s->rtt_last_us = rtt;
    if (rtt > s->rtt_max_us)
        s->rtt_max_us = rtt;
}

static void read_setting(const uint8_t *p, uint8_t shaped, setting_t *out)
{
    out->on = p[1];
    out->amplitude_10ua = get16(p + 2);
    out->pulse_width_us = get16(p + 4);
    out->frequency_chz = get16(p + 6);
    out->gap_us = shaped ? get16(p + 8) : 0;
    out->ratio_x100 = shaped ? get16(p + 10) : 100;
}

static uint8_t stim(session_t *s, const uint8_t *payload, uint8_t shaped, uint32_t now_ms)
{
    uint8_t count = payload[4];
    uint8_t item = shaped ? 12 : 8;
    const uint8_t *items = payload + 5;
    uint8_t seen = 0;
    for (uint8_t i = 0; i < count; i++) {
        uint8_t c = items[i * item];
        if (c >= SESSION_CHANNELS || (seen & (1u << c))) {
            s->refused++;
            return ACK_BAD_CHANNEL;
        }
        seen |= (uint8_t)(1u << c);
    }
    uint8_t code = ACK_OK;
    setting_t setting;
    for (uint8_t i = 0; i < count && code == ACK_OK; i++) {
        read_setting(items + i * item, shaped, &setting);
        code = limits_check_setting(&s->cfg, &setting);
    }
    if (code != ACK_OK) {
        /* Nothing of the frame applied, every channel it names switched off. */
        static const setting_t off = {0, 0, 0, 0, 0, 100};
        s->refused++;
        for (uint8_t i = 0; i < count; i++)
            set_output(s, items[i * item], &off, now_ms);
        return code;
    }
    for (uint8_t i = 0; i < count; i++) {
        read_setting(items + i * item, shaped, &setting);
        set_output(s, items[i * item], &setting, now_ms);
    }
    return ACK_OK;
}

static void flush_truth_rows(session_t *s)
{
    if (!s->truth_count)
        return;
    uint8_t *p = put32(tx_body + 2, s->truth_first);
    *p++ = s->truth_count;
    uint16_t bytes = (uint16_t)s->truth_count * TRUTH_ROW_BYTES;
    memcpy(p, s->truth_rows, bytes);
    send(s, T_TRUTH_SAMPLES, (uint8_t)(5 + bytes));
    s->truth_first += s->truth_count;
    s->truth_count = 0;
}

static uint8_t command(session_t *s, const uint8_t *frame, uint16_t n, uint32_t now_ms,
                       uint32_t now_us)
{
    const uint8_t *payload = frame + 2;
    switch (frame[0]) {
    case T_STIM:
    case T_STIM_SHAPED:
        round_trip(s, get32(payload), now_us);
        return stim(s, payload, frame[0] == T_STIM_SHAPED, now_ms);
    case T_HEARTBEAT:
        round_trip(s, get32(payload), now_us);
        return ACK_OK;
    case T_START_STREAM:
        if (!s->grid_started) {
            s->grid_started = 1;
            s->grid_t0_us = session_hal_grid_start();
        }
        s->streaming = 1;
        return ACK_OK;
    case T_STOP_STREAM:
        s->streaming = 0;
        if (s->truth_enabled)
            flush_truth_rows(s);
        truth_reset(s);
        return ACK_OK;
    default: /* T_DEBUG_TRUTH */
        s->truth_enabled = payload[0] != 0;
        (void)n;
        return ACK_OK;
    }
}

void session_frame(session_t *s, const uint8_t *frame, uint16_t n, uint32_t arrived_ms,
                   uint32_t now_ms, uint32_t now_us)
{
    uint8_t type = frame[0];
    const uint8_t *payload = frame + 2;
    uint16_t payload_n = (uint16_t)(n - 4);
    s->now_ms = now_ms;
    s->rx_frames++;
    uint8_t ok = length_ok(type, payload, payload_n);
    if (ok == 2) {
        ack(s, frame, ACK_UNKNOWN_TYPE);
        return;
    }
    if (!ok) {
        ack(s, frame, ACK_BAD_LENGTH);
        return;
    }
    /* Host types only; DEBUG_TRUTH on a board with a truth source; STIM_SHAPED in a
     * session (or before one) of a version that has it. */
    if (type >= 0x80 || (type == T_DEBUG_TRUTH && !s->truth_source) ||
        (type == T_STIM_SHAPED && s->version < SESSION_SHAPED_VERSION)) {
        ack(s, frame, ACK_UNKNOWN_TYPE);
        return;
    }
    if (type == T_HELLO) {
        hello(s, frame, arrived_ms);
        return;
    }
    if (type == T_STOP_ALL) {
        all_off(s);
        if (s->session && newer(s, frame[1])) {
            s->last_seq = frame[1];
            s->last_rx_ms = arrived_ms;
        }
        ack(s, frame, ACK_OK);
        return;
    }
    if (type == T_GET_STATUS) {
        status(s, now_us);
        return;
    }
    if (!s->session) {
        ack(s, frame, ACK_NOT_READY);
        return;
    }
    if (!newer(s, frame[1])) {
        ack(s, frame, ACK_STALE_SEQ);
        return;
    }
    s->last_seq = frame[1];
    s->last_rx_ms = arrived_ms;
    ack(s, frame, command(s, frame, n, now_ms, now_us));
}

void session_bad_frame(session_t *s) { s->rx_bad++; }

void session_pulse_stretched(session_t *s, uint8_t ticks)
{
    if (ticks > s->stretch_ticks)
        s->stretch_ticks = ticks;
}

void session_rx_lost(session_t *s, uint32_t now_us)
{
    if (s->session)
        fault(s, FAULT_RX_LOST, 0xFF, now_us);
    else
        all_off(s);
}

/* --- time --------------------------------------------------------------------------- */

/* The buckets of the duty cycle limit at millisecond m: the bucket of m filling, those
 * that fell out of the window emptied. No division on the way (a 32-bit one costs the
 * AVR some 600 cycles): the buckets start at multiples of 100 ms, found once. */
static void duty_rotate(session_t *s, uint32_t m)
{
    uint8_t n = 0;
    while ((int32_t)(m - s->duty_next_bucket_ms) >= 0) {
        if (++n > DUTY_BUCKETS) { /* a jump past the whole window (the first count) */
            s->duty_next_bucket_ms = (m / DUTY_BUCKET_MS + 1u) * DUTY_BUCKET_MS;
            break;
        }
        s->duty_next_bucket_ms += DUTY_BUCKET_MS;
        s->duty_slot = (uint8_t)(s->duty_slot + 1u == DUTY_BUCKETS ? 0u : s->duty_slot + 1u);
        for (uint8_t c = 0; c < SESSION_CHANNELS; c++) {
            s->duty_sum_ms[c] -= s->duty_ms[c][s->duty_slot];
            s->duty_ms[c][s->duty_slot] = 0;
        }
    }
}

/* Count every millisecond after the last one counted, up to and including upto_ms, for
 * the channels delivering: every millisecond, not every tick seen. The main loop may be
 * busy for more than a millisecond (a frame with the truth relay: 1.1 ms) and then sees
 * one tick for two; counting ticks, 2.2.0 let a channel run some 3 % past the limit.
 * The outputs are as they were since the last count: set_output counts up to the
 * millisecond before it changes one (as the reference firmware, hw/firmware.py). */
static void duty_count(session_t *s, uint32_t upto_ms)
{
    uint32_t todo = upto_ms - s->duty_counted_ms;
    if ((int32_t)todo <= 0)
        return;
    if (todo > (uint32_t)DUTY_BUCKETS * DUTY_BUCKET_MS) /* the first count: all were off */
        todo = (uint32_t)DUTY_BUCKETS * DUTY_BUCKET_MS;
    s->duty_counted_ms = upto_ms;
    uint8_t on = session_outputs_on(s);
    for (uint32_t m = upto_ms - todo + 1u;; m++) {
        duty_rotate(s, m);
        for (uint8_t c = 0; c < SESSION_CHANNELS; c++) {
            if (on & (1u << c)) {
                s->duty_ms[c][s->duty_slot]++;
                s->duty_sum_ms[c]++;
            }
        }
        if (m == upto_ms)
            break;
    }
}

/* The duty cycle limit: count up to this millisecond, and fault when a delivering
 * channel's count over the window exceeds the limit. */
static void duty_tick(session_t *s, uint32_t now_ms, uint32_t now_us)
{
    duty_count(s, now_ms);
    for (uint8_t c = 0; c < SESSION_CHANNELS; c++) {
        if (setting_delivers(&s->out[c]) && s->duty_sum_ms[c] > s->duty_limit_ms) {
            fault(s, FAULT_DUTY, c, now_us);
            break;
        }
    }
}

void session_tick_ms(session_t *s, uint32_t now_ms, uint32_t now_us)
{
    s->now_ms = now_ms;
    if (s->session && (uint32_t)(now_ms - s->last_rx_ms) > s->cfg.comm_timeout_ms)
        fault(s, FAULT_COMM_TIMEOUT, 0xFF, now_us);
    for (uint8_t c = 0; c < SESSION_CHANNELS; c++) {
        if (s->on_timed[c] && (int32_t)(now_ms - s->on_since_ms[c]) > (int32_t)s->cfg.max_on_time_ms) {
            fault(s, FAULT_ON_TIME, c, now_us);
            break;
        }
    }
    duty_tick(s, now_ms, now_us);
    if (s->streaming && (int32_t)(now_ms - s->next_status_ms) >= 0) {
        s->next_status_ms = now_ms + STATUS_PERIOD_MS;
        status(s, now_us);
    }
}

void session_sample(session_t *s, uint32_t index, const sensor_sample_t *reading,
                    uint32_t now_ms)
{
    s->next_index = index + 1;
    s->now_ms = now_ms;
    uint32_t t_us = s->grid_t0_us + index * s->sample_period_us;
    /* No reading at all: every sensor's sample lost, none of them a reading of 0. */
    sensor_sample_t none = {{0, 0, 0}, FORCE_ABSENT, FLAG_HEEL_LOST};
    if (reading == 0 || !(reading->flags & FLAG_GYRO_SAGITTAL)) {
        if (s->sensor_failures < 0xFF)
            s->sensor_failures++;
        if (s->sensor_failures >= SENSOR_FAIL_LIMIT) {
            if (s->session)
                fault(s, FAULT_SENSOR, 0xFF, t_us);
            return;
        }
        if (reading == 0)
            reading = &none;
    } else {
        s->sensor_failures = 0;
    }
    if (!s->streaming)
        return;
    uint8_t slot = (uint8_t)(index % RTT_MEMORY);
    s->sent_index[slot] = index;
    s->sent_us[slot] = t_us;
    s->sent_valid[slot] = 1;
    uint8_t *p = put32(tx_body + 2, index);
    p = put32(p, t_us);
    for (uint8_t a = 0; a < 3; a++)
        p = put16(p, (uint16_t)reading->gyro[a]);
    p = put16(p, 0);
    p = put16(p, 0);
    p = put16(p, 0);
    p = put16(p, reading->heel_force_dn);
    *p = reading->flags;
    send(s, T_SAMPLE, 23);
    /* Truth events go out with the first SAMPLE at or after them. */
    for (uint8_t i = 0; i < s->truth_event_count; i++) {
        uint8_t *e = s->truth_events[i];
        tx_body[2] = e[0];
        put32(tx_body + 3, s->grid_t0_us + get32(e + 1));
        send(s, T_TRUTH_EVENT, 5);
    }
    s->truth_event_count = 0;
}

void session_truth_frame(session_t *s, const uint8_t *frame, uint16_t n)
{
    const uint8_t *payload = frame + 2;
    uint16_t payload_n = (uint16_t)(n - 4);
    s->truth_source = 1;
    uint8_t relaying = s->streaming && s->truth_enabled;
    if (frame[0] == T_TRUTH_EVENT && payload_n == 5) {
        if (!relaying)
            return;
        if (s->truth_event_count < TRUTH_EVENT_QUEUE)
            memcpy(s->truth_events[s->truth_event_count++], payload, 5);
        else
            s->truth_dropped++;
    } else if (frame[0] == T_TRUTH_ROW && payload_n == 4 + TRUTH_ROW_BYTES) {
        if (!relaying) {
            s->truth_count = 0;
            return;
        }
        uint32_t index = get32(payload);
        if (s->truth_count && index != s->truth_first + s->truth_count)
            flush_truth_rows(s);
        if (!s->truth_count)
            s->truth_first = index;
        memcpy(s->truth_rows + (uint16_t)s->truth_count * TRUTH_ROW_BYTES, payload + 4,
               TRUTH_ROW_BYTES);
        if (++s->truth_count == TRUTH_MAX_ROWS)
            flush_truth_rows(s);
    }
}

void session_init(session_t *s, const board_config_t *cfg)
{
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    s->sample_period_us = 1000000UL / cfg->sample_rate_hz;
    s->version = SESSION_PROTOCOL_VERSION;
    for (uint8_t c = 0; c < SESSION_CHANNELS; c++)
        s->out[c].ratio_x100 = 100;
    s->duty_counted_ms = 0xFFFFFFFFu; /* millisecond 0 is the first to count */
    s->duty_limit_ms =
        (uint16_t)((uint32_t)cfg->max_duty_permille * LIMITS_DUTY_WINDOW_MS / 1000u);
}
