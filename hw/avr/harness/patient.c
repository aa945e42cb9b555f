/*
 * The simulated patient's side of the board: the sensors it wears and the pipe to the
 * Python process that simulates it (hw/avr/cosim.py).
 *
 * The firmware reads the gyroscope at every grid point: when it addresses the MPU-6050
 * for the burst read of the gyro registers, the harness stops the simulated chip, sends
 * the patient the pulses that reached the muscle since the previous grid point and asks
 * for the patient's next sample, which then sits in the IMU's registers, on the heel
 * switch's pin and on the force sensor's ADC input when the firmware reads them. So each
 * grid point of the firmware is one sample period of the patient, in lockstep. A sample
 * the patient's sensor model drops, or the end of the walk, is a read the IMU does not
 * acknowledge.
 *
 * Pipe protocol (little-endian):
 *   request  'S' u32 index, f64 board_t_s, u16 pulses, f32 amplitude_ma, f32 width_us
 *            (index: of the firmware's sample grid, from 0 again after a reset)
 *   reply    u8 has_sample, u8 gyro_valid, i16 gyro_z, u8 heel (0 no contact,
 *            1 contact, 2 lost: the heel fault line low), u16 force_counts,
 *            u16 truth_bytes, then the truth bytes
 * The truth bytes are frames for the board's debug port (USART1): TRUTH_EVENT and
 * TRUTH_ROW of this sample, which the firmware relays to the host (docs/protocol.md
 * section 8).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <avr_adc.h>
#include <avr_ioport.h>
#include <avr_twi.h>
#include <avr_uart.h>

#include "board.h"
#include "frame.h"
#include "harness.h"
#include "session.h"

#define TRUTH_QUEUE 8192
#define REQUEST_BYTES 23
#define REPLY_BYTES 9
#define HEEL_LOST 2

static avr_irq_t *twi_in, *heel_pin, *heel_fault_pin, *force_adc, *debug_in;
static uint8_t regs[128];
static uint8_t reg_ptr;
static int selected, first_write;
static uint32_t samples;
static int overrun_armed; /* --rx-overrun-at-s has been acted on */
/* The exchanges before the firmware's latest reset: the request carries the index of the
 * firmware's own sample grid, which a restarted firmware begins again at 0. */
static uint32_t grid_base;
static uint32_t nacks;
static uint8_t truth_queue[TRUTH_QUEUE];
static size_t truth_len, truth_done;
static int debug_xoff = 1;
static uint32_t truth_overflow;
static int announced;
/* The levels last driven on the heel lines (1: high, the pull-up's) and the force
 * sensor's voltage, driven again after a reset of the chip (patient_reset). */
static uint32_t heel_level = 1, heel_fault_level = 1, force_mv;

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void queue_truth(const uint8_t *p, size_t n)
{
    if (truth_len + n > TRUTH_QUEUE) {
        if (truth_done) {
            memmove(truth_queue, truth_queue + truth_done, truth_len - truth_done);
            truth_len -= truth_done;
            truth_done = 0;
        }
        if (truth_len + n > TRUTH_QUEUE) {
            truth_overflow++;
            return;
        }
    }
    memcpy(truth_queue + truth_len, p, n);
    truth_len += n;
}

/* One grid point: pulses out, the next sample in. Returns 1 when the IMU answers. */
static int exchange(void)
{
    if (opt.to_patient < 0)
        return 0; /* no patient (--boot-hex alone): no sensor on the bus answers */
    uint8_t request[REQUEST_BYTES];
    uint16_t pulses;
    float amplitude, width;
    outputs_take_period(&pulses, &amplitude, &width);
    double t = board_time_s();
    request[0] = 'S';
    put32(request + 1, samples - grid_base);
    memcpy(request + 5, &t, 8);
    put16(request + 13, pulses);
    memcpy(request + 15, &amplitude, 4);
    memcpy(request + 19, &width, 4);
    uint8_t reply[REPLY_BYTES];
    if (write_all(opt.to_patient, request, sizeof(request)) ||
        read_all(opt.from_patient, reply, sizeof(reply))) {
        harness_stop("patient_gone", 4);
        return 0;
    }
    uint16_t truth_n = (uint16_t)(reply[7] | (reply[8] << 8));
    uint8_t truth[4096];
    if (truth_n > sizeof(truth) || read_all(opt.from_patient, truth, truth_n)) {
        harness_stop("patient_gone", 4);
        return 0;
    }
    samples++;
    double walk_s = samples * (1.0 / limits_default_config.sample_rate_hz);
    if (opt.unplug_at_s >= 0.0 && walk_s >= opt.unplug_at_s && hostlink_plugged())
        hostlink_unplug();
    if (opt.rx_overrun_at_s >= 0.0 && walk_s >= opt.rx_overrun_at_s && !overrun_armed) {
        overrun_armed = 1;
        rxline_lose_next();
    }
    if (!reply[0])
        return 0; /* the walk is over: the sensor is gone */
    /* Heel switch closes to ground; a heel sensor without a reading pulls its fault
     * line low (the switch's line is then left open); the force sensor's voltage for
     * its ADC count. */
    heel_fault_level = reply[4] == HEEL_LOST ? 0 : 1;
    heel_level = reply[4] == 1 ? 0 : 1;
    avr_raise_irq(heel_fault_pin, heel_fault_level);
    avr_raise_irq(heel_pin, heel_level);
    uint16_t counts = (uint16_t)(reply[5] | (reply[6] << 8));
    if (counts > 1023)
        counts = 1023;
    force_mv = (uint32_t)((counts * ADC_REF_MV + 1022u) / 1023u);
    avr_raise_irq(force_adc, force_mv);
    if (opt.truth && truth_n)
        queue_truth(truth, truth_n);
    if (!reply[1])
        return 0; /* a dropped sample: the read is not acknowledged */
    int16_t gyro_z = (int16_t)(reply[2] | (reply[3] << 8));
    memset(regs + IMU_REG_GYRO_XOUT_H, 0, 6); /* the patient moves in the sagittal plane */
    regs[IMU_REG_GYRO_XOUT_H + 2 * IMU_SAGITTAL_AXIS] = (uint8_t)((uint16_t)gyro_z >> 8);
    regs[IMU_REG_GYRO_XOUT_H + 2 * IMU_SAGITTAL_AXIS + 1] = (uint8_t)gyro_z;
    return 1;
}

static void ack(uint8_t addr)
{
    avr_raise_irq(twi_in, avr_twi_irq_msg(TWI_COND_ACK, addr, 1));
}

/* The MPU-6050 on the I2C bus (the messages of simavr's TWI master). */
static void twi_hook(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    avr_twi_msg_irq_t msg;
    msg.u.v = value;
    uint8_t m = msg.u.twi.msg, addr = msg.u.twi.addr;
    if (m & TWI_COND_STOP)
        selected = 0;
    if (m & TWI_COND_START) {
        selected = (addr >> 1) == IMU_ADDR;
        if (!selected)
            return;
        if (addr & 1) { /* read */
            if (reg_ptr == IMU_REG_GYRO_XOUT_H && !exchange()) {
                selected = 0;
                nacks++;
                return;
            }
        } else {
            first_write = 1;
        }
        ack(addr);
        return;
    }
    if (!selected)
        return;
    if (m & TWI_COND_WRITE) {
        if (first_write)
            reg_ptr = msg.u.twi.data & 0x7F;
        else
            regs[reg_ptr++ & 0x7F] = msg.u.twi.data;
        first_write = 0;
        ack(addr);
    }
    if (m & TWI_COND_READ) {
        avr_raise_irq(twi_in, avr_twi_irq_msg(TWI_COND_READ, addr, regs[reg_ptr & 0x7F]));
        reg_ptr = (uint8_t)((reg_ptr + 1) & 0x7F);
    }
}

static void debug_xon(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)value;
    (void)param;
    debug_xoff = 0;
}

/* USART1's control register B and its receiver enable bit (ATmega2560 data space). */
#define UCSR1B_ADDR 0xC9
#define RXEN1_BIT 4

/* Whether the firmware listens on its debug port: simavr drops what arrives at a
 * receiver not enabled (after a reset, until the firmware has set the port up again:
 * 0.83 s and more in the Mega's bootloader). */
static int debug_listening(void) { return (avr->data[UCSR1B_ADDR] >> RXEN1_BIT) & 1; }

static void debug_xoff_hook(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    debug_xoff = value != 0;
}

void patient_connect(void)
{
    memset(regs, 0, sizeof(regs));
    regs[IMU_REG_WHO_AM_I] = IMU_WHO_AM_I;
    regs[IMU_REG_PWR_MGMT_1] = 0x40; /* asleep until woken */
    avr_irq_t *twi_out = avr_io_getirq(avr, AVR_IOCTL_TWI_GETIRQ(0), TWI_IRQ_OUTPUT);
    twi_in = avr_io_getirq(avr, AVR_IOCTL_TWI_GETIRQ(0), TWI_IRQ_INPUT);
    avr_irq_register_notify(twi_out, twi_hook, NULL);
    heel_pin = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(PIN_HEEL_PORT), PIN_HEEL_BIT);
    heel_fault_pin =
        avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(PIN_HEEL_PORT), PIN_HEEL_FAULT_BIT);
    avr_raise_irq(heel_fault_pin, 1); /* undriven: its pull-up holds it high */
    force_adc = avr_io_getirq(avr, AVR_IOCTL_ADC_GETIRQ, ADC_IRQ_ADC0 + ADC_FORCE_CHANNEL);
    debug_in = uart_attach('1', NULL, debug_xon, debug_xoff_hook);
}

void patient_reset(void)
{
    /* A pin's notification is filtered when its level does not change, and the reset
     * cleared the pin register under it: drive each heel line through the other level to
     * its own (the firmware is not running in between). */
    avr_raise_irq(heel_fault_pin, !heel_fault_level);
    avr_raise_irq(heel_fault_pin, heel_fault_level);
    avr_raise_irq(heel_pin, !heel_level);
    avr_raise_irq(heel_pin, heel_level);
    avr_raise_irq(force_adc, force_mv);
    /* The restarted firmware has forgotten the truth source: it announces itself again
     * once the firmware listens; a frame in flight is dropped (the reset emptied the
     * port's receiver, which is then not in XOFF). */
    truth_len = truth_done = 0;
    debug_xoff = 0;
    announced = 0;
    grid_base = samples;
}

void patient_service(void)
{
    if (!debug_listening())
        return;
    if (!announced && opt.truth) {
        /* The truth source announces itself: the board then offers DEBUG_TRUTH. */
        uint8_t body[2] = {0xC0, 0}, wire[FRAME_WIRE_MAX];
        queue_truth(wire, frame_encode(body, 2, wire));
        announced = 1;
    }
    while (truth_done < truth_len && !debug_xoff)
        avr_raise_irq(debug_in, truth_queue[truth_done++]);
    if (truth_done == truth_len)
        truth_done = truth_len = 0;
}

uint32_t patient_samples(void) { return samples; }

void patient_report(void)
{
    log_begin("patient");
    log_printf(", \"samples\": %u, \"reads_not_acknowledged\": %u, \"truth_overflow\": %u",
               samples, nacks, truth_overflow);
    log_end();
}
