/* userdata: cloud-config, apf.json and auth.json for the pod VM (see userdata.h). */
#include "userdata.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* ------------------------------------------------------------------ growable text */

/* Appends never fail individually: the first failure is latched in err and every later
 * append is a no-op, so builders check once at the end. */
struct ud_buf {
    char *data;
    size_t len, cap;
    int err;
};

static void ud_buf_discard(struct ud_buf *b)
{
    if (b->data) {
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Room for more bytes plus the final NUL. Grows by copying rather than realloc so that no
 * stale copy of a secret is left behind in freed memory. */
static bool ud_buf_reserve(struct ud_buf *b, size_t more)
{
    if (b->err)
        return false;
    if (more > USERDATA_TEXT_MAX || b->len > USERDATA_TEXT_MAX - more) {
        b->err = EFBIG;
        return false;
    }
    size_t need = b->len + more + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    if (cap > (size_t)USERDATA_TEXT_MAX + 1)
        cap = (size_t)USERDATA_TEXT_MAX + 1;
    char *p = malloc(cap);
    if (!p) {
        b->err = ENOMEM;
        return false;
    }
    if (b->data) {
        memcpy(p, b->data, b->len);
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
    b->data = p;
    b->cap = cap;
    return true;
}

static void ud_buf_put(struct ud_buf *b, const void *p, size_t n)
{
    if (n == 0 || !ud_buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void ud_buf_puts(struct ud_buf *b, const char *s)
{
    ud_buf_put(b, s, strlen(s));
}

static void ud_buf_putc(struct ud_buf *b, char c)
{
    ud_buf_put(b, &c, 1);
}

static void ud_buf_spaces(struct ud_buf *b, size_t n)
{
    if (!ud_buf_reserve(b, n))
        return;
    memset(b->data + b->len, ' ', n);
    b->len += n;
}

static void ud_buf_int(struct ud_buf *b, int v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%d", v);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        if (!b->err)
            b->err = EINVAL;
        return;
    }
    ud_buf_put(b, tmp, (size_t)n);
}

/* Hands the text over, or frees it and reports the latched error through errno. */
static char *ud_buf_finish(struct ud_buf *b, size_t *out_len)
{
    if (!b->err)
        ud_buf_reserve(b, 0); /* an empty buffer still needs its NUL */
    if (b->err) {
        int e = b->err;
        ud_buf_discard(b);
        errno = e;
        return NULL;
    }
    b->data[b->len] = '\0';
    if (out_len)
        *out_len = b->len;
    char *text = b->data;
    b->data = NULL;
    return text;
}

void userdata_text_free(char *text)
{
    if (!text)
        return;
    OPENSSL_cleanse(text, strlen(text));
    free(text);
}

static void ud_err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void ud_err_set(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (n < 0)
        err[0] = '\0';
}

/* ------------------------------------------------------------------ UTF-8 */

/* Length of the well-formed UTF-8 sequence starting s[0..n) (n >= 1) and its code point, or
 * 0 when it is not well-formed. Same acceptance as Go's utf8.DecodeRune: no overlong forms,
 * no surrogates, nothing above U+10FFFF; on failure Go (and this module) consumes one byte. */
static size_t ud_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t need;
    uint32_t v;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    *cp = v;
    return need;
}

/* ------------------------------------------------------------------ Go JSON strings */

static const char ud_hex[] = "0123456789abcdef";

/* Go's encoding/json appendString with escapeHTML set, as of Go 1.22 (\b and \f by name). */
static void ud_json_string(struct ud_buf *b, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t start = 0, i = 0;

    ud_buf_putc(b, '"');
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
                i++;
                continue;
            }
            ud_buf_put(b, s + start, i - start);
            switch (c) {
            case '"':
                ud_buf_puts(b, "\\\"");
                break;
            case '\\':
                ud_buf_puts(b, "\\\\");
                break;
            case '\b':
                ud_buf_puts(b, "\\b");
                break;
            case '\f':
                ud_buf_puts(b, "\\f");
                break;
            case '\n':
                ud_buf_puts(b, "\\n");
                break;
            case '\r':
                ud_buf_puts(b, "\\r");
                break;
            case '\t':
                ud_buf_puts(b, "\\t");
                break;
            default: {
                char u[6] = { '\\', 'u', '0', '0', ud_hex[c >> 4], ud_hex[c & 0xF] };
                ud_buf_put(b, u, sizeof(u));
                break;
            }
            }
            i++;
            start = i;
            continue;
        }
        uint32_t cp;
        size_t n = ud_utf8_decode(s + i, len - i, &cp);
        if (n == 0) {
            ud_buf_put(b, s + start, i - start);
            ud_buf_puts(b, "\\ufffd");
            i++;
            start = i;
            continue;
        }
        /* Valid JSON but not valid JavaScript: Go escapes them. */
        if (cp == 0x2028 || cp == 0x2029) {
            ud_buf_put(b, s + start, i - start);
            ud_buf_puts(b, cp == 0x2028 ? "\\u2028" : "\\u2029");
            i += n;
            start = i;
            continue;
        }
        i += n;
    }
    ud_buf_put(b, s + start, len - start);
    ud_buf_putc(b, '"');
}

static void ud_json_cstring(struct ud_buf *b, const char *s)
{
    if (!s)
        s = "";
    ud_json_string(b, s, strlen(s));
}

char *userdata_json_quote(const char *s, size_t len, size_t *out_len)
{
    struct ud_buf b = { 0 };

    if (!s && len) {
        errno = EINVAL;
        return NULL;
    }
    ud_json_string(&b, s ? s : "", len);
    return ud_buf_finish(&b, out_len);
}

/* ------------------------------------------------------------------ MarshalIndent objects */

/* One object being written at nesting depth `depth` (its closing brace's indentation). */
struct ud_obj {
    struct ud_buf *b;
    size_t depth;
    bool any;
};

#define UD_INDENT 4

static void ud_newline(struct ud_buf *b, size_t depth)
{
    ud_buf_putc(b, '\n');
    ud_buf_spaces(b, depth * UD_INDENT);
}

static void ud_obj_begin(struct ud_obj *o, struct ud_buf *b, size_t depth)
{
    o->b = b;
    o->depth = depth;
    o->any = false;
    ud_buf_putc(b, '{');
}

static void ud_obj_key(struct ud_obj *o, const char *key)
{
    if (o->any)
        ud_buf_putc(o->b, ',');
    o->any = true;
    ud_newline(o->b, o->depth + 1);
    ud_json_cstring(o->b, key);
    ud_buf_puts(o->b, ": ");
}

/* Go's Indent leaves an empty object as "{}". */
static void ud_obj_end(struct ud_obj *o)
{
    if (o->any)
        ud_newline(o->b, o->depth);
    ud_buf_putc(o->b, '}');
}

static void ud_obj_string(struct ud_obj *o, const char *key, const char *value)
{
    ud_obj_key(o, key);
    ud_json_cstring(o->b, value);
}

static void ud_obj_string_omitempty(struct ud_obj *o, const char *key, const char *value)
{
    if (value && *value)
        ud_obj_string(o, key, value);
}

static void ud_obj_int(struct ud_obj *o, const char *key, int value)
{
    ud_obj_key(o, key);
    ud_buf_int(o->b, value);
}

static void ud_obj_bool(struct ud_obj *o, const char *key, bool value)
{
    ud_obj_key(o, key);
    ud_buf_puts(o->b, value ? "true" : "false");
}

/* Starts element i of an array whose "[" is already written at nesting depth `depth`. */
static void ud_array_elem(struct ud_buf *b, size_t depth, size_t i)
{
    if (i > 0)
        ud_buf_putc(b, ',');
    ud_newline(b, depth + 1);
}

/* ------------------------------------------------------------------ apf.json */

/* Names from vishvananda/netlink's String tables; NULL for numbers APF would reject. */
static const char *ud_route_protocol_name(int p)
{
    switch (p) {
    case USERDATA_RTPROT_KERNEL:
        return "kernel";
    case USERDATA_RTPROT_BOOT:
        return "boot";
    case USERDATA_RTPROT_STATIC:
        return "static";
    case USERDATA_RTPROT_DHCP:
        return "dhcp";
    default:
        return NULL;
    }
}

static const char *ud_route_scope_name(int s)
{
    switch (s) {
    case USERDATA_SCOPE_SITE:
        return "site";
    case USERDATA_SCOPE_LINK:
        return "link";
    case USERDATA_SCOPE_HOST:
        return "host";
    case USERDATA_SCOPE_NOWHERE:
        return "nowhere";
    default:
        return NULL;
    }
}

static const char *ud_neigh_state_name(int st)
{
    switch (st) {
    case 0x01:
        return "incomplete";
    case 0x02:
        return "reachable";
    case 0x04:
        return "stale";
    case 0x08:
        return "delay";
    case 0x10:
        return "probe";
    case 0x20:
        return "failed";
    case 0x40:
        return "noarp";
    case USERDATA_NUD_PERMANENT:
        return "permanent";
    default:
        return NULL;
    }
}

/* Checks every enumerated number before anything is written, so a refusal names the
 * first bad entry and the builder has a single failure path for them. */
static int ud_pod_network_check(const struct userdata_pod_network *pn, char *err, size_t errlen)
{
    if ((pn->n_routes && !pn->routes) || (pn->n_neighbors && !pn->neighbors)) {
        ud_err_set(err, errlen, "pod network: list count without a list");
        return -1;
    }
    for (size_t i = 0; i < pn->n_routes; i++) {
        const struct userdata_route *r = &pn->routes[i];
        if (r->protocol != 0 && !ud_route_protocol_name(r->protocol)) {
            ud_err_set(err, errlen, "route %zu: protocol %d is not one of kernel, boot, static, dhcp", i,
                       r->protocol);
            return -1;
        }
        if (r->scope != 0 && !ud_route_scope_name(r->scope)) {
            ud_err_set(err, errlen, "route %zu: scope %d is not one of site, link, host, nowhere", i, r->scope);
            return -1;
        }
    }
    for (size_t i = 0; i < pn->n_neighbors; i++) {
        int st = pn->neighbors[i].state;
        if (st != 0 && !ud_neigh_state_name(st)) {
            ud_err_set(err, errlen, "neighbor %zu: state 0x%x is not a single NUD state", i, (unsigned)st);
            return -1;
        }
    }
    return 0;
}

static void ud_route_write(struct ud_buf *b, size_t depth, const struct userdata_route *r)
{
    struct ud_obj o;

    ud_obj_begin(&o, b, depth);
    ud_obj_string(&o, "dst", r->dst);
    ud_obj_string(&o, "gw", r->gw);
    ud_obj_string_omitempty(&o, "dev", r->dev);
    if (r->protocol)
        ud_obj_string(&o, "protocol", ud_route_protocol_name(r->protocol));
    if (r->scope)
        ud_obj_string(&o, "scope", ud_route_scope_name(r->scope));
    ud_obj_end(&o);
}

static void ud_neighbor_write(struct ud_buf *b, size_t depth, const struct userdata_neighbor *n)
{
    struct ud_obj o;

    ud_obj_begin(&o, b, depth);
    ud_obj_string(&o, "ip", n->ip);
    ud_obj_string(&o, "hw-addr", n->hw_addr);
    ud_obj_string_omitempty(&o, "dev", n->dev);
    if (n->state)
        ud_obj_string(&o, "state", ud_neigh_state_name(n->state));
    ud_obj_end(&o);
}

static void ud_pod_network_write(struct ud_buf *b, size_t depth, const struct userdata_pod_network *pn)
{
    struct ud_obj o;

    ud_obj_begin(&o, b, depth);
    ud_obj_string(&o, "podip", pn->pod_ip);
    ud_obj_string(&o, "pod-hw-addr", pn->pod_hw_addr);
    ud_obj_string(&o, "interface", pn->interface);
    ud_obj_string(&o, "worker-node-ip", pn->worker_node_ip);
    ud_obj_string(&o, "tunnel-type", pn->tunnel_type);

    ud_obj_key(&o, "routes");
    if (pn->n_routes == 0) {
        ud_buf_puts(b, "null"); /* Go: a nil slice */
    } else {
        ud_buf_putc(b, '[');
        for (size_t i = 0; i < pn->n_routes; i++) {
            ud_array_elem(b, depth + 1, i);
            ud_route_write(b, depth + 2, &pn->routes[i]);
        }
        ud_newline(b, depth + 1);
        ud_buf_putc(b, ']');
    }

    ud_obj_key(&o, "neighbors");
    if (pn->n_neighbors == 0) {
        ud_buf_puts(b, "null");
    } else {
        ud_buf_putc(b, '[');
        for (size_t i = 0; i < pn->n_neighbors; i++) {
            ud_array_elem(b, depth + 1, i);
            ud_neighbor_write(b, depth + 2, &pn->neighbors[i]);
        }
        ud_newline(b, depth + 1);
        ud_buf_putc(b, ']');
    }

    ud_obj_int(&o, "mtu", pn->mtu);
    ud_obj_int(&o, "index", pn->index);
    if (pn->vxlan_port != 0)
        ud_obj_int(&o, "vxlan-port", pn->vxlan_port);
    if (pn->vxlan_id != 0)
        ud_obj_int(&o, "vxlan-id", pn->vxlan_id);
    ud_obj_bool(&o, "dedicated", pn->dedicated);
    ud_obj_bool(&o, "external-net-via-pod-vm", pn->external_net_via_pod_vm);
    ud_obj_end(&o);
}

/* strings.Split(list, ",") as a JSON array: never empty, since list is non-empty. */
static void ud_cipher_suites_write(struct ud_buf *b, size_t depth, const char *list)
{
    const char *p = list;
    size_t i = 0;

    ud_buf_putc(b, '[');
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        ud_array_elem(b, depth, i++);
        ud_json_string(b, p, n);
        if (!comma)
            break;
        p = comma + 1;
    }
    ud_newline(b, depth);
    ud_buf_putc(b, ']');
}

char *userdata_apf_json_build(const struct userdata_apf *apf, size_t *out_len, char *err, size_t errlen)
{
    struct ud_buf b = { 0 };
    struct ud_obj o;

    ud_err_set(err, errlen, "%s", "");
    if (!apf) {
        ud_err_set(err, errlen, "no forwarder config");
        errno = EINVAL;
        return NULL;
    }
    if (ud_pod_network_check(&apf->pod_network, err, errlen) < 0) {
        errno = EINVAL;
        return NULL;
    }
    ud_obj_begin(&o, &b, 0);
    ud_obj_key(&o, "pod-network");
    ud_pod_network_write(&b, 1, &apf->pod_network);
    ud_obj_string(&o, "pod-namespace", apf->pod_namespace);
    ud_obj_string(&o, "pod-name", apf->pod_name);
    ud_obj_string_omitempty(&o, "tls-server-key", apf->tls_server_key);
    ud_obj_string_omitempty(&o, "tls-server-cert", apf->tls_server_cert);
    ud_obj_string_omitempty(&o, "tls-client-ca", apf->tls_client_ca);
    ud_obj_string_omitempty(&o, "tls-min-version", apf->tls_min_version);
    if (apf->tls_cipher_suites && *apf->tls_cipher_suites) {
        ud_obj_key(&o, "tls-cipher-suites");
        ud_cipher_suites_write(&b, 1, apf->tls_cipher_suites);
    }
    ud_obj_end(&o);

    char *text = ud_buf_finish(&b, out_len);
    if (!text)
        ud_err_set(err, errlen, "apf.json: %s", strerror(errno));
    return text;
}

/* ------------------------------------------------------------------ auth.json */

struct ud_reg_ref {
    const struct userdata_registry_auth *r;
    size_t pos; /* input position: ties sort by it, so the last duplicate ends its run */
};

static const char *ud_reg_name(const struct ud_reg_ref *x)
{
    return x->r->registry ? x->r->registry : "";
}

static int ud_reg_ref_cmp(const void *a, const void *b)
{
    const struct ud_reg_ref *x = a, *y = b;
    int c = strcmp(ud_reg_name(x), ud_reg_name(y));
    if (c)
        return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

char *userdata_auth_json_render(const struct userdata_registry_auth *regs, size_t n, size_t *out_len)
{
    struct ud_buf b = { 0 };
    struct ud_reg_ref *refs = NULL;

    if (n && !regs) {
        errno = EINVAL;
        return NULL;
    }
    if (n) {
        if (n > SIZE_MAX / sizeof(*refs)) {
            errno = ENOMEM;
            return NULL;
        }
        refs = malloc(n * sizeof(*refs));
        if (!refs) {
            errno = ENOMEM;
            return NULL;
        }
        for (size_t i = 0; i < n; i++)
            refs[i] = (struct ud_reg_ref){ &regs[i], i };
        qsort(refs, n, sizeof(*refs), ud_reg_ref_cmp);
    }

    ud_buf_puts(&b, "{\"auths\":{");
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        /* Within a run of equal registries only the last input entry counts. */
        if (i + 1 < n && strcmp(ud_reg_name(&refs[i]), ud_reg_name(&refs[i + 1])) == 0)
            continue;
        if (!first)
            ud_buf_putc(&b, ',');
        first = false;
        ud_json_cstring(&b, refs[i].r->registry);
        ud_buf_puts(&b, ":{\"auth\":");
        ud_json_cstring(&b, refs[i].r->auth);
        ud_buf_putc(&b, '}');
    }
    ud_buf_puts(&b, "}}");
    free(refs);
    return ud_buf_finish(&b, out_len);
}

/* ------------------------------------------------------------------ cloud-config */

/* Unquoted in the document, so only characters no YAML plain scalar treats specially. */
static bool ud_path_ok(const char *p)
{
    if (!p || !*p)
        return false;
    for (; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '/' || c == '+' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* YAML 1.1 printable set minus the line breaks other than LF (CR, NEL, LS, PS): with
 * those excluded each content line stays one line inside the literal block. */
static bool ud_yaml_char_ok(uint32_t cp)
{
    if (cp == 0x09 || cp == 0x0A)
        return true;
    if (cp >= 0x20 && cp <= 0x7E)
        return true;
    if (cp >= 0xA0 && cp <= 0xD7FF)
        return cp != 0x2028 && cp != 0x2029;
    if (cp >= 0xE000 && cp <= 0xFFFD)
        return true;
    return cp >= 0x10000 && cp <= 0x10FFFF;
}

/* Whether a literal block "|" holding these lines reads back as the content (+ "\n"). */
static bool ud_yaml_content_ok(const uint8_t *c, size_t len)
{
    if (len == 0)
        return true;
    if (!c)
        return false;
    /* The block's indentation is taken from its first line; clip chomping drops trailing
     * blank lines. */
    if (c[0] == ' ' || c[0] == '\n')
        return false;
    if (len >= 2 && c[len - 1] == '\n' && c[len - 2] == '\n')
        return false;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = ud_utf8_decode(c + i, len - i, &cp);
        if (n == 0 || !ud_yaml_char_ok(cp))
            return false;
        i += n;
    }
    return true;
}

char *userdata_cloudconfig_render(const struct userdata_file *files, size_t n, size_t *out_len)
{
    struct ud_buf b = { 0 };

    if (n && !files) {
        errno = EINVAL;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!ud_path_ok(files[i].path) || !ud_yaml_content_ok(files[i].content, files[i].len)) {
            errno = EINVAL;
            return NULL;
        }
    }

    ud_buf_puts(&b, "#cloud-config\n");
    if (n)
        ud_buf_puts(&b, "\nwrite_files:\n");
    for (size_t i = 0; i < n; i++) {
        const struct userdata_file *f = &files[i];
        ud_buf_puts(&b, "  - path: ");
        ud_buf_puts(&b, f->path);
        ud_buf_putc(&b, '\n');
        if (f->len == 0)
            continue;
        ud_buf_puts(&b, "    content: |\n");
        /* Split on "\n"; the empty element after a final "\n" is not a line. */
        const char *p = (const char *)f->content, *end = p + f->len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t linelen = nl ? (size_t)(nl - p) : (size_t)(end - p);
            ud_buf_spaces(&b, 6);
            ud_buf_put(&b, p, linelen);
            ud_buf_putc(&b, '\n');
            if (!nl)
                break;
            p = nl + 1;
        }
    }
    return ud_buf_finish(&b, out_len);
}

/* ------------------------------------------------------------------ write_files (4.2) */

static bool ud_base64_line_ok(const char *s)
{
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                  c == '/' || c == '=';
        if (!ok)
            return false;
    }
    return true;
}

int userdata_files_assemble(struct userdata_file out[USERDATA_FILES_MAX], const struct userdata_sources *src,
                            bool *auth_dropped)
{
    int n = 0;

    if (auth_dropped)
        *auth_dropped = false;
    if (!out || !src || !src->apf_json || src->apf_json_len == 0) {
        errno = EINVAL;
        return -1;
    }
    if (src->initdata && !ud_base64_line_ok(src->initdata)) {
        errno = EINVAL;
        return -1;
    }

    out[n++] = (struct userdata_file){ USERDATA_PATH_APF_JSON, (const uint8_t *)src->apf_json, src->apf_json_len };
    if (src->auth_json && src->auth_json_len) {
        if (src->auth_json_len <= USERDATA_AUTH_JSON_MAX)
            out[n++] = (struct userdata_file){ USERDATA_PATH_AUTH_JSON, (const uint8_t *)src->auth_json,
                                               src->auth_json_len };
        else if (auth_dropped)
            *auth_dropped = true;
    }
    if (src->initdata && *src->initdata)
        out[n++] = (struct userdata_file){ USERDATA_PATH_INITDATA, (const uint8_t *)src->initdata,
                                           strlen(src->initdata) };
    if (src->scratch_space)
        out[n++] = (struct userdata_file){ USERDATA_PATH_SCRATCH_MARKER, NULL, 0 };
    return n;
}

char *userdata_document_render(const struct userdata_sources *src, bool *auth_dropped, size_t *out_len)
{
    struct userdata_file files[USERDATA_FILES_MAX];
    int n = userdata_files_assemble(files, src, auth_dropped);

    if (n < 0)
        return NULL;
    return userdata_cloudconfig_render(files, (size_t)n, out_len);
}
