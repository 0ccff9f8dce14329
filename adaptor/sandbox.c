#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/magic.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"

static const char *const phase_names[] = {"created", "starting", "running", "stopping", "failed", "gone"};

const char *sandbox_phase_name(enum sandbox_phase p)
{
    return (unsigned)p <= SANDBOX_GONE ? phase_names[p] : "invalid";
}

int sandbox_phase_parse(const char *s, enum sandbox_phase *out)
{
    for (int i = 0; i <= SANDBOX_GONE; i++)
        if (!strcmp(s, phase_names[i])) {
            *out = (enum sandbox_phase)i;
            return 0;
        }
    return -1;
}

bool sandbox_phase_allowed(enum sandbox_phase from, enum sandbox_phase to)
{
    if (from == SANDBOX_GONE)
        return false;
    if (from == to)
        return true; /* re-saving a record with new details */
    switch (from) {
    case SANDBOX_CREATED:
        return to == SANDBOX_STARTING || to == SANDBOX_STOPPING;
    case SANDBOX_STARTING:
        return to == SANDBOX_RUNNING || to == SANDBOX_FAILED;
    case SANDBOX_RUNNING:
        return to == SANDBOX_STOPPING;
    case SANDBOX_FAILED:
        return to == SANDBOX_STARTING || to == SANDBOX_STOPPING;
    case SANDBOX_STOPPING:
        return to == SANDBOX_GONE;
    default:
        return false;
    }
}

enum sandbox_phase sandbox_phase_recover(enum sandbox_phase persisted)
{
    return persisted == SANDBOX_STARTING ? SANDBOX_FAILED : persisted;
}

int sandbox_id_check(const char *id, char *err, size_t errlen)
{
    size_t n = strlen(id);
    const char *why = NULL;
    if (n == 0)
        why = "empty sandbox id";
    else if (n > SANDBOX_ID_MAX)
        why = "sandbox id longer than 128 characters";
    else if (!strcmp(id, ".") || !strcmp(id, ".."))
        why = "sandbox id must not be \".\" or \"..\"";
    else
        for (size_t i = 0; i < n && !why; i++) {
            char c = id[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-'))
                why = "sandbox id may only contain letters, digits, '.', '_' and '-'";
        }
    if (!why)
        return 0;
    /* Echo a bounded, printable prefix so a hostile id cannot flood or forge messages. */
    char shown[41];
    size_t k = 0;
    for (; k < n && k < 32; k++)
        shown[k] = (id[k] >= 0x20 && id[k] < 0x7f && id[k] != '"') ? id[k] : '?';
    shown[k] = '\0';
    snprintf(err, errlen, "invalid sandbox id \"%s%s\": %s (kata sandbox ids are 1-128 characters of "
             "[A-Za-z0-9._-])", shown, n > 32 ? "..." : "", why);
    return -1;
}

struct sandbox *sandbox_new(const char *id)
{
    struct sandbox *sb = calloc(1, sizeof(*sb));
    if (!sb)
        return NULL;
    size_t n = strnlen(id, SANDBOX_ID_MAX);
    memcpy(sb->id, id, n);
    sb->id[n] = '\0';
    sb->created_unix = (int64_t)time(NULL);
    TAILQ_INIT(&sb->ops);
    return sb;
}

void sandbox_free(struct sandbox *sb)
{
    if (!sb)
        return;
    pod_spec_free(&sb->pod);
    free(sb->netns_path);
    sandbox_userdata_drop(sb);
    free(sb);
}

void sandbox_userdata_drop(struct sandbox *sb)
{
    if (sb->userdata) {
        /* It carries a TLS private key and the pod's initdata. */
        OPENSSL_cleanse(sb->userdata, sb->userdata_len);
        free(sb->userdata);
    }
    sb->userdata = NULL;
    sb->userdata_len = 0;
}

char *sandbox_json_encode(const struct sandbox *sb)
{
    json_t *ips = json_array();
    for (unsigned i = 0; ips && i < sb->inst.n_ips && i < PROVIDER_IPS_MAX; i++)
        json_array_append_new(ips, json_string(sb->inst.ips[i]));
    const struct pod_spec *p = &sb->pod;
    json_t *o = json_pack("{s:i, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:I, s:I, s:I, s:b, s:s?, s:I, s:s, s:b, s:I, s:I,"
                          " s:s, s:{s:s, s:s, s:o}}",
                          "version", 1, "id", sb->id, "phase", sandbox_phase_name(sb->phase), "pod_name",
                          p->pod_name, "pod_namespace", p->pod_namespace, "machine_type", p->machine_type,
                          "image", p->image, "gpu_model", p->gpu_model, "vcpus", (json_int_t)p->vcpus,
                          "memory_mib", (json_int_t)p->memory_mib, "gpus", (json_int_t)p->gpus,
                          "gpus_annotated", p->gpus_annotated, "netns", sb->netns_path, "vni",
                          (json_int_t)sb->vni, "pod_if", sb->pod_if, "net_dedicated", sb->net_dedicated, "created",
                          (json_int_t)sb->created_unix, "delete_attempts", (json_int_t)sb->delete_attempts,
                          "boot_id", sb->boot_id, "instance", "name", sb->inst.name, "id", sb->inst.id, "ips", ips);
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

static int dup_field(json_t *o, const char *key, char **dst)
{
    json_t *v = json_object_get(o, key);
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    free(*dst);
    *dst = strdup(s);
    return *dst ? 0 : -1;
}

static int copy_field(json_t *o, const char *key, char *dst, size_t cap)
{
    json_t *v = json_object_get(o, key);
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    if (strlen(s) >= cap)
        return -1;
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static uint32_t u32_field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    json_int_t x = json_is_integer(v) ? json_integer_value(v) : 0;
    return x < 0 ? 0 : x > UINT32_MAX ? UINT32_MAX : (uint32_t)x;
}

int sandbox_json_decode(struct sandbox *sb, const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *o = json_loadb(text, len, 0, &je);
    if (!o || !json_is_object(o)) {
        snprintf(err, errlen, "not a JSON object (line %d: %s)", o ? 0 : je.line, o ? "" : je.text);
        json_decref(o);
        return -1;
    }
    int rc = -1;
    json_t *id = json_object_get(o, "id"), *phase = json_object_get(o, "phase");
    json_t *inst = json_object_get(o, "instance");
    if (!json_is_string(id) || strcmp(json_string_value(id), sb->id)) {
        snprintf(err, errlen, "record id does not match its directory");
        goto out;
    }
    if (!json_is_string(phase) || sandbox_phase_parse(json_string_value(phase), &sb->phase)) {
        snprintf(err, errlen, "missing or unknown phase");
        goto out;
    }
    struct pod_spec *p = &sb->pod;
    if (dup_field(o, "pod_name", &p->pod_name) || dup_field(o, "pod_namespace", &p->pod_namespace) ||
        dup_field(o, "machine_type", &p->machine_type) || dup_field(o, "image", &p->image) ||
        dup_field(o, "gpu_model", &p->gpu_model) || dup_field(o, "netns", &sb->netns_path)) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    free(p->initdata);
    p->initdata = strdup("");
    if (!p->initdata) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    p->vcpus = u32_field(o, "vcpus");
    p->memory_mib = u32_field(o, "memory_mib");
    p->gpus = u32_field(o, "gpus");
    p->gpus_annotated = json_is_true(json_object_get(o, "gpus_annotated"));
    sb->vni = u32_field(o, "vni");
    sb->net_dedicated = json_is_true(json_object_get(o, "net_dedicated"));
    if (copy_field(o, "pod_if", sb->pod_if, sizeof(sb->pod_if)) || (sb->vni && !sb->pod_if[0])) {
        snprintf(err, errlen, "bad pod network fields (vni, pod_if)");
        goto out;
    }
    json_t *created = json_object_get(o, "created");
    sb->created_unix = json_is_integer(created) ? json_integer_value(created) : 0;
    sb->delete_attempts = u32_field(o, "delete_attempts");
    if (copy_field(o, "boot_id", sb->boot_id, sizeof(sb->boot_id))) {
        snprintf(err, errlen, "boot_id too long");
        goto out;
    }
    memset(&sb->inst, 0, sizeof(sb->inst));
    if (json_is_object(inst)) {
        if (copy_field(inst, "name", sb->inst.name, sizeof(sb->inst.name)) ||
            copy_field(inst, "id", sb->inst.id, sizeof(sb->inst.id))) {
            snprintf(err, errlen, "instance name or id too long");
            goto out;
        }
        json_t *ips = json_object_get(inst, "ips");
        size_t i;
        json_t *v;
        json_array_foreach(ips, i, v)
        {
            if (sb->inst.n_ips == PROVIDER_IPS_MAX || !json_is_string(v) ||
                strlen(json_string_value(v)) >= sizeof(sb->inst.ips[0]))
                break;
            strcpy(sb->inst.ips[sb->inst.n_ips++], json_string_value(v));
        }
    }
    snprintf(sb->inst.sandbox_id, sizeof(sb->inst.sandbox_id), "%s", sb->id);
    rc = 0;
out:
    json_decref(o);
    return rc;
}

/* ---- store ---------------------------------------------------------------------------- */

static size_t id_hash(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int sandbox_store_init(struct sandbox_store *st, uv_loop_t *loop, const char *dir)
{
    memset(st, 0, sizeof(*st));
    st->loop = loop;
    st->nbuckets = 1024;
    st->buckets = calloc(st->nbuckets, sizeof(*st->buckets));
    st->dir = strdup(dir);
    if (!st->buckets || !st->dir) {
        sandbox_store_free(st);
        return -1;
    }
    return 0;
}

void sandbox_store_free(struct sandbox_store *st)
{
    for (size_t i = 0; st->buckets && i < st->nbuckets; i++) {
        struct sandbox *sb = st->buckets[i];
        while (sb) {
            struct sandbox *next = sb->hnext;
            sandbox_free(sb);
            sb = next;
        }
    }
    free(st->buckets);
    free(st->dir);
    st->buckets = NULL;
    st->dir = NULL;
}

struct sandbox *sandbox_store_get(const struct sandbox_store *st, const char *id)
{
    for (struct sandbox *sb = st->buckets[id_hash(id) % st->nbuckets]; sb; sb = sb->hnext)
        if (!strcmp(sb->id, id))
            return sb;
    return NULL;
}

int sandbox_store_insert(struct sandbox_store *st, struct sandbox *sb)
{
    if (sandbox_store_get(st, sb->id))
        return -1;
    struct sandbox **b = &st->buckets[id_hash(sb->id) % st->nbuckets];
    sb->hnext = *b;
    *b = sb;
    st->count++;
    return 0;
}

void sandbox_store_remove(struct sandbox_store *st, struct sandbox *sb)
{
    for (struct sandbox **pp = &st->buckets[id_hash(sb->id) % st->nbuckets]; *pp; pp = &(*pp)->hnext)
        if (*pp == sb) {
            *pp = sb->hnext;
            sb->hnext = NULL;
            st->count--;
            return;
        }
}

const struct sandbox *sandbox_store_find_pod(const struct sandbox_store *st, const char *ns, const char *name,
                                             bool (*keep)(const struct sandbox *sb))
{
    for (size_t i = 0; i < st->nbuckets; i++)
        for (const struct sandbox *sb = st->buckets[i]; sb; sb = sb->hnext)
            if (sb->pod.pod_name && sb->pod.pod_namespace && !strcmp(sb->pod.pod_name, name) &&
                !strcmp(sb->pod.pod_namespace, ns) && (!keep || keep(sb)))
                return sb;
    return NULL;
}

void sandbox_store_foreach(const struct sandbox_store *st, void (*fn)(struct sandbox *sb, void *arg), void *arg)
{
    for (size_t i = 0; i < st->nbuckets; i++) {
        struct sandbox *sb = st->buckets[i];
        while (sb) {
            struct sandbox *next = sb->hnext; /* fn may remove sb */
            fn(sb, arg);
            sb = next;
        }
    }
}

int sandbox_path(char *out, size_t outlen, const char *dir, const char *id, const char *file)
{
    int n = file ? snprintf(out, outlen, "%s/%s/%s", dir, id, file) : snprintf(out, outlen, "%s/%s", dir, id);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) && errno != EEXIST)
            return errno;
        *p = '/';
    }
    if (mkdir(buf, mode) && errno != EEXIST)
        return errno;
    return 0;
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) ? errno : 0;
    close(fd);
    return rc == EINVAL ? 0 : rc; /* some file systems cannot sync directories */
}

/* Removes regular files and sockets directly inside dir, then dir. Never recurses and never
 * follows links: the directory is ours and holds only files we wrote. The files a sandbox
 * leaves are removed by name first, so the usual erase needs no directory listing. */
static int remove_dir_flat(const char *dir)
{
    static const char *const known[] = {SANDBOX_STATE_FILE, SANDBOX_USERDATA_FILE};
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : errno;
    bool unlinked = true;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (unlinkat(fd, known[i], 0) && errno != ENOENT)
            unlinked = false; /* the scan below tries again and reports it */
    /* The agent socket is usually gone: libuv removes it when the relay closes. */
    bool gone = unlinked && (rmdir(dir) == 0 || errno == ENOENT);
    if (!gone && unlinked && (unlinkat(fd, SANDBOX_AGENT_SOCKET, 0) == 0 || errno == ENOENT))
        gone = rmdir(dir) == 0 || errno == ENOENT;
    if (gone) {
        close(fd);
        return 0;
    }
    DIR *d = fdopendir(fd); /* something else is left (a temp file of a cut-off write) */
    if (!d) {
        int e = errno;
        close(fd);
        return e;
    }
    int dfd = dirfd(d), rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (unlinkat(dfd, e->d_name, 0) && errno != ENOENT)
            rc = errno;
    }
    closedir(d);
    if (rmdir(dir) && errno != ENOENT)
        rc = rc ? rc : errno;
    return rc;
}

struct io_work {
    uv_work_t req;
    struct turn_task task; /* the completion, run under the loop's turn budget */
    struct sandbox_store *st;
    sandbox_io_cb cb;
    void *arg;
    int err;
    char *json;      /* NULL: erase */
    bool durable;
    uint8_t *extra;  /* optional file written before the record, owned */
    size_t extra_len;
    char dir[4096];
};

/* Writes dir/name atomically: a crash of the daemon leaves the old file or the new one, never
 * a mix. durable: also synced (file and directory), so a power loss cannot undo it. */
static int file_write_atomic(const char *dir, const char *name, const void *data, size_t len, bool durable,
                             const char *parent)
{
    char tmp[4200], dst[4200];
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name);
    snprintf(dst, sizeof(dst), "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == ENOENT) { /* the sandbox's first write: its directory is made here */
        int e = mkdir(dir, 0700) == 0 || errno == EEXIST ? 0 : errno;
        if (e == ENOENT) /* the pods dir itself is gone */
            e = mkdir_p(dir, 0700);
        if (e)
            return e;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    }
    if (fd < 0)
        return errno;
    int err = 0;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, (const char *)data + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        off += (size_t)n;
    }
    if (!err && durable && fdatasync(fd))
        err = errno;
    if (close(fd) && !err)
        err = errno;
    if (!err && rename(tmp, dst))
        err = errno;
    if (!err && durable)
        err = fsync_dir(dir);
    if (!err && durable && parent) /* the sandbox directory's own entry, made by a CreateVM not synced */
        err = fsync_dir(parent);
    if (err)
        unlink(tmp);
    return err;
}

static void io_work_run(uv_work_t *req)
{
    struct io_work *w = (struct io_work *)req;
    if (!w->json) {
        w->err = remove_dir_flat(w->dir);
        return;
    }
    if (w->extra) /* w->err is 0 (calloc) */
        w->err = file_write_atomic(w->dir, SANDBOX_USERDATA_FILE, w->extra, w->extra_len, false, NULL);
    if (!w->err)
        w->err = file_write_atomic(w->dir, SANDBOX_STATE_FILE, w->json, strlen(w->json), w->durable,
                                   w->st->dir);
}

/* The user-data copy holds the VM's TLS server key: wiped, as every other copy of it. */
static void extra_free(struct io_work *w)
{
    if (w->extra)
        explicit_bzero(w->extra, w->extra_len);
    free(w->extra);
}

static void io_work_finish(struct turn_task *task)
{
    struct io_work *w = (struct io_work *)((char *)task - offsetof(struct io_work, task));
    sandbox_io_cb cb = w->cb;
    void *arg = w->arg;
    int err = w->err;
    free(w->json);
    extra_free(w);
    free(w);
    if (cb)
        cb(arg, err);
}

/* Records written together complete together; what each completion starts (a VM create,
 * an answer) runs under the turn budget so a burst does not hold the loop. */
static void io_work_done(uv_work_t *req, int status)
{
    struct io_work *w = (struct io_work *)req;
    w->st->io_pending--;
    if (status)
        w->err = ECANCELED;
    w->task.fn = io_work_finish;
    if (w->st->turn)
        turn_run_or_defer(w->st->turn, &w->task);
    else
        io_work_finish(&w->task);
}

static int io_submit(struct sandbox_store *st, const char *id, char *json, bool durable,
                     const struct sandbox *with_userdata, sandbox_io_cb cb, void *arg)
{
    struct io_work *w = calloc(1, sizeof(*w));
    if (!w) {
        free(json);
        return -1;
    }
    if (with_userdata && with_userdata->userdata) {
        w->extra = malloc(with_userdata->userdata_len ? with_userdata->userdata_len : 1);
        if (!w->extra) {
            free(json);
            free(w);
            return -1;
        }
        memcpy(w->extra, with_userdata->userdata, with_userdata->userdata_len);
        w->extra_len = with_userdata->userdata_len;
    }
    if (sandbox_path(w->dir, sizeof(w->dir), st->dir, id, NULL)) {
        free(json);
        extra_free(w);
        free(w);
        return -1;
    }
    w->st = st;
    w->cb = cb;
    w->arg = arg;
    w->json = json;
    w->durable = durable && !st->memory_fs;
    if (st->memory_fs && st->turn) {
        /* Nothing here waits for a device: write now, answer in a later turn (never from
         * inside the caller), and save the two thread hand-offs a pool job costs. */
        io_work_run(&w->req);
        w->task.fn = io_work_finish;
        turn_defer(st->turn, &w->task);
        return 0;
    }
    if (uv_queue_work(st->loop, &w->req, io_work_run, io_work_done)) {
        free(json);
        extra_free(w);
        free(w);
        return -1;
    }
    st->io_pending++;
    return 0;
}

bool sandbox_phase_durable(enum sandbox_phase p)
{
    return p == SANDBOX_STARTING || p == SANDBOX_STOPPING;
}

int sandbox_store_save(struct sandbox_store *st, const struct sandbox *sb, sandbox_io_cb cb, void *arg)
{
    char *json = sandbox_json_encode(sb);
    if (!json)
        return -1;
    return io_submit(st, sb->id, json, sandbox_phase_durable(sb->phase), NULL, cb, arg);
}

int sandbox_store_save_userdata(struct sandbox_store *st, const struct sandbox *sb, sandbox_io_cb cb, void *arg)
{
    char *json = sandbox_json_encode(sb);
    if (!json)
        return -1;
    return io_submit(st, sb->id, json, sandbox_phase_durable(sb->phase), sb, cb, arg);
}

int sandbox_store_erase(struct sandbox_store *st, const char *id, sandbox_io_cb cb, void *arg)
{
    return io_submit(st, id, NULL, false, NULL, cb, arg);
}

bool sandbox_boot_is_previous(const char *record_boot, const char *this_boot)
{
    return record_boot[0] && this_boot[0] && strcmp(record_boot, this_boot) != 0;
}

bool sandbox_netns_path_gone(const char *path)
{
    struct stat st;
    if (!path[0] || lstat(path, &st) == 0 || errno != ENOENT)
        return false;
    /* The directory must still be there: without it (a DaemonSet that no longer mounts
     * /run/netns) nothing can be told about the pods. */
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (!n || n >= sizeof(dir))
        return false;
    memcpy(dir, path, n);
    dir[n] = '\0';
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

bool sandbox_netns_gone(const struct sandbox *sb)
{
    return sb->vni && sb->netns_path && sandbox_netns_path_gone(sb->netns_path);
}

/* The node's boot id, "" when it cannot be read (then no record counts as a previous boot). */
static void boot_id_read(const char *path, char *out, size_t cap)
{
    size_t len;
    out[0] = '\0';
    char *text = fileio_read(AT_FDCWD, path, cap - 1, &len);
    if (!text) {
        log_warn("adaptor", "cannot read the boot id %s: %s; sandboxes of a previous boot will not be told apart",
                 path, strerror(errno));
        return;
    }
    while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
        text[--len] = '\0';
    memcpy(out, text, len + 1);
    free(text);
}

int sandbox_store_load(struct sandbox_store *st, const char *boot_id_path, char *err, size_t errlen)
{
    int rc = mkdir_p(st->dir, 0755);
    if (rc) {
        snprintf(err, errlen, "PODS_DIR (-pods-dir): cannot create %s: %s", st->dir, strerror(rc));
        return -1;
    }
    boot_id_read(boot_id_path ? boot_id_path : "/proc/sys/kernel/random/boot_id", st->boot_id, sizeof(st->boot_id));
    struct statfs fs;
    st->memory_fs = !statfs(st->dir, &fs) && (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC);
    DIR *d = opendir(st->dir);
    if (!d) {
        snprintf(err, errlen, "PODS_DIR (-pods-dir): cannot read %s: %s", st->dir, strerror(errno));
        return -1;
    }
    int loaded = 0;
    struct dirent *e;
    char why[256], path[4200];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        if (sandbox_id_check(e->d_name, why, sizeof(why)))
            continue; /* not a sandbox directory of ours */
        struct stat dst;
        if (fstatat(dirfd(d), e->d_name, &dst, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(dst.st_mode))
            continue; /* we only ever create real directories; never follow a link */
        if (sandbox_path(path, sizeof(path), st->dir, e->d_name, SANDBOX_STATE_FILE))
            continue;
        size_t len;
        char *text = fileio_read(AT_FDCWD, path, 1 << 20, &len);
        if (!text) {
            if (errno == ENOENT) {
                /* CreateVM never finished persisting: nothing in the cloud can belong to it. */
                char dir[4200];
                sandbox_path(dir, sizeof(dir), st->dir, e->d_name, NULL);
                remove_dir_flat(dir);
                log_info("adaptor", "removed incomplete sandbox directory %s", e->d_name);
            } else {
                log_error("adaptor", "cannot read %s: %s; its sandbox is not managed until fixed", path,
                          strerror(errno));
            }
            continue;
        }
        struct sandbox *sb = sandbox_new(e->d_name);
        if (!sb || sandbox_json_decode(sb, text, len, why, sizeof(why))) {
            log_error("adaptor", "cannot load %s: %s; its sandbox is not managed until fixed", path,
                      sb ? why : "out of memory");
            sandbox_free(sb);
            free(text);
            continue;
        }
        free(text);
        sb->phase = sandbox_phase_recover(sb->phase);
        sb->previous_boot = sandbox_boot_is_previous(sb->boot_id, st->boot_id);
        if ((sb->phase == SANDBOX_CREATED || sb->phase == SANDBOX_FAILED) &&
            !sandbox_path(path, sizeof(path), st->dir, e->d_name, SANDBOX_USERDATA_FILE)) {
            size_t ulen;
            char *ud = fileio_read(AT_FDCWD, path, SANDBOX_USERDATA_MAX, &ulen);
            if (ud) {
                sb->userdata = (uint8_t *)ud;
                sb->userdata_len = ulen;
            }
        }
        if (sandbox_store_insert(st, sb)) {
            sandbox_free(sb);
            continue;
        }
        loaded++;
    }
    closedir(d);
    return loaded;
}
