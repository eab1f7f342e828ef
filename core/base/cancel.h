/*
 * cancel.h — one check for "stop now": a signal, or a deadline that passed.
 *
 * Long operations (a build, a test container, a push) poll a cancel
 * callback; struct sp_cancel combines the caller's own callback (Ctrl-C)
 * with a deadline (the stage's timeout) and remembers which one fired,
 * so that the caller can say "timed out after 15m" rather than
 * "interrupted".
 */
#ifndef SP_CANCEL_H
#define SP_CANCEL_H

#include <stdint.h>

/* Non-zero means stop. */
typedef int (*sp_cancel_fn)(void *ud);

struct sp_cancel {
	sp_cancel_fn fn;       /* may be NULL */
	void *ud;
	int64_t deadline_ms;   /* on sp_cancel_now_ms()'s clock; 0: none */
	int reason;            /* 0, SP_ECANCELLED or SP_ETIMEOUT once fired */
};

/* Milliseconds on a monotonic clock. */
int64_t sp_cancel_now_ms(void);

/* An sp_cancel_fn over a struct sp_cancel (ud); sets its reason. */
int sp_cancel_check(void *ud);

#endif
