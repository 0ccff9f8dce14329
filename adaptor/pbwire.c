#include "pbwire.h"

#include <string.h>

size_t pbwire_varint_read(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 10 && p + i < end; i++) {
        if (i == 9 && p[i] > 1)
            return 0; /* more than 64 bits */
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *out = v;
            return i + 1;
        }
    }
    return 0;
}

size_t pbwire_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t pbwire_varint_write(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

int pbwire_field_next(const uint8_t **pos, const uint8_t *end, struct pbwire_field *f)
{
    const uint8_t *p = *pos;
    uint64_t tag;
    size_t n = pbwire_varint_read(p, end, &tag);
    if (!n || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
        return -1;
    p += n;
    f->number = (uint32_t)(tag >> 3);
    f->type = (enum pbwire_type)(tag & 7);
    f->data = NULL;
    f->len = 0;
    f->u = 0;
    switch (tag & 7) {
    case PBWIRE_VARINT:
        n = pbwire_varint_read(p, end, &f->u);
        if (!n)
            return -1;
        p += n;
        break;
    case PBWIRE_I64:
        if (end - p < 8)
            return -1;
        for (int i = 7; i >= 0; i--)
            f->u = (f->u << 8) | p[i];
        p += 8;
        break;
    case PBWIRE_I32:
        if (end - p < 4)
            return -1;
        for (int i = 3; i >= 0; i--)
            f->u = (f->u << 8) | p[i];
        p += 4;
        break;
    case PBWIRE_LEN: {
        uint64_t len;
        n = pbwire_varint_read(p, end, &len);
        if (!n)
            return -1;
        p += n;
        if (len > (uint64_t)(end - p))
            return -1;
        f->data = p;
        f->len = (size_t)len;
        p += len;
        break;
    }
    default: /* groups (3, 4) are not used by any message we handle; 6, 7 are invalid */
        return -1;
    }
    *pos = p;
    return 0;
}

size_t pbwire_len_field_size(uint32_t number, size_t len)
{
    return pbwire_varint_size((uint64_t)number << 3) + pbwire_varint_size(len) + len;
}

size_t pbwire_len_field_write(uint8_t *out, uint32_t number, const void *data, size_t len)
{
    size_t n = pbwire_varint_write(out, ((uint64_t)number << 3) | PBWIRE_LEN);
    n += pbwire_varint_write(out + n, len);
    if (len)
        memcpy(out + n, data, len);
    return n + len;
}

size_t pbwire_varint_field_size(uint32_t number, uint64_t v)
{
    return pbwire_varint_size((uint64_t)number << 3) + pbwire_varint_size(v);
}

size_t pbwire_varint_field_write(uint8_t *out, uint32_t number, uint64_t v)
{
    size_t n = pbwire_varint_write(out, ((uint64_t)number << 3) | PBWIRE_VARINT);
    return n + pbwire_varint_write(out + n, v);
}
