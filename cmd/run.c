/*
 * run.c — `stagepipe run`: the whole pipeline on this machine's engine.
 *
 * Source: the working tree around the current folder as it is
 * (uncommitted changes included), or a commit of a repository (--repo,
 * --ref, --sha).  Output: the terminal view on stdout, or JSON lines with
 * --json; --junit/--coverage write report files.
 *
 * It is also the job process of serve and agent (/work/shared/docs/SERVER.md):
 * they run `stagepipe run --repo URL --ref REF --sha SHA --job-id ID
 * --event KIND --event-ref NAME --permit-stdin --json` as a child and read
 * its event lines live.  --event applies the pipeline's on: rules (a job
 * they exclude ends skipped, exit 0); --permit-stdin asks the parent for
 * the promote permit before a stage tags or pushes (a promote_request
 * line on stdout, the answer read from stdin).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/signals.h"
#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/exec/events.h"
#include "core/exec/executor.h"
#include "core/base/fsutil.h"
#include "core/base/mask.h"
#include "core/exec/sinks.h"
#include "core/git/checkout.h"
#include "core/base/xalloc.h"
#include "core/base/xjson.h"
#include "runners/docker/runner.h"

static int run_run(int argc, char **argv);

const struct sp_cmd sp_cmd_run = {
	"run",
	"run the pipeline on the working tree with this machine's engine",
	"usage: stagepipe run [-f FILE] [-C DIR | --clean | --repo URL [--ref REF] [--sha SHA]]\n"
	"                     [--stage NAME] [--no-push] [--json] [--artifacts DIR]\n"
	"                     [--jobs N]\n"
	"                     [--junit FILE] [--coverage FILE] [--docker-host HOST]\n"
	"                     [--job-id ID] [--event KIND --event-ref NAME] [--permit-stdin]\n"
	"                     [--agent NAME] [--runner-labels A,B]\n"
	"\n"
	"Runs the pipeline's stages on the Docker engine, in dependency order and\n"
	"concurrently where their needs allow: builds each stage's target, runs its\n"
	"tests, applies its gates.\n"
	"\n"
	"  -f, --file FILE        pipeline file (default: stagepipe.yml at the source root)\n"
	"  -C DIR                 source folder (default: the git work tree around the\n"
	"                         current folder, or the current folder)\n"
	"      --clean            build a fresh checkout of HEAD (libgit2) instead of the\n"
	"                         working tree; FILE is then relative to the repository\n"
	"      --repo URL         build a commit of this repository (https, ssh, file://,\n"
	"                         a path) through the mirror cache; FILE is relative to it\n"
	"      --ref REF          with --repo: a branch, tag, SHA or refs/pull/N/head\n"
	"                         (default: the remote's default branch)\n"
	"      --sha SHA          with --repo: build exactly this commit (40 hex); --ref\n"
	"                         then says what to fetch to get it and which branch or\n"
	"                         tag to report\n"
	"      --stage NAME       run only this stage and the stages it needs (a matrix\n"
	"                         stage: all its variants; 'test[3.11]': one)\n"
	"      --no-push          build and check, but push nothing\n"
	"  -j, --jobs N           at most N stages in flight at once (default: the\n"
	"                         number of CPUs, at least 2): stages whose needs\n"
	"                         passed run concurrently, and a stage waiting for its\n"
	"                         needs builds its image meanwhile (tagged and pushed\n"
	"                         only once they passed); 1: one stage at a time\n"
	"      --json             one JSON event per line on stdout instead of the\n"
	"                         terminal view\n"
	"      --junit FILE       write the stages and their tests as JUnit XML\n"
	"      --coverage FILE    write the test stage's coverage as Cobertura XML\n"
	"                         (matrix variants also to FILE's name.test-3.11.xml)\n"
	"      --artifacts DIR    keep the stages' artifacts: paths copied out of each\n"
	"                         container into DIR/<stage>/ (created)\n"
	"      --artifacts-max-bytes N\n"
	"                         at most N bytes of artifacts in all (default 1 GiB)\n"
	"      --docker-host HOST engine address (default: $DOCKER_HOST or\n"
	"                         unix:///var/run/docker.sock)\n"
	"\n"
	"Used by serve and agent (a job is this command in a child process):\n"
	"      --job-id ID        the job id ([A-Za-z0-9_.-], at most 64) instead of a\n"
	"                         random local-...: every container's io.stagepipe.job\n"
	"                         label, and the job of pipeline_started\n"
	"      --event KIND       push, tag, pull_request or manual: apply the pipeline's\n"
	"                         on: rules (ignored otherwise); an event they exclude\n"
	"                         builds nothing and ends skipped, with the reason (exit 0)\n"
	"      --event-ref NAME   the branch (push), the tag (tag) or the target branch\n"
	"                         (pull_request); not needed for manual\n"
	"      --permit-stdin     before a stage tags or pushes, ask the parent: write\n"
	"                         {\"event\":\"promote_request\",\"stage\":S} on stdout, read\n"
	"                         {\"granted\":true} or {\"granted\":false,\"reason\":R}\n"
	"                         from stdin; refused or no answer: nothing is tagged or\n"
	"                         pushed and the stage ends error (exit 3)\n"
	"      --agent NAME       the agent running the job: every container's\n"
	"                         io.stagepipe.agent label (the agent removes those\n"
	"                         left by a crash of its own when it starts)\n"
	"      --runner-labels A,B  the labels of the runner: a pipeline whose runs_on\n"
	"                         lists one it lacks builds nothing (a runner_mismatch\n"
	"                         event) and exits 4\n"
	"\n"
	"The pipeline's secrets: are read from this environment (an unset one is\n"
	"an error, exit 2), given to the test containers and masked as *** in\n"
	"all output (README, \"Secrets\").\n"
	"\n"
	"Exit status: 0 passed (or skipped by on:), 1 a stage failed, 2 usage or\n"
	"pipeline-file error, 3 engine/registry/infrastructure error (a refused\n"
	"promotion included), 4 the runner lacks a runs_on label (--runner-labels),\n"
	"130 interrupted (SIGINT, SIGTERM, SIGHUP: containers are removed first).\n",
	run_run,
};

static int measures_coverage(const struct sp_pipeline *p)
{
	size_t i;

	for (i = 0; i < p->nstages; i++)
		if (p->stages[i].kind == SP_STAGE_PYTEST && sp_stage_measures_coverage(&p->stages[i]))
			return 1;
	return 0;
}

/* Whether label is one of the comma-separated list. */
static bool has_label(const char *list, const char *label)
{
	size_t n = strlen(label);
	const char *p = list;

	while (*p) {
		size_t len = strcspn(p, ",");

		if (len == n && !strncmp(p, label, n))
			return true;
		p += len;
		if (*p == ',')
			p++;
	}
	return false;
}

/*
 * --runner-labels: the pipeline's runs_on labels must all be the runner's.
 * When one is missing, says so (a runner_mismatch event with --json, which
 * serve and agents read to put the job back for a runner that has them)
 * and returns false.
 */
static bool runs_on_ok(const struct sp_pipeline *p, const char *labels, int json)
{
	struct sp_buf missing = SP_BUF_INIT, want = SP_BUF_INIT;
	size_t i;
	bool ok;

	for (i = 0; i < p->runs_on.n; i++) {
		const char *l = p->runs_on.items[i].s;

		sp_buf_addf(&want, "%s%s", i ? "," : "", l);
		if (!has_label(labels, l))
			sp_buf_addf(&missing, "%s%s", missing.len ? ", " : "", l);
	}
	ok = missing.len == 0;
	if (!ok) {
		char *msg = sp_xasprintf("this runner (labels: %s) lacks %s, which %s's runs_on "
					 "requires", *labels ? labels : "none", missing.data,
					 p->file);

		if (json) {
			cJSON *ev = cJSON_CreateObject();
			char *line;

			cJSON_AddStringToObject(ev, "event", "runner_mismatch");
			cJSON_AddStringToObject(ev, "pipeline", p->name);
			cJSON_AddStringToObject(ev, "runs_on", want.data);
			cJSON_AddStringToObject(ev, "message", msg);
			line = sp_xjson_print(ev);
			printf("%s\n", line);
			fflush(stdout);
			free(line);
			cJSON_Delete(ev);
		}
		fprintf(stderr, "stagepipe run: %s\n", msg);
		free(msg);
	}
	sp_buf_release(&missing);
	sp_buf_release(&want);
	return ok;
}

/* ---- the promote permit through the parent (--permit-stdin) ---- */

/* Longest answer line read; a longer one is refused as unparseable. */
#define PERMIT_LINE_MAX 4096

struct permit {
	FILE *out;  /* stdout: the event stream, borrowed */
	int in_fd;  /* stdin */
};

static void permit_reason(char *reason, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void permit_reason(char *reason, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, len, fmt, ap);
	va_end(ap);
}

/*
 * Reads one line from fd into buf (without the newline), a byte at a
 * time so that nothing after it is consumed (the next stage's answer).
 * Polls cancel every 200 ms.  Returns the length, SP_ENOTFOUND at EOF
 * before any byte, SP_ETOOBIG over the cap, SP_ECANCELLED, or SP_ERROR
 * (errno kept).
 */
static ssize_t read_answer(int fd, char *buf, size_t cap, sp_cancel_fn cancel, void *cancel_ud)
{
	size_t n = 0;
	struct pollfd pfd;
	ssize_t got;
	char c;

	for (;;) {
		if (cancel && cancel(cancel_ud))
			return SP_ECANCELLED;
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, 200) < 0) {
			if (errno == EINTR)
				continue;
			return SP_ERROR;
		}
		if (!pfd.revents)
			continue;
		got = read(fd, &c, 1);
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return SP_ERROR;
		}
		if (got == 0)
			break;
		if (c == '\n')
			break;
		if (n + 1 >= cap)
			return SP_ETOOBIG;
		buf[n++] = c;
	}
	if (got == 0 && n == 0)
		return SP_ENOTFOUND;
	buf[n] = '\0';
	return (ssize_t)n;
}

/* An sp_promote_permit_fn: one request line out, one answer line in. */
static int permit_stdin(void *ud, const char *stage, sp_cancel_fn cancel, void *cancel_ud,
			char *reason, size_t len)
{
	struct permit *pm = ud;
	cJSON *req = cJSON_CreateObject(), *ans = NULL;
	const cJSON *granted, *why;
	char *line, *buf = sp_xmalloc(PERMIT_LINE_MAX);
	ssize_t n;
	int rc = SP_ERROR;

	cJSON_AddStringToObject(req, "event", "promote_request");
	cJSON_AddStringToObject(req, "stage", stage);
	line = sp_xjson_print(req);

	/* the sink flushes each line it writes, so this line never lands
	 * inside another one */
	errno = 0;
	flockfile(pm->out);  /* stages run in threads: a whole line */
	if (fflush(pm->out) != 0 || fputs(line, pm->out) == EOF || fputc('\n', pm->out) == EOF ||
	    fflush(pm->out) != 0) {
		funlockfile(pm->out);
		permit_reason(reason, len, "cannot ask the server: writing the request failed: %s",
			      strerror(errno ? errno : EIO));
		goto out;
	}
	funlockfile(pm->out);
	n = read_answer(pm->in_fd, buf, PERMIT_LINE_MAX, cancel, cancel_ud);
	if (n == SP_ECANCELLED) {
		rc = SP_ECANCELLED;
		goto out;
	}
	if (n == SP_ENOTFOUND) {
		permit_reason(reason, len, "no answer from the server");
		goto out;
	}
	if (n == SP_ETOOBIG) {
		permit_reason(reason, len, "unparseable answer from the server (a line over %d "
			      "bytes)", PERMIT_LINE_MAX);
		goto out;
	}
	if (n < 0) {
		permit_reason(reason, len, "reading the answer: %s", strerror(errno));
		goto out;
	}
	ans = cJSON_ParseWithLength(buf, (size_t)n);
	granted = cJSON_GetObjectItemCaseSensitive(ans, "granted");
	if (!cJSON_IsObject(ans) || !cJSON_IsBool(granted)) {
		permit_reason(reason, len, "unparseable answer from the server (want "
			      "{\"granted\":true} or {\"granted\":false,\"reason\":\"...\"})");
		goto out;
	}
	if (cJSON_IsTrue(granted)) {
		rc = 0;
		goto out;
	}
	why = cJSON_GetObjectItemCaseSensitive(ans, "reason");
	permit_reason(reason, len, "%s", cJSON_IsString(why) && *why->valuestring ?
		      why->valuestring : "the server said no");
out:
	cJSON_Delete(ans);
	cJSON_Delete(req);
	free(line);
	free(buf);
	return rc;
}

/* ---- secrets ---- */

struct secrets {
	struct sp_mask *mask;
	char **env;   /* "NAME=value" */
	size_t n;
};

static void secrets_release(struct secrets *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		OPENSSL_cleanse(s->env[i], strlen(s->env[i]));
		free(s->env[i]);
	}
	free(s->env);
	sp_mask_free(s->mask);
	memset(s, 0, sizeof(*s));
}

/*
 * The pipeline's secrets: each value from this process's environment (a
 * job of serve or an agent gets the repository's secrets there).  One that
 * is unset or too short to mask stops the run before anything is built,
 * with the secrets: line of the pipeline file.  Values never appear in a
 * message.  Returns 0 or SP_ECONFIG.
 */
static int secrets_load(struct secrets *s, const struct sp_pipeline *p, struct sp_error *err)
{
	size_t i;

	const char *names = getenv("STAGEPIPE_SECRETS"), *token = getenv("STAGEPIPE_GIT_TOKEN");

	memset(s, 0, sizeof(*s));
	s->mask = sp_mask_new();
	/* what serve and agents give a job beyond the pipeline's list: the
	 * clone token and the repository's secrets (by name), masked too */
	if (token && strlen(token) >= SP_MASK_MIN)
		(void)sp_mask_add(s->mask, token, strlen(token), NULL);
	while (names && *names) {
		size_t len = strcspn(names, ",");
		char *name = sp_xstrndup(names, len);
		const char *v = getenv(name);

		if (v && strlen(v) >= SP_MASK_MIN)
			(void)sp_mask_add(s->mask, v, strlen(v), NULL);
		free(name);
		names += len;
		if (*names == ',')
			names++;
	}
	if (!p->secrets.n)
		return 0;
	s->env = sp_xcalloc(p->secrets.n + 1, sizeof(*s->env));
	for (i = 0; i < p->secrets.n; i++) {
		const struct sp_pstr *it = &p->secrets.items[i];
		const char *v = getenv(it->s);
		struct sp_error why = SP_ERROR_INIT;

		if (!v)
			return sp_error_set(err, SP_ECONFIG, "%s:%d:%d: secret %s is not set (a "
					    "secret's value comes from the environment of stagepipe "
					    "run; for serve and agents, from the repository's "
					    "secrets: in the server config)", p->file, it->pos.line,
					    it->pos.col, it->s);
		if (sp_mask_add(s->mask, v, strlen(v), &why) < 0)
			return sp_error_set(err, SP_ECONFIG, "%s:%d:%d: secret %s is %s", p->file,
					    it->pos.line, it->pos.col, it->s, why.msg);
		s->env[s->n++] = sp_xasprintf("%s=%s", it->s, v);
	}
	return 0;
}

/* "stagepipe run: MESSAGE" on stderr, with the secrets masked. */
static void print_error(const struct secrets *s, const char *msg)
{
	char *m = sp_mask_dup(s->mask, msg);

	fprintf(stderr, "stagepipe run: %s\n", m);
	free(m);
}

static bool is_sha(const char *s)
{
	return strlen(s) == 40 && strspn(s, "0123456789abcdefABCDEF") == 40;
}

static int run_run(int argc, char **argv)
{
	enum { OPT_STAGE = 256, OPT_NOPUSH, OPT_JSON, OPT_JUNIT, OPT_COVERAGE, OPT_HOST, OPT_CLEAN,
	       OPT_REPO, OPT_REF, OPT_SHA, OPT_JOB_ID, OPT_EVENT, OPT_EVENT_REF, OPT_PERMIT_STDIN,
	       OPT_AGENT, OPT_RUNNER_LABELS, OPT_ARTIFACTS, OPT_ARTIFACTS_MAX };
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned long jobs = ncpu > 2 ? (unsigned long)ncpu : 2;
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "stage", required_argument, NULL, OPT_STAGE },
		{ "no-push", no_argument, NULL, OPT_NOPUSH },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "junit", required_argument, NULL, OPT_JUNIT },
		{ "coverage", required_argument, NULL, OPT_COVERAGE },
		{ "docker-host", required_argument, NULL, OPT_HOST },
		{ "clean", no_argument, NULL, OPT_CLEAN },
		{ "repo", required_argument, NULL, OPT_REPO },
		{ "ref", required_argument, NULL, OPT_REF },
		{ "sha", required_argument, NULL, OPT_SHA },
		{ "job-id", required_argument, NULL, OPT_JOB_ID },
		{ "event", required_argument, NULL, OPT_EVENT },
		{ "event-ref", required_argument, NULL, OPT_EVENT_REF },
		{ "permit-stdin", no_argument, NULL, OPT_PERMIT_STDIN },
		{ "agent", required_argument, NULL, OPT_AGENT },
		{ "runner-labels", required_argument, NULL, OPT_RUNNER_LABELS },
		{ "artifacts", required_argument, NULL, OPT_ARTIFACTS },
		{ "artifacts-max-bytes", required_argument, NULL, OPT_ARTIFACTS_MAX },
		{ "jobs", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sp_error err = SP_ERROR_INIT;
	struct sp_source src;
	struct sp_events events = SP_EVENTS_INIT;
	struct sp_exec_opts eo;
	struct sp_engine *engine = NULL;
	struct sp_runner *runner = NULL;
	struct permit permit = { stdout, STDIN_FILENO };
	struct secrets secrets = { NULL, NULL, 0 };
	const char *file = NULL, *dir = NULL, *stage = NULL, *host = NULL;
	const char *junit = NULL, *coverage = NULL, *repo = NULL, *ref = NULL, *sha = NULL;
	const char *job_id = NULL, *event = NULL, *event_ref = NULL, *agent = NULL;
	const char *runner_labels = NULL, *artifacts = NULL;
	unsigned long long artifacts_max = 0;
	char *end;
	char job[72], owner[300], why[512], *work = NULL, *clean_dir = NULL;
	int c, json = 0, no_push = 0, clean = 0, permit_stdin_opt = 0, status, rc;

	memset(&src, 0, sizeof(src));
	while ((c = getopt_long(argc, argv, "+f:C:j:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': file = optarg; break;
		case 'C': dir = optarg; break;
		case OPT_STAGE: stage = optarg; break;
		case OPT_NOPUSH: no_push = 1; break;
		case OPT_JSON: json = 1; break;
		case OPT_JUNIT: junit = optarg; break;
		case OPT_COVERAGE: coverage = optarg; break;
		case OPT_HOST: host = optarg; break;
		case OPT_CLEAN: clean = 1; break;
		case OPT_REPO: repo = optarg; break;
		case OPT_REF: ref = optarg; break;
		case OPT_SHA: sha = optarg; break;
		case OPT_JOB_ID: job_id = optarg; break;
		case OPT_EVENT: event = optarg; break;
		case OPT_EVENT_REF: event_ref = optarg; break;
		case OPT_PERMIT_STDIN: permit_stdin_opt = 1; break;
		case OPT_AGENT: agent = optarg; break;
		case OPT_RUNNER_LABELS: runner_labels = optarg; break;
		case OPT_ARTIFACTS: artifacts = optarg; break;
		case OPT_ARTIFACTS_MAX:
			errno = 0;
			artifacts_max = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || artifacts_max == 0 || *optarg == '-')
				return sp_cmd_usage_error(&sp_cmd_run, "--artifacts-max-bytes \"%s\": "
							  "give a number of bytes above 0", optarg);
			break;
		case 'j':
			errno = 0;
			jobs = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || jobs == 0 || jobs > 256 || *optarg == '-')
				return sp_cmd_usage_error(&sp_cmd_run, "--jobs \"%s\": give a number of "
							  "stages from 1 to 256", optarg);
			break;
		case 'h':
			sp_cmd_print_usage(&sp_cmd_run, stdout);
			return SP_EXIT_OK;
		default:
			return sp_cmd_usage_error(&sp_cmd_run, "bad option");
		}
	}
	if (optind < argc)
		return sp_cmd_usage_error(&sp_cmd_run, "unexpected argument \"%s\"", argv[optind]);
	if (artifacts && !*artifacts)
		return sp_cmd_usage_error(&sp_cmd_run, "--artifacts needs a folder");
	if (ref && !repo)
		return sp_cmd_usage_error(&sp_cmd_run, "--ref needs --repo");
	if (sha && !repo)
		return sp_cmd_usage_error(&sp_cmd_run, "--sha needs --repo");
	if (sha && !is_sha(sha))
		return sp_cmd_usage_error(&sp_cmd_run, "--sha \"%s\" is not a full commit id "
					  "(40 hex digits)", sha);
	if (repo && (dir || clean))
		return sp_cmd_usage_error(&sp_cmd_run, "--repo excludes -C and --clean");
	if (job_id && !sp_cmd_job_id_valid(job_id))
		return sp_cmd_usage_error(&sp_cmd_run, "--job-id \"%s\": use 1 to 64 letters, digits, "
					  "'_', '.' or '-'", job_id);
	if (event && strcmp(event, "push") && strcmp(event, "tag") &&
	    strcmp(event, "pull_request") && strcmp(event, "manual"))
		return sp_cmd_usage_error(&sp_cmd_run, "--event \"%s\": use push, tag, pull_request "
					  "or manual", event);
	if (agent && !sp_cmd_job_id_valid(agent))
		return sp_cmd_usage_error(&sp_cmd_run, "--agent \"%s\": use 1 to 64 letters, digits, "
					  "'_', '.' or '-'", agent);
	if (event_ref && !event)
		return sp_cmd_usage_error(&sp_cmd_run, "--event-ref needs --event");
	if (event && strcmp(event, "manual") && (!event_ref || !*event_ref))
		return sp_cmd_usage_error(&sp_cmd_run, "--event %s needs --event-ref (the %s)", event,
					  !strcmp(event, "tag") ? "tag" :
					  !strcmp(event, "push") ? "branch" : "target branch");
	sp_signals_install();

	if (sp_fs_tempdir(&work, "stagepipe-job-", &err) < 0) {
		status = sp_cmd_fail("run", &err);
		goto out;
	}
	if (clean)
		clean_dir = sp_xasprintf("%s/src", work);
	status = repo ? sp_source_load_repo(&src, "run", repo, ref, sha, file)
		      : sp_source_load(&src, "run", dir, file, clean_dir);
	if (status != 0)
		goto out;
	if (stage && !sp_pipeline_stage(src.pipeline, stage)) {
		status = sp_cmd_usage_error(&sp_cmd_run, "no stage \"%s\" in %s", stage, src.file);
		goto out;
	}
	if (coverage && !measures_coverage(src.pipeline)) {
		status = sp_cmd_usage_error(&sp_cmd_run, "--coverage: no pytest stage in %s measures "
					    "coverage (add --cov=PACKAGE to its pytest arguments)",
					    src.file);
		goto out;
	}
	if (job_id)
		snprintf(job, sizeof(job), "%s", job_id);
	else
		sp_cmd_job_id(job, sizeof(job), "local");
	sp_cmd_owner(owner, sizeof(owner));

	if (json)
		sp_events_add(&events, sp_sink_json_new(stdout));
	else
		sp_events_add(&events, sp_sink_term_new(stdout, isatty(STDOUT_FILENO) &&
							!getenv("NO_COLOR")));

	memset(&eo, 0, sizeof(eo));
	eo.pipeline = src.pipeline;
	eo.vars = &src.vars;
	eo.source_root = src.git.root;
	eo.work_dir = work;
	eo.job_id = job;
	eo.owner = owner;
	eo.agent = agent;
	eo.only_stage = stage;
	eo.no_push = no_push;
	eo.artifacts_dir = artifacts;
	eo.artifacts_max_bytes = artifacts_max;
	eo.jobs = (unsigned)jobs;
	eo.events = &events;
	eo.cancel = sp_signals_cancel;
	if (permit_stdin_opt) {
		eo.promote_permit = permit_stdin;
		eo.promote_ud = &permit;
	}

	/* runs_on, then on:, decide before the engine is even opened */
	if (runner_labels && !runs_on_ok(src.pipeline, runner_labels, json)) {
		status = SP_EXIT_WRONG_RUNNER;
		goto out;
	}
	if (event) {
		if (!sp_pipeline_on_match(src.pipeline, event, event_ref, why, sizeof(why))) {
			sp_executor_skip(&eo, why);
			status = SP_EXIT_OK;
			goto finish;
		}
		fprintf(stderr, ":: %s\n", why);
	}
	if (secrets_load(&secrets, src.pipeline, &err) < 0) {
		fprintf(stderr, "stagepipe run: %s\n", err.msg);
		status = SP_EXIT_USAGE;
		goto out;
	}
	events.mask = secrets.mask;
	eo.mask = secrets.mask;
	eo.secret_env = (const char *const *)secrets.env;
	eo.nsecret_env = secrets.n;
	if (junit || coverage)
		sp_events_add(&events, sp_sink_reports_new(junit, coverage));
	if ((status = sp_cmd_open_engine(&engine, "run", host)) != 0)
		goto out;
	runner = sp_docker_runner_new(engine);
	engine = NULL;  /* owned by the runner now */
	eo.runner = runner;
	rc = sp_executor_run(&eo, &err);
	/* the terminal view's summary already says why; JSON readers and a job
	 * that ended before its first stage (SP_ECONFIG) get it on stderr */
	if (rc == SP_ECONFIG || (json && rc < 0))
		print_error(&secrets, err.msg);
	status = sp_error_exit_status(rc);
finish:
	if (sp_events_finish(&events, &err) < 0) {
		print_error(&secrets, err.msg);
		if (status == SP_EXIT_OK)
			status = SP_EXIT_INFRA;
	}
out:
	sp_events_release(&events);
	secrets_release(&secrets);
	if (work) {
		(void)sp_fs_rmtree(work, NULL);
		free(work);
	}
	free(clean_dir);
	if (runner)
		runner->ops->free(runner);
	sp_engine_free(engine);
	sp_source_release(&src);
	return status;
}
