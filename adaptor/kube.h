/* kube: the daemon's Kubernetes API client (spec protocols.md 4.4, 6.2, 7.4), with the pod's
 * in-cluster configuration: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the
 * service-account token and CA in K8S_SERVICE_ACCOUNT_DIR. Three jobs:
 *  - the node's kata.peerpods.io/vm capacity with the owner-annotation handshake: advertised at
 *    start-up (retried in the background with back-off while the API fails) and removed at
 *    shutdown only while the node still names this pod as owner, so the old pod of a rolling
 *    update never takes the capacity away from the new one;
 *  - a pod's registry credentials (its service account's and its own imagePullSecrets) as
 *    auth.json;
 *  - the /startup probe's check of the peer pods on this node.
 * Everything runs on the loop through the http module; documents are built and parsed by
 * kubejson. API failures are logged (never a token or a credential) and are never fatal:
 * a pod without its credentials still gets a VM, a node without capacity still serves.
 * The token is read again every minute and after a 401 (kubelet rotates bound tokens);
 * file reads run in the loop's thread pool.
 *
 * Ownership: the daemon context owns the struct kube (d->kube). kube_stop, at shutdown,
 * ends every pending pull and check (their callbacks run with an error), then removes the
 * capacity (bounded by KUBE_RELEASE_MS) and closes the handles; kube_free, after the loop
 * has stopped, releases the memory. Loop thread only. */
#ifndef ADAPTOR_KUBE_H
#define ADAPTOR_KUBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kubejson.h"

#define KUBE_SA_DIR_DEFAULT "/var/run/secrets/kubernetes.io/serviceaccount"
#define KUBE_REQUEST_MS 5000u  /* one API request */
#define KUBE_PULL_MS 10000u    /* all the lookups of one pod's pull secrets */
#define KUBE_RELEASE_MS 5000u  /* the capacity removal at shutdown */
#define KUBE_RETRY_MAX_MS 30000u
#define KUBE_PEERPOD_ABSENT_MS 600000u /* a missing PeerPod CRD is asked about again after 10 min */

struct kube;
struct turn;

struct kube_config {
    const char *node_name;    /* NODE_NAME; "" = not in Kubernetes */
    const char *pod_uid;      /* POD_UID; "" = no owner annotation */
    long long limit;          /* PEERPODS_LIMIT_PER_NODE; < 0: capacity not advertised */
    const char *host, *port;  /* KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT */
    const char *sa_dir;       /* token, ca.crt */
    const char *user_agent;   /* "cloud-api-adaptor/<version>" */
    struct turn *turn;        /* optional, for the http module */
};

/* Returns the client, or NULL: with err[0] == '\0' when node_name is empty (not in
 * Kubernetes), else with the reason (no service host, unreadable token) for a warning. */
struct kube *kube_new(uv_loop_t *loop, const struct kube_config *cfg, char *err, size_t errlen);

/* Advertises the node capacity (owner merge patch, then the capacity JSON patch). cb runs
 * once: done = true when both landed, false when wait_ms passed first (the attempts go on in
 * the background). With limit < 0 nothing is advertised and cb runs at once with true. */
typedef void (*kube_advertised_cb)(void *arg, bool done);
void kube_node_advertise(struct kube *k, uint64_t wait_ms, kube_advertised_cb cb, void *arg);

/* Collects the pull secrets of pod ns/name. cb runs once, later (never from inside this
 * call): auth_json is the rendered auth.json, owned by the callee (wipe and free with
 * userdata_text_free), or NULL when the pod has no credentials or they could not be read;
 * err is NULL, or why they could not be read (for a log line; no secrets); pod_uid is the
 * pod's metadata.uid when the pod was read (for kube_peerpod_own), else "". Returns -1 only
 * when out of memory (cb does not run). */
#define KUBE_UID_MAX 64
typedef void (*kube_auth_cb)(void *arg, char *auth_json, size_t len, const char *err, const char *pod_uid);
int kube_pull_auth(struct kube *k, const char *ns, const char *name, kube_auth_cb cb, void *arg);

/* Lists the pods bound to this node and judges them as kubejson_startup_check does. cb runs
 * once, later: verdict 1 (ready), 0 (not yet, why says which pod) or -1 (the API failed,
 * why says how). Returns -1 only when out of memory (cb does not run). */
typedef void (*kube_startup_cb)(void *arg, int verdict, const char *why);
int kube_startup_check(struct kube *k, const char *runtime_class, int64_t start_unix, kubejson_pod_known_fn known,
                       void *known_arg, kube_startup_cb cb, void *arg);

/* PeerPod objects (spec network-and-operations.md B.4), for peerpod-ctrl: the Go daemon's
 * off-node record of a pod VM, owned by its Pod and holding a finalizer, so that when the Pod
 * goes without a StopVM (its node deleted, say), peerpod-ctrl deletes the instance. Named
 * kubejson_peerpod_name(pod, sandbox_id). Fire and forget: the outcome is logged, never
 * fatal (the daemon's own records and orphan GC stay the primary cleanup). A missing CRD
 * (404 on the create) is logged once and not asked about again for KUBE_PEERPOD_ABSENT_MS.
 *  - own: creates the PeerPod (409 counts as made) owned by the pod with pod_uid (""/NULL:
 *    the pod is read for it first);
 *  - release: removes its finalizer once the instance is deleted (404 and 422 count as
 *    done); a release while the create is under way runs after it. */
void kube_peerpod_own(struct kube *k, const char *ns, const char *pod, const char *pod_uid, const char *sandbox_id,
                      const char *cloud_provider, const char *instance_id);
void kube_peerpod_release(struct kube *k, const char *ns, const char *pod, const char *sandbox_id);

/* Ends pending work (callbacks get errors). With release, the capacity is then removed if
 * this pod still owns the node (bounded by KUBE_RELEASE_MS); the handles close after. */
void kube_stop(struct kube *k, bool release);
void kube_free(struct kube *k);

/* --- pure helpers, exposed for tests --- */

/* https://host:port (brackets around an IPv6 host) + path into out[cap]; -1 if it does not fit. */
int kube_url(char *out, size_t cap, const char *host, const char *port, const char *path);
/* Appends s to out[cap] at *len, percent-encoding every byte but [A-Za-z0-9._~-]; -1 if full. */
int kube_escape(char *out, size_t cap, size_t *len, const char *s);

#endif
