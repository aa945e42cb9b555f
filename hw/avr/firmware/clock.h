/*
 * The board clock: Timer5 interrupts every millisecond (16 MHz crystal, 2000 ticks of
 * 0.5 us). It counts milliseconds for the protocol's timers and, once the sample grid
 * has started, starts a sensor reading at every grid point.
 */
#ifndef FES_CLOCK_H
#define FES_CLOCK_H

#include <stdint.h>

void clock_init(void);
/* Milliseconds since power-up, a tick whose interrupt has not run yet counted (since
 * 2.2.2: the receive interrupt and the pulse engine's waits, interrupts disabled, read
 * it too). Callable from an interrupt. */
uint32_t clock_ms(void);
/* The millisecond at or before now_ms whose low 16 bits are low: a time kept in 16 bits
 * (the receive ring's arrival stamps) widened again, exact for times less than 65.536 s
 * ago. Portable (the host tests check it across a wrap). */
static inline uint32_t clock_widen_ms(uint32_t now_ms, uint16_t low)
{
    return now_ms - (uint16_t)((uint16_t)now_ms - low);
}
/* Board clock in microseconds (wraps every 71.6 min). */
uint32_t clock_us(void);
/* Start the sample grid at the next millisecond tick, one grid point every period_ms;
 * returns the board time of grid point 0 in microseconds. */
uint32_t clock_grid_start(uint8_t period_ms);
/* Nonzero (and cleared) once per millisecond tick since the last call. */
uint8_t clock_ticked(void);
/* Nonzero while a tick waits for clock_ticked (interrupts disabled or not). */
uint8_t clock_tick_pending(void);

#endif
