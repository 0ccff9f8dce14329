/* httpreq: the request head of the probe server's HTTP/1.x, parsed from bytes a local client
 * sent (untrusted). Pure: no I/O, no allocation; the result points into the caller's buffer.
 *
 * Only what a probe or a Prometheus scrape needs: the request line (method, target, version)
 * and the end of the head. Header fields are skipped but checked for shape. */
#ifndef ADAPTOR_HTTPREQ_H
#define ADAPTOR_HTTPREQ_H

#include <stddef.h>

#define HTTPREQ_HEAD_MAX 8192 /* a longer head is refused (431) */

enum httpreq_result {
    HTTPREQ_OK,       /* a complete head; *used is its length */
    HTTPREQ_PARTIAL,  /* well-formed so far: read more */
    HTTPREQ_BAD,      /* 400 */
    HTTPREQ_TOO_LONG, /* 431: no end of head within HTTPREQ_HEAD_MAX */
};

struct httpreq {
    const char *method; /* not NUL-terminated: use the lengths */
    size_t method_len;
    const char *path; /* the target without its query */
    size_t path_len;
    int minor; /* HTTP/1.<minor> */
};

enum httpreq_result httpreq_parse(const char *buf, size_t len, struct httpreq *out, size_t *used);

#endif
