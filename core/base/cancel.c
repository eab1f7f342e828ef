/*
 * cancel.c — signal-or-deadline checks; see cancel.h.
 */
#include "core/base/cancel.h"

#include <time.h>

#include "core/base/clock.h"
#include "core/base/error.h"

int64_t sp_cancel_now_ms(void)
{
	return sp_clock_ms();
}

int sp_cancel_check(void *ud)
{
	struct sp_cancel *c = ud;

	if (c->reason)
		return 1;
	if (c->fn && c->fn(c->ud))
		c->reason = SP_ECANCELLED;
	else if (c->deadline_ms && sp_cancel_now_ms() >= c->deadline_ms)
		c->reason = SP_ETIMEOUT;
	return c->reason != 0;
}
