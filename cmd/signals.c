/*
 * signals.c — the interrupt flag; see signals.h.
 */
#include "cmd/signals.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t received;

static void on_signal(int sig)
{
	static const char msg[] =
		"\nstagepipe: interrupted; stopping and cleaning up (again to quit at once)\n";

	if (received) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	received = sig;
	(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
}

void sp_signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int sp_signals_received(void)
{
	return received;
}

int sp_signals_cancel(void *ud)
{
	(void)ud;
	return received != 0;
}
