/*
 * Framing of docs/protocol.md section 2, portable C (the firmware, the simavr harness's
 * frame analyser and the host unit tests compile the same file):
 * CRC-16/CCITT-FALSE over type, seq and payload, high byte first, then COBS with one
 * 0x00 delimiter per frame. No dynamic memory; a receiver holds one encoded frame.
 */
#ifndef FES_FRAME_H
#define FES_FRAME_H

#include <stdint.h>

/* Largest decoded frame (type + seq + payload + CRC) and encoded frame. */
#define FRAME_MAX_DECODED 254
#define FRAME_MAX_ENCODED 255
/* Largest payload: the decoded frame less type, seq and CRC. */
#define FRAME_MAX_PAYLOAD (FRAME_MAX_DECODED - 4)
/* An encoded frame with its delimiter fits this buffer. */
#define FRAME_WIRE_MAX (FRAME_MAX_ENCODED + 1)

uint16_t crc16_update(uint16_t crc, uint8_t byte);
/* CRC-16/CCITT-FALSE of n bytes (initial value 0xFFFF). */
uint16_t crc16(const uint8_t *data, uint16_t n);

/* COBS-encode n bytes (n <= FRAME_MAX_DECODED) into out; returns the encoded length
 * (no delimiter). out must hold n + 1 bytes. */
uint16_t cobs_encode(const uint8_t *in, uint16_t n, uint8_t *out);
/* Decode n COBS bytes in place; returns the decoded length, or -1 for a code byte of 0,
 * a zero inside a block or a block running past the end. */
int16_t cobs_decode(uint8_t *buf, uint16_t n);

/* The frame on the wire for body = type, seq, payload (n bytes, n + 2 <= 254): CRC
 * appended, COBS, delimiter. Returns the number of bytes written to out
 * (FRAME_WIRE_MAX at most), 0 if the body is too long. */
uint16_t frame_encode(const uint8_t *body, uint8_t n, uint8_t *out);

/* A receiver: feed it bytes; it reports each complete frame. */
typedef struct {
    uint8_t buf[FRAME_MAX_ENCODED];
    uint16_t n;         /* encoded bytes collected */
    uint16_t frame_len; /* after FRAME_RX_OK: decoded bytes in buf, CRC included */
    uint8_t overflow;
} frame_rx_t;

enum {
    FRAME_RX_NONE = 0, /* nothing complete yet (or an idle delimiter) */
    FRAME_RX_OK = 1,   /* a valid frame: rx->buf holds it decoded (rx->frame_len bytes) */
    FRAME_RX_BAD = 2,  /* a bad frame (framing, CRC, too long, too short): count it */
};

void frame_rx_init(frame_rx_t *rx);
/* One byte from the line. After FRAME_RX_OK the frame stays in buf until the next
 * byte is fed. */
uint8_t frame_rx_byte(frame_rx_t *rx, uint8_t byte);
/* Bytes of the line were lost here: a frame collected in part, with what follows up to
 * the next delimiter, is one bad frame. (A frame whose start was lost is refused by its
 * CRC and exact length, as any frame missing bytes: docs/protocol.md section 2.) */
void frame_rx_damaged(frame_rx_t *rx);
/* Nonzero while a frame is collected in part: bytes since the last delimiter, none of
 * them known to be damaged (frame_rx_damaged, or too long). */
static inline uint8_t frame_rx_partial(const frame_rx_t *rx) { return rx->n && !rx->overflow; }

#endif
