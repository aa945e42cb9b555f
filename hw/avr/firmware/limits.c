/* The board's own limits: see limits.h. */
#include "limits.h"

/* Bounds of a stored configuration (the compiled values are the loosest allowed). */
#define COMM_TIMEOUT_MIN_MS 10
#define COMM_TIMEOUT_MAX_MS 500
#define ON_TIME_MIN_MS 100
#define DUTY_MIN_PERMILLE 100

const board_config_t limits_default_config = {
    .board_id = 1,
    .sample_rate_hz = 500,
    .comm_timeout_ms = 100,
    .max_on_time_ms = 3000,
    .max_amplitude_10ua = 6000, /* 60 mA */
    .max_pulse_width_us = 500,
    .max_frequency_chz = 6000, /* 60 Hz */
    .max_gap_us = 500,
    .max_ratio_x100 = 1000, /* 10.00 */
    .max_charge_cuc = 3000, /* 30 uC: 60 mA x 500 us, the two limits above together */
    .max_duty_permille = 800, /* 80 % of 10 s: the host's default safety.max_duty_cycle */
};

/* 10 uA x 1 us = 10 pC; 0.01 uC = 10 000 pC. */
#define PC10_PER_CUC 1000UL

/* --- limits ------------------------------------------------------------------------- */

uint8_t setting_delivers(const setting_t *s)
{
    return s->on && s->amplitude_10ua && s->pulse_width_us >= SETTING_MIN_PULSE_WIDTH_US &&
           s->frequency_chz;
}

uint8_t limits_check_setting(const board_config_t *cfg, const setting_t *s)
{
    if (!s->on)
        return ACK_OK;
    if (s->amplitude_10ua > cfg->max_amplitude_10ua)
        return ACK_OVER_AMPLITUDE;
    if (s->pulse_width_us > cfg->max_pulse_width_us)
        return ACK_OVER_PULSE_WIDTH;
    if (s->frequency_chz > cfg->max_frequency_chz)
        return ACK_OVER_FREQUENCY;
    if (s->gap_us > cfg->max_gap_us)
        return ACK_OVER_INTERPHASE_GAP;
    if (s->ratio_x100 < 100 || s->ratio_x100 > cfg->max_ratio_x100)
        return ACK_BAD_WIDTH_RATIO;
    if ((uint32_t)s->amplitude_10ua * s->pulse_width_us >
        (uint32_t)cfg->max_charge_cuc * PC10_PER_CUC)
        return ACK_OVER_CHARGE;
    return ACK_OK;
}

uint8_t limits_config_valid(const board_config_t *cfg)
{
    const board_config_t *d = &limits_default_config;
    if (cfg->sample_rate_hz != d->sample_rate_hz)
        return 0;
    if (cfg->comm_timeout_ms < COMM_TIMEOUT_MIN_MS || cfg->comm_timeout_ms > COMM_TIMEOUT_MAX_MS)
        return 0;
    if (cfg->max_on_time_ms < ON_TIME_MIN_MS || cfg->max_on_time_ms > d->max_on_time_ms)
        return 0;
    if (cfg->max_amplitude_10ua > d->max_amplitude_10ua ||
        cfg->max_pulse_width_us > d->max_pulse_width_us ||
        cfg->max_frequency_chz > d->max_frequency_chz || cfg->max_gap_us > d->max_gap_us ||
        cfg->max_ratio_x100 > d->max_ratio_x100 || cfg->max_ratio_x100 < 100 ||
        cfg->max_charge_cuc > d->max_charge_cuc || !cfg->max_charge_cuc)
        return 0;
    if (cfg->max_duty_permille < DUTY_MIN_PERMILLE || cfg->max_duty_permille > d->max_duty_permille)
        return 0;
    if (!cfg->max_frequency_chz)
        return 0;
    /* The longest pulse must end before the next one at the highest frequency:
     * width x (1 + ratio) + gap < 1e8 / max_frequency_chz us. */
    uint32_t longest = (uint32_t)cfg->max_pulse_width_us * (100u + cfg->max_ratio_x100) / 100u +
                       cfg->max_gap_us;
    return longest < 100000000UL / cfg->max_frequency_chz;
}

