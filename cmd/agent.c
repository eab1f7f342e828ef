/*
 * agent.c — `stagepipe agent`: run jobs for a stagepipe server on this
 * machine's engine (docs/agent-protocol.md; the loop is core/agent/).
 *
 * Thin: parse the options, read the token, remove the containers an
 * earlier run of this agent left behind (label io.stagepipe.agent=NAME: it
 * was killed, its jobs have gone back to the queue), start the agent and
 * wait for a signal.  As in cmd/serve.c the signals are blocked in every
 * thread (the mask is set before the first one starts) and taken with
 * sigwaitinfo(2) here; a small thread waits for the agent to stop on its
 * own (token refused, drain over) and wakes this one with SIGUSR1.
 *
 * The token never goes to a child: read from --token-file, or taken from
 * STAGEPIPE_AGENT_TOKEN and removed from the environment before any job
 * starts.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cmd/cmd.h"
#include "core/agent/agent.h"
#include "core/pipeline/pipeline.h"
#include "core/base/error.h"
#include "core/base/log.h"
#include "core/base/xalloc.h"

#define TOKEN_MAX 4096
#define CAPACITY_MAX 256

static int run_agent(int argc, char **argv);

const struct sp_cmd sp_cmd_agent = {
	"agent",
	"run jobs for a stagepipe server on this machine's engine",
	"usage: stagepipe agent --server URL[,URL...] [--token-file FILE] [--name NAME]\n"
	"                       [--capacity N] [--labels A,B] [--docker-host HOST]\n"
	"                       [--ca-file FILE] [--stagepipe PATH]\n"
	"\n"
	"Asks a `stagepipe serve` for jobs (long-poll over HTTP(S)) and runs each as\n"
	"a child `stagepipe run` on this machine's engine, sending its events back.\n"
	"The server lists the agent under agents: with its token (see\n"
	"docs/agent-protocol.md).  Containers left by an earlier run of this agent\n"
	"(label io.stagepipe.agent=NAME) are removed at start.\n"
	"\n"
	"      --server URL        the server's base URL, https://host[:port] (http://\n"
	"                          only on a trusted network: the token goes in clear).\n"
	"                          Several (repeat --server, or URL,URL): servers\n"
	"                          sharing one PostgreSQL store; one is used at a\n"
	"                          time, the next after a network error or 502/503\n"
	"      --token-file FILE   the agent's token (default: $STAGEPIPE_AGENT_TOKEN,\n"
	"                          which is then removed from the jobs' environment)\n"
	"      --name NAME         the agent's name in the server config (default: the\n"
	"                          short host name, lower-cased)\n"
	"      --capacity N        jobs at once (default 1)\n"
	"      --labels A,B        what this machine offers; a repository's labels:\n"
	"                          must all be here for its jobs to come\n"
	"      --docker-host HOST  the engine the jobs use (default: $DOCKER_HOST)\n"
	"      --ca-file FILE      CA certificates for the server's (default: the\n"
	"                          system's)\n"
	"      --stagepipe PATH    the program jobs run (default: this one)\n"
	"\n"
	"SIGTERM (or SIGINT, SIGHUP) drains: no new jobs, running ones go on to\n"
	"their end.  A second signal stops them at once (their containers are\n"
	"removed) and gives them back to the server.\n"
	"Log lines (logfmt) go to stderr; SP_LOG_LEVEL=debug|info|warn|error.\n"
	"\n"
	"Exit status: 0 after a drain, 2 usage or config error or the server refused\n"
	"the token, 3 cannot start, 130 stopped by a second signal.\n",
	run_agent,
};

/* ---- the token ---- */

static bool token_ok(const char *t)
{
	for (; *t; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
			return false;
	return true;
}

/* The token from file, trailing newline dropped; NULL after printing why. */
static char *read_token_file(const char *file)
{
	char buf[TOKEN_MAX + 2], q[600], *tok = NULL;
	struct stat st;
	size_t len = 0;
	ssize_t n;
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "stagepipe agent: cannot open the token file %s: %s\n", file,
			strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
		sp_log_warn("agent.token_file_readable", "file=%s mode=%04o hint=\"chmod 600\"",
			    sp_log_quote(file, q, sizeof(q)), (unsigned)(st.st_mode & 07777));
	while (len < sizeof(buf) - 1) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (len > TOKEN_MAX) {
		fprintf(stderr, "stagepipe agent: the token file %s is larger than %d bytes\n",
			file, TOKEN_MAX);
		goto out;
	}
	if (len && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (len && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (!len || !token_ok(buf)) {
		fprintf(stderr, "stagepipe agent: the token file %s %s\n", file,
			len ? "holds something that is not a token (spaces or control characters)"
			    : "is empty");
		goto out;
	}
	tok = sp_xstrdup(buf);
out:
	explicit_bzero(buf, sizeof(buf));
	return tok;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* ---- the server URL ---- */

/* 0 ok; else prints why and returns 2.  *loopback: the host is this machine. */
static int check_url(const char *url, bool *loopback)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *user = NULL, *query = NULL;
	int status = SP_EXIT_USAGE;

	*loopback = false;
	if (!u)
		abort();
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
		fprintf(stderr, "stagepipe agent: --server must start with https:// or http://\n");
		goto out;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		fprintf(stderr, "stagepipe agent: --server is not a URL\n");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK && user) {
		fprintf(stderr, "stagepipe agent: --server must not carry a user or password "
			"(the token comes from --token-file)\n");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK && query) {
		fprintf(stderr, "stagepipe agent: --server must not have a query (?...)\n");
		goto out;
	}
	*loopback = !strcmp(host, "localhost") || !strncmp(host, "127.", 4) ||
		    !strcmp(host, "[::1]") || !strcmp(host, "::1");
	status = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(query);
	curl_url_cleanup(u);
	return status;
}

/* Every URL of "URL[,URL...]": 0 ok; else prints why and returns 2.
 * *loopback: all of them are on this machine; *plain: one is http:// to
 * another machine. */
static int check_urls(const char *list, bool *loopback, bool *plain)
{
	char *copy = sp_xstrdup(list), *p, *save = NULL;
	bool lb, any = false;
	int status = 0;

	*loopback = true;
	*plain = false;
	for (p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		if ((status = check_url(p, &lb)) != 0)
			break;
		any = true;
		*loopback = *loopback && lb;
		if (!lb && !strncmp(p, "http://", 7))
			*plain = true;
	}
	if (!status && !any) {
		fprintf(stderr, "stagepipe agent: --server is empty\n");
		status = SP_EXIT_USAGE;
	}
	free(copy);
	return status;
}

/* ---- labels, name ---- */

/* "a, b,c" into a NULL-terminated array (the caller frees it and its
 * strings); NULL after printing why. */
static char **split_labels(const char *s)
{
	char **v = NULL, *copy = sp_xstrdup(s), *p, *save = NULL;
	size_t n = 0, alloc = 0;

	SP_GROW(v, alloc, 1);
	v[0] = NULL;
	for (p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		char *end;

		while (isspace((unsigned char)*p))
			p++;
		end = p + strlen(p);
		while (end > p && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (!*p)
			continue;
		if (!sp_label_valid(p)) {
			fprintf(stderr, "stagepipe agent: invalid label \"%s\" (1 to 63 of a-z, 0-9, "
				"'.', '_', '-')\n", p);
			goto fail;
		}
		SP_GROW(v, alloc, n + 2);
		v[n++] = sp_xstrdup(p);
		v[n] = NULL;
	}
	free(copy);
	return v;
fail:
	for (n = 0; v[n]; n++)
		free(v[n]);
	free(v);
	free(copy);
	return NULL;
}

static void free_labels(char **v)
{
	size_t i;

	for (i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* The short host name, lower-cased, into buf. */
static void default_name(char *buf, size_t len)
{
	char *p;

	if (gethostname(buf, len) < 0)
		buf[0] = '\0';
	buf[len - 1] = '\0';
	buf[strcspn(buf, ".")] = '\0';
	for (p = buf; *p; p++)
		*p = (char)tolower((unsigned char)*p);
}

static const char *self_exe(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);

	if (n <= 0)
		return "stagepipe";
	buf[n] = '\0';
	return buf;
}

/* ---- the wait ---- */

struct waiter {
	struct sp_agent *agent;
	pthread_t main_thread;
	struct sp_error err;
	int rc;
	atomic_bool done;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;

	w->rc = sp_agent_wait(w->agent, &w->err);
	atomic_store(&w->done, true);
	pthread_kill(w->main_thread, SIGUSR1);
	return NULL;
}

static int agent_main(int argc, char **argv, char **all);

static int run_agent(int argc, char **argv)
{
	char *all = NULL;  /* every --server, comma-joined */
	int status = agent_main(argc, argv, &all);

	free(all);
	return status;
}

/* *all: the --server list, the caller's to free. */
static int agent_main(int argc, char **argv, char **all)
{
	const char *server;
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "token-file", required_argument, NULL, 't' },
		{ "name", required_argument, NULL, 'n' },
		{ "capacity", required_argument, NULL, 'c' },
		{ "labels", required_argument, NULL, 'l' },
		{ "docker-host", required_argument, NULL, 'd' },
		{ "ca-file", required_argument, NULL, 'a' },
		{ "stagepipe", required_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sp_error err = SP_ERROR_INIT;
	struct sp_agent_opts ao;
	struct sp_agent *agent = NULL;
	struct waiter w;
	pthread_t wait_tid;
	sigset_t set;
	siginfo_t si;
	const char *token_file = NULL, *name = NULL, *labels_arg = NULL;
	const char *docker_host = NULL, *ca_file = NULL, *exe_arg = NULL;
	char **labels = NULL, *token = NULL, host[256], exe[PATH_MAX], q[600];
	long capacity = 1;
	bool loopback, plain, forced = false;
	int c, e, signals = 0, status = SP_EXIT_OK;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 's': {
			char *joined = *all ? sp_xasprintf("%s,%s", *all, optarg)
					    : sp_xstrdup(optarg);

			free(*all);
			*all = joined;
			break;
		}
		case 't': token_file = optarg; break;
		case 'n': name = optarg; break;
		case 'c': {
			char *end;

			errno = 0;
			capacity = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || capacity < 1 || capacity > CAPACITY_MAX)
				return sp_cmd_usage_error(&sp_cmd_agent, "--capacity must be a number "
							  "from 1 to %d", CAPACITY_MAX);
			break;
		}
		case 'l': labels_arg = optarg; break;
		case 'd': docker_host = optarg; break;
		case 'a': ca_file = optarg; break;
		case 'x': exe_arg = optarg; break;
		case 'h': sp_cmd_print_usage(&sp_cmd_agent, stdout); return SP_EXIT_OK;
		default: return sp_cmd_usage_error(&sp_cmd_agent, "bad option");
		}
	}
	if (optind < argc)
		return sp_cmd_usage_error(&sp_cmd_agent, "unexpected argument \"%s\"", argv[optind]);
	server = *all;
	if (!server)
		return sp_cmd_usage_error(&sp_cmd_agent, "--server URL is required");
	sp_log_init(2);
	if ((status = check_urls(server, &loopback, &plain)) != 0)
		return status;
	if (!name) {
		default_name(host, sizeof(host));
		if (!sp_agent_name_valid(host))
			return sp_cmd_usage_error(&sp_cmd_agent, "the host name \"%s\" is not a valid "
						  "agent name: give --name", host);
		name = host;
	} else if (!sp_agent_name_valid(name)) {
		return sp_cmd_usage_error(&sp_cmd_agent, "invalid --name \"%s\" (lower-case "
					  "letters, digits, '.', '_', '-'; at most 63)", name);
	}
	if (labels_arg && !(labels = split_labels(labels_arg)))
		return SP_EXIT_USAGE;
	if (ca_file && access(ca_file, R_OK) < 0) {
		fprintf(stderr, "stagepipe agent: cannot read --ca-file %s: %s\n", ca_file,
			strerror(errno));
		status = SP_EXIT_USAGE;
		goto out;
	}
	/* the token: the file, else the environment (then out of it, so that
	 * no job child inherits it) */
	if (token_file) {
		if (!(token = read_token_file(token_file))) {
			status = SP_EXIT_USAGE;
			goto out;
		}
	} else {
		const char *t = getenv("STAGEPIPE_AGENT_TOKEN");

		if (t && *t)
			token = sp_xstrdup(t);
		if (t) {
			explicit_bzero((char *)t, strlen(t));
			unsetenv("STAGEPIPE_AGENT_TOKEN");
		}
		if (!token) {
			status = sp_cmd_usage_error(&sp_cmd_agent, "no token: give --token-file or "
						    "set STAGEPIPE_AGENT_TOKEN");
			goto out;
		}
		if (!token_ok(token)) {
			fprintf(stderr, "stagepipe agent: STAGEPIPE_AGENT_TOKEN holds spaces or "
				"control characters\n");
			status = SP_EXIT_USAGE;
			goto out;
		}
	}
	if (plain)
		sp_log_warn("agent.plain_http", "server=%s hint=\"the token and the jobs' git "
			    "credentials cross the network in clear: use https\"",
			    sp_log_quote(server, q, sizeof(q)));

	sp_log_info("agent.start", "version=%s name=%s server=%s capacity=%ld labels=%s pid=%ld",
		    SP_VERSION, name, sp_log_quote(server, q, sizeof(q)), capacity,
		    labels_arg ? labels_arg : "\"\"", (long)getpid());
	{
		unsigned removed = 0, kept = 0;

		if (sp_agent_remove_leftovers(name, docker_host, &removed, &kept, &err) < 0)
			sp_log_warn("agent.cleanup_failed", "removed=%u error=%s", removed,
				    sp_log_quote(err.msg, q, sizeof(q)));
		else
			sp_log_info("agent.cleanup", "removed=%u kept=%u", removed, kept);
		sp_error_clear(&err);
	}

	/* Before any thread exists: every thread inherits this mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&ao, 0, sizeof(ao));
	ao.server = server;
	ao.token = token;
	ao.name = name;
	ao.labels = (const char *const *)labels;
	ao.capacity = (int)capacity;
	ao.docker_host = docker_host;
	ao.ca_file = ca_file;
	ao.exe = exe_arg ? exe_arg : self_exe(exe, sizeof(exe));
	if (sp_agent_start(&agent, &ao, &err) < 0) {
		fprintf(stderr, "stagepipe agent: %s\n", err.msg);
		status = err.code == SP_ECONFIG ? SP_EXIT_USAGE : SP_EXIT_INFRA;
		goto out;
	}
	wipe_free(token);  /* the agent has its copy */
	token = NULL;

	memset(&w, 0, sizeof(w));
	w.agent = agent;
	w.main_thread = pthread_self();
	atomic_init(&w.done, false);
	if ((e = pthread_create(&wait_tid, NULL, wait_thread, &w)) != 0) {
		fprintf(stderr, "stagepipe agent: cannot start a thread: %s\n", strerror(e));
		status = SP_EXIT_INFRA;
		goto out;  /* sp_agent_free stops it */
	}
	for (;;) {
		int sig = sigwaitinfo(&set, &si);

		if (sig < 0)
			continue;  /* EINTR */
		if (sig == SIGUSR1) {
			if (atomic_load(&w.done))
				break;
			continue;
		}
		if (++signals == 1) {
			sp_log_info("agent.draining", "signal=%s running=%d", strsignal(sig),
				    sp_agent_running(agent));
			sp_agent_drain(agent);
		} else if (!forced) {
			sp_log_warn("agent.force", "signal=%s running=%d", strsignal(sig),
				    sp_agent_running(agent));
			forced = true;
			sp_agent_force(agent);
		}
	}
	pthread_join(wait_tid, NULL);
	if (w.rc < 0) {
		fprintf(stderr, "stagepipe agent: %s\n", w.err.msg);
		status = w.rc == SP_ECONFIG ? SP_EXIT_USAGE : SP_EXIT_INFRA;
	} else {
		status = forced ? SP_EXIT_INTERRUPTED : SP_EXIT_OK;
	}
out:
	sp_agent_free(agent);
	sp_log_info("agent.stop", "status=%d", status);
	wipe_free(token);
	free_labels(labels);
	return status;
}
