/* provider: the interface between the daemon and a cloud provider.
 *
 * A provider sees only this header, the read-only common config and its own options. All
 * calls are made on the loop thread and every callback runs on the loop thread; providers
 * that use blocking libraries must move that work to the loop's thread pool themselves.
 * Each started operation calls its callback exactly once, unless the provider is shut down
 * first. Strings passed in are borrowed for the duration of the call only: copy what you
 * keep. Structures passed to callbacks are borrowed for the duration of the callback. */
#ifndef PROVIDERS_PROVIDER_H
#define PROVIDERS_PROVIDER_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../adaptor/annotations.h"
#include "../adaptor/config.h"
#include "../adaptor/metrics.h"
#include "../adaptor/ttrpc.h"

#define PROVIDER_ID_MAX 512
#define PROVIDER_NAME_MAX 64
#define PROVIDER_IPS_MAX 2
#define PROVIDER_ERR_MAX 1024

struct provider;    /* provider-owned state */
struct provider_op; /* an in-flight create, owned by the provider */

struct provider_instance {
    char id[PROVIDER_ID_MAX];     /* cloud id: Azure resource id, libvirt domain UUID, ... */
    char name[PROVIDER_NAME_MAX]; /* VM name (spec 5.1) */
    char sandbox_id[129];         /* from our ownership marker, for list results; "" = not ours */
    int64_t created_unix;         /* from the marker, for list results; 0 = unknown */
    char ips[PROVIDER_IPS_MAX][INET6_ADDRSTRLEN];
    unsigned n_ips;
};

/* An error for the kata shim: a gRPC code and an actionable message. */
struct provider_error {
    int code;
    char msg[PROVIDER_ERR_MAX];
};

struct provider_create_req {
    const char *sandbox_id;
    const char *instance_name; /* recorded durably by the daemon before create is called */
    const struct pod_spec *pod;
    const uint8_t *userdata; /* opaque document for the VM */
    size_t userdata_len;
    uint64_t deadline; /* uv_now() ms; 0 = none */
    /* Cloud disks of the pod's CSI volumes to attach, LUN = index (only for providers with
     * attaches_volumes; csivol_disks). */
    const char *const *data_disks;
    size_t n_data_disks;
};

struct provider_create_cbs {
    /* Optional: the VM has an address before the create finished (proxy can dial early). */
    void (*on_address)(void *arg, const struct provider_instance *inst);
    /* err == NULL on success. On failure inst may still name what was created (partial). */
    void (*on_done)(void *arg, const struct provider_error *err, const struct provider_instance *inst);
};

typedef void (*provider_delete_cb)(void *arg, const struct provider_error *err);
typedef void (*provider_list_cb)(void *arg, const struct provider_error *err, const struct provider_instance *v,
                                 size_t n);

struct turn;

struct provider_ops {
    const char *name;
    /* The provider attaches the pod's CSI cloud volumes to the VM: the daemon scans the
     * direct-volumes directory before each create (create_req.data_disks). */
    bool attaches_volumes;
    /* Allocates the provider's option struct and registers its flags; NULL on failure. */
    void *(*options_new)(struct config_registry *reg);
    void (*options_free)(void *opts);
    /* Validates options and prepares the provider (may do blocking start-up work). turn is
     * the loop's CPU budget per turn (adaptor/turn.h) for work that comes in bursts. */
    int (*init)(uv_loop_t *loop, struct turn *turn, const struct config *cfg, void *opts, struct provider **out,
                struct provider_error *err);
    /* NULL when the create could not be started at all (no callback follows then). */
    struct provider_op *(*create)(struct provider *p, const struct provider_create_req *req,
                                  const struct provider_create_cbs *cbs, void *arg);
    /* Asks an in-flight create to stop; on_done still follows (with an error or success). */
    void (*cancel)(struct provider_op *op);
    /* Deletes everything the instance owns; a missing instance is success. id may be "". */
    void (*destroy)(struct provider *p, const char *name, const char *id, provider_delete_cb cb, void *arg);
    /* Lists the instances carrying this node's ownership marker. */
    void (*list)(struct provider *p, provider_list_cb cb, void *arg);
    /* Frees the provider; pending operations are dropped without callbacks. */
    void (*shutdown)(struct provider *p);
    /* Optional: the most bytes of base64 user-data the cloud accepts (Azure: 65536); NULL
     * or 0 = no limit. Checked at CreateVM so the pod fails early with a clear reason. */
    size_t (*userdata_limit)(const struct provider *p);
    /* Optional: the cloud API requests so far, by the class of their final answer, and
     * the retries sent. */
    void (*api_counts)(const struct provider *p, uint64_t calls[METRICS_CLASSES], uint64_t *retries);
    /* Optional, for /readyz: NULL while the cloud API answers, else why it does not (the
     * last request got no answer at all; borrowed until the next provider call). */
    const char *(*unreachable)(const struct provider *p);
};

/* The providers compiled into this binary, NULL-terminated. */
extern const struct provider_ops *const provider_table[];

#endif
