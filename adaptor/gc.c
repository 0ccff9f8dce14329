/* gc: orphan garbage collection (see gc.h). */
#include "gc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "log.h"
#include "sandbox.h"

struct gc_check {
    uv_fs_t req;
    struct gc *gc;
    struct provider_instance inst;
    bool deleting;
    struct gc_check *next, *prev;
};

struct gc {
    struct daemon *d;
    uv_timer_t timer;
    bool timer_open;
    bool pass_running;
    size_t in_flight;
    struct gc_check *checks;
};

bool gc_candidate(const struct provider_instance *inst, bool known, int64_t now_unix)
{
    if (!inst->sandbox_id[0] || known)
        return false;
    return inst->created_unix <= 0 || now_unix - inst->created_unix >= GC_GRACE_S;
}

static void check_free(struct gc_check *c)
{
    struct gc *g = c->gc;
    if (c->prev)
        c->prev->next = c->next;
    else
        g->checks = c->next;
    if (c->next)
        c->next->prev = c->prev;
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
        c->next = g->checks;
        if (g->checks)
            g->checks->prev = c;
        g->checks = c;
        g->in_flight++;
        if (uv_fs_stat(d->loop, &c->req, path, gc_statted)) {
            g->in_flight--;
            check_free(c);
        }
    }
    if (--g->in_flight == 0)
        g->pass_running = false;
}

static void gc_tick(uv_timer_t *t)
{
    struct gc *g = t->data;
    if (g->pass_running || g->d->shutting_down || !g->d->pops->list)
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
    return uv_timer_start(&g->timer, gc_tick, 0, GC_INTERVAL_MS);
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
    while (g->checks)
        check_free(g->checks);
    free(g);
    d->gc = NULL;
}
