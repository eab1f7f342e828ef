/*
 * clock.h — the monotonic clock, in the one unit the code uses (ms), and
 * condition variables that wait on it.
 *
 * Deadlines and timeouts are on CLOCK_MONOTONIC: a clock set back by NTP
 * or by hand never makes a lease, a heartbeat or a long-poll wait wrong.
 * A condition variable made by sp_cond_init_mono takes its absolute
 * timeouts on that clock, from sp_clock_abs.
 */
#ifndef SP_CLOCK_H
#define SP_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t sp_clock_ms(void);

/* *ts = the instant mono_ms (sp_clock_ms's clock), for
 * pthread_cond_timedwait on a condition variable of sp_cond_init_mono. */
void sp_clock_abs(struct timespec *ts, int64_t mono_ms);

/* pthread_cond_init with CLOCK_MONOTONIC for its timed waits. */
void sp_cond_init_mono(pthread_cond_t *c);

#endif
