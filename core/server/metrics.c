/*
 * metrics.c — the server's Prometheus counters and histograms; see server.h.
 *
 * Fixed tables under one mutex: label values are fixed names from the
 * code (routes, outcomes, states, forges), so a few dozen rows are enough;
 * a row past the table's size is dropped rather than allocated, which
 * keeps memory bounded whatever a client sends.  Histograms have fixed
 * buckets.  Rendering takes the lock once, copies nothing big, and adds
 * the store's gauges (read outside the lock) and the process RSS.
 */
#include "core/server/server.h"
#include "core/server/http_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/base/xalloc.h"

#define LABEL_MAX 32
#define COUNTER_ROWS 128
#define HIST_ROWS 32
#define BUCKETS_MAX 16

static const double http_buckets[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
};
static const double job_buckets[] = { 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600 };

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* A counter with up to two labels. */
struct crow {
	char a[LABEL_MAX], b[LABEL_MAX];
	uint64_t n;
};

struct counters {
	struct crow rows[COUNTER_ROWS];
	size_t n;
};

/* A histogram with up to one label. */
struct hrow {
	char label[LABEL_MAX];
	uint64_t buckets[BUCKETS_MAX];  /* not cumulative; made so at render */
	uint64_t count;
	double sum;
};

struct hists {
	const double *le;
	size_t nle;
	struct hrow rows[HIST_ROWS];
	size_t n;
};

struct sp_metrics {
	pthread_mutex_t mu;
	struct counters deliveries;    /* forge, outcome */
	struct counters http;          /* route, code */
	struct hists http_seconds;     /* route */
	struct counters finished;      /* state */
	struct hists job_seconds;      /* (no label) */
	struct hists stage_seconds;    /* result */
	struct counters status_sends;  /* forge, result */
	uint64_t lease_expiries;
	/* the store's counts, kept for a second: /metrics is public and each
	 * count is a query over the jobs table */
	struct sp_store_counts counts;
	int64_t counts_at_ms;          /* monotonic; 0: never read */
};

#define COUNTS_TTL_MS 1000

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct sp_metrics *sp_metrics_new(void)
{
	struct sp_metrics *m = sp_xcalloc(1, sizeof(*m));

	pthread_mutex_init(&m->mu, NULL);
	m->http_seconds.le = http_buckets;
	m->http_seconds.nle = NELEM(http_buckets);
	m->job_seconds.le = job_buckets;
	m->job_seconds.nle = NELEM(job_buckets);
	m->stage_seconds.le = job_buckets;
	m->stage_seconds.nle = NELEM(job_buckets);
	return m;
}

void sp_metrics_free(struct sp_metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* Label values are names from the code; anything else is cut to [A-Za-z0-9_.:/-]. */
static void label_copy(char *dst, const char *src)
{
	size_t i;

	for (i = 0; src && src[i] && i + 1 < LABEL_MAX; i++) {
		char c = src[i];
		dst[i] = (char)(((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				 (c >= '0' && c <= '9') || strchr("_.:/-", c)) ? c : '_');
	}
	dst[i] = '\0';
}

static void count_add(struct counters *c, const char *a, const char *b, uint64_t n)
{
	char la[LABEL_MAX], lb[LABEL_MAX];
	size_t i;

	label_copy(la, a);
	label_copy(lb, b);
	for (i = 0; i < c->n; i++)
		if (!strcmp(c->rows[i].a, la) && !strcmp(c->rows[i].b, lb)) {
			c->rows[i].n += n;
			return;
		}
	if (c->n == COUNTER_ROWS)
		return;
	memcpy(c->rows[c->n].a, la, LABEL_MAX);
	memcpy(c->rows[c->n].b, lb, LABEL_MAX);
	c->rows[c->n++].n = n;
}

static void hist_observe(struct hists *h, const char *label, double v)
{
	char l[LABEL_MAX];
	struct hrow *row = NULL;
	size_t i;

	label_copy(l, label);
	for (i = 0; i < h->n; i++)
		if (!strcmp(h->rows[i].label, l)) {
			row = &h->rows[i];
			break;
		}
	if (!row) {
		if (h->n == HIST_ROWS)
			return;
		row = &h->rows[h->n++];
		memcpy(row->label, l, LABEL_MAX);
	}
	for (i = 0; i < h->nle; i++)
		if (v <= h->le[i]) {
			row->buckets[i]++;
			break;
		}
	row->count++;
	row->sum += v;
}

void sp_metrics_delivery(struct sp_metrics *m, const char *forge, const char *outcome)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	count_add(&m->deliveries, forge, outcome, 1);
	pthread_mutex_unlock(&m->mu);
}

void sp_metrics_http(struct sp_metrics *m, const char *route, int status, double seconds)
{
	char code[16];

	if (!m)
		return;
	snprintf(code, sizeof(code), "%d", status);
	pthread_mutex_lock(&m->mu);
	count_add(&m->http, route, code, 1);
	hist_observe(&m->http_seconds, route, seconds);
	pthread_mutex_unlock(&m->mu);
}

void sp_metrics_job_finished(struct sp_metrics *m, const char *state, double seconds)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	count_add(&m->finished, state, "", 1);
	hist_observe(&m->job_seconds, "", seconds);
	pthread_mutex_unlock(&m->mu);
}

void sp_metrics_stage_finished(struct sp_metrics *m, const char *result, double seconds)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	hist_observe(&m->stage_seconds, result, seconds);
	pthread_mutex_unlock(&m->mu);
}

void sp_metrics_status_sent(struct sp_metrics *m, const char *forge, bool ok)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	count_add(&m->status_sends, forge, ok ? "ok" : "failed", 1);
	pthread_mutex_unlock(&m->mu);
}

void sp_metrics_leases_expired(struct sp_metrics *m, int n)
{
	if (!m || n <= 0)
		return;
	pthread_mutex_lock(&m->mu);
	m->lease_expiries += (uint64_t)n;
	pthread_mutex_unlock(&m->mu);
}

/* ---- rendering ------------------------------------------------------------ */

static void head(struct sp_buf *o, const char *name, const char *type, const char *help)
{
	sp_buf_addf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_counters(struct sp_buf *o, const struct counters *c, const char *name,
			    const char *ka, const char *kb)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		if (kb)
			sp_buf_addf(o, "%s{%s=\"%s\",%s=\"%s\"} %llu\n", name, ka, c->rows[i].a, kb,
				    c->rows[i].b, (unsigned long long)c->rows[i].n);
		else
			sp_buf_addf(o, "%s{%s=\"%s\"} %llu\n", name, ka, c->rows[i].a,
				    (unsigned long long)c->rows[i].n);
	}
}

static void render_hists(struct sp_buf *o, const struct hists *h, const char *name,
			 const char *key)
{
	size_t i, k;

	for (i = 0; i < h->n; i++) {
		const struct hrow *row = &h->rows[i];
		char lab[LABEL_MAX + 40], sep[2] = { 0, 0 };
		uint64_t cum = 0;

		if (key) {
			snprintf(lab, sizeof(lab), "%s=\"%s\"", key, row->label);
			sep[0] = ',';
		} else {
			lab[0] = '\0';
		}
		for (k = 0; k < h->nle; k++) {
			cum += row->buckets[k];
			sp_buf_addf(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, lab, sep, h->le[k],
				    (unsigned long long)cum);
		}
		sp_buf_addf(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, lab, sep,
			    (unsigned long long)row->count);
		if (key) {
			sp_buf_addf(o, "%s_sum{%s} %.6f\n", name, lab, row->sum);
			sp_buf_addf(o, "%s_count{%s} %llu\n", name, lab,
				    (unsigned long long)row->count);
		} else {
			sp_buf_addf(o, "%s_sum %.6f\n", name, row->sum);
			sp_buf_addf(o, "%s_count %llu\n", name, (unsigned long long)row->count);
		}
	}
}

static long long rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long long size = 0, rss = 0;
	long page = sysconf(_SC_PAGESIZE);
	int got;

	if (!f)
		return -1;
	got = fscanf(f, "%llu %llu", &size, &rss);
	fclose(f);
	if (got != 2 || page <= 0)
		return -1;
	return (long long)(rss * (unsigned long long)page);
}

void sp_metrics_render_agents(struct sp_buf *out, struct sp_agents *a)
{
	int configured = 0, online = 0;

	sp_agents_counts(a, &configured, &online);
	head(out, "stagepipe_agents_configured", "gauge", "Agents in the server's config.");
	sp_buf_addf(out, "stagepipe_agents_configured %d\n", configured);
	head(out, "stagepipe_agents_online", "gauge",
	     "Agents that asked for a job within the last 60 s.");
	sp_buf_addf(out, "stagepipe_agents_online %d\n", online);
}

int sp_metrics_render(struct sp_metrics *m, struct sp_store *st, struct sp_buf *out,
		      struct sp_error *err)
{
	struct sp_store_counts counts;
	struct sp_error serr = SP_ERROR_INIT;
	bool have_counts = false;
	long long rss;
	int i;

	(void)err;
	memset(&counts, 0, sizeof(counts));
	pthread_mutex_lock(&m->mu);
	if (m->counts_at_ms && mono_ms() - m->counts_at_ms < COUNTS_TTL_MS) {
		counts = m->counts;
		have_counts = true;
	}
	pthread_mutex_unlock(&m->mu);
	if (!have_counts && st && sp_store_counts(st, &counts, &serr) == 0) {
		have_counts = true;
		pthread_mutex_lock(&m->mu);
		m->counts = counts;
		m->counts_at_ms = mono_ms();
		pthread_mutex_unlock(&m->mu);
	}

	pthread_mutex_lock(&m->mu);
	head(out, "stagepipe_deliveries_total", "counter",
	     "Webhook deliveries by forge and outcome.");
	render_counters(out, &m->deliveries, "stagepipe_deliveries_total", "forge", "outcome");
	head(out, "stagepipe_http_requests_total", "counter", "HTTP requests by route and status.");
	render_counters(out, &m->http, "stagepipe_http_requests_total", "route", "code");
	head(out, "stagepipe_http_request_duration_seconds", "histogram",
	     "Time to answer an HTTP request (to the first byte for streams), by route.");
	render_hists(out, &m->http_seconds, "stagepipe_http_request_duration_seconds", "route");
	head(out, "stagepipe_jobs_finished_total", "counter", "Jobs finished by this process, by state.");
	render_counters(out, &m->finished, "stagepipe_jobs_finished_total", "state", NULL);
	head(out, "stagepipe_job_duration_seconds", "histogram", "Duration of finished jobs.");
	render_hists(out, &m->job_seconds, "stagepipe_job_duration_seconds", NULL);
	head(out, "stagepipe_stage_duration_seconds", "histogram",
	     "Duration of finished stages, by result.");
	render_hists(out, &m->stage_seconds, "stagepipe_stage_duration_seconds", "result");
	head(out, "stagepipe_status_sends_total", "counter",
	     "Commit status requests to forges, by forge and result.");
	render_counters(out, &m->status_sends, "stagepipe_status_sends_total", "forge", "result");
	head(out, "stagepipe_lease_expiries_total", "counter",
	     "Job leases taken back after their worker stopped renewing them.");
	sp_buf_addf(out, "stagepipe_lease_expiries_total %llu\n",
		    (unsigned long long)m->lease_expiries);
	pthread_mutex_unlock(&m->mu);

	if (have_counts) {
		head(out, "stagepipe_jobs", "gauge", "Jobs in the store, by state.");
		for (i = 0; i < SP_JOB_NSTATES; i++)
			sp_buf_addf(out, "stagepipe_jobs{state=\"%s\"} %lld\n",
				    sp_job_state_name((enum sp_job_state)i), (long long)counts.jobs[i]);
		head(out, "stagepipe_queue_depth", "gauge", "Jobs waiting for a worker.");
		sp_buf_addf(out, "stagepipe_queue_depth %lld\n",
			    (long long)counts.jobs[SP_JOB_QUEUED]);
		head(out, "stagepipe_status_outbox_pending", "gauge",
		     "Commit statuses not yet sent.");
		sp_buf_addf(out, "stagepipe_status_outbox_pending %lld\n",
			    (long long)counts.outbox_pending);
		head(out, "stagepipe_status_outbox_failing", "gauge",
		     "Commit statuses with at least one failed attempt.");
		sp_buf_addf(out, "stagepipe_status_outbox_failing %lld\n",
			    (long long)counts.outbox_failing);
	}
	head(out, "stagepipe_store_up", "gauge", "1 when the store answered the counts query.");
	sp_buf_addf(out, "stagepipe_store_up %d\n", have_counts ? 1 : 0);
	if ((rss = rss_bytes()) >= 0) {
		head(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
		sp_buf_addf(out, "process_resident_memory_bytes %lld\n", rss);
	}
	return 0;
}
