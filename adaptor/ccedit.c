/* ccedit: CreateContainer annotation edits on the wire (see ccedit.h). */
#include "ccedit.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pbwire.h"

#define FIELD_OCI 6         /* CreateContainerRequest.OCI */
#define FIELD_MOUNTS 5      /* Spec.Mounts */
#define FIELD_ANNOTATIONS 7 /* Spec.Annotations (map entries: 1 key, 2 value) */

/* The key of a map entry, or NULL/0 when it has none (an empty key). */
static int entry_key(const uint8_t *p, size_t len, const uint8_t **key, size_t *key_len)
{
    const uint8_t *pos = p, *end = p + len;
    *key = NULL;
    *key_len = 0;
    while (pos < end) {
        struct pbwire_field f;
        if (pbwire_field_next(&pos, end, &f))
            return -1;
        if (f.number == 1 && f.type == PBWIRE_LEN) {
            *key = f.data; /* the last one wins, as protobuf merges */
            *key_len = f.len;
        }
    }
    return 0;
}

static bool key_set(const struct ccedit_annotation *a, size_t n, const uint8_t *k, size_t klen)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(a[i].key) == klen && memcmp(a[i].key, k, klen) == 0)
            return true;
    return false;
}

static size_t entry_size(const struct ccedit_annotation *a)
{
    size_t kl = strlen(a->key), vl = strlen(a->value);
    size_t inner = pbwire_len_field_size(1, kl) + pbwire_len_field_size(2, vl);
    return pbwire_len_field_size(FIELD_ANNOTATIONS, inner);
}

static uint8_t *entry_write(uint8_t *o, const struct ccedit_annotation *a)
{
    size_t kl = strlen(a->key), vl = strlen(a->value);
    size_t inner = pbwire_len_field_size(1, kl) + pbwire_len_field_size(2, vl);
    o += pbwire_varint_write(o, (uint64_t)FIELD_ANNOTATIONS << 3 | PBWIRE_LEN);
    o += pbwire_varint_write(o, inner);
    o += pbwire_len_field_write(o, 1, a->key, kl);
    o += pbwire_len_field_write(o, 2, a->value, vl);
    return o;
}

/* The edited Spec body into out (NULL: only measure). Returns its size, or -1. */
static long spec_edit(const uint8_t *spec, size_t len, const struct ccedit_annotation *a, size_t n, uint8_t *out)
{
    const uint8_t *pos = spec, *end = spec + len;
    size_t size = 0;
    while (pos < end) {
        const uint8_t *start = pos;
        struct pbwire_field f;
        if (pbwire_field_next(&pos, end, &f))
            return -1;
        if (f.number == FIELD_ANNOTATIONS && f.type == PBWIRE_LEN) {
            const uint8_t *k;
            size_t kl;
            if (entry_key(f.data, f.len, &k, &kl))
                return -1;
            if (key_set(a, n, k, kl))
                continue; /* replaced below */
        }
        if (out)
            memcpy(out + size, start, (size_t)(pos - start));
        size += (size_t)(pos - start);
    }
    for (size_t i = 0; i < n; i++) {
        if (out)
            entry_write(out + size, &a[i]);
        size += entry_size(&a[i]);
    }
    return (long)size;
}

int ccedit_set_annotations(const uint8_t *in, size_t len, const struct ccedit_annotation *a, size_t n, uint8_t **out,
                           size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    /* Pass 1: find the last OCI field (protobuf merges repeated message fields; edit the
     * last so our entries win) and measure. */
    const uint8_t *pos = in, *end = in + len, *last_oci = NULL;
    size_t last_oci_len = 0;
    while (pos < end) {
        struct pbwire_field f;
        if (pbwire_field_next(&pos, end, &f))
            return -1;
        if (f.number == FIELD_OCI) {
            if (f.type != PBWIRE_LEN)
                return -1;
            last_oci = f.data;
            last_oci_len = f.len;
        }
    }
    long spec_size = last_oci ? spec_edit(last_oci, last_oci_len, a, n, NULL) : spec_edit(NULL, 0, a, n, NULL);
    if (spec_size < 0)
        return -1;
    size_t total = len + pbwire_len_field_size(FIELD_OCI, (size_t)spec_size);
    uint8_t *buf = malloc(total ? total : 1);
    if (!buf)
        return -1;
    /* Pass 2: copy every field, the last OCI one edited in place (or appended). */
    size_t o = 0;
    pos = in;
    while (pos < end) {
        const uint8_t *start = pos;
        struct pbwire_field f;
        pbwire_field_next(&pos, end, &f);
        if (f.number == FIELD_OCI && f.data == last_oci) {
            o += pbwire_varint_write(buf + o, (uint64_t)FIELD_OCI << 3 | PBWIRE_LEN);
            o += pbwire_varint_write(buf + o, (uint64_t)spec_size);
            spec_edit(last_oci, last_oci_len, a, n, buf + o);
            o += (size_t)spec_size;
            continue;
        }
        memcpy(buf + o, start, (size_t)(pos - start));
        o += (size_t)(pos - start);
    }
    if (!last_oci) {
        o += pbwire_varint_write(buf + o, (uint64_t)FIELD_OCI << 3 | PBWIRE_LEN);
        o += pbwire_varint_write(buf + o, (uint64_t)spec_size);
        spec_edit(NULL, 0, a, n, buf + o);
        o += (size_t)spec_size;
    }
    *out = buf;
    *out_len = o;
    return 0;
}

int ccedit_mounts(const uint8_t *in, size_t len,
                  void (*fn)(void *arg, const uint8_t *dst, size_t dst_len, const uint8_t *src, size_t src_len),
                  void *arg)
{
    const uint8_t *pos = in, *end = in + len;
    int count = 0;
    while (pos < end) {
        struct pbwire_field f;
        if (pbwire_field_next(&pos, end, &f))
            return -1;
        if (f.number != FIELD_OCI || f.type != PBWIRE_LEN)
            continue;
        const uint8_t *sp = f.data, *se = f.data + f.len;
        while (sp < se) {
            struct pbwire_field m;
            if (pbwire_field_next(&sp, se, &m))
                return -1;
            if (m.number != FIELD_MOUNTS || m.type != PBWIRE_LEN)
                continue;
            const uint8_t *mp = m.data, *me = m.data + m.len, *dst = NULL, *src = NULL;
            size_t dl = 0, sl = 0;
            while (mp < me) {
                struct pbwire_field x;
                if (pbwire_field_next(&mp, me, &x))
                    return -1;
                if (x.number == 1 && x.type == PBWIRE_LEN)
                    dst = x.data, dl = x.len;
                else if (x.number == 2 && x.type == PBWIRE_LEN)
                    src = x.data, sl = x.len;
            }
            if (fn)
                fn(arg, dst, dl, src, sl);
            count++;
        }
    }
    return count;
}

char *ccedit_annotation_get(const uint8_t *in, size_t len, const char *key)
{
    const uint8_t *pos = in, *end = in + len, *spec = NULL;
    size_t spec_len = 0;
    while (pos < end) {
        struct pbwire_field f;
        if (pbwire_field_next(&pos, end, &f))
            return NULL;
        if (f.number == FIELD_OCI && f.type == PBWIRE_LEN)
            spec = f.data, spec_len = f.len;
    }
    char *value = NULL;
    for (pos = spec, end = spec + spec_len; spec && pos < end;) {
        struct pbwire_field f;
        if (pbwire_field_next(&pos, end, &f))
            break;
        if (f.number != FIELD_ANNOTATIONS || f.type != PBWIRE_LEN)
            continue;
        const uint8_t *k, *ep = f.data, *ee = f.data + f.len, *v = NULL;
        size_t kl, vl = 0;
        if (entry_key(f.data, f.len, &k, &kl) || kl != strlen(key) || (kl && memcmp(k, key, kl)))
            continue;
        while (ep < ee) {
            struct pbwire_field x;
            if (pbwire_field_next(&ep, ee, &x))
                break;
            if (x.number == 2 && x.type == PBWIRE_LEN)
                v = x.data, vl = x.len;
        }
        free(value);
        if ((value = malloc(vl + 1))) { /* the last entry wins */
            if (vl)
                memcpy(value, v, vl);
            value[vl] = '\0';
        }
    }
    return value;
}
