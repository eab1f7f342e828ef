/*
 * signals.h — Ctrl-C, SIGTERM and SIGHUP for the commands.
 *
 * The first SIGINT/SIGTERM/SIGHUP only sets a flag; long operations poll
 * it (sp_signals_cancel is an sp_engine_cancel_fn) and stop cleanly,
 * removing what they created, and the command exits 130.  SIGHUP (the
 * terminal closed, an ssh session dropped) counts as a request to stop,
 * not as a reason to die on the spot with containers left running.  A
 * second signal ends the process at once.  The handler keeps errno as it
 * found it.  This flag is the one piece of global state stagepipe has: a
 * signal handler can reach nothing else.
 */
#ifndef SP_CMD_SIGNALS_H
#define SP_CMD_SIGNALS_H

/* Installs the handlers (and ignores SIGPIPE). */
void sp_signals_install(void);

/* The signal received (SIGINT, SIGTERM, SIGHUP) or 0. */
int sp_signals_received(void);

/* Non-zero once a signal arrived; ud is unused. For request cancel hooks. */
int sp_signals_cancel(void *ud);

#endif
