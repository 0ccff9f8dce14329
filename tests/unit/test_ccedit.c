/* Unit tests for adaptor/ccedit.c: annotation edits on a CreateContainerRequest leave every
 * other byte as it came, replace an existing key in place of its old entry, create the Spec
 * when there is none, edit the last of repeated Spec fields, list mounts, and refuse
 * malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ccedit.h"
#include "pbwire.h"
#include "provider.h"

const struct provider_ops *const provider_table[] = {NULL};

struct buf {
    uint8_t d[4096];
    size_t n;
};

static void put_len(struct buf *b, uint32_t num, const void *p, size_t len)
{
    b->n += pbwire_len_field_write(b->d + b->n, num, p, len);
}

static void put_str(struct buf *b, uint32_t num, const char *s)
{
    put_len(b, num, s, strlen(s));
}

static void put_entry(struct buf *b, const char *k, const char *v)
{
    struct buf e = {.n = 0};
    put_str(&e, 1, k);
    put_str(&e, 2, v);
    put_len(b, 7, e.d, e.n);
}

static const struct ccedit_annotation cdi = {CCEDIT_ANNOTATION_CDI, CCEDIT_CDI_ALL_GPUS};

static void test_only_annotations_change(void **state)
{
    (void)state;
    struct buf spec = {.n = 0}, req = {.n = 0}, want_spec = {.n = 0}, want = {.n = 0};
    put_str(&spec, 1, "1.1.0");
    put_entry(&spec, "a", "1");
    put_str(&spec, 4, "host");
    put_str(&spec, 99, "unknown");
    put_str(&req, 1, "ctr");
    put_len(&req, 6, spec.d, spec.n);
    put_str(&req, 123, "newer kata");
    /* Expected: the same Spec with the entry appended, the rest byte for byte. */
    memcpy(want_spec.d, spec.d, spec.n);
    want_spec.n = spec.n;
    put_entry(&want_spec, cdi.key, cdi.value);
    put_str(&want, 1, "ctr");
    put_len(&want, 6, want_spec.d, want_spec.n);
    put_str(&want, 123, "newer kata");
    uint8_t *out;
    size_t n;
    assert_int_equal(ccedit_set_annotations(req.d, req.n, &cdi, 1, &out, &n), 0);
    assert_int_equal(n, want.n);
    assert_memory_equal(out, want.d, n);
    free(out);
    /* Nothing to set: an exact copy. */
    assert_int_equal(ccedit_set_annotations(req.d, req.n, NULL, 0, &out, &n), 0);
    assert_int_equal(n, req.n);
    assert_memory_equal(out, req.d, n);
    free(out);
}

static void test_existing_key_replaced(void **state)
{
    (void)state;
    struct buf spec = {.n = 0}, req = {.n = 0}, want_spec = {.n = 0}, want = {.n = 0};
    put_entry(&spec, cdi.key, "old");
    put_entry(&spec, "b", "2");
    put_len(&req, 6, spec.d, spec.n);
    put_entry(&want_spec, "b", "2");
    put_entry(&want_spec, cdi.key, cdi.value);
    put_len(&want, 6, want_spec.d, want_spec.n);
    uint8_t *out;
    size_t n;
    assert_int_equal(ccedit_set_annotations(req.d, req.n, &cdi, 1, &out, &n), 0);
    assert_int_equal(n, want.n);
    assert_memory_equal(out, want.d, n);
    free(out);
}

static void test_no_spec_and_repeated_specs(void **state)
{
    (void)state;
    struct buf req = {.n = 0}, want_spec = {.n = 0}, want = {.n = 0};
    put_str(&req, 1, "ctr");
    put_entry(&want_spec, cdi.key, cdi.value);
    put_str(&want, 1, "ctr");
    put_len(&want, 6, want_spec.d, want_spec.n);
    uint8_t *out;
    size_t n;
    assert_int_equal(ccedit_set_annotations(req.d, req.n, &cdi, 1, &out, &n), 0);
    assert_int_equal(n, want.n);
    assert_memory_equal(out, want.d, n);
    free(out);
    /* Two OCI fields (protobuf merges them): the last one is edited, the first kept. */
    struct buf s1 = {.n = 0}, s2 = {.n = 0}, r2 = {.n = 0};
    put_str(&s1, 1, "first");
    put_str(&s2, 4, "second");
    put_len(&r2, 6, s1.d, s1.n);
    put_len(&r2, 6, s2.d, s2.n);
    assert_int_equal(ccedit_set_annotations(r2.d, r2.n, &cdi, 1, &out, &n), 0);
    assert_memory_equal(out, r2.d, 2 + s1.n); /* the first Spec unchanged */
    free(out);
}

static int mounts_seen;
static void on_mount(void *arg, const uint8_t *dst, size_t dl, const uint8_t *src, size_t sl)
{
    (void)arg;
    if (mounts_seen == 0) {
        assert_int_equal(dl, 10);
        assert_memory_equal(dst, "/etc/hosts", 10);
        assert_int_equal(sl, 4);
        assert_memory_equal(src, "/src", 4);
    }
    mounts_seen++;
}

static void test_mounts_and_malformed(void **state)
{
    (void)state;
    struct buf m = {.n = 0}, spec = {.n = 0}, req = {.n = 0};
    put_str(&m, 1, "/etc/hosts");
    put_str(&m, 2, "/src");
    put_len(&spec, 5, m.d, m.n);
    put_len(&spec, 5, m.d, m.n);
    put_len(&req, 6, spec.d, spec.n);
    mounts_seen = 0;
    assert_int_equal(ccedit_mounts(req.d, req.n, on_mount, NULL), 2);
    assert_int_equal(mounts_seen, 2);
    uint8_t *out;
    size_t n;
    static const uint8_t bad[][4] = {{0x32, 0x05, 0x01}, {0x30, 0x01}, {0x00}, {0x32, 0x02, 0x3a, 0x05}};
    static const size_t lens[] = {3, 2, 1, 4};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(ccedit_set_annotations(bad[i], lens[i], &cdi, 1, &out, &n), -1);
        assert_null(out);
    }
    /* A malformed annotation entry inside the Spec. */
    struct buf s = {.n = 0}, r = {.n = 0};
    uint8_t broken[] = {0x0a, 0x09, 'x'};
    put_len(&s, 7, broken, sizeof(broken));
    put_len(&r, 6, s.d, s.n);
    assert_int_equal(ccedit_set_annotations(r.d, r.n, &cdi, 1, &out, &n), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_only_annotations_change),
        cmocka_unit_test(test_existing_key_replaced),
        cmocka_unit_test(test_no_spec_and_repeated_specs),
        cmocka_unit_test(test_mounts_and_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
