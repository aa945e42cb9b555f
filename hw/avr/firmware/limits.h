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
    ACK_OVER_INTERPHASE_GAP = 9, ACK_BAD_WIDTH_RATIO = 10, ACK_OVER_CHARGE = 11,
};

/* The shortest leading phase the board delivers (the pulse engine times no shorter one
 * exactly, board.h). A setting whose pulse width is shorter delivers nothing: lengthening
 * it would deliver more charge than the host asked for (4 us instead of 1 us is 0.24 uC
 * instead of 0.06 uC at 60 mA), and such a pulse is far below any motor threshold. */
#define SETTING_MIN_PULSE_WIDTH_US 4

/* One channel's setting in wire units (docs/protocol.md section 5). */
typedef struct {
    uint8_t on;
    uint16_t amplitude_10ua;
    uint16_t pulse_width_us;
    uint16_t frequency_chz;
    uint16_t gap_us;
    uint16_t ratio_x100;
} setting_t;

/* Nonzero when the setting produces pulses: on, with an amplitude, a frequency and a
 * pulse width of at least SETTING_MIN_PULSE_WIDTH_US. */
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
    /* Charge per phase: amplitude x pulse width of the leading phase (the recovery
     * phase carries the same charge by construction), in 0.01 uC (3000 = 30 uC). */
    uint16_t max_charge_cuc;
    /* Cumulative on-time: the most of the last LIMITS_DUTY_WINDOW_MS a channel may
     * deliver pulses, in 0.1 % (800 = 80 %). */
    uint16_t max_duty_permille;
} board_config_t;

/* The window of the cumulative on-time (duty cycle) limit: 10 s, as the host's. */
#define LIMITS_DUTY_WINDOW_MS 10000u

/* The compiled configuration (limits a stored configuration may only tighten). */
extern const board_config_t limits_default_config;
/* The ACK code of one setting against the board's limits: ACK_OK or the first limit
 * it breaks, in the order of docs/protocol.md (amplitude, width, frequency, gap, ratio,
 * charge per phase).
 * A setting that is off is always OK. */
uint8_t limits_check_setting(const board_config_t *cfg, const setting_t *s);
/* Nonzero when cfg is a configuration the board may run: every limit at or below the
 * compiled one, the timeout and on-time within their bounds, and the longest pulse the
 * limits allow shorter than the shortest period. */
uint8_t limits_config_valid(const board_config_t *cfg);

#endif
