/* gc: orphan garbage collection (see gc.h). */
#include "gc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "daemon.h"
#include "hypervisor.h"
#include "log.h"
#include "sandbox.h"

struct gc_check {
    uv_fs_t req;
    struct gc *gc;
    struct provider_instance inst;
    bool deleting;
    LIST_ENTRY(gc_check) link; /* on g->checks */
};

/* The namespace check of one pass: paths copied from the running sandboxes, statted in the
 * thread pool, judged on the loop. */
struct gc_netns_item {
    char id[SANDBOX_ID_MAX + 1];
    char *path;
    bool gone;
};

struct gc_netns_job {
    uv_work_t req;
    struct gc *gc;
    size_t n;
    struct gc_netns_item items[];
};

struct gc {
    struct daemon *d;
    uv_timer_t timer;
    bool timer_open;
    bool pass_running;
    bool netns_running;
    size_t in_flight;
    LIST_HEAD(, gc_check) checks;
};

bool gc_candidate(const struct provider_instance *inst, bool known, int64_t now_unix)
{
    if (!inst->sandbox_id[0] || known)
        return false;
    return inst->created_unix <= 0 || now_unix - inst->created_unix >= GC_GRACE_S;
}

static void check_free(struct gc_check *c)
{
    LIST_REMOVE(c, link);
    uv_fs_req_cleanup(&c->req);
    free(c);
}

static void check_done(struct gc_check *c)
{
    struct gc *g = c->gc;
    check_free(c);
    if (--g->in_flight == 0)
        g->pass_running = false;
}

static void gc_deleted(void *arg, const struct provider_error *err)
{
    struct gc_check *c = arg;
    char e[600];
    if (c->gc->d->shutting_down)
        return;
    if (err)
        c->gc->d->metrics.gc_failed++;
    else
        c->gc->d->metrics.gc_deleted++;
    if (err)
        log_warn("gc", "deleting an orphan pod VM failed; the next pass retries vm=%s sandbox=%s error=%s",
                 c->inst.name, c->inst.sandbox_id, log_value(e, sizeof(e), err->msg));
    else
        log_info("gc", "deleted orphan instance %s vm=%s sandbox=%s", c->inst.name, c->inst.name, c->inst.sandbox_id);
    check_done(c);
}

static void gc_statted(uv_fs_t *req)
{
    struct gc_check *c = req->data;
    struct daemon *d = c->gc->d;
    if (d->shutting_down) {
        check_done(c);
        return;
    }
    /* A record on disk that our store does not hold was written by another daemon instance on
     * this node (rolling update); an instance the store learnt of meanwhile is ours. */
    if (req->result == 0 || sandbox_store_get(&d->store, c->inst.sandbox_id)) {
        check_done(c);
        return;
    }
    /* Only a record that is certainly absent makes an orphan: a stat that failed otherwise
     * (EACCES, EIO, ELOOP) says nothing, and a wrong delete cannot be undone. */
    if (req->result != UV_ENOENT) {
        log_warn("gc", "instance %s: cannot tell whether sandbox %s has a record (%s); not deleting it, the next "
                 "pass looks again", c->inst.name, c->inst.sandbox_id, uv_strerror((int)req->result));
        check_done(c);
        return;
    }
    log_warn("gc", "instance %s (%s) carries this node's marker but no sandbox knows sandbox %s: deleting it",
             c->inst.name, c->inst.id, c->inst.sandbox_id);
    c->deleting = true;
    d->pops->destroy(d->prov, c->inst.name, c->inst.id, gc_deleted, c);
}

static void gc_listed(void *arg, const struct provider_error *err, const struct provider_instance *v, size_t n)
{
    struct gc *g = arg;
    struct daemon *d = g->d;
    if (d->shutting_down)
        return;
    if (err) {
        log_warn("gc", "listing instances failed: %s; the next pass retries", err->msg);
        g->pass_running = false;
        return;
    }
    int64_t now = (int64_t)time(NULL);
    g->in_flight = 1; /* held by this function until every candidate is queued */
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        if (!gc_candidate(&v[i], sandbox_store_get(&d->store, v[i].sandbox_id) != NULL, now) ||
            sandbox_id_check(v[i].sandbox_id, NULL, 0) ||
            sandbox_path(path, sizeof(path), d->cfg.pods_dir, v[i].sandbox_id, SANDBOX_STATE_FILE))
            continue;
        struct gc_check *c = calloc(1, sizeof(*c));
        if (!c)
            break;
        c->gc = g;
        c->inst = v[i];
        c->req.data = c;
        LIST_INSERT_HEAD(&g->checks, c, link);
        g->in_flight++;
        if (uv_fs_stat(d->loop, &c->req, path, gc_statted)) {
            g->in_flight--;
            check_free(c);
        }
    }
    if (--g->in_flight == 0)
        g->pass_running = false;
}

static void netns_work(uv_work_t *req)
{
    struct gc_netns_job *j = req->data;
    for (size_t i = 0; i < j->n; i++)
        j->items[i].gone = sandbox_netns_path_gone(j->items[i].path);
}

/* Two passes in a row, a whole interval apart: containerd removes a pod's namespace just
 * before the shim's StopVM, and that StopVM must not be overtaken. */
static void netns_done(uv_work_t *req, int status)
{
    struct gc_netns_job *j = req->data;
    struct daemon *d = j->gc->d;
    j->gc->netns_running = false;
    for (size_t i = 0; i < j->n; i++) {
        struct sandbox *sb = status || d->shutting_down ? NULL : sandbox_store_get(&d->store, j->items[i].id);
        if (sb && sb->phase == SANDBOX_RUNNING && !sb->op && sb->netns_path && !strcmp(sb->netns_path, j->items[i].path)) {
            if (!j->items[i].gone)
                sb->netns_gone_passes = 0;
            else if (++sb->netns_gone_passes >= 2)
                hypervisor_stop_lost(d, sb, "its pod's network namespace has been gone for a whole GC interval "
                                            "without a StopVM (the kata shim is gone)");
        }
        free(j->items[i].path);
    }
    free(j);
}

struct netns_collect {
    struct gc_netns_job *j;
    size_t cap;
};

static void netns_collect(struct sandbox *sb, void *arg)
{
    struct netns_collect *c = arg;
    if (!c->j || c->j->n == c->cap || sb->phase != SANDBOX_RUNNING || sb->op || !sb->vni || !sb->netns_path ||
        !sb->netns_path[0])
        return;
    struct gc_netns_item *it = &c->j->items[c->j->n];
    if (!(it->path = strdup(sb->netns_path)))
        return;
    snprintf(it->id, sizeof(it->id), "%s", sb->id);
    it->gone = false;
    c->j->n++;
}

static void netns_pass(struct gc *g)
{
    struct daemon *d = g->d;
    if (g->netns_running || !d->store.count)
        return;
    struct netns_collect c = {calloc(1, sizeof(*c.j) + d->store.count * sizeof(c.j->items[0])), d->store.count};
    if (!c.j)
        return;
    sandbox_store_foreach(&d->store, netns_collect, &c);
    c.j->gc = g;
    c.j->req.data = c.j;
    if (!c.j->n || uv_queue_work(d->loop, &c.j->req, netns_work, netns_done)) {
        for (size_t i = 0; i < c.j->n; i++)
            free(c.j->items[i].path);
        free(c.j);
        return;
    }
    g->netns_running = true;
}

static void gc_tick(uv_timer_t *t)
{
    struct gc *g = t->data;
    if (g->d->shutting_down)
        return;
    netns_pass(g);
    if (g->pass_running || !g->d->pops->list)
        return;
    g->pass_running = true;
    g->d->pops->list(g->d->prov, gc_listed, g);
}

int gc_start(struct daemon *d)
{
    struct gc *g = calloc(1, sizeof(*g));
    if (!g)
        return -1;
    g->d = d;
    uv_timer_init(d->loop, &g->timer);
    g->timer.data = g;
    g->timer_open = true;
    d->gc = g;
    uint64_t every_ms = d->cfg.gc_interval_ns > 0 ? (uint64_t)(d->cfg.gc_interval_ns / 1000000) : GC_INTERVAL_MS;
    return uv_timer_start(&g->timer, gc_tick, 0, every_ms);
}

void gc_stop(struct daemon *d)
{
    struct gc *g = d->gc;
    if (g && g->timer_open) {
        uv_close((uv_handle_t *)&g->timer, NULL);
        g->timer_open = false;
    }
}

void gc_free(struct daemon *d)
{
    struct gc *g = d->gc;
    if (!g)
        return;
    struct gc_check *c;
    while ((c = LIST_FIRST(&g->checks)))
        check_free(c);
    free(g);
    d->gc = NULL;
}
