/*
 * serve.c — `stagepipe serve`: the webhook-triggered build server.
 *
 * Thin: load the config (core/server/config.c), open the store, start the
 * parts of core/server/server.h in order, then wait for a signal.  The
 * signals are blocked in every thread (the mask is set before the first
 * thread starts and inherited) and taken synchronously with sigwait(2), so
 * no part ever runs in a signal handler.
 *
 * SIGTERM, SIGINT or SIGHUP: drain — hooks answer 503, no new leases
 * (agents' long-polls end with 204, their lease calls answer 503; their
 * running jobs carry on and report), local running jobs get drain_timeout, the outbox 5 s, then the HTTP daemons
 * stop and the store closes: exit 0.  A second signal during the drain
 * cancels the running jobs at once (they are requeued): exit 130.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "core/base/error.h"
#include "core/base/log.h"
#include "core/base/xalloc.h"
#include "core/server/config.h"
#include "core/server/server.h"
#include "core/store/store.h"
#include "core/yaml/diag.h"

#define DEFAULT_CONFIG "/etc/stagepipe/serve.yml"
#define OUTBOX_STOP_MS 5000

static int run_serve(int argc, char **argv);

const struct sp_cmd sp_cmd_serve = {
	"serve",
	"run the webhook-triggered build server",
	"usage: stagepipe serve [-c FILE] [--check | --migrate]\n"
	"\n"
	"Runs the build server: forge webhooks (POST /hooks/REPO) queue jobs in a\n"
	"durable store, local workers run them, commit statuses go back to the\n"
	"forge, and a JSON API, live logs and /metrics are served.  Remote\n"
	"`stagepipe agent`s listed in the config lease jobs over HTTP.  The config\n"
	"file's keys are described in contrib/serve.example.yml.\n"
	"\n"
	"  -c, --config FILE  config file (default: " DEFAULT_CONFIG ")\n"
	"      --check        load and check the config (secrets included), print a\n"
	"                     summary and exit\n"
	"      --migrate      open the config's store, bring its schema up to date and\n"
	"                     exit (serve does it too at start; this is for upgrades\n"
	"                     done before the servers start)\n"
	"\n"
	"SIGTERM (or SIGINT, SIGHUP) drains: hooks answer 503, running jobs get the\n"
	"config's drain_timeout, then are requeued; a second signal stops at once.\n"
	"Log lines (logfmt) go to stderr; SP_LOG_LEVEL=debug|info|warn|error.\n"
	"\n"
	"Exit status: 0 after a drain, 2 config error, 3 cannot listen or open the\n"
	"store, 130 stopped by a second signal.\n",
	run_serve,
};

/* mkdir -p path (mode for the folders it makes). */
static int mkdirs(const char *path, mode_t mode, struct sp_error *err)
{
	char *p = sp_xstrdup(path), *s;
	int rc = 0;

	for (s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		{
			char c = *s;
			*s = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST) {
				rc = sp_error_set(err, SP_ERROR, "cannot create the folder %s: %s", p,
						  strerror(errno));
				break;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	free(p);
	return rc;
}

struct forcer {
	sigset_t set;
	struct sp_server *srv;
	atomic_bool forced;
	atomic_bool done;     /* the drain is over: the thread ends */
};

/*
 * Waits for the second signal of a drain: stop the running jobs at once.
 * Polls done every 200 ms and is joined before the parts it touches (and
 * the forcer, on run_serve's stack) go away.  Not pthread_cancel: a
 * cancelled thread unwinds past ASan's stack bookkeeping.
 */
static void *force_thread(void *arg)
{
	struct forcer *f = arg;
	const struct timespec tick = { 0, 200 * 1000 * 1000 };
	siginfo_t si;
	int sig;

	while (!atomic_load(&f->done)) {
		sig = sigtimedwait(&f->set, &si, &tick);
		if (sig < 0)
			continue;  /* EAGAIN (tick) or EINTR */
		sp_log_warn("serve.force", "signal=%s", strsignal(sig));
		atomic_store(&f->forced, true);
		if (f->srv->workers)
			sp_workers_force(f->srv->workers);
		break;
	}
	return NULL;
}

/*
 * Every connection is a socket and a log stream one more file: with the
 * usual soft limit of 1024 descriptors the connection limit (1024 per
 * listen address) could never be reached.  Raised towards the hard limit,
 * not past FD_MAX (job children inherit it, and some tools loop over it).
 */
#define FD_MAX 8192
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= FD_MAX)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > FD_MAX ? FD_MAX : rl.rlim_max;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
}

static const char *self_exe(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);

	if (n <= 0)
		return "stagepipe";
	buf[n] = '\0';
	return buf;
}

static int check_only(const struct sp_server_config *cfg)
{
	size_t i;

	printf("%s: ok (%zu repo%s, listening on ", cfg->file, cfg->nrepos,
	       cfg->nrepos == 1 ? "" : "s");
	for (i = 0; i < cfg->nlisten; i++)
		printf("%s%s", i ? ", " : "", cfg->listen[i]);
	printf("%s, %d worker%s, %zu agent%s)\n", cfg->tls_cert ? " with TLS" : "", cfg->workers,
	       cfg->workers == 1 ? "" : "s", cfg->nagents, cfg->nagents == 1 ? "" : "s");
	return SP_EXIT_OK;
}

/* sp_store_listen's callback: a job was queued by another server. */
static void store_queued(void *arg)
{
	sp_server_queued(arg);
}

/* serve --migrate: opening the store migrates it (once, whoever else does). */
static int migrate_only(const struct sp_server_config *cfg)
{
	struct sp_store_opts o;
	struct sp_store *st = NULL;
	struct sp_error err = SP_ERROR_INIT;
	char *dbpath = sp_xasprintf("%s/stagepipe.db", cfg->data);
	char shown[512];
	int status = SP_EXIT_OK;

	memset(&o, 0, sizeof(o));
	o.path = dbpath;
	o.url = cfg->store_url;
	if (cfg->store_url)
		sp_store_pg_mask_url(cfg->store_url, shown, sizeof(shown));
	else
		snprintf(shown, sizeof(shown), "%s", dbpath);
	if (!cfg->store_url && mkdirs(cfg->data, 0750, &err) < 0) {
		fprintf(stderr, "stagepipe serve: %s\n", err.msg);
		status = SP_EXIT_INFRA;
	} else if (sp_store_open(&st, &o, &err) < 0) {
		fprintf(stderr, "stagepipe serve: %s\n", err.msg);
		status = err.code == SP_ECONFIG ? SP_EXIT_USAGE : SP_EXIT_INFRA;
	} else {
		printf("%s: schema version %d\n", shown, sp_store_schema_version());
	}
	sp_store_close(st);
	free(dbpath);
	return status;
}

static int run_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'C' },
		{ "migrate", no_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sp_diags diags = SP_DIAGS_INIT;
	struct sp_server_config *cfg = NULL;
	struct sp_error err = SP_ERROR_INIT;
	struct sp_store_opts sopts;
	struct sp_server srv;
	struct forcer forcer;
	pthread_t force_tid;
	sigset_t set;
	const char *file = DEFAULT_CONFIG;
	char exe[PATH_MAX], q[600], *dbpath = NULL, *logs = NULL;
	bool check = false, migrate = false, forced, force_started;
	int c, sig = 0, status = SP_EXIT_OK;

	while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': file = optarg; break;
		case 'C': check = true; break;
		case 'M': migrate = true; break;
		case 'h': sp_cmd_print_usage(&sp_cmd_serve, stdout); return SP_EXIT_OK;
		default: return sp_cmd_usage_error(&sp_cmd_serve, "bad option");
		}
	}
	if (optind < argc)
		return sp_cmd_usage_error(&sp_cmd_serve, "unexpected argument \"%s\"", argv[optind]);
	if (check && migrate)
		return sp_cmd_usage_error(&sp_cmd_serve, "--check and --migrate do not go together");

	if (sp_server_config_load(&cfg, file, NULL, &diags) < 0) {
		sp_diags_print(&diags, file, stderr);
		sp_diags_release(&diags);
		return SP_EXIT_USAGE;
	}
	sp_diags_release(&diags);
	if (check) {
		status = check_only(cfg);
		sp_server_config_free(cfg);
		return status;
	}
	if (migrate) {
		status = migrate_only(cfg);
		sp_server_config_free(cfg);
		return status;
	}

	/* Before any thread exists: every thread inherits this mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	sp_log_init(2);
	raise_fd_limit();
	memset(&srv, 0, sizeof(srv));
	srv.cfg = cfg;
	srv.self_exe = cfg->stagepipe ? cfg->stagepipe : self_exe(exe, sizeof(exe));
	atomic_init(&srv.draining, false);
	sp_log_info("serve.start", "version=%s config=%s data=%s workers=%d repos=%zu agents=%zu "
		    "pid=%ld", SP_VERSION, sp_log_quote(file, q, sizeof(q)), cfg->data, cfg->workers,
		    cfg->nrepos, cfg->nagents, (long)getpid());

	logs = sp_xasprintf("%s/logs", cfg->data);
	if (mkdirs(cfg->data, 0750, &err) < 0 || mkdirs(logs, 0750, &err) < 0)
		goto infra;
	dbpath = sp_xasprintf("%s/stagepipe.db", cfg->data);
	memset(&sopts, 0, sizeof(sopts));
	sopts.path = dbpath;
	sopts.url = cfg->store_url;  /* set: PostgreSQL */
	if (sp_store_open(&srv.store, &sopts, &err) < 0)
		goto infra;
	if (cfg->store_url) {
		char shown[512];
		sp_store_pg_mask_url(cfg->store_url, shown, sizeof(shown));
		sp_log_info("serve.store", "backend=postgres url=%s",
			    sp_log_quote(shown, q, sizeof(q)));
	}
	srv.metrics = sp_metrics_new();
	/* before any thread: the slots and the keeper wake agents' long-polls */
	if (sp_agents_new(&srv.agents, &srv, &err) < 0)
		goto infra;
	if (sp_outbox_start(&srv.outbox, &srv, &err) < 0)
		goto infra;
	/* always: with workers 0 there is no slot, but the lease keeper must
	 * still take back the jobs of agents (or an earlier run) that died */
	if (sp_workers_start(&srv.workers, &srv, &err) < 0)
		goto infra;
	/* other servers on the same PostgreSQL queue jobs too: their NOTIFY
	 * wakes our slots and long-polls at once */
	if (sp_store_listen(srv.store, store_queued, &srv, &err) < 0)
		goto infra;
	if (sp_http_start(&srv.http, &srv, &err) < 0)
		goto infra;
	sp_log_info("serve.ready", "listen=%s public_url=%s", cfg->listen[0], cfg->public_url);

	while (sigwait(&set, &sig) != 0)
		;
	/* the drain: agents' long-polls answer 204 at once, their lease calls
	 * 503; their running jobs go on (events, promote, finish still work) */
	atomic_store(&srv.draining, true);
	sp_agents_wake(srv.agents);
	sp_log_info("serve.drain", "signal=%s timeout_ms=%ld busy=%d", strsignal(sig),
		    cfg->drain_timeout_ms, srv.workers ? sp_workers_busy(srv.workers) : 0);
	memset(&forcer, 0, sizeof(forcer));
	forcer.set = set;
	forcer.srv = &srv;
	atomic_init(&forcer.forced, false);
	atomic_init(&forcer.done, false);
	force_started = pthread_create(&force_tid, NULL, force_thread, &forcer) == 0;
	if (srv.workers)
		sp_workers_drain(srv.workers, cfg->drain_timeout_ms);
	forced = atomic_load(&forcer.forced);
	sp_outbox_stop(srv.outbox, forced ? 0 : OUTBOX_STOP_MS);
	sp_http_stop(srv.http);
	/* the force thread uses srv.workers and forcer (this stack frame):
	 * it ends before either goes */
	if (force_started) {
		atomic_store(&forcer.done, true);
		pthread_join(force_tid, NULL);
	}
	forced = atomic_load(&forcer.forced);
	status = forced ? SP_EXIT_INTERRUPTED : SP_EXIT_OK;
	goto out;

infra:
	sp_log_error("serve.failed", "error=%s", sp_log_quote(err.msg, q, sizeof(q)));
	fprintf(stderr, "stagepipe serve: %s\n", err.msg);
	status = SP_EXIT_INFRA;
	atomic_store(&srv.draining, true);
	sp_agents_wake(srv.agents);
	if (srv.workers)
		sp_workers_drain(srv.workers, 0);
	if (srv.outbox)
		sp_outbox_stop(srv.outbox, 0);
	sp_http_stop(srv.http);
out:
	sp_http_free(srv.http);
	if (srv.store)
		sp_store_listen(srv.store, NULL, NULL, NULL);
	sp_workers_free(srv.workers);
	sp_outbox_free(srv.outbox);
	/* last: no handler, slot or keeper uses it any more */
	sp_agents_free(srv.agents);
	if (srv.store)
		sp_store_close(srv.store);
	sp_metrics_free(srv.metrics);
	sp_log_info("serve.stop", "status=%d", status);
	free(dbpath);
	free(logs);
	sp_server_config_free(cfg);
	return status;
}
