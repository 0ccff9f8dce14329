/* Unit tests for adaptor/ttrpc.c: frame header, framer, Request/Response codec
 * (protocols.md §1, including the worked example of §1.6). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ttrpc.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- a tiny protobuf writer, independent of pbwire.c ---------------------------------- */

struct pb {
    uint8_t b[4096];
    size_t n;
};

static void pb_raw(struct pb *p, const void *data, size_t len)
{
    assert_true(p->n + len <= sizeof(p->b));
    memcpy(p->b + p->n, data, len);
    p->n += len;
}

static void pb_varint(struct pb *p, uint64_t v)
{
    do {
        uint8_t c = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            c |= 0x80;
        pb_raw(p, &c, 1);
    } while (v);
}

static void pb_tag(struct pb *p, uint32_t num, unsigned wt)
{
    pb_varint(p, (uint64_t)num << 3 | wt);
}

static void pb_bytes(struct pb *p, uint32_t num, const void *data, size_t len)
{
    pb_tag(p, num, 2);
    pb_varint(p, len);
    pb_raw(p, data, len);
}

static void pb_str(struct pb *p, uint32_t num, const char *s)
{
    pb_bytes(p, num, s, strlen(s));
}

static void pb_uint(struct pb *p, uint32_t num, uint64_t v)
{
    pb_tag(p, num, 0);
    pb_varint(p, v);
}

/* A KeyValue entry as field 5; key/value NULL = field absent. */
static void pb_kv(struct pb *p, const char *k, const char *v)
{
    struct pb e = {.n = 0};
    if (k)
        pb_str(&e, 1, k);
    if (v)
        pb_str(&e, 2, v);
    pb_bytes(p, 5, e.b, e.n);
}

static void assert_bytes(struct ttrpc_bytes b, const char *s)
{
    assert_int_equal(b.len, strlen(s));
    if (b.len)
        assert_memory_equal(b.data, s, b.len);
}

/* ---- §1.6 worked example ------------------------------------------------------------ */

static const uint8_t version_request_frame[] = {
    0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00,
    0x0a, 0x15, 'h', 'y', 'p', 'e', 'r', 'v', 'i', 's', 'o', 'r', '.',
    'H', 'y', 'p', 'e', 'r', 'v', 'i', 's', 'o', 'r',
    0x12, 0x07, 'V', 'e', 'r', 's', 'i', 'o', 'n',
};

static const uint8_t version_response_frame[] = {
    0x00, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00,
    0x0a, 0x00, 0x12, 0x07, 0x0a, 0x05, 0x30, 0x2e, 0x30, 0x2e, 0x30,
};

static const uint8_t version_payload[] = {0x0a, 0x05, 0x30, 0x2e, 0x30, 0x2e, 0x30};

static void test_example_request_decode(void **state)
{
    (void)state;
    assert_int_equal(sizeof(version_request_frame), 42);
    struct ttrpc_framer fr = {0};
    struct ttrpc_header h;
    size_t used = 99;
    assert_int_equal(ttrpc_framer_next(&fr, version_request_frame, sizeof(version_request_frame), &h, &used),
                     TTRPC_FRAME_READY);
    assert_int_equal(used, sizeof(version_request_frame));
    assert_int_equal(h.length, 32);
    assert_int_equal(h.stream_id, 1);
    assert_int_equal(h.type, TTRPC_REQUEST);
    assert_int_equal(h.flags, 0);

    struct ttrpc_request r;
    const char *err = NULL;
    assert_int_equal(ttrpc_request_decode(&r, version_request_frame + TTRPC_HEADER_SIZE, h.length, &err), 0);
    assert_bytes(r.service, "hypervisor.Hypervisor");
    assert_bytes(r.method, "Version");
    assert_int_equal(r.payload.len, 0);
    assert_true(r.timeout_nano == 0);
    assert_int_equal(r.n_metadata, 0);
    assert_true(ttrpc_bytes_eq(r.service, "hypervisor.Hypervisor"));
    assert_true(ttrpc_bytes_eq(r.method, "Version"));
}

static void test_example_request_encode(void **state)
{
    (void)state;
    struct ttrpc_request r;
    memset(&r, 0, sizeof(r));
    r.service.data = (const uint8_t *)"hypervisor.Hypervisor";
    r.service.len = 21;
    r.method.data = (const uint8_t *)"Version";
    r.method.len = 7;
    uint8_t out[64];
    memset(out, 0xee, sizeof(out));
    size_t n = ttrpc_request_size(&r, 0);
    assert_int_equal(n, 32);
    struct ttrpc_header h = {.length = (uint32_t)n, .stream_id = 1, .type = TTRPC_REQUEST, .flags = 0};
    ttrpc_header_encode(out, &h);
    assert_int_equal(ttrpc_request_encode(out + TTRPC_HEADER_SIZE, &r, 0), 32);
    assert_memory_equal(out, version_request_frame, sizeof(version_request_frame));
    assert_int_equal(out[sizeof(version_request_frame)], 0xee);
}

static void test_example_response_encode(void **state)
{
    (void)state;
    uint8_t out[64];
    memset(out, 0xee, sizeof(out));
    size_t n = ttrpc_response_size(0, 0, sizeof(version_payload));
    assert_int_equal(n, 11);
    struct ttrpc_header h = {.length = (uint32_t)n, .stream_id = 1, .type = TTRPC_RESPONSE, .flags = 0};
    ttrpc_header_encode(out, &h);
    assert_int_equal(ttrpc_response_encode(out + TTRPC_HEADER_SIZE, 0, NULL, 0, version_payload,
                                           sizeof(version_payload)),
                     11);
    assert_memory_equal(out, version_response_frame, sizeof(version_response_frame));
    assert_int_equal(out[sizeof(version_response_frame)], 0xee);
}

static void test_example_response_decode(void **state)
{
    (void)state;
    struct ttrpc_framer fr = {0};
    struct ttrpc_header h;
    size_t used;
    assert_int_equal(ttrpc_framer_next(&fr, version_response_frame, sizeof(version_response_frame), &h, &used),
                     TTRPC_FRAME_READY);
    assert_int_equal(used, 21);
    assert_int_equal(h.length, 11);
    assert_int_equal(h.stream_id, 1);
    assert_int_equal(h.type, TTRPC_RESPONSE);
    assert_int_equal(h.flags, 0);
    struct ttrpc_response r;
    const char *err = NULL;
    assert_int_equal(ttrpc_response_decode(&r, version_response_frame + TTRPC_HEADER_SIZE, 11, &err), 0);
    assert_true(r.has_status);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.message.len, 0);
    assert_int_equal(r.payload.len, sizeof(version_payload));
    assert_memory_equal(r.payload.data, version_payload, sizeof(version_payload));
}

/* ---- header ------------------------------------------------------------------------- */

static void test_header_roundtrip(void **state)
{
    (void)state;
    const struct ttrpc_header cases[] = {
        {0, 0, 0, 0},
        {0x01020304u, 0xa0b0c0d0u, 3, 0xff},
        {TTRPC_MESSAGE_MAX, 0xffffffffu, TTRPC_DATA, 0x05},
        {0xffffffffu, 1, 0x7f, 0x80},
    };
    uint8_t b[TTRPC_HEADER_SIZE + 1];
    ttrpc_header_encode(b, &cases[1]);
    assert_memory_equal(b, "\x01\x02\x03\x04\xa0\xb0\xc0\xd0\x03\xff", 10);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        b[TTRPC_HEADER_SIZE] = 0x5a;
        ttrpc_header_encode(b, &cases[i]);
        assert_int_equal(b[TTRPC_HEADER_SIZE], 0x5a);
        struct ttrpc_header h;
        memset(&h, 0x33, sizeof(h));
        ttrpc_header_decode(&h, b);
        assert_int_equal(h.length, cases[i].length);
        assert_int_equal(h.stream_id, cases[i].stream_id);
        assert_int_equal(h.type, cases[i].type);
        assert_int_equal(h.flags, cases[i].flags);
    }
    /* 4 MiB has a zero first byte (reserved). */
    ttrpc_header_encode(b, &cases[2]);
    assert_memory_equal(b, "\x00\x40\x00\x00\xff\xff\xff\xff\x03\x05", 10);
}

/* ---- framer ------------------------------------------------------------------------- */

static void put_header(uint8_t *b, uint32_t len, uint32_t sid, uint8_t type)
{
    struct ttrpc_header h = {.length = len, .stream_id = sid, .type = type, .flags = 0};
    ttrpc_header_encode(b, &h);
}

static void test_framer_partial_header(void **state)
{
    (void)state;
    uint8_t b[16];
    put_header(b, 3, 7, TTRPC_REQUEST);
    memcpy(b + 10, "abc", 3);
    struct ttrpc_framer fr = {0};
    struct ttrpc_header h;
    for (size_t len = 0; len < TTRPC_HEADER_SIZE; len++) {
        size_t used = 99;
        assert_int_equal(ttrpc_framer_next(&fr, b, len, &h, &used), TTRPC_FRAME_MORE);
        assert_int_equal(used, 0);
    }
    /* NULL with zero length is a valid "nothing buffered yet" call. */
    size_t used = 99;
    assert_int_equal(ttrpc_framer_next(&fr, NULL, 0, &h, &used), TTRPC_FRAME_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(fr.skip, 0);
}

static void test_framer_partial_body(void **state)
{
    (void)state;
    uint8_t b[64];
    put_header(b, 40, 9, TTRPC_RESPONSE);
    for (int i = 0; i < 40; i++)
        b[10 + i] = (uint8_t)i;
    struct ttrpc_framer fr = {0};
    struct ttrpc_header h;
    size_t used;
    for (size_t len = TTRPC_HEADER_SIZE; len < 50; len++) {
        memset(&h, 0, sizeof(h));
        used = 99;
        assert_int_equal(ttrpc_framer_next(&fr, b, len, &h, &used), TTRPC_FRAME_MORE);
        assert_int_equal(used, 0);
        /* The header is already known, so the caller can size its buffer. */
        assert_int_equal(h.length, 40);
        assert_int_equal(h.stream_id, 9);
    }
    assert_int_equal(ttrpc_framer_next(&fr, b, 50, &h, &used), TTRPC_FRAME_READY);
    assert_int_equal(used, 50);
    assert_int_equal(h.length, 40);
    assert_int_equal(h.stream_id, 9);
    assert_int_equal(h.type, TTRPC_RESPONSE);
    /* Extra bytes of a following frame are not consumed. */
    b[50] = 0;
    assert_int_equal(ttrpc_framer_next(&fr, b, 51, &h, &used), TTRPC_FRAME_READY);
    assert_int_equal(used, 50);
}

static void test_framer_multiple_frames(void **state)
{
    (void)state;
    uint8_t b[128];
    size_t n = 0;
    const uint32_t lens[] = {5, 0, 17, 0, 1};
    for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
        put_header(b + n, lens[i], (uint32_t)(2 * i + 1), TTRPC_REQUEST);
        n += TTRPC_HEADER_SIZE;
        memset(b + n, (int)('a' + i), lens[i]);
        n += lens[i];
    }
    struct ttrpc_framer fr = {0};
    size_t off = 0;
    for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
        struct ttrpc_header h;
        size_t used = 0;
        assert_int_equal(ttrpc_framer_next(&fr, b + off, n - off, &h, &used), TTRPC_FRAME_READY);
        assert_int_equal(h.length, lens[i]);
        assert_int_equal(h.stream_id, 2 * i + 1);
        assert_int_equal(used, TTRPC_HEADER_SIZE + lens[i]);
        for (size_t k = 0; k < lens[i]; k++)
            assert_int_equal(b[off + TTRPC_HEADER_SIZE + k], 'a' + i);
        off += used;
    }
    assert_int_equal(off, n);
    struct ttrpc_header h;
    size_t used = 5;
    assert_int_equal(ttrpc_framer_next(&fr, b + off, 0, &h, &used), TTRPC_FRAME_MORE);
    assert_int_equal(used, 0);
}

static void test_framer_zero_length(void **state)
{
    (void)state;
    uint8_t b[TTRPC_HEADER_SIZE];
    put_header(b, 0, 3, TTRPC_DATA);
    struct ttrpc_framer fr = {0};
    struct ttrpc_header h;
    size_t used = 0;
    assert_int_equal(ttrpc_framer_next(&fr, b, sizeof(b), &h, &used), TTRPC_FRAME_READY);
    assert_int_equal(used, TTRPC_HEADER_SIZE);
    assert_int_equal(h.length, 0);
    assert_int_equal(h.stream_id, 3);
    assert_int_equal(h.type, TTRPC_DATA);
}

static void test_framer_max_frame(void **state)
{
    (void)state;
    size_t total = TTRPC_HEADER_SIZE + TTRPC_MESSAGE_MAX;
    uint8_t *b = malloc(total + 10);
    assert_non_null(b);
    put_header(b, TTRPC_MESSAGE_MAX, 1, TTRPC_REQUEST);
    memset(b + TTRPC_HEADER_SIZE, 0x42, TTRPC_MESSAGE_MAX);
    put_header(b + total, 0, 3, TTRPC_REQUEST);
    struct ttrpc_framer fr = {0};
    struct ttrpc_header h;
    size_t used;
    /* One byte short: still waiting. */
    assert_int_equal(ttrpc_framer_next(&fr, b, total - 1, &h, &used), TTRPC_FRAME_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(h.length, TTRPC_MESSAGE_MAX);
    assert_int_equal(ttrpc_framer_next(&fr, b, total + 10, &h, &used), TTRPC_FRAME_READY);
    assert_int_equal(used, total);
    assert_int_equal(h.length, TTRPC_MESSAGE_MAX);
    assert_int_equal(ttrpc_framer_next(&fr, b + used, 10, &h, &used), TTRPC_FRAME_READY);
    assert_int_equal(h.length, 0);
    assert_int_equal(h.stream_id, 3);
    free(b);
}

/* Oversize frame whose header arrives alone: reported once, body skipped over several
 * calls, the next frame (in the same buffer as the tail of the skipped body) parsed. */
static void test_framer_oversize_split(void **state)
{
    (void)state;
    const uint32_t big = TTRPC_MESSAGE_MAX + 1;
    uint8_t hdr[TTRPC_HEADER_SIZE];
    put_header(hdr, big, 5, TTRPC_REQUEST);
    struct ttrpc_framer fr = {0};
    struct ttrpc_header h;
    size_t used = 0;
    assert_int_equal(ttrpc_framer_next(&fr, hdr, sizeof(hdr), &h, &used), TTRPC_FRAME_TOO_BIG);
    assert_int_equal(used, TTRPC_HEADER_SIZE);
    assert_int_equal(h.length, big);
    assert_int_equal(h.stream_id, 5);
    assert_int_equal(h.type, TTRPC_REQUEST);

    /* Body in 1 MiB pieces made of bytes that look like headers of huge frames. */
    static uint8_t chunk[1 << 20];
    memset(chunk, 0xff, sizeof(chunk));
    uint32_t left = big;
    while (left > sizeof(chunk)) {
        assert_int_equal(ttrpc_framer_next(&fr, chunk, sizeof(chunk), &h, &used), TTRPC_FRAME_MORE);
        assert_int_equal(used, sizeof(chunk));
        left -= (uint32_t)sizeof(chunk);
    }
    assert_int_equal(left, 1);
    /* Last body byte followed by a complete small frame. */
    uint8_t tail[1 + TTRPC_HEADER_SIZE + 2];
    tail[0] = 0xff;
    put_header(tail + 1, 2, 7, TTRPC_REQUEST);
    tail[11] = 'o';
    tail[12] = 'k';
    assert_int_equal(ttrpc_framer_next(&fr, tail, sizeof(tail), &h, &used), TTRPC_FRAME_MORE);
    assert_int_equal(used, 1);
    assert_int_equal(fr.skip, 0);
    assert_int_equal(ttrpc_framer_next(&fr, tail + 1, sizeof(tail) - 1, &h, &used), TTRPC_FRAME_READY);
    assert_int_equal(used, 12);
    assert_int_equal(h.length, 2);
    assert_int_equal(h.stream_id, 7);
    assert_memory_equal(tail + 11, "ok", 2);
}

/* Oversize header arriving with part of its body: the available part is consumed at once. */
static void test_framer_oversize_with_body(void **state)
{
    (void)state;
    uint8_t b[TTRPC_HEADER_SIZE + 100];
    put_header(b, 0xffffffffu, 11, TTRPC_REQUEST);
    memset(b + TTRPC_HEADER_SIZE, 0, 100);
    struct ttrpc_framer fr = {0};
    struct ttrpc_header h;
    size_t used;
    assert_int_equal(ttrpc_framer_next(&fr, b, sizeof(b), &h, &used), TTRPC_FRAME_TOO_BIG);
    assert_int_equal(used, sizeof(b));
    assert_int_equal(h.length, 0xffffffffu);
    assert_int_equal(h.stream_id, 11);
    assert_int_equal(fr.skip, 0xffffffffu - 100);
    /* Zero bytes while skipping: no progress, no report. */
    assert_int_equal(ttrpc_framer_next(&fr, b, 0, &h, &used), TTRPC_FRAME_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(fr.skip, 0xffffffffu - 100);
    /* Anything that follows is body, never a new report. */
    put_header(b, 0xffffffffu, 13, TTRPC_REQUEST);
    assert_int_equal(ttrpc_framer_next(&fr, b, sizeof(b), &h, &used), TTRPC_FRAME_MORE);
    assert_int_equal(used, sizeof(b));
    assert_int_equal(fr.skip, 0xffffffffu - 100 - sizeof(b));
}

/* Drives a byte stream through the framer the way a connection does, in fixed chunks. */
struct event {
    enum ttrpc_frame_result r;
    uint32_t length, sid;
    uint8_t first; /* first data byte of READY frames with data, else 0 */
};

static size_t drive(const uint8_t *stream, size_t len, size_t chunk, struct event *ev, size_t maxev)
{
    uint8_t *buf = malloc(len + 1);
    assert_non_null(buf);
    struct ttrpc_framer fr = {0};
    size_t have = 0, fed = 0, nev = 0, calls = 0;
    while (fed < len || have) {
        size_t n = len - fed < chunk ? len - fed : chunk;
        memcpy(buf + have, stream + fed, n);
        have += n;
        fed += n;
        size_t off = 0;
        for (;;) {
            struct ttrpc_header h;
            size_t used = 0;
            enum ttrpc_frame_result r = ttrpc_framer_next(&fr, buf + off, have - off, &h, &used);
            calls++;
            assert_true(used <= have - off);
            off += used;
            if (r == TTRPC_FRAME_MORE) {
                if (used == 0)
                    break;
                continue;
            }
            assert_true(nev < maxev);
            ev[nev].r = r;
            ev[nev].length = h.length;
            ev[nev].sid = h.stream_id;
            ev[nev].first = r == TTRPC_FRAME_READY && h.length ? buf[off - h.length] : 0;
            nev++;
        }
        if (off) {
            memmove(buf, buf + off, have - off);
            have -= off;
        }
        if (fed == len)
            break;
    }
    assert_int_equal(have, 0); /* everything consumed at the end of a well-formed stream */
    free(buf);
    return nev;
}

static void test_framer_stream_chunks(void **state)
{
    (void)state;
    /* A: 5 bytes; B: oversize (4 MiB + 3); C: empty; D: 3 bytes; E: exactly 4 MiB. */
    const uint32_t blen = TTRPC_MESSAGE_MAX + 3;
    size_t len = 5 * TTRPC_HEADER_SIZE + 5 + blen + 0 + 3 + TTRPC_MESSAGE_MAX;
    uint8_t *s = malloc(len);
    assert_non_null(s);
    size_t n = 0;
    put_header(s + n, 5, 1, TTRPC_REQUEST);
    n += TTRPC_HEADER_SIZE;
    memset(s + n, 'A', 5);
    n += 5;
    put_header(s + n, blen, 3, TTRPC_REQUEST);
    n += TTRPC_HEADER_SIZE;
    /* The skipped body is full of things that look like frame headers. */
    for (uint32_t i = 0; i < blen; i++)
        s[n + i] = (uint8_t)(i % 10 < 4 ? 0 : 0x01);
    n += blen;
    put_header(s + n, 0, 5, TTRPC_REQUEST);
    n += TTRPC_HEADER_SIZE;
    put_header(s + n, 3, 7, TTRPC_REQUEST);
    n += TTRPC_HEADER_SIZE;
    memset(s + n, 'D', 3);
    n += 3;
    put_header(s + n, TTRPC_MESSAGE_MAX, 9, TTRPC_REQUEST);
    n += TTRPC_HEADER_SIZE;
    memset(s + n, 'E', TTRPC_MESSAGE_MAX);
    n += TTRPC_MESSAGE_MAX;
    assert_int_equal(n, len);

    const size_t chunks[] = {len, 1 << 20, 65536, 4093, 11, 10, 9};
    for (size_t c = 0; c < ARRAY_LEN(chunks); c++) {
        struct event ev[8];
        size_t nev = drive(s, len, chunks[c], ev, ARRAY_LEN(ev));
        assert_int_equal(nev, 5);
        assert_int_equal(ev[0].r, TTRPC_FRAME_READY);
        assert_int_equal(ev[0].length, 5);
        assert_int_equal(ev[0].sid, 1);
        assert_int_equal(ev[0].first, 'A');
        assert_int_equal(ev[1].r, TTRPC_FRAME_TOO_BIG); /* reported exactly once */
        assert_int_equal(ev[1].length, blen);
        assert_int_equal(ev[1].sid, 3);
        assert_int_equal(ev[2].r, TTRPC_FRAME_READY);
        assert_int_equal(ev[2].length, 0);
        assert_int_equal(ev[2].sid, 5);
        assert_int_equal(ev[3].r, TTRPC_FRAME_READY);
        assert_int_equal(ev[3].length, 3);
        assert_int_equal(ev[3].sid, 7);
        assert_int_equal(ev[3].first, 'D');
        assert_int_equal(ev[4].r, TTRPC_FRAME_READY);
        assert_int_equal(ev[4].length, TTRPC_MESSAGE_MAX);
        assert_int_equal(ev[4].sid, 9);
        assert_int_equal(ev[4].first, 'E');
    }
    free(s);
}

/* ---- Request decode ------------------------------------------------------------------ */

static void test_request_any_order(void **state)
{
    (void)state;
    struct pb p = {.n = 0};
    pb_kv(&p, "k", "v");
    pb_uint(&p, 4, 1000000000);
    pb_str(&p, 3, "PAYLOAD");
    pb_str(&p, 2, "CreateVM");
    pb_str(&p, 1, "hypervisor.Hypervisor");
    struct ttrpc_request r;
    const char *err = NULL;
    assert_int_equal(ttrpc_request_decode(&r, p.b, p.n, &err), 0);
    assert_bytes(r.service, "hypervisor.Hypervisor");
    assert_bytes(r.method, "CreateVM");
    assert_bytes(r.payload, "PAYLOAD");
    assert_true(r.timeout_nano == 1000000000);
    assert_int_equal(r.n_metadata, 1);
    assert_ptr_equal(r.raw.data, p.b);
    assert_int_equal(r.raw.len, p.n);
}

static void test_request_empty(void **state)
{
    (void)state;
    uint8_t b[1] = {0};
    struct ttrpc_request r;
    const char *err = NULL;
    assert_int_equal(ttrpc_request_decode(&r, b, 0, &err), 0);
    assert_int_equal(r.service.len, 0);
    assert_int_equal(r.method.len, 0);
    assert_int_equal(r.payload.len, 0);
    assert_true(r.timeout_nano == 0);
    assert_int_equal(r.n_metadata, 0);
    assert_true(ttrpc_bytes_eq(r.service, ""));
    assert_false(ttrpc_bytes_eq(r.service, "x"));
}

/* Repeated scalar fields: the last one wins, as in every protobuf implementation. */
static void test_request_last_wins(void **state)
{
    (void)state;
    struct pb p = {.n = 0};
    pb_str(&p, 1, "first.Service");
    pb_str(&p, 2, "A");
    pb_uint(&p, 4, 7);
    pb_str(&p, 1, "second.Service");
    pb_str(&p, 2, "B");
    pb_uint(&p, 4, 9);
    struct ttrpc_request r;
    const char *err = NULL;
    assert_int_equal(ttrpc_request_decode(&r, p.b, p.n, &err), 0);
    assert_bytes(r.service, "second.Service");
    assert_bytes(r.method, "B");
    assert_true(r.timeout_nano == 9);
}

static void test_request_unknown_fields(void **state)
{
    (void)state;
    struct pb p = {.n = 0};
    pb_uint(&p, 6, 12345);                                  /* varint */
    pb_str(&p, 1, "svc");
    pb_tag(&p, 7, 1);                                       /* fixed64 */
    pb_raw(&p, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    pb_str(&p, 2, "m");
    pb_str(&p, 8, "unknown bytes");                         /* length-delimited */
    pb_tag(&p, 9, 5);                                       /* fixed32 */
    pb_raw(&p, "\x0a\x0b\x0c\x0d", 4);
    pb_bytes(&p, 100000, "\x0a\x02zz", 4);                  /* big field number, nested-looking */
    pb_uint(&p, 0x1fffffff, UINT64_MAX);                    /* largest field number */
    pb_str(&p, 3, "pl");
    pb_tag(&p, 15, 1);                                      /* fixed64 again, at the end */
    pb_raw(&p, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
    struct ttrpc_request r;
    const char *err = NULL;
    assert_int_equal(ttrpc_request_decode(&r, p.b, p.n, &err), 0);
    assert_bytes(r.service, "svc");
    assert_bytes(r.method, "m");
    assert_bytes(r.payload, "pl");
    assert_true(r.timeout_nano == 0);
    assert_int_equal(r.n_metadata, 0);
}

static void test_request_timeout(void **state)
{
    (void)state;
    struct ttrpc_request r;
    const char *err = NULL;
    /* Absent. */
    struct pb p = {.n = 0};
    pb_str(&p, 1, "s");
    assert_int_equal(ttrpc_request_decode(&r, p.b, p.n, &err), 0);
    assert_true(r.timeout_nano == 0);
    /* Negative (int64 -> 10-byte varint), as a Go client with an expired deadline sends. */
    p.n = 0;
    pb_str(&p, 1, "s");
    pb_uint(&p, 4, (uint64_t)(int64_t)-1);
    assert_int_equal(p.n, 3 + 11);
    assert_int_equal(ttrpc_request_decode(&r, p.b, p.n, &err), 0);
    assert_true(r.timeout_nano == -1);
    p.n = 0;
    pb_uint(&p, 4, (uint64_t)INT64_MIN);
    assert_int_equal(ttrpc_request_decode(&r, p.b, p.n, &err), 0);
    assert_true(r.timeout_nano == INT64_MIN);
    p.n = 0;
    pb_uint(&p, 4, (uint64_t)INT64_MAX);
    assert_int_equal(ttrpc_request_decode(&r, p.b, p.n, &err), 0);
    assert_true(r.timeout_nano == INT64_MAX);
    /* Explicit zero. */
    p.n = 0;
    pb_uint(&p, 4, 0);
    assert_int_equal(ttrpc_request_decode(&r, p.b, p.n, &err), 0);
    assert_true(r.timeout_nano == 0);
}

static void test_request_metadata(void **state)
{
    (void)state;
    struct pb p = {.n = 0};
    pb_str(&p, 1, "grpc.AgentService");
    pb_kv(&p, "traceparent", "00-abc-01");
    pb_str(&p, 2, "ExecProcess");
    pb_kv(&p, "k", "v1");
    pb_kv(&p, "k", "v2"); /* repeated key: both kept, in order */
    pb_kv(&p, "only-key", NULL);
    pb_kv(&p, NULL, "only-value");
    pb_kv(&p, NULL, NULL);
    /* value before key, with an unknown field inside the entry */
    struct pb e = {.n = 0};
    pb_str(&e, 2, "val");
    pb_uint(&e, 3, 42);
    pb_str(&e, 1, "key");
    pb_bytes(&p, 5, e.b, e.n);
    /* duplicate key field inside one entry: last wins */
    e.n = 0;
    pb_str(&e, 1, "a");
    pb_str(&e, 1, "b");
    pb_str(&e, 2, "c");
    pb_bytes(&p, 5, e.b, e.n);

    struct ttrpc_request r;
    const char *err = NULL;
    assert_int_equal(ttrpc_request_decode(&r, p.b, p.n, &err), 0);
    assert_int_equal(r.n_metadata, 8);
    static const char *const want[][2] = {
        {"traceparent", "00-abc-01"}, {"k", "v1"}, {"k", "v2"}, {"only-key", ""},
        {"", "only-value"},           {"", ""},    {"key", "val"}, {"b", "c"},
    };
    size_t pos = 0, i = 0;
    struct ttrpc_bytes k, v;
    while (ttrpc_request_metadata_next(&r, &pos, &k, &v)) {
        assert_true(i < ARRAY_LEN(want));
        assert_bytes(k, want[i][0]);
        assert_bytes(v, want[i][1]);
        assert_true(pos <= p.n);
        i++;
    }
    assert_int_equal(i, 8);
    assert_int_equal(pos, p.n);
    /* At the end it stays at the end. */
    assert_int_equal(ttrpc_request_metadata_next(&r, &pos, &k, &v), 0);
    /* A request without metadata iterates nothing. */
    struct pb q = {.n = 0};
    pb_str(&q, 1, "s");
    pb_str(&q, 2, "m");
    assert_int_equal(ttrpc_request_decode(&r, q.b, q.n, &err), 0);
    pos = 0;
    assert_int_equal(ttrpc_request_metadata_next(&r, &pos, &k, &v), 0);
}

struct bad_case {
    const char *name;
    const uint8_t *b;
    size_t n;
};

#define BAD(name, lit) {name, (const uint8_t *)(lit), sizeof(lit) - 1}

static void test_request_malformed(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        BAD("truncated tag", "\x0a\x01s\x80"),
        BAD("truncated timeout varint", "\x20\x80\x80"),
        BAD("timeout tag only", "\x20"),
        BAD("11-byte timeout varint", "\x20\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00"),
        BAD("length past end", "\x0a\x05" "abcd"),
        BAD("truncated length", "\x12\x80"),
        BAD("huge length", "\x1a\xff\xff\xff\xff\xff\xff\xff\xff\x7f"),
        BAD("unknown field length past end", "\x42\x02z"),
        BAD("unknown fixed64 truncated", "\x39\x01\x02\x03"),
        BAD("unknown fixed32 truncated", "\x4d\x01\x02"),
        BAD("service as varint", "\x08\x01"),
        BAD("method as fixed32", "\x15\x01\x02\x03\x04"),
        BAD("payload as fixed64", "\x19\x01\x02\x03\x04\x05\x06\x07\x08"),
        BAD("timeout as bytes", "\x22\x01\x05"),
        BAD("timeout as fixed64", "\x21\x01\x02\x03\x04\x05\x06\x07\x08"),
        BAD("metadata as varint", "\x28\x01"),
        BAD("metadata as fixed32", "\x2d\x01\x02\x03\x04"),
        BAD("start group (unknown field)", "\x33\x08\x01\x34"),
        BAD("end group", "\x34"),
        BAD("service as start group", "\x0b\x0c"),
        BAD("wire type 6", "\x0e\x00"),
        BAD("wire type 7", "\x0f\x00"),
        BAD("field number 0", "\x02\x00"),
        BAD("metadata key as varint", "\x2a\x02\x08\x01"),
        BAD("metadata value as fixed32", "\x2a\x05\x15\x01\x02\x03\x04"),
        BAD("metadata entry truncated inside", "\x2a\x03\x0a\x05k"),
        BAD("metadata entry group", "\x2a\x02\x0b\x0c"),
        BAD("metadata entry field 0", "\x2a\x02\x00\x00"),
        BAD("good fields then garbage", "\x0a\x01s\x12\x01m\xff"),
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct ttrpc_request r;
        const char *err = NULL;
        if (ttrpc_request_decode(&r, cases[i].b, cases[i].n, &err) != -1)
            fail_msg("request case \"%s\" decoded", cases[i].name);
        assert_non_null(err);
        assert_true(strlen(err) > 0);
    }
}

/* ---- Request encode ------------------------------------------------------------------ */

static void encode_checked(const struct ttrpc_request *r, int64_t timeout, uint8_t *out, size_t cap, size_t *len)
{
    size_t n = ttrpc_request_size(r, timeout);
    assert_true(n < cap);
    memset(out, 0xee, cap);
    assert_int_equal(ttrpc_request_encode(out, r, timeout), n);
    assert_int_equal(out[n], 0xee);
    *len = n;
}

static void test_request_encode_roundtrip(void **state)
{
    (void)state;
    /* Canonical order (1, 2, 3, 4, 5...): re-encoding with the same timeout is byte-identical. */
    struct pb p = {.n = 0};
    pb_str(&p, 1, "grpc.AgentService");
    pb_str(&p, 2, "CreateContainer");
    uint8_t payload[300];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)i;
    pb_bytes(&p, 3, payload, sizeof(payload));
    pb_uint(&p, 4, 4999999999ull);
    pb_kv(&p, "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    pb_kv(&p, "k", "1");
    pb_kv(&p, "k", "2");
    struct ttrpc_request r;
    const char *err = NULL;
    assert_int_equal(ttrpc_request_decode(&r, p.b, p.n, &err), 0);
    uint8_t out[1024];
    size_t n;
    encode_checked(&r, r.timeout_nano, out, sizeof(out), &n);
    assert_int_equal(n, p.n);
    assert_memory_equal(out, p.b, p.n);

    struct ttrpc_request r2;
    assert_int_equal(ttrpc_request_decode(&r2, out, n, &err), 0);
    assert_bytes(r2.service, "grpc.AgentService");
    assert_bytes(r2.method, "CreateContainer");
    assert_int_equal(r2.payload.len, sizeof(payload));
    assert_memory_equal(r2.payload.data, payload, sizeof(payload));
    assert_true(r2.timeout_nano == 4999999999ll);
    assert_int_equal(r2.n_metadata, 3);
}

static void test_request_encode_timeout(void **state)
{
    (void)state;
    struct pb p = {.n = 0};
    pb_str(&p, 1, "s");
    pb_str(&p, 2, "m");
    pb_uint(&p, 4, 10000000000ull);
    struct ttrpc_request r;
    const char *err = NULL;
    assert_int_equal(ttrpc_request_decode(&r, p.b, p.n, &err), 0);
    uint8_t out[64];
    size_t n;
    struct ttrpc_request r2;

    /* Replaced by the remaining time. */
    encode_checked(&r, 3000000000ll, out, sizeof(out), &n);
    assert_int_equal(ttrpc_request_decode(&r2, out, n, &err), 0);
    assert_true(r2.timeout_nano == 3000000000ll);
    /* 0 = no deadline: the field is omitted. */
    encode_checked(&r, 0, out, sizeof(out), &n);
    assert_int_equal(n, 6);
    assert_memory_equal(out, "\x0a\x01s\x12\x01m", 6);
    /* Negative survives as a 10-byte varint. */
    encode_checked(&r, -5, out, sizeof(out), &n);
    assert_int_equal(n, 6 + 11);
    assert_memory_equal(out + 6, "\x20\xfb\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
    assert_int_equal(ttrpc_request_decode(&r2, out, n, &err), 0);
    assert_true(r2.timeout_nano == -5);
    /* A request without a timeout gets one. */
    p.n = 0;
    pb_str(&p, 1, "s");
    pb_str(&p, 2, "m");
    assert_int_equal(ttrpc_request_decode(&r, p.b, p.n, &err), 0);
    encode_checked(&r, 1, out, sizeof(out), &n);
    assert_int_equal(n, 8);
    assert_memory_equal(out, "\x0a\x01s\x12\x01m\x20\x01", 8);
}

/* Metadata entries, whatever their inner encoding, are copied byte for byte and in order;
 * unknown top-level fields are dropped; empty payload is omitted. */
static void test_request_encode_metadata_verbatim(void **state)
{
    (void)state;
    struct pb p = {.n = 0};
    /* entry 1: value first, unknown inner field */
    const uint8_t e1[] = {0x2a, 0x0a, 0x12, 0x01, 'v', 0x18, 0x07, 0x0a, 0x03, 'k', 'e', 'y'};
    /* entry 2: non-minimal length varint (0 as 80 00) */
    const uint8_t e2[] = {0x2a, 0x80, 0x00};
    /* entry 3: key only */
    const uint8_t e3[] = {0x2a, 0x03, 0x0a, 0x01, 'k'};
    pb_raw(&p, e1, sizeof(e1));
    pb_str(&p, 2, "m");
    pb_uint(&p, 77, 1); /* unknown: dropped on re-encode */
    pb_raw(&p, e2, sizeof(e2));
    pb_str(&p, 3, ""); /* empty payload: omitted on re-encode */
    pb_str(&p, 1, "s");
    pb_raw(&p, e3, sizeof(e3));
    pb_uint(&p, 4, 55);
    struct ttrpc_request r;
    const char *err = NULL;
    assert_int_equal(ttrpc_request_decode(&r, p.b, p.n, &err), 0);
    assert_int_equal(r.n_metadata, 3);
    uint8_t out[128];
    size_t n;
    encode_checked(&r, 66, out, sizeof(out), &n);
    const uint8_t want_head[] = {0x0a, 0x01, 's', 0x12, 0x01, 'm', 0x20, 66};
    assert_int_equal(n, sizeof(want_head) + sizeof(e1) + sizeof(e2) + sizeof(e3));
    assert_memory_equal(out, want_head, sizeof(want_head));
    assert_memory_equal(out + sizeof(want_head), e1, sizeof(e1));
    assert_memory_equal(out + sizeof(want_head) + sizeof(e1), e2, sizeof(e2));
    assert_memory_equal(out + sizeof(want_head) + sizeof(e1) + sizeof(e2), e3, sizeof(e3));

    struct ttrpc_request r2;
    assert_int_equal(ttrpc_request_decode(&r2, out, n, &err), 0);
    assert_int_equal(r2.n_metadata, 3);
    size_t pos = 0;
    struct ttrpc_bytes k, v;
    assert_int_equal(ttrpc_request_metadata_next(&r2, &pos, &k, &v), 1);
    assert_bytes(k, "key");
    assert_bytes(v, "v");
    assert_int_equal(ttrpc_request_metadata_next(&r2, &pos, &k, &v), 1);
    assert_bytes(k, "");
    assert_bytes(v, "");
    assert_int_equal(ttrpc_request_metadata_next(&r2, &pos, &k, &v), 1);
    assert_bytes(k, "k");
    assert_bytes(v, "");
    assert_int_equal(ttrpc_request_metadata_next(&r2, &pos, &k, &v), 0);
}

/* ---- Response ------------------------------------------------------------------------ */

static void response_checked(int32_t code, const char *msg, const uint8_t *payload, size_t plen,
                             const uint8_t *want, size_t wlen)
{
    uint8_t out[512];
    memset(out, 0xee, sizeof(out));
    size_t mlen = msg ? strlen(msg) : 0;
    assert_int_equal(ttrpc_response_size(code, mlen, plen), wlen);
    assert_int_equal(ttrpc_response_encode(out, code, msg, mlen, payload, plen), wlen);
    assert_memory_equal(out, want, wlen);
    assert_int_equal(out[wlen], 0xee);
    /* And it decodes back. */
    struct ttrpc_response r;
    const char *err = NULL;
    assert_int_equal(ttrpc_response_decode(&r, out, wlen, &err), 0);
    assert_true(r.has_status);
    assert_int_equal(r.code, code);
    assert_int_equal(r.message.len, mlen);
    if (mlen)
        assert_memory_equal(r.message.data, msg, mlen);
    assert_int_equal(r.payload.len, plen);
    if (plen)
        assert_memory_equal(r.payload.data, payload, plen);
}

static void test_response_success(void **state)
{
    (void)state;
    /* Empty payload (google.protobuf.Empty): just the empty status. */
    response_checked(0, NULL, NULL, 0, (const uint8_t *)"\x0a\x00", 2);
    /* With a payload: status is exactly 0a 00, then the payload field. */
    response_checked(0, NULL, (const uint8_t *)"xyz", 3, (const uint8_t *)"\x0a\x00\x12\x03xyz", 7);
    /* A 200-byte payload gets a two-byte length. */
    uint8_t payload[200], want[205];
    memset(payload, 0x11, sizeof(payload));
    memcpy(want, "\x0a\x00\x12\xc8\x01", 5);
    memcpy(want + 5, payload, sizeof(payload));
    response_checked(0, NULL, payload, sizeof(payload), want, sizeof(want));
}

static void test_response_errors(void **state)
{
    (void)state;
    /* 12 Unimplemented "service foo" (§1.5). */
    response_checked(TTRPC_UNIMPLEMENTED, "service foo", NULL, 0,
                     (const uint8_t *)"\x0a\x0f\x08\x0c\x12\x0bservice foo", 17);
    /* 8 ResourceExhausted, the oversize-frame answer. */
    const char *m = "message length 4194305 exceed maximum message size of 4194304";
    uint8_t want[128];
    size_t ml = strlen(m);
    want[0] = 0x0a;
    want[1] = (uint8_t)(2 + 2 + ml);
    want[2] = 0x08;
    want[3] = 0x08;
    want[4] = 0x12;
    want[5] = (uint8_t)ml;
    memcpy(want + 6, m, ml);
    response_checked(TTRPC_RESOURCE_EXHAUSTED, m, NULL, 0, want, 6 + ml);
    /* Code without a message. */
    response_checked(TTRPC_NOT_FOUND, NULL, NULL, 0, (const uint8_t *)"\x0a\x02\x08\x05", 4);
    /* Message without a code (code 0 is never written). */
    response_checked(0, "hm", NULL, 0, (const uint8_t *)"\x0a\x04\x12\x02hm", 6);
    /* A 200-byte message: nested two-byte lengths. */
    char longmsg[201];
    memset(longmsg, 'e', 200);
    longmsg[200] = '\0';
    uint8_t wl[220];
    memcpy(wl, "\x0a\xcd\x01\x08\x02\x12\xc8\x01", 8);
    memcpy(wl + 8, longmsg, 200);
    response_checked(TTRPC_UNKNOWN, longmsg, NULL, 0, wl, 208);
}

static void test_response_negative_code(void **state)
{
    (void)state;
    /* int32 -1 is sign-extended to a 10-byte varint, as Go's protobuf does. */
    response_checked(-1, NULL, NULL, 0,
                     (const uint8_t *)"\x0a\x0b\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 13);
    response_checked(INT32_MIN, "x", NULL, 0,
                     (const uint8_t *)"\x0a\x0e\x08\x80\x80\x80\x80\xf8\xff\xff\xff\xff\x01\x12\x01x", 16);
    response_checked(INT32_MAX, NULL, NULL, 0, (const uint8_t *)"\x0a\x06\x08\xff\xff\xff\xff\x07", 8);
}

static void test_response_decode(void **state)
{
    (void)state;
    struct ttrpc_response r;
    const char *err = NULL;
    /* No status at all: has_status false (the Go client treats it as OK). */
    assert_int_equal(ttrpc_response_decode(&r, (const uint8_t *)"\x12\x01p", 3, &err), 0);
    assert_false(r.has_status);
    assert_int_equal(r.code, 0);
    assert_bytes(r.payload, "p");
    /* Empty input. */
    assert_int_equal(ttrpc_response_decode(&r, (const uint8_t *)"", 0, &err), 0);
    assert_false(r.has_status);
    assert_int_equal(r.payload.len, 0);
    /* Payload before status, message before code, details and unknown fields skipped. */
    struct pb st = {.n = 0};
    pb_str(&st, 2, "not found");
    struct pb any = {.n = 0};
    pb_str(&any, 1, "type.googleapis.com/google.rpc.ErrorInfo");
    pb_str(&any, 2, "\x0a\x01x");
    pb_bytes(&st, 3, any.b, any.n);
    pb_bytes(&st, 3, any.b, any.n);
    pb_uint(&st, 9, 1);
    pb_uint(&st, 1, 5);
    struct pb p = {.n = 0};
    pb_str(&p, 2, "PAY");
    pb_tag(&p, 7, 5);
    pb_raw(&p, "\x01\x02\x03\x04", 4);
    pb_bytes(&p, 1, st.b, st.n);
    pb_tag(&p, 8, 1);
    pb_raw(&p, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    assert_int_equal(ttrpc_response_decode(&r, p.b, p.n, &err), 0);
    assert_true(r.has_status);
    assert_int_equal(r.code, 5);
    assert_bytes(r.message, "not found");
    assert_bytes(r.payload, "PAY");
    /* Negative code as a 5-byte (truncated int32-style) varint still decodes to the int32. */
    assert_int_equal(ttrpc_response_decode(&r, (const uint8_t *)"\x0a\x06\x08\xff\xff\xff\xff\x0f", 8, &err), 0);
    assert_int_equal(r.code, -1);
}

static void test_response_malformed(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        BAD("status as varint", "\x08\x01"),
        BAD("status as fixed32", "\x0d\x01\x02\x03\x04"),
        BAD("payload as varint", "\x0a\x00\x10\x01"),
        BAD("payload as fixed64", "\x11\x01\x02\x03\x04\x05\x06\x07\x08"),
        BAD("status past end", "\x0a\x05\x08\x01"),
        BAD("payload past end", "\x0a\x00\x12\x09zz"),
        BAD("code as bytes", "\x0a\x03\x0a\x01x"),
        BAD("code as fixed32", "\x0a\x05\x0d\x01\x02\x03\x04"),
        BAD("message as varint", "\x0a\x02\x10\x01"),
        BAD("status content truncated varint", "\x0a\x02\x08\x80"),
        BAD("status group", "\x0a\x02\x0b\x0c"),
        BAD("group at top", "\x1b\x1c"),
        BAD("wire type 7", "\x0f"),
        BAD("truncated tag", "\x0a\x00\x80"),
        BAD("field number 0", "\x00\x00"),
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct ttrpc_response r;
        const char *err = NULL;
        if (ttrpc_response_decode(&r, cases[i].b, cases[i].n, &err) != -1)
            fail_msg("response case \"%s\" decoded", cases[i].name);
        assert_non_null(err);
        assert_true(strlen(err) > 0);
    }
}

static void test_bytes_eq(void **state)
{
    (void)state;
    struct ttrpc_bytes b = {(const uint8_t *)"Versionx", 7};
    assert_true(ttrpc_bytes_eq(b, "Version"));
    assert_false(ttrpc_bytes_eq(b, "Versio"));
    assert_false(ttrpc_bytes_eq(b, "Versionx"));
    assert_false(ttrpc_bytes_eq(b, "version"));
    struct ttrpc_bytes e = {NULL, 0};
    assert_true(ttrpc_bytes_eq(e, ""));
    assert_false(ttrpc_bytes_eq(e, "a"));
    /* Embedded NUL: not equal to the C-string prefix. */
    struct ttrpc_bytes z = {(const uint8_t *)"ab\0c", 4};
    assert_false(ttrpc_bytes_eq(z, "ab"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_request_decode),
        cmocka_unit_test(test_example_request_encode),
        cmocka_unit_test(test_example_response_encode),
        cmocka_unit_test(test_example_response_decode),
        cmocka_unit_test(test_header_roundtrip),
        cmocka_unit_test(test_framer_partial_header),
        cmocka_unit_test(test_framer_partial_body),
        cmocka_unit_test(test_framer_multiple_frames),
        cmocka_unit_test(test_framer_zero_length),
        cmocka_unit_test(test_framer_max_frame),
        cmocka_unit_test(test_framer_oversize_split),
        cmocka_unit_test(test_framer_oversize_with_body),
        cmocka_unit_test(test_framer_stream_chunks),
        cmocka_unit_test(test_request_any_order),
        cmocka_unit_test(test_request_empty),
        cmocka_unit_test(test_request_last_wins),
        cmocka_unit_test(test_request_unknown_fields),
        cmocka_unit_test(test_request_timeout),
        cmocka_unit_test(test_request_metadata),
        cmocka_unit_test(test_request_malformed),
        cmocka_unit_test(test_request_encode_roundtrip),
        cmocka_unit_test(test_request_encode_timeout),
        cmocka_unit_test(test_request_encode_metadata_verbatim),
        cmocka_unit_test(test_response_success),
        cmocka_unit_test(test_response_errors),
        cmocka_unit_test(test_response_negative_code),
        cmocka_unit_test(test_response_decode),
        cmocka_unit_test(test_response_malformed),
        cmocka_unit_test(test_bytes_eq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
