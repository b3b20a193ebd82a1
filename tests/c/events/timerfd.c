/*
 * timerfd: one-shot and periodic expirations (counted in ranges, since
 * timing varies), absolute times in the past, timerfd_gettime, blocking and
 * non-blocking reads, and the errors.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "../veiltest.h"

#define ERR(expr) do { errno = 0; long r_ = (expr); report("%s = %s", #expr, res(r_, errno)); } while (0)
#define MS (1000 * 1000)
/* A check whose detail (a timing-dependent value) shows only on failure. */
#define CHECK(ok, name, ...) do { if (ok) check(1, name, NULL); else check(0, name, __VA_ARGS__); } while (0)

int main(void)
{
	uint64_t ticks = 0;
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	ERR(read(fd, &ticks, 8));
	struct itimerspec cur;
	timerfd_gettime(fd, &cur);
	report("disarmed: %ld %ld", (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);

	/* Periodic: 10 ms, read after ~55 ms. */
	struct itimerspec its = { .it_value = { 0, 10 * MS }, .it_interval = { 0, 10 * MS } };
	ERR(timerfd_settime(fd, 0, &its, NULL));
	usleep(55 * 1000);
	ERR(read(fd, &ticks, 8));
	CHECK(ticks >= 4 && ticks <= 7, "periodic count", "%llu", (unsigned long long)ticks);
	timerfd_gettime(fd, &cur);
	CHECK(cur.it_interval.tv_nsec == 10 * MS && cur.it_value.tv_sec == 0 &&
		      cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 10 * MS,
	      "gettime", "%ld.%09ld", (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);

	/* Blocking reads wait for the next expiration. */
	int flags = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	ERR(read(fd, &ticks, 8));
	CHECK(ticks >= 1 && ticks <= 2, "blocking read", "%llu", (unsigned long long)ticks);

	/* Re-arming returns the old setting and restarts the count. */
	struct itimerspec old;
	struct itimerspec one = { .it_value = { 5, 0 } };
	ERR(timerfd_settime(fd, 0, &one, &old));
	report("old interval %ld", old.it_interval.tv_nsec);
	timerfd_gettime(fd, &cur);
	CHECK(cur.it_value.tv_sec == 4 || cur.it_value.tv_sec == 5, "one-shot remaining", "%ld",
	      (long)cur.it_value.tv_sec);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	report("not ready: %d", poll(&p, 1, 0));

	/* An absolute time in the past fires at once. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int rfd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	struct itimerspec past = { .it_value = { now.tv_sec - 10, 0 } };
	ERR(timerfd_settime(rfd, TFD_TIMER_ABSTIME, &past, NULL));
	report("past ready: %d", poll(&(struct pollfd){ .fd = rfd, .events = POLLIN }, 1, 0));
	ERR(read(rfd, &ticks, 8));
	report("past ticks %llu", (unsigned long long)ticks);
	/* Periodic from the past: the missed periods count. */
	struct itimerspec past_periodic = { .it_value = { now.tv_sec - 10, now.tv_nsec },
					    .it_interval = { 1, 0 } };
	ERR(timerfd_settime(rfd, TFD_TIMER_ABSTIME, &past_periodic, NULL));
	ERR(read(rfd, &ticks, 8));
	CHECK(ticks >= 10 && ticks <= 12, "missed periods", "%llu", (unsigned long long)ticks);
	struct itimerspec future = { .it_value = { now.tv_sec + 100, 0 } };
	ERR(timerfd_settime(rfd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &future, NULL));
	timerfd_gettime(rfd, &cur);
	CHECK(cur.it_value.tv_sec >= 98 && cur.it_value.tv_sec <= 100, "absolute remaining", "%ld",
	      (long)cur.it_value.tv_sec);

	int bfd = timerfd_create(CLOCK_BOOTTIME, 0);
	report("boottime %d", bfd >= 0);
	struct itimerspec bad = { .it_value = { 0, 1000 * MS } };
	ERR(timerfd_create(CLOCK_PROCESS_CPUTIME_ID, 0));
	ERR(timerfd_create(CLOCK_MONOTONIC, 1));
	ERR(timerfd_settime(fd, 0, &bad, NULL));
	ERR(timerfd_settime(fd, 4, &one, NULL));
	ERR(timerfd_settime(0, 0, &one, NULL));
	ERR(timerfd_settime(99, 0, &one, NULL));
	ERR(timerfd_gettime(0, &cur));
	ERR(timerfd_settime(fd, 0, NULL, NULL));
	char small[4];
	ERR(read(fd, small, sizeof small));
	ERR(write(fd, &ticks, 8));
	close(bfd);
	close(rfd);
	close(fd);
	return finish();
}
