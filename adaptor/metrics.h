/* metrics: the daemon's counters and histograms, and their Prometheus text exposition
 * (format 0.0.4). Pure: no I/O. The daemon embeds one struct metrics (loop thread only); the
 * modules that count call metrics_observe/increment it; the probe server fills a struct
 * metrics_gauges from the live state and renders both. metrics_render returns a malloc'd
 * text the caller frees. */
#ifndef ADAPTOR_METRICS_H
#define ADAPTOR_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_BUCKETS 12 /* plus +Inf */

struct metrics_histogram {
    uint64_t counts[METRICS_BUCKETS]; /* per bucket, not cumulative */
    uint64_t n;
    double sum;
};

/* Upper bounds (seconds) of the VM create/delete histogram buckets. */
extern const double metrics_bounds[METRICS_BUCKETS];

enum metrics_result { METRICS_OK, METRICS_FAILED, METRICS_RESULTS };

/* Counted by the agent relays (proxy), which hold a pointer to the daemon's. */
struct metrics_relay {
    uint64_t connections;   /* kata shim connections accepted on agent sockets */
    uint64_t bytes_to_vm;   /* read from the shim, relayed to the pod VM */
    uint64_t bytes_from_vm; /* read from the pod VM's forwarder */
};

struct metrics {
    uint64_t vm_creates[METRICS_RESULTS];
    uint64_t vm_deletes[METRICS_RESULTS];
    struct metrics_histogram vm_create_seconds; /* successful creates, StartVM's provider part */
    struct metrics_histogram vm_delete_seconds; /* successful deletes */
    uint64_t gc_deleted;                        /* orphan pod VMs the GC deleted */
    uint64_t gc_failed;
    struct metrics_relay relay;
};

/* Counted by the provider: its cloud API calls by the class of their final answer. */
enum metrics_class { METRICS_2XX, METRICS_3XX, METRICS_4XX, METRICS_5XX, METRICS_NO_ANSWER, METRICS_CLASSES };

struct metrics_gauges {
    const char *provider;
    const char *version, *commit;
    uint64_t sandboxes[6]; /* by enum sandbox_phase, SANDBOX_GONE excluded at render */
    uint64_t tunnels;      /* sandboxes with a VXLAN tunnel */
    uint64_t agent_links;  /* relays connected to their pod VM */
    int have_cloud;        /* the provider counts its API calls */
    uint64_t cloud_calls[METRICS_CLASSES];
    uint64_t cloud_retries;
};

void metrics_observe(struct metrics_histogram *h, double seconds);
char *metrics_render(const struct metrics *m, const struct metrics_gauges *g, size_t *len);

#endif
