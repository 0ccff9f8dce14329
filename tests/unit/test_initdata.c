/* Unit tests for adaptor/initdata.c and adaptor/toml.c: the seed initdata files (default,
 * pod1/pod2 with pod_name, the policy with allowed commands) given raw, as base64 and as
 * gzip+base64, through both sources; digests against sha256sum/sha384sum; the VM value;
 * and every corrupt input the issue names, each with its own clear error that never
 * quotes the document. Run from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "initdata.h"
#include "provider.h"
#include "toml.h"

const struct provider_ops *const provider_table[] = {NULL};

#define DATA_DIR "tests/data/initdata/"

/* Digests computed with coreutils over the files as committed. */
static const struct {
    const char *file, *algorithm, *digest;
    size_t len;
} seeds[] = {
    {"default.toml", "sha384",
     "6ddbfae4e77ed8e696c5ff6e4e6a2201ea67fbcd823827b0d0aa858489c7105d6e932d7b8153e494475b1eac67bfa190", 2157},
    {"pod1.toml", "sha256", "a945be16a3edac7997f48601995b7f16fa1efcb75fb640f0ee0944202f772186", 2778},
    {"pod2.toml", "sha256", "a15e69062eca79f184f988ef1ab3034b0591a4a4f08a7d7d586b48afb333e1a7", 2778},
};

/* ------------------------------------------------------------------ helpers */

static char *file_read(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof(path), DATA_DIR "%s", name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (run the tests from the repository root)", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static char *b64(const uint8_t *p, size_t n)
{
    char *s = malloc((n + 2) / 3 * 4 + 1);
    assert_non_null(s);
    EVP_EncodeBlock((unsigned char *)s, p, (int)n);
    return s;
}

/* gzip as gzip(1) writes it: zlib's default header. */
static uint8_t *gz(const void *p, size_t n, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, (uLong)n) + 64;
    uint8_t *out = malloc(cap);
    assert_non_null(out);
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static char *gz_b64(const char *text, size_t n)
{
    size_t glen;
    uint8_t *g = gz(text, n, &glen);
    char *s = b64(g, glen);
    free(g);
    return s;
}

/* What the pod VM does with /run/peerpod/initdata: base64, gunzip; must give the TOML. */
static void assert_vm_value(const char *vm, const char *toml, size_t len)
{
    assert_non_null(vm);
    assert_null(strpbrk(vm, "\n\r "));
    assert_int_equal(strncmp(vm, "H4sIAAAAAAAA/", 13), 0); /* Go's gzip header: mtime 0, OS unknown */
    uint8_t *raw, *plain;
    long rn = initdata_base64_decode(vm, strlen(vm), &raw);
    assert_true(rn > 10);
    uLongf cap = len + 1;
    plain = malloc(cap);
    assert_non_null(plain);
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(inflateInit2(&z, 31), Z_OK);
    z.next_in = raw;
    z.avail_in = (uInt)rn;
    z.next_out = plain;
    z.avail_out = (uInt)cap;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    assert_int_equal(cap - z.avail_out, len);
    assert_memory_equal(plain, toml, len);
    inflateEnd(&z);
    free(raw);
    free(plain);
}

static void expect_error(enum initdata_source src, const char *value, size_t len, const char *want)
{
    struct initdata d;
    char err[512];
    memset(err, 0, sizeof(err));
    assert_int_equal(initdata_decode(&d, src, value, len, err, sizeof(err)), -1);
    if (!strstr(err, want))
        fail_msg("error %s\n does not contain %s", err, want);
    assert_null(d.vm_value);
    /* Nothing of the document's contents may appear in an error. */
    assert_null(strstr(err, "SECRET"));
    assert_null(strstr(err, "BEGIN CERTIFICATE"));
}

/* ------------------------------------------------------------------ good inputs */

static void test_seed_files_every_form(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        size_t len;
        char *toml = file_read(seeds[i].file, &len);
        assert_int_equal(len, seeds[i].len);
        char *plain64 = b64((const uint8_t *)toml, len);
        char *gz64 = gz_b64(toml, len);
        struct {
            enum initdata_source src;
            const char *value;
            enum initdata_form form;
        } forms[] = {
            {INITDATA_FROM_ANNOTATION, toml, INITDATA_RAW_TOML},      /* what kata forwards */
            {INITDATA_FROM_ANNOTATION, gz64, INITDATA_BASE64_GZIP},   /* the pod annotation as written */
            {INITDATA_FROM_ANNOTATION, plain64, INITDATA_BASE64_TOML},
            {INITDATA_FROM_GLOBAL, plain64, INITDATA_BASE64_TOML},    /* base64 -w0 initdata.toml */
            {INITDATA_FROM_GLOBAL, gz64, INITDATA_BASE64_GZIP},       /* gzip | base64 -w0 */
        };
        for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
            struct initdata d;
            char err[512] = "";
            if (initdata_decode(&d, forms[f].src, forms[f].value, strlen(forms[f].value), err, sizeof(err)))
                fail_msg("%s form %zu: %s", seeds[i].file, f, err);
            assert_string_equal(d.algorithm, seeds[i].algorithm);
            assert_string_equal(d.digest, seeds[i].digest);
            assert_int_equal(d.toml_len, len);
            assert_int_equal(d.form, forms[f].form);
            assert_vm_value(d.vm_value, toml, len);
            initdata_clear(&d);
            assert_null(d.vm_value);
        }
        free(plain64);
        free(gz64);
        free(toml);
    }
}

static void test_global_with_line_breaks(void **state)
{
    (void)state;
    /* base64 without -w0 wraps at 76 columns; a ConfigMap value may end in a newline. */
    size_t len;
    char *toml = file_read("pod1.toml", &len);
    char *flat = b64((const uint8_t *)toml, len);
    size_t fl = strlen(flat);
    char *wrapped = malloc(fl + fl / 76 + 4);
    assert_non_null(wrapped);
    size_t w = 0;
    for (size_t i = 0; i < fl; i++) {
        if (i && i % 76 == 0)
            wrapped[w++] = '\n';
        wrapped[w++] = flat[i];
    }
    wrapped[w++] = '\r';
    wrapped[w++] = '\n';
    wrapped[w] = '\0';
    struct initdata d;
    char err[512];
    assert_int_equal(initdata_decode(&d, INITDATA_FROM_GLOBAL, wrapped, w, err, sizeof(err)), 0);
    assert_string_equal(d.digest, seeds[1].digest);
    initdata_clear(&d);
    free(wrapped);
    free(flat);
    free(toml);
}

static void test_multi_member_gzip(void **state)
{
    (void)state;
    /* cat a.gz b.gz is one valid gzip stream for gzip(1) and for Go's reader. */
    const char *a = "algorithm = \"sha512\"\nversion = \"0.1.0\"\n", *b = "[data]\n\"aa.toml\" = ''\n";
    size_t la, lb;
    uint8_t *ga = gz(a, strlen(a), &la), *gb = gz(b, strlen(b), &lb);
    uint8_t *both = malloc(la + lb);
    assert_non_null(both);
    memcpy(both, ga, la);
    memcpy(both + la, gb, lb);
    char *v = b64(both, la + lb);
    struct initdata d;
    char err[512];
    assert_int_equal(initdata_decode(&d, INITDATA_FROM_GLOBAL, v, strlen(v), err, sizeof(err)), 0);
    assert_string_equal(d.algorithm, "sha512");
    assert_int_equal(strlen(d.digest), 128);
    assert_int_equal(d.toml_len, strlen(a) + strlen(b));
    initdata_clear(&d);
    free(v);
    free(both);
    free(ga);
    free(gb);
}

static void test_extra_keys_and_forms(void **state)
{
    (void)state;
    static const char *ok[] = {
        /* extra top-level keys of any kind, inline data table, dotted data keys, empty data */
        "algorithm = \"sha256\"\nversion = \"0.1.0\"\npod_name = \"pod1\"\nreplicas = 3\n[data]\n",
        "algorithm = 'sha256'\nversion = \"0.1.0\"\ndata = { \"policy.rego\" = \"package agent_policy\" }\n",
        "algorithm = \"sha256\"\nversion = \"0.2.0\"\ndata.\"aa.toml\" = \"\"\"\n[token_configs]\n\"\"\"\n",
        "# comment first\n\nalgorithm = \"sha384\" # trailing\nversion = \"0.1.0\"\n[extra]\nk = [1, 2]\n[data]\n",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct initdata d;
        char err[512] = "";
        if (initdata_decode(&d, INITDATA_FROM_ANNOTATION, ok[i], strlen(ok[i]), err, sizeof(err)))
            fail_msg("case %zu: %s", i, err);
        initdata_clear(&d);
    }
}

/* ------------------------------------------------------------------ bad inputs */

static void test_bad_base64(void **state)
{
    (void)state;
    expect_error(INITDATA_FROM_GLOBAL, "not base64 at all!", 18, "INITDATA: not base64");
    expect_error(INITDATA_FROM_GLOBAL, "QUJD=RA==", 9, "INITDATA: not base64");
    expect_error(INITDATA_FROM_GLOBAL, "QUJDR", 5, "INITDATA: not base64");
    expect_error(INITDATA_FROM_GLOBAL, "", 0, "INITDATA: not base64");
    /* The error names the setting to fix. */
    expect_error(INITDATA_FROM_GLOBAL, "%%%", 3, "fix INITDATA in peer-pods-cm");
    /* Raw TOML in INITDATA is not what the docs ask for: refused, not guessed. */
    expect_error(INITDATA_FROM_GLOBAL, "algorithm = \"sha256\"", 20, "INITDATA: not base64");
}

static void test_bad_gzip(void **state)
{
    (void)state;
    size_t len;
    char *toml = file_read("default.toml", &len);
    size_t glen;
    uint8_t *g = gz(toml, len, &glen);

    /* Truncated: the last 20 bytes (end of the deflate data and the trailer) are gone. */
    char *t = b64(g, glen - 20);
    expect_error(INITDATA_FROM_GLOBAL, t, strlen(t), "INITDATA: gzip data is truncated");
    expect_error(INITDATA_FROM_ANNOTATION, t, strlen(t), "initdata: gzip data is truncated");
    free(t);

    /* Corrupt: a flipped byte in the middle of the deflate data or in the CRC. */
    g[glen / 2] ^= 0x55;
    t = b64(g, glen);
    expect_error(INITDATA_FROM_GLOBAL, t, strlen(t), "gzip data is corrupt");
    free(t);
    g[glen / 2] ^= 0x55;
    g[glen - 6] ^= 0x01;
    t = b64(g, glen);
    expect_error(INITDATA_FROM_GLOBAL, t, strlen(t), "gzip data is corrupt");
    free(t);
    g[glen - 6] ^= 0x01;

    /* Garbage after the member. */
    uint8_t *more = malloc(glen + 3);
    assert_non_null(more);
    memcpy(more, g, glen);
    memcpy(more + glen, "xyz", 3);
    t = b64(more, glen + 3);
    expect_error(INITDATA_FROM_GLOBAL, t, strlen(t), "unexpected bytes after the gzip data");
    free(t);
    free(more);
    free(g);
    free(toml);
}

static void test_gzip_bomb(void **state)
{
    (void)state;
    /* 64 MiB of spaces compress to ~64 KiB; decoding stops at the 1 MiB cap. */
    size_t n = 64u << 20;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    char *v = gz_b64(big, n);
    free(big);
    assert_true(strlen(v) < 200000);
    expect_error(INITDATA_FROM_GLOBAL, v, strlen(v), "INITDATA: larger than 1024 KiB once decompressed");
    free(v);

    /* Just under the cap is fine for the decompressor (and then fails as TOML, not size). */
    uint8_t *out;
    char err[128];
    size_t m = INITDATA_TOML_MAX;
    char *fits = malloc(m);
    assert_non_null(fits);
    memset(fits, '#', m);
    size_t glen;
    uint8_t *g = gz(fits, m, &glen);
    assert_int_equal(initdata_gunzip(g, glen, INITDATA_TOML_MAX, &out, err, sizeof(err)), (long)m);
    free(out);
    free(g);
    fits[m - 1] = '#';
    g = gz(fits, m - 1, &glen);
    assert_int_equal(initdata_gunzip(g, glen, INITDATA_TOML_MAX - 2, &out, err, sizeof(err)), -1);
    assert_string_equal(err, "larger than 1023 KiB once decompressed");
    free(g);
    free(fits);
}

static void test_content_errors(void **state)
{
    (void)state;
    static const struct {
        const char *toml, *want;
    } cases[] = {
        {"algorithm = \"md5\"\nversion = \"0.1.0\"\n[data]\n",
         "initdata: unknown algorithm 'md5' (expected sha256, sha384 or sha512)"},
        {"algorithm = \"SHA256\"\nversion = \"0.1.0\"\n[data]\n", "unknown algorithm 'SHA256'"},
        {"algorithm = \"sha256\\u0000\"\nversion = \"0.1.0\"\n[data]\n", "unknown algorithm 'sha256?'"},
        {"algorithm = \"sha256-with-a-very-long-and-made-up-suffix\"\nversion = \"0.1.0\"\n[data]\n",
         "unknown algorithm 'sha256-with-a-ve...'"},
        {"version = \"0.1.0\"\n[data]\n", "initdata: missing the key 'algorithm'"},
        {"algorithm = 256\nversion = \"0.1.0\"\n[data]\n", "line 1: 'algorithm' must be a string, not an integer"},
        {"algorithm = \"sha256\"\n[data]\n", "missing the key 'version'"},
        {"algorithm = \"sha256\"\nversion = 0.1\n[data]\n", "line 2: 'version' must be a string"},
        {"algorithm = \"sha256\"\nversion = \"0.1.0\"\n", "initdata: missing the [data] table"},
        {"algorithm = \"sha256\"\nversion = \"0.1.0\"\ndata = \"SECRET\"\n", "line 3: 'data' must be a table"},
        {"algorithm = \"sha256\"\nversion = \"0.1.0\"\n[data]\n\"aa.toml\" = 5\n",
         "line 4: data.\"aa.toml\" must be a string, not an integer"},
        {"algorithm = \"sha256\"\nversion = \"0.1.0\"\n[data]\n\"cdh.toml\" = ['SECRET']\n",
         "data.\"cdh.toml\" must be a string, not an array"},
        {"algorithm = \"sha256\"\nversion = \"0.1.0\"\n[data.\"policy.rego\"]\nx = 'SECRET'\n",
         "data.\"policy.rego\" must be a string, not a table"},
        {"algorithm = \"sha256\"\nversion = \"0.1.0\"\n[data]\n\"aa.toml\" = '''\nSECRET\n", "line 4: unterminated string"},
        {"algorithm = \"sha256\"\nversion = \"0.1.0\"\n[data]\n\"aa.toml\" = \"SECRET\n", "line 4: unterminated string"},
        {"algorithm = \"sha256\"\nalgorithm = \"sha256\"\n", "line 2: duplicate key 'algorithm'"},
        {"algorithm = \"sha256\"\nversion = \"0.1.0\"\n[data]\nkey = SECRET\n", "line 4: expected a value"},
        {"algorithm = \"sha256\"\nversion = \"0.1.0\"\n[data]\n\xff\xfe = 'x'\n", "line 4: invalid UTF-8"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(INITDATA_FROM_ANNOTATION, cases[i].toml, strlen(cases[i].toml), cases[i].want);
    /* The same problems through INITDATA, in both encodings, name INITDATA. */
    const char *md5 = "algorithm = \"md5\"\nversion = \"0.1.0\"\n[data]\n";
    char *v = b64((const uint8_t *)md5, strlen(md5));
    expect_error(INITDATA_FROM_GLOBAL, v, strlen(v), "INITDATA: unknown algorithm 'md5'");
    free(v);
    v = gz_b64(md5, strlen(md5));
    expect_error(INITDATA_FROM_GLOBAL, v, strlen(v), "INITDATA: unknown algorithm 'md5'");
    free(v);
}

static void test_line_numbers_in_seed(void **state)
{
    (void)state;
    /* Cut the policy's closing ''' from a seed file: the error points at the line where
     * the unterminated string starts. */
    size_t len;
    char *toml = file_read("pod1.toml", &len);
    char *last = strstr(toml, "\"policy.rego\" = '''");
    assert_non_null(last);
    unsigned line = 1;
    for (char *p = toml; p < last; p++)
        line += *p == '\n';
    char *end = strrchr(toml, '\'');
    assert_non_null(end);
    size_t cut = (size_t)(end - toml) - 2;
    char want[64];
    snprintf(want, sizeof(want), "initdata: line %u: unterminated string", line);
    char *v = gz_b64(toml, cut);
    expect_error(INITDATA_FROM_ANNOTATION, v, strlen(v), want);
    expect_error(INITDATA_FROM_ANNOTATION, toml, cut, want);
    free(v);
    free(toml);
}

static void test_too_large(void **state)
{
    (void)state;
    size_t n = INITDATA_TOML_MAX + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, '#', n);
    expect_error(INITDATA_FROM_ANNOTATION, big, n, "initdata: larger than 1024 KiB");
    free(big);
}

/* ------------------------------------------------------------------ the TOML reader */

static void test_toml_tree(void **state)
{
    (void)state;
    size_t len;
    char *text = file_read("default.toml", &len);
    struct toml_error e;
    struct toml_value *root = toml_parse(text, len, &e);
    assert_non_null(root);
    const struct toml_value *data = toml_table_get(root, "data");
    assert_non_null(data);
    assert_int_equal(data->kind, TOML_TABLE);
    assert_int_equal(data->u.table.n, 3);
    assert_string_equal(data->u.table.pairs[0].key, "aa.toml");
    assert_string_equal(data->u.table.pairs[1].key, "cdh.toml");
    assert_string_equal(data->u.table.pairs[2].key, "policy.rego");
    const struct toml_value *aa = toml_table_get(data, "aa.toml");
    /* The literal string keeps its inner """ block and drops the newline after '''. */
    assert_int_equal(strncmp(aa->u.str.data, "[token_configs]\n", 16), 0);
    assert_non_null(strstr(aa->u.str.data, "cert = \"\"\"\n-----BEGIN CERTIFICATE-----\n"));
    assert_int_equal(aa->u.str.data[aa->u.str.len - 1], '\n');
    assert_null(toml_table_get(root, "nope"));
    assert_null(toml_table_get(aa, "x"));
    toml_free(root);
    free(text);
}

static void test_toml_limits(void **state)
{
    (void)state;
    struct toml_error e;
    /* Nesting beyond TOML_DEPTH_MAX. */
    char deep[2 * TOML_DEPTH_MAX + 16];
    size_t n = 0;
    n += (size_t)sprintf(deep, "a = ");
    for (int i = 0; i <= TOML_DEPTH_MAX; i++)
        deep[n++] = '[';
    for (int i = 0; i <= TOML_DEPTH_MAX; i++)
        deep[n++] = ']';
    assert_null(toml_parse(deep, n, &e));
    assert_non_null(strstr(e.msg, "nested more than 64 deep"));
    /* Exactly at the limit is fine. */
    n = (size_t)sprintf(deep, "a = ");
    for (int i = 0; i < TOML_DEPTH_MAX; i++)
        deep[n++] = '[';
    for (int i = 0; i < TOML_DEPTH_MAX; i++)
        deep[n++] = ']';
    struct toml_value *v = toml_parse(deep, n, &e);
    assert_non_null(v);
    toml_free(v);
    /* More values than TOML_VALUES_MAX. */
    size_t cap = TOML_VALUES_MAX * 3 + 16;
    char *many = malloc(cap);
    assert_non_null(many);
    n = (size_t)sprintf(many, "a = [");
    for (int i = 0; i < TOML_VALUES_MAX; i++) {
        many[n++] = '1';
        many[n++] = ',';
    }
    many[n++] = ']';
    assert_null(toml_parse(many, n, &e));
    assert_non_null(strstr(e.msg, "more than 8192 values"));
    free(many);
    /* Dotted keys are bounded too. */
    const char *dots = "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q = 1\n";
    assert_null(toml_parse(dots, strlen(dots), &e));
    assert_string_equal(e.msg, "line 1: key has more than 16 dotted parts");
    assert_int_equal(e.line, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_files_every_form),
        cmocka_unit_test(test_global_with_line_breaks),
        cmocka_unit_test(test_multi_member_gzip),
        cmocka_unit_test(test_extra_keys_and_forms),
        cmocka_unit_test(test_bad_base64),
        cmocka_unit_test(test_bad_gzip),
        cmocka_unit_test(test_gzip_bomb),
        cmocka_unit_test(test_content_errors),
        cmocka_unit_test(test_line_numbers_in_seed),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_toml_tree),
        cmocka_unit_test(test_toml_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
