/* Unit tests for adaptor/vmdoc.c: which initdata a sandbox gets (annotation over INITDATA
 * over none), the TLS material of each mode in apf.json, error codes, and the base64
 * length used against provider limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "provider.h"
#include "ttrpc.h"
#include "vmdoc.h"

const struct provider_ops *const provider_table[] = {NULL};

static const char *toml_a = "algorithm = \"sha256\"\nversion = \"0.1.0\"\n[data]\n\"aa.toml\" = 'a'\n";
static const char *toml_b = "algorithm = \"sha512\"\nversion = \"0.1.0\"\n[data]\n\"cdh.toml\" = 'b'\n";

struct fixture {
    char dir[64];
    struct tlsca *tls;
    struct config cfg;
    struct pod_spec pod;
    struct userdata_pod_network net;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/vmdoc-test.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    struct tlsca_options o = {.state_dir = f->dir};
    char err[256];
    assert_int_equal(tlsca_open(&f->tls, &o, err, sizeof(err)), 0);
    f->cfg.tls_min_version = "";
    f->cfg.tls_cipher_suites = "";
    f->pod.pod_name = "nginx";
    f->pod.pod_namespace = "default";
    f->pod.initdata = "";
    f->net.tunnel_type = "vxlan";
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    tlsca_free(f->tls);
    char tlsdir[128];
    snprintf(tlsdir, sizeof(tlsdir), "%s/tls", f->dir);
    static const char *files[] = {"ca.key", "ca.crt", "client.key", "client.crt"};
    for (size_t i = 0; i < 4; i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s/%s", tlsdir, files[i]);
        unlink(p);
    }
    rmdir(tlsdir);
    rmdir(f->dir);
    free(f);
    return 0;
}

static struct vmdoc_input input(struct fixture *f, const struct initdata *global)
{
    struct vmdoc_input in = {
        .cfg = &f->cfg, .tls = f->tls, .global = global, .pod = &f->pod, .vm_name = "podvm-nginx-0123abcd",
        .net = &f->net,
    };
    return in;
}

static void test_initdata_precedence(void **state)
{
    struct fixture *f = *state;
    struct initdata global;
    char err[512];
    char b64[256];
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)toml_b, (int)strlen(toml_b));
    assert_int_equal(initdata_decode(&global, INITDATA_FROM_GLOBAL, b64, strlen(b64), err, sizeof(err)), 0);
    struct initdata none = {0};
    struct vmdoc_result r;

    struct vmdoc_input in = input(f, &none);
    assert_int_equal(vmdoc_build(&in, &r, err, sizeof(err)), 0);
    assert_int_equal(r.initdata_source, VMDOC_INITDATA_NONE);
    assert_null(strstr((char *)r.doc, "/run/peerpod/initdata"));
    vmdoc_result_clear(&r);

    in = input(f, &global);
    assert_int_equal(vmdoc_build(&in, &r, err, sizeof(err)), 0);
    assert_int_equal(r.initdata_source, VMDOC_INITDATA_GLOBAL);
    assert_string_equal(r.initdata_algorithm, "sha512");
    assert_non_null(strstr((char *)r.doc, global.vm_value));
    vmdoc_result_clear(&r);

    f->pod.initdata = (char *)toml_a;
    assert_int_equal(vmdoc_build(&in, &r, err, sizeof(err)), 0);
    assert_int_equal(r.initdata_source, VMDOC_INITDATA_ANNOTATION);
    assert_string_equal(r.initdata_algorithm, "sha256");
    assert_null(strstr((char *)r.doc, global.vm_value));
    vmdoc_result_clear(&r);
    assert_null(r.doc);

    f->pod.initdata = "algorithm = \"md5\"\nversion = \"1\"\n[data]\n";
    assert_int_equal(vmdoc_build(&in, &r, err, sizeof(err)), TTRPC_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "initdata: unknown algorithm 'md5'"));
    assert_null(r.doc);
    f->pod.initdata = "";
    initdata_clear(&global);
}

static void test_tls_material(void **state)
{
    struct fixture *f = *state;
    struct initdata none = {0};
    struct vmdoc_result r;
    char err[512];
    struct vmdoc_input in = input(f, &none);
    f->cfg.tls_min_version = "VersionTLS13";
    assert_int_equal(vmdoc_build(&in, &r, err, sizeof(err)), 0);
    assert_true(r.server_cert);
    const char *doc = (const char *)r.doc;
    assert_non_null(strstr(doc, "\"tls-server-key\": \"-----BEGIN PRIVATE KEY-----\\n"));
    assert_non_null(strstr(doc, "\"tls-server-cert\": \"-----BEGIN CERTIFICATE-----\\n"));
    assert_non_null(strstr(doc, "\"tls-client-ca\": \"-----BEGIN CERTIFICATE-----\\n"));
    assert_non_null(strstr(doc, "\"tls-min-version\": \"VersionTLS13\""));
    assert_non_null(strstr(doc, "\"pod-name\": \"nginx\""));
    vmdoc_result_clear(&r);
    /* Without TLS nothing of it, not even the profile. */
    in.tls = NULL;
    assert_int_equal(vmdoc_build(&in, &r, err, sizeof(err)), 0);
    assert_false(r.server_cert);
    assert_null(strstr((const char *)r.doc, "\"tls-"));
    vmdoc_result_clear(&r);
    f->cfg.tls_min_version = "";
}

static void test_auth_json(void **state)
{
    struct fixture *f = *state;
    struct initdata none = {0};
    struct vmdoc_result r;
    char err[512];
    struct userdata_registry_auth regs[] = {{"quay.io", "dXNlcjpwYXNz"}};
    size_t alen;
    char *auth = userdata_auth_json_render(regs, 1, &alen);
    assert_non_null(auth);
    struct vmdoc_input in = input(f, &none);
    in.auth_json = auth;
    in.auth_json_len = alen;
    assert_int_equal(vmdoc_build(&in, &r, err, sizeof(err)), 0);
    assert_false(r.auth_dropped);
    assert_non_null(strstr((const char *)r.doc, "  - path: /run/peerpod/auth.json\n    content: |\n      "
                                                "{\"auths\":{\"quay.io\":{\"auth\":\"dXNlcjpwYXNz\"}}}\n"));
    vmdoc_result_clear(&r);
    userdata_text_free(auth);
    /* Over 12288 bytes: left out, and said so for the log. */
    char *big = malloc(USERDATA_AUTH_JSON_MAX + 2);
    assert_non_null(big);
    memset(big, 'a', USERDATA_AUTH_JSON_MAX + 1);
    big[USERDATA_AUTH_JSON_MAX + 1] = '\0';
    in.auth_json = big;
    in.auth_json_len = USERDATA_AUTH_JSON_MAX + 1;
    assert_int_equal(vmdoc_build(&in, &r, err, sizeof(err)), 0);
    assert_true(r.auth_dropped);
    assert_null(strstr((const char *)r.doc, "auth.json"));
    vmdoc_result_clear(&r);
    free(big);
}

static void test_base64_len(void **state)
{
    (void)state;
    assert_int_equal(vmdoc_base64_len(0), 0);
    assert_int_equal(vmdoc_base64_len(1), 4);
    assert_int_equal(vmdoc_base64_len(3), 4);
    assert_int_equal(vmdoc_base64_len(4), 8);
    assert_int_equal(vmdoc_base64_len(49152), 65536); /* Azure's limit: 48 KiB of document */
    assert_int_equal(vmdoc_base64_len(49153), 65540);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_initdata_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_material, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_json, setup, teardown),
        cmocka_unit_test(test_base64_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
