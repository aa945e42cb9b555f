/*
 * From a channel's setting (wire units) to what the pulse engine and the current DAC
 * need: phase lengths in timer ticks (0.5 us), the DAC counts of both phases and the
 * period. Portable, so the host tests check the charge balance of every plan.
 *
 * The cathodic current is the setting's rounded down to a DAC count (20 uA; the wire's
 * step is 10 uA), never above what the board's limits accepted.
 *
 * Charge balance (docs/protocol.md section 5): the anodic phase lasts the cathodic
 * width x ratio / 100, rounded to the tick, and its current is set from the rounded
 * widths so that current x width is the same in both phases, rounded down to a DAC count
 * (since 2.2.5; to the nearest before): the recovery phase never carries more charge
 * than the leading one, which the board's charge limit bounds, and less by under one DAC
 * count (20 uA) over the anodic width. The output stage's DC-blocking capacitor takes up
 * that rest, as in clinical stimulators.
 */
#ifndef FES_PULSE_PLAN_H
#define FES_PULSE_PLAN_H

#include <stdint.h>

#include "limits.h"

typedef struct {
    uint8_t delivers;
    uint16_t cathodic_ticks;
    uint16_t gap_ticks;
    uint16_t anodic_ticks;
    uint16_t cathodic_dac;
    uint16_t anodic_dac;
    uint32_t period_ticks;
} pulse_plan_t;

/* The plan of a setting that passed the board's limits (limits_check_setting). */
void pulse_plan(const setting_t *s, pulse_plan_t *plan);

#endif
