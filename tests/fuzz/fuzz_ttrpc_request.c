/* libFuzzer target for the ttrpc Request/Response codec (adaptor/ttrpc.c).
 *
 * Whatever the input: decoding never reads out of bounds. If it decodes as a Request, the
 * metadata iteration yields exactly n_metadata pairs, the re-encoding is exactly
 * ttrpc_request_size bytes and decodes again to the same service, method, payload, timeout
 * and metadata (twice: with the original timeout and with a replaced one). The input is also
 * decoded as a Response; if that works, re-encoding code/message/payload and decoding again
 * gives them back. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#include "ttrpc.h"


static int bytes_same(struct ttrpc_bytes a, struct ttrpc_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static void check_in_buffer(struct ttrpc_bytes b, const uint8_t *buf, size_t len)
{
    if (b.len)
        CHECK(b.data >= buf && b.data + b.len <= buf + len);
}

static size_t count_metadata(const struct ttrpc_request *r)
{
    size_t pos = 0, n = 0, last = 0;
    struct ttrpc_bytes k, v;
    while (ttrpc_request_metadata_next(r, &pos, &k, &v)) {
        CHECK(pos > last && pos <= r->raw.len);
        last = pos;
        check_in_buffer(k, r->raw.data, r->raw.len);
        check_in_buffer(v, r->raw.data, r->raw.len);
        n++;
    }
    CHECK(pos == r->raw.len);
    return n;
}

static void reencode(const struct ttrpc_request *r, int64_t timeout)
{
    size_t n = ttrpc_request_size(r, timeout);
    uint8_t *out = malloc(n + 1);
    CHECK(out);
    out[n] = 0xa5;
    size_t w = ttrpc_request_encode(out, r, timeout);
    CHECK(w == n);
    CHECK(out[n] == 0xa5);

    struct ttrpc_request r2;
    const char *err = NULL;
    CHECK(ttrpc_request_decode(&r2, out, n, &err) == 0);
    CHECK(bytes_same(r->service, r2.service));
    CHECK(bytes_same(r->method, r2.method));
    CHECK(bytes_same(r->payload, r2.payload));
    CHECK(r2.timeout_nano == timeout);
    CHECK(r2.n_metadata == r->n_metadata);
    CHECK(count_metadata(&r2) == r->n_metadata);

    /* Same pairs, same order. */
    size_t p1 = 0, p2 = 0;
    struct ttrpc_bytes k1, v1, k2, v2;
    for (;;) {
        int a = ttrpc_request_metadata_next(r, &p1, &k1, &v1);
        int b = ttrpc_request_metadata_next(&r2, &p2, &k2, &v2);
        CHECK(a == b);
        if (!a)
            break;
        CHECK(bytes_same(k1, k2));
        CHECK(bytes_same(v1, v2));
    }
    /* Encoding is deterministic: the re-encoded request re-encodes to itself. */
    CHECK(ttrpc_request_size(&r2, timeout) == n);
    uint8_t *again = malloc(n + 1);
    CHECK(again);
    CHECK(ttrpc_request_encode(again, &r2, timeout) == n);
    CHECK(n == 0 || memcmp(again, out, n) == 0);
    free(again);
    free(out);
}

static void response_roundtrip(const uint8_t *data, size_t size)
{
    struct ttrpc_response r;
    const char *err = NULL;
    if (ttrpc_response_decode(&r, data, size, &err)) {
        CHECK(err && *err);
        return;
    }
    check_in_buffer(r.message, data, size);
    check_in_buffer(r.payload, data, size);
    if (!r.has_status)
        CHECK(r.code == 0 && r.message.len == 0);
    size_t n = ttrpc_response_size(r.code, r.message.len, r.payload.len);
    uint8_t *out = malloc(n + 1);
    CHECK(out);
    out[n] = 0x5a;
    CHECK(ttrpc_response_encode(out, r.code, (const char *)r.message.data, r.message.len, r.payload.data,
                                r.payload.len) == n);
    CHECK(out[n] == 0x5a);
    /* The status always leads, an OK status without message is exactly 0a 00. */
    CHECK(n >= 2 && out[0] == 0x0a);
    if (r.code == 0 && r.message.len == 0)
        CHECK(out[1] == 0x00);
    struct ttrpc_response r2;
    CHECK(ttrpc_response_decode(&r2, out, n, &err) == 0);
    CHECK(r2.has_status);
    CHECK(r2.code == r.code);
    CHECK(bytes_same(r2.message, r.message));
    CHECK(bytes_same(r2.payload, r.payload));
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy of exactly the input size, so ASan sees any over-read. */
    uint8_t *buf = malloc(size ? size : 1);
    CHECK(buf);
    if (size)
        memcpy(buf, data, size);

    struct ttrpc_request r;
    const char *err = NULL;
    if (ttrpc_request_decode(&r, buf, size, &err) == 0) {
        CHECK(r.raw.data == buf && r.raw.len == size);
        check_in_buffer(r.service, buf, size);
        check_in_buffer(r.method, buf, size);
        check_in_buffer(r.payload, buf, size);
        CHECK(count_metadata(&r) == r.n_metadata);
        reencode(&r, r.timeout_nano);
        /* The relay replaces the timeout with the remaining time (or drops it). */
        int64_t alt = size ? (int64_t)((uint64_t)buf[0] * 1000003u) - 100 : 0;
        reencode(&r, alt);
        reencode(&r, 0);
    } else {
        CHECK(err && *err);
    }
    response_roundtrip(buf, size);
    free(buf);
    return 0;
}
