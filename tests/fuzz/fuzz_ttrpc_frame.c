/* libFuzzer target for the ttrpc framer (adaptor/ttrpc.c ttrpc_framer_next).
 *
 * Input layout: byte 0 selects how many chunk-size bytes follow (1-8); those bytes give the
 * sizes (1-256, cycled) of the pieces in which the rest of the input is fed to the framer,
 * the way a connection's read callback would. Checked invariants:
 *  - *used never exceeds the bytes offered; READY frames are whole and <= TTRPC_MESSAGE_MAX;
 *    TOO_BIG only for lengths above it; an oversize body being skipped always makes progress;
 *  - the sequence of frames equals the one found by a simple whole-buffer reference parser,
 *    whatever the chunking (an oversize frame is reported exactly once). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#include "ttrpc.h"


struct ev {
    int result;
    uint32_t length, sid;
    uint8_t type, flags;
    size_t data_off; /* READY: offset of the frame data in the stream */
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The whole stream at once, written independently of the code under test. */
static size_t reference(const uint8_t *s, size_t len, struct ev *ev, size_t max)
{
    size_t pos = 0, n = 0;
    while (len - pos >= TTRPC_HEADER_SIZE && n < max) {
        uint32_t l = be32(s + pos);
        struct ev e = {0, l, be32(s + pos + 4), s[pos + 8], s[pos + 9], 0};
        if (l > TTRPC_MESSAGE_MAX) {
            e.result = TTRPC_FRAME_TOO_BIG;
            ev[n++] = e;
            if ((uint64_t)len - pos < (uint64_t)TTRPC_HEADER_SIZE + l)
                break;
            pos += TTRPC_HEADER_SIZE + (size_t)l;
            continue;
        }
        if (len - pos - TTRPC_HEADER_SIZE < l)
            break;
        e.result = TTRPC_FRAME_READY;
        e.data_off = pos + TTRPC_HEADER_SIZE;
        ev[n++] = e;
        pos += TTRPC_HEADER_SIZE + l;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t nsizes = (size_t)(data[0] % 8) + 1;
    if (size < 1 + nsizes)
        return 0;
    const uint8_t *sizes = data + 1;
    const uint8_t *s = data + 1 + nsizes;
    size_t len = size - 1 - nsizes;

    size_t max_ev = len / TTRPC_HEADER_SIZE + 1;
    struct ev *want = calloc(max_ev, sizeof(*want));
    struct ev *got = calloc(max_ev, sizeof(*got));
    uint8_t *buf = malloc(len + 1);
    CHECK(want && got && buf);
    size_t nwant = reference(s, len, want, max_ev);

    struct ttrpc_framer fr;
    memset(&fr, 0, sizeof(fr));
    size_t have = 0, fed = 0, ngot = 0, consumed = 0, k = 0;
    while (fed < len) {
        size_t chunk = sizes[k++ % nsizes];
        chunk = chunk ? chunk : 256;
        if (chunk > len - fed)
            chunk = len - fed;
        memcpy(buf + have, s + fed, chunk);
        have += chunk;
        fed += chunk;
        size_t off = 0;
        for (;;) {
            struct ttrpc_header h;
            size_t used = (size_t)-1;
            size_t avail = have - off;
            uint32_t skip_before = fr.skip;
            enum ttrpc_frame_result r = ttrpc_framer_next(&fr, buf + off, avail, &h, &used);
            CHECK(used <= avail);
            if (r == TTRPC_FRAME_MORE) {
                if (skip_before) {
                    /* Skipping: consumes min(avail, skip), progress whenever bytes are there. */
                    CHECK(used == (avail < skip_before ? avail : skip_before));
                    CHECK(fr.skip == skip_before - used);
                } else {
                    CHECK(used == 0);
                    if (avail >= TTRPC_HEADER_SIZE) {
                        CHECK(h.length <= TTRPC_MESSAGE_MAX);
                        CHECK(avail < TTRPC_HEADER_SIZE + (size_t)h.length);
                    }
                }
                off += used;
                consumed += used;
                if (used == 0)
                    break;
                continue;
            }
            CHECK(skip_before == 0);
            CHECK(ngot < max_ev);
            struct ev e = {r, h.length, h.stream_id, h.type, h.flags, 0};
            if (r == TTRPC_FRAME_READY) {
                CHECK(h.length <= TTRPC_MESSAGE_MAX);
                CHECK(used == TTRPC_HEADER_SIZE + (size_t)h.length);
                e.data_off = consumed + TTRPC_HEADER_SIZE;
            } else {
                CHECK(r == TTRPC_FRAME_TOO_BIG);
                CHECK(h.length > TTRPC_MESSAGE_MAX);
                CHECK(used >= TTRPC_HEADER_SIZE);
                CHECK(used - TTRPC_HEADER_SIZE + fr.skip == h.length);
            }
            CHECK(used > 0);
            got[ngot++] = e;
            off += used;
            consumed += used;
        }
        if (off) {
            memmove(buf, buf + off, have - off);
            have -= off;
        }
    }
    CHECK(consumed + have == len);
    CHECK(ngot == nwant);
    for (size_t i = 0; i < ngot; i++) {
        CHECK(got[i].result == want[i].result);
        CHECK(got[i].length == want[i].length);
        CHECK(got[i].sid == want[i].sid);
        CHECK(got[i].type == want[i].type);
        CHECK(got[i].flags == want[i].flags);
        CHECK(got[i].data_off == want[i].data_off);
    }
    free(want);
    free(got);
    free(buf);
    return 0;
}
