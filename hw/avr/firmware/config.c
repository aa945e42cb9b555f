/* Stored configuration: see config.h. */
#include "config.h"

#include "frame.h"

#define CONFIG_MAGIC 0xFE51u
#define CONFIG_LAYOUT 2
#define CONFIG_LAYOUT_V1 1

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | ((uint16_t)p[1] << 8)); }

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

uint8_t config_parse(const uint8_t *block, board_config_t *out)
{
    *out = limits_default_config;
    uint8_t layout = block[2];
    uint8_t bytes = layout == CONFIG_LAYOUT_V1 ? CONFIG_BLOCK_V1_BYTES : CONFIG_BLOCK_BYTES;
    if (get16(block) != CONFIG_MAGIC || (layout != CONFIG_LAYOUT && layout != CONFIG_LAYOUT_V1) ||
        crc16(block, bytes) != 0)
        return 0;
    board_config_t cfg = limits_default_config;
    cfg.board_id = (uint32_t)get16(block + 3) | ((uint32_t)get16(block + 5) << 16);
    cfg.comm_timeout_ms = get16(block + 7);
    cfg.max_on_time_ms = get16(block + 9);
    cfg.max_amplitude_10ua = get16(block + 11);
    cfg.max_pulse_width_us = get16(block + 13);
    cfg.max_frequency_chz = get16(block + 15);
    cfg.max_gap_us = get16(block + 17);
    cfg.max_ratio_x100 = get16(block + 19);
    if (layout == CONFIG_LAYOUT) {
        cfg.max_charge_cuc = get16(block + 21);
        cfg.max_duty_permille = get16(block + 23);
    }
    if (!limits_config_valid(&cfg))
        return 0;
    *out = cfg;
    return 1;
}

void config_encode(const board_config_t *cfg, uint8_t *block)
{
    put16(block, CONFIG_MAGIC);
    block[2] = CONFIG_LAYOUT;
    put16(block + 3, (uint16_t)cfg->board_id);
    put16(block + 5, (uint16_t)(cfg->board_id >> 16));
    put16(block + 7, cfg->comm_timeout_ms);
    put16(block + 9, cfg->max_on_time_ms);
    put16(block + 11, cfg->max_amplitude_10ua);
    put16(block + 13, cfg->max_pulse_width_us);
    put16(block + 15, cfg->max_frequency_chz);
    put16(block + 17, cfg->max_gap_us);
    put16(block + 19, cfg->max_ratio_x100);
    put16(block + 21, cfg->max_charge_cuc);
    put16(block + 23, cfg->max_duty_permille);
    uint16_t crc = crc16(block, CONFIG_BLOCK_BYTES - 2);
    block[25] = (uint8_t)(crc >> 8);
    block[26] = (uint8_t)crc;
}
