/* annotations: turns the annotation map kata sends with CreateVM (protocols.md §2.3,
 * §2.4 steps 2-4) into a pod_spec. Pure code, no I/O.
 *
 * The annotation array and its strings are borrowed for the duration of the call only.
 * Every string in a successfully parsed pod_spec is a heap copy owned by the pod_spec and
 * released by pod_spec_free(). */
#ifndef ADAPTOR_ANNOTATIONS_H
#define ADAPTOR_ANNOTATIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ANNOTATION_SANDBOX_NAME "io.kubernetes.cri.sandbox-name"
#define ANNOTATION_SANDBOX_NAMESPACE "io.kubernetes.cri.sandbox-namespace"
#define ANNOTATION_MACHINE_TYPE "io.katacontainers.config.hypervisor.machine_type"
#define ANNOTATION_IMAGE "io.katacontainers.config.hypervisor.image"
#define ANNOTATION_VCPUS "io.katacontainers.config.hypervisor.default_vcpus"
#define ANNOTATION_MEMORY "io.katacontainers.config.hypervisor.default_memory"
#define ANNOTATION_GPUS "io.katacontainers.config.hypervisor.default_gpus"
#define ANNOTATION_GPU_MODEL "io.katacontainers.config.hypervisor.default_gpu_model"
#define ANNOTATION_INITDATA "io.katacontainers.config.hypervisor.cc_init_data"
#define ANNOTATION_INITDATA_RUNTIME "io.katacontainers.config.runtime.cc_init_data"

struct annotation {
    const char *key;   /* borrowed; entries with a NULL key are ignored */
    const char *value; /* borrowed; NULL counts as "" */
};

struct pod_spec {
    /* Owned, never NULL after a successful parse ("" when absent). */
    char *pod_name, *pod_namespace, *machine_type, *image, *gpu_model;
    /* Raw initdata from the hypervisor key, else from the runtime key; "" if neither. */
    char *initdata;
    uint32_t vcpus, memory_mib, gpus;
    /* default_gpus present and non-empty (even "0"): drives the CDI marker later. */
    bool gpus_annotated;
};

/* Fills *out from the n annotations (duplicate keys: the last one wins). Returns 0, or -1
 * with the Go daemon's message in err (NUL-terminated, possibly truncated); on failure
 * nothing is allocated and *out is zeroed. */
int pod_spec_parse(struct pod_spec *out, const struct annotation *a, size_t n, char *err,
                   size_t errlen);

/* Frees the owned strings and zeroes *ps; safe on a zeroed or already freed pod_spec. */
void pod_spec_free(struct pod_spec *ps);

#endif
