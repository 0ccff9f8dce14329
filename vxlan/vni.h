/* vni: the VXLAN id allocator (DECISIONS 8). VNIs are -vxlan-min-id + index, handed out
 * round-robin from a cursor so a freed VNI is not reused at once, never one that is marked
 * in use, never above 2^24-1.
 *
 * The allocator itself is pure and in memory. What makes it durable is its inputs at
 * start-up: every sandbox record carries its VNI (adaptor/sandbox), and the VXLAN devices
 * found in the pod namespaces (tunnel_scan) are marked too, so a restart never hands out a
 * VNI a running pod still uses; the cursor resumes after the highest VNI in use.
 *
 * struct vni_alloc is owned by the caller: vni_alloc_init, then vni_alloc_free. */
#ifndef VXLAN_VNI_H
#define VXLAN_VNI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vni_alloc {
    uint32_t min, max;
    uint32_t cursor;
    uint32_t *used; /* sorted, owned */
    size_t n, cap;
};

/* -1 (EINVAL) when min is 0 or min > max or max > 2^24-1. */
int vni_alloc_init(struct vni_alloc *a, uint32_t min, uint32_t max);
void vni_alloc_free(struct vni_alloc *a);

/* Marks vni in use (outside [min, max] it is ignored) and moves the cursor past it. 0 or -1
 * (ENOMEM). */
int vni_alloc_mark(struct vni_alloc *a, uint32_t vni);
bool vni_alloc_used(const struct vni_alloc *a, uint32_t vni);
/* Frees vni; unknown ones are ignored. */
void vni_alloc_release(struct vni_alloc *a, uint32_t vni);

/* Takes the next free VNI at or after the cursor, wrapping to min. 0 or -1 (ENOSPC when
 * every VNI of the range is in use, ENOMEM). */
int vni_alloc_take(struct vni_alloc *a, uint32_t *vni);

#endif
