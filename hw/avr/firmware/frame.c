/* Framing: see frame.h. */
#include "frame.h"

#ifdef __AVR__
#include <util/crc16.h>
#endif

uint16_t crc16_update(uint16_t crc, uint8_t byte)
{
#ifdef __AVR__
    /* avr-libc's hand-written loop of the same polynomial (0x1021, MSB first). */
    return _crc_xmodem_update(crc, byte);
#else
    crc ^= (uint16_t)byte << 8;
    for (uint8_t i = 0; i < 8; i++)
        crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    return crc;
#endif
}

uint16_t crc16(const uint8_t *data, uint16_t n)
{
    uint16_t crc = 0xFFFFu;
    while (n--)
        crc = crc16_update(crc, *data++);
    return crc;
}

uint16_t cobs_encode(const uint8_t *in, uint16_t n, uint8_t *out)
{
    uint16_t code_at = 0, o = 1;
    uint8_t code = 1;
    for (uint16_t i = 0; i < n; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            if (++code == 0xFF) {
                out[code_at] = code;
                if (i + 1 == n)
                    return o; /* a full block ends the data: no implicit zero follows */
                code_at = o++;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    return o;
}

int16_t cobs_decode(uint8_t *buf, uint16_t n)
{
    uint16_t i = 0, o = 0;
    while (i < n) {
        uint8_t code = buf[i];
        if (code == 0 || (uint16_t)(i + code) > n)
            return -1;
        for (uint8_t k = 1; k < code; k++) {
            uint8_t b = buf[i + k];
            if (b == 0)
                return -1;
            buf[o++] = b;
        }
        i += code;
        if (code < 0xFF && i < n)
            buf[o++] = 0;
    }
    return (int16_t)o;
}

uint16_t frame_encode(const uint8_t *body, uint8_t n, uint8_t *out)
{
    uint8_t decoded[FRAME_MAX_DECODED];
    if ((uint16_t)n + 2 > FRAME_MAX_DECODED)
        return 0;
    uint16_t crc = 0xFFFFu;
    for (uint8_t i = 0; i < n; i++) {
        decoded[i] = body[i];
        crc = crc16_update(crc, body[i]);
    }
    decoded[n] = (uint8_t)(crc >> 8);
    decoded[n + 1] = (uint8_t)crc;
    uint16_t len = cobs_encode(decoded, (uint16_t)(n + 2), out);
    out[len++] = 0;
    return len;
}

void frame_rx_init(frame_rx_t *rx)
{
    rx->n = 0;
    rx->frame_len = 0;
    rx->overflow = 0;
}

void frame_rx_damaged(frame_rx_t *rx)
{
    if (rx->n)
        rx->overflow = 1;
}

uint8_t frame_rx_byte(frame_rx_t *rx, uint8_t byte)
{
    if (byte != 0) {
        if (rx->overflow)
            return FRAME_RX_NONE;
        if (rx->n >= FRAME_MAX_ENCODED) {
            rx->overflow = 1;
            rx->n = 0;
            return FRAME_RX_NONE;
        }
        rx->buf[rx->n++] = byte;
        return FRAME_RX_NONE;
    }
    /* A delimiter ends whatever was collected. */
    uint16_t n = rx->n;
    uint8_t overflow = rx->overflow;
    rx->n = 0;
    rx->overflow = 0;
    if (overflow)
        return FRAME_RX_BAD;
    if (n == 0)
        return FRAME_RX_NONE; /* back-to-back delimiters: idle line */
    int16_t len = cobs_decode(rx->buf, n);
    if (len < 4 || crc16(rx->buf, (uint16_t)len) != 0)
        return FRAME_RX_BAD;
    rx->frame_len = (uint16_t)len;
    return FRAME_RX_OK;
}
