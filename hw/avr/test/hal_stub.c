/* The session's platform hooks for the host library the Python tests load (ctypes):
 * frames sent and outputs set are recorded in buffers the tests read back. */
#include <string.h>

#include "session.h"

#define STUB_FRAMES 64

uint8_t stub_frames[STUB_FRAMES][256];
uint8_t stub_frame_len[STUB_FRAMES];
int stub_frame_count;
setting_t stub_outputs[SESSION_CHANNELS];
int stub_grid_starts;

void session_hal_send(const uint8_t *body, uint8_t n)
{
    if (stub_frame_count >= STUB_FRAMES)
        return;
    memcpy(stub_frames[stub_frame_count], body, n);
    stub_frame_len[stub_frame_count++] = n;
}

void session_hal_output(uint8_t channel, const setting_t *setting)
{
    stub_outputs[channel] = *setting;
}

uint32_t session_hal_grid_start(void)
{
    stub_grid_starts++;
    return 1000;
}

void stub_reset(void)
{
    stub_frame_count = 0;
}

unsigned stub_session_size(void) { return sizeof(session_t); }
