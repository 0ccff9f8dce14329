/* toml: TOML 1.0 reader (see toml.h). A recursive-descent parser over a byte range that is
 * checked to be UTF-8 first, so later stages only look at ASCII structure. */
#include "toml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#define KEY_PARTS_MAX 16

/* Table bookkeeping: how a table came to exist decides what may still define it. */
enum {
    T_IMPLICIT = 1, /* created as a prefix of a [header]: one later [header] may define it */
    T_HEADER = 2,   /* defined by a [header] or [[header]] */
    T_DOTTED = 4,   /* created by a dotted key: never by a header */
    T_INLINE = 8,   /* { ... }: closed once written */
};

struct parser {
    const char *p, *end;
    unsigned line;
    size_t nvalues;
    unsigned depth;
    struct toml_error *err;
};

struct keypath {
    char *parts[KEY_PARTS_MAX];
    size_t n;
    unsigned line;
};

/* Growable byte string whose old copies are wiped: it may hold a secret. */
struct sbuf {
    char *d;
    size_t len, cap;
};

static bool fail_at(struct parser *ps, unsigned line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail_at(struct parser *ps, unsigned line, const char *fmt, ...)
{
    if (ps->err->msg[0])
        return false; /* keep the first, most precise reason */
    char what[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    ps->err->line = line;
    if (line)
        snprintf(ps->err->msg, sizeof(ps->err->msg), "line %u: %s", line, what);
    else
        snprintf(ps->err->msg, sizeof(ps->err->msg), "%s", what);
    return false;
}

#define fail(ps, ...) fail_at((ps), (ps)->line, __VA_ARGS__)

static bool oom(struct parser *ps)
{
    return fail_at(ps, 0, "out of memory");
}

/* A key as it may appear in an error: keys are names, not secrets, but stay bounded and
 * printable. */
static const char *key_show(const char *key, char out[48])
{
    size_t i = 0;
    for (; key[i] && i < 40; i++)
        out[i] = (key[i] >= 0x20 && key[i] < 0x7f) ? key[i] : '?';
    if (key[i]) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

/* ------------------------------------------------------------------ strings */

static bool sbuf_put(struct parser *ps, struct sbuf *b, const void *src, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = malloc(cap);
        if (!d)
            return oom(ps);
        if (b->d) {
            memcpy(d, b->d, b->len);
            OPENSSL_cleanse(b->d, b->cap);
            free(b->d);
        }
        b->d = d;
        b->cap = cap;
    }
    memcpy(b->d + b->len, src, n);
    b->len += n;
    b->d[b->len] = '\0';
    return true;
}

static void sbuf_wipe(struct sbuf *b)
{
    if (b->d) {
        OPENSSL_cleanse(b->d, b->cap);
        free(b->d);
    }
    b->d = NULL;
    b->len = b->cap = 0;
}

static bool is_ctrl(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* At a newline (LF or CRLF): consumes it. A CR alone is not a TOML newline. */
static bool at_newline(const struct parser *ps)
{
    return ps->p < ps->end && (*ps->p == '\n' || (*ps->p == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n'));
}

static void newline_take(struct parser *ps)
{
    ps->p += *ps->p == '\r' ? 2 : 1;
    ps->line++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool escape_unicode(struct parser *ps, struct sbuf *b, int digits)
{
    if (ps->end - ps->p < digits)
        return fail(ps, "truncated \\%c escape", digits == 4 ? 'u' : 'U');
    uint32_t cp = 0;
    for (int i = 0; i < digits; i++) {
        int h = hexval(ps->p[i]);
        if (h < 0)
            return fail(ps, "invalid \\%c escape", digits == 4 ? 'u' : 'U');
        cp = cp << 4 | (uint32_t)h;
    }
    ps->p += digits;
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return fail(ps, "escape is not a Unicode scalar value");
    unsigned char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xc0 | cp >> 6);
        u[1] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xe0 | cp >> 12);
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xf0 | cp >> 18);
        u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return sbuf_put(ps, b, u, n);
}

/* Handles the bytes after a backslash in a basic string. */
static bool escape_take(struct parser *ps, struct sbuf *b, bool multiline)
{
    if (ps->p >= ps->end)
        return fail(ps, "unterminated string");
    char c = *ps->p;
    if (multiline && (c == ' ' || c == '\t' || at_newline(ps))) {
        /* Line-ending backslash: only white space may stand between it and the newline;
         * all white space and newlines after it are trimmed. */
        const char *q = ps->p;
        while (q < ps->end && (*q == ' ' || *q == '\t'))
            q++;
        ps->p = q;
        if (!at_newline(ps))
            return fail(ps, "a backslash followed by white space must end the line");
        while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || at_newline(ps))) {
            if (at_newline(ps))
                newline_take(ps);
            else
                ps->p++;
        }
        return true;
    }
    ps->p++;
    const char *rep;
    switch (c) {
    case 'b': rep = "\b"; break;
    case 't': rep = "\t"; break;
    case 'n': rep = "\n"; break;
    case 'f': rep = "\f"; break;
    case 'r': rep = "\r"; break;
    case '"': rep = "\""; break;
    case '\\': rep = "\\"; break;
    case 'u': return escape_unicode(ps, b, 4);
    case 'U': return escape_unicode(ps, b, 8);
    default: return fail(ps, "invalid escape sequence in a string");
    }
    return sbuf_put(ps, b, rep, 1);
}

/* ps->p is just past the opening delimiter ("/""" or '/'''). */
static bool string_take(struct parser *ps, struct sbuf *b, char quote, bool multiline)
{
    unsigned start = ps->line;
    if (multiline && at_newline(ps))
        newline_take(ps); /* a newline right after the opening delimiter is trimmed */
    for (;;) {
        if (ps->p >= ps->end)
            return fail_at(ps, start, "unterminated string");
        unsigned char c = (unsigned char)*ps->p;
        if (c == (unsigned char)quote) {
            if (!multiline) {
                ps->p++;
                return true;
            }
            size_t q = 0;
            while (ps->p + q < ps->end && ps->p[q] == quote)
                q++;
            if (q >= 3) {
                if (q > 5)
                    return fail(ps, "too many quotes at the end of a multi-line string");
                if (!sbuf_put(ps, b, ps->p, q - 3))
                    return false;
                ps->p += q;
                return true;
            }
            if (!sbuf_put(ps, b, ps->p, q))
                return false;
            ps->p += q;
            continue;
        }
        if (c == '\\' && quote == '"') {
            ps->p++;
            if (!escape_take(ps, b, multiline))
                return false;
            continue;
        }
        if (c == '\n' || c == '\r') {
            if (!multiline)
                return fail_at(ps, start, "unterminated string");
            if (!at_newline(ps))
                return fail(ps, "carriage return without a line feed");
            if (!sbuf_put(ps, b, "\n", 1)) /* CRLF read as LF, as TOML permits */
                return false;
            newline_take(ps);
            continue;
        }
        if (is_ctrl(c))
            return fail(ps, "control character in a string (write it as an escape)");
        if (!sbuf_put(ps, b, ps->p, 1))
            return false;
        ps->p++;
    }
}

/* ------------------------------------------------------------------ values and tables */

static struct toml_value *value_new(struct parser *ps, enum toml_kind kind)
{
    if (ps->nvalues >= TOML_VALUES_MAX) {
        fail(ps, "more than %d values", TOML_VALUES_MAX);
        return NULL;
    }
    struct toml_value *v = calloc(1, sizeof(*v));
    if (!v) {
        oom(ps);
        return NULL;
    }
    ps->nvalues++;
    v->kind = kind;
    v->line = ps->line;
    return v;
}

static void wipe_free(char *s, size_t len)
{
    if (s) {
        OPENSSL_cleanse(s, len);
        free(s);
    }
}

void toml_free(struct toml_value *v)
{
    if (!v)
        return;
    switch (v->kind) {
    case TOML_STRING:
    case TOML_DATETIME:
        wipe_free(v->u.str.data, v->u.str.len + 1);
        break;
    case TOML_TABLE:
        for (size_t i = 0; i < v->u.table.n; i++) {
            wipe_free(v->u.table.pairs[i].key, strlen(v->u.table.pairs[i].key));
            toml_free(v->u.table.pairs[i].value);
        }
        free(v->u.table.pairs);
        break;
    case TOML_ARRAY:
        for (size_t i = 0; i < v->u.array.n; i++)
            toml_free(v->u.array.items[i]);
        free(v->u.array.items);
        break;
    default:
        break;
    }
    free(v);
}

static struct toml_value *table_find(const struct toml_value *t, const char *key)
{
    for (size_t i = 0; i < t->u.table.n; i++)
        if (strcmp(t->u.table.pairs[i].key, key) == 0)
            return t->u.table.pairs[i].value;
    return NULL;
}

const struct toml_value *toml_table_get(const struct toml_value *t, const char *key)
{
    if (!t || t->kind != TOML_TABLE || !key)
        return NULL;
    return table_find(t, key);
}

/* Takes ownership of key and v on success only. */
static bool table_put(struct parser *ps, struct toml_value *t, char *key, struct toml_value *v)
{
    if (t->u.table.n == t->u.table.cap) {
        size_t cap = t->u.table.cap ? t->u.table.cap * 2 : 4;
        struct toml_pair *p = realloc(t->u.table.pairs, cap * sizeof(*p));
        if (!p)
            return oom(ps);
        t->u.table.pairs = p;
        t->u.table.cap = cap;
    }
    t->u.table.pairs[t->u.table.n].key = key;
    t->u.table.pairs[t->u.table.n].value = v;
    t->u.table.n++;
    return true;
}

static bool array_push(struct parser *ps, struct toml_value *a, struct toml_value *v)
{
    if (a->u.array.n == a->u.array.cap) {
        size_t cap = a->u.array.cap ? a->u.array.cap * 2 : 4;
        struct toml_value **p = realloc(a->u.array.items, cap * sizeof(*p));
        if (!p)
            return oom(ps);
        a->u.array.items = p;
        a->u.array.cap = cap;
    }
    a->u.array.items[a->u.array.n++] = v;
    return true;
}

/* Inserts a copy of key into t, holding a new table with the given flags. */
static struct toml_value *table_child_new(struct parser *ps, struct toml_value *t, const char *key, unsigned flags)
{
    struct toml_value *c = value_new(ps, TOML_TABLE);
    char *k = strdup(key);
    if (!c || !k || !table_put(ps, t, k, c)) {
        if (c && !k)
            oom(ps);
        free(k);
        toml_free(c);
        return NULL;
    }
    c->u.table.flags = flags;
    return c;
}

/* ------------------------------------------------------------------ lexical helpers */

static void ws_skip(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'))
        ps->p++;
}

/* At '#': consumes the comment up to (not including) the newline. */
static bool comment_skip(struct parser *ps)
{
    ps->p++;
    while (ps->p < ps->end && *ps->p != '\n') {
        if (*ps->p == '\r' && at_newline(ps))
            break;
        if (is_ctrl((unsigned char)*ps->p))
            return fail(ps, "control character in a comment");
        ps->p++;
    }
    return true;
}

/* White space, newlines and comments, as allowed between array elements. */
static bool gap_skip(struct parser *ps)
{
    for (;;) {
        ws_skip(ps);
        if (ps->p >= ps->end)
            return true;
        if (*ps->p == '#') {
            if (!comment_skip(ps))
                return false;
        } else if (at_newline(ps)) {
            newline_take(ps);
        } else if (*ps->p == '\r') {
            return fail(ps, "carriage return without a line feed");
        } else {
            return true;
        }
    }
}

static bool is_bare(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool key_part_take(struct parser *ps, char **out)
{
    struct sbuf b = {0};
    if (ps->p < ps->end && (*ps->p == '"' || *ps->p == '\'')) {
        char q = *ps->p++;
        if (!string_take(ps, &b, q, false))
            goto bad;
        if (!b.d && !sbuf_put(ps, &b, "", 0))
            goto bad;
        if (memchr(b.d, '\0', b.len)) {
            fail(ps, "key holds a NUL character");
            goto bad;
        }
    } else {
        const char *s = ps->p;
        while (ps->p < ps->end && is_bare(*ps->p))
            ps->p++;
        if (ps->p == s) {
            fail(ps, "expected a key");
            goto bad;
        }
        if (!sbuf_put(ps, &b, s, (size_t)(ps->p - s)))
            goto bad;
    }
    *out = b.d;
    return true;
bad:
    sbuf_wipe(&b);
    return false;
}

static void keypath_free(struct keypath *k)
{
    for (size_t i = 0; i < k->n; i++)
        wipe_free(k->parts[i], strlen(k->parts[i]));
    k->n = 0;
}

static bool keypath_take(struct parser *ps, struct keypath *k)
{
    k->n = 0;
    k->line = ps->line;
    for (;;) {
        if (k->n == KEY_PARTS_MAX)
            return fail(ps, "key has more than %d dotted parts", KEY_PARTS_MAX);
        if (!key_part_take(ps, &k->parts[k->n]))
            return false;
        k->n++;
        ws_skip(ps);
        if (ps->p >= ps->end || *ps->p != '.')
            return true;
        ps->p++;
        ws_skip(ps);
    }
}

/* ------------------------------------------------------------------ scalars */

static bool digits_check(const char *s, size_t n, int base)
{
    /* Digits of the base with single underscores between digits. */
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') {
            if (i == 0 || i == n - 1 || s[i - 1] == '_')
                return false;
            continue;
        }
        int h = hexval(s[i]);
        if (h < 0 || h >= base)
            return false;
    }
    return true;
}

static bool integer_take(struct parser *ps, const char *s, size_t n, struct toml_value *v)
{
    bool neg = false, sign = false;
    if (n && (*s == '+' || *s == '-')) {
        neg = *s == '-';
        sign = true;
        s++;
        n--;
    }
    int base = 10;
    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o' || s[1] == 'b')) {
        if (sign)
            return fail(ps, "a hexadecimal, octal or binary integer cannot have a sign");
        base = s[1] == 'x' ? 16 : s[1] == 'o' ? 8 : 2;
        s += 2;
        n -= 2;
    } else if (n > 1 && s[0] == '0') {
        return fail(ps, "integer with a leading zero");
    }
    if (!digits_check(s, n, base))
        return fail(ps, "invalid number");
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, acc = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_')
            continue;
        uint64_t d = (uint64_t)hexval(s[i]);
        if (acc > (limit - d) / (uint64_t)base)
            return fail(ps, "integer out of the 64-bit range");
        acc = acc * (uint64_t)base + d;
    }
    v->kind = TOML_INTEGER;
    v->u.integer = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return true;
}

static bool float_take(struct parser *ps, const char *s, size_t n, struct toml_value *v)
{
    char tmp[128];
    const char *t = s;
    size_t m = n;
    if (m && (*t == '+' || *t == '-')) {
        t++;
        m--;
    }
    if ((m == 3 && (memcmp(t, "inf", 3) == 0 || memcmp(t, "nan", 3) == 0))) {
        /* strtod spells them the same way */
    } else {
        /* int-part [ "." digits ] [ (e|E) [sign] digits ], at least one of the two tails */
        size_t i = 0;
        while (i < m && t[i] != '.' && t[i] != 'e' && t[i] != 'E')
            i++;
        if (!digits_check(t, i, 10) || (i > 1 && t[0] == '0'))
            return fail(ps, "invalid number");
        if (i < m && t[i] == '.') {
            size_t f = ++i;
            while (i < m && t[i] != 'e' && t[i] != 'E')
                i++;
            if (!digits_check(t + f, i - f, 10))
                return fail(ps, "invalid number: a decimal point needs digits on both sides");
        }
        if (i < m) {
            i++;
            if (i < m && (t[i] == '+' || t[i] == '-'))
                i++;
            if (!digits_check(t + i, m - i, 10))
                return fail(ps, "invalid number: bad exponent");
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_')
            continue;
        if (k + 1 >= sizeof(tmp))
            return fail(ps, "number too long");
        tmp[k++] = s[i];
    }
    tmp[k] = '\0';
    char *endp;
    errno = 0;
    double d = strtod(tmp, &endp);
    if (*endp)
        return fail(ps, "invalid number");
    v->kind = TOML_FLOAT;
    v->u.real = d;
    return true;
}

static int dig2(const char *s)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* HH:MM:SS[.frac]; returns the characters used, 0 if malformed. */
static size_t time_check(const char *s, size_t n)
{
    if (n < 8 || s[2] != ':' || s[5] != ':')
        return 0;
    int h = dig2(s), m = dig2(s + 3), sec = dig2(s + 6);
    if (h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 60)
        return 0;
    size_t i = 8;
    if (i < n && s[i] == '.') {
        size_t f = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == f)
            return 0;
    }
    return i;
}

static bool datetime_check(const char *s, size_t n)
{
    if (n >= 3 && s[2] == ':')
        return time_check(s, n) == n; /* local time */
    if (n < 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < 4; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    int year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int mon = dig2(s + 5), day = dig2(s + 8);
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1])
        return false;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (mon == 2 && day == 29 && !leap)
        return false;
    if (n == 10)
        return true; /* local date */
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return false;
    size_t t = time_check(s + 11, n - 11);
    if (!t)
        return false;
    size_t i = 11 + t;
    if (i == n)
        return true; /* local date-time */
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n)
        return true;
    if ((s[i] == '+' || s[i] == '-') && n - i == 6 && s[i + 3] == ':') {
        int oh = dig2(s + i + 1), om = dig2(s + i + 4);
        return oh >= 0 && oh <= 23 && om >= 0 && om <= 59;
    }
    return false;
}

static bool scalar_char(char c)
{
    return is_bare(c) || c == '+' || c == '.' || c == ':';
}

/* Numbers, date-times, booleans, inf and nan: a run of scalar characters. */
static bool bare_value_take(struct parser *ps, struct toml_value *v)
{
    const char *s = ps->p;
    while (ps->p < ps->end && scalar_char(*ps->p))
        ps->p++;
    size_t n = (size_t)(ps->p - s);
    /* A date and a time may be separated by one space. */
    if (n == 10 && s[4] == '-' && ps->end - ps->p >= 4 && ps->p[0] == ' ' && dig2(ps->p + 1) >= 0 && ps->p[3] == ':') {
        ps->p++;
        while (ps->p < ps->end && scalar_char(*ps->p))
            ps->p++;
        n = (size_t)(ps->p - s);
    }
    if (n == 0)
        return fail(ps, "expected a value (strings need quotes)");
    if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0)) {
        v->kind = TOML_BOOL;
        v->u.boolean = n == 4;
        return true;
    }
    bool digit0 = s[0] >= '0' && s[0] <= '9';
    bool looks_time = n >= 3 && dig2(s) >= 0 && s[2] == ':';
    bool looks_date = n >= 5 && dig2(s) >= 0 && dig2(s + 2) >= 0 && s[4] == '-';
    if (looks_time || looks_date) {
        if (!datetime_check(s, n))
            return fail(ps, "invalid date or time");
        v->kind = TOML_DATETIME;
        if (!(v->u.str.data = malloc(n + 1)))
            return oom(ps);
        memcpy(v->u.str.data, s, n);
        v->u.str.data[n] = '\0';
        v->u.str.len = n;
        return true;
    }
    bool special = (n == 3 && (memcmp(s, "inf", 3) == 0 || memcmp(s, "nan", 3) == 0)) ||
                   (n == 4 && (s[0] == '+' || s[0] == '-') && (memcmp(s + 1, "inf", 3) == 0 || memcmp(s + 1, "nan", 3) == 0));
    if (!digit0 && !special && ((s[0] != '+' && s[0] != '-') || n < 2 || s[1] < '0' || s[1] > '9'))
        return fail(ps, "expected a value (strings need quotes)");
    bool is_float = false;
    bool prefixed = n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o' || s[1] == 'b');
    for (size_t i = 0; i < n && !prefixed; i++)
        if (s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == 'i' || s[i] == 'n')
            is_float = true;
    return is_float ? float_take(ps, s, n, v) : integer_take(ps, s, n, v);
}

/* ------------------------------------------------------------------ compound values */

static struct toml_value *value_take(struct parser *ps);
static bool keyval_take(struct parser *ps, struct toml_value *base);

static struct toml_value *array_take(struct parser *ps)
{
    unsigned start = ps->line;
    struct toml_value *a = value_new(ps, TOML_ARRAY);
    if (!a)
        return NULL;
    ps->p++;
    for (;;) {
        if (!gap_skip(ps))
            goto bad;
        if (ps->p >= ps->end) {
            fail_at(ps, start, "unterminated array");
            goto bad;
        }
        if (*ps->p == ']')
            break;
        struct toml_value *v = value_take(ps);
        if (!v)
            goto bad;
        if (!array_push(ps, a, v)) {
            toml_free(v);
            goto bad;
        }
        if (!gap_skip(ps))
            goto bad;
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']')
            break;
        if (ps->p >= ps->end)
            fail_at(ps, start, "unterminated array");
        else
            fail(ps, "expected ',' or ']' in an array");
        goto bad;
    }
    ps->p++;
    return a;
bad:
    toml_free(a);
    return NULL;
}

static struct toml_value *inline_table_take(struct parser *ps)
{
    struct toml_value *t = value_new(ps, TOML_TABLE);
    if (!t)
        return NULL;
    ps->p++;
    ws_skip(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        t->u.table.flags = T_INLINE;
        return t;
    }
    for (;;) {
        if (!keyval_take(ps, t))
            goto bad;
        ws_skip(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            ws_skip(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}')
            break;
        if (ps->p >= ps->end || at_newline(ps))
            fail(ps, "an inline table must close with '}' on the same line");
        else
            fail(ps, "expected ',' or '}' in an inline table");
        goto bad;
    }
    ps->p++;
    t->u.table.flags = T_INLINE;
    return t;
bad:
    toml_free(t);
    return NULL;
}

static struct toml_value *value_take(struct parser *ps)
{
    if (ps->p >= ps->end || at_newline(ps)) {
        fail(ps, "expected a value");
        return NULL;
    }
    char c = *ps->p;
    if (c == '[' || c == '{') {
        if (ps->depth >= TOML_DEPTH_MAX) {
            fail(ps, "arrays and inline tables nested more than %d deep", TOML_DEPTH_MAX);
            return NULL;
        }
        ps->depth++;
        struct toml_value *v = c == '[' ? array_take(ps) : inline_table_take(ps);
        ps->depth--;
        return v;
    }
    struct toml_value *v = value_new(ps, TOML_STRING);
    if (!v)
        return NULL;
    if (c == '"' || c == '\'') {
        bool ml = ps->end - ps->p >= 3 && ps->p[1] == c && ps->p[2] == c;
        ps->p += ml ? 3 : 1;
        struct sbuf b = {0};
        if (!string_take(ps, &b, c, ml) || (!b.d && !sbuf_put(ps, &b, "", 0))) {
            sbuf_wipe(&b);
            toml_free(v);
            return NULL;
        }
        v->u.str.data = b.d;
        v->u.str.len = b.len;
        return v;
    }
    if (!bare_value_take(ps, v)) {
        toml_free(v);
        return NULL;
    }
    return v;
}

/* key = value, into base (the current table, or an inline table being read). */
static bool keyval_take(struct parser *ps, struct toml_value *base)
{
    struct keypath k;
    char shown[48];
    if (!keypath_take(ps, &k)) {
        keypath_free(&k);
        return false;
    }
    struct toml_value *v = NULL;
    if (ps->p >= ps->end || *ps->p != '=') {
        fail(ps, "expected '=' after the key '%s'", key_show(k.parts[k.n - 1], shown));
        goto bad;
    }
    ps->p++;
    ws_skip(ps);
    if (!(v = value_take(ps)))
        goto bad;
    struct toml_value *t = base;
    for (size_t i = 0; i + 1 < k.n; i++) {
        struct toml_value *c = table_find(t, k.parts[i]);
        if (!c) {
            if (!(c = table_child_new(ps, t, k.parts[i], T_DOTTED)))
                goto bad;
        } else if (c->kind != TOML_TABLE) {
            fail_at(ps, k.line, "key '%s' already holds a value", key_show(k.parts[i], shown));
            goto bad;
        } else if (c->u.table.flags & (T_INLINE | T_HEADER)) {
            fail_at(ps, k.line, "dotted key extends table '%s', which is already defined",
                    key_show(k.parts[i], shown));
            goto bad;
        }
        t = c;
    }
    if (table_find(t, k.parts[k.n - 1])) {
        fail_at(ps, k.line, "duplicate key '%s'", key_show(k.parts[k.n - 1], shown));
        goto bad;
    }
    if (!table_put(ps, t, k.parts[k.n - 1], v))
        goto bad;
    k.n--; /* the last part now belongs to the table */
    keypath_free(&k);
    return true;
bad:
    toml_free(v);
    keypath_free(&k);
    return false;
}

/* [a.b.c] or [[a.b.c]]: returns the table that following keys go into. */
static struct toml_value *header_take(struct parser *ps, struct toml_value *root)
{
    bool aot = ps->end - ps->p >= 2 && ps->p[1] == '[';
    char shown[48];
    struct keypath k;
    struct toml_value *t = root, *cur = NULL;
    ps->p += aot ? 2 : 1;
    ws_skip(ps);
    if (!keypath_take(ps, &k))
        goto out;
    if (ps->p >= ps->end || *ps->p != ']' || (aot && (ps->end - ps->p < 2 || ps->p[1] != ']'))) {
        fail(ps, aot ? "expected ']]' after the table name" : "expected ']' after the table name");
        goto out;
    }
    ps->p += aot ? 2 : 1;
    for (size_t i = 0; i + 1 < k.n; i++) {
        struct toml_value *c = table_find(t, k.parts[i]);
        if (!c) {
            if (!(c = table_child_new(ps, t, k.parts[i], T_IMPLICIT)))
                goto out;
        } else if (c->kind == TOML_ARRAY && c->u.array.of_tables) {
            c = c->u.array.items[c->u.array.n - 1];
        } else if (c->kind != TOML_TABLE || (c->u.table.flags & T_INLINE)) {
            fail_at(ps, k.line, "key '%s' already holds a value", key_show(k.parts[i], shown));
            goto out;
        }
        t = c;
    }
    const char *last = k.parts[k.n - 1];
    struct toml_value *c = table_find(t, last);
    if (aot) {
        if (!c) {
            struct toml_value *a = value_new(ps, TOML_ARRAY);
            char *key = strdup(last);
            if (!a || !key || !table_put(ps, t, key, a)) {
                if (a && !key)
                    oom(ps);
                free(key);
                toml_free(a);
                goto out;
            }
            a->u.array.of_tables = true;
            c = a;
        } else if (c->kind != TOML_ARRAY || !c->u.array.of_tables) {
            fail_at(ps, k.line, "key '%s' already holds a value that is not an array of tables",
                    key_show(last, shown));
            goto out;
        }
        struct toml_value *e = value_new(ps, TOML_TABLE);
        if (!e)
            goto out;
        if (!array_push(ps, c, e)) {
            toml_free(e);
            goto out;
        }
        e->u.table.flags = T_HEADER;
        cur = e;
    } else if (!c) {
        cur = table_child_new(ps, t, last, T_HEADER);
    } else if (c->kind != TOML_TABLE || (c->u.table.flags & ~(unsigned)T_IMPLICIT)) {
        fail_at(ps, k.line, "table '%s' is defined twice", key_show(last, shown));
    } else {
        c->u.table.flags |= T_HEADER;
        cur = c;
    }
out:
    keypath_free(&k);
    return cur;
}

/* ------------------------------------------------------------------ document */

/* TOML documents are UTF-8; checked once so the parser can treat bytes >= 0x80 as text. */
static bool utf8_check(struct parser *ps)
{
    const unsigned char *s = (const unsigned char *)ps->p, *e = (const unsigned char *)ps->end;
    unsigned line = 1;
    while (s < e) {
        unsigned char c = *s;
        if (c == '\n')
            line++;
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            n = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return fail_at(ps, line, "invalid UTF-8");
        }
        if ((size_t)(e - s) < n)
            return fail_at(ps, line, "invalid UTF-8");
        for (size_t i = 1; i < n; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return fail_at(ps, line, "invalid UTF-8");
            cp = cp << 6 | (s[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return fail_at(ps, line, "invalid UTF-8");
        s += n;
    }
    return true;
}

struct toml_value *toml_parse(const char *text, size_t len, struct toml_error *err)
{
    struct parser ps = {.p = text, .end = text + len, .line = 1, .err = err};
    err->line = 0;
    err->msg[0] = '\0';
    if (!utf8_check(&ps))
        return NULL;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        ps.p += 3; /* byte order mark */
    struct toml_value *root = value_new(&ps, TOML_TABLE), *cur = root;
    if (!root)
        return NULL;
    root->u.table.flags = T_HEADER;
    while (ps.p < ps.end) {
        ws_skip(&ps);
        if (ps.p >= ps.end)
            break;
        char c = *ps.p;
        if (at_newline(&ps)) {
            newline_take(&ps);
            continue;
        }
        if (c == '#') {
            if (!comment_skip(&ps))
                goto bad;
            continue;
        }
        if (c == '[') {
            if (!(cur = header_take(&ps, root)))
                goto bad;
        } else if (c == '\r') {
            fail(&ps, "carriage return without a line feed");
            goto bad;
        } else if (!keyval_take(&ps, cur)) {
            goto bad;
        }
        ws_skip(&ps);
        if (ps.p < ps.end && *ps.p == '#' && !comment_skip(&ps))
            goto bad;
        if (ps.p < ps.end && !at_newline(&ps)) {
            fail(&ps, c == '[' ? "unexpected text after a table header" : "unexpected text after a value");
            goto bad;
        }
    }
    return root;
bad:
    if (!err->msg[0])
        fail(&ps, "malformed document");
    toml_free(root);
    return NULL;
}

const char *toml_kind_name(enum toml_kind k)
{
    switch (k) {
    case TOML_TABLE: return "table";
    case TOML_ARRAY: return "array";
    case TOML_STRING: return "string";
    case TOML_INTEGER: return "integer";
    case TOML_FLOAT: return "float";
    case TOML_BOOL: return "boolean";
    case TOML_DATETIME: return "date-time";
    }
    return "value";
}
