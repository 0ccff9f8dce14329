#include "network.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inspect.h"
#include "log.h"
#include "tunnel.h"

struct network {
    uv_loop_t *loop;
    uint32_t min;
    uint16_t port;
    char host_interface[IF_NAMESIZE];
    char *subnets;
    char *netns_dir;
    struct vni_alloc vnis; /* loop thread only */
    struct notrack *nt;    /* NULL when nftables could not be opened */
};

struct network *network_new(uv_loop_t *loop, const struct network_config *cfg, char *err, size_t errlen)
{
    struct network *n = calloc(1, sizeof(*n));
    if (!n) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    n->loop = loop;
    n->min = cfg->vxlan_min_id;
    n->port = cfg->vxlan_port;
    if (cfg->host_interface && strlen(cfg->host_interface) >= sizeof(n->host_interface)) {
        snprintf(err, errlen, "-host-interface: '%s' is longer than an interface name", cfg->host_interface);
        goto fail;
    }
    snprintf(n->host_interface, sizeof(n->host_interface), "%s", cfg->host_interface ? cfg->host_interface : "");
    if (vni_alloc_init(&n->vnis, cfg->vxlan_min_id, PODNET_VNI_MAX)) {
        snprintf(err, errlen, "-vxlan-min-id %u: VXLAN ids are 1..%u", cfg->vxlan_min_id, PODNET_VNI_MAX);
        goto fail;
    }
    struct podnet probe = {0};
    if (podnet_subnets_add(&probe, cfg->pod_subnet_cidrs, err, errlen))
        goto fail;
    n->subnets = strdup(cfg->pod_subnet_cidrs ? cfg->pod_subnet_cidrs : "");
    n->netns_dir = strdup(cfg->netns_dir ? cfg->netns_dir : NETWORK_NETNS_DIR);
    if (!n->subnets || !n->netns_dir) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    n->nt = notrack_new();
    if (!n->nt)
        log_warn("vxlan", "nftables is not usable (libnftables context): pod tunnels will fail to set up");
    return n;
fail:
    network_free(n);
    return NULL;
}

void network_free(struct network *n)
{
    if (!n)
        return;
    vni_alloc_free(&n->vnis);
    notrack_free(n->nt);
    free(n->subnets);
    free(n->netns_dir);
    free(n);
}

uint32_t network_vni_min(const struct network *n)
{
    return n->min;
}

uint16_t network_port(const struct network *n)
{
    return n->port;
}

int network_vni_take(struct network *n, uint32_t *vni, char *err, size_t errlen)
{
    if (vni_alloc_take(&n->vnis, vni) == 0)
        return 0;
    if (errno == ENOSPC)
        snprintf(err, errlen, "no free VXLAN id: all of %u..%u are in use on this worker (-vxlan-min-id)", n->min,
                 PODNET_VNI_MAX);
    else
        snprintf(err, errlen, "out of memory");
    return -1;
}

void network_vni_release(struct network *n, uint32_t vni)
{
    if (vni)
        vni_alloc_release(&n->vnis, vni);
}

/* ---- start-up reconciliation ---------------------------------------------------------- */

struct reconcile {
    struct network *n;
    unsigned devices, namespaces, removed, failures;
};

static void mark_device(uint32_t vni, uint16_t port, const char *ifname, void *arg)
{
    struct reconcile *r = arg;
    (void)port;
    (void)ifname;
    if (vni >= r->n->min && vni <= PODNET_VNI_MAX) {
        r->devices++;
        if (vni_alloc_mark(&r->n->vnis, vni))
            r->failures++;
    }
}

/* Namespace switching (scan) and nftables run on this thread, not the loop's. */
static void *reconcile_thread(void *arg)
{
    struct reconcile *r = arg;
    struct network *n = r->n;
    char err[256];
    if (tunnel_scan(NULL, mark_device, r, err, sizeof(err))) {
        log_warn("vxlan", "start-up scan: %s", err);
        r->failures++;
    }
    DIR *dir = opendir(n->netns_dir);
    if (!dir && errno != ENOENT) {
        log_warn("vxlan", "start-up scan: %s: %s", n->netns_dir, strerror(errno));
        r->failures++;
    }
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", n->netns_dir, e->d_name);
        r->namespaces++;
        if (tunnel_scan(path, mark_device, r, err, sizeof(err))) {
            log_warn("vxlan", "start-up scan: %s", err);
            r->failures++;
        }
    }
    if (dir)
        closedir(dir);
    if (!n->nt)
        return NULL;
    uint32_t vnis[1024];
    int k = notrack_vnis(n->nt, vnis, sizeof(vnis) / sizeof(vnis[0]), err, sizeof(err));
    if (k < 0) {
        log_warn("vxlan", "start-up: reading the conntrack bypass rules: %s", err);
        r->failures++;
    }
    for (int i = 0; i < k && (size_t)i < sizeof(vnis) / sizeof(vnis[0]); i++) {
        if (vni_alloc_used(&n->vnis, vnis[i])) /* a record or a device still has it */
            continue;
        if (notrack_del(n->nt, vnis[i], err, sizeof(err))) {
            log_warn("vxlan", "start-up: %s", err);
            r->failures++;
        } else {
            r->removed++;
        }
    }
    return NULL;
}

void network_reconcile(struct network *n, const uint32_t *in_use, size_t n_in_use)
{
    struct reconcile r = {.n = n};
    for (size_t i = 0; i < n_in_use; i++)
        if (vni_alloc_mark(&n->vnis, in_use[i]))
            r.failures++;
    pthread_t th;
    int rc = pthread_create(&th, NULL, reconcile_thread, &r);
    if (rc) {
        log_warn("vxlan", "start-up scan not run: %s", strerror(rc));
        return;
    }
    pthread_join(th, NULL);
    log_info("vxlan", "VNIs from %u: %zu in use by sandboxes, %u VXLAN devices in use found in the worker and %u "
                      "pod namespaces, %u stale conntrack bypass rule sets removed%s",
             n->min, n_in_use, r.devices, r.namespaces, r.removed,
             r.failures ? " (with problems, see above)" : "");
}

/* ---- jobs ----------------------------------------------------------------------------- */

enum job_kind { JOB_INSPECT, JOB_SETUP, JOB_TEARDOWN };

struct job {
    uv_work_t req;
    struct network *n;
    enum job_kind kind;
    void *arg;
    network_inspect_cb inspect_cb;
    network_done_cb done_cb;
    char netns[4096];
    char ifname[IF_NAMESIZE];
    uint32_t vni, remote;
    int rc;
    bool gone;
    uint64_t us;
    struct podnet pn;
    char err[512];
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void job_work(uv_work_t *req)
{
    struct job *j = req->data;
    struct network *n = j->n;
    uint64_t t0 = now_us();
    struct tunnel_params p = {j->netns, j->ifname, j->vni, n->port, j->remote};
    switch (j->kind) {
    case JOB_INSPECT:
        j->rc = inspect_node(n->host_interface, &j->pn, j->err, sizeof(j->err)) ||
                        inspect_pod(j->netns, &j->pn, j->err, sizeof(j->err)) ||
                        podnet_subnets_add(&j->pn, n->subnets, j->err, sizeof(j->err))
                    ? -1
                    : 0;
        break;
    case JOB_SETUP:
        if (!n->nt) {
            snprintf(j->err, sizeof(j->err), "nftables is not usable on this worker (conntrack bypass rules)");
            j->rc = -1;
            break;
        }
        j->rc = tunnel_setup(n->nt, &p, j->err, sizeof(j->err));
        break;
    case JOB_TEARDOWN:
        if (!n->nt) {
            snprintf(j->err, sizeof(j->err), "nftables is not usable on this worker (conntrack bypass rules)");
            j->rc = -1;
            break;
        }
        j->rc = tunnel_teardown(n->nt, &p, &j->gone, j->err, sizeof(j->err));
        break;
    }
    j->us = now_us() - t0;
}

static void job_after(uv_work_t *req, int status)
{
    struct job *j = req->data;
    if (status && !j->rc) {
        j->rc = -1;
        snprintf(j->err, sizeof(j->err), "job cancelled");
    }
    if (j->kind == JOB_INSPECT)
        j->inspect_cb(j->arg, j->rc, j->rc ? NULL : &j->pn, j->err);
    else
        j->done_cb(j->arg, j->rc, j->gone, j->us, j->err);
    free(j);
}

static struct job *job_new(struct network *n, enum job_kind kind, const char *netns, void *arg)
{
    if (!netns || strlen(netns) >= sizeof(((struct job *)0)->netns))
        return NULL;
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->req.data = j;
    j->n = n;
    j->kind = kind;
    j->arg = arg;
    memcpy(j->netns, netns, strlen(netns) + 1);
    return j;
}

static int job_queue(struct job *j)
{
    if (uv_queue_work(j->n->loop, &j->req, job_work, job_after)) {
        free(j);
        return -1;
    }
    return 0;
}

int network_inspect(struct network *n, const char *netns_path, network_inspect_cb cb, void *arg)
{
    struct job *j = job_new(n, JOB_INSPECT, netns_path, arg);
    if (!j)
        return -1;
    j->inspect_cb = cb;
    return job_queue(j);
}

static struct job *tunnel_job(struct network *n, enum job_kind kind, const struct network_tunnel *t,
                              network_done_cb cb, void *arg)
{
    if (!t->pod_ifname || strlen(t->pod_ifname) >= IF_NAMESIZE)
        return NULL;
    struct job *j = job_new(n, kind, t->netns_path, arg);
    if (!j)
        return NULL;
    j->done_cb = cb;
    memcpy(j->ifname, t->pod_ifname, strlen(t->pod_ifname) + 1);
    j->vni = t->vni;
    return j;
}

int network_setup(struct network *n, const struct network_tunnel *t, network_done_cb cb, void *arg, char *err,
                  size_t errlen)
{
    struct in_addr a;
    if (!t->remote || inet_pton(AF_INET, t->remote, &a) != 1) {
        snprintf(err, errlen, "the pod VM's address '%s' is not an IPv4 address; the VXLAN tunnel needs one",
                 t->remote ? t->remote : "");
        return -1;
    }
    struct job *j = tunnel_job(n, JOB_SETUP, t, cb, arg);
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    j->remote = a.s_addr;
    if (job_queue(j)) {
        snprintf(err, errlen, "cannot queue the tunnel setup");
        return -1;
    }
    return 0;
}

int network_teardown(struct network *n, const struct network_tunnel *t, network_done_cb cb, void *arg)
{
    struct job *j = tunnel_job(n, JOB_TEARDOWN, t, cb, arg);
    return j ? job_queue(j) : -1;
}
