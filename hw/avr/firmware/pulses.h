/*
 * The pulse engine: biphasic pulses of both channels from one current source, timed by
 * Timer1 in 0.5 us ticks. Every edge of a pulse is a compare-match output of the timer
 * (OC1A the cathodic phase line, OC1B the anodic), armed ahead of its time, so phase
 * widths and gaps are exact to the tick whatever the interrupt latency; Timer1's
 * compare C only wakes the engine to arm the next edges. Pulses of the two channels
 * never overlap: one that falls due while the other's is in progress starts after it.
 *
 * A new setting applies from the channel's next pulse; a pulse in progress is always
 * completed, so every pulse is charge balanced (pulse_plan.h). A channel switched on
 * fires its first pulse at once (within 0.1 ms), then one every period.
 */
#ifndef FES_PULSES_H
#define FES_PULSES_H

#include <stdint.h>

#include "session.h"

void pulses_init(void);
/* The channel's new setting (main loop; the setting passed the board's limits). */
void pulses_set(uint8_t channel, const setting_t *setting);
/* The most a phase line may have stayed on past its planned edge since the last call
 * (main loop), in 0.5 us ticks, an upper bound (0: no edge was missed; saturates at
 * 255): since 2.2.6, where the engine armed an edge after its time and forced the line
 * (FOC1x), or found a line still on at a pulse's end. */
uint8_t pulses_take_stretch(void);

#endif
