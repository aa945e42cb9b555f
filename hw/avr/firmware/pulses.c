/* Pulse engine: see pulses.h. */
#include "pulses.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/atomic.h>

#include "board.h"
#include "pulse_plan.h"
#include "uart.h"

/* Engine timing, in ticks of 0.5 us. */
#define T_PREP_LEAD 200u   /* DAC, channel select and arming, 100 us before the pulse */
#define T_LEAD 48u         /* wake 24 us before an edge whose successor must be armed */
#define T_SPACING 40u      /* 20 us between the end of one pulse and the next */
#define T_WAIT_MAX 0x3000u /* the longest the engine sleeps between plans (6.1 ms) */
#define T_AHEAD 6u         /* a compare armed closer than this to now could be missed */
/* spin_until's last polls: a poll of both receivers may start only more than
 * T_QUIET_BOTH ticks before the tick it waits for, one of the host's alone only more than
 * T_QUIET_HOST; closer, it only reads the counter (~12 cycles a turn). A poll costs up to
 * ~165 and ~115 cycles with its loop's check (uart.h), so it runs at most ~20 cycles past
 * the tick, inside the ~24 the arming after it has to spare (tests/test_avr_board.py,
 * PULSE_TEST_ARM_DELAY_CYCLES). 2.2.4 polled both until 8 ticks (64 cycles) before: a
 * host delimiter and a debug byte taken there ran ~90 cycles past the tick, and the edge
 * armed after it (a 4 us phase, PULSE_MIN_PHASE_TICKS, ends 56 cycles after the tick
 * waited for) came late: the line stayed on until the counter came round (32.8 ms).
 * The cost: the host's receiver is not read for up to ~2 x T_QUIET_HOST ticks where a
 * short phase's two waits follow each other (13 us; 16 ticks made it 17-19.75 us in the
 * relayed walks of tests/test_avr_e2e.py, 2.2.4 13.2-14.9 us). */
#define T_QUIET_BOTH 20u
#define T_QUIET_HOST 12u

/* Tests only: cycles the engine idles after it has seen the anodic phase begin, before it
 * arms its end (a late engine, as a slower build or a poll run long makes it; the shipped
 * build has none). tests/test_avr_board.py builds the firmware with it set. */
#ifndef PULSE_TEST_ARM_DELAY_CYCLES
#define PULSE_TEST_ARM_DELAY_CYCLES 0
#endif
/* Tests only: cycles choose() idles after it has read the time (in steps of 100, the
 * host's receiver drained after each), as a planning slowed by a host's burst (every
 * byte drained on the way) is: a pulse planned "at once" then misses its preparation
 * deadline (the shipped build has none). */
#ifndef PULSE_TEST_PLAN_DELAY_CYCLES
#define PULSE_TEST_PLAN_DELAY_CYCLES 0
#endif

/* Timer1 compare outputs: set or clear the phase line on the match; C has no pin. */
#define COM_A_SET (_BV(COM1A1) | _BV(COM1A0))
#define COM_A_CLEAR _BV(COM1A1)
#define COM_B_SET (_BV(COM1B1) | _BV(COM1B0))
#define COM_B_CLEAR _BV(COM1B1)

#define CTRL_HIGH(bit) (PORTC |= _BV(bit))
#define CTRL_LOW(bit) (PORTC &= (uint8_t)~_BV(bit))
#define PROF_HIGH() (PORTG |= _BV(BIT_PROF_PULSE))
#define PROF_LOW() (PORTG &= (uint8_t)~_BV(BIT_PROF_PULSE))

/* Engine states: the engine's compare C wakes it in each. */
enum { E_IDLE, E_WAIT, E_PREP, E_START, E_ANOD, E_END };

typedef struct {
    pulse_plan_t active;  /* the setting in force */
    pulse_plan_t pending; /* a setting that applies when the pulse in progress ends */
    uint8_t has_pending;
    uint32_t next_due; /* tick of the channel's next pulse */
} chan_t;

static chan_t ch[SESSION_CHANNELS];
static volatile uint8_t state = E_IDLE;
static uint8_t cur;                /* channel of the planned or running pulse */
static uint16_t e1, e2, e3, e4;    /* its edges: cathodic on, off, anodic on, off */
static uint32_t pulse_start;       /* its start on the 32-bit tick count */
static uint32_t pulse_due;         /* the due time it was planned from */
static uint32_t last_end;          /* end of the last pulse */
static volatile uint16_t overflows;
static volatile uint8_t stretch_ticks; /* pulses_take_stretch */
static uint16_t dac_written[2] = {0xFFFFu, 0xFFFFu};

static const uint8_t sel_bit[SESSION_CHANNELS] = {BIT_SEL0, BIT_SEL1};
static const uint8_t act_bit[SESSION_CHANNELS] = {BIT_ACT0, BIT_ACT1};

ISR(TIMER1_OVF_vect) { overflows++; }

/* 32-bit tick count (interrupts disabled). */
static uint32_t now32(void)
{
    uint16_t lo = TCNT1;
    uint16_t hi = overflows;
    if ((TIFR1 & _BV(TOV1)) && lo < 0x8000u)
        hi++;
    return ((uint32_t)hi << 16) | lo;
}

/* The engine's next wake-up, at tick t. Its interrupt stays enabled (a match in the idle
 * state does nothing), so no flag is ever cleared by hand: simavr 1.6 clears every flag
 * of TIFR1 on any write to it, the overflow's too, which would lose 32.8 ms of time. */
static void wake(uint16_t t)
{
    uint16_t now = TCNT1;
    if ((int16_t)(t - now) < (int16_t)T_AHEAD)
        t = (uint16_t)(now + T_AHEAD);
    if (t == 0xFFFFu)
        t = 0; /* simavr misses a match at the free-running counter's top */
    OCR1C = t;
}

/* Eight bits to the DAC, most significant first (SCK left low). Inlined, no call in its
 * loop: 16 cycles a bit, as the 16-bit loop before it. */
static inline __attribute__((always_inline)) void dac_byte(uint8_t byte)
{
    for (uint8_t i = 0; i < 8; i++) {
        if (byte & 0x80u)
            CTRL_HIGH(BIT_DAC_SDI);
        else
            CTRL_LOW(BIT_DAC_SDI);
        CTRL_HIGH(BIT_DAC_SCK);
        byte = (uint8_t)(byte << 1);
        CTRL_LOW(BIT_DAC_SCK);
    }
}

/* A 16-bit word to the DAC, with interrupts off. Until 2.2.4 one loop over 16 bits took
 * 256 cycles (16 us, not the 10 us docs/hardware.md said) with no read of the host's
 * receiver: a host byte waited up to 17.3 us there in the relayed walks. Now the
 * receiver is taken between the two bytes (uart_drain_host, bounded): the MCP4822 takes
 * SDI on SCK's rising edges while /CS is low and has no lower limit on the clock rate, so
 * a pause with SCK low changes nothing on its side (Microchip, MCP4802/4812/4822 data
 * sheet, 2010). A call inside one 16-bit loop made each word 360 cycles, too slow for the
 * first pulse after a switch-on (it went out 114 us late, replanned). */
static void dac_word(uint16_t word)
{
    CTRL_LOW(BIT_DAC_CS);
    dac_byte((uint8_t)(word >> 8));
    uart_drain_host();
    dac_byte((uint8_t)word);
    CTRL_HIGH(BIT_DAC_CS);
}

/* The receivers are drained before and after a word (uart_drain_rx). */
static void dac_set(uint8_t which, uint16_t count)
{
    if (dac_written[which] == count)
        return;
    uart_drain_rx();
    dac_word((uint16_t)((which ? DAC_WORD_B : DAC_WORD_A) | count));
    dac_written[which] = count;
    uart_drain_rx();
}

/* The DAC words of a channel about to be switched on, written before adopt() fixes its
 * first pulse "at once" (T_PREP_LEAD + T_AHEAD ahead), so that prep finds them written:
 * from adopt to prep's deadline (T_LEAD + T_AHEAD before the pulse) is 73 us, and the
 * frame path's planning (~43 us) and two words in prep (~35 us with their drains) did not
 * always fit (the first pulse replanned, 114 us late, tests/test_avr_board.py). No pulse
 * is armed here (the caller checks), and prep writes the words of every pulse again if
 * they differ, so the early write changes no current. */
static void dac_prime(const pulse_plan_t *p)
{
    dac_set(0, p->cathodic_dac);
    dac_set(1, p->anodic_dac);
}

static uint8_t in_pulse(void) { return state == E_START || state == E_ANOD || state == E_END; }

/* Channel active lines and the high-voltage enable follow the settings in force. */
static void indicate(void)
{
    uint8_t any = in_pulse();
    for (uint8_t c = 0; c < SESSION_CHANNELS; c++)
        any |= ch[c].active.delivers;
    if (any) /* the supply comes up before a channel's switch closes */
        CTRL_HIGH(BIT_HV_EN);
    for (uint8_t c = 0; c < SESSION_CHANNELS; c++) {
        if (ch[c].active.delivers)
            CTRL_HIGH(act_bit[c]);
        else
            CTRL_LOW(act_bit[c]);
    }
    if (!any) /* and goes down after the last switch opened */
        CTRL_LOW(BIT_HV_EN);
}

static void adopt(uint8_t c)
{
    chan_t *h = &ch[c];
    uint8_t was = h->active.delivers;
    h->active = h->pending;
    h->has_pending = 0;
    uart_drain_host(); /* the copy is 90 cycles, and end() and pulses_set() have more
                        * before and after it (a host byte waited 16.8 us without) */
    if (!was && h->active.delivers)
        h->next_due = now32() + T_PREP_LEAD + T_AHEAD; /* at once */
}

/* Choose the next pulse and wake for it (interrupts disabled, no pulse in progress). */
static void choose(void)
{
    uint32_t now = now32();
#if PULSE_TEST_PLAN_DELAY_CYCLES > 0
    for (uint8_t i = 0; i < PULSE_TEST_PLAN_DELAY_CYCLES / 100; i++) {
        __builtin_avr_delay_cycles(100); /* the host's receiver read between, as the */
        uart_drain_host();               /* burst's drains do: no byte lost to the test */
    }
#endif
    int8_t best = -1;
    uint32_t due = 0;
    for (uint8_t c = 0; c < SESSION_CHANNELS; c++) {
        if (ch[c].active.delivers && (best < 0 || (int32_t)(ch[c].next_due - due) < 0)) {
            best = (int8_t)c;
            due = ch[c].next_due;
        }
    }
    if (best < 0) {
        state = E_IDLE;
        indicate();
        return;
    }
    uint32_t s = due;
    uint32_t earliest = now + T_PREP_LEAD + T_AHEAD;
    if ((int32_t)(s - earliest) < 0)
        s = earliest;
    earliest = last_end + T_SPACING;
    if ((int32_t)(s - earliest) < 0)
        s = earliest;
    if ((int32_t)(s - now) > (int32_t)(T_PREP_LEAD + T_WAIT_MAX)) {
        uart_drain_rx(); /* no pulse planned: no edge to keep (since 2.2.4) */
        state = E_WAIT;
        wake((uint16_t)(now + T_WAIT_MAX));
        indicate();
        return;
    }
    uart_drain_rx(); /* a third of the way through (uart_drain_rx) */
    cur = (uint8_t)best;
    const pulse_plan_t *p = &ch[cur].active;
    for (uint8_t i = 0; i < 4; i++) { /* no edge at 0xFFFF (see wake) */
        e1 = (uint16_t)s;
        e2 = (uint16_t)(e1 + p->cathodic_ticks);
        e3 = (uint16_t)(e2 + p->gap_ticks);
        e4 = (uint16_t)(e3 + p->anodic_ticks);
        if (e1 != 0xFFFFu && e2 != 0xFFFFu && e3 != 0xFFFFu && e4 != 0xFFFFu)
            break;
        s++;
    }
    uart_drain_host(); /* bounded: ~150 cycles from the drain above to the one after
                        * wake() without it (a host byte waited 13.4 us) */
    pulse_start = s;
    pulse_due = due;
    /* The next one a period after this one was due (the channel's own grid). */
    uint32_t next = due + p->period_ticks;
    if ((int32_t)(next - s) <= 0)
        next = s + p->period_ticks;
    ch[cur].next_due = next;
    state = E_PREP;
    /* No drain from here on: a pulse due "at once" is woken for T_AHEAD after now, and
     * a drain here made the first pulse after a switch-on miss its arming and go out
     * 93 us late (tests/test_avr_board.py, its pulses 25 ms apart to the cycle). */
    wake((uint16_t)(s - T_PREP_LEAD));
    uart_drain_host(); /* bounded, after the wake-up is set: 280 cycles from the drain
                        * above to plan()'s without it (a host byte waited 18 us) */
    indicate();
}

/* choose(), the receivers drained before and after it (uart_drain_rx). */
static void plan(void)
{
    uart_drain_rx();
    choose();
    uart_drain_rx();
}

/* Host bytes read in an edge's approach (since 2.2.6), status and byte as read, handed
 * to the receive ring (uart_host_took) once the edge is armed: in 2.2.5 the host's
 * receiver went unread from T_QUIET_HOST ticks before an edge until the interrupt's end,
 * and where a short phase's two waits follow each other a host byte waited up to 14.3 us
 * (python -m controller.bench.avr) or 16.4 us (relayed walks) of the 20.5 us the chip
 * allows. A read into this buffer (~10 cycles) runs until T_QUIET_SIDE ticks before the
 * edge, where one of the receive ring (host_take: up to ~120 cycles with a delimiter)
 * could not. Bytes arrive every 10 us at most: a phase of under 28 us between the two
 * approaches (start() then arm_anodic_end()) brings three at most. */
#define SIDE_MAX 4u
#define T_QUIET_SIDE 3u
static uint8_t side_status[SIDE_MAX], side_byte[SIDE_MAX];
static uint8_t side_n;

static inline __attribute__((always_inline)) void side_take(void)
{
    uint8_t status = UCSR0A;
    if ((status & _BV(RXC0)) && side_n < SIDE_MAX) {
        side_status[side_n] = status;
        side_byte[side_n++] = UDR0;
    }
}

/* The bytes set aside, into the receive ring in their order (the edge is armed). */
static void side_flush(void)
{
    for (uint8_t i = 0; i < side_n; i++)
        uart_host_took(side_status[i], side_byte[i]);
    side_n = 0;
}

/* Busy-wait until tick t has come, serving the receivers while a poll cannot run past it
 * (T_QUIET_BOTH, T_QUIET_HOST), and the host's receiver into the side buffer until
 * T_QUIET_SIDE ticks before it. Always inlined: out of line, its call, pushes, pops and
 * return took ~25 cycles of the ~56 that arm a 4 us phase's end after the tick waited for
 * (2.2.4 built with host_take inlined made the call: the anodic line stayed high 99 ms). */
static inline __attribute__((always_inline)) void spin_until(uint16_t t)
{
    int16_t left;
    while ((left = (int16_t)(t - TCNT1)) > (int16_t)T_QUIET_HOST) {
        if (side_n)
            side_take(); /* bytes set aside are older: none may pass them */
        else if (left > (int16_t)T_QUIET_BOTH)
            uart_poll_rx();
        else
            uart_poll_host();
    }
    while ((int16_t)(t - TCNT1) > (int16_t)T_QUIET_SIDE)
        side_take();
    while ((int16_t)(t - TCNT1) > 0) /* the last approach: ~11 cycles a turn */
        ;
}

/* A line that was still on after its edge at tick `edge` has just been forced low: how
 * far past the edge the counter is now is the most the phase ran long (it was to end as
 * the counter left `edge`, and fell before the counter was read, within the tick read:
 * pulses_take_stretch). Only on the late path: nothing on time pays for it. */
static void note_stretch(uint16_t edge)
{
    uint16_t over = (uint16_t)(TCNT1 - edge);
    if (over > 255u)
        over = 255u;
    if (over > stretch_ticks)
        stretch_ticks = (uint8_t)over;
}

uint8_t pulses_take_stretch(void)
{
    uint8_t ticks;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        ticks = stretch_ticks;
        stretch_ticks = 0;
    }
    return ticks;
}

/* Arm the edge that ends a phase: compare unit `which` (0: OC1A, the cathodic line; 1:
 * OC1B, the anodic) at tick `edge`, the compare outputs' modes `modes`. A match comes
 * when the counter moves on from the compare value (Atmel 2549Q 2014, Timer/Counter1
 * timing diagrams; simavr the same): if the counter is past the edge once it is armed,
 * the match may have come before, and a missed match leaves the line on until the
 * counter comes round (32.8 ms). Then the line is forced to its armed level at once
 * (FOC1x: "an immediate compare match is forced on the waveform generation unit", TCCR1C,
 * same datasheet), which does nothing if the match came after all. */
static inline __attribute__((always_inline)) void end_phase_at(uint8_t which, uint16_t edge,
                                                               uint8_t modes)
{
    if (which)
        OCR1B = edge;
    else
        OCR1A = edge;
    TCCR1A = modes;
    if ((int16_t)(TCNT1 - edge) > 0) {
        /* The line as the match left it, or did not: still on, the match was missed. */
        uint8_t on = PINB & (which ? _BV(PIN_ANODIC_BIT) : _BV(PIN_CATHODIC_BIT));
        TCCR1C = which ? _BV(FOC1B) : _BV(FOC1A);
        if (on) /* reported to the host (STATUS state, since 2.2.6) */
            note_stretch(edge);
    }
}

/* prep's rare path (below), out of line: inlined, its 32-bit sums changed how the
 * compiler laid out the interrupt, and the arming of a 4 us phase's end lost ~20 of its
 * ~24 spare cycles (tests/test_avr_board.py -k them_late failed at 16 cycles late). */
static void __attribute__((noinline)) replan_late(void)
{
    uint32_t later = now32() + 2u * T_PREP_LEAD;
    ch[cur].next_due = (int32_t)(later - pulse_due) > 0 ? later : pulse_due;
    plan();
}

static void prep(void)
{
    const pulse_plan_t *p = &ch[cur].active;
    dac_set(0, p->cathodic_dac);
    dac_set(1, p->anodic_dac);
    uart_drain_host(); /* bounded: dac_set drains only around a word it writes, and from
                        * the interrupt's first drain to its last was 260 cycles without
                        * one (15.3 us waited) */
    if ((int16_t)((uint16_t)(e1 - T_LEAD) - TCNT1) < (int16_t)T_AHEAD) {
        /* Too late to arm this pulse in time: plan it again, with twice the lead. Until
         * 2.2.6 it was planned "at once" again (choose: now + T_PREP_LEAD), and a
         * planning as slow as the one that missed (the drains of a host's burst) missed
         * again, for ever: the engine replanned every 90 us and no pulse went out
         * (tests/test_avr_board.py, PULSE_TEST_PLAN_DELAY_CYCLES). The pulse goes out
         * late instead, and the channel's next ones a period after it. */
        replan_late();
        return;
    }
    for (uint8_t c = 0; c < SESSION_CHANNELS; c++)
        if (c != cur)
            CTRL_LOW(sel_bit[c]);
    CTRL_HIGH(sel_bit[cur]);
    /* Arm both leading edges: the cathodic line rises at e1, the anodic at e3. The
     * compare values first, then the modes, so no earlier match acts on a line. */
    OCR1A = e1;
    OCR1B = e3;
    TCCR1A = COM_A_SET | COM_B_SET;
    state = E_START;
    CTRL_HIGH(BIT_HV_EN);
    wake((uint16_t)(e1 - T_LEAD));
}

/* Inlined into start() as well: a call there, with the pushes of its spin's registers,
 * took ~20 of the cycles between a 4 us anodic phase's start and its end. */
static inline __attribute__((always_inline)) void arm_anodic_end(void)
{
    uint16_t fall = e4; /* read before the wait: every cycle after it counts */
    spin_until((uint16_t)(e3 + 2)); /* the anodic line has risen */
#if PULSE_TEST_ARM_DELAY_CYCLES > 0
    /* In steps of 25 cycles, each an idle and a read of the host's receiver into the side
     * buffer (as the approach reads it; 8 cycles with the loop when no byte came, 21 more
     * for a byte), so that no host byte is lost to the test: an idle of 100 cycles left
     * the receiver unread long enough to overrun it in 4 of 60 runs (docs/hardware.md).
     * A delay under a step (16 cycles) is a plain idle: its exact cycles are that test's
     * point. */
#if PULSE_TEST_ARM_DELAY_CYCLES >= 25
    for (uint8_t i = 0; i < PULSE_TEST_ARM_DELAY_CYCLES / 25; i++) {
        __builtin_avr_delay_cycles(25 - 8);
        side_take();
    }
#endif
#if PULSE_TEST_ARM_DELAY_CYCLES % 25 > 0
    __builtin_avr_delay_cycles(PULSE_TEST_ARM_DELAY_CYCLES % 25);
#endif
#endif
    end_phase_at(1, fall, COM_A_CLEAR | COM_B_CLEAR);
    state = E_END;
    wake((uint16_t)(e4 + 2));
}

static void start(void)
{
    uint16_t fall = e2; /* read before the wait (arm_anodic_end) */
    spin_until((uint16_t)(e1 + 2)); /* the cathodic line has risen */
    end_phase_at(0, fall, COM_A_CLEAR | COM_B_SET);
    if ((int16_t)(e3 - TCNT1) <= (int16_t)(T_LEAD + 8)) {
        arm_anodic_end();
    } else {
        state = E_ANOD;
        wake((uint16_t)(e3 - T_LEAD));
    }
}

static void end(void)
{
    /* Both phase lines low, whatever the arming did: the pulse is over (its last edge was
     * 2 ticks ago). A line still on here had an edge missed that end_phase_at did not see
     * (none is known); forced, it is on for the interrupt's latency at most, not until the
     * counter comes round. FOC1x acts as a match in the modes set (both clear). */
    uint8_t on = PINB & (_BV(PIN_CATHODIC_BIT) | _BV(PIN_ANODIC_BIT));
    TCCR1A = COM_A_CLEAR | COM_B_CLEAR;
    TCCR1C = _BV(FOC1A) | _BV(FOC1B);
    if (on)
        note_stretch(e4);
    for (uint8_t c = 0; c < SESSION_CHANNELS; c++)
        CTRL_LOW(sel_bit[c]);
    const pulse_plan_t *p = &ch[cur].active;
    last_end = pulse_start + p->cathodic_ticks + p->gap_ticks + p->anodic_ticks;
    state = E_IDLE;
    if (ch[cur].has_pending)
        adopt(cur);
    plan();
}

/* Whether the interrupt must arm an edge in time (its entry may come 24 us before it):
 * then the receivers are only polled, a byte at a time, in its waits. */
static uint8_t edge_near(void) { return state == E_START || state == E_ANOD; }

ISR(TIMER1_COMPC_vect)
{
    PROF_HIGH();
    if (!edge_near())
        uart_drain_rx(); /* bytes that came while another interrupt ran */
    switch (state) {
    case E_WAIT: plan(); break;
    case E_PREP: prep(); break;
    case E_START: start(); break;
    case E_ANOD: arm_anodic_end(); break;
    case E_END: end(); break;
    default: break; /* idle */
    }
    side_flush(); /* before any drain: they are older than what a drain reads */
    if (!edge_near() || state == E_ANOD)
        uart_drain_rx(); /* E_ANOD: its wake-up a phase width and gap off (since 2.2.4) */
    else
        uart_drain_host(); /* bounded, its edges armed: a host byte that came since the
                            * last drain does not wait for this interrupt's return and
                            * the receive interrupt's entry (18.6 us after prep, 2.2.4's
                            * first build) */
    PROF_LOW();
}

void pulses_init(void)
{
    PORTB &= (uint8_t)~(_BV(PIN_CATHODIC_BIT) | _BV(PIN_ANODIC_BIT));
    DDRB |= _BV(PIN_CATHODIC_BIT) | _BV(PIN_ANODIC_BIT);
    PORTC = _BV(BIT_DAC_CS);
    DDRC = 0xFF;
    PORTG &= (uint8_t)~(_BV(BIT_PROF_SAMPLE) | _BV(BIT_PROF_FRAME) | _BV(BIT_PROF_PULSE));
    DDRG |= _BV(BIT_PROF_SAMPLE) | _BV(BIT_PROF_FRAME) | _BV(BIT_PROF_PULSE);
    TCCR1A = COM_A_CLEAR | COM_B_CLEAR;
    TCCR1B = _BV(CS11); /* normal mode, clock / 8: 0.5 us ticks */
    TIMSK1 = _BV(TOIE1) | _BV(OCIE1C);
    dac_set(0, 0);
    dac_set(1, 0);
}

void pulses_set(uint8_t channel, const setting_t *setting)
{
    pulse_plan_t plan_of;
    pulse_plan(setting, &plan_of);
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        if (!in_pulse())
            uart_drain_rx(); /* the frame path's planning: see uart_drain_rx */
        chan_t *h = &ch[channel];
        h->pending = plan_of;
        if (in_pulse() && cur == channel) {
            h->has_pending = 1; /* from the next pulse on */
        } else {
            if (!in_pulse()) {
                uart_drain_rx(); /* see adopt (a host byte waited 14.9 us without) */
                if (plan_of.delivers && !h->active.delivers)
                    dac_prime(&plan_of);
            }
            adopt(channel);
            if (state == E_PREP)
                ch[cur].next_due = pulse_due; /* the planned pulse is planned again */
            if (!in_pulse())
                plan();
            else
                indicate();
        }
    }
}
