/* ppoll_loop.c: sleeps 0.1 ms in ppoll() over and over until killed, after each sleep
 * working (spinning on the clock) for the microseconds given as its one argument, none by
 * default, so hw/ppoll_waits.c preloaded into it logs each of its waits for a CPU at the
 * sleep and work it fell in: the truth tests/test_ppoll_waits.py checks a sampler
 * (hw.runqueue.WaitWatch) against. Built by that test with the machine's C compiler. */
#define _GNU_SOURCE
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

static long long now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
	const struct timespec sleep = {0, 100000};
	const long long work_ns = argc > 1 ? atoll(argv[1]) * 1000LL : 0;
	for (;;) {
		ppoll(NULL, 0, &sleep, NULL);
		for (const long long end = now_ns() + work_ns; now_ns() < end;) {
		}
	}
}
