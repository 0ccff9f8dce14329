/* pbwire: protobuf wire-format primitives (varints, tags, length-delimited fields).
 *
 * Pure functions over caller-owned buffers; nothing here allocates. Readers never read past
 * the end they are given and report malformed input instead of trusting it. */
#ifndef ADAPTOR_PBWIRE_H
#define ADAPTOR_PBWIRE_H

#include <stddef.h>
#include <stdint.h>

enum pbwire_type { PBWIRE_VARINT = 0, PBWIRE_I64 = 1, PBWIRE_LEN = 2, PBWIRE_I32 = 5 };

/* A field read by pbwire_field_next: for LEN fields data/len describe the bytes, for
 * VARINT/I64/I32 the value is in u. */
struct pbwire_field {
    uint32_t number;
    enum pbwire_type type;
    uint64_t u;
    const uint8_t *data;
    size_t len;
};

/* Reads one varint at p[0..end). Returns bytes used, 0 if truncated or longer than 10 bytes. */
size_t pbwire_varint_read(const uint8_t *p, const uint8_t *end, uint64_t *out);
size_t pbwire_varint_size(uint64_t v);
/* Writes v at out (which must have pbwire_varint_size(v) bytes); returns bytes written. */
size_t pbwire_varint_write(uint8_t *out, uint64_t v);

/* Reads the field starting at *pos (< end), advances *pos past it. Returns 0 on success,
 * -1 on malformed input (bad tag, field number 0, truncated, group wire types). */
int pbwire_field_next(const uint8_t **pos, const uint8_t *end, struct pbwire_field *f);

/* Size and writer of a length-delimited field (tag + length + bytes). */
size_t pbwire_len_field_size(uint32_t number, size_t len);
size_t pbwire_len_field_write(uint8_t *out, uint32_t number, const void *data, size_t len);
/* Size and writer of a varint field. */
size_t pbwire_varint_field_size(uint32_t number, uint64_t v);
size_t pbwire_varint_field_write(uint8_t *out, uint32_t number, uint64_t v);

#endif
