/* kubejson: the Kubernetes API documents the daemon sends and reads (spec protocols.md 4.4,
 * 6.2, 7.4), as pure functions: request bodies byte for byte as the Go daemon's client-go
 * calls send them, and tolerant parsers of the API server's replies (unknown fields are
 * ignored, wrong types are errors). No I/O, no logging.
 *
 * Memory: inputs are borrowed for the call. Returned texts are malloc'd and owned by the
 * caller (free; kubejson_auths_render's with userdata_text_free, it holds credentials).
 * struct kubejson_names and struct kubejson_auths own their strings; their _clear functions
 * free (and, for auths, wipe) them and leave the struct empty and reusable. Error texts
 * never quote secret contents. */
#ifndef ADAPTOR_KUBEJSON_H
#define ADAPTOR_KUBEJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "userdata.h"

#define KUBEJSON_CAPACITY_NAME "kata.peerpods.io/vm"
#define KUBEJSON_OWNER_ANNOTATION "kata.peerpods.io/caa-owner"
#define KUBEJSON_NAME_MAX 253 /* DNS subdomain: the longest object name the API accepts */

/* ---- request bodies ---------------------------------------------------------------- */

/* Merge patch (application/merge-patch+json) of the node:
 * {"metadata":{"annotations":{"kata.peerpods.io/caa-owner":"<pod_uid>"}}}
 * pod_uid is quoted as Go's encoding/json quotes. NULL only when out of memory. */
char *kubejson_owner_patch(const char *pod_uid, size_t *len);

/* JSON patch (application/json-patch+json) of the node's status subresource:
 * [{"op":"add","path":"/status/capacity/kata.peerpods.io~1vm","value":"<limit>"}]
 * limit in decimal as strconv.Itoa writes it. NULL only when out of memory. */
char *kubejson_capacity_add_patch(long long limit, size_t *len);

/* [{"op":"remove","path":"/status/capacity/kata.peerpods.io~1vm"}] (Go omits the empty value). */
extern const char kubejson_capacity_remove_patch[];

/* PeerPod objects (spec network-and-operations.md B.4): one per pod VM, owned by its Pod,
 * carrying the finalizer that peerpod-ctrl acts on when the Pod goes without a StopVM. */
#define KUBEJSON_PEERPOD_API "/apis/confidentialcontainers.org/v1alpha1"
#define KUBEJSON_PEERPOD_FINALIZER "peer.pod/finalizer"

/* The PeerPod's name for a sandbox: "<pod>-resource-<the sandbox id's first 8 characters>",
 * lower-cased, other characters than [a-z0-9] made 'x'; the pod part is shortened (and any
 * '.' or '-' it then ends with dropped) so the name stays within KUBEJSON_NAME_MAX. Upstream
 * appends 5 random characters; one derived from the sandbox makes the name known again
 * after a restart, and a repeated create finds its own object (409). Returns 0, or -1 when
 * pod or sandbox_id is empty or out[cap] is too small. */
int kubejson_peerpod_name(const char *pod, const char *sandbox_id, char *out, size_t cap);

/* The PeerPod to POST to KUBEJSON_PEERPOD_API/namespaces/<ns>/peerpods:
 * {"apiVersion":"confidentialcontainers.org/v1alpha1","kind":"PeerPod",
 *  "metadata":{"name":..,"namespace":..,"finalizers":["peer.pod/finalizer"],
 *   "ownerReferences":[{"apiVersion":"v1","kind":"Pod","name":<pod>,"uid":<pod_uid>,
 *    "controller":true,"blockOwnerDeletion":true}]},
 *  "spec":{"cloudProvider":..,"instanceID":..}}
 * NULL only when out of memory or a string is not valid UTF-8. */
char *kubejson_peerpod_body(const char *ns, const char *name, const char *pod, const char *pod_uid,
                            const char *cloud_provider, const char *instance_id, size_t *len);

/* JSON patch that drops the finalizer (the Go daemon's): [{"op":"remove","path":"/metadata/finalizers"}] */
extern const char kubejson_peerpod_release_patch[];

/* ---- replies --------------------------------------------------------------------------- */

/* An object's metadata.uid into out[cap]. Returns 0, or -1 when body is not a JSON object,
 * the uid is absent, empty, of the wrong type, holds a NUL byte or does not fit. */
int kubejson_object_uid(const char *body, size_t len, char *out, size_t cap);

/* A Node: its metadata.annotations["kata.peerpods.io/caa-owner"] into owner[cap]. Returns 1
 * when present (a value that does not fit, or holds a NUL byte, counts as present and
 * different: owner is set to ""; a null value is present and empty, as in a Go map), 0 when
 * the node has no such annotation, -1 when body is not a JSON object or metadata,
 * annotations or the value has the wrong type. owner is "" unless 1 is returned. */
int kubejson_node_owner(const char *body, size_t len, char *owner, size_t cap);

struct kubejson_names {
    char **v;              /* names of imagePullSecrets entries, in document order */
    size_t n;
    char *service_account; /* pods only: spec.serviceAccountName, "default" when empty or absent */
};

/* A Pod: spec.imagePullSecrets[].name and spec.serviceAccountName. Entries without a name,
 * or with an empty one, are skipped. *out is overwritten, not freed. Returns 0, or -1 when
 * body is not a JSON object, a field has the wrong type (a name holding a NUL byte
 * included) or memory ran out (*out is then empty). */
int kubejson_pod_pull_secrets(const char *body, size_t len, struct kubejson_names *out);
/* A ServiceAccount: imagePullSecrets[].name (service_account stays NULL). Same rules. */
int kubejson_sa_pull_secrets(const char *body, size_t len, struct kubejson_names *out);
void kubejson_names_clear(struct kubejson_names *names);

/* Registry credentials collected over secrets, in the order they are added. Zero-initialise
 * it before the first kubejson_auths_add_secret. */
struct kubejson_auths {
    struct userdata_registry_auth *v; /* registry and auth strings owned here */
    size_t n, cap;
};

/* Adds the registries of a Secret (the API's JSON, data values base64): data
 * [".dockerconfigjson"] (an object whose "auths" maps registry -> credentials) or, when
 * that key is absent, data[".dockercfg"] (the bare registry map). Per registry: its "auth"
 * when non-empty; else base64("<username>:<password>") when both are non-empty; else the
 * registry is skipped. A registry added again overrides the earlier entry (both stay in v;
 * kubejson_auths_render writes the later one). A secret with neither key adds nothing.
 * Field names in the docker config match as in Go's encoding/json (case-insensitively), and
 * invalid UTF-8 in it reads as U+FFFD as in Go. Returns 0, or -1 with a reason in err
 * (naming the key, never quoting contents) when the secret or its docker config is
 * malformed, or memory ran out; a is then unchanged. Go then stops collecting, and so must
 * the caller. */
int kubejson_auths_add_secret(struct kubejson_auths *a, const char *body, size_t len, char *err, size_t errlen);
/* auth.json (spec 4.4; userdata_auth_json_render's form), or NULL with *len 0 when no
 * registry was collected (the pod VM then gets no auth.json) or out of memory. */
char *kubejson_auths_render(const struct kubejson_auths *a, size_t *len);
void kubejson_auths_clear(struct kubejson_auths *a);

/* Whether a peer pod counts as served by this daemon although its Ready condition predates
 * the daemon's start: its sandbox survived the restart (DECISIONS 10), so the pod was not
 * re-created and never will be. */
typedef bool (*kubejson_pod_known_fn)(const char *ns, const char *name, void *arg);

/* The /startup verdict over a PodList (the pods bound to this node): every pod whose
 * spec.runtimeClassName equals runtime_class and whose status.conditions hold a "Ready"
 * condition (the first one counts) must have status "True" and a lastTransitionTime
 * (RFC 3339; one that does not parse counts as before) after start_unix, in whole seconds,
 * or be known (known may be NULL; it is asked only about pods that fail otherwise). Returns
 * 1 when all pass, 0 when one does not (why gets "pod <ns>/<name> is not Ready" or
 * "pod <ns>/<name> has been Ready since before the daemon started" for the first such pod),
 * -1 when body is not a PodList (no items array, another kind, or a field read here of the
 * wrong type in any item; why gets the reason). why is "" on 1. */
int kubejson_startup_check(const char *body, size_t len, const char *runtime_class, int64_t start_unix,
                           kubejson_pod_known_fn known, void *arg, char *why, size_t whylen);

/* RFC 3339 time ("2026-12-02T06:18:28Z", optional fraction, Z or +hh:mm) to Unix seconds,
 * the fraction dropped; accepts what Go's time.Parse(time.RFC3339, s) accepts (which also
 * takes a one-digit hour and a ',' before the fraction). Returns 0, or -1 when s is not such
 * a time. */
int kubejson_time_parse(const char *s, int64_t *unix_out);

/* The "message" of an API Status reply into out[cap] ("" when body is not a Status or has
 * none), for error logs; control bytes become '?'. */
void kubejson_status_message(const char *body, size_t len, char *out, size_t cap);

/* True when body is an API Status whose details name the object that is missing (a 404 for a
 * namespace or object, "details":{"kind":"namespaces",...}), not an unknown resource type. */
bool kubejson_status_names_object(const char *body, size_t len);

#endif
