/* Pulse plans: see pulse_plan.h. */
#include "pulse_plan.h"

#include "board.h"

_Static_assert(SETTING_MIN_PULSE_WIDTH_US * PULSE_TICKS_PER_US >= PULSE_MIN_PHASE_TICKS,
               "a setting that delivers has a phase the engine times exactly");

/* The DAC count of the leading phase's current, rounded down: a step of the DAC is
 * 20 uA, the wire's 10 uA, so rounding to the nearest would deliver 10 uA more than the
 * setting the limits accepted (35.01 mA as 35.02 mA, a board limit of 35.01 mA exceeded). */
static uint16_t dac_count(uint32_t ua)
{
    uint32_t count = ua / DAC_UA_PER_COUNT;
    return count > DAC_MAX_COUNT ? DAC_MAX_COUNT : (uint16_t)count;
}

void pulse_plan(const setting_t *s, pulse_plan_t *plan)
{
    plan->delivers = setting_delivers(s);
    if (!plan->delivers) {
        plan->cathodic_ticks = plan->gap_ticks = plan->anodic_ticks = 0;
        plan->cathodic_dac = plan->anodic_dac = 0;
        plan->period_ticks = 0;
        return;
    }
    /* At least PULSE_MIN_PHASE_TICKS: a shorter setting delivers nothing (limits.h),
     * never a lengthened phase, which would carry more charge than asked for. */
    uint32_t cathodic = (uint32_t)s->pulse_width_us * PULSE_TICKS_PER_US;
    uint32_t anodic = (cathodic * s->ratio_x100 + 50u) / 100u;
    if (anodic < cathodic)
        anodic = cathodic;
    plan->cathodic_ticks = (uint16_t)cathodic;
    plan->anodic_ticks = (uint16_t)anodic;
    plan->gap_ticks = (uint16_t)(s->gap_us * PULSE_TICKS_PER_US);
    uint32_t cathodic_ua = (uint32_t)s->amplitude_10ua * 10u;
    plan->cathodic_dac = dac_count(cathodic_ua);
    /* Anodic current from the delivered cathodic charge, DAC x ticks equal, rounded down:
     * the recovery phase never carries more charge than the leading one, which the limits
     * bound (to the nearest, until 2.2.4: 40 mA x 500 us at ratio 3.33 put 20.013 uC in
     * the recovery phase under a 20 uC limit). It carries less by under one count over
     * the anodic width (20 uA x 1665 us = 33 nC there). */
    uint32_t charge = (uint32_t)plan->cathodic_dac * cathodic; /* counts x ticks */
    uint32_t anodic_dac = charge / anodic;
    plan->anodic_dac = anodic_dac > DAC_MAX_COUNT ? DAC_MAX_COUNT : (uint16_t)anodic_dac;
    /* 1 / (frequency_chz / 100) s = 2e8 / frequency_chz ticks. */
    plan->period_ticks = (200000000UL + s->frequency_chz / 2) / s->frequency_chz;
}
