/* ppoll_loop.c: sleeps 0.1 ms in ppoll() over and over until killed, doing nothing else,
 * so hw/ppoll_waits.c preloaded into it logs each of its waits for a CPU at the sleep it
 * fell in: the truth tests/test_ppoll_waits.py checks a sampler (hw.runqueue.WaitWatch)
 * against. Built by that test with the machine's C compiler. */
#define _GNU_SOURCE
#include <poll.h>
#include <stddef.h>
#include <time.h>

int main(void) {
	const struct timespec sleep = {0, 100000};
	for (;;) ppoll(NULL, 0, &sleep, NULL);
}
