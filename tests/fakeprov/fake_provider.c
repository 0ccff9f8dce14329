#include "fake_provider.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fake_options {
    const char *dir;
    int64_t create_delay_ns;
    bool create_fail;
    int64_t delete_fail_count;
    int64_t delete_delay_ns;
    int64_t userdata_limit;
    const char *ip;
    bool address_early;
};

struct provider_op {
    uv_timer_t timer; /* first: recovered from the handle in callbacks */
    struct provider *p;
    struct provider_instance inst;
    struct provider_create_cbs cbs;
    void *arg;
    bool cancelled, addressed;
    struct provider_op *next, *prev;
};

struct fake_delete {
    uv_timer_t timer;
    struct provider *p;
    provider_delete_cb cb;
    void *arg;
    bool fail;
    struct fake_delete *next, *prev;
};

struct provider {
    uv_loop_t *loop;
    struct fake_options *o;
    int64_t deletes_to_fail;
    unsigned seq;
    struct provider_op *ops;
    struct fake_delete *dels;
};

static void *fake_options_new(struct config_registry *reg)
{
    struct fake_options *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    int rc = config_registry_add(reg, "fake-dir", "FAKE_CLOUD_DIR", CONFIG_STRING, "", "directory holding fake instances", &o->dir);
    rc |= config_registry_add(reg, "fake-create-delay", NULL, CONFIG_DURATION, "0s", "time a create takes", &o->create_delay_ns);
    rc |= config_registry_add(reg, "fake-create-fail", NULL, CONFIG_BOOL, "false", "creates fail after the delay", &o->create_fail);
    rc |= config_registry_add(reg, "fake-delete-fail-count", NULL, CONFIG_INT, "0", "the first N deletes fail", &o->delete_fail_count);
    rc |= config_registry_add(reg, "fake-delete-delay", NULL, CONFIG_DURATION, "0s", "time a delete takes", &o->delete_delay_ns);
    rc |= config_registry_add(reg, "fake-address-early", NULL, CONFIG_BOOL, "false",
                              "report the address at once, before the create delay ends (as clouds do)", &o->address_early);
    rc |= config_registry_add(reg, "fake-ip", NULL, CONFIG_STRING, "127.0.0.1",
                              "address every instance gets (the test's stand-in forwarder listens there)", &o->ip);
    rc |= config_registry_add(reg, "fake-userdata-limit", NULL, CONFIG_INT, "0", "most bytes of base64 user-data accepted (0: any)", &o->userdata_limit);
    if (rc) {
        free(o);
        return NULL;
    }
    return o;
}

static void fake_options_free(void *o)
{
    free(o);
}

static int fake_init(uv_loop_t *loop, struct turn *turn, const struct config *cfg, void *opts, struct provider **out,
                     struct provider_error *err)
{
    (void)turn; /* nothing of this provider comes in bursts the budget would spread */
    (void)cfg;
    struct fake_options *o = opts;
    if (!*o->dir || (mkdir(o->dir, 0700) && errno != EEXIST)) {
        err->code = TTRPC_INVALID_ARGUMENT;
        snprintf(err->msg, sizeof(err->msg), "FAKE_CLOUD_DIR (-fake-dir): %s", *o->dir ? strerror(errno) : "not set");
        return -1;
    }
    struct provider *p = calloc(1, sizeof(*p));
    if (!p)
        return -1;
    p->loop = loop;
    p->o = o;
    p->deletes_to_fail = o->delete_fail_count;
    *out = p;
    return 0;
}

/* The user-data an instance was created with is kept beside it as <name>.userdata. */
#define USERDATA_SUFFIX ".userdata"

static int inst_path(const struct provider *p, const char *name, const char *suffix, char *out, size_t len)
{
    if (!*name || strchr(name, '/') || name[0] == '.')
        return -1;
    int n = snprintf(out, len, "%s/%s%s", p->o->dir, name, suffix);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void file_put(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w <= 0)
            break;
        p += w;
        len -= (size_t)w;
    }
    close(fd);
}

static void op_closed(uv_handle_t *h)
{
    free(h);
}

static void op_unlink(struct provider_op *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        op->p->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
}

static void create_fire(uv_timer_t *t)
{
    struct provider_op *op = (struct provider_op *)t;
    if (op->p->o->address_early && !op->addressed && !op->cancelled) {
        op->addressed = true;
        if (op->cbs.on_address)
            op->cbs.on_address(op->arg, &op->inst);
        if (!op->cancelled)
            uv_timer_start(t, create_fire, (uint64_t)(op->p->o->create_delay_ns / 1000000), 0);
        return;
    }
    op_unlink(op);
    struct provider_error e = {0};
    const struct provider_error *err = NULL;
    if (op->cancelled) {
        e.code = TTRPC_CANCELED;
        snprintf(e.msg, sizeof(e.msg), "fake: create canceled");
        err = &e;
    } else if (op->p->o->create_fail) {
        e.code = TTRPC_UNKNOWN;
        snprintf(e.msg, sizeof(e.msg), "fake: injected create failure");
        err = &e;
    }
    op->cbs.on_done(op->arg, err, &op->inst);
    uv_close((uv_handle_t *)t, op_closed);
}

static struct provider_op *fake_create(struct provider *p, const struct provider_create_req *req,
                                       const struct provider_create_cbs *cbs, void *arg)
{
    struct provider_op *op = calloc(1, sizeof(*op));
    if (!op)
        abort(); /* test double: out of memory is not a case worth simulating */
    op->p = p;
    op->cbs = *cbs;
    op->arg = arg;
    snprintf(op->inst.name, sizeof(op->inst.name), "%s", req->instance_name);
    snprintf(op->inst.id, sizeof(op->inst.id), "fake-%s", req->instance_name);
    snprintf(op->inst.sandbox_id, sizeof(op->inst.sandbox_id), "%s", req->sandbox_id);
    snprintf(op->inst.ips[0], sizeof(op->inst.ips[0]), "%s", p->o->ip);
    op->inst.n_ips = 1;
    char path[4096], rec[1024];
    if (!inst_path(p, req->instance_name, USERDATA_SUFFIX, path, sizeof(path)))
        file_put(path, req->userdata, req->userdata_len);
    if (!inst_path(p, req->instance_name, "", path, sizeof(path))) {
        int n = snprintf(rec, sizeof(rec), "{\"id\":\"%s\",\"name\":\"%s\",\"sandbox\":\"%s\"}\n", op->inst.id,
                         op->inst.name, req->sandbox_id);
        file_put(path, rec, n > 0 && (size_t)n < sizeof(rec) ? (size_t)n : 0);
    }
    uv_timer_init(p->loop, &op->timer);
    op->next = p->ops;
    if (p->ops)
        p->ops->prev = op;
    p->ops = op;
    uv_timer_start(&op->timer, create_fire, p->o->address_early ? 0 : (uint64_t)(p->o->create_delay_ns / 1000000), 0);
    return op;
}

static void fake_cancel(struct provider_op *op)
{
    op->cancelled = true;
    uv_timer_start(&op->timer, create_fire, 0, 0);
}

static void del_unlink(struct fake_delete *fd)
{
    if (fd->prev)
        fd->prev->next = fd->next;
    else
        fd->p->dels = fd->next;
    if (fd->next)
        fd->next->prev = fd->prev;
}

static void delete_fire(uv_timer_t *t)
{
    struct fake_delete *fd = (struct fake_delete *)t;
    del_unlink(fd);
    struct provider_error e = {.code = TTRPC_UNAVAILABLE};
    snprintf(e.msg, sizeof(e.msg), "fake: injected delete failure");
    fd->cb(fd->arg, fd->fail ? &e : NULL);
    uv_close((uv_handle_t *)t, op_closed);
}

static void fake_destroy(struct provider *p, const char *name, const char *id, provider_delete_cb cb, void *arg)
{
    (void)id;
    struct fake_delete *fd = calloc(1, sizeof(*fd));
    if (!fd)
        abort();
    fd->p = p;
    fd->cb = cb;
    fd->arg = arg;
    if (p->deletes_to_fail > 0) {
        p->deletes_to_fail--;
        fd->fail = true;
    } else {
        char path[4096];
        if (!inst_path(p, name, USERDATA_SUFFIX, path, sizeof(path)) && unlink(path) && errno != ENOENT)
            fd->fail = true;
        if (!inst_path(p, name, "", path, sizeof(path)) && unlink(path) && errno != ENOENT)
            fd->fail = true;
    }
    uv_timer_init(p->loop, &fd->timer);
    fd->next = p->dels;
    if (p->dels)
        p->dels->prev = fd;
    p->dels = fd;
    uv_timer_start(&fd->timer, delete_fire, (uint64_t)(p->o->delete_delay_ns / 1000000), 0);
}

static void fake_list(struct provider *p, provider_list_cb cb, void *arg)
{
    struct provider_instance *v = NULL;
    size_t n = 0;
    DIR *d = opendir(p->o->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t nl = strlen(e->d_name), sl = strlen(USERDATA_SUFFIX);
        if (e->d_name[0] == '.' || nl >= PROVIDER_NAME_MAX ||
            (nl > sl && strcmp(e->d_name + nl - sl, USERDATA_SUFFIX) == 0))
            continue;
        struct provider_instance *nv = realloc(v, (n + 1) * sizeof(*v));
        if (!nv)
            break;
        v = nv;
        memset(&v[n], 0, sizeof(v[n]));
        memcpy(v[n].name, e->d_name, strlen(e->d_name) + 1);
        snprintf(v[n].id, sizeof(v[n].id), "fake-%s", v[n].name);
        /* The instance file is our marker: {"id":...,"name":...,"sandbox":"<id>"}; its mtime the
         * creation time. */
        char path[4096], rec[1024] = "";
        struct stat st;
        if (!inst_path(p, v[n].name, "", path, sizeof(path))) {
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                ssize_t r = read(fd, rec, sizeof(rec) - 1);
                rec[r > 0 ? r : 0] = '\0';
                if (fstat(fd, &st) == 0)
                    v[n].created_unix = (int64_t)st.st_mtime;
                close(fd);
            }
        }
        const char *sb = strstr(rec, "\"sandbox\":\"");
        if (sb) {
            sb += 11;
            size_t k = strcspn(sb, "\"");
            if (k < sizeof(v[n].sandbox_id))
                memcpy(v[n].sandbox_id, sb, k);
        }
        n++;
    }
    if (d)
        closedir(d);
    cb(arg, NULL, v, n);
    free(v);
}

static size_t fake_userdata_limit(const struct provider *p)
{
    return p->o->userdata_limit > 0 ? (size_t)p->o->userdata_limit : 0;
}

static void fake_shutdown(struct provider *p)
{
    for (struct provider_op *op = p->ops; op; op = op->next)
        uv_close((uv_handle_t *)&op->timer, op_closed);
    for (struct fake_delete *fd = p->dels; fd; fd = fd->next)
        uv_close((uv_handle_t *)&fd->timer, op_closed);
    free(p);
}

const struct provider_ops fake_provider_ops = {
    .name = "fake",
    .options_new = fake_options_new,
    .options_free = fake_options_free,
    .init = fake_init,
    .create = fake_create,
    .cancel = fake_cancel,
    .destroy = fake_destroy,
    .list = fake_list,
    .shutdown = fake_shutdown,
    .userdata_limit = fake_userdata_limit,
};
