/*
 * The board: an Arduino Mega 2560 (ATmega2560, 16 MHz crystal) with an MPU-6050 IMU on
 * I2C, a heel switch and a heel force sensor, and an isolated output stage with one
 * current source multiplexed over two channels. docs/hardware.md has the wiring; this
 * header is the one place that names the pins, shared by the firmware and by the simavr
 * harness (hw/avr/harness), which drives and watches the same pins.
 *
 * Port letters and bit numbers are plain numbers here so that the harness, compiled for
 * the host, can use them too.
 */
#ifndef FES_BOARD_H
#define FES_BOARD_H

#define BOARD_F_CPU_HZ 16000000UL
#define BOARD_MCU "atmega2560"

/* Host link: USART0 (the Mega's USB-serial bridge), 1 000 000 baud, 8N1 (protocol
 * version 3). UBRR0 = 1 with U2X0: 16 MHz / (8 x 2) = 1 000 000 exactly. */
#define BOARD_BAUD 1000000UL
/* A host frame collected in part whose next byte has not come for this long is itself a
 * loss (since 2.2.6): its last bytes may have been lost in the chip's receiver, and the
 * chip flags a data overrun only with the byte after the lost one (DOR0, Atmel 2549Q
 * 2014, "Receiver Error Flags"), so a STOP_ALL missing its delimiter sat unrecognised,
 * the outputs on, until the host's next byte (up to a heartbeat, a quarter of the
 * timeout). The bound is the host's longest pause inside one frame with margin: this
 * project's hosts write each frame in one write() (hw/board.py), which a USB-serial
 * bridge (the Mega's ATmega16U2, a CH340, an FT232) receives as bulk packets of at most
 * 64 bytes, scheduled in the USB's 1 ms frames (USB 2.0 specification, 2000, full
 * speed): a frame of up to 256 bytes is at most 4 packets, and a pause between two is
 * under a USB frame plus the bridge's own handling. 5 ms is five USB frames, and still a
 * tenth of a 50 ms heartbeat. An assumption, not a measurement of any bridge
 * (docs/protocol.md section 3): a host that writes one frame in several writes, with
 * pauses of its own, needs a longer bound (make RX_FRAME_GAP_US=...). */
#ifndef RX_FRAME_GAP_US
#define RX_FRAME_GAP_US 5000UL
#endif

/* Debug port: USART1, same rate. A simulator feeds the patient's ground truth in here;
 * on a real board nothing is connected (RXD1 pulled up), so the board offers no truth. */

/* Phase lines of the output stage, driven by Timer1's compare outputs: the cathodic
 * phase on OC1A (PB5, D11), the anodic phase on OC1B (PB6, D12). The firmware never
 * writes PORTB after start-up: these pins belong to the timer. */
#define PIN_CATHODIC_PORT 'B'
#define PIN_CATHODIC_BIT 5
#define PIN_ANODIC_PORT 'B'
#define PIN_ANODIC_BIT 6

/* PORTC: channel select (which channel's H-bridge the phase lines reach during a pulse),
 * channel active (its electrode switch closed and its indicator lit while the channel is
 * switched on), the high-voltage supply enable of the output stage, the DAC's chip
 * select, clock and data (the DAC is driven bit by bit: a few microseconds per word, and
 * a simulator models pins exactly). All on one port written with single-bit
 * instructions only. */
#define PORT_CTRL 'C'
#define BIT_SEL0 0   /* D37 */
#define BIT_SEL1 1   /* D36 */
#define BIT_ACT0 2   /* D35 */
#define BIT_ACT1 3   /* D34 */
#define BIT_HV_EN 4  /* D33 */
#define BIT_DAC_CS 5 /* D32: MCP4822 /CS */
#define BIT_DAC_SCK 6 /* D31: MCP4822 SCK */
#define BIT_DAC_SDI 7 /* D30: MCP4822 SDI */

/* Heel switch: PA0 (D22), internal pull-up, the switch closes to ground (low = heel
 * contact). Heel fault line: PA1 (D23), internal pull-up, pulled low by a heel sensor
 * that has no reading for this sample (a wireless insole's receiver that lost its
 * packet): the sample goes out as lost (SAMPLE flag HEEL_LOST), not as "no contact". A
 * plain switch leaves it open (high): its every reading is valid. Heel force: ADC0
 * (PF0, A0), a conditioned force sensor giving 0-5 V for 0-2046 N: 2 N per ADC count
 * with the 5 V reference. */
#define PIN_HEEL_PORT 'A'
#define PIN_HEEL_BIT 0
#define PIN_HEEL_FAULT_BIT 1
#define ADC_FORCE_CHANNEL 0
#define FORCE_N_PER_COUNT 2
#define ADC_REF_MV 5000

/* Timing pins (PORTG, single-bit writes): high while the firmware builds a SAMPLE frame,
 * while it handles a host frame, and while the pulse engine's interrupt runs. A scope
 * (or the harness) reads the worst-case cycles of each path from them. */
#define PORT_PROF 'G'
#define BIT_PROF_SAMPLE 0 /* D41 */
#define BIT_PROF_FRAME 1  /* D40 */
#define BIT_PROF_PULSE 2  /* D39 */

/* MPU-6050 on I2C (AD0 low): 7-bit address 0x68; gyro range +-2000 deg/s (FS_SEL 3:
 * 16.4 counts per deg/s, so 32768 counts are 1998 deg/s, what INFO reports). The
 * shank's sagittal rate is the gyro's z axis. */
#define IMU_ADDR 0x68
#define IMU_REG_SMPLRT_DIV 0x19
#define IMU_REG_CONFIG 0x1A
#define IMU_REG_GYRO_CONFIG 0x1B
#define IMU_REG_GYRO_XOUT_H 0x43
#define IMU_REG_PWR_MGMT_1 0x6B
#define IMU_REG_WHO_AM_I 0x75
#define IMU_WHO_AM_I 0x68
#define IMU_GYRO_FULL_SCALE_DPS 1998
#define IMU_SAGITTAL_AXIS 2

/* Current DAC: MCP4822 (dual 12-bit, internal 2.048 V reference, gain 2: 1 mV per
 * count), its LDAC tied low so that a word takes effect when /CS rises. DAC A sets the current of the cathodic phase, DAC B of the anodic; the
 * output stage's voltage-controlled current source gives 20 uA per mV, so one count is
 * 20 uA and the full scale 81.9 mA. */
#define DAC_UA_PER_COUNT 20
#define DAC_MAX_COUNT 4095
#define DAC_WORD_A 0x1000u /* channel A, gain 2, active */
#define DAC_WORD_B 0x9000u /* channel B, gain 2, active */

/* Pulse timing: Timer1 counts 0.5 us ticks (16 MHz / 8). */
#define PULSE_TICKS_PER_US 2
/* The shortest phase the engine times exactly (4 us): a setting with a shorter pulse
 * width delivers nothing (SETTING_MIN_PULSE_WIDTH_US, limits.h; until firmware 2.2.0 the
 * phase was lengthened to this, more charge than asked for). */
#define PULSE_MIN_PHASE_TICKS 8

#endif
