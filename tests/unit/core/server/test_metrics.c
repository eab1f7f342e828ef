/*
 * test_metrics.c — the server's Prometheus counters and histograms: the
 * text format (HELP/TYPE, labels, cumulative buckets, +Inf, _sum/_count),
 * label values cut to a safe alphabet (no quote or newline can break the
 * exposition), a bounded number of rows whatever the callers pass, and a
 * render without a store (store_up 0).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/buf.h"
#include "core/base/error.h"
#include "core/server/server.h"

static char *render(struct sp_metrics *m)
{
	struct sp_buf b = SP_BUF_INIT;
	struct sp_error err = SP_ERROR_INIT;

	assert_int_equal(sp_metrics_render(m, NULL, &b, &err), 0);
	return sp_buf_detach(&b, NULL);
}

static size_t count_lines(const char *text, const char *prefix)
{
	size_t n = 0, plen = strlen(prefix);
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, prefix, plen))
			n++;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return n;
}

static void test_format(void **state)
{
	struct sp_metrics *m = sp_metrics_new();
	char *t;

	(void)state;
	sp_metrics_delivery(m, "github", "accepted");
	sp_metrics_delivery(m, "github", "accepted");
	sp_metrics_delivery(m, "gitlab", "unauthorized");
	sp_metrics_http(m, "hooks", 202, 0.003);
	sp_metrics_http(m, "hooks", 202, 7.0);
	sp_metrics_job_finished(m, "passed", 42);
	sp_metrics_stage_finished(m, "failed", 0.5);
	sp_metrics_status_sent(m, "gitea", false);
	sp_metrics_leases_expired(m, 2);
	sp_metrics_leases_expired(m, -5);  /* ignored */
	t = render(m);
	assert_non_null(strstr(t, "# TYPE stagepipe_deliveries_total counter\n"));
	assert_non_null(strstr(t, "stagepipe_deliveries_total{forge=\"github\",outcome=\"accepted\"} 2\n"));
	assert_non_null(strstr(t, "stagepipe_deliveries_total{forge=\"gitlab\",outcome=\"unauthorized\"} 1\n"));
	assert_non_null(strstr(t, "stagepipe_http_requests_total{route=\"hooks\",code=\"202\"} 2\n"));
	/* cumulative buckets: 0.003 is in le=0.005 and above, 7 only in +Inf */
	assert_non_null(strstr(t, "stagepipe_http_request_duration_seconds_bucket{route=\"hooks\",le=\"0.0025\"} 0\n"));
	assert_non_null(strstr(t, "stagepipe_http_request_duration_seconds_bucket{route=\"hooks\",le=\"0.005\"} 1\n"));
	assert_non_null(strstr(t, "stagepipe_http_request_duration_seconds_bucket{route=\"hooks\",le=\"5\"} 1\n"));
	assert_non_null(strstr(t, "stagepipe_http_request_duration_seconds_bucket{route=\"hooks\",le=\"+Inf\"} 2\n"));
	assert_non_null(strstr(t, "stagepipe_http_request_duration_seconds_count{route=\"hooks\"} 2\n"));
	assert_non_null(strstr(t, "stagepipe_http_request_duration_seconds_sum{route=\"hooks\"} 7.003000\n"));
	assert_non_null(strstr(t, "stagepipe_job_duration_seconds_bucket{le=\"60\"} 1\n"));
	assert_non_null(strstr(t, "stagepipe_job_duration_seconds_count 1\n"));
	assert_non_null(strstr(t, "stagepipe_jobs_finished_total{state=\"passed\"} 1\n"));
	assert_non_null(strstr(t, "stagepipe_status_sends_total{forge=\"gitea\",result=\"failed\"} 1\n"));
	assert_non_null(strstr(t, "stagepipe_lease_expiries_total 2\n"));
	assert_non_null(strstr(t, "stagepipe_store_up 0\n"));
	assert_null(strstr(t, "stagepipe_queue_depth"));  /* no store, no gauges */
	free(t);
	sp_metrics_free(m);
}

static void test_labels_and_bounds(void **state)
{
	struct sp_metrics *m = sp_metrics_new();
	char *t, route[32];
	int i;

	(void)state;
	/* whatever a caller passes, the exposition stays well-formed */
	sp_metrics_delivery(m, "git\"hub\n", "x} 1\nevil{a=\"b");
	sp_metrics_http(m, NULL, 200, 0.1);
	for (i = 0; i < 1000; i++) {
		snprintf(route, sizeof(route), "r%d", i);
		sp_metrics_http(m, route, 200 + i, 0.001);
		sp_metrics_delivery(m, route, "accepted");
	}
	t = render(m);
	assert_null(strstr(t, "evil{"));
	assert_null(strchr(t, '\r'));
	assert_non_null(strstr(t, "stagepipe_deliveries_total{forge=\"git_hub_\",outcome=\"x__1_evil_a__b\"} 1\n"));
	/* fixed tables: rows past their size are dropped, not allocated */
	assert_true(count_lines(t, "stagepipe_deliveries_total{") <= 128);
	assert_true(count_lines(t, "stagepipe_http_requests_total{") <= 128);
	assert_true(count_lines(t, "stagepipe_http_request_duration_seconds_count{") <= 32);
	assert_true(strlen(t) < 256 * 1024);
	free(t);
	sp_metrics_free(m);
	/* NULL is a no-op for the recorders */
	sp_metrics_delivery(NULL, "a", "b");
	sp_metrics_http(NULL, "a", 200, 1);
	sp_metrics_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_labels_and_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
