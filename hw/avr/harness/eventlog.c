/* JSON-lines event log, in the format of the Python board emulator's --log: one object
 * per line with "event", "monotonic_s" (CLOCK_MONOTONIC, as Python's time.monotonic on
 * Linux) and "board_t_s". Lines are written whole with O_APPEND, so the harness and the
 * Python side can share the file. */
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static int fd = -1;
static char line[4096];
static size_t used;

void log_open(const char *path)
{
    if (path)
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

void log_printf(const char *fmt, ...)
{
    if (fd < 0 || used >= sizeof(line))
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + used, sizeof(line) - used, fmt, ap);
    va_end(ap);
    if (n > 0)
        used += (size_t)n < sizeof(line) - used ? (size_t)n : sizeof(line) - used - 1;
}

void log_begin_at(const char *name, double board_t_s)
{
    used = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    log_printf("{\"event\": \"%s\", \"monotonic_s\": %.6f, \"board_t_s\": %.7f", name,
               (double)ts.tv_sec + ts.tv_nsec * 1e-9, board_t_s);
}

void log_begin(const char *name) { log_begin_at(name, board_time_s()); }

void log_end(void)
{
    if (fd < 0)
        return;
    log_printf("}\n");
    if (used && line[used - 1] != '\n') { /* truncated: keep the line valid JSON */
        used = 0;
        log_printf("{\"event\": \"log_line_too_long\"}\n");
    }
    ssize_t written = write(fd, line, used);
    (void)written;
    used = 0;
}

void log_close(void)
{
    if (fd >= 0)
        close(fd);
    fd = -1;
}
