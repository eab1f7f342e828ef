/*
 * signals.c — the interrupt flag; see signals.h.
 *
 * SIGHUP is handled like SIGTERM: a closed terminal or a dropped ssh
 * session must still stop the run cleanly and remove its containers, and
 * the default action (die at once) would leave them behind.
 */
#include "cmd/signals.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

/* atomic: set by the handler in whichever thread got the signal, read by
 * every stage's thread (a lock-free atomic is async-signal-safe) */
static int received;

static void on_signal(int sig)
{
	static const char msg[] =
		"\nstagepipe: interrupted; stopping and cleaning up (again to quit at once)\n";
	int saved_errno = errno;  /* the interrupted code may be about to read it */

	if (__atomic_load_n(&received, __ATOMIC_SEQ_CST)) {
		signal(sig, SIG_DFL);
		raise(sig);
		errno = saved_errno;
		return;
	}
	__atomic_store_n(&received, sig, __ATOMIC_SEQ_CST);
	/* fails harmlessly once the terminal is gone (SIGHUP) */
	(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
	errno = saved_errno;
}

void sp_signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int sp_signals_received(void)
{
	return __atomic_load_n(&received, __ATOMIC_SEQ_CST);
}

int sp_signals_cancel(void *ud)
{
	(void)ud;
	return __atomic_load_n(&received, __ATOMIC_SEQ_CST) != 0;
}
