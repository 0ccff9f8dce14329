/* libFuzzer target for adaptor/httpreq.c: whatever a local client sends to the probe port.
 * No out-of-bounds access; a parsed head lies inside the input and its parts inside it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "httpreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1); /* exact size: ASan sees any read past the end */
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    struct httpreq r;
    size_t used = 0;
    enum httpreq_result res = httpreq_parse(buf, size, &r, &used);
    if (res == HTTPREQ_OK) {
        CHECK(used <= size && used <= HTTPREQ_HEAD_MAX);
        CHECK(r.method >= buf && r.method + r.method_len <= buf + used);
        CHECK(r.path >= buf && r.path + r.path_len <= buf + used && r.path_len >= 1 && r.path[0] == '/');
        CHECK(r.minor >= 0 && r.minor <= 9);
    }
    if (res == HTTPREQ_PARTIAL)
        CHECK(size < HTTPREQ_HEAD_MAX);
    free(buf);
    return 0;
}
