#include "vni.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "podnet.h"

int vni_alloc_init(struct vni_alloc *a, uint32_t min, uint32_t max)
{
    memset(a, 0, sizeof(*a));
    if (min == 0 || min > max || max > PODNET_VNI_MAX) {
        errno = EINVAL;
        return -1;
    }
    a->min = min;
    a->max = max;
    a->cursor = min;
    return 0;
}

void vni_alloc_free(struct vni_alloc *a)
{
    free(a->used);
    memset(a, 0, sizeof(*a));
}

/* First position whose value is >= vni. */
static size_t lower_bound(const struct vni_alloc *a, uint32_t vni)
{
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->used[mid] < vni)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool vni_alloc_used(const struct vni_alloc *a, uint32_t vni)
{
    size_t i = lower_bound(a, vni);
    return i < a->n && a->used[i] == vni;
}

static void cursor_after(struct vni_alloc *a, uint32_t vni)
{
    a->cursor = vni >= a->max ? a->min : vni + 1;
}

static int insert(struct vni_alloc *a, uint32_t vni)
{
    size_t i = lower_bound(a, vni);
    if (i < a->n && a->used[i] == vni)
        return 0;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        uint32_t *u = realloc(a->used, cap * sizeof(*u));
        if (!u) {
            errno = ENOMEM;
            return -1;
        }
        a->used = u;
        a->cap = cap;
    }
    memmove(a->used + i + 1, a->used + i, (a->n - i) * sizeof(*a->used));
    a->used[i] = vni;
    a->n++;
    return 0;
}

int vni_alloc_mark(struct vni_alloc *a, uint32_t vni)
{
    if (vni < a->min || vni > a->max)
        return 0;
    if (insert(a, vni))
        return -1;
    /* Resume after the highest VNI seen, as a fresh counter past the pods still running. */
    if (vni >= a->cursor)
        cursor_after(a, vni);
    return 0;
}

void vni_alloc_release(struct vni_alloc *a, uint32_t vni)
{
    size_t i = lower_bound(a, vni);
    if (i < a->n && a->used[i] == vni) {
        memmove(a->used + i, a->used + i + 1, (a->n - i - 1) * sizeof(*a->used));
        a->n--;
    }
}

int vni_alloc_take(struct vni_alloc *a, uint32_t *vni)
{
    uint64_t span = (uint64_t)a->max - a->min + 1;
    if (a->n >= span) {
        errno = ENOSPC;
        return -1;
    }
    /* The used list is sorted: walk forward from the cursor past a run of used VNIs. */
    uint32_t v = a->cursor;
    size_t i = lower_bound(a, v);
    for (uint64_t tries = 0; tries <= span; tries++) {
        if (i < a->n && a->used[i] == v) {
            i++;
            if (v == a->max) {
                v = a->min;
                i = 0;
            } else {
                v++;
            }
            continue;
        }
        if (insert(a, v))
            return -1;
        cursor_after(a, v);
        *vni = v;
        return 0;
    }
    errno = ENOSPC;
    return -1;
}
