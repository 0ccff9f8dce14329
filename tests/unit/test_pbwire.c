/* Unit tests for adaptor/pbwire.c: protobuf varints and field reading (wire format only). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "pbwire.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct varint_case {
    uint64_t v;
    size_t n;
    uint8_t bytes[10];
};

static const struct varint_case varint_cases[] = {
    {0, 1, {0x00}},
    {1, 1, {0x01}},
    {127, 1, {0x7f}},
    {128, 2, {0x80, 0x01}},
    {300, 2, {0xac, 0x02}},
    {16383, 2, {0xff, 0x7f}},
    {16384, 3, {0x80, 0x80, 0x01}},
    {UINT64_C(1) << 32, 5, {0x80, 0x80, 0x80, 0x80, 0x10}},
    {UINT64_C(0xffffffff), 5, {0xff, 0xff, 0xff, 0xff, 0x0f}},
    {UINT64_C(1) << 63, 10, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
    {UINT64_MAX, 10, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
};

static void test_varint_write_size(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(varint_cases); i++) {
        const struct varint_case *c = &varint_cases[i];
        uint8_t out[12];
        memset(out, 0xee, sizeof(out));
        assert_int_equal(pbwire_varint_size(c->v), c->n);
        assert_int_equal(pbwire_varint_write(out, c->v), c->n);
        assert_memory_equal(out, c->bytes, c->n);
        assert_int_equal(out[c->n], 0xee); /* nothing written past the end */
    }
}

static void test_varint_read(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(varint_cases); i++) {
        const struct varint_case *c = &varint_cases[i];
        uint64_t v = 12345;
        /* Exact buffer. */
        assert_int_equal(pbwire_varint_read(c->bytes, c->bytes + c->n, &v), c->n);
        assert_true(v == c->v);
        /* Trailing bytes are not consumed. */
        uint8_t buf[16];
        memcpy(buf, c->bytes, c->n);
        memset(buf + c->n, 0xff, sizeof(buf) - c->n);
        v = 12345;
        assert_int_equal(pbwire_varint_read(buf, buf + sizeof(buf), &v), c->n);
        assert_true(v == c->v);
    }
}

/* Non-minimal encodings are legal protobuf (e.g. 0 as 80 00). */
static void test_varint_read_non_minimal(void **state)
{
    (void)state;
    const uint8_t zero2[] = {0x80, 0x00};
    const uint8_t one10[] = {0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    uint64_t v = 99;
    assert_int_equal(pbwire_varint_read(zero2, zero2 + sizeof(zero2), &v), 2);
    assert_true(v == 0);
    assert_int_equal(pbwire_varint_read(one10, one10 + sizeof(one10), &v), 10);
    assert_true(v == 1);
}

static void test_varint_truncated(void **state)
{
    (void)state;
    uint64_t v = 77;
    const uint8_t b[] = {0xff, 0xff, 0xff};
    /* Empty input. */
    assert_int_equal(pbwire_varint_read(b, b, &v), 0);
    /* Every proper prefix of a multi-byte varint is truncated. */
    for (size_t i = 0; i < ARRAY_LEN(varint_cases); i++) {
        const struct varint_case *c = &varint_cases[i];
        for (size_t k = 0; k < c->n; k++)
            assert_int_equal(pbwire_varint_read(c->bytes, c->bytes + k, &v), 0);
    }
    assert_int_equal(pbwire_varint_read(b, b + sizeof(b), &v), 0);
    assert_true(v == 77); /* untouched on failure */
}

static void test_varint_too_long(void **state)
{
    (void)state;
    uint64_t v = 5;
    /* 11 bytes: ten continuation bytes then a terminator. */
    const uint8_t b11[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    assert_int_equal(pbwire_varint_read(b11, b11 + sizeof(b11), &v), 0);
    /* Ten continuation bytes and nothing more. */
    assert_int_equal(pbwire_varint_read(b11, b11 + 10, &v), 0);
    uint8_t many[32];
    memset(many, 0xff, sizeof(many));
    assert_int_equal(pbwire_varint_read(many, many + sizeof(many), &v), 0);
    assert_true(v == 5);
}

/* ---- fields ----------------------------------------------------------------------- */

static void test_field_varint(void **state)
{
    (void)state;
    const uint8_t b[] = {0x08, 0x96, 0x01, 0xaa};
    const uint8_t *p = b;
    struct pbwire_field f;
    assert_int_equal(pbwire_field_next(&p, b + 3, &f), 0);
    assert_ptr_equal(p, b + 3);
    assert_int_equal(f.number, 1);
    assert_int_equal(f.type, PBWIRE_VARINT);
    assert_true(f.u == 150);
    assert_null(f.data);
    assert_int_equal(f.len, 0);
}

static void test_field_i64(void **state)
{
    (void)state;
    /* field 2, fixed64 little-endian 0x0807060504030201 */
    const uint8_t b[] = {0x11, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
    const uint8_t *p = b;
    struct pbwire_field f;
    assert_int_equal(pbwire_field_next(&p, b + sizeof(b), &f), 0);
    assert_ptr_equal(p, b + sizeof(b));
    assert_int_equal(f.number, 2);
    assert_int_equal(f.type, PBWIRE_I64);
    assert_true(f.u == UINT64_C(0x0807060504030201));
    /* One byte short. */
    p = b;
    assert_int_equal(pbwire_field_next(&p, b + sizeof(b) - 1, &f), -1);
    assert_ptr_equal(p, b);
}

static void test_field_i32(void **state)
{
    (void)state;
    /* field 15, fixed32 0xdeadbeef */
    const uint8_t b[] = {0x7d, 0xef, 0xbe, 0xad, 0xde};
    const uint8_t *p = b;
    struct pbwire_field f;
    assert_int_equal(pbwire_field_next(&p, b + sizeof(b), &f), 0);
    assert_ptr_equal(p, b + sizeof(b));
    assert_int_equal(f.number, 15);
    assert_int_equal(f.type, PBWIRE_I32);
    assert_true(f.u == 0xdeadbeefu);
    p = b;
    assert_int_equal(pbwire_field_next(&p, b + 4, &f), -1);
    assert_ptr_equal(p, b);
}

static void test_field_len(void **state)
{
    (void)state;
    /* field 16 (two-byte tag 82 01), "abc" then an empty field 3 */
    const uint8_t b[] = {0x82, 0x01, 0x03, 'a', 'b', 'c', 0x1a, 0x00};
    const uint8_t *p = b;
    struct pbwire_field f;
    assert_int_equal(pbwire_field_next(&p, b + sizeof(b), &f), 0);
    assert_int_equal(f.number, 16);
    assert_int_equal(f.type, PBWIRE_LEN);
    assert_ptr_equal(f.data, b + 3);
    assert_int_equal(f.len, 3);
    assert_ptr_equal(p, b + 6);
    assert_int_equal(pbwire_field_next(&p, b + sizeof(b), &f), 0);
    assert_int_equal(f.number, 3);
    assert_int_equal(f.type, PBWIRE_LEN);
    assert_int_equal(f.len, 0);
    assert_ptr_equal(p, b + sizeof(b));
}

static void test_field_len_errors(void **state)
{
    (void)state;
    struct pbwire_field f;
    const uint8_t *p;
    /* Length past the end. */
    const uint8_t past[] = {0x0a, 0x04, 'a', 'b', 'c'};
    p = past;
    assert_int_equal(pbwire_field_next(&p, past + sizeof(past), &f), -1);
    assert_ptr_equal(p, past);
    /* Huge length (would wrap a pointer). */
    const uint8_t huge[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 'x'};
    p = huge;
    assert_int_equal(pbwire_field_next(&p, huge + sizeof(huge), &f), -1);
    /* Truncated length varint. */
    const uint8_t trunc[] = {0x0a, 0x80};
    p = trunc;
    assert_int_equal(pbwire_field_next(&p, trunc + sizeof(trunc), &f), -1);
    /* Missing length. */
    p = trunc;
    assert_int_equal(pbwire_field_next(&p, trunc + 1, &f), -1);
}

static void test_field_bad_tags(void **state)
{
    (void)state;
    struct pbwire_field f;
    const uint8_t *p;
    /* Field number 0 with each wire type. */
    for (uint8_t wt = 0; wt < 8; wt++) {
        const uint8_t b[] = {wt, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
        p = b;
        assert_int_equal(pbwire_field_next(&p, b + sizeof(b), &f), -1);
        assert_ptr_equal(p, b);
    }
    /* Group start (3), group end (4) and the invalid wire types 6, 7. */
    const uint8_t bad_types[] = {3, 4, 6, 7};
    for (size_t i = 0; i < ARRAY_LEN(bad_types); i++) {
        const uint8_t b[] = {(uint8_t)(1 << 3 | bad_types[i]), 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
        p = b;
        assert_int_equal(pbwire_field_next(&p, b + sizeof(b), &f), -1);
        assert_ptr_equal(p, b);
    }
    /* Truncated tag. */
    const uint8_t ttag[] = {0x80};
    p = ttag;
    assert_int_equal(pbwire_field_next(&p, ttag + 1, &f), -1);
    /* Field number above 2^29-1. */
    const uint8_t big[] = {0x80, 0x80, 0x80, 0x80, 0x20, 0x00};
    p = big;
    assert_int_equal(pbwire_field_next(&p, big + sizeof(big), &f), -1);
    /* The largest valid field number 2^29-1, varint wire type. */
    const uint8_t max[] = {0xf8, 0xff, 0xff, 0xff, 0x0f, 0x05};
    p = max;
    assert_int_equal(pbwire_field_next(&p, max + sizeof(max), &f), 0);
    assert_int_equal(f.number, 0x1fffffff);
    assert_true(f.u == 5);
    /* Truncated varint value. */
    const uint8_t tval[] = {0x08, 0x80, 0x80};
    p = tval;
    assert_int_equal(pbwire_field_next(&p, tval + sizeof(tval), &f), -1);
    /* Tag but no value at all. */
    p = tval;
    assert_int_equal(pbwire_field_next(&p, tval + 1, &f), -1);
}

static void test_field_writers(void **state)
{
    (void)state;
    uint8_t out[300];
    assert_int_equal(pbwire_len_field_size(1, 3), 5);
    assert_int_equal(pbwire_len_field_write(out, 1, "abc", 3), 5);
    assert_memory_equal(out, "\x0a\x03" "abc", 5);
    assert_int_equal(pbwire_len_field_size(2, 0), 2);
    assert_int_equal(pbwire_len_field_write(out, 2, NULL, 0), 2);
    assert_memory_equal(out, "\x12\x00", 2);
    /* 200 bytes: two-byte length; field 16: two-byte tag. */
    uint8_t data[200];
    memset(data, 'z', sizeof(data));
    assert_int_equal(pbwire_len_field_size(16, 200), 204);
    assert_int_equal(pbwire_len_field_write(out, 16, data, 200), 204);
    assert_memory_equal(out, "\x82\x01\xc8\x01", 4);
    assert_memory_equal(out + 4, data, 200);

    assert_int_equal(pbwire_varint_field_size(4, 0), 2);
    assert_int_equal(pbwire_varint_field_write(out, 4, 0), 2);
    assert_memory_equal(out, "\x20\x00", 2);
    assert_int_equal(pbwire_varint_field_size(4, UINT64_MAX), 11);
    assert_int_equal(pbwire_varint_field_write(out, 4, UINT64_MAX), 11);
    assert_memory_equal(out, "\x20\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);

    /* What the writers produce, field_next reads back. */
    size_t n = pbwire_varint_field_write(out, 7, 300);
    n += pbwire_len_field_write(out + n, 9, "xy", 2);
    const uint8_t *p = out;
    struct pbwire_field f;
    assert_int_equal(pbwire_field_next(&p, out + n, &f), 0);
    assert_int_equal(f.number, 7);
    assert_int_equal(f.type, PBWIRE_VARINT);
    assert_true(f.u == 300);
    assert_int_equal(pbwire_field_next(&p, out + n, &f), 0);
    assert_int_equal(f.number, 9);
    assert_int_equal(f.type, PBWIRE_LEN);
    assert_int_equal(f.len, 2);
    assert_memory_equal(f.data, "xy", 2);
    assert_ptr_equal(p, out + n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint_write_size),
        cmocka_unit_test(test_varint_read),
        cmocka_unit_test(test_varint_read_non_minimal),
        cmocka_unit_test(test_varint_truncated),
        cmocka_unit_test(test_varint_too_long),
        cmocka_unit_test(test_field_varint),
        cmocka_unit_test(test_field_i64),
        cmocka_unit_test(test_field_i32),
        cmocka_unit_test(test_field_len),
        cmocka_unit_test(test_field_len_errors),
        cmocka_unit_test(test_field_bad_tags),
        cmocka_unit_test(test_field_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
