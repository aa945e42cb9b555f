/*
 * The board's stored configuration: a 27-byte block at the start of the EEPROM that
 * can only tighten the compiled limits (limits_default_config). Portable: the firmware
 * reads it, the simavr harness and `make eeprom` write it.
 *
 *   offset  type  field (little-endian)
 *   0       u16   magic 0xFE51
 *   2       u8    layout version 2
 *   3       u32   board_id
 *   7       u16   comm_timeout_ms        (10-500)
 *   9       u16   max_on_time_ms         (100 to the compiled value)
 *   11      u16   max_amplitude_10ua     (at most the compiled value, likewise below)
 *   13      u16   max_pulse_width_us
 *   15      u16   max_frequency_chz
 *   17      u16   max_gap_us
 *   19      u16   max_ratio_x100
 *   21      u16   max_charge_cuc         (0.01 uC; layout 2, firmware 2.2.0)
 *   23      u16   max_duty_permille      (0.1 %, 100 to the compiled value; layout 2)
 *   25      u16   CRC-16/CCITT-FALSE of bytes 0-24, high byte first
 *
 * A block of layout 1 (firmware 2.1.0 and older: 23 bytes, its CRC at offset 21, no
 * charge or duty limit) is read with the compiled charge and duty limits. A block that is absent (erased
 * EEPROM reads 0xFF), damaged or out of bounds is ignored as a whole: the board runs on
 * the compiled configuration.
 */
#ifndef FES_CONFIG_H
#define FES_CONFIG_H

#include <stdint.h>

#include "limits.h"

#define CONFIG_BLOCK_BYTES 27
#define CONFIG_BLOCK_V1_BYTES 23

/* The configuration a block gives (1), or the compiled one (0). */
uint8_t config_parse(const uint8_t *block, board_config_t *out);
/* The block of a configuration. */
void config_encode(const board_config_t *cfg, uint8_t *block);

#endif
