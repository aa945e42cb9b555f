/*
 * The board's own limits (docs/protocol.md sections 5 and 6): a channel's setting in
 * wire units, the board's configuration, and the checks of both. Portable: the
 * firmware, the simavr harness and the host tests share it.
 */
#ifndef FES_LIMITS_H
#define FES_LIMITS_H

#include <stdint.h>

/* ACK codes of the limits (the others are in session.h). */
enum {
    ACK_OK = 0, ACK_OVER_AMPLITUDE = 4, ACK_OVER_PULSE_WIDTH = 5, ACK_OVER_FREQUENCY = 6,
    ACK_OVER_INTERPHASE_GAP = 9, ACK_BAD_WIDTH_RATIO = 10,
};

/* One channel's setting in wire units (docs/protocol.md section 5). */
typedef struct {
    uint8_t on;
    uint16_t amplitude_10ua;
    uint16_t pulse_width_us;
    uint16_t frequency_chz;
    uint16_t gap_us;
    uint16_t ratio_x100;
} setting_t;

/* Nonzero when the setting produces pulses. */
uint8_t setting_delivers(const setting_t *s);

/* The board's configuration: identity and the limits it enforces itself. */
typedef struct {
    uint32_t board_id;
    uint16_t sample_rate_hz;
    uint16_t comm_timeout_ms;
    uint16_t max_on_time_ms;
    uint16_t max_amplitude_10ua;
    uint16_t max_pulse_width_us;
    uint16_t max_frequency_chz;
    uint16_t max_gap_us;
    uint16_t max_ratio_x100;
} board_config_t;

/* The compiled configuration (limits a stored configuration may only tighten). */
extern const board_config_t limits_default_config;
/* The ACK code of one setting against the board's limits: ACK_OK or the first limit
 * it breaks, in the order of docs/protocol.md (amplitude, width, frequency, gap, ratio).
 * A setting that is off is always OK. */
uint8_t limits_check_setting(const board_config_t *cfg, const setting_t *s);
/* Nonzero when cfg is a configuration the board may run: every limit at or below the
 * compiled one, the timeout and on-time within their bounds, and the longest pulse the
 * limits allow shorter than the shortest period. */
uint8_t limits_config_valid(const board_config_t *cfg);

#endif
