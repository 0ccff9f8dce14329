/* instance: VM naming, instance-type selection and allow-list parsing (see instance.h). */
#include "instance.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- VM name ---------------------------------------------------------------------- */

#define NAME_PREFIX "podvm-"
#define NAME_ID_CHARS 8
/* Go's rule reserves 5 + 10 chars around the pod part (prefix, dashes, id). */
#define NAME_RESERVED 15

/* Decodes one code point the way Go's range loop does: an invalid or truncated sequence
 * (overlong, surrogate, > U+10FFFF) yields -1 and consumes exactly one byte. */
static long utf8_next(const unsigned char *s, size_t *len)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t need;
    long cp;

    if (c < 0x80) {
        *len = 1;
        return c;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        cp = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        cp = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        *len = 1;
        return -1;
    }
    for (size_t i = 1; i <= need; i++) {
        unsigned char b = s[i]; /* a NUL terminator fails the range check below */
        if (b < lo || b > hi) {
            *len = 1;
            return -1;
        }
        lo = 0x80;
        hi = 0xBF;
        cp = (cp << 6) | (b & 0x3F);
    }
    *len = need + 1;
    return cp;
}

/* Go's strings.ToLower followed by [^a-z0-9-] -> '-'. Besides ASCII, only two code
 * points lower-case into the allowed set (U+0130 -> 'i', KELVIN SIGN -> 'k'). */
static char sanitize_cp(long cp)
{
    if (cp >= 'A' && cp <= 'Z')
        return (char)(cp - 'A' + 'a');
    if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9') || cp == '-')
        return (char)cp;
    if (cp == 0x130)
        return 'i';
    if (cp == 0x212A)
        return 'k';
    return '-';
}

/* Appends at most limit sanitized chars of in to out (space already checked by caller
 * through sanitized_len). Returns the number written. */
static size_t sanitize_into(char *out, const char *in, size_t limit)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t n = 0;

    while (*s && n < limit) {
        size_t len;
        out[n++] = sanitize_cp(utf8_next(s, &len));
        s += len;
    }
    return n;
}

/* Sanitization maps one code point to one char, so this counts code points. */
static size_t sanitized_len(const char *in, size_t limit)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t n = 0;

    while (*s && n < limit) {
        size_t len;
        (void)utf8_next(s, &len);
        s += len;
        n++;
    }
    return n;
}

int instance_name_generate(char *out, size_t outlen, const char *pod_name,
                           const char *sandbox_id, size_t max)
{
    const char *pod = pod_name ? pod_name : "";
    const char *id = sandbox_id ? sandbox_id : "";
    /* Go slices the pod part to max-15 once it is longer; below 15 Go would panic. */
    size_t pod_limit = max > NAME_RESERVED ? max - NAME_RESERVED : 0;
    size_t pod_len = sanitized_len(pod, pod_limit);
    size_t id_len = sanitized_len(id, NAME_ID_CHARS);
    size_t total = strlen(NAME_PREFIX) + pod_len + 1 + id_len;
    size_t pos;

    if (!out || outlen < total + 1) {
        if (out && outlen > 0)
            out[0] = '\0';
        return -1;
    }
    memcpy(out, NAME_PREFIX, strlen(NAME_PREFIX));
    pos = strlen(NAME_PREFIX);
    pos += sanitize_into(out + pos, pod, pod_len);
    out[pos++] = '-';
    pos += sanitize_into(out + pos, id, id_len);
    out[pos] = '\0';
    return 0;
}

/* ---- instance types --------------------------------------------------------------- */

static bool type_less(const struct instance_type *a, const struct instance_type *b)
{
    if (a->gpus != b->gpus)
        return a->gpus < b->gpus;
    if (a->memory_mib != b->memory_mib)
        return a->memory_mib < b->memory_mib;
    return a->vcpus < b->vcpus;
}

/* Insertion sort: stable, and allow-lists are a handful of entries. */
void instance_types_sort(struct instance_type *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct instance_type cur = v[i];
        size_t j = i;

        while (j > 0 && type_less(&cur, &v[j - 1])) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = cur;
    }
}

/* Bounded string builder: always NUL-terminated, silently truncates. */
struct sbuf {
    char *buf;
    size_t cap;
    size_t len;
};

static void sbuf_putc(struct sbuf *b, char c)
{
    if (b->cap == 0 || b->len + 1 >= b->cap)
        return;
    b->buf[b->len++] = c;
    b->buf[b->len] = '\0';
}

static void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int r;

    if (b->cap == 0 || b->len + 1 >= b->cap)
        return;
    va_start(ap, fmt);
    r = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (r < 0) {
        b->buf[b->len] = '\0';
        return;
    }
    b->len += (size_t)r;
    if (b->len >= b->cap)
        b->len = b->cap - 1;
}

/* Go's %q for the strings that matter here: quotes, backslash, control bytes and invalid
 * UTF-8 are escaped; valid non-ASCII code points pass through (Go would also escape the
 * non-printable ones; instance type names are ASCII in practice). */
#define QUOTE_MAX 96

static void sbuf_quote(struct sbuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");

    sbuf_putc(b, '"');
    while (*p) {
        if (p - (const unsigned char *)s >= QUOTE_MAX) { /* an annotation can be huge: keep the hint in the message */
            sbuf_printf(b, "\"... (%zu bytes)", strlen(s));
            return;
        }
        size_t len;
        long cp = utf8_next(p, &len);

        switch (cp) {
        case '"': sbuf_printf(b, "\\\""); break;
        case '\\': sbuf_printf(b, "\\\\"); break;
        case '\a': sbuf_printf(b, "\\a"); break;
        case '\b': sbuf_printf(b, "\\b"); break;
        case '\f': sbuf_printf(b, "\\f"); break;
        case '\n': sbuf_printf(b, "\\n"); break;
        case '\r': sbuf_printf(b, "\\r"); break;
        case '\t': sbuf_printf(b, "\\t"); break;
        case '\v': sbuf_printf(b, "\\v"); break;
        default:
            if (cp < 0)
                sbuf_printf(b, "\\x%02x", *p);
            else if (cp < 0x20 || cp == 0x7F)
                sbuf_printf(b, "\\x%02x", (unsigned)cp);
            else if (cp >= 0x80 && cp <= 0x9F)
                sbuf_printf(b, "\\u%04x", (unsigned)cp);
            else
                sbuf_printf(b, "%.*s", (int)len, (const char *)p);
        }
        p += len;
    }
    sbuf_putc(b, '"');
}

#define HINT_ANNOTATION "io.katacontainers.config.hypervisor.machine_type"

static bool list_contains(const char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] && strcmp(v[i], s) == 0)
            return true;
    return false;
}

int instance_type_select(const struct instance_type *sorted, size_t n,
                         const char *const *allow, size_t n_allow,
                         const char *default_type, const char *machine_type,
                         uint32_t vcpus, uint32_t memory_mib, uint32_t gpus,
                         char *out, size_t outlen, char *err, size_t errlen)
{
    struct sbuf e = { err, err ? errlen : 0, 0 };
    const char *dflt = default_type ? default_type : "";
    const char *cand = "";
    size_t len;

    if (e.cap > 0)
        err[0] = '\0';
    if (out && outlen > 0)
        out[0] = '\0';

    if (machine_type && machine_type[0]) {
        cand = machine_type;
    } else if (gpus > 0) {
        const struct instance_type *hit = NULL;

        for (size_t i = 0; i < n && !hit; i++)
            if (sorted[i].gpus >= gpus && sorted[i].vcpus >= vcpus &&
                sorted[i].memory_mib >= memory_mib)
                hit = &sorted[i];
        if (!hit) {
            sbuf_printf(&e,
                        "failed to get instance type based on GPU, vCPU, and memory annotations: "
                        "no instance type found for the given GPUs (%u), vCPUs (%u), and memory (%u)"
                        "; request fewer GPUs, vCPUs or memory, set the pod annotation "
                        HINT_ANNOTATION ", or add a GPU size to the provider's instance size list",
                        (unsigned)gpus, (unsigned)vcpus, (unsigned)memory_mib);
            return -1;
        }
        cand = hit->name;
    } else if (vcpus != 0 && memory_mib != 0) {
        const struct instance_type *hit = NULL;

        /* DECISIONS 20: linear scan, upstream's binary search can miss a fitting size. */
        for (size_t i = 0; i < n && !hit; i++)
            if (sorted[i].gpus == 0 && sorted[i].memory_mib >= memory_mib &&
                sorted[i].vcpus >= vcpus)
                hit = &sorted[i];
        if (!hit) {
            sbuf_printf(&e,
                        "failed to get instance type based on vCPU and memory annotations: "
                        "no instance type found for the given vcpus (%u) and memory (%u)"
                        "; lower the pod's CPU/memory limits, set the pod annotation "
                        HINT_ANNOTATION ", or add a larger size to the provider's instance size list",
                        (unsigned)vcpus, (unsigned)memory_mib);
            return -1;
        }
        cand = hit->name;
    }

    /* An empty candidate yields the default even when it is missing from the allow-list. */
    if (!cand[0]) {
        cand = dflt;
    } else if (n_allow == 0 && strcmp(cand, dflt) != 0) {
        sbuf_printf(&e, "failed to verify instance type: requested instance type (");
        sbuf_quote(&e, cand);
        sbuf_printf(&e, ") is not default (");
        sbuf_quote(&e, dflt);
        sbuf_printf(&e, ") and supported instance types list is empty"
                        "; remove the pod annotation " HINT_ANNOTATION
                        " or add the size to the provider's instance size list");
        return -1;
    } else if (n_allow > 0 && !list_contains(allow, n_allow, cand)) {
        sbuf_printf(&e, "failed to verify instance type: requested instance type (");
        sbuf_quote(&e, cand);
        sbuf_printf(&e, ") is not part of supported instance types list"
                        "; set the pod annotation " HINT_ANNOTATION
                        " to one of the allowed sizes or extend the provider's instance size list");
        return -1;
    }

    len = strlen(cand);
    if (!out || outlen < len + 1) {
        sbuf_printf(&e, "instance type name too long (%zu bytes)", len);
        return -1;
    }
    memcpy(out, cand, len + 1);
    return 0;
}

/* ---- allow-list ------------------------------------------------------------------- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Counts the trimmed non-empty items and, when dst is set, duplicates them into it.
 * Returns (size_t)-1 if a duplicate cannot be allocated. */
static size_t list_walk(const char *csv, char **dst)
{
    size_t count = 0;
    const char *p = csv;

    for (;;) {
        const char *end = strchr(p, ',');
        const char *stop = end ? end : p + strlen(p);
        const char *b = p, *t = stop;

        while (b < t && is_space(*b))
            b++;
        while (t > b && is_space(t[-1]))
            t--;
        if (t > b) {
            if (dst) {
                dst[count] = strndup(b, (size_t)(t - b));
                if (!dst[count])
                    return (size_t)-1;
            }
            count++;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return count;
}

int instance_list_parse(const char *csv, char ***out, size_t *n)
{
    char **v;
    size_t count, got;

    *out = NULL;
    *n = 0;
    if (!csv)
        return 0;
    count = list_walk(csv, NULL);
    if (count == 0)
        return 0;
    v = calloc(count, sizeof(*v));
    if (!v)
        return -1;
    got = list_walk(csv, v);
    if (got != count) {
        instance_list_free(v, count); /* calloc'd: unfilled slots are NULL */
        return -1;
    }
    *out = v;
    *n = count;
    return 0;
}

void instance_list_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}
