/* initdata: decode, validate and re-encode initdata (see initdata.h). */
#include "initdata.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "toml.h"

static const char *const algorithms[] = {"sha256", "sha384", "sha512"};

static void wipe_free(void *p, size_t len)
{
    if (p) {
        OPENSSL_cleanse(p, len);
        free(p);
    }
}

const char *initdata_form_name(enum initdata_form f)
{
    switch (f) {
    case INITDATA_RAW_TOML: return "TOML";
    case INITDATA_BASE64_TOML: return "base64 TOML";
    case INITDATA_BASE64_GZIP: return "base64 gzip TOML";
    }
    return "?";
}

/* ------------------------------------------------------------------ TOML checks */

static const char *kind_phrase(enum toml_kind k)
{
    return k == TOML_INTEGER || k == TOML_ARRAY ? (k == TOML_INTEGER ? "an integer" : "an array")
                                                : (k == TOML_TABLE ? "a table" : toml_kind_name(k));
}

int initdata_toml_check(const char *toml, size_t len, char algorithm[8], char *err, size_t errlen)
{
    struct toml_error te;
    struct toml_value *root = toml_parse(toml, len, &te);
    if (!root) {
        snprintf(err, errlen, "%s", te.msg);
        return -1;
    }
    int rc = -1;
    const struct toml_value *alg = toml_table_get(root, "algorithm");
    const struct toml_value *ver = toml_table_get(root, "version");
    const struct toml_value *data = toml_table_get(root, "data");
    if (!alg) {
        snprintf(err, errlen, "missing the key 'algorithm' (sha256, sha384 or sha512)");
        goto out;
    }
    if (alg->kind != TOML_STRING) {
        snprintf(err, errlen, "line %u: 'algorithm' must be a string, not %s", alg->line,
                 kind_phrase(alg->kind));
        goto out;
    }
    size_t i;
    for (i = 0; i < sizeof(algorithms) / sizeof(algorithms[0]); i++)
        if (strcmp(alg->u.str.data, algorithms[i]) == 0 && alg->u.str.len == strlen(algorithms[i]))
            break;
    if (i == sizeof(algorithms) / sizeof(algorithms[0])) {
        char shown[24];
        size_t k = 0;
        for (; k < alg->u.str.len && k < 16; k++) {
            unsigned char c = (unsigned char)alg->u.str.data[k];
            shown[k] = c >= 0x20 && c < 0x7f && c != '\'' ? (char)c : '?';
        }
        if (k < alg->u.str.len)
            memcpy(shown + k, "...", 3), k += 3;
        shown[k] = '\0';
        snprintf(err, errlen, "unknown algorithm '%s' (expected sha256, sha384 or sha512)", shown);
        goto out;
    }
    if (!ver) {
        snprintf(err, errlen, "missing the key 'version' (e.g. version = \"0.1.0\")");
        goto out;
    }
    if (ver->kind != TOML_STRING) {
        snprintf(err, errlen, "line %u: 'version' must be a string such as \"0.1.0\", not %s", ver->line,
                 kind_phrase(ver->kind));
        goto out;
    }
    if (!data) {
        snprintf(err, errlen, "missing the [data] table (aa.toml, cdh.toml, policy.rego)");
        goto out;
    }
    if (data->kind != TOML_TABLE) {
        snprintf(err, errlen, "line %u: 'data' must be a table, not %s", data->line, kind_phrase(data->kind));
        goto out;
    }
    for (size_t j = 0; j < data->u.table.n; j++) {
        const struct toml_pair *p = &data->u.table.pairs[j];
        if (p->value->kind != TOML_STRING) {
            char shown[48];
            size_t k = 0;
            for (; p->key[k] && k < 40; k++)
                shown[k] = p->key[k] >= 0x20 && p->key[k] < 0x7f ? p->key[k] : '?';
            shown[k] = '\0';
            snprintf(err, errlen, "line %u: data.\"%s\" must be a string, not %s", p->value->line, shown,
                     kind_phrase(p->value->kind));
            goto out;
        }
    }
    memcpy(algorithm, algorithms[i], strlen(algorithms[i]) + 1);
    rc = 0;
out:
    toml_free(root);
    return rc;
}

/* ------------------------------------------------------------------ base64 and gzip */

static bool b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

long initdata_base64_decode(const char *s, size_t len, uint8_t **out)
{
    *out = NULL;
    if (len > INITDATA_INPUT_MAX)
        return -1;
    /* Collect the alphabet characters, then restore the padding Go's StdEncoding wants. */
    char *clean = malloc(len + 4);
    if (!clean)
        return -1;
    size_t n = 0, pad = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (is_space(c))
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        if (!b64_char(c) || pad) {
            wipe_free(clean, len + 4);
            return -1;
        }
        clean[n++] = c;
    }
    size_t rem = n % 4;
    if (n == 0 || rem == 1 || pad > 2 || (pad && (rem + pad) % 4 != 0)) {
        wipe_free(clean, len + 4);
        return -1;
    }
    size_t fill = rem ? 4 - rem : 0;
    memset(clean + n, '=', fill);
    size_t total = n + fill;
    uint8_t *buf = malloc(total / 4 * 3 + 1);
    if (!buf) {
        wipe_free(clean, len + 4);
        return -1;
    }
    int got = EVP_DecodeBlock(buf, (const unsigned char *)clean, (int)total);
    wipe_free(clean, len + 4);
    if (got < 0) {
        wipe_free(buf, total / 4 * 3 + 1);
        return -1;
    }
    *out = buf;
    return (long)(got - (long)fill); /* EVP_DecodeBlock counts the padding as zero bytes */
}

/* Grows *buf (wiping the old copy) to at least need bytes, at most max + 1. */
static bool grow(uint8_t **buf, size_t *cap, size_t used, size_t max)
{
    size_t ncap = *cap ? *cap * 2 : 16384;
    if (ncap > max + 1)
        ncap = max + 1;
    uint8_t *p = malloc(ncap);
    if (!p)
        return false;
    if (*buf) {
        memcpy(p, *buf, used);
        wipe_free(*buf, *cap);
    }
    *buf = p;
    *cap = ncap;
    return true;
}

long initdata_gunzip(const uint8_t *in, size_t len, size_t max, uint8_t **out, char *err, size_t errlen)
{
    *out = NULL;
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uint8_t *buf = NULL;
    size_t cap = 0, used = 0;
    const char *why = NULL;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    for (;;) {
        if (used == cap) {
            if (cap > max) {
                why = "too large once decompressed";
                break;
            }
            if (!grow(&buf, &cap, used, max)) {
                why = "out of memory";
                break;
            }
        }
        z.next_out = buf + used;
        z.avail_out = (uInt)(cap - used);
        int rc = inflate(&z, Z_NO_FLUSH);
        used = cap - z.avail_out;
        if (rc == Z_STREAM_END) {
            if (z.avail_in == 0)
                break;
            /* Another gzip member may follow, as gzip(1) and Go's reader allow. */
            if (z.avail_in < 2 || z.next_in[0] != 0x1f || z.next_in[1] != 0x8b) {
                why = "unexpected bytes after the gzip data";
                break;
            }
            inflateReset(&z);
            continue;
        }
        if (rc == Z_OK)
            continue;
        if (rc == Z_BUF_ERROR && z.avail_out != 0) {
            why = "gzip data is truncated";
            break;
        }
        if (rc == Z_BUF_ERROR)
            continue;
        why = rc == Z_MEM_ERROR ? "out of memory" : "gzip data is corrupt";
        break;
    }
    inflateEnd(&z);
    if (!why && used > max)
        why = "too large once decompressed";
    if (why) {
        if (strcmp(why, "too large once decompressed") == 0)
            snprintf(err, errlen, "larger than %zu KiB once decompressed", max / 1024);
        else
            snprintf(err, errlen, "%s", why);
        wipe_free(buf, cap);
        return -1;
    }
    *out = buf;
    return (long)used;
}

/* base64(gzip(data)) on one line; the gzip header is Go's (no name, mtime 0, OS unknown). */
static char *gzip_base64(const uint8_t *data, size_t len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    gz_header h;
    memset(&h, 0, sizeof(h));
    h.os = 255;
    char *b64 = NULL;
    size_t cap = deflateBound(&z, (uLong)len) + 32;
    uint8_t *gz = malloc(cap);
    if (!gz || deflateSetHeader(&z, &h) != Z_OK)
        goto out;
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)len;
    z.next_out = gz;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        goto out;
    size_t n = cap - z.avail_out;
    if (!(b64 = malloc((n + 2) / 3 * 4 + 1)))
        goto out;
    EVP_EncodeBlock((unsigned char *)b64, gz, (int)n);
out:
    deflateEnd(&z);
    wipe_free(gz, cap);
    return b64;
}

/* ------------------------------------------------------------------ the whole step */

int initdata_decode(struct initdata *out, enum initdata_source src, const char *value, size_t len, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const bool global = src == INITDATA_FROM_GLOBAL;
    const char *prefix = global ? "INITDATA" : "initdata";
    const char *fix = global ? "fix INITDATA in peer-pods-cm (-initdata)"
                             : "fix the pod's cc_init_data annotation";
    char why[200];
    uint8_t *decoded = NULL, *inflated = NULL;
    long dlen = 0, ilen = 0;
    const char *toml = value;
    size_t tlen = len;
    enum initdata_form form = INITDATA_RAW_TOML;

    if (len > INITDATA_INPUT_MAX) {
        snprintf(why, sizeof(why), "larger than %u MiB", INITDATA_INPUT_MAX >> 20);
        goto bad;
    }
    /* A valid TOML document is never valid base64 (it needs '=' before a value, '[' or '#'),
     * so an annotation that decodes is taken as encoded. */
    dlen = initdata_base64_decode(value, len, &decoded);
    if (global || dlen >= 0) {
        if (dlen < 0) {
            snprintf(why, sizeof(why), "not base64 (give the output of 'base64 -w0 initdata.toml', "
                                       "optionally of the gzip'd file)");
            goto bad;
        }
        form = INITDATA_BASE64_TOML;
        toml = (const char *)decoded;
        tlen = (size_t)dlen;
        if (dlen >= 2 && decoded[0] == 0x1f && decoded[1] == 0x8b) {
            char gzerr[96];
            if ((ilen = initdata_gunzip(decoded, (size_t)dlen, INITDATA_TOML_MAX, &inflated, gzerr,
                                        sizeof(gzerr))) < 0) {
                snprintf(why, sizeof(why), "%s", gzerr);
                goto bad;
            }
            form = INITDATA_BASE64_GZIP;
            toml = (const char *)inflated;
            tlen = (size_t)ilen;
        }
    }
    if (tlen > INITDATA_TOML_MAX) {
        snprintf(why, sizeof(why), "larger than %u KiB", INITDATA_TOML_MAX / 1024);
        goto bad;
    }
    if (initdata_toml_check(toml, tlen, out->algorithm, why, sizeof(why)))
        goto bad;

    const EVP_MD *md = EVP_get_digestbyname(out->algorithm);
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned int dn = 0;
    if (!md || EVP_Digest(toml, tlen, dig, &dn, md, NULL) != 1) {
        snprintf(why, sizeof(why), "cannot compute the %s digest", out->algorithm);
        goto bad;
    }
    for (unsigned i = 0; i < dn; i++)
        snprintf(out->digest + 2 * i, 3, "%02x", dig[i]);
    if (!(out->vm_value = gzip_base64((const uint8_t *)toml, tlen))) {
        snprintf(why, sizeof(why), "out of memory while compressing");
        goto bad;
    }
    out->toml_len = tlen;
    out->form = form;
    wipe_free(decoded, dlen > 0 ? (size_t)dlen : 0);
    wipe_free(inflated, ilen > 0 ? (size_t)ilen : 0);
    return 0;
bad:
    wipe_free(decoded, dlen > 0 ? (size_t)dlen : 0);
    wipe_free(inflated, ilen > 0 ? (size_t)ilen : 0);
    initdata_clear(out);
    snprintf(err, errlen, "%s: %s; %s", prefix, why, fix);
    return -1;
}

void initdata_clear(struct initdata *d)
{
    if (d->vm_value)
        wipe_free(d->vm_value, strlen(d->vm_value));
    memset(d, 0, sizeof(*d));
}
