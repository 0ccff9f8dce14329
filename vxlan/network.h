/* network: the daemon's pod-network service. Owns the VNI allocator (vni.h) and the
 * nftables context (notrack.h), and runs Inspect, tunnel setup and teardown as thread-pool
 * jobs whose completions come back on the loop thread.
 *
 * Lifecycle: network_new at start-up; network_reconcile once, before the first CreateVM
 * (blocking: it scans the pod namespaces on a thread of its own); network_free after the
 * loop has finished every job (uv_run returned). Job callbacks always run, also while the
 * daemon shuts down; the caller checks its own state. Strings passed in are copied; the
 * struct podnet handed to a callback lives until the callback returns. */
#ifndef VXLAN_NETWORK_H
#define VXLAN_NETWORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "podnet.h"
#include "vni.h"

#define NETWORK_NETNS_DIR "/run/netns"

struct network_config {
    uint32_t vxlan_min_id;
    uint16_t vxlan_port;
    const char *host_interface;   /* "" or NULL: the default-route device */
    const char *pod_subnet_cidrs; /* POD_SUBNET_CIDRS, "" or NULL for none */
    const char *netns_dir;        /* NULL: NETWORK_NETNS_DIR */
};

struct network;

/* -1 with err when the configuration is unusable (VNI range, POD_SUBNET_CIDRS). */
struct network *network_new(uv_loop_t *loop, const struct network_config *cfg, char *err, size_t errlen);
void network_free(struct network *n);

/* Marks the VNIs of the sandbox records (in_use) and of every VXLAN device found in the
 * worker's namespace and in the namespaces under netns_dir, and removes conntrack bypass
 * rules whose VNI is neither. Problems (no privileges, unreadable namespaces) are logged and
 * leave pod networking to fail later with a clear error; they do not stop the daemon. */
void network_reconcile(struct network *n, const uint32_t *in_use, size_t n_in_use);

/* 0 with *vni set, or -1 with err (every VNI of the range is in use). */
int network_vni_take(struct network *n, uint32_t *vni, char *err, size_t errlen);
void network_vni_release(struct network *n, uint32_t vni);
uint32_t network_vni_min(const struct network *n);
uint16_t network_port(const struct network *n);

/* Inspect of spec 8.1 for the pod namespace at netns_path: rc 0 and pn, or rc -1 and err. */
typedef void (*network_inspect_cb)(void *arg, int rc, const struct podnet *pn, const char *err);
int network_inspect(struct network *n, const char *netns_path, network_inspect_cb cb, void *arg);

struct network_tunnel {
    const char *netns_path;
    const char *pod_ifname;
    uint32_t vni;
    const char *remote; /* pod VM IPv4 address, text */
};

/* rc 0, or -1 with err; for teardown, netns_gone tells the pod namespace was already gone.
 * elapsed_us is the job's own run time. */
typedef void (*network_done_cb)(void *arg, int rc, bool netns_gone, uint64_t elapsed_us, const char *err);
/* Both return -1 only when the job cannot be queued (ENOMEM, or a remote that is not an
 * IPv4 address for setup: err then says so and cb is not called). */
int network_setup(struct network *n, const struct network_tunnel *t, network_done_cb cb, void *arg, char *err,
                  size_t errlen);
int network_teardown(struct network *n, const struct network_tunnel *t, network_done_cb cb, void *arg);

#endif
