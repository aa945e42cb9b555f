/*
 * simavr-board: the board's firmware on a simulated ATmega2560 at 16 MHz, in step with
 * the wall clock, its host link on a pty (the path is printed on stdout's first line),
 * its sensors and outputs wired to the simulated patient (see harness.h).
 *
 *   simavr-board --elf firmware.elf --from-patient FD --to-patient FD [--log FILE]
 *                [--speed X] [--unplug-at-s S] [--rx-overrun-at-s S] [--no-truth]
 *                [--bench] [--log-pulses]
 *                [--board-id N] [--comm-timeout-ms MS] [--max-on-time-ms MS]
 *                [--max-amplitude-ma MA] [--max-pulse-width-us US]
 *                [--max-frequency-hz HZ] [--max-interphase-gap-us US]
 *                [--max-anodic-width-ratio R] [--max-charge-per-phase-uc UC]
 *                [--max-duty-cycle D]
 *   simavr-board --boot-hex FILE [--elf firmware.elf] [--from-patient FD --to-patient FD]
 *                [--log FILE] ...
 *   simavr-board --eeprom-hex FILE [the configuration options]
 *
 * --boot-hex: the chip as a Mega 2560 leaves the factory, for `make flash` and
 * `make eeprom` through real avrdude: a bootloader's Intel hex (Arduino's STK500v2, from
 * Debian's arduino-core-avr) in the boot section, execution starting there as the
 * Mega's fuses (BOOTRST, BOOTSZ 4096 words) make it, application flash and EEPROM
 * erased (0xFF); with --elf as well, a Mega flashed before and plugged in again: the
 * firmware in application flash (the configuration options in its EEPROM), execution
 * still starting in the bootloader. An open of the pty that nobody held resets the
 * chip, as the Mega's auto-reset does when a host raises DTR on opening its port (a pty
 * has no DTR line; a close and open within one pacing step go unseen); the patient's
 * sensors stay powered through it. The log says "port_opened", "port_closed", "reset", and
 * "bootloader" / "application" as execution enters either section. Without the
 * patient's pipes no sensor answers on the I2C bus.
 *
 * The configuration options are written into the simulated EEPROM (config.h), as
 * `make eeprom` writes them into a real board's; the firmware checks them at start-up.
 * Pacing: every 100 us of board time the harness moves the link's bytes and, if board
 * time runs ahead of the wall clock (times --speed), waits. A harness that fell more than
 * 10 ms behind (a loaded machine) lets board time pause rather than jump, as the Python
 * emulator does, so that its own hiccups do not trip the firmware's timers; each pause
 * from 1 ms on is logged ("paused"), their total at the end.
 *
 * --rx-overrun-at-s S: the first host byte to complete S seconds or more into the walk
 * (after the first START_STREAM, as --unplug-at-s) is lost as a data overrun loses one,
 * DOR0 set (rxline.c), whatever the firmware's timing; logged "rx_overrun", "injected": 1.
 *
 * --rx-lose-end-of T: the delimiter of the first host frame of type T (a number: 5 is
 * STOP_ALL) is lost so (a frame missing its last byte; the chip flags it with the next).
 * --host-byte-gap-us G: the host's line idles G us between two bytes, as a USB-serial
 * bridge that hands on a frame in pieces.
 *
 * Exit status: 0 stopped by SIGTERM/SIGINT, 3 ended after an unplug once the outputs
 * were off, 4 the patient's process went away, 2 bad options, 1 the simulation failed.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <avr_eeprom.h>
#include <sim_elf.h>
#include <sim_hex.h>

#include "board.h"
#include "config.h"
#include "harness.h"
#include "session.h"

#define PACE_US 100
#define MAX_LAG_NS 10000000LL
/* Pauses of board time from this long on are logged ("paused"). */
#define PAUSE_LOG_NS 1000000LL
/* The Mega 2560's boot section as its fuses set it (high fuse 0xD8: BOOTSZ 4096 words,
 * BOOTRST): byte address 0x3E000 to the end of flash. */
#define BOOT_SECTION_START 0x3E000u

options_t opt = {.from_patient = -1, .to_patient = -1, .speed = 1.0, .unplug_at_s = -1.0,
                 .rx_overrun_at_s = -1.0, .truth = 1};
avr_t *avr;

static volatile sig_atomic_t signalled_stop, signalled_unplug;
static const char *stop_reason;
static int stop_status = -1;
static int64_t wall_origin_ns;
static int64_t paused_total_ns; /* board time lost to pauses (wall ns) */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

double board_time_s(void) { return avr ? (double)avr->cycle / (double)avr->frequency : 0.0; }

void harness_stop(const char *reason, int status)
{
    if (stop_status < 0) {
        stop_reason = reason;
        stop_status = status;
    }
}

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        signalled_unplug = 1;
    else
        signalled_stop = 1;
}

/* The core sleeps until its next event; the pacing timer keeps that under 100 us. */
static void core_sleep(avr_t *core, avr_cycle_count_t how_long)
{
    (void)core;
    outputs_account_sleep(how_long + 1);
}

static avr_cycle_count_t last_pace, off_since;
static int in_bootloader = 1;

/* With --boot-hex: log where execution went, the boot section ("bootloader", after a
 * reset) or the application ("application", the bootloader handed over), so that a host
 * can tell when the firmware runs (checked every pacing step). */
static void log_section(const avr_t *core)
{
    int in_boot = core->pc >= BOOT_SECTION_START;
    if (!opt.boot_hex || in_boot == in_bootloader)
        return;
    in_bootloader = in_boot;
    log_begin(in_boot ? "bootloader" : "application");
    log_end();
}

static avr_cycle_count_t pace(avr_t *core, avr_cycle_count_t when, void *param)
{
    (void)param;
    last_pace = core->cycle;
    log_section(core);
    if (signalled_stop)
        harness_stop("stopped", 0);
    if (signalled_unplug) {
        signalled_unplug = 0;
        hostlink_unplug();
    }
    /* Unplugged: end once the outputs have been off for 5 ms (the FAULT frame out). */
    if (hostlink_plugged() || outputs_active() || outputs_hv())
        off_since = 0;
    else if (!off_since)
        off_since = core->cycle;
    else if (core->cycle - off_since > core->frequency / 200)
        harness_stop("unplugged", 3);
    hostlink_service();
    patient_service();
    outputs_flush(0);
    /* In step with the wall clock. */
    int64_t due = wall_origin_ns +
                  (int64_t)((double)core->cycle * 1e9 / (double)core->frequency / opt.speed);
    int64_t now = now_ns();
    if (now - due > MAX_LAG_NS) {
        int64_t paused = now - due - MAX_LAG_NS;
        wall_origin_ns += paused;
        paused_total_ns += paused;
        if (paused >= PAUSE_LOG_NS) {
            /* The harness was off the CPU: the host saw the link fall silent for about
             * this long plus the lag allowed. A real board is never descheduled, so the
             * log lets a test tell a starved simulation from a host that missed frames. */
            log_begin("paused");
            log_printf(", \"paused_ms\": %.3f, \"late_ms\": %.3f", paused / 1e6,
                       (now - due) / 1e6);
            log_end();
        }
    }
    while ((now = now_ns()) < due) {
        hostlink_wait(due - now);
        hostlink_service();
    }
    return when + (avr_cycle_count_t)(PACE_US * (core->frequency / 1000000));
}

static int parse_double(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

static void usage(const char *why)
{
    fprintf(stderr, "simavr-board: %s (see the comment at the top of hw/avr/harness/main.c)\n",
            why);
    exit(2);
}

/* A configuration option, in wire units, checked by the firmware's own rules. */
static int config_option(const char *name, const char *value, board_config_t *cfg)
{
    double v;
    if (!parse_double(value, &v) || v < 0)
        usage("a configuration option needs a number");
    if (!strcmp(name, "--board-id"))
        cfg->board_id = (uint32_t)v;
    else if (!strcmp(name, "--comm-timeout-ms"))
        cfg->comm_timeout_ms = (uint16_t)lround(v);
    else if (!strcmp(name, "--max-on-time-ms"))
        cfg->max_on_time_ms = (uint16_t)lround(v);
    else if (!strcmp(name, "--max-amplitude-ma"))
        cfg->max_amplitude_10ua = (uint16_t)lround(v * 100.0);
    else if (!strcmp(name, "--max-pulse-width-us"))
        cfg->max_pulse_width_us = (uint16_t)lround(v);
    else if (!strcmp(name, "--max-frequency-hz"))
        cfg->max_frequency_chz = (uint16_t)lround(v * 100.0);
    else if (!strcmp(name, "--max-interphase-gap-us"))
        cfg->max_gap_us = (uint16_t)lround(v);
    else if (!strcmp(name, "--max-anodic-width-ratio"))
        cfg->max_ratio_x100 = (uint16_t)lround(v * 100.0);
    else if (!strcmp(name, "--max-charge-per-phase-uc"))
        cfg->max_charge_cuc = (uint16_t)lround(v * 100.0);
    else if (!strcmp(name, "--max-duty-cycle"))
        cfg->max_duty_permille = (uint16_t)lround(v * 1000.0);
    else
        return 0;
    return 1;
}

static void write_eeprom_hex(const char *path, const uint8_t *block)
{
    FILE *f = fopen(path, "w");
    if (!f)
        usage("cannot write the EEPROM file");
    uint8_t sum = (uint8_t)(CONFIG_BLOCK_BYTES);
    fprintf(f, ":%02X000000", CONFIG_BLOCK_BYTES);
    for (int i = 0; i < CONFIG_BLOCK_BYTES; i++) {
        fprintf(f, "%02X", block[i]);
        sum = (uint8_t)(sum + block[i]);
    }
    fprintf(f, "%02X\n:00000001FF\n", (uint8_t)(0x100 - sum));
    fclose(f);
}

/* The firmware's .elf into flash (and its EEPROM section, if any). */
static int load_elf(const char *path)
{
    elf_firmware_t fw;
    memset(&fw, 0, sizeof(fw));
    /* simavr reports the load on stdout, whose first line must be the pty's path. */
    fflush(stdout);
    int saved_stdout = dup(1);
    dup2(2, 1);
    int unreadable = elf_read_firmware(path, &fw);
    fflush(stdout);
    dup2(saved_stdout, 1);
    close(saved_stdout);
    if (unreadable) {
        fprintf(stderr, "simavr-board: cannot read %s\n", path);
        return 1;
    }
    avr_load_firmware(avr, &fw);
    return 0;
}

/* A bootloader's Intel hex into the boot section; execution starts and every reset
 * restarts there (BOOTRST). The application flash is erased first unless a firmware was
 * loaded into it (``flashed``: a Mega flashed before, plugged in again). */
static int load_bootloader(const char *path, int flashed)
{
    ihex_chunk_p chunks = NULL;
    int n = read_ihex_chunks(path, &chunks);
    if (n <= 0) {
        fprintf(stderr, "simavr-board: cannot read the Intel hex %s\n", path);
        return 1;
    }
    if (flashed)
        memset(avr->flash + BOOT_SECTION_START, 0xFF, avr->flashend + 1 - BOOT_SECTION_START);
    else
        memset(avr->flash, 0xFF, avr->flashend + 1);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (chunks[i].baseaddr < BOOT_SECTION_START ||
            chunks[i].baseaddr + chunks[i].size > avr->flashend + 1) {
            fprintf(stderr,
                    "simavr-board: %s has %u bytes at 0x%05X, outside the boot section "
                    "0x%05X-0x%05X\n",
                    path, chunks[i].size, chunks[i].baseaddr, BOOT_SECTION_START,
                    avr->flashend);
            bad = 1;
            continue;
        }
        memcpy(avr->flash + chunks[i].baseaddr, chunks[i].data, chunks[i].size);
    }
    free_ihex_chunks(chunks);
    if (bad)
        return 1;
    avr->codeend = avr->flashend;
    avr->pc = avr->reset_pc = BOOT_SECTION_START;
    return 0;
}

/* After a reset of the chip (``cause``: the port opened, or NULL for its own watchdog),
 * which cleared the cycle timers and rewired the timer's pins: say so, rewire, drive
 * the patient's lines again and pace again. */
static void after_reset(const char *cause)
{
    log_begin("reset");
    if (cause != NULL)
        log_printf(", \"cause\": \"%s\"", cause);
    log_end();
    hostlink_chip_reset();
    outputs_rewire_timer();
    patient_reset();
    last_pace = avr->cycle;
    avr_cycle_timer_register_usec(avr, PACE_US, pace, NULL);
}

int main(int argc, char **argv)
{
    board_config_t cfg = limits_default_config;
    int configured = 0;
    const char *eeprom_hex = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d;
        if (!strcmp(a, "--no-truth")) {
            opt.truth = 0;
        } else if (!strcmp(a, "--bench")) {
            opt.bench = 1;
        } else if (!strcmp(a, "--log-pulses")) {
            opt.log_pulses = 1;
        } else if (!v) {
            usage("an option needs a value");
        } else if (!strcmp(a, "--elf")) {
            opt.elf = v, i++;
        } else if (!strcmp(a, "--log")) {
            opt.log = v, i++;
        } else if (!strcmp(a, "--boot-hex")) {
            opt.boot_hex = v, i++;
        } else if (!strcmp(a, "--eeprom-hex")) {
            eeprom_hex = v, i++;
        } else if (!strcmp(a, "--from-patient") && parse_double(v, &d)) {
            opt.from_patient = (int)d, i++;
        } else if (!strcmp(a, "--to-patient") && parse_double(v, &d)) {
            opt.to_patient = (int)d, i++;
        } else if (!strcmp(a, "--speed") && parse_double(v, &d) && d > 0) {
            opt.speed = d, i++;
        } else if (!strcmp(a, "--unplug-at-s") && parse_double(v, &d) && d >= 0) {
            opt.unplug_at_s = d, i++;
        } else if (!strcmp(a, "--rx-overrun-at-s") && parse_double(v, &d) && d >= 0) {
            opt.rx_overrun_at_s = d, i++;
        } else if (!strcmp(a, "--rx-lose-end-of") && parse_double(v, &d) && d >= 1 &&
                   d <= 255) {
            opt.rx_lose_end_of = (int)d, i++;
        } else if (!strcmp(a, "--host-byte-gap-us") && parse_double(v, &d) && d >= 0 &&
                   d <= 1e6) {
            opt.host_byte_gap_us = d, i++;
        } else if (config_option(a, v, &cfg)) {
            configured = 1, i++;
        } else {
            usage("unknown option or bad value");
        }
    }
    if (!limits_config_valid(&cfg))
        usage("the configuration breaks the firmware's bounds (limits may only be lowered; "
              "comm timeout 10-500 ms)");
    uint8_t block[CONFIG_BLOCK_BYTES];
    config_encode(&cfg, block);
    if (eeprom_hex) {
        write_eeprom_hex(eeprom_hex, block);
        return 0;
    }
    if (opt.boot_hex) {
        if ((opt.from_patient < 0) != (opt.to_patient < 0))
            usage("--from-patient and --to-patient go together");
    } else if (!opt.elf || opt.from_patient < 0 || opt.to_patient < 0) {
        usage("--elf, --from-patient and --to-patient are required");
    }
    avr = avr_make_mcu_by_name(BOARD_MCU);
    if (!avr) {
        fprintf(stderr, "simavr-board: simavr has no %s core\n", BOARD_MCU);
        return 1;
    }
    avr_init(avr);
    avr->log = LOG_ERROR;
    avr->frequency = BOARD_F_CPU_HZ;
    avr->vcc = avr->avcc = avr->aref = ADC_REF_MV;
    if ((opt.elf && load_elf(opt.elf)) ||
        (opt.boot_hex && load_bootloader(opt.boot_hex, opt.elf != NULL)))
        return 1;
    avr->frequency = BOARD_F_CPU_HZ;
    if (configured) {
        avr_eeprom_desc_t ee = {.ee = block, .offset = 0, .size = CONFIG_BLOCK_BYTES};
        avr_ioctl(avr, AVR_IOCTL_EEPROM_SET, &ee);
    }
    avr->sleep = core_sleep;

    log_open(opt.log);
    const char *path = hostlink_open();
    if (!path) {
        fprintf(stderr, "simavr-board: cannot open a pty\n");
        return 1;
    }
    if (opt.boot_hex)
        hostlink_reset_on_open();
    hostlink_connect();
    patient_connect();
    outputs_connect();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Boot before the path is out, as a board is powered before its port is opened:
     * run until the firmware listens on its host link (at most a second of board time),
     * then 5 ms more with the debug port served, so that the truth source has announced
     * itself before any HELLO can arrive. */
    avr_cycle_count_t booted = 0;
    while (avr->cycle < avr->frequency &&
           (!booted || avr->cycle - booted < avr->frequency / 200)) {
        int state = avr_run(avr);
        rxline_watch();
        if (state == cpu_Done || state == cpu_Crashed)
            break;
        if (!booted && hostlink_listening())
            booted = avr->cycle;
        if (booted)
            patient_service();
    }
    avr_cycle_timer_register_usec(avr, PACE_US, pace, NULL);
    last_pace = avr->cycle;
    wall_origin_ns = now_ns() - (int64_t)(board_time_s() * 1e9 / opt.speed);
    log_begin("ready");
    log_printf(", \"path\": \"%s\", \"mcu\": \"%s\", \"f_cpu_hz\": %lu, \"speed\": %g", path,
               BOARD_MCU, (unsigned long)BOARD_F_CPU_HZ, opt.speed);
    log_end();
    printf("%s\n", path);
    fflush(stdout);

    avr_cycle_count_t pace_cycles = (avr_cycle_count_t)(PACE_US * (avr->frequency / 1000000));
    while (stop_status < 0) {
        int state = avr_run(avr);
        rxline_watch();
        if (state == cpu_Done || state == cpu_Crashed) {
            harness_stop(state == cpu_Done ? "firmware_stopped" : "firmware_crashed", 1);
            break;
        }
        if (hostlink_take_reset()) {
            /* A host opened the port: the Mega's auto-reset. Board time runs on. */
            avr_cycle_count_t cycle = avr->cycle;
            avr_reset(avr);
            if (avr->cycle < cycle)
                wall_origin_ns -= (int64_t)((double)(cycle - avr->cycle) * 1e9 /
                                            (double)avr->frequency / opt.speed);
            after_reset("port_opened");
        } else if (avr->cycle - last_pace > 4 * pace_cycles) {
            /* A reset of the chip (its watchdog) cleared the cycle timers and rewired
             * the timer's pins: pace again, rewire again, say so. */
            after_reset(NULL);
        }
    }
    hostlink_report();
    patient_report();
    outputs_report();
    log_begin("end");
    log_printf(", \"reason\": \"%s\", \"paused_ms\": %.3f", stop_reason,
               paused_total_ns / 1e6);
    log_end();
    log_close();
    fprintf(stderr, "simavr-board: %s\n", stop_reason);
    return stop_status;
}
