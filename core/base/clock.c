/*
 * clock.c — the monotonic clock in ms; see clock.h.
 */
#include "core/base/clock.h"

int64_t sp_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sp_clock_abs(struct timespec *ts, int64_t mono_ms)
{
	ts->tv_sec = (time_t)(mono_ms / 1000);
	ts->tv_nsec = (long)(mono_ms % 1000) * 1000000L;
}

void sp_cond_init_mono(pthread_cond_t *c)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}
