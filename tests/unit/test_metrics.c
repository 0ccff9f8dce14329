/* Unit tests for adaptor/metrics: histogram buckets and the exact text exposition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "provider.h"

const struct provider_ops *const provider_table[] = {NULL};

static void test_histogram_buckets(void **state)
{
    (void)state;
    struct metrics_histogram h = {0};
    metrics_observe(&h, 0.1);   /* on a bound: that bucket (le is inclusive) */
    metrics_observe(&h, 0.11);  /* the next */
    metrics_observe(&h, 700);   /* past the last: only +Inf */
    metrics_observe(&h, 0);
    assert_int_equal(h.counts[0], 2);
    assert_int_equal(h.counts[1], 1);
    assert_int_equal(h.n, 4);
    uint64_t in_buckets = 0;
    for (int i = 0; i < METRICS_BUCKETS; i++)
        in_buckets += h.counts[i];
    assert_int_equal(in_buckets, 3);
}

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p += n)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

static void test_render(void **state)
{
    (void)state;
    struct metrics m = {0};
    m.vm_creates[METRICS_OK] = 3;
    m.vm_creates[METRICS_FAILED] = 1;
    metrics_observe(&m.vm_create_seconds, 0.4);
    metrics_observe(&m.vm_create_seconds, 2);
    metrics_observe(&m.vm_create_seconds, 40);
    m.gc_deleted = 2;
    m.relay = (struct metrics_relay){.connections = 4, .bytes_to_vm = 1000, .bytes_from_vm = 7};
    struct metrics_gauges g = {.provider = "azure", .version = "v1\"x", .commit = "abc", .tunnels = 2,
                               .agent_links = 1, .have_cloud = 1, .cloud_retries = 5};
    g.sandboxes[2] = 2; /* running */
    g.cloud_calls[0] = 40;
    g.cloud_calls[4] = 1;
    size_t len;
    char *t = metrics_render(&m, &g, &len);
    assert_non_null(t);
    assert_int_equal(strlen(t), len);
    assert_true(has_line(t, "caa_build_info{version=\"v1\\\"x\",commit=\"abc\",provider=\"azure\"} 1"));
    assert_true(has_line(t, "caa_sandboxes{phase=\"running\"} 2"));
    assert_true(has_line(t, "caa_sandboxes{phase=\"created\"} 0"));
    assert_false(strstr(t, "phase=\"gone\""));
    assert_true(has_line(t, "caa_tunnels 2"));
    assert_true(has_line(t, "caa_agent_links 1"));
    assert_true(has_line(t, "# TYPE caa_agent_connections_total counter"));
    assert_true(has_line(t, "caa_agent_connections_total 4"));
    assert_true(has_line(t, "caa_agent_bytes_total{direction=\"to_vm\"} 1000"));
    assert_true(has_line(t, "caa_agent_bytes_total{direction=\"from_vm\"} 7"));
    assert_true(has_line(t, "caa_vm_creates_total{result=\"ok\"} 3"));
    assert_true(has_line(t, "caa_vm_creates_total{result=\"failed\"} 1"));
    /* Cumulative buckets. */
    assert_true(has_line(t, "caa_vm_create_duration_seconds_bucket{le=\"0.25\"} 0"));
    assert_true(has_line(t, "caa_vm_create_duration_seconds_bucket{le=\"0.5\"} 1"));
    assert_true(has_line(t, "caa_vm_create_duration_seconds_bucket{le=\"2.5\"} 2"));
    assert_true(has_line(t, "caa_vm_create_duration_seconds_bucket{le=\"30\"} 2"));
    assert_true(has_line(t, "caa_vm_create_duration_seconds_bucket{le=\"60\"} 3"));
    assert_true(has_line(t, "caa_vm_create_duration_seconds_bucket{le=\"+Inf\"} 3"));
    assert_true(has_line(t, "caa_vm_create_duration_seconds_sum 42.400000"));
    assert_true(has_line(t, "caa_vm_create_duration_seconds_count 3"));
    assert_true(has_line(t, "# TYPE caa_vm_delete_duration_seconds histogram"));
    assert_true(has_line(t, "caa_gc_orphans_total{result=\"deleted\"} 2"));
    assert_true(has_line(t, "caa_cloud_requests_total{code=\"2xx\"} 40"));
    assert_true(has_line(t, "caa_cloud_requests_total{code=\"none\"} 1"));
    assert_true(has_line(t, "caa_cloud_retries_total 5"));
    assert_int_equal(t[len - 1], '\n');
    free(t);
    /* Without a counting provider the cloud families are left out. */
    g.have_cloud = 0;
    t = metrics_render(&m, &g, &len);
    assert_non_null(t);
    assert_null(strstr(t, "caa_cloud_"));
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
