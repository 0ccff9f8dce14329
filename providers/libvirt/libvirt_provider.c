/* libvirt_provider: the libvirt provider (see libvirt_provider.h). Worker-thread functions are named *_run
 * and touch only their job and the shared connection; *_done functions run on the loop. */
#include "libvirt_provider.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "../../adaptor/log.h"
#include "cidata.h"
#include "domxml.h"

#define LOG "libvirt"
#define POLL_MS 250                /* DECISIONS 19: the address is looked for every 250 ms */
#define POLL_OUTAGE_MS 60000       /* libvirtd away (a restart) this long while we wait: give up */
#define REFRESH_TRIES 25           /* pool refresh fails while another job holds the pool */
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 3

struct lv_options {
    const char *uri, *pool, *network, *vol_name, *launch_security, *firmware, *cpuset, *data_dir;
    int64_t cpu, memory, root_disk_gib;
    bool disable_cvm;
};

struct provider {
    uv_loop_t *loop;
    const struct lv_options *o;
    char node_name[256];
    /* Decided at init; read-only afterwards, so worker threads may read them. */
    enum domxml_arch arch;
    enum domxml_security security;
    char domtype[16], machine[128], emulator[PATH_MAX];
    unsigned cbitpos, reduced_phys_bits;
    bool remote; /* the URI names a host: files written here would not reach it */
    /* The shared connection, reopened when found dead. */
    pthread_mutex_t mu;
    virConnectPtr conn;
    unsigned opens;
    /* Why the last connection attempt failed ("" once connected), for /readyz. Own lock:
     * the loop thread must never wait behind a slow virConnectOpen holding mu. */
    pthread_mutex_t reach_mu;
    char unreach[256];
    char unreach_seen[256]; /* loop thread only */
    atomic_bool upload_fallback_logged, nvram_fallback_logged;
    /* libvirt's event loop, for keepalive. */
    uv_thread_t evthread;
    atomic_bool evstop;
    bool evrunning;
    /* Loop thread only. */
    size_t pending;
    bool closing;
    LIST_HEAD(, provider_op) ops; /* creates waiting for their address */
    libvirt_ifaddrs_fn ifaddrs;
    int (*domain_start)(virDomainPtr dom);
};

/* ------------------------------------------------------------------ jobs on the thread pool */

struct job {
    uv_work_t w; /* first: jobs are recovered from the request */
    struct provider *p;
    void (*run)(struct job *j);  /* worker thread */
    void (*done)(struct job *j); /* loop thread; owns j from here */
    void (*drop)(struct job *j); /* loop thread, at shutdown: free without callbacks */
};

static void provider_free(struct provider *p);

static void job_work(uv_work_t *w)
{
    struct job *j = (struct job *)w;
    j->run(j);
}

static void job_after(uv_work_t *w, int status)
{
    struct job *j = (struct job *)w;
    struct provider *p = j->p;
    p->pending--;
    if (p->closing || status == UV_ECANCELED)
        j->drop(j);
    else
        j->done(j);
    if (p->closing && p->pending == 0)
        provider_free(p);
}

static int job_submit(struct job *j)
{
    j->p->pending++;
    int rc = uv_queue_work(j->p->loop, &j->w, job_work, job_after);
    if (rc)
        j->p->pending--;
    return rc;
}

/* ------------------------------------------------------------------ errors and the connection */

static int verr_code(void)
{
    virErrorPtr e = virGetLastError();
    return e ? e->code : VIR_ERR_OK;
}

static const char *verr_msg(void)
{
    virErrorPtr e = virGetLastError();
    return e && e->message ? e->message : "unknown libvirt error";
}

static void perr_set(struct provider_error *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void perr_set(struct provider_error *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    e->code = code;
}

/* libvirt prints every error on stderr by default; errors reach us through return values. */
static void verr_quiet(void *opaque, virErrorPtr e)
{
    (void)opaque;
    (void)e;
}

static void ev_thread(void *arg)
{
    struct provider *p = arg;
    while (!atomic_load(&p->evstop))
        if (virEventRunDefaultImpl() < 0)
            break;
}

static void ev_wake(int timer, void *opaque)
{
    (void)opaque;
    virEventRemoveTimeout(timer);
}

static pthread_once_t libvirt_once = PTHREAD_ONCE_INIT;
static int libvirt_once_rc;

/* Process-wide libvirt set-up: the default event implementation must be registered before
 * the first connection is opened, and only once. */
static void libvirt_setup(void)
{
    virSetErrorFunc(NULL, verr_quiet);
    libvirt_once_rc = virInitialize() < 0 || virEventRegisterDefaultImpl() < 0 ? -1 : 0;
}

static virConnectPtr conn_open(struct provider *p, struct provider_error *e)
{
    virConnectPtr c = virConnectOpen(p->o->uri);
    if (!c) {
        perr_set(e, TTRPC_UNAVAILABLE, "connecting to libvirt at %s (LIBVIRT_URI): %s", p->o->uri, verr_msg());
        return NULL;
    }
    /* -1: error, 1: the driver has no keepalive (test driver, local qemu): both are fine. */
    if (virConnectSetKeepAlive(c, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT) < 0)
        log_debug(LOG, "no keepalive on %s: %s", p->o->uri, verr_msg());
    return c;
}

/* A reference to the live shared connection (reopened if dead), or NULL with e set. The
 * caller drops it with virConnectClose. */
static virConnectPtr conn_get(struct provider *p, struct provider_error *e)
{
    pthread_mutex_lock(&p->mu);
    if (p->conn && virConnectIsAlive(p->conn) != 1) {
        log_warn(LOG, "the connection to %s was lost (libvirtd restarted?); reconnecting", p->o->uri);
        virConnectClose(p->conn);
        p->conn = NULL;
    }
    if (!p->conn && (p->conn = conn_open(p, e)) && p->opens++)
        log_info(LOG, "reconnected to %s", p->o->uri);
    pthread_mutex_lock(&p->reach_mu);
    snprintf(p->unreach, sizeof(p->unreach), "%.255s", p->conn ? "" : e->msg);
    pthread_mutex_unlock(&p->reach_mu);
    virConnectPtr c = p->conn;
    if (c)
        virConnectRef(c);
    pthread_mutex_unlock(&p->mu);
    return c;
}

virConnectPtr libvirt_provider_conn(struct provider *p)
{
    return p->conn;
}

void libvirt_provider_conn_drop(struct provider *p)
{
    pthread_mutex_lock(&p->mu);
    if (p->conn)
        virConnectClose(p->conn);
    p->conn = NULL;
    pthread_mutex_unlock(&p->mu);
}

static const char *lv_unreachable(const struct provider *p)
{
    struct provider *mp = (struct provider *)p; /* the lock, and the loop thread's copy */
    pthread_mutex_lock(&mp->reach_mu);
    memcpy(mp->unreach_seen, mp->unreach, sizeof(mp->unreach_seen));
    pthread_mutex_unlock(&mp->reach_mu);
    return mp->unreach_seen[0] ? mp->unreach_seen : NULL;
}

void libvirt_provider_set_ifaddrs(struct provider *p, libvirt_ifaddrs_fn fn)
{
    p->ifaddrs = fn ? fn : virDomainInterfaceAddresses;
}

void libvirt_provider_set_domain_start(struct provider *p, int (*fn)(virDomainPtr dom))
{
    p->domain_start = fn ? fn : virDomainCreate;
}

/* ------------------------------------------------------------------ volumes and domains (worker) */

static void vol_names(const char *name, char root[128], char iso[128])
{
    snprintf(root, 128, "%s-root.qcow2", name);
    snprintf(iso, 128, "%s-cloudinit.iso", name);
}

/* Where the ISO goes when the connection cannot upload volumes (see iso_place). */
static int iso_fallback_path(const struct provider *p, const char *name, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s/%s-cloudinit.iso", p->o->data_dir, name);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

static int pool_refresh(virStoragePoolPtr pool)
{
    for (int i = 0; i < REFRESH_TRIES; i++) {
        if (virStoragePoolRefresh(pool, 0) == 0)
            return 0;
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* Deletes a volume of the pool by name; a missing one is success. */
static int vol_delete(virStoragePoolPtr pool, const char *vname, struct provider_error *e)
{
    virStorageVolPtr v = virStorageVolLookupByName(pool, vname);
    if (!v) {
        if (verr_code() == VIR_ERR_NO_STORAGE_VOL)
            return 0;
        perr_set(e, TTRPC_UNAVAILABLE, "looking up volume %s: %s", vname, verr_msg());
        return -1;
    }
    int rc = virStorageVolDelete(v, 0);
    if (rc < 0)
        perr_set(e, TTRPC_UNAVAILABLE, "deleting volume %s: %s", vname, verr_msg());
    virStorageVolFree(v);
    return rc < 0 ? -1 : 0;
}

/* Everything a VM named name owns: the domain (stopped, undefined), its two volumes and a
 * fallback ISO file. Missing pieces are success (DECISIONS 19). dom may be NULL. */
static int vm_delete(struct provider *p, virConnectPtr c, virDomainPtr dom, const char *name, struct provider_error *e)
{
    int rc = 0;
    if (dom) {
        if (virDomainIsActive(dom) == 1 && virDomainDestroy(dom) < 0 && verr_code() != VIR_ERR_NO_DOMAIN &&
            verr_code() != VIR_ERR_OPERATION_INVALID) {
            perr_set(e, TTRPC_UNAVAILABLE, "stopping domain %s: %s", name, verr_msg());
            return -1; /* a running VM keeps its disks: try again later */
        }
        unsigned flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                         VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | VIR_DOMAIN_UNDEFINE_NVRAM;
        if (virDomainUndefineFlags(dom, flags) < 0) {
            int code = verr_code();
            if (code == VIR_ERR_NO_SUPPORT || code == VIR_ERR_INVALID_ARG) {
                if (!atomic_exchange(&p->nvram_fallback_logged, true))
                    log_info(LOG, "%s does not take undefine flags (%s); undefining without them", p->o->uri,
                             verr_msg());
                if (virDomainUndefine(dom) < 0 && verr_code() != VIR_ERR_NO_DOMAIN) {
                    perr_set(e, TTRPC_UNAVAILABLE, "undefining domain %s: %s", name, verr_msg());
                    rc = -1;
                }
            } else if (code != VIR_ERR_NO_DOMAIN) {
                perr_set(e, TTRPC_UNAVAILABLE, "undefining domain %s: %s", name, verr_msg());
                rc = -1;
            }
        }
    }
    char root[128], iso[128], file[PATH_MAX];
    vol_names(name, root, iso);
    virStoragePoolPtr pool = virStoragePoolLookupByName(c, p->o->pool);
    if (!pool) {
        perr_set(e, TTRPC_UNAVAILABLE, "can't find storage pool \"%s\": %s", p->o->pool, verr_msg());
        return -1;
    }
    pool_refresh(pool);
    if (vol_delete(pool, root, e) || vol_delete(pool, iso, e))
        rc = -1;
    virStoragePoolFree(pool);
    if (!iso_fallback_path(p, name, file, sizeof(file)) && unlink(file) && errno != ENOENT) {
        perr_set(e, TTRPC_INTERNAL, "removing %s: %s", file, strerror(errno));
        rc = -1;
    }
    return rc;
}

static int file_write(const char *path, const uint8_t *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    while (len) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        data += w;
        len -= (size_t)w;
    }
    if (fsync(fd) < 0) {
        close(fd);
        return -1;
    }
    return close(fd);
}

/* Creates the ISO volume and uploads the bytes; returns the path the domain boots from in
 * path. A connection that cannot upload (the test driver, old libvirt) gets the ISO as a
 * local file under -data-dir instead, when the connection is local. */
static int iso_place(struct provider *p, virConnectPtr c, virStoragePoolPtr pool, const char *name,
                     const uint8_t *iso, size_t len, char *path, size_t pathlen, struct provider_error *e)
{
    char root[128], vname[128];
    vol_names(name, root, vname);
    char *xml = domxml_volume_raw(vname, len);
    virStorageVolPtr vol = xml ? virStorageVolCreateXML(pool, xml, 0) : NULL;
    free(xml);
    if (!vol) {
        perr_set(e, TTRPC_UNAVAILABLE, "creating volume %s in pool %s: %s", vname, p->o->pool, verr_msg());
        return -1;
    }
    virStreamPtr st = virStreamNew(c, 0);
    int rc = -1;
    if (st && virStorageVolUpload(vol, st, 0, len, 0) == 0) {
        size_t off = 0;
        while (off < len) {
            int n = virStreamSend(st, (const char *)iso + off, len - off > 262144 ? 262144 : len - off);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        if (off == len && virStreamFinish(st) == 0) {
            char *vp = virStorageVolGetPath(vol);
            if (vp && snprintf(path, pathlen, "%s", vp) < (int)pathlen)
                rc = 0;
            free(vp);
        } else {
            virStreamAbort(st);
        }
        if (rc)
            perr_set(e, TTRPC_UNAVAILABLE, "uploading %s: %s", vname, verr_msg());
    } else if (verr_code() == VIR_ERR_NO_SUPPORT && !p->remote) {
        if (!atomic_exchange(&p->upload_fallback_logged, true))
            log_warn(LOG, "%s cannot upload volumes (%s); cidata ISOs are written to %s (-data-dir) instead",
                     p->o->uri, verr_msg(), p->o->data_dir);
        virStorageVolDelete(vol, 0);
        if (iso_fallback_path(p, name, path, pathlen) || (mkdir(p->o->data_dir, 0700) && errno != EEXIST) ||
            file_write(path, iso, len))
            perr_set(e, TTRPC_INTERNAL, "writing %s/%s-cloudinit.iso (-data-dir): %s", p->o->data_dir, name,
                     strerror(errno));
        else
            rc = 0;
    } else {
        perr_set(e, TTRPC_UNAVAILABLE, "uploading %s to %s: %s", vname, p->o->uri, verr_msg());
    }
    if (st)
        virStreamFree(st);
    virStorageVolFree(vol);
    return rc;
}

/* ------------------------------------------------------------------ create */

struct provider_op {
    struct job job; /* first */
    struct provider *p;
    struct provider_create_cbs cbs;
    void *arg;
    char name[PROVIDER_NAME_MAX], sandbox[129], pod[512], image[256];
    unsigned vcpus, memory_mib;
    uint8_t *userdata;
    size_t userdata_len;
    uint64_t deadline;
    atomic_bool cancelled;
    struct provider_instance inst;
    struct provider_error err;
    bool failed;
    bool started;   /* the domain runs: now waiting for its address */
    bool inflight;  /* a job of this op is in the thread pool */
    bool transient; /* the last poll failed for want of libvirtd, not because of the domain */
    uint64_t outage_since; /* loop ms of the first of a run of transient poll failures, 0 none */
    uv_timer_t *timer;
    LIST_ENTRY(provider_op) link; /* on p->ops until freed */
};

static void timer_closed(uv_handle_t *h)
{
    free(h);
}

static void op_free(struct provider_op *op)
{
    LIST_REMOVE(op, link);
    if (op->timer)
        uv_close((uv_handle_t *)op->timer, timer_closed);
    if (op->userdata) {
        memset(op->userdata, 0, op->userdata_len);
        free(op->userdata);
    }
    free(op);
}

static void op_finish(struct provider_op *op)
{
    struct provider_create_cbs cbs = op->cbs;
    void *arg = op->arg;
    struct provider_instance inst = op->inst;
    struct provider_error err = op->err;
    bool failed = op->failed;
    op_free(op);
    cbs.on_done(arg, failed ? &err : NULL, &inst);
}

static void op_drop(struct job *j)
{
    op_free((struct provider_op *)j);
}

static bool op_cancelled(struct provider_op *op)
{
    if (!atomic_load(&op->cancelled))
        return false;
    perr_set(&op->err, TTRPC_CANCELED, "creating %s was canceled", op->name);
    return true;
}

static void create_run(struct job *j)
{
    struct provider_op *op = (struct provider_op *)j;
    struct provider *p = op->p;
    struct provider_error *e = &op->err;
    virConnectPtr c = conn_get(p, e);
    virStoragePoolPtr pool = NULL;
    virStorageVolPtr base = NULL, rootv = NULL;
    virDomainPtr dom = NULL;
    uint8_t *iso = NULL;
    size_t iso_len = 0;
    char *xml = NULL, *base_path = NULL, *root_path = NULL;
    bool made = false; /* something may exist that must be rolled back */
    op->failed = true;
    if (!c)
        return;

    /* A domain of this name is ours from an attempt a crash cut short: start afresh. */
    if ((dom = virDomainLookupByName(c, op->name))) {
        log_warn(LOG, "domain %s exists from an earlier attempt; deleting it first", op->name);
        int rc = vm_delete(p, c, dom, op->name, e);
        virDomainFree(dom);
        dom = NULL;
        if (rc)
            goto out;
    } else if (verr_code() != VIR_ERR_NO_DOMAIN) {
        perr_set(e, TTRPC_UNAVAILABLE, "Error in checking instance %s: %s", op->name, verr_msg());
        goto out;
    }
    if (!(pool = virStoragePoolLookupByName(c, p->o->pool))) {
        perr_set(e, TTRPC_UNAVAILABLE, "can't find storage pool \"%s\" (LIBVIRT_POOL): %s", p->o->pool, verr_msg());
        goto out;
    }
    if (pool_refresh(pool))
        log_warn(LOG, "refreshing pool %s: %s", p->o->pool, verr_msg());
    char root_name[128], iso_name[128];
    vol_names(op->name, root_name, iso_name);
    made = true;
    if (vol_delete(pool, root_name, e) || vol_delete(pool, iso_name, e))
        goto out;

    /* The root disk: a qcow2 overlay over the pod VM image; nothing is copied. */
    const char *image = op->image[0] ? op->image : p->o->vol_name;
    log_info(LOG, "Choosing %s as libvirt volume for the PodVM image", image);
    if (!(base = virStorageVolLookupByName(pool, image)) && !(base = virStorageVolLookupByKey(c, image))) {
        perr_set(e, TTRPC_INVALID_ARGUMENT,
                 "Can't retrieve volume %s in pool %s: set LIBVIRT_VOL_NAME or the pod annotation "
                 "io.katacontainers.config.hypervisor.image to a volume of the pool",
                 image, p->o->pool);
        goto out;
    }
    virStorageVolInfo info;
    char fmt[32];
    char *bxml = virStorageVolGetXMLDesc(base, 0);
    uint64_t capacity;
    int fmt_rc = domxml_volume_format(bxml, fmt, sizeof(fmt));
    free(bxml);
    if (virStorageVolGetInfo(base, &info) < 0 || !(base_path = virStorageVolGetPath(base)) || fmt_rc) {
        perr_set(e, TTRPC_UNAVAILABLE, "reading volume %s: %s", image, verr_msg());
        goto out;
    }
    if (domxml_capacity(p->o->root_disk_gib > 0 ? (uint64_t)p->o->root_disk_gib : 10, info.capacity, &capacity)) {
        perr_set(e, TTRPC_INVALID_ARGUMENT, "LIBVIRT_ROOT_DISK_SIZE %lld GiB is too large",
                 (long long)p->o->root_disk_gib);
        goto out;
    }
    if (!(xml = domxml_volume_overlay(root_name, capacity, base_path, fmt)) ||
        !(rootv = virStorageVolCreateXML(pool, xml, 0)) || !(root_path = virStorageVolGetPath(rootv))) {
        perr_set(e, TTRPC_UNAVAILABLE, "creating volume %s: %s", root_name, xml ? verr_msg() : "out of memory");
        goto out;
    }
    free(xml);
    xml = NULL;
    if (op_cancelled(op))
        goto out;

    /* The cidata ISO, built in memory. */
    char why[256], iso_path[PATH_MAX];
    if (cidata_iso_build(op->name, op->userdata, op->userdata_len, &iso, &iso_len, why, sizeof(why))) {
        perr_set(e, TTRPC_INTERNAL, "%s", why);
        goto out;
    }
    if (iso_place(p, c, pool, op->name, iso, iso_len, iso_path, sizeof(iso_path), e))
        goto out;
    if (op_cancelled(op))
        goto out;

    struct domxml_marker mk = {.created_unix = (int64_t)time(NULL)};
    snprintf(mk.node, sizeof(mk.node), "%s", p->node_name);
    snprintf(mk.sandbox, sizeof(mk.sandbox), "%s", op->sandbox);
    snprintf(mk.pod, sizeof(mk.pod), "%s", op->pod);
    struct domxml_domain d = {
        .type = p->domtype,
        .arch = p->arch,
        .name = op->name,
        .vcpus = op->vcpus ? op->vcpus : (unsigned)p->o->cpu,
        .cpuset = p->o->cpuset,
        .memory_mib = op->memory_mib ? op->memory_mib : (unsigned)p->o->memory,
        .firmware = p->o->firmware,
        .machine = p->machine,
        .emulator = p->emulator,
        .root_path = root_path,
        .iso_path = iso_path,
        .network = p->o->network,
        .security = p->security,
        .sev_cbitpos = p->cbitpos,
        .sev_reduced_phys_bits = p->reduced_phys_bits,
        .marker = &mk,
    };
    if (!(xml = domxml_domain_build(&d, why, sizeof(why)))) {
        perr_set(e, TTRPC_INVALID_ARGUMENT, "%s", why);
        goto out;
    }
    if (!(dom = virDomainDefineXML(c, xml))) {
        perr_set(e, TTRPC_UNAVAILABLE, "defining domain %s: %s", op->name, verr_msg());
        goto out;
    }
    char uuid[VIR_UUID_STRING_BUFLEN];
    if (virDomainGetUUIDString(dom, uuid) < 0) {
        perr_set(e, TTRPC_UNAVAILABLE, "reading the UUID of %s: %s", op->name, verr_msg());
        goto out;
    }
    if (op_cancelled(op))
        goto out;
    if (p->domain_start(dom) < 0) {
        perr_set(e, TTRPC_UNAVAILABLE, "starting domain %s: %s%s", op->name, verr_msg(),
                 verr_code() == VIR_ERR_NO_NETWORK ? " (check LIBVIRT_NET)" : "");
        goto out;
    }
    snprintf(op->inst.id, sizeof(op->inst.id), "%s", uuid);
    log_info(LOG, "VM created: name=%s, uuid=%s", op->name, uuid);
    op->failed = false;
out:
    if (op->failed && made) {
        /* Roll back here: the core may never learn a UUID for what exists. */
        struct provider_error ignored;
        if (vm_delete(p, c, dom, op->name, &ignored))
            log_warn(LOG, "rolling back %s: %s", op->name, ignored.msg);
    }
    free(xml);
    free(base_path);
    free(root_path);
    cidata_iso_free(iso, iso_len);
    if (dom)
        virDomainFree(dom);
    if (rootv)
        virStorageVolFree(rootv);
    if (base)
        virStorageVolFree(base);
    if (pool)
        virStoragePoolFree(pool);
    virConnectClose(c);
}

/* Collects up to PROVIDER_IPS_MAX addresses from one source, IPv4 first. */
static int addrs_from(const struct provider *p, virDomainPtr dom, unsigned source, struct provider_instance *inst)
{
    virDomainInterfacePtr *ifs = NULL;
    int n = p->ifaddrs(dom, &ifs, source, 0);
    if (n < 0)
        return -1;
    for (int fam = 0; fam < 2; fam++)
        for (int i = 0; i < n; i++)
            for (unsigned k = 0; k < ifs[i]->naddrs; k++) {
                virDomainIPAddressPtr a = &ifs[i]->addrs[k];
                bool v4 = a->type == VIR_IP_ADDR_TYPE_IPV4;
                if ((fam == 0) != v4 || !a->addr || inst->n_ips >= PROVIDER_IPS_MAX)
                    continue;
                snprintf(inst->ips[inst->n_ips++], sizeof(inst->ips[0]), "%s", a->addr);
            }
    for (int i = 0; i < n; i++)
        virDomainInterfaceFree(ifs[i]);
    free(ifs);
    return 0;
}

static void poll_run(struct job *j)
{
    struct provider_op *op = (struct provider_op *)j;
    struct provider *p = op->p;
    virConnectPtr c = conn_get(p, &op->err);
    op->failed = true;
    op->transient = !c; /* libvirtd restarting: the next poll reconnects */
    if (!c)
        return;
    virDomainPtr dom = virDomainLookupByUUIDString(c, op->inst.id);
    int active = dom ? virDomainIsActive(dom) : -1;
    if (!dom) {
        virErrorPtr ve = virGetLastError();
        op->transient = !ve || ve->code != VIR_ERR_NO_DOMAIN;
        perr_set(&op->err, TTRPC_UNAVAILABLE, "domain %s (uuid=%s) disappeared while starting: %s", op->name,
                 op->inst.id, verr_msg());
    } else if (active != 1) {
        op->transient = active < 0; /* could not ask, as opposed to "not running" */
        perr_set(&op->err, TTRPC_UNAVAILABLE, "domain %s stopped before it got an address%s%s", op->name,
                 active < 0 ? ": " : "", active < 0 ? verr_msg() : "");
    } else {
        /* The network's DHCP leases first; a guest agent or the ARP table where there are none. */
        op->inst.n_ips = 0;
        static const unsigned sources[] = {VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
                                           VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
                                           VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP};
        for (size_t i = 0; i < 3 && op->inst.n_ips == 0; i++)
            addrs_from(p, dom, sources[i], &op->inst);
        op->failed = false;
    }
    if (dom)
        virDomainFree(dom);
    virConnectClose(c);
}

static void poll_done(struct job *j);

static void poll_fire(uv_timer_t *t)
{
    struct provider_op *op = t->data;
    op->job.run = poll_run;
    op->job.done = poll_done;
    op->inflight = true;
    if (job_submit(&op->job)) {
        op->inflight = false;
        op->failed = true;
        perr_set(&op->err, TTRPC_INTERNAL, "cannot queue work for %s", op->name);
        op_finish(op);
    }
}

static void poll_done(struct job *j)
{
    struct provider_op *op = (struct provider_op *)j;
    op->inflight = false;
    if (!op->failed && op->inst.n_ips) {
        log_info(LOG, "VM %s has address %s", op->name, op->inst.ips[0]);
        if (op->cbs.on_address) {
            /* The callback may cancel (the tunnel cannot be set up): counted as in flight, the
             * cancel only marks the op, which finishes here once, not under this frame. */
            op->inflight = true;
            op->cbs.on_address(op->arg, &op->inst);
            op->inflight = false;
        }
        if (op_cancelled(op))
            op->failed = true;
        op_finish(op);
        return;
    }
    uint64_t now = uv_now(op->p->loop);
    if (op->failed && op->transient && !op_cancelled(op) && (!op->deadline || now < op->deadline)) {
        /* libvirtd away for a moment (restarting, upgraded): the domain may be fine; look
         * again, for a minute at most. */
        if (!op->outage_since) {
            op->outage_since = now;
            log_warn(LOG, "VM %s: waiting for libvirtd to answer again (up to %d s): %s", op->name,
                     POLL_OUTAGE_MS / 1000, op->err.msg);
        }
        if (now - op->outage_since < POLL_OUTAGE_MS) {
            op->failed = false;
            uv_timer_start(op->timer, poll_fire, POLL_MS, 0);
            return;
        }
    } else if (!op->failed) {
        op->outage_since = 0;
    }
    if (!op->failed && op_cancelled(op))
        op->failed = true;
    if (!op->failed && op->deadline && now >= op->deadline) {
        perr_set(&op->err, TTRPC_DEADLINE_EXCEEDED, "Domain (uuid=%s) IP addresses not found before the StartVM "
                                                    "deadline (is the network %s handing out DHCP leases?)",
                 op->inst.id, op->p->o->network);
        op->failed = true;
    }
    if (op->failed) {
        op_finish(op); /* inst carries the UUID: the core deletes the domain */
        return;
    }
    uv_timer_start(op->timer, poll_fire, POLL_MS, 0);
}

static void create_done(struct job *j)
{
    struct provider_op *op = (struct provider_op *)j;
    op->inflight = false;
    if (op->failed) {
        op_finish(op);
        return;
    }
    op->started = true;
    poll_fire(op->timer); /* look at once: some networks answer immediately */
}

static struct provider_op *lv_create(struct provider *p, const struct provider_create_req *req,
                                     const struct provider_create_cbs *cbs, void *arg)
{
    struct provider_op *op = calloc(1, sizeof(*op));
    uv_timer_t *t = malloc(sizeof(*t));
    uint8_t *ud = malloc(req->userdata_len ? req->userdata_len : 1);
    if (!op || !t || !ud) {
        free(op);
        free(t);
        free(ud);
        return NULL;
    }
    op->job = (struct job){.p = p, .run = create_run, .done = create_done, .drop = op_drop};
    op->p = p;
    op->cbs = *cbs;
    op->arg = arg;
    snprintf(op->name, sizeof(op->name), "%s", req->instance_name);
    snprintf(op->sandbox, sizeof(op->sandbox), "%s", req->sandbox_id);
    snprintf(op->pod, sizeof(op->pod), "%s/%s", req->pod->pod_namespace, req->pod->pod_name);
    snprintf(op->image, sizeof(op->image), "%s", req->pod->image ? req->pod->image : "");
    op->vcpus = req->pod->vcpus;
    op->memory_mib = req->pod->memory_mib;
    memcpy(ud, req->userdata, req->userdata_len);
    op->userdata = ud;
    op->userdata_len = req->userdata_len;
    op->deadline = req->deadline;
    snprintf(op->inst.name, sizeof(op->inst.name), "%s", req->instance_name);
    snprintf(op->inst.sandbox_id, sizeof(op->inst.sandbox_id), "%s", req->sandbox_id);
    uv_timer_init(p->loop, t);
    t->data = op;
    op->timer = t;
    op->inflight = true;
    if (job_submit(&op->job)) {
        op->timer = NULL;
        uv_close((uv_handle_t *)t, timer_closed);
        free(ud);
        free(op);
        return NULL;
    }
    LIST_INSERT_HEAD(&p->ops, op, link);
    return op;
}

static void lv_cancel(struct provider_op *op)
{
    atomic_store(&op->cancelled, true);
    if (op->started && !op->inflight) {
        /* Waiting for the next poll: answer now. */
        uv_timer_stop(op->timer);
        op->failed = true;
        op_cancelled(op);
        op_finish(op);
    }
}

/* ------------------------------------------------------------------ delete and list */

struct lv_delete {
    struct job job;
    char name[PROVIDER_NAME_MAX], id[PROVIDER_ID_MAX];
    provider_delete_cb cb;
    void *arg;
    struct provider_error err;
    bool failed;
};

static void delete_run(struct job *j)
{
    struct lv_delete *dl = (struct lv_delete *)j;
    struct provider *p = j->p;
    virConnectPtr c = conn_get(p, &dl->err);
    dl->failed = true;
    if (!c)
        return;
    virDomainPtr dom = NULL;
    if (dl->id[0] && !(dom = virDomainLookupByUUIDString(c, dl->id)) && verr_code() != VIR_ERR_NO_DOMAIN) {
        perr_set(&dl->err, verr_code() == VIR_ERR_INVALID_ARG ? TTRPC_INVALID_ARGUMENT : TTRPC_UNAVAILABLE,
                 "failed to lookup domain by UUID %s: %s", dl->id, verr_msg());
        goto out;
    }
    if (!dom && dl->name[0] && !(dom = virDomainLookupByName(c, dl->name)) && verr_code() != VIR_ERR_NO_DOMAIN) {
        perr_set(&dl->err, TTRPC_UNAVAILABLE, "looking up domain %s: %s", dl->name, verr_msg());
        goto out;
    }
    if (dom && !dl->name[0]) {
        const char *n = virDomainGetName(dom);
        snprintf(dl->name, sizeof(dl->name), "%s", n ? n : "");
    }
    if (!dl->name[0]) {
        dl->failed = false; /* nothing by that UUID, and no name to look for volumes by */
        goto out;
    }
    if (vm_delete(p, c, dom, dl->name, &dl->err) == 0) {
        dl->failed = false;
        log_info(LOG, "deleted an instance %s (%s)", dl->name, dl->id[0] ? dl->id : "no uuid");
    }
out:
    if (dom)
        virDomainFree(dom);
    virConnectClose(c);
}

static void delete_done(struct job *j)
{
    struct lv_delete *dl = (struct lv_delete *)j;
    struct provider_error err = dl->err;
    bool failed = dl->failed;
    provider_delete_cb cb = dl->cb;
    void *arg = dl->arg;
    free(dl);
    cb(arg, failed ? &err : NULL);
}

static void job_free(struct job *j)
{
    free(j);
}

static void lv_destroy(struct provider *p, const char *name, const char *id, provider_delete_cb cb, void *arg)
{
    struct lv_delete *dl = calloc(1, sizeof(*dl));
    struct provider_error e = {.code = TTRPC_INTERNAL};
    if (!dl) {
        snprintf(e.msg, sizeof(e.msg), "out of memory");
        cb(arg, &e);
        return;
    }
    dl->job = (struct job){.p = p, .run = delete_run, .done = delete_done, .drop = job_free};
    snprintf(dl->name, sizeof(dl->name), "%s", name ? name : "");
    snprintf(dl->id, sizeof(dl->id), "%s", id ? id : "");
    dl->cb = cb;
    dl->arg = arg;
    if (job_submit(&dl->job)) {
        free(dl);
        snprintf(e.msg, sizeof(e.msg), "cannot queue the deletion");
        cb(arg, &e);
    }
}

struct lv_list {
    struct job job;
    provider_list_cb cb;
    void *arg;
    struct provider_instance *v;
    size_t n;
    struct provider_error err;
    bool failed;
};

static void list_run(struct job *j)
{
    struct lv_list *ls = (struct lv_list *)j;
    struct provider *p = j->p;
    virConnectPtr c = conn_get(p, &ls->err);
    ls->failed = true;
    if (!c)
        return;
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(c, &doms, VIR_CONNECT_LIST_DOMAINS_PERSISTENT);
    if (n < 0) {
        perr_set(&ls->err, TTRPC_UNAVAILABLE, "listing domains: %s", verr_msg());
        virConnectClose(c);
        return;
    }
    ls->v = calloc(n ? (size_t)n : 1, sizeof(*ls->v));
    for (int i = 0; i < n; i++) {
        char *md = ls->v ? virDomainGetMetadata(doms[i], VIR_DOMAIN_METADATA_ELEMENT, DOMXML_MARKER_URI, 0) : NULL;
        struct domxml_marker mk;
        if (md && domxml_marker_parse(md, &mk) == 0 && strcmp(mk.node, p->node_name) == 0) {
            struct provider_instance *in = &ls->v[ls->n];
            const char *name = virDomainGetName(doms[i]);
            if (name && virDomainGetUUIDString(doms[i], in->id) == 0) {
                snprintf(in->name, sizeof(in->name), "%s", name);
                snprintf(in->sandbox_id, sizeof(in->sandbox_id), "%s", mk.sandbox);
                in->created_unix = mk.created_unix;
                ls->n++;
            }
        }
        free(md);
        virDomainFree(doms[i]);
    }
    free(doms);
    ls->failed = !ls->v;
    if (ls->failed)
        perr_set(&ls->err, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
    virConnectClose(c);
}

static void list_free(struct job *j)
{
    free(((struct lv_list *)j)->v);
    free(j);
}

static void list_done(struct job *j)
{
    struct lv_list *ls = (struct lv_list *)j;
    ls->cb(ls->arg, ls->failed ? &ls->err : NULL, ls->v, ls->n);
    list_free(j);
}

static void lv_list(struct provider *p, provider_list_cb cb, void *arg)
{
    struct lv_list *ls = calloc(1, sizeof(*ls));
    struct provider_error e = {.code = TTRPC_INTERNAL};
    if (!ls) {
        snprintf(e.msg, sizeof(e.msg), "out of memory");
        cb(arg, &e, NULL, 0);
        return;
    }
    ls->job = (struct job){.p = p, .run = list_run, .done = list_done, .drop = list_free};
    ls->cb = cb;
    ls->arg = arg;
    if (job_submit(&ls->job)) {
        free(ls);
        snprintf(e.msg, sizeof(e.msg), "cannot queue the listing");
        cb(arg, &e, NULL, 0);
    }
}

/* ------------------------------------------------------------------ options, init, shutdown */

static void *lv_options_new(struct config_registry *r)
{
    struct lv_options *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    int rc = 0;
    rc |= config_registry_add(r, "uri", "LIBVIRT_URI", CONFIG_STRING, "qemu+ssh://root@192.168.122.1/system?no_verify=1",
                              "libvirt connection URI", &o->uri);
    rc |= config_registry_add(r, "pool-name", "LIBVIRT_POOL", CONFIG_STRING, "default",
                              "storage pool holding the pod VM image, overlays and ISOs", &o->pool);
    rc |= config_registry_add(r, "network-name", "LIBVIRT_NET", CONFIG_STRING, "default",
                              "libvirt network the pod VM NIC attaches to", &o->network);
    rc |= config_registry_add(r, "vol-name", "LIBVIRT_VOL_NAME", CONFIG_STRING, "podvm-base.qcow2",
                              "pod VM image volume (name in the pool, or a volume key)", &o->vol_name);
    rc |= config_registry_add(r, "launch-security", "LIBVIRT_LAUNCH_SECURITY", CONFIG_STRING, "",
                              "s390-pv, sev, sev-snp or tdx; empty: s390-pv on s390x hosts (unless DISABLECVM)",
                              &o->launch_security);
    rc |= config_registry_add(r, "firmware", "LIBVIRT_EFI_FIRMWARE", CONFIG_STRING, "/usr/share/OVMF/OVMF_CODE_4M.fd",
                              "x86_64 UEFI loader; empty: legacy BIOS", &o->firmware);
    rc |= config_registry_add(r, "cpu", "LIBVIRT_CPU", CONFIG_INT, "2", "vCPUs when the pod asks for none", &o->cpu);
    rc |= config_registry_add(r, "memory", "LIBVIRT_MEMORY", CONFIG_INT, "8192", "MiB when the pod asks for none",
                              &o->memory);
    rc |= config_registry_add(r, "cpuset", "LIBVIRT_CPUSET", CONFIG_STRING, "", "host CPUs for the vCPUs, e.g. 0-3",
                              &o->cpuset);
    rc |= config_registry_add(r, "root-disk-size", "LIBVIRT_ROOT_DISK_SIZE", CONFIG_INT, "10",
                              "root disk GiB (never smaller than the image)", &o->root_disk_gib);
    rc |= config_registry_add(r, "data-dir", NULL, CONFIG_STRING, "/var/lib/libvirt/images",
                              "local directory for cidata ISOs when the connection cannot upload volumes",
                              &o->data_dir);
    rc |= config_registry_add(r, "disable-cvm", "DISABLECVM", CONFIG_BOOL, "true", "never request launch security",
                              &o->disable_cvm);
    if (rc) {
        free(o);
        return NULL;
    }
    return o;
}

static void lv_options_free(void *o)
{
    free(o);
}

static int options_check(const struct lv_options *o, struct provider_error *e)
{
    const char *bad = !*o->uri ? "URI is empty (LIBVIRT_URI)"
                      : !*o->pool ? "PoolName is empty (LIBVIRT_POOL)"
                      : !*o->network ? "NetworkName is empty (LIBVIRT_NET)"
                      : !*o->vol_name ? "VolName is empty (LIBVIRT_VOL_NAME)"
                      : o->cpu <= 0 || o->cpu > 4096 ? "CPU must be greater than zero (LIBVIRT_CPU)"
                      : o->memory <= 0 || o->memory > (1 << 24) ? "Memory must be greater than zero (LIBVIRT_MEMORY)"
                      : o->root_disk_gib < 0 ? "LIBVIRT_ROOT_DISK_SIZE must not be negative"
                      : NULL;
    if (bad) {
        perr_set(e, TTRPC_INVALID_ARGUMENT, "%s", bad);
        return -1;
    }
    if (domxml_cpuset_check(o->cpuset)) {
        perr_set(e, TTRPC_INVALID_ARGUMENT, "invalid CPUSet format: %s (expected format: e.g. 0-3 or 0,2,4-7; LIBVIRT_CPUSET)",
                 o->cpuset);
        return -1;
    }
    enum domxml_security s;
    if (domxml_security_parse(o->launch_security, &s)) {
        perr_set(e, TTRPC_INVALID_ARGUMENT,
                 "[%s] is not a known launch security setting (LIBVIRT_LAUNCH_SECURITY: s390-pv, sev, sev-snp, tdx)",
                 o->launch_security);
        return -1;
    }
    return 0;
}

/* Node model, capabilities and launch security, decided once. */
static int host_probe(struct provider *p, virConnectPtr c, struct provider_error *e)
{
    virNodeInfo ni;
    if (virNodeGetInfo(c, &ni) < 0) {
        perr_set(e, TTRPC_UNAVAILABLE, "reading the libvirt node info: %s", verr_msg());
        return -1;
    }
    p->arch = strcmp(ni.model, "s390x") == 0 ? DOMXML_S390X : strcmp(ni.model, "aarch64") == 0 ? DOMXML_AARCH64
                                                                                               : DOMXML_X86_64;
    const char *machine = p->arch == DOMXML_S390X ? "s390-ccw-virtio" : p->arch == DOMXML_AARCH64 ? "virt" : NULL;
    char *caps = virConnectGetCapabilities(c);
    char why[256];
    int rc = caps ? domxml_caps_guest(caps, domxml_arch_name(p->arch), machine, p->domtype, sizeof(p->domtype),
                                      p->machine, sizeof(p->machine), p->emulator, sizeof(p->emulator), why,
                                      sizeof(why))
                  : -1;
    free(caps);
    if (rc) {
        perr_set(e, TTRPC_UNAVAILABLE, "%s", caps ? why : verr_msg());
        return -1;
    }
    if (p->arch == DOMXML_X86_64)
        p->emulator[0] = '\0'; /* libvirt picks the x86 emulator itself */
    p->security = DOMXML_SEC_NONE;
    if (!p->o->disable_cvm) {
        domxml_security_parse(p->o->launch_security, &p->security);
        if (!*p->o->launch_security && p->arch == DOMXML_S390X)
            p->security = DOMXML_SEC_S390PV;
    }
    if ((p->security == DOMXML_SEC_S390PV && p->arch != DOMXML_S390X) ||
        (p->security > DOMXML_SEC_S390PV && p->arch != DOMXML_X86_64)) {
        perr_set(e, TTRPC_INVALID_ARGUMENT, "launch Security type is not supported for this domain: %s on %s "
                                            "(LIBVIRT_LAUNCH_SECURITY, DISABLECVM)",
                 domxml_security_name(p->security), domxml_arch_name(p->arch));
        return -1;
    }
    if (p->security > DOMXML_SEC_S390PV) {
        char *dc = virConnectGetDomainCapabilities(c, NULL, "x86_64", "q35", p->domtype, 0);
        rc = dc ? domxml_domcaps_security(dc, p->security, &p->cbitpos, &p->reduced_phys_bits, why, sizeof(why)) : -1;
        free(dc);
        if (rc) {
            perr_set(e, TTRPC_INVALID_ARGUMENT, "LIBVIRT_LAUNCH_SECURITY=%s: %s", domxml_security_name(p->security),
                     dc ? why : verr_msg());
            return -1;
        }
    }
    return 0;
}

static int lv_init(uv_loop_t *loop, struct turn *turn, const struct config *cfg, void *opts, struct provider **out,
                   struct provider_error *e)
{
    (void)turn; /* nothing of this provider comes in bursts the budget would spread */
    struct lv_options *o = opts;
    if (options_check(o, e))
        return -1;
    pthread_once(&libvirt_once, libvirt_setup);
    if (libvirt_once_rc) {
        perr_set(e, TTRPC_INTERNAL, "initialising libvirt: %s", verr_msg());
        return -1;
    }
    if (cidata_library_init()) {
        perr_set(e, TTRPC_INTERNAL, "initialising libisofs");
        return -1;
    }
    struct provider *p = calloc(1, sizeof(*p));
    if (!p) {
        cidata_library_finish();
        perr_set(e, TTRPC_INTERNAL, "out of memory");
        return -1;
    }
    p->loop = loop;
    p->o = o;
    p->ifaddrs = virDomainInterfaceAddresses;
    p->domain_start = virDomainCreate;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->reach_mu, NULL);
    if (cfg->node_name && *cfg->node_name)
        snprintf(p->node_name, sizeof(p->node_name), "%s", cfg->node_name);
    else if (gethostname(p->node_name, sizeof(p->node_name) - 1))
        snprintf(p->node_name, sizeof(p->node_name), "localhost");
    /* A URI with a host part (qemu+ssh://host/...) reaches another machine. */
    const char *hp = strstr(o->uri, "://");
    p->remote = hp && hp[3] && hp[3] != '/';
    if (uv_thread_create(&p->evthread, ev_thread, p) == 0)
        p->evrunning = true;
    virConnectPtr c = conn_get(p, e);
    virStoragePoolPtr pool = c ? virStoragePoolLookupByName(c, o->pool) : NULL;
    if (c && !pool)
        perr_set(e, TTRPC_UNAVAILABLE, "can't find storage pool \"%s\" (LIBVIRT_POOL): %s", o->pool, verr_msg());
    /* Upstream finds a wrong LIBVIRT_NET only when the first VM starts; say it now. */
    virNetworkPtr net = pool ? virNetworkLookupByName(c, o->network) : NULL;
    if (pool && !net)
        perr_set(e, TTRPC_UNAVAILABLE, "can't find network \"%s\" (LIBVIRT_NET): %s", o->network, verr_msg());
    int rc = net ? host_probe(p, c, e) : -1;
    if (net)
        virNetworkFree(net);
    if (pool)
        virStoragePoolFree(pool);
    if (c)
        virConnectClose(c);
    if (rc) {
        provider_free(p);
        return -1;
    }
    log_info(LOG, "Created libvirt connection: %s, pool %s, network %s, image %s, %s guests of type %s, launch "
                  "security %s, node %s",
             o->uri, o->pool, o->network, o->vol_name, domxml_arch_name(p->arch), p->domtype,
             domxml_security_name(p->security), p->node_name);
    *out = p;
    return 0;
}

static void provider_free(struct provider *p)
{
    pthread_mutex_lock(&p->mu);
    if (p->conn) {
        int left = virConnectClose(p->conn);
        if (left > 0)
            log_warn(LOG, "libvirt connection still has %d remaining references after close", left);
        p->conn = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (p->evrunning) {
        atomic_store(&p->evstop, true);
        if (virEventAddTimeout(0, ev_wake, NULL, NULL) >= 0)
            uv_thread_join(&p->evthread);
        /* else the thread stays blocked in libvirt's loop; the process is ending anyway */
    }
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->reach_mu);
    cidata_library_finish();
    free(p);
}

static void lv_shutdown(struct provider *p)
{
    p->closing = true;
    /* Creates waiting on their timer are dropped now; those in the pool when they return. */
    for (struct provider_op *op = LIST_FIRST(&p->ops), *next; op; op = next) {
        next = LIST_NEXT(op, link);
        if (!op->inflight)
            op_free(op);
    }
    if (p->pending == 0)
        provider_free(p);
}

const struct provider_ops libvirt_provider_ops = {
    .name = "libvirt",
    .options_new = lv_options_new,
    .options_free = lv_options_free,
    .init = lv_init,
    .create = lv_create,
    .cancel = lv_cancel,
    .destroy = lv_destroy,
    .list = lv_list,
    .shutdown = lv_shutdown,
    .unreachable = lv_unreachable,
};
