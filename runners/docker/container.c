/*
 * container.c — container requests; see container.h.
 *
 * Request bodies are built with cJSON; streamed answers (logs, archives)
 * are consumed as they arrive: logs through the frame demultiplexer into
 * per-stream line splitters, archives into an unlinked temporary file
 * that the safe extractor (core/report/untar.c) then reads.
 */
#include "runners/docker/container.h"

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/lines.h"
#include "core/report/untar.h"
#include "core/base/xalloc.h"
#include "core/base/xjson.h"
#include "runners/docker/demux.h"

#define LOG_LINE_MAX (64 * 1024)

static const char *network_mode(enum sp_network n)
{
	switch (n) {
	case SP_NETWORK_HOST: return "host";
	case SP_NETWORK_NONE: return "none";
	case SP_NETWORK_DEFAULT:
	default: return "default";
	}
}

int sp_container_create(struct sp_engine *e, const struct sp_run_opts *o, char **id,
			struct sp_error *err)
{
	struct sp_buf out = SP_BUF_INIT;
	cJSON *body = cJSON_CreateObject(), *arr, *labels, *host, *resp = NULL;
	const cJSON *jid;
	char *json = NULL;
	long status = 0;
	size_t i;
	int rc;

	*id = NULL;
	cJSON_AddStringToObject(body, "Image", o->image);
	if (o->cmd) {
		arr = cJSON_AddArrayToObject(body, "Cmd");
		for (i = 0; i < o->ncmd; i++)
			cJSON_AddItemToArray(arr, cJSON_CreateString(o->cmd[i]));
	}
	arr = cJSON_AddArrayToObject(body, "Env");
	for (i = 0; i < o->nenv; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(o->env[i]));
	if (o->user)
		cJSON_AddStringToObject(body, "User", o->user);
	if (o->workdir)
		cJSON_AddStringToObject(body, "WorkingDir", o->workdir);
	labels = cJSON_AddObjectToObject(body, "Labels");
	for (i = 0; i < o->nlabels; i++)
		cJSON_AddStringToObject(labels, o->labels[i].name, o->labels[i].value);
	cJSON_AddFalseToObject(body, "Tty");
	cJSON_AddFalseToObject(body, "OpenStdin");
	host = cJSON_AddObjectToObject(body, "HostConfig");
	cJSON_AddStringToObject(host, "NetworkMode",
				o->network_mode ? o->network_mode : network_mode(o->network));
	if (o->nextra_hosts) {
		arr = cJSON_AddArrayToObject(host, "ExtraHosts");
		for (i = 0; i < o->nextra_hosts; i++)
			cJSON_AddItemToArray(arr, cJSON_CreateString(o->extra_hosts[i]));
	}
	if (o->network_mode && o->alias) {
		cJSON *net = cJSON_AddObjectToObject(body, "NetworkingConfig");
		cJSON *eps = cJSON_AddObjectToObject(net, "EndpointsConfig");
		cJSON *ep = cJSON_AddObjectToObject(eps, o->network_mode);
		arr = cJSON_AddArrayToObject(ep, "Aliases");
		cJSON_AddItemToArray(arr, cJSON_CreateString(o->alias));
	}
	if (o->memory)
		cJSON_AddNumberToObject(host, "Memory", (double)o->memory);
	if (o->nano_cpus)
		cJSON_AddNumberToObject(host, "NanoCpus", (double)o->nano_cpus);
	/* we copy reports out after exit, so the container must outlive it */
	cJSON_AddFalseToObject(host, "AutoRemove");
	json = sp_xjson_print(body);

	rc = sp_engine_call_status(e, "POST", "/containers/create", json, &out, &status, err);
	if (rc < 0) {
		/* the request was wrong (no such image, bad user...): the stage's fault */
		if (status >= 400 && status < 500 && status != 404)
			err->code = rc = SP_EFAILED;
		goto out;
	}
	resp = cJSON_ParseWithLength(out.data, out.len);
	jid = cJSON_GetObjectItemCaseSensitive(resp, "Id");
	if (!cJSON_IsString(jid) || !*jid->valuestring) {
		rc = sp_error_set(err, SP_EENGINE, "POST /containers/create: no Id in the answer");
		goto out;
	}
	*id = sp_xstrdup(jid->valuestring);
out:
	cJSON_Delete(resp);
	cJSON_Delete(body);
	free(json);
	sp_buf_release(&out);
	return rc;
}

static la_ssize_t tar_to_buf(struct archive *a, void *ud, const void *data, size_t len)
{
	(void)a;
	(void)sp_buf_add(ud, data, len);
	return (la_ssize_t)len;
}

int sp_container_mkdir(struct sp_engine *e, const char *id, const char *parent,
		       const char *name, struct sp_error *err)
{
	struct sp_engine_request req;
	struct sp_buf tar = SP_BUF_INIT, path = SP_BUF_INIT;
	struct archive *a = archive_write_new();
	struct archive_entry *ent = archive_entry_new();
	int rc;

	archive_write_set_format_pax_restricted(a);
	archive_write_set_bytes_per_block(a, 0);
	archive_write_open(a, &tar, NULL, tar_to_buf, NULL);
	archive_entry_set_pathname(ent, name);
	archive_entry_set_filetype(ent, AE_IFDIR);
	archive_entry_set_perm(ent, 01777);
	archive_entry_set_mtime(ent, time(NULL), 0);
	archive_write_header(a, ent);
	archive_write_close(a);

	sp_buf_addf(&path, "/containers/%s/archive?path=", id);
	sp_engine_urlencode(&path, parent);
	memset(&req, 0, sizeof(req));
	req.method = "PUT";
	req.path = path.data;
	req.content_type = "application/x-tar";
	req.body = tar.data;
	req.body_len = tar.len;
	rc = sp_engine_request(e, &req, NULL, err);
	archive_entry_free(ent);
	archive_write_free(a);
	sp_buf_release(&tar);
	sp_buf_release(&path);
	return rc;
}

int sp_container_start(struct sp_engine *e, const char *id, struct sp_error *err)
{
	char *path = sp_xasprintf("/containers/%.12s/start", id);
	long status = 0;
	int rc = sp_engine_call_status(e, "POST", path, NULL, NULL, &status, err);

	/* 400: the command cannot be started (not found in the image, not
	 * executable): the stage's fault, not the engine's.  So is a user: the
	 * image lacks, which engines before 25.0 answer with a 500. */
	if (rc < 0 && (status == 400 ||
		       (status == 500 && strstr(err->msg, "no matching entries in passwd file"))))
		err->code = rc = SP_EFAILED;
	free(path);
	return rc;
}

struct logs_io {
	struct sp_demux demux;
	struct sp_runner_lines out, errs;  /* secrets masked, then cut into lines */
	unsigned long long bytes;
};

static int on_frame(void *ud, enum sp_demux_stream stream, const char *data, size_t len,
		    struct sp_error *err)
{
	struct logs_io *io = ud;

	(void)err;
	io->bytes += len;
	if (stream == SP_DEMUX_STDOUT)
		sp_runner_lines_feed(&io->out, data, len);
	else
		sp_runner_lines_feed(&io->errs, data, len);
	return 0;
}

static int on_logs(void *ud, const char *data, size_t len, struct sp_error *err)
{
	struct logs_io *io = ud;

	return sp_demux_feed(&io->demux, data, len, err);
}

/* GET /containers/ID/logs?QUERY through the demultiplexer into lines. */
static int stream_logs(struct sp_engine *e, const char *id, const char *query,
		       sp_runner_log_fn log, void *log_ud, const struct sp_mask *mask,
		       sp_cancel_fn cancel, void *cancel_ud, unsigned long long *bytes,
		       struct sp_error *err)
{
	struct sp_engine_request req;
	struct logs_io io;
	char *path = sp_xasprintf("/containers/%s/logs?%s", id, query);
	int rc;

	memset(&io, 0, sizeof(io));
	sp_demux_init(&io.demux, on_frame, &io);
	sp_runner_lines_init(&io.out, mask, LOG_LINE_MAX, SP_STREAM_STDOUT, log, log_ud);
	sp_runner_lines_init(&io.errs, mask, LOG_LINE_MAX, SP_STREAM_STDERR, log, log_ud);
	memset(&req, 0, sizeof(req));
	req.path = path;
	req.data = on_logs;
	req.data_ud = &io;
	req.cancel = cancel;
	req.cancel_ud = cancel_ud;
	rc = sp_engine_request(e, &req, NULL, err);
	if (rc == 0)
		rc = sp_demux_finish(&io.demux, err);
	sp_runner_lines_flush(&io.out);
	sp_runner_lines_flush(&io.errs);
	if (bytes)
		*bytes = io.bytes;
	sp_runner_lines_release(&io.out);
	sp_runner_lines_release(&io.errs);
	free(path);
	return rc;
}

int sp_container_logs(struct sp_engine *e, const char *id, sp_runner_log_fn log, void *log_ud,
		      const struct sp_mask *mask, sp_cancel_fn cancel, void *cancel_ud,
		      unsigned long long *bytes, struct sp_error *err)
{
	return stream_logs(e, id, "follow=1&stdout=1&stderr=1", log, log_ud, mask, cancel, cancel_ud,
			   bytes, err);
}

int sp_container_wait(struct sp_engine *e, const char *id, int *exit_code, bool *oom_killed,
		      sp_cancel_fn cancel, void *cancel_ud, struct sp_error *err)
{
	struct sp_buf out = SP_BUF_INIT;
	struct sp_engine_request req;
	struct sp_engine_response resp = { 0, &out };
	char *path = sp_xasprintf("/containers/%s/wait?condition=not-running", id);
	cJSON *j = NULL;
	const cJSON *code, *state, *oom, *werr, *msg;
	int rc;

	*exit_code = -1;
	*oom_killed = false;
	sp_buf_init(&out, 1024 * 1024);
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.path = path;
	req.cancel = cancel;
	req.cancel_ud = cancel_ud;
	if ((rc = sp_engine_request(e, &req, &resp, err)) < 0)
		goto out;
	j = cJSON_ParseWithLength(out.data, out.len);
	code = cJSON_GetObjectItemCaseSensitive(j, "StatusCode");
	werr = cJSON_GetObjectItemCaseSensitive(j, "Error");
	msg = cJSON_GetObjectItemCaseSensitive(werr, "Message");
	if (cJSON_IsString(msg) && *msg->valuestring) {
		rc = sp_error_set(err, SP_EENGINE, "waiting for container %.12s: %s", id,
				  msg->valuestring);
		goto out;
	}
	if (!cJSON_IsNumber(code)) {
		rc = sp_error_set(err, SP_EENGINE, "waiting for container %.12s: no StatusCode", id);
		goto out;
	}
	*exit_code = code->valueint;
	/* OOM is only in the inspect answer */
	free(path);
	path = sp_xasprintf("/containers/%s/json", id);
	sp_buf_reset(&out);
	cJSON_Delete(j);
	j = NULL;
	if (sp_engine_call(e, "GET", path, NULL, &out, NULL) == 0) {
		j = cJSON_ParseWithLength(out.data, out.len);
		state = cJSON_GetObjectItemCaseSensitive(j, "State");
		oom = cJSON_GetObjectItemCaseSensitive(state, "OOMKilled");
		*oom_killed = cJSON_IsTrue(oom);
	}
out:
	cJSON_Delete(j);
	free(path);
	sp_buf_release(&out);
	return rc;
}

/* ---- streaming an archive into the extractor ---- */

/*
 * The engine's answer is pushed to us (libcurl's write callback) while
 * libarchive pulls its input: a thread runs the extraction reading one end
 * of a socket pair, the transfer writes the other.  Either side stopping
 * early ends it for the other: the extractor closing its end makes the
 * next send fail (EPIPE, no signal with MSG_NOSIGNAL), the transfer
 * closing its end is an early EOF for the extractor.
 */
struct extract_job {
	const char *dest;
	const struct sp_untar_opts *opts;
	int rfd, wfd;
	bool peer_gone;              /* the extractor stopped before the end */
	int rc;                      /* the extractor's result */
	struct sp_error err;
	struct sp_untar_stats stats;
	char buf[65536];
};

static int extract_read(void *ud, const void **buf, size_t *len, struct sp_error *err)
{
	struct extract_job *x = ud;
	ssize_t n;

	do
		n = read(x->rfd, x->buf, sizeof(x->buf));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return sp_error_set(err, SP_ERROR, "reading the archive stream: %s", strerror(errno));
	*buf = x->buf;
	*len = (size_t)n;
	return 0;
}

static void *extract_thread(void *ud)
{
	struct extract_job *x = ud;

	x->rc = sp_untar_extract(x->dest, extract_read, x, x->opts, &x->stats, &x->err);
	close(x->rfd);  /* a sender still writing gets EPIPE */
	x->rfd = -1;
	return NULL;
}

static int extract_send(void *ud, const char *data, size_t len, struct sp_error *err)
{
	struct extract_job *x = ud;

	while (len) {
		ssize_t n = send(x->wfd, data, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			x->peer_gone = true;
			return sp_error_set(err, SP_ERROR, "the extraction stopped");
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

int sp_container_extract(struct sp_engine *e, const char *id, const char *path,
			 const char *dest, const struct sp_untar_opts *opts,
			 sp_cancel_fn cancel, void *cancel_ud, struct sp_untar_stats *stats,
			 struct sp_error *err)
{
	struct extract_job *x = sp_xcalloc(1, sizeof(*x));
	struct sp_engine_request req;
	struct sp_buf url = SP_BUF_INIT;
	pthread_t th;
	bool started = false;
	int sv[2], rc;

	x->dest = dest;
	x->opts = opts;
	x->rfd = x->wfd = -1;
	x->err = (struct sp_error)SP_ERROR_INIT;
	if (stats)
		memset(stats, 0, sizeof(*stats));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = sp_error_set(err, SP_ERROR, "socketpair: %s", strerror(errno));
		goto out;
	}
	x->rfd = sv[0];
	x->wfd = sv[1];
	if ((rc = pthread_create(&th, NULL, extract_thread, x)) != 0) {
		close(x->rfd);
		x->rfd = -1;
		rc = sp_error_set(err, SP_ERROR, "starting the extraction: %s", strerror(rc));
		goto out;
	}
	started = true;
	sp_buf_addf(&url, "/containers/%s/archive?path=", id);
	sp_engine_urlencode(&url, path);
	memset(&req, 0, sizeof(req));
	req.path = url.data;
	req.data = extract_send;
	req.data_ud = x;
	req.low_speed_secs = 60;
	req.cancel = cancel;
	req.cancel_ud = cancel_ud;
	rc = sp_engine_request(e, &req, NULL, err);
	close(x->wfd);  /* the end of the archive (or an early one) for the extractor */
	x->wfd = -1;
	pthread_join(th, NULL);
	started = false;
	if (rc == 0 || (x->peer_gone && rc != SP_ECANCELLED)) {
		/* the transfer was fine, or it stopped because the extractor did */
		if (x->rc < 0) {
			sp_error_clear(err);
			*err = x->err;
			rc = x->rc;
		}
	}
	if (stats)
		*stats = x->stats;
out:
	if (started) {
		close(x->wfd);
		pthread_join(th, NULL);
	}
	if (x->wfd >= 0)
		close(x->wfd);
	free(x);
	sp_buf_release(&url);
	return rc;
}

int sp_container_copy_out(struct sp_engine *e, const char *id, const char *path,
			  const char *dest, sp_cancel_fn cancel, void *cancel_ud,
			  struct sp_error *err)
{
	struct sp_untar_opts uo = SP_UNTAR_OPTS_INIT;
	int rc;

	if (mkdir(dest, 0755) < 0 && errno != EEXIST)
		return sp_error_set(err, SP_ERROR, "creating %s: %s", dest, strerror(errno));
	uo.strip_first = 1;
	uo.max_bytes = SP_CONTAINER_COPY_MAX;
	rc = sp_container_extract(e, id, path, dest, &uo, cancel, cancel_ud, NULL, err);
	if (rc < 0 && rc != SP_ECANCELLED)
		sp_error_prefix(err, "copying %s out of the container", path);
	return rc;
}

/* Config.Healthcheck {Test, Timeout} into st->health_cmd and _timeout_ms. */
static void health_cmd(const cJSON *hc, struct sp_container_state *st)
{
	const cJSON *test = cJSON_GetObjectItemCaseSensitive(hc, "Test");
	const cJSON *timeout = cJSON_GetObjectItemCaseSensitive(hc, "Timeout");
	const cJSON *kind = cJSON_GetArrayItem(test, 0);
	int i, n = cJSON_GetArraySize(test);

	if (cJSON_IsNumber(timeout) && timeout->valuedouble > 0)
		st->health_timeout_ms = (int64_t)(timeout->valuedouble / 1e6);
	if (!cJSON_IsString(kind) || n < 2)
		return;   /* none, NONE, or inherited: nothing of our own to run */
	for (i = 1; i < n; i++)
		if (!cJSON_IsString(cJSON_GetArrayItem(test, i)))
			return;
	if (!strcmp(kind->valuestring, "CMD-SHELL")) {
		st->health_cmd = sp_xcalloc(4, sizeof(*st->health_cmd));
		st->health_cmd[0] = sp_xstrdup("/bin/sh");
		st->health_cmd[1] = sp_xstrdup("-c");
		st->health_cmd[2] = sp_xstrdup(cJSON_GetArrayItem(test, 1)->valuestring);
		st->nhealth_cmd = 3;
	} else if (!strcmp(kind->valuestring, "CMD")) {
		st->health_cmd = sp_xcalloc((size_t)n, sizeof(*st->health_cmd));
		for (i = 1; i < n; i++)
			st->health_cmd[i - 1] = sp_xstrdup(cJSON_GetArrayItem(test, i)->valuestring);
		st->nhealth_cmd = (size_t)n - 1;
	}
}

int sp_container_inspect(struct sp_engine *e, const char *id, struct sp_container_state *st,
			 struct sp_error *err)
{
	struct sp_buf out = SP_BUF_INIT, log = SP_BUF_INIT;
	char *path = sp_xasprintf("/containers/%s/json", id);
	const cJSON *state, *health, *status, *entries, *entry, *net, *ip, *wd;
	cJSON *j = NULL;
	int rc, n, i;

	memset(st, 0, sizeof(*st));
	st->exit_code = -1;
	if ((rc = sp_engine_call(e, "GET", path, NULL, &out, err)) < 0)
		goto out;
	j = cJSON_ParseWithLength(out.data, out.len);
	state = cJSON_GetObjectItemCaseSensitive(j, "State");
	st->running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(state, "Running"));
	if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(state, "ExitCode")))
		st->exit_code = cJSON_GetObjectItemCaseSensitive(state, "ExitCode")->valueint;
	health = cJSON_GetObjectItemCaseSensitive(state, "Health");
	status = cJSON_GetObjectItemCaseSensitive(health, "Status");
	if (cJSON_IsString(status)) {
		st->has_health = true;
		snprintf(st->health, sizeof(st->health), "%s", status->valuestring);
		entries = cJSON_GetObjectItemCaseSensitive(health, "Log");
		n = cJSON_GetArraySize(entries);
		/* the last three probes are enough to see why */
		for (i = n > 3 ? n - 3 : 0; i < n; i++) {
			const cJSON *o;
			entry = cJSON_GetArrayItem(entries, i);
			o = cJSON_GetObjectItemCaseSensitive(entry, "Output");
			sp_buf_addf(&log, "probe exit %d: %s",
				    cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(entry, "ExitCode")) ?
				    cJSON_GetObjectItemCaseSensitive(entry, "ExitCode")->valueint : -1,
				    cJSON_IsString(o) ? o->valuestring : "");
			if (log.len && log.data[log.len - 1] != '\n')
				sp_buf_addch(&log, '\n');
		}
	}
	st->health_log = sp_buf_detach(&log, NULL);
	health_cmd(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "Config"),
						    "Healthcheck"), st);
	wd = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "Config"),
					      "WorkingDir");
	st->workdir = sp_xstrdup(cJSON_IsString(wd) ? wd->valuestring : "");
	net = cJSON_GetObjectItemCaseSensitive(j, "NetworkSettings");
	ip = cJSON_GetObjectItemCaseSensitive(net, "IPAddress");
	st->ip = sp_xstrdup(cJSON_IsString(ip) ? ip->valuestring : "");
out:
	cJSON_Delete(j);
	free(path);
	sp_buf_release(&out);
	sp_buf_release(&log);
	return rc;
}

void sp_container_state_release(struct sp_container_state *st)
{
	size_t i;

	if (!st)
		return;

	free(st->health_log);
	free(st->ip);
	free(st->workdir);
	for (i = 0; i < st->nhealth_cmd; i++)
		free(st->health_cmd[i]);
	free(st->health_cmd);
	memset(st, 0, sizeof(*st));
}

int sp_container_tail(struct sp_engine *e, const char *id, unsigned tail, sp_runner_log_fn log,
		      void *log_ud, struct sp_error *err)
{
	return sp_container_tail_masked(e, id, tail, NULL, log, log_ud, err);
}

int sp_container_tail_masked(struct sp_engine *e, const char *id, unsigned tail,
			     const struct sp_mask *mask, sp_runner_log_fn log, void *log_ud,
			     struct sp_error *err)
{
	char query[64];

	snprintf(query, sizeof(query), "stdout=1&stderr=1&tail=%u", tail);
	return stream_logs(e, id, query, log, log_ud, mask, NULL, NULL, NULL, err);
}

int sp_container_exec(struct sp_engine *e, const char *id, const char *const *cmd, size_t ncmd,
		      int64_t limit_ms, int *exit_code, struct sp_error *err)
{
	struct sp_buf out = SP_BUF_INIT;
	cJSON *body = cJSON_CreateObject(), *arr, *j = NULL;
	const cJSON *jid, *running, *code;
	char *json = NULL, *path = NULL, *exec_id = NULL;
	int64_t deadline = sp_cancel_now_ms() + limit_ms;
	size_t i;
	int rc;

	*exit_code = -1;
	arr = cJSON_AddArrayToObject(body, "Cmd");
	for (i = 0; i < ncmd; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(cmd[i]));
	cJSON_AddFalseToObject(body, "AttachStdout");
	cJSON_AddFalseToObject(body, "AttachStderr");
	json = sp_xjson_print(body);
	path = sp_xasprintf("/containers/%s/exec", id);
	if ((rc = sp_engine_call(e, "POST", path, json, &out, err)) < 0)
		goto out;
	j = cJSON_ParseWithLength(out.data, out.len);
	jid = cJSON_GetObjectItemCaseSensitive(j, "Id");
	if (!cJSON_IsString(jid)) {
		rc = sp_error_set(err, SP_EENGINE, "POST %s: no Id in the answer", path);
		goto out;
	}
	exec_id = sp_xstrdup(jid->valuestring);
	free(path);
	path = sp_xasprintf("/exec/%s/start", exec_id);
	if ((rc = sp_engine_call(e, "POST", path, "{\"Detach\":true}", NULL, err)) < 0)
		goto out;
	free(path);
	path = sp_xasprintf("/exec/%s/json", exec_id);
	for (;;) {
		struct timespec ts = { 0, 100 * 1000000L };
		cJSON_Delete(j);
		j = NULL;
		sp_buf_reset(&out);
		if ((rc = sp_engine_call(e, "GET", path, NULL, &out, err)) < 0)
			goto out;
		j = cJSON_ParseWithLength(out.data, out.len);
		running = cJSON_GetObjectItemCaseSensitive(j, "Running");
		code = cJSON_GetObjectItemCaseSensitive(j, "ExitCode");
		if (!cJSON_IsTrue(running) && cJSON_IsNumber(code)) {
			*exit_code = code->valueint;
			break;
		}
		if (sp_cancel_now_ms() >= deadline) {
			rc = sp_error_set(err, SP_ETIMEOUT, "still running after %lldms",
					  (long long)limit_ms);
			goto out;
		}
		nanosleep(&ts, NULL);
	}
	rc = 0;
out:
	cJSON_Delete(j);
	cJSON_Delete(body);
	free(json);
	free(path);
	free(exec_id);
	sp_buf_release(&out);
	return rc;
}

int sp_container_network_create(struct sp_engine *e, const char *name, const struct sp_build_kv *labels,
		      size_t nlabels, struct sp_error *err)
{
	cJSON *body = cJSON_CreateObject(), *lab;
	char *json;
	size_t i;
	int rc;

	cJSON_AddStringToObject(body, "Name", name);
	cJSON_AddTrueToObject(body, "CheckDuplicate");
	cJSON_AddStringToObject(body, "Driver", "bridge");
	lab = cJSON_AddObjectToObject(body, "Labels");
	for (i = 0; i < nlabels; i++)
		cJSON_AddStringToObject(lab, labels[i].name, labels[i].value);
	json = sp_xjson_print(body);
	rc = sp_engine_call(e, "POST", "/networks/create", json, NULL, err);
	cJSON_Delete(body);
	free(json);
	return rc;
}

int sp_container_network_remove(struct sp_engine *e, const char *name, struct sp_error *err)
{
	char *path = sp_xasprintf("/networks/%s", name);
	struct sp_error local = SP_ERROR_INIT;
	long status = 0;
	int rc = sp_engine_call_status(e, "DELETE", path, NULL, NULL, &status, &local);

	free(path);
	if (status == 404)
		return 0;
	if (rc < 0 && err)
		*err = local;
	return rc;
}

int sp_container_kill(struct sp_engine *e, const char *id, struct sp_error *err)
{
	char *path = sp_xasprintf("/containers/%s/kill?signal=SIGKILL", id);
	struct sp_error local = SP_ERROR_INIT;
	long status = 0;
	int rc = sp_engine_call_status(e, "POST", path, NULL, NULL, &status, &local);

	free(path);
	/* 404 gone, 409 not running: both mean it is not running any more */
	if (status == 404 || status == 409)
		return 0;
	if (rc < 0 && err)
		*err = local;
	return rc;
}

int sp_container_remove(struct sp_engine *e, const char *id, struct sp_error *err)
{
	char *path = sp_xasprintf("/containers/%s?force=1&v=1", id);
	struct sp_error local = SP_ERROR_INIT;
	long status = 0;
	int rc = sp_engine_call_status(e, "DELETE", path, NULL, NULL, &status, &local);

	free(path);
	/* 404 gone; 409 "removal already in progress": someone else finishes it */
	if (status == 404 || status == 409)
		return 0;
	if (rc < 0 && err)
		*err = local;
	return rc;
}

static const char *str_or_empty(const cJSON *j)
{
	return cJSON_IsString(j) ? j->valuestring : "";
}

/*
 * GET what?filters={"label":[label]} (containers or networks) and calls fn
 * with each entry's id, name, state (containers) and stagepipe labels.
 */
static int list_labelled(struct sp_engine *e, const char *what, const char *label, bool networks,
			 sp_container_each_fn fn, void *ud, struct sp_error *err)
{
	struct sp_buf out = SP_BUF_INIT, path = SP_BUF_INIT;
	cJSON *filters = cJSON_CreateObject(), *arr, *list = NULL;
	const cJSON *c;
	char *json = NULL;
	int rc;

	arr = cJSON_AddArrayToObject(filters, "label");
	cJSON_AddItemToArray(arr, cJSON_CreateString(label));
	json = sp_xjson_print(filters);
	sp_buf_addstr(&path, what);
	sp_engine_urlencode(&path, json);
	if ((rc = sp_engine_call(e, "GET", path.data, NULL, &out, err)) < 0)
		goto out;
	list = cJSON_ParseWithLength(out.data, out.len);
	cJSON_ArrayForEach(c, list) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "Id");
		const cJSON *labels = cJSON_GetObjectItemCaseSensitive(c, "Labels");
		struct sp_container_summary cs;

		if (!cJSON_IsString(id))
			continue;
		cs.id = id->valuestring;
		/* a container has Names ["/name"] and a State; a network a Name */
		cs.name = str_or_empty(networks ? cJSON_GetObjectItemCaseSensitive(c, "Name") :
				       cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c, "Names"), 0));
		cs.state = networks ? "" : str_or_empty(cJSON_GetObjectItemCaseSensitive(c, "State"));
		cs.job = str_or_empty(cJSON_GetObjectItemCaseSensitive(labels, "io.stagepipe.job"));
		cs.owner = str_or_empty(cJSON_GetObjectItemCaseSensitive(labels, "io.stagepipe.owner"));
		cs.agent = str_or_empty(cJSON_GetObjectItemCaseSensitive(labels, "io.stagepipe.agent"));
		if (fn(ud, &cs) < 0)
			break;
	}
out:
	cJSON_Delete(list);
	cJSON_Delete(filters);
	free(json);
	sp_buf_release(&out);
	sp_buf_release(&path);
	return rc;
}

int sp_container_list_labelled(struct sp_engine *e, const char *label,
			       sp_container_each_fn fn, void *ud, struct sp_error *err)
{
	return list_labelled(e, "/containers/json?all=1&filters=", label, false, fn, ud, err);
}

int sp_container_network_list(struct sp_engine *e, const char *label, sp_container_each_fn fn,
			     void *ud, struct sp_error *err)
{
	return list_labelled(e, "/networks?filters=", label, true, fn, ud, err);
}

bool sp_container_owner_alive(const struct sp_container_summary *c, const char *host)
{
	const char *colon = strrchr(c->owner, ':');
	char *end;
	long pid;

	if (!colon || (size_t)(colon - c->owner) != strlen(host) ||
	    strncmp(c->owner, host, (size_t)(colon - c->owner)))
		return !strcmp(c->state, "running");
	errno = 0;
	pid = strtol(colon + 1, &end, 10);
	if (errno || *end || pid <= 0 || pid == (long)getpid())
		return false;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}
