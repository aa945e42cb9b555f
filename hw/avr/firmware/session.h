/*
 * The board's side of docs/protocol.md (sections 3 to 8) as a portable state machine:
 * handshake and version negotiation, sequence numbers and acknowledgements, the board's
 * own limits, the communication timeout, the continuous on-time and duty-cycle limits,
 * the sample stream, STATUS, FAULT and the relay of a simulator's ground truth. Written after the
 * Python reference (hw/firmware.py) rule for rule; the AVR firmware (main.c) and the
 * host unit tests (hw/avr/test) drive the same code.
 *
 * No clock of its own: every entry point takes the board's time. No I/O: frames go out
 * through session_hal_send, settings through session_hal_output.
 */
#ifndef FES_SESSION_H
#define FES_SESSION_H

#include <stdint.h>

#include "limits.h"

#define SESSION_CHANNELS 2
/* STATUS state bits 2-7: the longest phase stretch since the previous STATUS, in 0.5 us
 * ticks, saturating here (31.5 us or more). */
#define STATUS_STRETCH_MAX 63u
/* Newest protocol version spoken; every older one too. */
#define SESSION_PROTOCOL_VERSION 4
#define SESSION_SHAPED_VERSION 2
/* The first version whose INFO carries the board's charge-per-phase limit. */
#define SESSION_CHARGE_VERSION 4
#define FIRMWARE_MAJOR 2
#define FIRMWARE_MINOR 2
#define FIRMWARE_PATCH 6

/* Frame types. */
enum {
    T_HELLO = 0x01, T_START_STREAM = 0x02, T_STOP_STREAM = 0x03, T_STIM = 0x04,
    T_STOP_ALL = 0x05, T_HEARTBEAT = 0x06, T_GET_STATUS = 0x07, T_STIM_SHAPED = 0x08,
    T_DEBUG_TRUTH = 0x3F,
    T_INFO = 0x81, T_ACK = 0x82, T_SAMPLE = 0x83, T_STATUS = 0x84, T_FAULT = 0x85,
    T_TRUTH_EVENT = 0xC1, T_TRUTH_SAMPLES = 0xC2,
    /* Debug port only (simulator to board): one truth row of one sample. */
    T_TRUTH_ROW = 0xC3,
};

/* ACK codes. */
enum {
    ACK_UNKNOWN_TYPE = 1, ACK_BAD_LENGTH = 2, ACK_BAD_CHANNEL = 3, ACK_NOT_READY = 7,
    ACK_STALE_SEQ = 8,
};

/* FAULT codes. */
enum {
    FAULT_NONE = 0, FAULT_COMM_TIMEOUT = 1, FAULT_ON_TIME = 2, FAULT_SENSOR = 3, FAULT_DUTY = 4,
    FAULT_RX_LOST = 5,
};

/* Capability bits of INFO. */
enum { CAP_HEEL_SWITCH = 0x01, CAP_HEEL_FORCE = 0x02, CAP_DEBUG_TRUTH = 0x04 };

/* SAMPLE flags. */
enum {
    FLAG_HEEL_CONTACT = 0x01, FLAG_GYRO_SAGITTAL = 0x02, FLAG_GYRO_OTHER = 0x04,
    FLAG_ACCEL = 0x08, FLAG_HEEL_LOST = 0x10,
};
#define FORCE_ABSENT 0xFFFFu

/* One sensor reading of the front end, in wire units. */
typedef struct {
    int16_t gyro[3];
    uint16_t heel_force_dn;
    uint8_t flags;
} sensor_sample_t;

#define TRUTH_ROW_BYTES 7
#define TRUTH_MAX_ROWS 32
#define TRUTH_EVENT_QUEUE 4
#define RTT_MEMORY 32
/* Cumulative on-time: milliseconds on per 100 ms bucket, over DUTY_BUCKETS buckets (the
 * one filling and the 100 before it: 10.0-10.1 s, never less than the host's 10 s). */
#define DUTY_BUCKET_MS 100u
#define DUTY_BUCKETS 101u
/* Consecutive samples without a gyro reading that make a sensor fault. */
#define SENSOR_FAIL_LIMIT 5

typedef struct {
    board_config_t cfg;
    uint8_t session;
    uint8_t version;
    uint8_t streaming;
    uint8_t truth_enabled;
    uint8_t truth_source; /* a truth source has spoken on the debug port */
    uint8_t fault;        /* last fault, reported until the next HELLO */
    uint8_t last_seq;
    uint8_t tx_seq;
    uint32_t last_rx_ms; /* arrival of the last frame that kept the session alive */
    uint32_t now_ms; /* the latest board time an entry point was given */
    setting_t out[SESSION_CHANNELS];
    uint8_t on_timed[SESSION_CHANNELS]; /* on_since_ms is valid */
    uint32_t on_since_ms[SESSION_CHANNELS];
    /* cumulative on-time (kept across sessions: a new HELLO does not rest a muscle) */
    uint8_t duty_ms[SESSION_CHANNELS][DUTY_BUCKETS];
    uint16_t duty_sum_ms[SESSION_CHANNELS];
    uint8_t duty_slot;          /* the bucket filling */
    uint32_t duty_counted_ms;   /* the last millisecond counted */
    uint32_t duty_next_bucket_ms; /* when the next one starts (a multiple of 100 ms) */
    uint16_t duty_limit_ms;     /* max_duty_permille of the window, from session_init */
    uint16_t rx_frames, rx_bad, refused;
    uint8_t stretch_ticks; /* session_pulse_stretched since the last STATUS */
    uint32_t next_status_ms;
    /* sample grid */
    uint8_t grid_started;
    uint32_t grid_t0_us;
    uint32_t sample_period_us;
    uint32_t next_index;
    uint8_t sensor_failures;
    /* round trips */
    uint32_t sent_index[RTT_MEMORY];
    uint32_t sent_us[RTT_MEMORY];
    uint8_t sent_valid[RTT_MEMORY];
    uint8_t answered_any;
    uint32_t answered;
    uint32_t rtt_last_us, rtt_max_us;
    /* ground truth relay */
    uint8_t truth_events[TRUTH_EVENT_QUEUE][5];
    uint8_t truth_event_count;
    uint32_t truth_first;
    uint8_t truth_count;
    uint8_t truth_rows[TRUTH_MAX_ROWS * TRUTH_ROW_BYTES];
    uint16_t truth_dropped;
} session_t;

void session_init(session_t *s, const board_config_t *cfg);
/* A valid frame (type, seq, payload, CRC: n bytes) from the host, acted on at board time
 * now_ms / now_us; its delimiter arrived at arrived_ms (<= now_ms: it may have waited
 * behind others), from which the communication timeout counts (docs/protocol.md
 * section 6: "arrives"). */
void session_frame(session_t *s, const uint8_t *frame, uint16_t n, uint32_t arrived_ms,
                   uint32_t now_ms, uint32_t now_us);
/* A bad frame from the host (framing, CRC): counted only. */
void session_bad_frame(session_t *s);
/* Bytes from the host were lost (a full receive buffer, or the chip's receiver: a data
 * overrun, a frame error), after every frame before them was served, at board time
 * now_us: they may have held a STOP_ALL, so every output goes off; in a session, FAULT
 * RX_LOST ends it (since 2.2.4: until then the outputs went off unannounced, and the
 * host's next STIM switched them on again). */
void session_rx_lost(session_t *s, uint32_t now_us);
/* Every millisecond: the communication timeout, the on-time and duty limits, STATUS. A
 * millisecond whose tick was missed (the main loop busy for longer) is counted by the
 * next call all the same. */
void session_tick_ms(session_t *s, uint32_t now_ms, uint32_t now_us);
/* Grid point index of the sample grid: the front end's reading (its flags say which
 * sensors read: a reading without the gyro, an I2C failure, still carries the heel
 * switch and force it read), or NULL when it gave none (sent as lost: no gyro, heel
 * switch lost, force absent). Sends SAMPLE while streaming; SENSOR_FAIL_LIMIT samples
 * in a row without a gyro reading end the session with FAULT SENSOR. */
void session_sample(session_t *s, uint32_t index, const sensor_sample_t *reading,
                    uint32_t now_ms);
/* A valid frame from the debug port (a simulator's truth source). */
void session_truth_frame(session_t *s, const uint8_t *frame, uint16_t n);
/* The pulse engine let a phase line stay on up to `ticks` (0.5 us) past its planned end
 * (it forced the line off late): the longest since the last STATUS goes out in STATUS's
 * state bits 2-7 (since 2.2.6; docs/protocol.md section 5). */
void session_pulse_stretched(session_t *s, uint8_t ticks);
/* Bit c set: channel c is switched on with a setting that delivers. */
uint8_t session_outputs_on(const session_t *s);

/* Platform hooks. */
void session_hal_send(const uint8_t *body, uint8_t n);
void session_hal_output(uint8_t channel, const setting_t *setting);
/* The sample grid starts now (the first START_STREAM); grid point 0 is at t0_us. */
uint32_t session_hal_grid_start(void);

#endif
