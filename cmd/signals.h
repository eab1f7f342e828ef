/*
 * signals.h — Ctrl-C and SIGTERM for the commands.
 *
 * The first SIGINT/SIGTERM only sets a flag; long operations poll it
 * (sp_signals_cancel is an sp_engine_cancel_fn) and stop cleanly, removing
 * what they created, and the command exits 130.  A second signal ends the
 * process at once.  This flag is the one piece of global state
 * stagepipe has: a signal handler can reach nothing else.
 */
#ifndef SP_CMD_SIGNALS_H
#define SP_CMD_SIGNALS_H

/* Installs the handlers (and ignores SIGPIPE). */
void sp_signals_install(void);

/* The signal received (SIGINT, SIGTERM) or 0. */
int sp_signals_received(void);

/* Non-zero once a signal arrived; ud is unused. For request cancel hooks. */
int sp_signals_cancel(void *ud);

#endif
