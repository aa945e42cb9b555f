/* Board clock: see clock.h. */
#include "clock.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/atomic.h>

#include "sensors.h"
#include "uart.h"

#define TICKS_PER_MS 2000u

static volatile uint32_t ms;
static volatile uint8_t ticked;
static volatile uint8_t grid_period, grid_countdown;
static volatile uint32_t grid_index;
static volatile uint8_t grid_on;

void clock_init(void)
{
    TCCR5A = 0;
    OCR5A = TICKS_PER_MS - 1;
    TIMSK5 = _BV(OCIE5A);
    TCCR5B = _BV(WGM52) | _BV(CS51); /* CTC on OCR5A, clock / 8 */
}

/* The host's receiver is taken at the top and after a reading starts (since 2.2.4): this
 * interrupt takes 125 cycles (180 at a grid point), mostly saving and restoring registers
 * for its calls, and a host byte that came at its entry waited it out, and then the pulse
 * engine's interrupt, before the receive interrupt read it (up to 15.4 us in the bench's
 * runs; docs/hardware.md, Budgets). */
ISR(TIMER5_COMPA_vect)
{
    uart_drain_host();
    ms++;
    ticked = 1;
    if (grid_on && --grid_countdown == 0) {
        grid_countdown = grid_period;
        sensors_start(grid_index++);
        uart_drain_host();
    }
}

/* The millisecond count with interrupts disabled, a tick whose interrupt has not run yet
 * (pending: the counter wrapped to a low value) included; *ticks gets the counter. */
static uint32_t ms_now(uint16_t *ticks)
{
    uint32_t now = ms;
    *ticks = TCNT5;
    if ((TIFR5 & _BV(OCF5A)) && *ticks < TICKS_PER_MS / 2)
        now++;
    return now;
}

uint32_t clock_ms(void)
{
    uint32_t now;
    uint16_t ticks;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { now = ms_now(&ticks); }
    return now;
}

uint32_t clock_us(void)
{
    uint32_t now;
    uint16_t ticks;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { now = ms_now(&ticks); }
    return now * 1000u + ticks / 2u;
}

uint32_t clock_grid_start(uint8_t period_ms)
{
    uint32_t t0;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        t0 = (ms + 1) * 1000u;
        grid_period = period_ms;
        grid_countdown = 1;
        grid_index = 0;
        grid_on = 1;
    }
    return t0;
}

uint8_t clock_ticked(void)
{
    uint8_t was;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        was = ticked;
        ticked = 0;
    }
    return was;
}

uint8_t clock_tick_pending(void) { return ticked; }
