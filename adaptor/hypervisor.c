#include "hypervisor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "../providers/instance.h"
#include "csivol.h"
#include "dvdir.h"
#include "hypervisor.pb-c.h"
#include "log.h"
#include "podvminfo.pb-c.h"
#include "proxy.h"
#include "network.h"
#include "kube.h"
#include "vmdoc.h"

#define DELETE_RETRY_MIN_MS 1000
#define DELETE_RETRY_MAX_MS 60000

enum op_kind { OP_CREATE, OP_START, OP_STOP, OP_ROLLBACK };

struct sandbox_op {
    enum op_kind kind;
    struct daemon *d;
    struct sandbox *sb;
    struct ttrpc_call *call; /* NULL for background work */
    struct provider_op *pop; /* in-flight provider create */
    int cancel_code;         /* set when the caller's context ended or StopVM took over */
    bool vm_ready, agent_ready; /* StartVM answers when both are true */
    bool vm_created;            /* the provider's create completed */
    bool net_started, net_busy, net_ready; /* pod tunnel setup (sandboxes with a VNI) */
    bool rollback_wanted;       /* asked for while a tunnel job ran */
    struct provider_error perr;
    bool failed;
    uint64_t t0;
    uint64_t provider_t0; /* when the provider's create or delete began, for the metrics */
    bool queued;          /* on sb->ops */
    TAILQ_ENTRY(sandbox_op) link;
};

struct getinfo_wait {
    struct ttrpc_call *call;
    struct daemon *d;
    char *name, *ns;
    LIST_ENTRY(getinfo_wait) link; /* on d->waiters */
};

static void op_run(struct sandbox_op *op);
static void proxy_drop(struct sandbox *sb);
static void op_done(struct sandbox_op *op);
static void create_saved(void *arg, int ioerr);
static void waiters_wake(struct daemon *d);

/* ---- helpers -------------------------------------------------------------------------- */

#define POD_FIELD_MAX 256

/* The pod= log field: <namespace>/<name>. */
static const char *pod_field(const struct sandbox *sb, char *buf, size_t cap)
{
    char raw[2 * POD_FIELD_MAX];
    snprintf(raw, sizeof(raw), "%.250s/%.250s", sb->pod.pod_namespace, sb->pod.pod_name);
    return log_value(buf, cap, raw);
}

/* The Go daemon's PeerPod for peerpod-ctrl (kube.h), made once the VM exists and released
 * once it is deleted; nothing happens outside Kubernetes (d->kube NULL). */
static bool peerpod_named(const struct sandbox *sb)
{
    return sb->pod.pod_name && *sb->pod.pod_name && sb->pod.pod_namespace && *sb->pod.pod_namespace;
}

static void peerpod_own(struct daemon *d, const struct sandbox *sb)
{
    if (peerpod_named(sb))
        kube_peerpod_own(d->kube, sb->pod.pod_namespace, sb->pod.pod_name, sb->pod_uid, sb->id, d->pops->name,
                         sb->inst.id[0] ? sb->inst.id : sb->inst.name);
}

static void peerpod_release(struct daemon *d, const struct sandbox *sb)
{
    if (sb->inst.name[0] && peerpod_named(sb))
        kube_peerpod_release(d->kube, sb->pod.pod_namespace, sb->pod.pod_name, sb->id);
}

static void op_reply_ok(struct sandbox_op *op)
{
    if (op->call) {
        ttrpc_call_reply(op->call, NULL, 0);
        op->call = NULL;
    }
}

static void op_fail(struct sandbox_op *op, int code, const char *fmt, const char *detail)
{
    if (op->call) {
        ttrpc_call_fail(op->call, code, fmt, detail);
        op->call = NULL;
    }
}

static size_t live_count(const struct daemon *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->store.nbuckets; i++)
        for (const struct sandbox *sb = d->store.buckets[i]; sb; sb = sb->hnext)
            n += sb->phase != SANDBOX_STOPPING;
    return n;
}

static struct sandbox_op *op_new(struct daemon *d, struct sandbox *sb, enum op_kind kind, struct ttrpc_call *call)
{
    struct sandbox_op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->kind = kind;
    op->d = d;
    op->sb = sb;
    op->call = call;
    op->t0 = uv_now(d->loop);
    return op;
}

static void op_queue_unlink(struct sandbox *sb, struct sandbox_op *op)
{
    if (op->queued)
        TAILQ_REMOVE(&sb->ops, op, link);
    op->queued = false;
}

/* The next operation waiting on sb, taken off the queue; NULL if none. */
static struct sandbox_op *op_queue_take(struct sandbox *sb)
{
    struct sandbox_op *op = TAILQ_FIRST(&sb->ops);
    if (op)
        op_queue_unlink(sb, op);
    return op;
}

static void op_cancel_hook(struct ttrpc_call *call, int code, void *arg)
{
    struct sandbox_op *op = arg;
    (void)call;
    if (op->d->shutting_down)
        return;
    if (op->sb->op != op) {
        /* Still queued behind another operation: answer now. A StopVM stays queued without
         * its caller (DECISIONS 2: the deletion it asked for is owed even if nobody waits). */
        if (op->kind == OP_STOP) {
            op_fail(op, code, "%s", code == TTRPC_DEADLINE_EXCEEDED ? "context deadline exceeded" : "context canceled");
            return;
        }
        op_queue_unlink(op->sb, op);
        op_fail(op, code, "%s", code == TTRPC_DEADLINE_EXCEEDED ? "context deadline exceeded" : "context canceled");
        free(op);
        return;
    }
    if (op->kind == OP_STOP)
        return; /* a deletion, once begun, is finished or durably queued regardless */
    if (!op->cancel_code)
        op->cancel_code = code;
    if (op->pop)
        op->d->pops->cancel(op->pop);
    else if (op->kind == OP_START && op->sb->proxy && op->vm_ready)
        proxy_cancel_ready(op->sb->proxy, "StartVM canceled");
}

/* Queues op behind the sandbox's current operation, or runs it. StopVM pre-empts StartVM. */
static void op_submit(struct sandbox_op *op)
{
    struct sandbox *sb = op->sb;
    if (op->call)
        ttrpc_call_on_cancel(op->call, op_cancel_hook, op);
    if (!sb->op) {
        sb->op = op;
        op_run(op);
        return;
    }
    if (op->kind == OP_STOP) {
        struct sandbox_op *cur = sb->op;
        if (cur->kind == OP_START && !cur->cancel_code) {
            cur->cancel_code = TTRPC_CANCELED;
            if (cur->pop)
                op->d->pops->cancel(cur->pop);
            else if (sb->proxy && cur->vm_ready)
                proxy_cancel_ready(sb->proxy, "StopVM arrived");
        }
        TAILQ_INSERT_HEAD(&sb->ops, op, link); /* the stop runs right after the cancelled start */
    } else {
        TAILQ_INSERT_TAIL(&sb->ops, op, link);
    }
    op->queued = true;
}

static void sandbox_release(struct daemon *d, struct sandbox *sb)
{
    /* The record is erased: answer whoever still waits for this sandbox. */
    struct sandbox_op *q;
    while ((q = op_queue_take(sb))) {
        if (q->kind == OP_STOP)
            op_reply_ok(q);
        else
            op_fail(q, TTRPC_NOT_FOUND, "getting sandbox: sandbox %s does not exist", sb->id);
        free(q);
    }
    sandbox_store_remove(&d->store, sb);
    network_vni_release(d->net, sb->vni);
    proxy_drop(sb);
    if (sb->retry) {
        uv_close((uv_handle_t *)sb->retry, (uv_close_cb)free);
        sb->retry = NULL;
    }
    sandbox_free(sb);
}

static void op_done(struct sandbox_op *op)
{
    struct sandbox *sb = op->sb;
    struct daemon *d = op->d;
    sb->op = NULL;
    bool gone = sb->phase == SANDBOX_GONE;
    free(op);
    if (d->shutting_down)
        return;
    if (gone) {
        sandbox_release(d, sb);
        return;
    }
    struct sandbox_op *next = op_queue_take(sb);
    if (next) {
        sb->op = next;
        op_run(next);
    }
}

static void set_phase(struct sandbox *sb, enum sandbox_phase to)
{
    if (!sandbox_phase_allowed(sb->phase, to))
        log_warn("adaptor", "sandbox %s: unexpected phase change %s -> %s", sb->id, sandbox_phase_name(sb->phase),
                 sandbox_phase_name(to));
    sb->phase = to;
}

static int save(struct sandbox_op *op, sandbox_io_cb cb)
{
    if (sandbox_store_save(&op->d->store, op->sb, cb, op)) {
        cb(op, ENOMEM);
        return -1;
    }
    return 0;
}

/* ---- agent relay ---------------------------------------------------------------------- */

static void proxy_drop(struct sandbox *sb)
{
    if (sb->proxy) {
        proxy_close(sb->proxy);
        sb->proxy = NULL;
    }
}

/* The sandbox's agent socket and the dial to its VM, as soon as the VM has an address. */
static int proxy_open(struct daemon *d, struct sandbox *sb, uint64_t deadline, proxy_ready_cb cb, void *arg)
{
    if (sb->proxy || !sb->inst.n_ips)
        return 0;
    char sock[256], err[320];
    sandbox_path(sock, sizeof(sock), d->cfg.pods_dir, sb->id, SANDBOX_AGENT_SOCKET);
    struct proxy_params pp = {
        .loop = d->loop,
        .socket_path = sock,
        .sandbox_id = sb->id,
        .vm_name = sb->inst.name,
        .ctx = d->client_ctx,
        .tls = d->tls,
        .port = (uint16_t)strtoul(d->cfg.forwarder_port, NULL, 10),
        .proxy_timeout_ns = d->cfg.proxy_timeout_ns,
        .gpus_annotated = sb->pod.gpus_annotated,
        .direct_volumes_dir = d->cfg.direct_volumes_dir,
        .counts = &d->metrics.relay,
    };
    if (!(sb->proxy = proxy_new(&pp, err, sizeof(err)))) {
        log_error("adaptor", "sandbox %s: agent socket: %s", sb->id, err);
        return -1;
    }
    if (proxy_connect(sb->proxy, sb->inst.ips[0], deadline, cb, arg)) {
        log_error("adaptor", "sandbox %s: instance address %s is not an IP address", sb->id, sb->inst.ips[0]);
        proxy_drop(sb);
        return -1;
    }
    return 0;
}

/* ---- StartVM -------------------------------------------------------------------------- */

static void start_rollback(struct sandbox_op *op);

static void start_answer(struct sandbox_op *op)
{
    char pod[2 * POD_FIELD_MAX], inst[320];
    log_info("adaptor", "StartVM: the pod VM runs and its agent answers sandbox=%s pod=%s vm=%s instance=%s "
             "duration_ms=%llu", op->sb->id, pod_field(op->sb, pod, sizeof(pod)), op->sb->inst.name,
             log_value(inst, sizeof(inst), op->sb->inst.id), (unsigned long long)(uv_now(op->d->loop) - op->t0));
    op_reply_ok(op);
    op_done(op);
}

static void start_agent_ready(void *arg, int code, const char *msg)
{
    struct sandbox_op *op = arg;
    if (op->d->shutting_down)
        return;
    if (code) {
        if (!op->cancel_code && !op->failed) {
            uint64_t dl = op->call ? ttrpc_call_deadline(op->call) : 0;
            op->failed = true;
            op->perr.code = dl && uv_now(op->d->loop) >= dl ? TTRPC_DEADLINE_EXCEEDED : TTRPC_UNKNOWN;
            snprintf(op->perr.msg, sizeof(op->perr.msg), "%s", msg);
        }
        if (op->vm_ready)
            start_rollback(op);
        else if (op->pop) /* the create's completion then rolls back */
            op->d->pops->cancel(op->pop);
        return;
    }
    op->agent_ready = true;
    if (op->vm_ready)
        start_answer(op);
}

static void start_saved_running(void *arg, int err)
{
    struct sandbox_op *op = arg;
    if (op->d->shutting_down)
        return;
    if (err && !op->cancel_code) {
        op->failed = true;
        op->perr.code = TTRPC_INTERNAL;
        snprintf(op->perr.msg, sizeof(op->perr.msg), "persisting sandbox state under %s: %s", op->d->store.dir,
                 strerror(err));
    }
    if (err || op->cancel_code || op->failed) {
        start_rollback(op);
        return;
    }
    op->vm_ready = true;
    peerpod_own(op->d, op->sb);
    if (op->agent_ready) {
        start_answer(op);
        return;
    }
    /* The VM runs; StartVM answers once its forwarder accepts the agent link. */
    if (!op->sb->proxy && proxy_open(op->d, op->sb, op->call ? ttrpc_call_deadline(op->call) : 0, start_agent_ready,
                                     op)) {
        op->failed = true;
        op->perr.code = TTRPC_INTERNAL;
        snprintf(op->perr.msg, sizeof(op->perr.msg), "cannot open the agent socket under %s", op->d->cfg.pods_dir);
        start_rollback(op);
    }
}

static void start_try_running(struct sandbox_op *op);

/* Records the first failure of a StartVM and unwinds: through the provider's completion
 * while its create runs, directly otherwise. */
static void start_fail(struct sandbox_op *op, int code, const char *msg)
{
    if (!op->cancel_code && !op->failed) {
        op->failed = true;
        op->perr.code = code;
        snprintf(op->perr.msg, sizeof(op->perr.msg), "%s", msg);
    }
    if (op->pop)
        op->d->pops->cancel(op->pop);
    else if (op->vm_created)
        start_rollback(op);
}

static struct network_tunnel tunnel_of(const struct sandbox *sb)
{
    unsigned i = sb->net_dedicated ? 1 : 0;
    return (struct network_tunnel){
        .netns_path = sb->netns_path,
        .pod_ifname = sb->pod_if,
        .vni = sb->vni,
        .remote = sb->inst.n_ips > i ? sb->inst.ips[i] : NULL,
    };
}

/* Queues the removal of sb's tunnel, if it has one; false when there is nothing to wait
 * for (no tunnel, or the job could not be queued: then the next step runs at once). */
static bool teardown_start(struct sandbox_op *op, network_done_cb cb)
{
    struct sandbox *sb = op->sb;
    if (!sb->vni || !sb->netns_path[0])
        return false;
    struct network_tunnel t = tunnel_of(sb);
    if (network_teardown(op->d->net, &t, cb, op) == 0)
        return true;
    log_warn("adaptor", "sandbox %s: cannot queue the tunnel teardown (out of memory)", sb->id);
    return false;
}

static void start_net_done(void *arg, int rc, bool gone, uint64_t us, const char *err)
{
    struct sandbox_op *op = arg;
    struct sandbox *sb = op->sb;
    (void)gone;
    op->net_busy = false;
    if (op->d->shutting_down)
        return;
    if (op->rollback_wanted) {
        start_rollback(op);
        return;
    }
    if (rc) {
        char msg[sizeof(op->perr.msg)];
        snprintf(msg, sizeof(msg), "setting up the pod network tunnel: %s", err);
        char e[600];
        log_error("adaptor", "StartVM failed sandbox=%s error=%s", sb->id, log_value(e, sizeof(e), msg));
        start_fail(op, TTRPC_UNKNOWN, msg);
        return;
    }
    char ns[300];
    log_info("adaptor", "vxlan tunnel up sandbox=%s vni=%u remote=%s:%u netns=%s iface=%s duration_us=%llu", sb->id,
             sb->vni, tunnel_of(sb).remote, network_port(op->d->net), log_value(ns, sizeof(ns), sb->netns_path),
             sb->pod_if, (unsigned long long)us);
    op->net_ready = true;
    start_try_running(op);
}

/* The worker half of the tunnel, as soon as the VM's (tunnel) address is known. */
static void start_net(struct sandbox_op *op)
{
    struct sandbox *sb = op->sb;
    struct network_tunnel t = tunnel_of(sb);
    if (!sb->vni || op->net_started || !t.remote || op->cancel_code || op->failed)
        return;
    op->net_started = true;
    char err[256];
    if (network_setup(op->d->net, &t, start_net_done, op, err, sizeof(err))) {
        char msg[320];
        snprintf(msg, sizeof(msg), "setting up the pod network tunnel: %s", err);
        start_fail(op, TTRPC_UNKNOWN, msg);
        return;
    }
    op->net_busy = true;
}

static void start_on_address(void *arg, const struct provider_instance *inst)
{
    struct sandbox_op *op = arg;
    struct sandbox *sb = op->sb;
    sb->inst.n_ips = 0;
    for (unsigned i = 0; i < inst->n_ips && i < PROVIDER_IPS_MAX; i++)
        memcpy(sb->inst.ips[sb->inst.n_ips++], inst->ips[i], sizeof(sb->inst.ips[0]));
    log_debug("adaptor", "sandbox %s: instance %s has address %s", sb->id, sb->inst.name,
              sb->inst.n_ips ? sb->inst.ips[0] : "");
    /* Dial at once: the cloud may still be finishing its create (spec 3.2, issue: early dial). */
    if (!op->cancel_code)
        proxy_open(op->d, sb, op->call ? ttrpc_call_deadline(op->call) : 0, start_agent_ready, op);
    start_net(op);
}

/* How long the provider's create or delete of this operation took. */
static double provider_seconds(const struct sandbox_op *op)
{
    return (double)(uv_now(op->d->loop) - op->provider_t0) / 1000.0;
}

static void start_created(void *arg, const struct provider_error *err, const struct provider_instance *inst)
{
    struct sandbox_op *op = arg;
    struct sandbox *sb = op->sb;
    op->pop = NULL;
    if (inst) {
        if (inst->id[0])
            memcpy(sb->inst.id, inst->id, sizeof(sb->inst.id));
        if (inst->n_ips)
            start_on_address(op, inst);
    }
    if (err && !op->cancel_code && !op->failed) { /* after a cancel (or our own), the provider's error is an echo */
        op->failed = true;
        op->perr = *err;
    }
    /* failed: also the tunnel, refused at once by start_on_address just above. */
    if (err || op->cancel_code || op->failed) {
        op->d->metrics.vm_creates[METRICS_FAILED]++;
        start_rollback(op);
        return;
    }
    op->d->metrics.vm_creates[METRICS_OK]++;
    metrics_observe(&op->d->metrics.vm_create_seconds, provider_seconds(op));
    op->vm_created = true;
    if (!sb->inst.n_ips) {
        start_fail(op, TTRPC_UNKNOWN, "instance IP is not available");
        return;
    }
    if (sb->vni && sb->net_dedicated && sb->inst.n_ips < 2) {
        start_fail(op, TTRPC_FAILED_PRECONDITION,
                   "the pod VM has one address, but -host-interface names a dedicated tunnel interface, which "
                   "needs the VM's second address; drop -host-interface or give the VM a second network interface");
        return;
    }
    start_try_running(op);
}

/* RUNNING is recorded once the VM exists and its tunnel is up, so a record that says so
 * after a crash is a pod that works. */
static void start_try_running(struct sandbox_op *op)
{
    struct sandbox *sb = op->sb;
    if (!op->vm_created || (sb->vni && !op->net_ready))
        return;
    if (op->failed || op->cancel_code) {
        start_rollback(op);
        return;
    }
    set_phase(sb, SANDBOX_RUNNING);
    sandbox_userdata_drop(sb); /* the VM has it; the 0600 copy on disk goes with the sandbox */
    waiters_wake(op->d);
    save(op, start_saved_running);
}

static void start_create(struct sandbox_op *op, const char *const *disks, size_t n_disks)
{
    struct daemon *d = op->d;
    struct sandbox *sb = op->sb;
    static const char no_userdata[] = "#cloud-config\n";
    struct provider_create_req req = {
        .sandbox_id = sb->id,
        .instance_name = sb->inst.name,
        .pod = &sb->pod,
        .userdata = sb->userdata ? sb->userdata : (const uint8_t *)no_userdata,
        .userdata_len = sb->userdata ? sb->userdata_len : sizeof(no_userdata) - 1,
        .deadline = op->call ? ttrpc_call_deadline(op->call) : 0,
        .data_disks = disks,
        .n_data_disks = n_disks,
    };
    static const struct provider_create_cbs cbs = {start_on_address, start_created};
    op->provider_t0 = uv_now(d->loop);
    op->pop = d->pops->create(d->prov, &req, &cbs, op);
    if (!op->pop) {
        /* The provider could not even start: nothing of this VM exists. */
        struct provider_error e = {.code = TTRPC_RESOURCE_EXHAUSTED};
        snprintf(e.msg, sizeof(e.msg), "%s provider: cannot start creating the instance (out of resources)",
                 d->pops->name);
        start_created(op, &e, NULL);
    }
}

/* The pod's CSI cloud volumes (spec protocols.md 2.4 step 5), read from kata's direct-volumes
 * directory in the thread pool just before the create, for providers that attach them. Only
 * this pod's volumes when the daemon knows its uid (from the pod read of CreateVM). */
struct vol_job {
    uv_work_t w;
    struct sandbox_op *op;
    const char *dir; /* the daemon's configuration: outlives the pool's jobs */
    char uid[sizeof(((struct sandbox *)0)->pod_uid)];
    char **disks;
    size_t n;
    bool oom;
    struct turn_task task;
};

static void vol_job_run(uv_work_t *w)
{
    struct vol_job *j = (struct vol_job *)w;
    struct csivol_volume *v;
    size_t nv;
    dvdir_read(j->dir, &v, &nv);
    j->oom = csivol_disks(v, nv, j->uid, &j->disks, &j->n) != 0;
    dvdir_free(v, nv);
}

static void vol_job_free(struct vol_job *j)
{
    csivol_disks_free(j->disks, j->n);
    free(j);
}

/* The create itself (the VM body is a few hundred microseconds of base64 and JSON) waits for
 * the loop's budget: a burst of StartVMs finishes its scans together, in one pool completion. */
static void vol_job_create(struct turn_task *t)
{
    struct vol_job *j = (struct vol_job *)((char *)t - offsetof(struct vol_job, task));
    struct sandbox_op *op = j->op;
    if (op->d->shutting_down) {
        vol_job_free(j);
        return;
    }
    if (op->failed || op->cancel_code) {
        vol_job_free(j);
        start_rollback(op);
        return;
    }
    if (j->n) {
        char pod[2 * POD_FIELD_MAX];
        log_info("adaptor", "StartVM: attaching the pod's CSI volumes as data disks sandbox=%s pod=%s count=%zu",
                 op->sb->id, pod_field(op->sb, pod, sizeof(pod)), j->n);
    }
    start_create(op, (const char *const *)j->disks, j->n);
    vol_job_free(j);
}

static void vol_job_done(uv_work_t *w, int status)
{
    struct vol_job *j = (struct vol_job *)w;
    struct sandbox_op *op = j->op;
    if (op->d->shutting_down) {
        vol_job_free(j);
        return;
    }
    if (status || j->oom) {
        vol_job_free(j);
        struct provider_error e = {.code = TTRPC_RESOURCE_EXHAUSTED};
        snprintf(e.msg, sizeof(e.msg), "reading the pod's CSI volumes: out of memory");
        start_created(op, &e, NULL);
        return;
    }
    j->task.fn = vol_job_create;
    turn_run_or_defer(&op->d->turn, &j->task);
}

static void volumes_scan_start(struct sandbox_op *op)
{
    struct vol_job *j = calloc(1, sizeof(*j));
    if (j) {
        j->op = op;
        j->dir = op->d->cfg.direct_volumes_dir ? op->d->cfg.direct_volumes_dir : CSIVOL_DIRECT_VOLUMES_DIR;
        snprintf(j->uid, sizeof(j->uid), "%s", op->sb->pod_uid);
        if (uv_queue_work(op->d->loop, &j->w, vol_job_run, vol_job_done) == 0)
            return;
        vol_job_free(j);
    }
    struct provider_error e = {.code = TTRPC_RESOURCE_EXHAUSTED, .msg = "cannot queue the scan of the pod's CSI volumes"};
    start_created(op, &e, NULL);
}

static void start_saved_starting(void *arg, int err)
{
    struct sandbox_op *op = arg;
    struct daemon *d = op->d;
    struct sandbox *sb = op->sb;
    if (d->shutting_down)
        return;
    if (err) {
        /* Nothing exists in the cloud yet; the old record on disk is still valid. */
        set_phase(sb, SANDBOX_FAILED);
        memset(&sb->inst, 0, sizeof(sb->inst));
        op_fail(op, TTRPC_INTERNAL, "persisting sandbox state: %s (check PODS_DIR)", strerror(err));
        op_done(op);
        return;
    }
    if (op->cancel_code) {
        start_rollback(op);
        return;
    }
    if (d->pops->attaches_volumes)
        volumes_scan_start(op);
    else
        start_create(op, NULL, 0);
}

static void start_run(struct sandbox_op *op)
{
    struct sandbox *sb = op->sb;
    if (sb->phase == SANDBOX_RUNNING) {
        op_reply_ok(op);
        op_done(op);
        return;
    }
    if (sb->phase == SANDBOX_STOPPING || sb->phase == SANDBOX_GONE) {
        op_fail(op, TTRPC_FAILED_PRECONDITION, "sandbox %s is being stopped; it cannot be started again", sb->id);
        op_done(op);
        return;
    }
    if (op->cancel_code) {
        op_fail(op, op->cancel_code, "%s", "StartVM canceled before it began");
        op_done(op);
        return;
    }
    if (instance_name_generate(sb->inst.name, sizeof(sb->inst.name), sb->pod.pod_name, sb->id, INSTANCE_NAME_MAX)) {
        op_fail(op, TTRPC_INTERNAL, "%s", "cannot derive the VM name");
        op_done(op);
        return;
    }
    snprintf(sb->inst.sandbox_id, sizeof(sb->inst.sandbox_id), "%s", sb->id);
    sb->inst.id[0] = '\0';
    sb->inst.n_ips = 0;
    set_phase(sb, SANDBOX_STARTING);
    /* The VM's name is durable before the cloud hears of it, so a crash cannot leak it. */
    save(op, start_saved_starting);
}

static void start_rollback_saved(void *arg, int err)
{
    struct sandbox_op *op = arg;
    struct sandbox *sb = op->sb;
    if (op->d->shutting_down)
        return;
    if (err)
        log_error("adaptor", "sandbox %s: persisting the failed state: %s", sb->id, strerror(err));
    if (op->failed) {
        /* The Go daemon's wording: provider errors are prefixed, agent-link errors are not. */
        bool agent = strncmp(op->perr.msg, "error connecting to agent", 25) == 0;
        op_fail(op, op->perr.code ? op->perr.code : TTRPC_UNKNOWN, agent ? "%s" : "creating an instance : %s",
                op->perr.msg);
    } else {
        /* The rollback's delete may have failed: then the record still names the VM. */
        const char *fate = sb->inst.name[0] ? "deleting the VM failed (see the daemon's log); StopVM deletes it"
                                            : "the VM was deleted";
        if (op->cancel_code == TTRPC_DEADLINE_EXCEEDED)
            op_fail(op, TTRPC_DEADLINE_EXCEEDED,
                    "context deadline exceeded: the VM was not ready before StartVM's deadline and %s", fate);
        else
            op_fail(op, TTRPC_CANCELED, "context canceled: StartVM was canceled (by StopVM or the caller) and %s",
                    fate);
    }
    op_done(op);
}

static void start_rollback_deleted(void *arg, const struct provider_error *err)
{
    struct sandbox_op *op = arg;
    struct sandbox *sb = op->sb;
    if (op->d->shutting_down)
        return;
    if (err) {
        /* The record keeps the instance: StopVM or the next start-up deletes it. */
        char e[600];
        log_error("adaptor", "deleting the pod VM after a failed start failed sandbox=%s vm=%s error=%s", sb->id,
                  sb->inst.name, log_value(e, sizeof(e), err->msg));
    } else {
        peerpod_release(op->d, sb);
        memset(&sb->inst, 0, sizeof(sb->inst));
    }
    set_phase(sb, SANDBOX_FAILED);
    save(op, start_rollback_saved);
}

static void start_rollback_destroy(struct sandbox_op *op)
{
    struct sandbox *sb = op->sb;
    op->d->pops->destroy(op->d->prov, sb->inst.name, sb->inst.id, start_rollback_deleted, op);
}

static void start_rollback_net_done(void *arg, int rc, bool gone, uint64_t us, const char *err)
{
    struct sandbox_op *op = arg;
    (void)gone;
    (void)us;
    if (op->d->shutting_down)
        return;
    if (rc)
        log_warn("adaptor", "sandbox %s: removing the pod network tunnel after a failed start: %s", op->sb->id, err);
    start_rollback_destroy(op);
}

static void start_rollback(struct sandbox_op *op)
{
    struct sandbox *sb = op->sb;
    if (op->net_busy) { /* the tunnel job finishes first, then undoes itself here */
        op->rollback_wanted = true;
        return;
    }
    op->rollback_wanted = false;
    op->vm_created = false; /* no second rollback from a late completion */
    proxy_drop(sb);
    char e[600];
    if (op->failed)
        log_error("adaptor", "StartVM: creating the pod VM failed sandbox=%s vm=%s duration_ms=%llu error=%s", sb->id,
                  sb->inst.name, (unsigned long long)(uv_now(op->d->loop) - op->t0),
                  log_value(e, sizeof(e), op->perr.msg));
    else
        log_warn("adaptor", "StartVM %s: deleting the pod VM sandbox=%s vm=%s",
                 op->cancel_code == TTRPC_DEADLINE_EXCEEDED ? "deadline exceeded" : "canceled", sb->id, sb->inst.name);
    if (!teardown_start(op, start_rollback_net_done))
        start_rollback_destroy(op);
}

/* ---- StopVM and the durable delete queue ---------------------------------------------- */

static void stop_run(struct sandbox_op *op);

static void retry_fire(uv_timer_t *t)
{
    struct sandbox *sb = t->data;
    struct daemon *d = t->loop->data;
    if (d->shutting_down || sb->op)
        return;
    struct sandbox_op *op = op_new(d, sb, OP_STOP, NULL);
    if (!op) {
        uv_timer_start(t, retry_fire, DELETE_RETRY_MAX_MS, 0);
        return;
    }
    sb->op = op;
    op_run(op);
}

static void retry_schedule(struct daemon *d, struct sandbox *sb)
{
    if (!sb->retry) {
        sb->retry = malloc(sizeof(*sb->retry));
        if (!sb->retry || uv_timer_init(d->loop, sb->retry)) {
            free(sb->retry);
            sb->retry = NULL;
            log_error("adaptor", "sandbox %s: cannot schedule a delete retry; it runs at next start-up", sb->id);
            return;
        }
        sb->retry->data = sb;
    }
    uint64_t ms = DELETE_RETRY_MIN_MS;
    for (unsigned i = 1; i < sb->delete_attempts && ms < DELETE_RETRY_MAX_MS; i++)
        ms *= 2;
    if (ms > DELETE_RETRY_MAX_MS)
        ms = DELETE_RETRY_MAX_MS;
    uv_timer_start(sb->retry, retry_fire, ms, 0);
}

static void stop_erased(void *arg, int err)
{
    struct sandbox_op *op = arg;
    struct sandbox *sb = op->sb;
    if (op->d->shutting_down)
        return;
    if (err)
        log_warn("adaptor", "sandbox %s: removing its directory: %s", sb->id, strerror(err));
    char pod[2 * POD_FIELD_MAX];
    log_info("adaptor", "StopVM: sandbox deleted sandbox=%s pod=%s duration_ms=%llu", sb->id,
             pod_field(sb, pod, sizeof(pod)), (unsigned long long)(uv_now(op->d->loop) - op->t0));
    set_phase(sb, SANDBOX_GONE);
    op_reply_ok(op);
    op_done(op);
}

static void stop_queued_saved(void *arg, int err)
{
    struct sandbox_op *op = arg;
    struct sandbox *sb = op->sb;
    if (op->d->shutting_down)
        return;
    if (err)
        log_error("adaptor", "sandbox %s: persisting the delete queue entry: %s", sb->id, strerror(err));
    retry_schedule(op->d, sb);
    op_reply_ok(op); /* deletion is durably queued */
    op_done(op);
}

static void stop_deleted(void *arg, const struct provider_error *err)
{
    struct sandbox_op *op = arg;
    struct sandbox *sb = op->sb;
    if (op->d->shutting_down)
        return;
    if (op->provider_t0) { /* a provider delete ran (not a sandbox that never had an instance) */
        op->d->metrics.vm_deletes[err ? METRICS_FAILED : METRICS_OK]++;
        if (!err)
            metrics_observe(&op->d->metrics.vm_delete_seconds, provider_seconds(op));
    }
    if (err) {
        sb->delete_attempts++;
        char e[600];
        log_warn("adaptor", "deleting the pod VM failed; retrying in the background sandbox=%s vm=%s attempt=%u "
                 "error=%s", sb->id, sb->inst.name, sb->delete_attempts, log_value(e, sizeof(e), err->msg));
        save(op, stop_queued_saved);
        return;
    }
    peerpod_release(op->d, sb);
    if (sandbox_store_erase(&op->d->store, sb->id, stop_erased, op))
        stop_erased(op, ENOMEM);
}

static void stop_destroy(struct sandbox_op *op)
{
    struct sandbox *sb = op->sb;
    if (!sb->inst.name[0]) {
        stop_deleted(op, NULL);
        return;
    }
    op->provider_t0 = uv_now(op->d->loop);
    op->d->pops->destroy(op->d->prov, sb->inst.name, sb->inst.id, stop_deleted, op);
}

/* Teardown failures are logged, not retried: the pod's namespace, and the device in it, go
 * when kata removes the pod; the VNI stays reserved until the record is gone. */
static void stop_net_done(void *arg, int rc, bool gone, uint64_t us, const char *err)
{
    struct sandbox_op *op = arg;
    struct sandbox *sb = op->sb;
    char e[600];
    if (op->d->shutting_down)
        return;
    if (rc)
        log_warn("adaptor", "StopVM: removing the pod network tunnel failed sandbox=%s error=%s", sb->id,
                 log_value(e, sizeof(e), err));
    else
        log_info("adaptor", "vxlan tunnel removed sandbox=%s vni=%u netns_gone=%s duration_us=%llu", sb->id, sb->vni,
                 gone ? "true" : "false", (unsigned long long)us);
    stop_destroy(op);
}

static void stop_saved(void *arg, int err)
{
    struct sandbox_op *op = arg;
    struct sandbox *sb = op->sb;
    if (op->d->shutting_down)
        return;
    if (err)
        log_error("adaptor", "sandbox %s: persisting the stopping state: %s; deleting anyway", sb->id,
                  strerror(err));
    if (!teardown_start(op, stop_net_done))
        stop_destroy(op);
}

static void stop_run(struct sandbox_op *op)
{
    struct sandbox *sb = op->sb;
    proxy_drop(sb); /* socket file removed, calls in flight fail with code 14 */
    if (sb->phase == SANDBOX_STOPPING && op->call && sb->retry && uv_is_active((uv_handle_t *)sb->retry)) {
        op_reply_ok(op); /* already durably queued and being retried */
        op_done(op);
        return;
    }
    if (sb->retry)
        uv_timer_stop(sb->retry);
    char pod[2 * POD_FIELD_MAX];
    log_info("adaptor", "StopVM: deleting sandbox=%s pod=%s vm=%s", sb->id, pod_field(sb, pod, sizeof(pod)),
             sb->inst.name[0] ? sb->inst.name : "-");
    set_phase(sb, SANDBOX_STOPPING);
    save(op, stop_saved);
}

/* ---- recovery rollback ---------------------------------------------------------------- */

static void rollback_saved(void *arg, int err)
{
    struct sandbox_op *op = arg;
    if (op->d->shutting_down)
        return;
    if (err)
        log_error("adaptor", "sandbox %s: persisting after rollback: %s", op->sb->id, strerror(err));
    op_done(op);
}

static void rollback_deleted(void *arg, const struct provider_error *err)
{
    struct sandbox_op *op = arg;
    struct sandbox *sb = op->sb;
    if (op->d->shutting_down)
        return;
    if (err) {
        char e[600];
        log_error("adaptor", "rolling back the pod VM failed; StopVM will retry sandbox=%s vm=%s error=%s", sb->id,
                  sb->inst.name, log_value(e, sizeof(e), err->msg));
        op_done(op);
        return;
    }
    log_info("adaptor", "rolled back the pod VM of an interrupted StartVM sandbox=%s vm=%s", sb->id, sb->inst.name);
    peerpod_release(op->d, sb);
    memset(&sb->inst, 0, sizeof(sb->inst));
    save(op, rollback_saved);
}

static void rollback_destroy(struct sandbox_op *op)
{
    if (!op->sb->inst.name[0]) {
        op_done(op);
        return;
    }
    op->d->pops->destroy(op->d->prov, op->sb->inst.name, op->sb->inst.id, rollback_deleted, op);
}

static void rollback_net_done(void *arg, int rc, bool gone, uint64_t us, const char *err)
{
    struct sandbox_op *op = arg;
    (void)gone;
    (void)us;
    if (op->d->shutting_down)
        return;
    if (rc)
        log_warn("adaptor", "sandbox %s: removing the tunnel of an interrupted StartVM: %s", op->sb->id, err);
    rollback_destroy(op);
}

static void op_run(struct sandbox_op *op)
{
    switch (op->kind) {
    case OP_START:
        start_run(op);
        break;
    case OP_STOP:
        stop_run(op);
        break;
    case OP_CREATE: /* runs from its handler, never from the queue */
        break;
    case OP_ROLLBACK:
        if (op->sb->phase != SANDBOX_FAILED) {
            op_done(op);
            break;
        }
        if (!teardown_start(op, rollback_net_done))
            rollback_destroy(op);
        break;
    }
}

static void recovered_agent(void *arg, int code, const char *msg)
{
    struct sandbox *sb = arg;
    char e[600];
    if (code)
        log_warn("adaptor", "the agent link of a running pod VM is not back yet; calls wait for it sandbox=%s vm=%s "
                 "error=%s", sb->id, sb->inst.name, log_value(e, sizeof(e), msg));
}

void hypervisor_stop_lost(struct daemon *d, struct sandbox *sb, const char *why)
{
    char pod[2 * POD_FIELD_MAX], ns[300];
    log_warn("adaptor", "sandbox %s: %s; its pod VM and records are deleted sandbox=%s pod=%s vm=%s netns=%s", sb->id,
             why, sb->id, pod_field(sb, pod, sizeof(pod)), sb->inst.name[0] ? sb->inst.name : "-",
             log_value(ns, sizeof(ns), sb->netns_path));
    struct sandbox_op *op = op_new(d, sb, OP_STOP, NULL);
    if (!op) {
        log_error("adaptor", "sandbox %s: out of memory starting its deletion; the next GC pass retries", sb->id);
        return;
    }
    op_submit(op);
}

static void recover_one(struct sandbox *sb, void *arg)
{
    struct daemon *d = arg;
    enum op_kind kind;
    if (sb->previous_boot && sb->phase != SANDBOX_STOPPING) {
        /* The node rebooted since CreateVM: the kata shim, the pod's namespace and the pod went
         * with it and kubelet makes a new sandbox, so nobody will call StopVM for this one. */
        char pod[2 * POD_FIELD_MAX];
        log_warn("adaptor", "sandbox %s is from before the node rebooted: its kata shim and pod are gone, so its pod "
                 "VM and records are deleted sandbox=%s pod=%s phase=%s vm=%s boot_id=%s", sb->id, sb->id,
                 pod_field(sb, pod, sizeof(pod)), sandbox_phase_name(sb->phase), sb->inst.name[0] ? sb->inst.name : "-",
                 sb->boot_id);
        kind = OP_STOP;
    } else if (sb->phase == SANDBOX_RUNNING && sandbox_netns_gone(sb)) {
        /* containerd stopped the pod sandbox (and removed its namespace) while no daemon was
         * there: the shim's StopVM was lost, and no other will come. */
        hypervisor_stop_lost(d, sb, "its pod's network namespace is gone, so its pod sandbox was stopped while the "
                                    "daemon was not running");
        return;
    } else if (sb->phase == SANDBOX_RUNNING) {
        /* DECISIONS 10: the pod keeps running; its agent socket comes back with the daemon. */
        sb->recovered = true;
        proxy_open(d, sb, 0, recovered_agent, sb);
        return;
    } else if (sb->phase == SANDBOX_STOPPING)
        kind = OP_STOP;
    else if (sb->phase == SANDBOX_FAILED && (sb->inst.name[0] || sb->vni))
        kind = OP_ROLLBACK;
    else
        return;
    struct sandbox_op *op = op_new(d, sb, kind, NULL);
    if (!op) {
        log_error("adaptor", "sandbox %s: out of memory resuming its cleanup", sb->id);
        return;
    }
    op_submit(op);
}

void hypervisor_recover(struct daemon *d)
{
    d->loop->data = d;
    sandbox_store_foreach(&d->store, recover_one, d);
}

/* ---- podvminfo waiters ---------------------------------------------------------------- */

static bool not_stopping(const struct sandbox *sb)
{
    return sb->phase != SANDBOX_STOPPING;
}

static const struct sandbox *find_pod(const struct daemon *d, const char *ns, const char *name)
{
    return sandbox_store_find_pod(&d->store, ns, name, not_stopping);
}

static void getinfo_reply(struct ttrpc_call *call, const char *vmid)
{
    Podvminfo__GetInfoResponse resp = PODVMINFO__GET_INFO_RESPONSE__INIT;
    resp.vmid = (char *)vmid;
    uint8_t buf[PROVIDER_ID_MAX + 16];
    size_t n = podvminfo__get_info_response__pack(&resp, buf);
    ttrpc_call_reply(call, buf, n);
}

static void waiter_free(struct getinfo_wait *w)
{
    LIST_REMOVE(w, link);
    free(w->name);
    free(w->ns);
    free(w);
}

static void waiter_cancel(struct ttrpc_call *call, int code, void *arg)
{
    struct getinfo_wait *w = arg;
    struct daemon *d = w->d;
    if (d->shutting_down)
        return;
    ttrpc_call_fail(call, code, "getting VM ID for %s:%s: %s", w->ns, w->name,
                    code == TTRPC_DEADLINE_EXCEEDED ? "context deadline exceeded" : "context canceled");
    waiter_free(w);
}

/* One answer at a time, the list searched again after each: an answer whose write fails
 * closes its connection, which cancels (and frees) the other waiters on it. */
static void waiters_wake(struct daemon *d)
{
    for (;;) {
        struct getinfo_wait *w;
        const struct sandbox *sb = NULL;
        LIST_FOREACH(w, &d->waiters, link)
            if ((sb = find_pod(d, w->ns, w->name)) && sb->inst.id[0])
                break;
        if (!w)
            return;
        getinfo_reply(w->call, sb->inst.id);
        waiter_free(w);
    }
}

/* ---- handlers ------------------------------------------------------------------------- */

/* Copies a wire sandbox id into out (SANDBOX_ID_MAX + 1 bytes) and checks it. An embedded
 * NUL becomes a byte the check refuses, so such an id is rejected, never cut short. */
static int id_take(const ProtobufCBinaryData *id, char *out, char *err, size_t errlen)
{
    char tmp[SANDBOX_ID_MAX + 2];
    size_t n = id->len > SANDBOX_ID_MAX ? SANDBOX_ID_MAX + 1 : id->len;
    for (size_t i = 0; i < n; i++)
        tmp[i] = id->data[i] ? (char)id->data[i] : '\x01';
    tmp[n] = '\0';
    if (sandbox_id_check(tmp, err, errlen))
        return -1;
    memcpy(out, tmp, n + 1);
    return 0;
}

static void handle_version(struct ttrpc_call *call, const uint8_t *p, size_t n, void *ctx)
{
    (void)ctx;
    Hypervisor__VersionRequest *req = hypervisor__version_request__unpack(NULL, n, p);
    if (!req) {
        ttrpc_call_fail(call, TTRPC_INTERNAL, "ttrpc: error unmarshalling payload: %s", "invalid VersionRequest");
        return;
    }
    hypervisor__version_request__free_unpacked(req, NULL);
    static const uint8_t resp[] = {0x0a, 0x05, '0', '.', '0', '.', '0'}; /* VersionResponse{"0.0.0"} */
    ttrpc_call_reply(call, resp, sizeof(resp));
}

/* The pod VM's user-data is built on a pool thread: it issues the VM's TLS key and
 * certificate and encodes the initdata, a millisecond of CPU that a burst of CreateVMs would
 * otherwise spend on the loop. The job owns its copy of the pod network and its result; it
 * reads the sandbox's pod spec, the configuration and the CA, which nothing changes while a
 * CreateVM is in flight. */
struct doc_job {
    uv_work_t w;
    struct sandbox_op *op;
    bool has_pn;
    struct podnet pn;
    char *auth_json; /* the pod's registry credentials, NULL when none */
    size_t auth_json_len;
    int code;
    char err[512];
    struct vmdoc_result r;
    struct turn_task inline_done; /* the completion of a build done on the loop thread */
};

static void doc_job_run(uv_work_t *w)
{
    struct doc_job *j = w->data;
    struct daemon *d = j->op->d;
    struct sandbox *sb = j->op->sb;
    char vm_name[INSTANCE_NAME_MAX + 1];
    if (instance_name_generate(vm_name, sizeof(vm_name), sb->pod.pod_name, sb->id, INSTANCE_NAME_MAX)) {
        snprintf(j->err, sizeof(j->err), "cannot derive the VM name");
        j->code = TTRPC_INTERNAL;
        return;
    }
    /* Without a network namespace (never from kata; tests and dev runs) the pod gets no
     * tunnel: only the VXLAN settings are filled in. */
    struct userdata_pod_network net = {0};
    struct podnet_text *txt = NULL;
    if (j->has_pn) {
        if (!(txt = malloc(sizeof(*txt)))) {
            snprintf(j->err, sizeof(j->err), "out of memory");
            j->code = TTRPC_RESOURCE_EXHAUSTED;
            return;
        }
        podnet_to_userdata(&j->pn, txt, &net);
    }
    net.tunnel_type = "vxlan";
    net.vxlan_port = (int)d->cfg.vxlan_port;
    net.vxlan_id = (int)(sb->vni ? sb->vni : d->cfg.vxlan_min_id);
    net.index = (int)(sb->vni ? sb->vni - network_vni_min(d->net) : 0);
    net.external_net_via_pod_vm = d->cfg.ext_network_via_podvm;
    struct vmdoc_input in = {
        .cfg = &d->cfg,
        .tls = d->tls,
        .global = &d->initdata,
        .pod = &sb->pod,
        .vm_name = vm_name,
        .net = &net,
        .auth_json = j->auth_json,
        .auth_json_len = j->auth_json_len,
    };
    j->code = vmdoc_build(&in, &j->r, j->err, sizeof(j->err));
    free(txt);
}

static void create_saved(void *arg, int err);
static void create_abort(struct sandbox_op *op, int code, const char *msg);

static void doc_job_free(struct doc_job *j)
{
    userdata_text_free(j->auth_json);
    free(j);
}

static void doc_job_done(uv_work_t *w, int status)
{
    struct doc_job *j = w->data;
    struct sandbox_op *op = j->op;
    struct daemon *d = op->d;
    struct sandbox *sb = op->sb;
    userdata_text_free(j->auth_json); /* in the document now, if at all */
    j->auth_json = NULL;
    if (d->shutting_down || status) {
        if (!j->code)
            vmdoc_result_clear(&j->r);
        free(j);
        if (!d->shutting_down)
            create_abort(op, TTRPC_CANCELED, "building the pod VM's user-data was canceled");
        return;
    }
    if (j->code) {
        create_abort(op, j->code, j->err);
        free(j);
        return;
    }
    struct vmdoc_result *r = &j->r;
    size_t limit = d->pops->userdata_limit ? d->pops->userdata_limit(d->prov) : 0;
    if (limit && vmdoc_base64_len(r->len) > limit) {
        char err[512];
        snprintf(err, sizeof(err),
                 "the pod VM's user-data is %zu bytes in base64, more than the %zu bytes the %s provider accepts; "
                 "make the initdata smaller (pod annotation cc_init_data, or INITDATA)",
                 vmdoc_base64_len(r->len), limit, d->pops->name);
        vmdoc_result_clear(r);
        free(j);
        create_abort(op, TTRPC_INVALID_ARGUMENT, err);
        return;
    }
    static const char *const from[] = {"none", "annotation", "INITDATA"};
    if (r->initdata_source != VMDOC_INITDATA_NONE)
        log_info("adaptor", "initdata chosen sandbox=%s source=%s algorithm=%s digest=%s", sb->id,
                 from[r->initdata_source], r->initdata_algorithm, r->initdata_digest);
    if (r->auth_dropped)
        log_warn("adaptor", "sandbox %s: registry credentials exceed %d bytes and are not sent to the pod VM", sb->id,
                 USERDATA_AUTH_JSON_MAX);
    log_debug("adaptor", "sandbox %s: user-data is %zu bytes (server certificate: %s)", sb->id, r->len,
              r->server_cert ? "issued" : "none");
    sandbox_userdata_drop(sb);
    sb->userdata = r->doc;
    sb->userdata_len = r->len;
    r->doc = NULL;
    vmdoc_result_clear(r);
    free(j);
    if (sandbox_store_save_userdata(&d->store, sb, create_saved, op))
        create_saved(op, ENOMEM);
}

static void doc_job_inline_done(struct turn_task *t)
{
    struct doc_job *j = (struct doc_job *)((char *)t - offsetof(struct doc_job, inline_done));
    doc_job_done(&j->w, 0);
}

/* Without a certificate to issue or initdata of the pod's own to decode, the document is a
 * few kilobytes of text: cheaper to build here than the two thread hand-offs of a pool job.
 * It still completes in a later turn, like a pool job. */
static bool document_is_cheap(const struct sandbox_op *op)
{
    const struct daemon *d = op->d;
    return !(d->tls && tlsca_issues_server_certs(d->tls)) && !(op->sb->pod.initdata && *op->sb->pod.initdata);
}

static void document_build_queue(struct doc_job *j)
{
    if (document_is_cheap(j->op)) {
        doc_job_run(&j->w);
        j->inline_done.fn = doc_job_inline_done;
        turn_defer(&j->op->d->turn, &j->inline_done);
        return;
    }
    if (uv_queue_work(j->op->d->loop, &j->w, doc_job_run, doc_job_done)) {
        struct sandbox_op *op = j->op;
        doc_job_free(j);
        create_abort(op, TTRPC_INTERNAL, "cannot queue the user-data build");
    }
}

static void document_auth_done(void *arg, char *auth_json, size_t len, const char *err, const char *pod_uid)
{
    struct doc_job *j = arg;
    struct sandbox_op *op = j->op;
    char pod[2 * POD_FIELD_MAX], e[1400];
    if (op->d->shutting_down) {
        userdata_text_free(auth_json);
        doc_job_free(j);
        return;
    }
    if (err)
        log_warn("adaptor", "error reading image pull secrets; the pod VM gets no registry credentials (auth.json) "
                 "sandbox=%s pod=%s error=%s", op->sb->id, pod_field(op->sb, pod, sizeof(pod)),
                 log_value(e, sizeof(e), err));
    else if (auth_json)
        log_info("adaptor", "registry credentials from the image pull secrets sandbox=%s pod=%s", op->sb->id,
                 pod_field(op->sb, pod, sizeof(pod)));
    snprintf(op->sb->pod_uid, sizeof(op->sb->pod_uid), "%s", pod_uid ? pod_uid : "");
    j->auth_json = auth_json;
    j->auth_json_len = len;
    document_build_queue(j);
}

/* Queues the user-data build for op; the pod network pn (NULL: none) is copied. In
 * Kubernetes the pod's image pull secrets are read first (spec 4.4). */
static void document_build_start(struct sandbox_op *op, const struct podnet *pn)
{
    struct doc_job *j = calloc(1, sizeof(*j));
    if (!j) {
        create_abort(op, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    j->op = op;
    j->w.data = j;
    if (pn) {
        j->has_pn = true;
        j->pn = *pn;
    }
    const struct pod_spec *pod = &op->sb->pod;
    if (op->d->kube && *pod->pod_name && *pod->pod_namespace) {
        if (kube_pull_auth(op->d->kube, pod->pod_namespace, pod->pod_name, document_auth_done, j) == 0)
            return;
        log_warn("adaptor", "sandbox %s: cannot read image pull secrets (out of memory or names too long); the pod "
                            "VM gets no registry credentials", op->sb->id);
    }
    document_build_queue(j);
}

/* Ends a CreateVM that wrote nothing to disk: the record leaves the store. */
static void create_abort(struct sandbox_op *op, int code, const char *msg)
{
    char e[1200];
    log_warn("adaptor", "CreateVM failed sandbox=%s error=%s", op->sb->id, log_value(e, sizeof(e), msg));
    op_fail(op, code, "%s", msg);
    op->sb->phase = SANDBOX_GONE;
    op_done(op);
}

static void create_inspected(void *arg, int rc, const struct podnet *pn, const char *ierr)
{
    struct sandbox_op *op = arg;
    struct daemon *d = op->d;
    struct sandbox *sb = op->sb;
    char err[512];
    if (d->shutting_down)
        return;
    if (rc) {
        snprintf(err, sizeof(err), "inspecting the pod network: %s", ierr);
        create_abort(op, TTRPC_FAILED_PRECONDITION, err);
        return;
    }
    if (pn) {
        uint32_t vni;
        if (network_vni_take(d->net, &vni, err, sizeof(err))) {
            create_abort(op, TTRPC_RESOURCE_EXHAUSTED, err);
            return;
        }
        sb->vni = vni; /* released with the record */
        snprintf(sb->pod_if, sizeof(sb->pod_if), "%s", pn->ifname);
        sb->net_dedicated = pn->dedicated;
        char ip[16];
        struct in_addr a = {.s_addr = pn->pod_ip};
        inet_ntop(AF_INET, &a, ip, sizeof(ip));
        log_info("adaptor", "pod network inspected sandbox=%s ip=%s/%u iface=%s routes=%zu neighbours=%zu mtu=%u vni=%u",
                 sb->id, ip, pn->pod_prefix, pn->ifname, pn->n_routes, pn->n_neighbors, pn->mtu, vni);
    }
    document_build_start(op, pn);
}

static void handle_create(struct ttrpc_call *call, const uint8_t *p, size_t n, void *ctx)
{
    struct daemon *d = ctx;
    char err[512];
    Hypervisor__CreateVMRequest *req = hypervisor__create_vmrequest__unpack(NULL, n, p);
    if (!req) {
        ttrpc_call_fail(call, TTRPC_INTERNAL, "ttrpc: error unmarshalling payload: %s", "invalid CreateVMRequest");
        return;
    }
    struct annotation *ann = NULL;
    struct sandbox *sb = NULL;
    char id[SANDBOX_ID_MAX + 1];
    if (id_take(&req->id, id, err, sizeof(err))) {
        ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "%s", err);
        goto out;
    }
    char sock[sizeof(((struct sockaddr_un *)0)->sun_path) + 64];
    if (sandbox_path(sock, sizeof(sock), d->cfg.pods_dir, id, SANDBOX_AGENT_SOCKET) ||
        strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT,
                        "agent socket path for sandbox %s does not fit a unix socket address (108 bytes); "
                        "shorten PODS_DIR (-pods-dir)", id);
        goto out;
    }
    ann = calloc(req->n_annotations + 1, sizeof(*ann));
    if (!ann) {
        ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < req->n_annotations; i++) {
        ann[i].key = req->annotations[i]->key;
        ann[i].value = req->annotations[i]->value;
    }
    if (sandbox_store_get(&d->store, id)) {
        ttrpc_call_fail(call, TTRPC_ALREADY_EXISTS, "adding sandbox: sandbox %s already exists", id);
        goto out;
    }
    if (d->cfg.peerpods_limit >= 0 && live_count(d) >= (size_t)d->cfg.peerpods_limit) {
        ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED,
                        "peer pod limit reached: %lld peer pods already run on this node "
                        "(PEERPODS_LIMIT_PER_NODE=%lld); delete a peer pod or raise PEERPODS_LIMIT_PER_NODE",
                        (long long)live_count(d), (long long)d->cfg.peerpods_limit);
        goto out;
    }
    sb = sandbox_new(id);
    if (!sb || !(sb->netns_path = strdup(req->networknamespacepath))) {
        ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    memcpy(sb->boot_id, d->store.boot_id, sizeof(sb->boot_id));
    if (pod_spec_parse(&sb->pod, ann, req->n_annotations, err, sizeof(err))) {
        ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "%s", err);
        goto out;
    }
    struct sandbox_op *op = op_new(d, sb, OP_CREATE, call);
    if (!op) {
        ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    char ns[300], pod[POD_FIELD_MAX];
    log_info("adaptor", "create a sandbox %s for pod %s in namespace %s sandbox=%s pod=%s netns=%s", sb->id,
             sb->pod.pod_name, sb->pod.pod_namespace, sb->id, pod_field(sb, pod, sizeof(pod)),
             log_value(ns, sizeof(ns), sb->netns_path));
    /* In the store from now on: a second CreateVM of the id is refused, StartVM queues. */
    sandbox_store_insert(&d->store, sb);
    sb->phase = SANDBOX_CREATED;
    sb->op = op;
    struct sandbox *mine = sb;
    sb = NULL;
    if (!mine->netns_path[0]) {
        log_warn("adaptor", "CreateVM: sandbox %s has no network namespace path: the pod gets no network tunnel",
                 mine->id);
        create_inspected(op, 0, NULL, NULL);
    } else if (network_inspect(d->net, mine->netns_path, create_inspected, op)) {
        create_abort(op, TTRPC_RESOURCE_EXHAUSTED, "cannot queue the pod network inspection (out of memory or "
                                                   "network namespace path too long)");
    }
out:
    sandbox_free(sb);
    free(ann);
    hypervisor__create_vmrequest__free_unpacked(req, NULL);
}

static void create_erased(void *arg, int ioerr)
{
    struct sandbox_op *op = arg;
    (void)ioerr;
    if (op->d->shutting_down)
        return;
    op->sb->phase = SANDBOX_GONE;
    op_done(op);
}

static void create_saved(void *arg, int ioerr)
{
    struct sandbox_op *op = arg;
    struct daemon *d = op->d;
    struct sandbox *sb = op->sb;
    if (d->shutting_down)
        return;
    if (ioerr) {
        /* CreateVM is transactional: nothing of the sandbox may remain. */
        op_fail(op, TTRPC_INTERNAL, "creating the sandbox directory under PODS_DIR: %s", strerror(ioerr));
        if (sandbox_store_erase(&d->store, sb->id, create_erased, op))
            create_erased(op, ENOMEM);
        return;
    }
    char sock[256];
    sandbox_path(sock, sizeof(sock), d->cfg.pods_dir, sb->id, SANDBOX_AGENT_SOCKET);
    Hypervisor__CreateVMResponse resp = HYPERVISOR__CREATE_VMRESPONSE__INIT;
    resp.agentsocketpath = sock;
    uint8_t buf[300];
    size_t n = hypervisor__create_vmresponse__pack(&resp, buf);
    if (op->call)
        ttrpc_call_reply(op->call, buf, n);
    op->call = NULL;
    waiters_wake(d);
    op_done(op);
}

typedef Hypervisor__StartVMRequest id_request; /* StartVM and StopVM requests: one string id */

static struct sandbox *lookup(struct daemon *d, struct ttrpc_call *call, const uint8_t *p, size_t n,
                              const char *what, bool *reply_ok_if_missing)
{
    char err[512];
    id_request *req = hypervisor__start_vmrequest__unpack(NULL, n, p);
    if (!req) {
        ttrpc_call_fail(call, TTRPC_INTERNAL, "ttrpc: error unmarshalling payload: invalid %s request", what);
        return NULL;
    }
    struct sandbox *sb = NULL;
    char id[SANDBOX_ID_MAX + 1];
    if (id_take(&req->id, id, err, sizeof(err))) {
        ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "%s: %s", what, err);
    } else if (!(sb = sandbox_store_get(&d->store, id))) {
        if (*reply_ok_if_missing)
            ttrpc_call_reply(call, NULL, 0);
        else
            ttrpc_call_fail(call, TTRPC_NOT_FOUND, "getting sandbox: sandbox %s does not exist", id);
    }
    hypervisor__start_vmrequest__free_unpacked(req, NULL);
    return sb;
}

static void handle_start(struct ttrpc_call *call, const uint8_t *p, size_t n, void *ctx)
{
    struct daemon *d = ctx;
    bool missing_ok = false;
    struct sandbox *sb = lookup(d, call, p, n, "StartVM", &missing_ok);
    if (!sb)
        return;
    struct sandbox_op *op = op_new(d, sb, OP_START, call);
    if (!op) {
        ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    op_submit(op);
}

static void handle_stop(struct ttrpc_call *call, const uint8_t *p, size_t n, void *ctx)
{
    struct daemon *d = ctx;
    bool missing_ok = true; /* StopVM is idempotent */
    struct sandbox *sb = lookup(d, call, p, n, "StopVM", &missing_ok);
    if (!sb)
        return;
    struct sandbox_op *op = op_new(d, sb, OP_STOP, call);
    if (!op) {
        ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    op_submit(op);
}

static void handle_getinfo(struct ttrpc_call *call, const uint8_t *p, size_t n, void *ctx)
{
    struct daemon *d = ctx;
    Podvminfo__GetInfoRequest *req = podvminfo__get_info_request__unpack(NULL, n, p);
    if (!req) {
        ttrpc_call_fail(call, TTRPC_INTERNAL, "ttrpc: error unmarshalling payload: %s", "invalid GetInfoRequest");
        return;
    }
    const struct sandbox *sb = find_pod(d, req->podnamespace, req->podname);
    if (sb && sb->inst.id[0]) {
        getinfo_reply(call, sb->inst.id);
    } else if (!req->wait) {
        ttrpc_call_fail(call, TTRPC_NOT_FOUND, "VM ID for %s:%s was not found", req->podnamespace, req->podname);
    } else {
        struct getinfo_wait *w = calloc(1, sizeof(*w));
        if (!w || !(w->name = strdup(req->podname)) || !(w->ns = strdup(req->podnamespace))) {
            if (w) {
                free(w->name);
                free(w);
            }
            ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
        } else {
            w->call = call;
            w->d = d;
            LIST_INSERT_HEAD(&d->waiters, w, link);
            ttrpc_call_on_cancel(call, waiter_cancel, w);
        }
    }
    podvminfo__get_info_request__free_unpacked(req, NULL);
}

/* CreateVM, StartVM and StopVM come in bursts when many pods start or stop together; past
 * the loop turn's budget (adaptor/turn.h) they wait for a later turn, in order, so a burst
 * never holds the loop and Version or GetInfo are answered meanwhile. The payload is copied;
 * a call cancelled while it waits (deadline, closed connection) is failed when its turn
 * comes instead of being started. */
struct deferred_call {
    struct turn_task task;
    struct ttrpc_call *call;
    ttrpc_handler_fn fn;
    struct daemon *d;
    int cancel_code;
    size_t n;
    uint8_t p[];
};

static void deferred_cancelled(struct ttrpc_call *call, int code, void *arg)
{
    (void)call;
    struct deferred_call *dc = arg;
    dc->cancel_code = code;
}

static void deferred_run(struct turn_task *t)
{
    struct deferred_call *dc = (struct deferred_call *)((char *)t - offsetof(struct deferred_call, task));
    if (dc->cancel_code) {
        ttrpc_call_fail(dc->call, dc->cancel_code, "the call ended before the daemon got to it (%s)",
                        dc->cancel_code == TTRPC_DEADLINE_EXCEEDED ? "deadline exceeded" : "canceled");
    } else {
        ttrpc_call_on_cancel(dc->call, NULL, NULL);
        dc->fn(dc->call, dc->p, dc->n, dc->d);
    }
    free(dc);
}

static void handle_bulk(struct ttrpc_call *call, const uint8_t *p, size_t n, struct daemon *d, ttrpc_handler_fn fn)
{
    if (STAILQ_EMPTY(&d->turn.tasks) && !turn_spent(&d->turn)) {
        fn(call, p, n, d);
        return;
    }
    struct deferred_call *dc = malloc(sizeof(*dc) + n);
    if (!dc) {
        ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    *dc = (struct deferred_call){.task = {.fn = deferred_run}, .call = call, .fn = fn, .d = d, .n = n};
    memcpy(dc->p, p, n);
    ttrpc_call_on_cancel(call, deferred_cancelled, dc);
    turn_defer(&d->turn, &dc->task);
}

static void handle_create_bulk(struct ttrpc_call *call, const uint8_t *p, size_t n, void *ctx)
{
    handle_bulk(call, p, n, ctx, handle_create);
}

static void handle_start_bulk(struct ttrpc_call *call, const uint8_t *p, size_t n, void *ctx)
{
    handle_bulk(call, p, n, ctx, handle_start);
}

static void handle_stop_bulk(struct ttrpc_call *call, const uint8_t *p, size_t n, void *ctx)
{
    handle_bulk(call, p, n, ctx, handle_stop);
}

const struct ttrpc_method hypervisor_methods[] = {
    {"hypervisor.Hypervisor", "CreateVM", handle_create_bulk},
    {"hypervisor.Hypervisor", "StartVM", handle_start_bulk},
    {"hypervisor.Hypervisor", "StopVM", handle_stop_bulk},
    {"hypervisor.Hypervisor", "Version", handle_version},
    {"podvminfo.PodVMInfo", "GetInfo", handle_getinfo},
};
const size_t hypervisor_methods_count = sizeof(hypervisor_methods) / sizeof(hypervisor_methods[0]);

/* ---- shutdown ------------------------------------------------------------------------- */

static void shutdown_one(struct sandbox *sb, void *arg)
{
    (void)arg;
    proxy_drop(sb);
    if (sb->retry) {
        uv_close((uv_handle_t *)sb->retry, (uv_close_cb)free);
        sb->retry = NULL;
    }
}

void hypervisor_shutdown(struct daemon *d)
{
    d->shutting_down = true;
    sandbox_store_foreach(&d->store, shutdown_one, d);
}

static void free_ops(struct sandbox *sb, void *arg)
{
    (void)arg;
    struct sandbox_op *q = sb->op;
    if (q) {
        if (q->call)
            ttrpc_call_abandon(q->call);
        free(q);
        sb->op = NULL;
    }
    while ((q = op_queue_take(sb))) {
        if (q->call)
            ttrpc_call_abandon(q->call);
        free(q);
    }
}

void hypervisor_free(struct daemon *d)
{
    sandbox_store_foreach(&d->store, free_ops, d);
    struct getinfo_wait *w;
    while ((w = LIST_FIRST(&d->waiters))) {
        ttrpc_call_abandon(w->call);
        waiter_free(w);
    }
}
