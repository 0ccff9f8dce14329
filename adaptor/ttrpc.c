#include "ttrpc.h"

#include <string.h>

#include "pbwire.h"

static uint32_t be32_read(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void be32_write(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void ttrpc_header_encode(uint8_t out[TTRPC_HEADER_SIZE], const struct ttrpc_header *h)
{
    be32_write(out, h->length);
    be32_write(out + 4, h->stream_id);
    out[8] = h->type;
    out[9] = h->flags;
}

void ttrpc_header_decode(struct ttrpc_header *h, const uint8_t in[TTRPC_HEADER_SIZE])
{
    h->length = be32_read(in);
    h->stream_id = be32_read(in + 4);
    h->type = in[8];
    h->flags = in[9];
}

enum ttrpc_frame_result ttrpc_framer_next(struct ttrpc_framer *f, const uint8_t *buf, size_t len,
                                          struct ttrpc_header *h, size_t *used)
{
    *used = 0;
    if (f->skip) {
        size_t n = len < f->skip ? len : f->skip;
        f->skip -= (uint32_t)n;
        *used = n;
        return TTRPC_FRAME_MORE;
    }
    if (len < TTRPC_HEADER_SIZE)
        return TTRPC_FRAME_MORE;
    ttrpc_header_decode(h, buf);
    if (h->length > TTRPC_MESSAGE_MAX) {
        size_t body = len - TTRPC_HEADER_SIZE;
        if (body > h->length)
            body = h->length;
        f->skip = h->length - (uint32_t)body;
        *used = TTRPC_HEADER_SIZE + body;
        return TTRPC_FRAME_TOO_BIG;
    }
    if (len - TTRPC_HEADER_SIZE < h->length)
        return TTRPC_FRAME_MORE;
    *used = TTRPC_HEADER_SIZE + h->length;
    return TTRPC_FRAME_READY;
}

bool ttrpc_bytes_eq(struct ttrpc_bytes b, const char *s)
{
    size_t n = strlen(s);
    return b.len == n && (n == 0 || memcmp(b.data, s, n) == 0);
}

/* Checks that a KeyValue entry holds only well-formed fields. */
static int kv_decode(const uint8_t *p, size_t len, struct ttrpc_bytes *key, struct ttrpc_bytes *value)
{
    const uint8_t *end = p + len;
    key->data = value->data = NULL;
    key->len = value->len = 0;
    while (p < end) {
        struct pbwire_field f;
        if (pbwire_field_next(&p, end, &f))
            return -1;
        if (f.number == 1 || f.number == 2) {
            if (f.type != PBWIRE_LEN)
                return -1;
            struct ttrpc_bytes *dst = f.number == 1 ? key : value;
            dst->data = f.data;
            dst->len = f.len;
        }
    }
    return 0;
}

int ttrpc_request_decode(struct ttrpc_request *r, const uint8_t *buf, size_t len, const char **err)
{
    memset(r, 0, sizeof(*r));
    r->raw.data = buf;
    r->raw.len = len;
    const uint8_t *p = buf, *end = buf + len;
    while (p < end) {
        struct pbwire_field f;
        if (pbwire_field_next(&p, end, &f)) {
            *err = "malformed protobuf field";
            return -1;
        }
        switch (f.number) {
        case 1:
        case 2:
        case 3:
            if (f.type != PBWIRE_LEN) {
                *err = "wrong wire type for a bytes field";
                return -1;
            }
            struct ttrpc_bytes *dst = f.number == 1 ? &r->service : f.number == 2 ? &r->method : &r->payload;
            dst->data = f.data;
            dst->len = f.len;
            break;
        case 4:
            if (f.type != PBWIRE_VARINT) {
                *err = "wrong wire type for timeout_nano";
                return -1;
            }
            r->timeout_nano = (int64_t)f.u;
            break;
        case 5: {
            struct ttrpc_bytes k, v;
            if (f.type != PBWIRE_LEN || kv_decode(f.data, f.len, &k, &v)) {
                *err = "malformed metadata entry";
                return -1;
            }
            r->n_metadata++;
            break;
        }
        default: /* unknown fields are skipped, as protobuf requires */
            break;
        }
    }
    return 0;
}

int ttrpc_request_metadata_next(const struct ttrpc_request *r, size_t *pos, struct ttrpc_bytes *key,
                                struct ttrpc_bytes *value)
{
    const uint8_t *end = r->raw.data + r->raw.len;
    const uint8_t *p = r->raw.data + *pos;
    while (p < end) {
        struct pbwire_field f;
        if (pbwire_field_next(&p, end, &f))
            return 0; /* decode validated the buffer; unreachable for decoded requests */
        if (f.number == 5 && f.type == PBWIRE_LEN && !kv_decode(f.data, f.len, key, value)) {
            *pos = (size_t)(p - r->raw.data);
            return 1;
        }
    }
    *pos = r->raw.len;
    return 0;
}

/* Walks metadata fields as (start, total encoded length) for verbatim copying. */
static size_t metadata_raw_size(const struct ttrpc_request *r, uint8_t *out)
{
    const uint8_t *p = r->raw.data, *end = p + r->raw.len;
    size_t total = 0;
    while (p < end) {
        const uint8_t *start = p;
        struct pbwire_field f;
        if (pbwire_field_next(&p, end, &f))
            break;
        if (f.number == 5) {
            if (out)
                memcpy(out + total, start, (size_t)(p - start));
            total += (size_t)(p - start);
        }
    }
    return total;
}

size_t ttrpc_request_size(const struct ttrpc_request *r, int64_t timeout)
{
    size_t n = pbwire_len_field_size(1, r->service.len) + pbwire_len_field_size(2, r->method.len);
    if (r->payload.len)
        n += pbwire_len_field_size(3, r->payload.len);
    if (timeout)
        n += pbwire_varint_field_size(4, (uint64_t)timeout);
    if (r->n_metadata)
        n += metadata_raw_size(r, NULL);
    return n;
}

size_t ttrpc_request_encode(uint8_t *out, const struct ttrpc_request *r, int64_t timeout)
{
    size_t n = pbwire_len_field_write(out, 1, r->service.data, r->service.len);
    n += pbwire_len_field_write(out + n, 2, r->method.data, r->method.len);
    if (r->payload.len)
        n += pbwire_len_field_write(out + n, 3, r->payload.data, r->payload.len);
    if (timeout)
        n += pbwire_varint_field_write(out + n, 4, (uint64_t)timeout);
    if (r->n_metadata)
        n += metadata_raw_size(r, out + n);
    return n;
}

static int status_decode(struct ttrpc_response *r, const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    while (p < end) {
        struct pbwire_field f;
        if (pbwire_field_next(&p, end, &f))
            return -1;
        if (f.number == 1) {
            if (f.type != PBWIRE_VARINT)
                return -1;
            r->code = (int32_t)f.u;
        } else if (f.number == 2) {
            if (f.type != PBWIRE_LEN)
                return -1;
            r->message.data = f.data;
            r->message.len = f.len;
        }
    }
    return 0;
}

int ttrpc_response_decode(struct ttrpc_response *r, const uint8_t *buf, size_t len, const char **err)
{
    memset(r, 0, sizeof(*r));
    const uint8_t *p = buf, *end = buf + len;
    while (p < end) {
        struct pbwire_field f;
        if (pbwire_field_next(&p, end, &f)) {
            *err = "malformed protobuf field";
            return -1;
        }
        if (f.number == 1) {
            if (f.type != PBWIRE_LEN || status_decode(r, f.data, f.len)) {
                *err = "malformed status";
                return -1;
            }
            r->has_status = true;
        } else if (f.number == 2) {
            if (f.type != PBWIRE_LEN) {
                *err = "wrong wire type for payload";
                return -1;
            }
            r->payload.data = f.data;
            r->payload.len = f.len;
        }
    }
    return 0;
}

static size_t status_size(int32_t code, size_t msg_len)
{
    size_t n = 0;
    if (code)
        n += pbwire_varint_field_size(1, (uint64_t)(int64_t)code);
    if (msg_len)
        n += pbwire_len_field_size(2, msg_len);
    return n;
}

size_t ttrpc_response_size(int32_t code, size_t msg_len, size_t payload_len)
{
    size_t n = pbwire_len_field_size(1, status_size(code, msg_len));
    if (payload_len)
        n += pbwire_len_field_size(2, payload_len);
    return n;
}

size_t ttrpc_response_encode(uint8_t *out, int32_t code, const char *msg, size_t msg_len,
                             const uint8_t *payload, size_t payload_len)
{
    size_t n = pbwire_varint_write(out, (1u << 3) | PBWIRE_LEN);
    n += pbwire_varint_write(out + n, status_size(code, msg_len));
    if (code)
        n += pbwire_varint_field_write(out + n, 1, (uint64_t)(int64_t)code);
    if (msg_len)
        n += pbwire_len_field_write(out + n, 2, msg, msg_len);
    if (payload_len)
        n += pbwire_len_field_write(out + n, 2, payload, payload_len);
    return n;
}
