#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

const double metrics_bounds[METRICS_BUCKETS] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};

void metrics_observe(struct metrics_histogram *h, double seconds)
{
    size_t i = 0;
    while (i < METRICS_BUCKETS && seconds > metrics_bounds[i])
        i++;
    if (i < METRICS_BUCKETS)
        h->counts[i]++;
    h->n++;
    h->sum += seconds;
}

struct out {
    char *buf;
    size_t len, cap;
    int oom;
};

static void put(struct out *o, const char *fmt, ...)
{
    if (o->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->oom = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *b = realloc(o->buf, cap);
        if (!b) {
            o->oom = 1;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
}

/* Label values we print are our own names, never user input: only " and \ need escaping. */
static void put_label(struct out *o, const char *v)
{
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '"' || *p == '\\')
            put(o, "\\%c", *p);
        else if (*p == '\n')
            put(o, "\\n");
        else
            put(o, "%c", *p);
    }
}

static void histogram(struct out *o, const char *name, const char *help, const struct metrics_histogram *h)
{
    put(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (size_t i = 0; i < METRICS_BUCKETS; i++) {
        cum += h->counts[i];
        put(o, "%s_bucket{le=\"%g\"} %llu\n", name, metrics_bounds[i], (unsigned long long)cum);
    }
    put(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)h->n, name, h->sum,
        name, (unsigned long long)h->n);
}

static void results(struct out *o, const char *name, const char *help, const uint64_t *v)
{
    put(o, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    put(o, "%s{result=\"ok\"} %llu\n%s{result=\"failed\"} %llu\n", name, (unsigned long long)v[METRICS_OK], name,
        (unsigned long long)v[METRICS_FAILED]);
}

char *metrics_render(const struct metrics *m, const struct metrics_gauges *g, size_t *len)
{
    struct out o = {malloc(4096), 0, 4096, 0};
    if (!o.buf)
        return NULL;
    o.buf[0] = '\0';
    put(&o, "# HELP caa_build_info The daemon's version and the commit it was built from.\n"
            "# TYPE caa_build_info gauge\ncaa_build_info{version=\"");
    put_label(&o, g->version);
    put(&o, "\",commit=\"");
    put_label(&o, g->commit);
    put(&o, "\",provider=\"");
    put_label(&o, g->provider);
    put(&o, "\"} 1\n");

    put(&o, "# HELP caa_sandboxes Sandboxes known to the daemon, by phase.\n# TYPE caa_sandboxes gauge\n");
    for (int p = SANDBOX_CREATED; p < SANDBOX_GONE; p++)
        put(&o, "caa_sandboxes{phase=\"%s\"} %llu\n", sandbox_phase_name((enum sandbox_phase)p),
            (unsigned long long)g->sandboxes[p]);
    put(&o, "# HELP caa_tunnels Pod network VXLAN tunnels set up.\n# TYPE caa_tunnels gauge\ncaa_tunnels %llu\n",
        (unsigned long long)g->tunnels);
    put(&o, "# HELP caa_agent_links Agent relays connected to their pod VM's forwarder.\n"
            "# TYPE caa_agent_links gauge\ncaa_agent_links %llu\n",
        (unsigned long long)g->agent_links);
    put(&o, "# HELP caa_agent_connections_total Kata shim connections accepted on agent sockets.\n"
            "# TYPE caa_agent_connections_total counter\ncaa_agent_connections_total %llu\n",
        (unsigned long long)m->relay.connections);
    put(&o, "# HELP caa_agent_bytes_total Agent protocol bytes relayed, by direction.\n"
            "# TYPE caa_agent_bytes_total counter\ncaa_agent_bytes_total{direction=\"to_vm\"} %llu\n"
            "caa_agent_bytes_total{direction=\"from_vm\"} %llu\n",
        (unsigned long long)m->relay.bytes_to_vm, (unsigned long long)m->relay.bytes_from_vm);

    results(&o, "caa_vm_creates_total", "Pod VM creates by outcome.", m->vm_creates);
    histogram(&o, "caa_vm_create_duration_seconds", "Time from the create request to a running pod VM.",
              &m->vm_create_seconds);
    results(&o, "caa_vm_deletes_total", "Pod VM deletes by outcome (failed ones are retried).", m->vm_deletes);
    histogram(&o, "caa_vm_delete_duration_seconds", "Time a pod VM delete took.", &m->vm_delete_seconds);
    put(&o, "# HELP caa_gc_orphans_total Leftover pod VMs of this node found by the orphan GC, by outcome.\n"
            "# TYPE caa_gc_orphans_total counter\ncaa_gc_orphans_total{result=\"deleted\"} %llu\n"
            "caa_gc_orphans_total{result=\"failed\"} %llu\n",
        (unsigned long long)m->gc_deleted, (unsigned long long)m->gc_failed);

    if (g->have_cloud) {
        static const char *const cls[METRICS_CLASSES] = {"2xx", "3xx", "4xx", "5xx", "none"};
        put(&o, "# HELP caa_cloud_requests_total Cloud API requests by the class of their final answer "
                "(none: no answer).\n# TYPE caa_cloud_requests_total counter\n");
        for (int c = 0; c < METRICS_CLASSES; c++)
            put(&o, "caa_cloud_requests_total{code=\"%s\"} %llu\n", cls[c], (unsigned long long)g->cloud_calls[c]);
        put(&o, "# HELP caa_cloud_retries_total Cloud API requests sent again after a throttle, a 5xx or no "
                "answer.\n# TYPE caa_cloud_retries_total counter\ncaa_cloud_retries_total %llu\n",
            (unsigned long long)g->cloud_retries);
    }
    if (o.oom) {
        free(o.buf);
        return NULL;
    }
    *len = o.len;
    return o.buf;
}
