/*
 * fes-timing board firmware for the ATmega2560 (Arduino Mega 2560): docs/protocol.md
 * version 3 on USART0, the sensor front end, the pulse engine, the board's own limits
 * and timeouts. The main loop moves bytes and readings between the interrupt-driven
 * drivers and the portable protocol state machine (session.c), then sleeps until the
 * next interrupt. The AVR's watchdog resets a hung firmware within 60 ms, and every
 * output is off from reset until a session switches it on.
 */
#include <avr/eeprom.h>
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <avr/wdt.h>

#include "board.h"
#include "clock.h"
#include "config.h"
#include "frame.h"
#include "pulses.h"
#include "sensors.h"
#include "session.h"
#include "uart.h"

#define PROF_HIGH(bit) (PORTG |= _BV(bit))
#define PROF_LOW(bit) (PORTG &= (uint8_t)~_BV(bit))

static session_t session;
static frame_rx_t host_rx, debug_rx;
static uint8_t wire[FRAME_WIRE_MAX];

void session_hal_send(const uint8_t *body, uint8_t n)
{
    uint16_t len = frame_encode(body, n, wire);
    if (len)
        uart_host_send(wire, len);
}

void session_hal_output(uint8_t channel, const setting_t *setting)
{
    pulses_set(channel, setting);
}

uint32_t session_hal_grid_start(void)
{
    return clock_grid_start((uint8_t)(1000u / session.cfg.sample_rate_hz));
}

static void load_config(board_config_t *cfg)
{
    uint8_t block[CONFIG_BLOCK_BYTES];
    eeprom_read_block(block, (const void *)0, sizeof(block));
    config_parse(block, cfg);
}

/* At most one host frame per turn of the main loop, so that a burst of frames from the
 * host never keeps the loop from the sensor readings (two in 4 ms would be lost). A frame
 * of a burst thus waits in the receive ring behind the ones before it (0.6-1.1 ms each
 * for a STIM in simavr); the session is given the time its delimiter arrived, so that
 * the communication timeout counts from there (until 2.2.1 it counted from here, as late
 * as the frame had waited). */
static uint32_t host_byte_us; /* when serve_host last took a byte of the host's */

static void serve_host(void)
{
    uint8_t byte, popped;
    uint32_t arrived_ms = 0;
    while ((popped = uart_host_pop(&byte, &arrived_ms)) != UART_NONE) {
        host_byte_us = clock_us();
        if (popped == UART_LOST) {
            /* The host sent more than the buffer holds, or the chip's receiver lost a
             * byte (uart.h): the lost bytes may have been a STOP_ALL, so every output
             * goes off here, where it would have acted, and the session ends (FAULT). */
            frame_rx_damaged(&host_rx);
            session_rx_lost(&session, clock_us());
            continue;
        }
        uint8_t got = frame_rx_byte(&host_rx, byte);
        if (got == FRAME_RX_OK) {
            PROF_HIGH(BIT_PROF_FRAME);
            session_frame(&session, host_rx.buf, host_rx.frame_len, arrived_ms, clock_ms(),
                          clock_us());
            PROF_LOW(BIT_PROF_FRAME);
            break;
        }
        if (got == FRAME_RX_BAD)
            session_bad_frame(&session);
    }
    while ((popped = uart_debug_pop(&byte)) != UART_NONE) {
        if (popped == UART_LOST)
            frame_rx_damaged(&debug_rx);
        else if (frame_rx_byte(&debug_rx, byte) == FRAME_RX_OK)
            session_truth_frame(&session, debug_rx.buf, debug_rx.frame_len);
    }
}

/* Every millisecond (since 2.2.6): a host frame collected in part whose next byte has
 * not come for RX_FRAME_GAP_US (board.h) is a loss, acted on as serve_host acts on one
 * the receiver reported: its last bytes may have been a STOP_ALL's, and the chip reports
 * an overrun only with the next byte, which may be a heartbeat away. Judged from when
 * serve_host took the frame's latest byte (at or after its arrival) and only while no
 * byte waits in the ring: the bound is never shortened, and a byte that came is never
 * taken for a missing one. */
static void check_partial_frame(void)
{
    if (!frame_rx_partial(&host_rx) || uart_host_waiting())
        return;
    uint32_t now_us = clock_us();
    if ((uint32_t)(now_us - host_byte_us) <= RX_FRAME_GAP_US)
        return;
    frame_rx_damaged(&host_rx); /* the rest of it, if it still comes, is one bad frame */
    session_rx_lost(&session, now_us);
}

static void serve_sensors(void)
{
    uint32_t index;
    sensor_sample_t reading;
    /* A reading without the gyro still carries the heel switch and force it read (until
     * 2.1.0 it went out as none: heel off at 0 N, in the middle of stance). */
    while (sensors_take(&index, &reading)) {
        PROF_HIGH(BIT_PROF_SAMPLE);
        session_sample(&session, index, &reading, clock_ms());
        PROF_LOW(BIT_PROF_SAMPLE);
    }
}

/* Sleep until an interrupt brings work: a received byte, a reading, a millisecond. The
 * transmit interrupts (one per byte sent) wake the core too; it goes back to sleep at
 * once. The millisecond tick bounds every sleep, so the watchdog is fed. */
static void wait_for_work(void)
{
    for (;;) {
        cli();
        if (uart_rx_waiting() || sensors_ready() || clock_tick_pending()) {
            sei();
            return;
        }
        sleep_enable();
        sei();
        sleep_cpu();
        sleep_disable();
    }
}

int main(void)
{
    MCUSR = 0;
    wdt_disable();
    pulses_init(); /* every output off before anything else */
    clock_init();
    uart_init();
    frame_rx_init(&host_rx);
    frame_rx_init(&debug_rx);
    board_config_t cfg;
    load_config(&cfg);
    session_init(&session, &cfg);
    set_sleep_mode(SLEEP_MODE_IDLE);
    sei();
    sensors_init(); /* a missing sensor shows as missing readings, then a SENSOR fault */
    wdt_enable(WDTO_60MS);
    for (;;) {
        wdt_reset();
        serve_host();
        serve_sensors();
        uint8_t stretch = pulses_take_stretch();
        if (stretch)
            session_pulse_stretched(&session, stretch);
        if (clock_ticked()) {
            check_partial_frame();
            session_tick_ms(&session, clock_ms(), clock_us());
        }
        wait_for_work();
    }
}
