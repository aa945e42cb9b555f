/* Sensor front end: see sensors.h. */
#include "sensors.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/atomic.h>

#include "board.h"

#define TWI_HZ 400000UL
#define TWCR_GO (_BV(TWINT) | _BV(TWEN) | _BV(TWIE))
#define TWCR_STOP (_BV(TWINT) | _BV(TWSTO) | _BV(TWEN))
#define INIT_WAIT_LOOPS 60000u

enum { X_IDLE, X_BUSY, X_DONE, X_FAILED };

/* The transaction in flight: write wn bytes, then (repeated start) read rn bytes. */
static volatile uint8_t x_state = X_IDLE;
static uint8_t x_wbuf[2], x_wn, x_wpos;
static uint8_t x_rbuf[6], x_rn, x_rpos;
static volatile uint8_t x_for_grid; /* the transaction is a grid reading */

/* The grid reading being assembled, and the completed ones waiting for the main loop. */
static uint32_t r_index;
static uint8_t r_flags;
/* A completed reading as the ADC interrupt leaves it: raw, so that the interrupt, which
 * the receive interrupt cannot preempt, only copies bytes (sensors_take converts them).
 * Until 2.2.3 it converted them itself, about 265 cycles with interrupts off: the
 * longest a host byte waited in the chip's 2-byte receive FIFO (docs/hardware.md,
 * Budgets). */
typedef struct {
    uint32_t index;
    uint16_t counts;    /* the force channel's ADC count */
    uint8_t flags;      /* its SAMPLE flags: the gyro bytes count only with the gyro's */
    uint8_t gyro_be[6]; /* the gyro's registers as read, high byte first */
} done_t;
#define DONE_SLOTS 4 /* three readings may wait */
static volatile done_t done[DONE_SLOTS];
static volatile uint8_t done_head, done_tail;
static volatile uint8_t busy_points; /* grid points that found the bus still busy */

static void twi_start(void) { TWCR = TWCR_GO | _BV(TWSTA); }

static void twi_reset(void)
{
    TWCR = 0;
    TWBR = (uint8_t)((BOARD_F_CPU_HZ / TWI_HZ - 16) / 2);
    TWSR = 0;
    TWCR = _BV(TWEN);
}

/* After the gyro: the heel switch now, the force sensor's conversion next. */
static void read_heel_then_force(uint8_t gyro_ok)
{
    r_flags = (uint8_t)(gyro_ok ? (FLAG_GYRO_SAGITTAL | FLAG_GYRO_OTHER) : 0);
    uint8_t pins = PINA;
    if (!(pins & _BV(PIN_HEEL_FAULT_BIT)))
        r_flags |= FLAG_HEEL_LOST; /* the heel sensor has no reading: not "no contact" */
    else if (!(pins & _BV(PIN_HEEL_BIT)))
        r_flags |= FLAG_HEEL_CONTACT;
    ADCSRA |= _BV(ADSC);
}

static void finish(uint8_t ok)
{
    x_state = ok ? X_DONE : X_FAILED;
    if (x_for_grid) {
        x_for_grid = 0;
        read_heel_then_force(ok);
    }
}

ISR(TWI_vect)
{
    switch (TWSR & 0xF8) {
    case 0x08: /* start */
    case 0x10: /* repeated start */
        TWDR = (uint8_t)((IMU_ADDR << 1) | (x_wpos < x_wn ? 0 : 1));
        TWCR = TWCR_GO;
        break;
    case 0x18: /* address + write acknowledged */
    case 0x28: /* data byte acknowledged */
        if (x_wpos < x_wn) {
            TWDR = x_wbuf[x_wpos++];
            TWCR = TWCR_GO;
        } else if (x_rn) {
            twi_start();
        } else {
            TWCR = TWCR_STOP;
            finish(1);
        }
        break;
    case 0x40: /* address + read acknowledged */
        TWCR = (uint8_t)(TWCR_GO | (x_rn > 1 ? _BV(TWEA) : 0));
        break;
    case 0x50: /* byte received, acknowledged */
        x_rbuf[x_rpos++] = TWDR;
        TWCR = (uint8_t)(TWCR_GO | (x_rpos + 1 < x_rn ? _BV(TWEA) : 0));
        break;
    case 0x58: /* last byte received */
        x_rbuf[x_rpos++] = TWDR;
        TWCR = TWCR_STOP;
        finish(1);
        break;
    default: /* no acknowledge, lost arbitration, bus error: the sensor did not answer */
        TWCR = TWCR_STOP;
        finish(0);
        break;
    }
}

ISR(ADC_vect)
{
    uint8_t head = done_head;
    uint8_t next = (uint8_t)((head + 1) % DONE_SLOTS);
    if (next == done_tail)
        return; /* the main loop has not taken the last three: drop this one */
    volatile done_t *d = &done[head];
    d->counts = ADC;
    d->index = r_index;
    d->flags = r_flags;
    /* Unrolled: -Os keeps a loop, 60 cycles more with interrupts off. */
    d->gyro_be[0] = x_rbuf[0];
    d->gyro_be[1] = x_rbuf[1];
    d->gyro_be[2] = x_rbuf[2];
    d->gyro_be[3] = x_rbuf[3];
    d->gyro_be[4] = x_rbuf[4];
    d->gyro_be[5] = x_rbuf[5];
    done_head = next;
}

static void begin(uint8_t reg, uint8_t value, uint8_t write_value, uint8_t rn)
{
    x_wbuf[0] = reg;
    x_wbuf[1] = value;
    x_wn = write_value ? 2 : 1;
    x_wpos = 0;
    x_rn = rn;
    x_rpos = 0;
    x_state = X_BUSY;
    twi_start();
}

static uint8_t run_blocking(uint8_t reg, uint8_t value, uint8_t write_value, uint8_t rn)
{
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE)
    {
        x_for_grid = 0;
        begin(reg, value, write_value, rn);
    }
    for (uint16_t i = 0; i < INIT_WAIT_LOOPS && x_state == X_BUSY; i++)
        ;
    if (x_state == X_BUSY)
        twi_reset();
    return x_state == X_DONE;
}

uint8_t sensors_init(void)
{
    DDRA &= (uint8_t)~(_BV(PIN_HEEL_BIT) | _BV(PIN_HEEL_FAULT_BIT));
    /* pull-ups: an open switch reads high, and so does a fault line nothing drives */
    PORTA |= _BV(PIN_HEEL_BIT) | _BV(PIN_HEEL_FAULT_BIT);
    ADMUX = _BV(REFS0) | ADC_FORCE_CHANNEL; /* AVCC reference */
    ADCSRB = 0;
    DIDR0 = _BV(ADC_FORCE_CHANNEL);
    ADCSRA = _BV(ADEN) | _BV(ADIE) | _BV(ADPS2) | _BV(ADPS1) | _BV(ADPS0); /* 125 kHz */
    twi_reset();
    uint8_t ok = run_blocking(IMU_REG_PWR_MGMT_1, 0x01, 1, 0)       /* wake, gyro clock */
                 && run_blocking(IMU_REG_GYRO_CONFIG, 0x18, 1, 0)   /* +-2000 deg/s */
                 && run_blocking(IMU_REG_CONFIG, 0x01, 1, 0)        /* 184 Hz low-pass */
                 && run_blocking(IMU_REG_SMPLRT_DIV, 0x00, 1, 0)    /* 1 kHz */
                 && run_blocking(IMU_REG_WHO_AM_I, 0, 0, 1);
    return ok && x_rbuf[0] == IMU_WHO_AM_I;
}

void sensors_start(uint32_t index)
{
    if (x_state == X_BUSY) {
        /* The bus is still busy from an earlier point: this one has no gyro reading;
         * a bus that stays stuck is reset. */
        if (++busy_points >= 2) {
            busy_points = 0;
            twi_reset();
            x_state = X_FAILED;
        }
        x_for_grid = 0; /* should the stuck transaction end now, it reports nothing */
        r_index = index;
        read_heel_then_force(0);
        return;
    }
    busy_points = 0;
    r_index = index;
    x_for_grid = 1;
    begin(IMU_REG_GYRO_XOUT_H, 0, 0, 6);
}

uint8_t sensors_ready(void) { return done_tail != done_head; }

uint8_t sensors_take(uint32_t *index, sensor_sample_t *reading)
{
    if (done_tail == done_head)
        return 0;
    volatile done_t *d = &done[done_tail];
    *index = d->index;
    uint8_t flags = d->flags;
    reading->flags = flags;
    reading->heel_force_dn = (uint16_t)(d->counts * (FORCE_N_PER_COUNT * 10u));
    for (uint8_t a = 0; a < 3; a++)
        reading->gyro[a] = (flags & FLAG_GYRO_SAGITTAL)
                               ? (int16_t)(((uint16_t)d->gyro_be[2 * a] << 8) |
                                           d->gyro_be[2 * a + 1])
                               : 0;
    done_tail = (uint8_t)((done_tail + 1) % DONE_SLOTS);
    return 1;
}
