/*
 * The sensor front end: the MPU-6050's gyroscope over I2C (400 kHz, interrupt driven),
 * the heel switch on a pin and the heel force sensor on the ADC. A reading starts at a
 * grid point (from the clock's interrupt) and completes in the I2C and ADC interrupts;
 * the main loop takes it.
 */
#ifndef FES_SENSORS_H
#define FES_SENSORS_H

#include <stdint.h>

#include "session.h"

/* Wake and configure the IMU (blocking, interrupts on); nonzero when it answered. */
uint8_t sensors_init(void);
/* Start the reading of grid point index (interrupt context). */
void sensors_start(uint32_t index);
/* The next completed reading: returns 1 and fills index and *reading (its flags say
 * which sensors read: no gyro bits when the gyro did not answer, HEEL_LOST when the heel
 * fault line was low); 0 when none is waiting. */
uint8_t sensors_take(uint32_t *index, sensor_sample_t *reading);
/* Nonzero while a completed reading waits. */
uint8_t sensors_ready(void);

#endif
