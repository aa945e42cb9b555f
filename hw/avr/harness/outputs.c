/*
 * The output stage as it sees the board's pins: the phase lines (OC1A cathodic, OC1B
 * anodic), the channel select and active lines, the high-voltage enable and the current
 * DAC (MCP4822, decoded from its /CS, SCK and SDI pins). Every pulse is measured from
 * the edges to the cycle: its channel, phase widths, gap and currents; the pulses of
 * channel 0 go to the patient's muscle (patient.c) in the next sample period.
 *
 * It also checks what the output stage relies on, and counts every breach in the log
 * ("violations"): a phase line high without the high-voltage supply or on a channel not
 * switched on, not exactly one channel selected, both phase lines high at once, the
 * selection changing within a pulse, a pulse whose two phases do not carry the same
 * charge (to within the DAC's rounding).
 *
 * The timing pins give the cycles of the firmware's sample path, frame path and pulse
 * interrupt, reported at exit with the core's busy fraction.
 */
#include <math.h>
#include <string.h>

#include <avr_ioport.h>
#include <avr_timer.h>

#include "board.h"
#include "harness.h"
#include "session.h"

typedef struct {
    uint64_t rise;
    uint64_t count, total, max;
} timing_t;

typedef struct {
    int active;
    uint64_t pulses;
    double first_s, last_s;
    double min_width_us, max_width_us;
    double gap_us, ratio; /* of the train's last pulse */
    double max_abs_net_nc;
} train_t;

static int cath, anod, sel[SESSION_CHANNELS], act[SESSION_CHANNELS], hv;
static int dac_cs = 1, dac_sck;
static int dac_sdi;
static uint16_t dac_shift;
static int dac_bits;
static uint16_t dac[2];
static uint64_t dac_words;

/* The pulse being measured. */
static int in_pulse, pulse_channel;
static uint64_t c_rise, c_fall, a_rise;
static double c_ma, a_ma;

/* Channel 0's pulses of the current sample period. */
static uint16_t period_count;
static double period_amp_sum, period_width_sum;

static uint64_t pulses[SESSION_CHANNELS];
static train_t train[SESSION_CHANNELS];
static uint64_t violations;
static char first_violation[128] = "";
static double max_abs_net_nc;
static timing_t t_sample, t_frame, t_pulse;
static uint64_t sleep_cycles;
/* A change of the active lines waits for the frame that tells why (the ACK refusing a
 * command or the FAULT follow the switch-off), at most a millisecond. */
static int pending_outputs;
static uint64_t pending_cycle;
static uint8_t pending_mask;
static int pending_hv;

static double cycles_to_us(uint64_t cycles) { return (double)cycles * 1e6 / (double)avr->frequency; }

static void violation(const char *what)
{
    if (!violations++)
        strncpy(first_violation, what, sizeof(first_violation) - 1);
    log_begin("violation");
    log_printf(", \"what\": \"%s\"", what);
    log_end();
}

static int selected(void)
{
    int chosen = -1, n = 0;
    for (int c = 0; c < SESSION_CHANNELS; c++)
        if (sel[c]) {
            chosen = c;
            n++;
        }
    return n == 1 ? chosen : -1;
}

void outputs_flush(int force)
{
    if (!pending_outputs)
        return;
    if (!force && avr->cycle - pending_cycle < avr->frequency / 1000)
        return;
    pending_outputs = 0;
    log_begin_at("outputs", (double)pending_cycle / (double)avr->frequency);
    log_printf(", \"on\": [");
    for (int c = 0, first = 1; c < SESSION_CHANNELS; c++)
        if (pending_mask & (1 << c)) {
            log_printf(first ? "%d" : ", %d", c);
            first = 0;
        }
    log_printf("], \"hv\": %d, \"reason\": \"%s\"", pending_hv, hostlink_reason());
    log_end();
}

/* A change of the active lines or of the supply; changes while one waits join it (the
 * supply follows the switches within microseconds). */
static void log_outputs(void)
{
    if (!pending_outputs)
        pending_cycle = avr->cycle;
    pending_outputs = 1;
    pending_mask = outputs_active();
    pending_hv = hv;
}

static void end_train(int c)
{
    train_t *t = &train[c];
    if (!t->active)
        return;
    t->active = 0;
    log_begin("train");
    log_printf(", \"channel\": %d, \"pulses\": %llu", c, (unsigned long long)t->pulses);
    if (t->pulses)
        log_printf(", \"first_pulse_s\": %.7f, \"last_pulse_s\": %.7f, \"min_width_us\": %.1f, "
                   "\"max_width_us\": %.1f, \"gap_us\": %.1f, \"anodic_ratio\": %.3f, "
                   "\"max_abs_net_charge_nc\": %.2f",
                   t->first_s, t->last_s, t->min_width_us, t->max_width_us, t->gap_us,
                   t->ratio, t->max_abs_net_nc);
    log_end();
}

static void pulse_done(uint64_t a_fall)
{
    in_pulse = 0;
    int c = pulse_channel;
    double w_c = cycles_to_us(c_fall - c_rise), gap = cycles_to_us(a_rise - c_fall);
    double w_a = cycles_to_us(a_fall - a_rise);
    double net_nc = c_ma * w_c - a_ma * w_a;
    /* The firmware rounds the anodic current down to a DAC count (since 2.2.5): the
     * recovery phase carries no more than the leading one, less by under a count (20 uA)
     * over its width; the simulator times an edge to the end of an instruction (up to 4
     * cycles late). */
    double edge_us = 4.0 * 1e6 / (double)avr->frequency;
    double slack = (c_ma + a_ma) * edge_us;
    if (net_nc < -slack)
        violation("recovery phase carries more charge than the leading phase");
    else if (net_nc > DAC_UA_PER_COUNT * 1e-3 * w_a + slack)
        violation("charge imbalance beyond the DAC rounding");
    if (fabs(net_nc) > max_abs_net_nc)
        max_abs_net_nc = fabs(net_nc);
    pulses[c]++;
    if (opt.log_pulses) {
        log_begin_at("pulse", (double)c_rise / (double)avr->frequency);
        log_printf(", \"channel\": %d, \"cathodic_ma\": %.2f, \"cathodic_us\": %.4f, "
                   "\"gap_us\": %.4f, \"anodic_ma\": %.2f, \"anodic_us\": %.4f, "
                   "\"net_charge_nc\": %.3f", c, c_ma, w_c, gap, a_ma, w_a, net_nc);
        log_end();
    }
    train_t *t = &train[c];
    double start_s = (double)c_rise / (double)avr->frequency;
    if (!t->active) {
        memset(t, 0, sizeof(*t));
        t->active = 1;
        t->first_s = start_s;
        t->min_width_us = w_c;
    }
    t->pulses++;
    t->last_s = start_s;
    if (w_c < t->min_width_us)
        t->min_width_us = w_c;
    if (w_c > t->max_width_us)
        t->max_width_us = w_c;
    t->gap_us = gap;
    t->ratio = w_a / w_c;
    if (fabs(net_nc) > t->max_abs_net_nc)
        t->max_abs_net_nc = fabs(net_nc);
    if (c == 0) {
        period_count++;
        period_amp_sum += c_ma;
        period_width_sum += w_c;
    }
}

static void phase_hook(struct avr_irq_t *irq, uint32_t value, void *param)
{
    int anodic = param != NULL;
    int level = value & 1;
    int *line = anodic ? &anod : &cath;
    if (level == *line)
        return;
    *line = level;
    uint64_t now = avr->cycle;
    (void)irq;
    if (level) {
        if (!hv)
            violation("phase line high without the high-voltage supply");
        if (cath && anod)
            violation("both phase lines high");
        int c = selected();
        if (c < 0)
            violation("phase line high without exactly one channel selected");
        else if (!act[c])
            violation("pulse on a channel that is not switched on");
    }
    if (!anodic && level) {
        if (in_pulse)
            violation("cathodic phase before the previous anodic phase");
        in_pulse = 1;
        pulse_channel = selected() < 0 ? 0 : selected();
        c_rise = now;
        c_ma = dac[0] * DAC_UA_PER_COUNT * 1e-3;
    } else if (!anodic && !level) {
        c_fall = now;
    } else if (anodic && level) {
        if (!in_pulse || cath)
            violation("anodic phase without a cathodic phase before it");
        a_rise = now;
        a_ma = dac[1] * DAC_UA_PER_COUNT * 1e-3;
    } else if (in_pulse) {
        pulse_done(now);
    }
}

static void ctrl_hook(struct avr_irq_t *irq, uint32_t value, void *param)
{
    int bit = (int)(intptr_t)param;
    int level = value & 1;
    (void)irq;
    switch (bit) {
    case BIT_SEL0:
    case BIT_SEL1:
        if (sel[bit - BIT_SEL0] != level && in_pulse)
            violation("channel selection changed within a pulse");
        sel[bit - BIT_SEL0] = level;
        break;
    case BIT_ACT0:
    case BIT_ACT1: {
        int c = bit - BIT_ACT0;
        if (act[c] == level)
            return;
        act[c] = level;
        if (!level)
            end_train(c);
        log_outputs();
        break;
    }
    case BIT_HV_EN:
        if (hv == level)
            return;
        hv = level;
        if (!level && (cath || anod))
            violation("high-voltage supply off within a pulse");
        log_outputs();
        break;
    case BIT_DAC_CS:
        if (level == dac_cs)
            return;
        dac_cs = level;
        if (!level) {
            dac_bits = 0;
            dac_shift = 0;
        } else if (dac_bits == 16) {
            dac[(dac_shift >> 15) & 1] = dac_shift & 0x0FFF; /* LDAC low: now */
            dac_words++;
        }
        break;
    case BIT_DAC_SCK:
        if (level == dac_sck)
            return;
        dac_sck = level;
        if (level && !dac_cs && dac_bits < 16) { /* data in on the rising edge */
            dac_shift = (uint16_t)((dac_shift << 1) | (dac_sdi & 1));
            dac_bits++;
        }
        break;
    case BIT_DAC_SDI:
        dac_sdi = level;
        break;
    default:
        break;
    }
}

static void timing_hook(struct avr_irq_t *irq, uint32_t value, void *param)
{
    timing_t *t = param;
    int level = value & 1;
    if (level == (int)(irq->value & 1))
        return;
    if (level) {
        t->rise = avr->cycle;
    } else if (t->rise) {
        uint64_t d = avr->cycle - t->rise;
        t->count++;
        t->total += d;
        if (d > t->max)
            t->max = d;
    }
}

/*
 * simavr 1.6 drives a compare output pin at every overflow and every reconfiguration of
 * the timer as in PWM modes (the opposite of the compare action), also in normal mode,
 * where the chip does not. The harness therefore takes Timer1's compare outputs off the
 * pins and passes on only what the chip does in normal mode: the compare action itself.
 */
#define TCCR1A_ADDR 0x80
static avr_irq_t *comp_irq[2], *phase_pin[2];

static void compare_hook(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    int which = (int)(intptr_t)param; /* 0: OC1A, 1: OC1B */
    uint8_t com = (uint8_t)((avr->data[TCCR1A_ADDR] >> (which ? 4 : 6)) & 3);
    int action = com == 3 ? 1 : com == 2 ? 0 : -1;
    if (action < 0 || (int)(value & 1) != action)
        return;
    avr_raise_irq(phase_pin[which], (uint32_t)action);
}

/*
 * Forced compare outputs: a one written to TCCR1C's FOC1A or FOC1B acts on the line at
 * once as a match would, in the mode TCCR1A sets (ATmega2560, Atmel 2549Q 2014, TCCR1C;
 * the bits always read as zero). simavr 1.6 ignores the write (FOC arrived in 1.8), so the
 * harness acts it out.
 */
#define TCCR1C_ADDR 0x82

static void force_hook(struct avr_t *core, avr_io_addr_t addr, uint8_t v, void *param)
{
    (void)core;
    (void)addr;
    (void)param;
    for (int which = 0; which < 2; which++) {
        if (!(v & (which ? 0x40 : 0x80))) /* FOC1B, FOC1A */
            continue;
        uint8_t com = (uint8_t)((avr->data[TCCR1A_ADDR] >> (which ? 4 : 6)) & 3);
        if (com >= 2)
            avr_raise_irq(phase_pin[which], com == 3 ? 1u : 0u);
    }
}

/*
 * PINB as the chip reads it: "independent of the setting of Data Direction bit DDxn, the
 * port pin can be read through the PINxn Register bit" (Atmel 2549Q 2014, I/O-Ports), so
 * a phase line driven by its compare output reads as the line is. simavr 1.6 reads an
 * output pin's PORT bit instead (0 here: the firmware never writes PORTB's phase bits),
 * so the harness answers PINB's reads with the phase lines it drives, simavr's own
 * answer for the other bits (the firmware reads a line it forced low, since 2.2.6, to
 * tell a missed match from one that came in time).
 */
#define PINB_ADDR 0x23
static avr_io_read_t pinb_simavr;
static void *pinb_simavr_param;

static uint8_t pinb_hook(struct avr_t *core, avr_io_addr_t addr, void *param)
{
    (void)param;
    uint8_t v = pinb_simavr ? pinb_simavr(core, addr, pinb_simavr_param) : core->data[addr];
    v &= (uint8_t)~((1u << PIN_CATHODIC_BIT) | (1u << PIN_ANODIC_BIT));
    return (uint8_t)(v | (cath ? 1u << PIN_CATHODIC_BIT : 0u) | (anod ? 1u << PIN_ANODIC_BIT : 0u));
}

/* simavr's ioport refuses a second reader of PINB (avr_register_io_read aborts), so the
 * hook takes its place in the I/O table and calls it for the other bits. */
static void hook_pinb(void)
{
    int io = AVR_DATA_TO_IO(PINB_ADDR);
    if (avr->io[io].r.c == pinb_hook)
        return;
    pinb_simavr = avr->io[io].r.c;
    pinb_simavr_param = avr->io[io].r.param;
    avr->io[io].r.c = pinb_hook;
    avr->io[io].r.param = NULL;
}

void outputs_rewire_timer(void)
{
    for (int i = 0; i < 2; i++)
        avr_unconnect_irq(comp_irq[i], phase_pin[i]);
}

void outputs_connect(void)
{
    phase_pin[0] = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(PIN_CATHODIC_PORT), PIN_CATHODIC_BIT);
    phase_pin[1] = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(PIN_ANODIC_PORT), PIN_ANODIC_BIT);
    for (int i = 0; i < 2; i++) {
        comp_irq[i] = avr_io_getirq(avr, AVR_IOCTL_TIMER_GETIRQ('1'), TIMER_IRQ_OUT_COMP + i);
        avr_irq_register_notify(comp_irq[i], compare_hook, (void *)(intptr_t)i);
    }
    outputs_rewire_timer();
    hook_pinb();
    avr_register_io_write(avr, TCCR1C_ADDR, force_hook, NULL);
    avr_irq_register_notify(
        avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(PIN_CATHODIC_PORT), PIN_CATHODIC_BIT),
        phase_hook, NULL);
    avr_irq_register_notify(
        avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(PIN_ANODIC_PORT), PIN_ANODIC_BIT),
        phase_hook, (void *)1);
    for (int bit = 0; bit < 8; bit++)
        avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(PORT_CTRL), bit),
                                ctrl_hook, (void *)(intptr_t)bit);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(PORT_PROF), BIT_PROF_SAMPLE),
                            timing_hook, &t_sample);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(PORT_PROF), BIT_PROF_FRAME),
                            timing_hook, &t_frame);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(PORT_PROF), BIT_PROF_PULSE),
                            timing_hook, &t_pulse);
}

void outputs_take_period(uint16_t *count, float *amplitude_ma, float *width_us)
{
    *count = period_count;
    *amplitude_ma = period_count ? (float)(period_amp_sum / period_count) : 0.0f;
    *width_us = period_count ? (float)(period_width_sum / period_count) : 0.0f;
    period_count = 0;
    period_amp_sum = period_width_sum = 0.0;
}

uint8_t outputs_active(void)
{
    uint8_t mask = 0;
    for (int c = 0; c < SESSION_CHANNELS; c++)
        if (act[c])
            mask |= (uint8_t)(1 << c);
    return mask;
}

int outputs_hv(void) { return hv || cath || anod; }

void outputs_account_sleep(avr_cycle_count_t cycles) { sleep_cycles += cycles; }

static void log_timing(const char *name, const timing_t *t)
{
    log_printf(", \"%s_count\": %llu, \"%s_max_cycles\": %llu, \"%s_mean_cycles\": %.1f", name,
               (unsigned long long)t->count, name, (unsigned long long)t->max, name,
               t->count ? (double)t->total / (double)t->count : 0.0);
}

void outputs_report(void)
{
    outputs_flush(1);
    for (int c = 0; c < SESSION_CHANNELS; c++)
        end_train(c);
    log_begin("pulses");
    log_printf(", \"channel_0\": %llu, \"channel_1\": %llu, \"dac_words\": %llu, "
               "\"max_abs_net_charge_nc\": %.3f, \"violations\": %llu, "
               "\"first_violation\": \"%s\"",
               (unsigned long long)pulses[0], (unsigned long long)pulses[1],
               (unsigned long long)dac_words, max_abs_net_nc, (unsigned long long)violations,
               first_violation);
    log_end();
    double total = (double)avr->cycle;
    log_begin("timing");
    log_printf(", \"cycles_per_sample_period\": %lu, \"cpu_busy_fraction\": %.4f",
               (unsigned long)(avr->frequency / limits_default_config.sample_rate_hz),
               total > 0 ? 1.0 - (double)sleep_cycles / total : 0.0);
    log_timing("sample_path", &t_sample);
    log_timing("frame_path", &t_frame);
    log_timing("pulse_isr", &t_pulse);
    log_end();
    if (opt.bench)
        fprintf(stderr,
                "sample path: max %llu cycles (%.1f us), mean %.0f, %llu samples\n"
                "frame path: max %llu cycles (%.1f us), mean %.0f, %llu frames\n"
                "pulse interrupt: max %llu cycles (%.1f us), mean %.0f\n"
                "core busy: %.1f %% of %lu cycles per sample period\n",
                (unsigned long long)t_sample.max, cycles_to_us(t_sample.max),
                t_sample.count ? (double)t_sample.total / t_sample.count : 0.0,
                (unsigned long long)t_sample.count, (unsigned long long)t_frame.max,
                cycles_to_us(t_frame.max),
                t_frame.count ? (double)t_frame.total / t_frame.count : 0.0,
                (unsigned long long)t_frame.count, (unsigned long long)t_pulse.max,
                cycles_to_us(t_pulse.max),
                t_pulse.count ? (double)t_pulse.total / t_pulse.count : 0.0,
                total > 0 ? 100.0 * (1.0 - (double)sleep_cycles / total) : 0.0,
                (unsigned long)(avr->frequency / limits_default_config.sample_rate_hz));
}
