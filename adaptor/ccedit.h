/* ccedit: the CreateContainer interception of spec protocols.md 3.4, done on the protobuf
 * wire. grpc.AgentService/CreateContainer carries CreateContainerRequest, whose field 6 is
 * the OCI Spec, whose field 7 is the annotations map. Only annotation entries change: every
 * other byte of the request, known to us or not, is copied as it came, so fields this daemon
 * has never heard of reach the agent exactly as the shim sent them. Entries whose key is set
 * here are dropped where they stood and the new values appended at the end of the Spec. A
 * request without a Spec gets one holding just the annotations (the Go daemon would crash).
 * Pure code: no I/O.
 *
 * Memory: inputs are borrowed for the call; *out is malloc'd and owned by the caller. */
#ifndef ADAPTOR_CCEDIT_H
#define ADAPTOR_CCEDIT_H

#include <stddef.h>
#include <stdint.h>

#define CCEDIT_ANNOTATION_CDI "cdi.k8s.io/peer-pods"
#define CCEDIT_CDI_ALL_GPUS "nvidia.com/gpu=all"

struct ccedit_annotation {
    const char *key, *value;
};

/* Sets the n annotations. Returns 0 with the edited request in *out, or -1 if the input is
 * not a well-formed CreateContainerRequest (the caller forwards it untouched then, for the
 * agent to reject). n == 0 copies. */
int ccedit_set_annotations(const uint8_t *in, size_t len, const struct ccedit_annotation *a, size_t n, uint8_t **out,
                           size_t *out_len);

/* The value of annotation key in the (last) Spec as a malloc'd string, NULL if absent. */
char *ccedit_annotation_get(const uint8_t *in, size_t len, const char *key);

/* Calls fn for each OCI mount (Spec field 5: Mount{1 destination, 2 source}) in order, with
 * the strings as (pointer, length) views into in. Returns the number of mounts, -1 if
 * malformed. */
int ccedit_mounts(const uint8_t *in, size_t len,
                  void (*fn)(void *arg, const uint8_t *dst, size_t dst_len, const uint8_t *src, size_t src_len),
                  void *arg);

#endif
