/* ttrpc: the pure codec of the ttrpc wire protocol (containerd/ttrpc), no I/O.
 *
 * Frames are a 10-byte big-endian header plus at most 4 MiB of data. Decoded messages are
 * views into the caller's buffer (no copies, no allocation): they live as long as that
 * buffer. Encoders write into caller-provided buffers sized with the matching _size call. */
#ifndef ADAPTOR_TTRPC_H
#define ADAPTOR_TTRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TTRPC_HEADER_SIZE 10
#define TTRPC_MESSAGE_MAX (4u << 20)

enum ttrpc_type { TTRPC_REQUEST = 1, TTRPC_RESPONSE = 2, TTRPC_DATA = 3 };

/* gRPC status codes. */
enum ttrpc_code {
    TTRPC_OK = 0,
    TTRPC_CANCELED = 1,
    TTRPC_UNKNOWN = 2,
    TTRPC_INVALID_ARGUMENT = 3,
    TTRPC_DEADLINE_EXCEEDED = 4,
    TTRPC_NOT_FOUND = 5,
    TTRPC_ALREADY_EXISTS = 6,
    TTRPC_PERMISSION_DENIED = 7,
    TTRPC_RESOURCE_EXHAUSTED = 8,
    TTRPC_FAILED_PRECONDITION = 9,
    TTRPC_ABORTED = 10,
    TTRPC_OUT_OF_RANGE = 11,
    TTRPC_UNIMPLEMENTED = 12,
    TTRPC_INTERNAL = 13,
    TTRPC_UNAVAILABLE = 14,
    TTRPC_DATA_LOSS = 15,
    TTRPC_UNAUTHENTICATED = 16,
};

struct ttrpc_header {
    uint32_t length;
    uint32_t stream_id;
    uint8_t type;
    uint8_t flags;
};

void ttrpc_header_encode(uint8_t out[TTRPC_HEADER_SIZE], const struct ttrpc_header *h);
void ttrpc_header_decode(struct ttrpc_header *h, const uint8_t in[TTRPC_HEADER_SIZE]);

/* Splits a byte stream into frames. Oversize frames are reported once and their body is
 * skipped across calls, so a connection survives them (the peer gets status 8). */
struct ttrpc_framer {
    uint32_t skip; /* body bytes of an oversize frame still to discard */
};

enum ttrpc_frame_result {
    TTRPC_FRAME_MORE,    /* need more bytes; *used bytes were consumed (skipped) */
    TTRPC_FRAME_READY,   /* *h valid, data at buf + TTRPC_HEADER_SIZE, *used = whole frame */
    TTRPC_FRAME_TOO_BIG, /* *h valid, length > TTRPC_MESSAGE_MAX; *used bytes consumed */
};

/* Looks at the unread bytes buf[0..len). When it returns MORE with *used == 0 and len >=
 * TTRPC_HEADER_SIZE, the caller needs TTRPC_HEADER_SIZE + h->length bytes in total. */
enum ttrpc_frame_result ttrpc_framer_next(struct ttrpc_framer *f, const uint8_t *buf, size_t len,
                                          struct ttrpc_header *h, size_t *used);

struct ttrpc_bytes {
    const uint8_t *data;
    size_t len;
};

/* ttrpc.Request: 1 service, 2 method, 3 payload, 4 timeout_nano, 5 metadata (KeyValue). */
struct ttrpc_request {
    struct ttrpc_bytes service;
    struct ttrpc_bytes method;
    struct ttrpc_bytes payload;
    int64_t timeout_nano;
    size_t n_metadata;
    struct ttrpc_bytes raw; /* the whole encoded request, for metadata iteration */
};

/* Returns 0, or -1 with *err set to a static description of what is malformed. */
int ttrpc_request_decode(struct ttrpc_request *r, const uint8_t *buf, size_t len, const char **err);

/* Iterates metadata pairs in wire order; *pos starts at 0. Returns 1 with a pair, 0 at end. */
int ttrpc_request_metadata_next(const struct ttrpc_request *r, size_t *pos, struct ttrpc_bytes *key,
                                struct ttrpc_bytes *value);

/* Encodes r with timeout_nano replaced by timeout (the relay recomputes the remaining time);
 * metadata entries are copied from r->raw. */
size_t ttrpc_request_size(const struct ttrpc_request *r, int64_t timeout);
size_t ttrpc_request_encode(uint8_t *out, const struct ttrpc_request *r, int64_t timeout);

/* ttrpc.Response: 1 status (google.rpc.Status: 1 code, 2 message, 3 details), 2 payload. */
struct ttrpc_response {
    bool has_status;
    int32_t code;
    struct ttrpc_bytes message;
    struct ttrpc_bytes payload;
};

int ttrpc_response_decode(struct ttrpc_response *r, const uint8_t *buf, size_t len, const char **err);

/* Encodes a Response; the status is always present (an OK status is the two bytes 0a 00,
 * exactly as the Go server sends it) and an empty payload is omitted. */
size_t ttrpc_response_size(int32_t code, size_t msg_len, size_t payload_len);
size_t ttrpc_response_encode(uint8_t *out, int32_t code, const char *msg, size_t msg_len,
                             const uint8_t *payload, size_t payload_len);

/* True if the bytes equal the NUL-terminated string s. */
bool ttrpc_bytes_eq(struct ttrpc_bytes b, const char *s);

#endif
