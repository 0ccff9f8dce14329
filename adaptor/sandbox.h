/* sandbox: the daemon's record of one kata sandbox, its phase machine, its on-disk form,
 * and the store that owns all records.
 *
 * The store owns every struct sandbox in it (sandbox_store_free frees them). A record is
 * persisted as <pods-dir>/<id>/sandbox.json (mode 0600, written to a temp file and renamed)
 * by the loop's thread pool, so a crash of the daemon at any moment leaves either the old or
 * the new record. Records of the phases that promise a cloud action (sandbox_phase_durable:
 * a VM about to be created, a deletion owed) are also synced, file and directory, before the
 * action, so a power loss cannot forget a billed VM; the others would only be rewritten or
 * rolled back from the last durable one. On a memory file system (tmpfs, as /run/peerpod on a
 * node) nothing survives a power loss and no write waits for a device, so with a turn set
 * records are written on the loop thread, unsynced, and complete in a later turn.
 * The JSON codec and the phase machine are pure. */
#ifndef ADAPTOR_SANDBOX_H
#define ADAPTOR_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

#include "turn.h"

#include "../providers/provider.h"
#include "annotations.h"

#define SANDBOX_ID_MAX 128
#define SANDBOX_STATE_FILE "sandbox.json"
#define SANDBOX_AGENT_SOCKET "agent.ttrpc"
#define SANDBOX_USERDATA_FILE "userdata" /* the pod VM's document, kept 0600 until StartVM */
#define SANDBOX_USERDATA_MAX (1u << 20)
#define SANDBOX_BOOT_ID_MAX 40 /* /proc/sys/kernel/random/boot_id: a 36-character UUID */

enum sandbox_phase {
    SANDBOX_CREATED,  /* CreateVM done, no cloud resources yet */
    SANDBOX_STARTING, /* StartVM in progress: inst.name may exist in the cloud */
    SANDBOX_RUNNING,  /* VM up */
    SANDBOX_STOPPING, /* deletion in progress or queued (durable delete queue) */
    SANDBOX_FAILED,   /* StartVM failed; inst.name set while a rollback is still owed */
    SANDBOX_GONE,     /* everything deleted; the record is erased */
};

const char *sandbox_phase_name(enum sandbox_phase p);
int sandbox_phase_parse(const char *s, enum sandbox_phase *out);
bool sandbox_phase_allowed(enum sandbox_phase from, enum sandbox_phase to);
/* The phase a record read at start-up resumes in: a StartVM that was cut off by a crash
 * cannot be answered any more, so it becomes FAILED and its instance is rolled back. */
enum sandbox_phase sandbox_phase_recover(enum sandbox_phase persisted);
/* True for the phases whose record is synced to disk before the daemon acts on it. */
bool sandbox_phase_durable(enum sandbox_phase p);

/* DECISIONS 15: [A-Za-z0-9._-], 1-128 chars, not "." or "..". */
int sandbox_id_check(const char *id, char *err, size_t errlen);

struct sandbox_op; /* the service's in-flight operation, owned by the service */

struct sandbox {
    char id[SANDBOX_ID_MAX + 1];
    enum sandbox_phase phase;
    struct pod_spec pod; /* owned; initdata is never persisted */
    char *netns_path;    /* owned, may be "" */
    /* Pod network (vxlan/): vni 0 when the sandbox has none (no netns path). */
    uint32_t vni;
    char pod_if[16];     /* the CNI interface in netns_path */
    bool net_dedicated;  /* tunnel to the VM's second address */
    struct provider_instance inst;
    int64_t created_unix;
    unsigned delete_attempts;
    char boot_id[SANDBOX_BOOT_ID_MAX]; /* the node's boot when CreateVM ran; "" in old records */
    uint8_t *userdata; /* owned; persisted beside the record until the VM exists */
    size_t userdata_len;
    /* Runtime only (not persisted). */
    char pod_uid[64];      /* the pod's metadata.uid, read with its pull secrets (the PeerPod's owner) */
    struct sandbox_op *op; /* current operation, NULL when idle */
    TAILQ_HEAD(, sandbox_op) ops; /* waiting behind op, in the order they run (hypervisor.c) */
    uv_timer_t *retry; /* delete retry timer, owned */
    struct proxy *proxy; /* agent relay while the VM runs, owned */
    bool recovered;      /* running before this daemon started (its pod was not re-created) */
    bool previous_boot;  /* created before the node last booted: its shim and pod are gone */
    unsigned netns_gone_passes; /* GC passes in a row that found its pod's namespace gone */
    struct sandbox *hnext;
};

/* Allocates a zeroed record with the given (already checked) id. */
struct sandbox *sandbox_new(const char *id);
void sandbox_free(struct sandbox *sb);

/* JSON form of the persistent fields; returns a malloc'd string or NULL. */
char *sandbox_json_encode(const struct sandbox *sb);
/* Fills sb (which must come from sandbox_new) from JSON; -1 with err on malformed input. */
int sandbox_json_decode(struct sandbox *sb, const char *text, size_t len, char *err, size_t errlen);

struct sandbox_store {
    uv_loop_t *loop;
    char *dir;
    struct sandbox **buckets;
    size_t nbuckets;
    size_t count;
    size_t io_pending; /* thread-pool writes not yet completed */
    struct turn *turn; /* optional: completions run under its budget (set by the daemon) */
    bool memory_fs;    /* set by sandbox_store_load: the pods dir is on tmpfs or ramfs */
    char boot_id[SANDBOX_BOOT_ID_MAX]; /* set by sandbox_store_load; "" if unreadable */
};

int sandbox_store_init(struct sandbox_store *st, uv_loop_t *loop, const char *dir);
void sandbox_store_free(struct sandbox_store *st);
struct sandbox *sandbox_store_get(const struct sandbox_store *st, const char *id);
/* Takes ownership; -1 if the id exists already. */
int sandbox_store_insert(struct sandbox_store *st, struct sandbox *sb);
/* Unlinks the record from the store; the caller then owns it. */
void sandbox_store_remove(struct sandbox_store *st, struct sandbox *sb);
/* The first record of pod ns/name that keep accepts (keep NULL: any), or NULL. Walks the
 * whole store: pods are not indexed, and the callers (GetInfo, /startup) are rare. */
const struct sandbox *sandbox_store_find_pod(const struct sandbox_store *st, const char *ns, const char *name,
                                             bool (*keep)(const struct sandbox *sb));
void sandbox_store_foreach(const struct sandbox_store *st, void (*fn)(struct sandbox *sb, void *arg), void *arg);

/* True if record_boot names a boot other than this_boot. A record without one (written
 * before boot ids were kept) or an unknown current boot never counts as a previous boot. */
bool sandbox_boot_is_previous(const char *record_boot, const char *this_boot);

/* Start-up only (blocking): true if sb had a pod network tunnel and its network namespace
 * file is gone while the directory that held it is still there. containerd removes a pod's
 * namespace when it stops the pod sandbox, so a running record whose namespace is gone is a
 * sandbox that was stopped while this daemon was not there to hear StopVM. */
bool sandbox_netns_gone(const struct sandbox *sb);
/* The same for a path alone (any thread: it only stats). */
bool sandbox_netns_path_gone(const char *path);

/* Start-up only (blocking): creates the pods dir, reads the node's boot id from boot_id_path
 * (NULL: /proc/sys/kernel/random/boot_id) and loads every record into the store, marking
 * those of a previous boot (previous_boot). Directories without a record (a crash inside
 * CreateVM) are removed. Returns the number of records loaded, or -1 with err. */
int sandbox_store_load(struct sandbox_store *st, const char *boot_id_path, char *err, size_t errlen);

/* Completion of a thread-pool write; err is 0 or an errno value. */
typedef void (*sandbox_io_cb)(void *arg, int err);
/* Persists sb's current fields (snapshot taken now) in the thread pool. Saves and erases of
 * one id must not overlap: the caller waits for each completion (the hypervisor service
 * runs one operation per sandbox at a time), which also keeps them in order. */
int sandbox_store_save(struct sandbox_store *st, const struct sandbox *sb, sandbox_io_cb cb, void *arg);
/* The same, and also writes sb->userdata to <id>/userdata (0600) before the record. */
int sandbox_store_save_userdata(struct sandbox_store *st, const struct sandbox *sb, sandbox_io_cb cb, void *arg);
/* Wipes and frees sb->userdata. */
void sandbox_userdata_drop(struct sandbox *sb);
/* Removes <pods-dir>/<id> and the files in it in the thread pool. */
int sandbox_store_erase(struct sandbox_store *st, const char *id, sandbox_io_cb cb, void *arg);

/* Path helpers: write "<dir>/<id>/<file>" into out; -1 if it does not fit. */
int sandbox_path(char *out, size_t outlen, const char *dir, const char *id, const char *file);

#endif
