#include "httpreq.h"

#include <string.h>

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Finds the end of the line starting at p (CRLF, or a bare LF as servers commonly accept). */
static const char *line_end(const char *p, const char *end, size_t *eol_len)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return NULL;
    *eol_len = nl > p && nl[-1] == '\r' ? 2 : 1;
    return nl - (*eol_len - 1);
}

static enum httpreq_result request_line(const char *p, const char *e, struct httpreq *out)
{
    const char *m = p;
    while (p < e && is_tchar((unsigned char)*p))
        p++;
    if (p == m || p >= e || *p != ' ')
        return HTTPREQ_BAD;
    out->method = m;
    out->method_len = (size_t)(p - m);
    const char *t = ++p;
    while (p < e && *p != ' ') {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f)
            return HTTPREQ_BAD;
        p++;
    }
    if (p == t || *t != '/' || p >= e)
        return HTTPREQ_BAD;
    const char *q = memchr(t, '?', (size_t)(p - t));
    out->path = t;
    out->path_len = (size_t)((q ? q : p) - t);
    p++;
    if (e - p != 8 || memcmp(p, "HTTP/1.", 7) || p[7] < '0' || p[7] > '9')
        return HTTPREQ_BAD;
    out->minor = p[7] - '0';
    return HTTPREQ_OK;
}

static int header_ok(const char *p, const char *e)
{
    const char *n = p;
    while (p < e && is_tchar((unsigned char)*p))
        p++;
    if (p == n || p >= e || *p != ':')
        return 0;
    for (p++; p < e; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || (unsigned char)*p == 0x7f)
            return 0;
    return 1;
}

enum httpreq_result httpreq_parse(const char *buf, size_t len, struct httpreq *out, size_t *used)
{
    size_t lim = len < HTTPREQ_HEAD_MAX ? len : HTTPREQ_HEAD_MAX;
    const char *p = buf, *end = buf + lim;
    size_t eol;
    const char *e = line_end(p, end, &eol);
    if (!e) {
        /* Judge what is there: garbage is refused at once, not after 8 KiB. */
        const char *q = p;
        while (q < end && is_tchar((unsigned char)*q))
            q++;
        if (q < end && *q != ' ')
            return HTTPREQ_BAD;
        return lim == HTTPREQ_HEAD_MAX ? HTTPREQ_TOO_LONG : HTTPREQ_PARTIAL;
    }
    enum httpreq_result r = request_line(p, e, out);
    if (r != HTTPREQ_OK)
        return r;
    for (p = e + eol;;) {
        e = line_end(p, end, &eol);
        if (!e)
            return lim == HTTPREQ_HEAD_MAX ? HTTPREQ_TOO_LONG : HTTPREQ_PARTIAL;
        if (e == p) { /* the empty line ends the head */
            *used = (size_t)(e + eol - buf);
            return HTTPREQ_OK;
        }
        if (*p == ' ' || *p == '\t' || !header_ok(p, e)) /* no obsolete line folding */
            return HTTPREQ_BAD;
        p = e + eol;
    }
}
