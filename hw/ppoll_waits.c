/* ppoll_waits.c: a process's own waits for a CPU, logged where they happen.
 *
 * Preloaded (LD_PRELOAD) into a program that sleeps in ppoll() between short steps of
 * work (openEMSstim's firmware harness: at most 0.25 ms per sleep), it wraps ppoll():
 * at each return it reads the calling thread's run-queue wait so far (the kernel's
 * /proc/thread-self/schedstat, 2nd field, ns) and CLOCK_MONOTONIC; when the wait grew by
 * at least PPOLL_WAITS_MIN_NS since that thread's previous return (or shorter growths
 * added up reach it: note_return), it appends one line to the file named by
 * $PPOLL_WAITS_LOG, the event hw.runqueue.paused_event makes:
 *   {"event": "paused", "monotonic_s": now, "since_s": previous return (or the one
 *    before the first of the short waits added up),
 *    "waited_ms": growth, "pid": getpid(), "tid": gettid()}
 * So a wait is located to within one sleep plus the work between two sleeps, however
 * long the machine keeps a watcher in another process off the CPU. The thread reads its
 * own count while it runs, so every wait counted has ended (the kernel adds a wait when
 * the thread gets the CPU back). Built by hw/ppoll_waits.py; the project's own code,
 * no upstream code in it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#ifndef PPOLL_WAITS_MIN_NS
#error "build with -DPPOLL_WAITS_MIN_NS=<ns> (hw.runqueue.LOG_WAIT_S)"
#endif

typedef int (*ppoll_fn)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);

static ppoll_fn real_ppoll;
static int log_fd = -2; /* -2: not opened yet, -1: no log wanted or it cannot be opened */
static __thread int stat_fd = -2;
static __thread long long last_wait_ns = -1;
static __thread double last_s; /* the previous return, stamped before its count */

/* The calling thread's run-queue wait so far (ns), or -1 when the kernel does not say. */
static long long thread_wait_ns(void) {
	if (stat_fd == -2) stat_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	if (stat_fd < 0) return -1;
	char buf[128];
	ssize_t n = pread(stat_fd, buf, sizeof buf - 1, 0);
	if (n <= 0) return -1;
	buf[n] = '\0';
	unsigned long long on_cpu, waited;
	return sscanf(buf, "%llu %llu", &on_cpu, &waited) == 2 ? (long long)waited : -1;
}

static double monotonic_s(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void log_wait(double since_s, double now_s, long long waited_ns) {
	char line[200];
	int n = snprintf(line, sizeof line,
	                 "{\"event\": \"paused\", \"monotonic_s\": %.9f, \"since_s\": %.9f, "
	                 "\"waited_ms\": %.3f, \"pid\": %d, \"tid\": %d}\n",
	                 now_s, since_s, (double)waited_ns / 1e6, (int)getpid(), (int)gettid());
	if (n > 0 && n < (int)sizeof line && write(log_fd, line, (size_t)n) != n) {
		/* a full disk loses a line; the firmware must go on */
	}
}

/* Note the wait since the previous return. One of at least PPOLL_WAITS_MIN_NS is logged
 * on its own (located within this one sleep and the work before it); shorter ones are
 * added up from the first of them and logged together once they reach it, so that many
 * short waits (a core shared with busy loops) are not lost, and a long wait is never
 * spread over their span. */
static __thread long long pending_ns;
static __thread double pending_since_s;

static void note_return(void) {
	/* Stamped before and after the count: a wait counted now ended before `now`, and
	 * one not counted at the previous return began after that return's `before`. */
	double before = monotonic_s();
	long long waited = thread_wait_ns();
	double now = monotonic_s();
	if (waited < 0) return;
	long long grown = last_wait_ns >= 0 ? waited - last_wait_ns : 0;
	if (log_fd >= 0 && grown >= PPOLL_WAITS_MIN_NS) {
		log_wait(last_s, now, grown);
	} else if (log_fd >= 0 && grown > 0) {
		if (pending_ns == 0) pending_since_s = last_s;
		pending_ns += grown;
		if (pending_ns >= PPOLL_WAITS_MIN_NS) {
			log_wait(pending_since_s, now, pending_ns);
			pending_ns = 0;
		}
	}
	last_wait_ns = waited;
	last_s = before;
}

int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
          const sigset_t *sigmask) {
	if (real_ppoll == NULL) real_ppoll = (ppoll_fn)dlsym(RTLD_NEXT, "ppoll");
	if (log_fd == -2) {
		const char *path = getenv("PPOLL_WAITS_LOG");
		log_fd = path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
	}
	int done = real_ppoll(fds, nfds, timeout, sigmask);
	int saved = errno; /* the caller may read ppoll's errno (EINTR) */
	note_return();
	errno = saved;
	return done;
}
