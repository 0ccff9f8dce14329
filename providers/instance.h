/* instance: provider-independent pod-VM helpers — the VM name rule (protocols.md §5.1),
 * the instance-type table with its best-fit selection (§5.2, DECISIONS 20) and the
 * comma-separated allow-list parser.
 *
 * Pure code, no I/O. Names and selections are written into caller buffers. The only
 * heap memory is the array from instance_list_parse(), which the caller releases with
 * instance_list_free(). */
#ifndef PROVIDERS_INSTANCE_H
#define PROVIDERS_INSTANCE_H

#include <stddef.h>
#include <stdint.h>

/* Max VM name length for every provider except ibmcloud-powervs (47). */
#define INSTANCE_NAME_MAX 63

/* Writes "podvm-<pod>-<id8>" built from the sanitized (lower-cased, [a-z0-9-] only) pod
 * name and sandbox id, truncating the pod part so the result stays within max chars.
 * NULL inputs count as "". Returns 0, or -1 (out untouched unless outlen > 0, then "")
 * if the name plus NUL does not fit outlen; outlen >= max + 1 is always enough. */
int instance_name_generate(char *out, size_t outlen, const char *pod_name,
                           const char *sandbox_id, size_t max);

struct instance_type {
    char name[128];
    uint32_t vcpus;
    uint32_t memory_mib;
    uint32_t gpus;
    uint32_t max_data_disks; /* 0 = not known (Azure: maxDataDiskCount) */
};

/* Stable ascending sort by (gpus, memory_mib, vcpus); ties keep their given order. */
void instance_types_sort(struct instance_type *v, size_t n);

/* Picks the instance type for one pod. sorted must come from instance_types_sort();
 * allow is the configured allow-list (n_allow == 0: only default_type is allowed);
 * machine_type may be NULL or "". Returns 0 with the type in out, or -1 with a message in
 * err (the Go daemon's text followed by a hint; always NUL-terminated, possibly truncated).
 * out too small for the chosen name is reported as an error as well. */
int instance_type_select(const struct instance_type *sorted, size_t n,
                         const char *const *allow, size_t n_allow,
                         const char *default_type, const char *machine_type,
                         uint32_t vcpus, uint32_t memory_mib, uint32_t gpus,
                         char *out, size_t outlen, char *err, size_t errlen);

/* Splits csv on ',' trimming ASCII white space around items and dropping empty ones.
 * On success *out is a heap array of *n heap strings (NULL when *n == 0) owned by the
 * caller; returns 0, or -1 on allocation failure (then *out = NULL, *n = 0). */
int instance_list_parse(const char *csv, char ***out, size_t *n);
void instance_list_free(char **v, size_t n);

#endif
