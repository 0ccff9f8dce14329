/* Unit tests for adaptor/kubejson: Kubernetes API bodies byte for byte, and the readers of
 * Node, Pod, ServiceAccount, Secret, PodList and Status replies with Go's decoding rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "kubejson.h"
#include "provider.h"

const struct provider_ops *const provider_table[] = {NULL};

static size_t n_of(const char *s)
{
    return strlen(s);
}

/* ---- request bodies ---------------------------------------------------------------- */

static void expect_text(char *got, size_t len, const char *want)
{
    assert_non_null(got);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
    free(got);
}

static void test_owner_patch(void **state)
{
    (void)state;
    size_t len = 0;
    char *p = kubejson_owner_patch("0b3e5f6c-1a2b-4c3d-8e9f-0123456789ab", &len);
    expect_text(p, len,
                "{\"metadata\":{\"annotations\":{\"kata.peerpods.io/caa-owner\":"
                "\"0b3e5f6c-1a2b-4c3d-8e9f-0123456789ab\"}}}");
    /* Go's json.Marshal: quote and backslash escaped, HTML characters and U+2028 as \u. */
    p = kubejson_owner_patch("a\"b\\<>&\n\xe2\x80\xa8\x01", &len);
    expect_text(p, len,
                "{\"metadata\":{\"annotations\":{\"kata.peerpods.io/caa-owner\":"
                "\"a\\\"b\\\\\\u003c\\u003e\\u0026\\n\\u2028\\u0001\"}}}");
    p = kubejson_owner_patch("", &len);
    expect_text(p, len, "{\"metadata\":{\"annotations\":{\"kata.peerpods.io/caa-owner\":\"\"}}}");
    p = kubejson_owner_patch(NULL, NULL); /* len may be NULL */
    assert_string_equal(p, "{\"metadata\":{\"annotations\":{\"kata.peerpods.io/caa-owner\":\"\"}}}");
    free(p);
}

static void test_peerpod_name(void **state)
{
    (void)state;
    char out[KUBEJSON_NAME_MAX + 1];
    assert_int_equal(kubejson_peerpod_name("web-0", "0A1b2C3d4e5f60718293a4b5c6d7e8f9", out, sizeof(out)), 0);
    assert_string_equal(out, "web-0-resource-0a1b2c3d");
    assert_int_equal(kubejson_peerpod_name("p", "ab_.Z", out, sizeof(out)), 0); /* short, odd id */
    assert_string_equal(out, "p-resource-abxxz");
    /* The longest pod name: its part is cut so the whole is a valid name of 253. */
    char pod[KUBEJSON_NAME_MAX + 1];
    memset(pod, 'a', KUBEJSON_NAME_MAX);
    pod[KUBEJSON_NAME_MAX] = '\0';
    pod[KUBEJSON_NAME_MAX - 19] = '.'; /* would be the last kept byte */
    assert_int_equal(kubejson_peerpod_name(pod, "0123456789abcdef", out, sizeof(out)), 0);
    assert_int_equal(strlen(out), KUBEJSON_NAME_MAX - 1);
    assert_non_null(strstr(out, "a-resource-01234567"));
    assert_null(strstr(out, ".-"));
    assert_int_equal(kubejson_peerpod_name("", "0123", out, sizeof(out)), -1);
    assert_int_equal(kubejson_peerpod_name("p", "", out, sizeof(out)), -1);
    assert_int_equal(kubejson_peerpod_name("--", "0123", out, sizeof(out)), -1);
    char tiny[8];
    assert_int_equal(kubejson_peerpod_name("web-0", "0123", tiny, sizeof(tiny)), -1);
}

static void test_peerpod_body(void **state)
{
    (void)state;
    size_t len = 0;
    char *b = kubejson_peerpod_body("team-a", "web-0-resource-0a1b2c3d", "web-0", "6f1c2d3e-aaaa-bbbb-cccc-0123456789ab",
                                    "azure", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/"
                                    "virtualMachines/podvm-web-0-0a1b2c3d", &len);
    expect_text(b, len,
                "{\"apiVersion\":\"confidentialcontainers.org/v1alpha1\",\"kind\":\"PeerPod\",\"metadata\":{"
                "\"name\":\"web-0-resource-0a1b2c3d\",\"namespace\":\"team-a\",\"finalizers\":[\"peer.pod/finalizer\"],"
                "\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"name\":\"web-0\","
                "\"uid\":\"6f1c2d3e-aaaa-bbbb-cccc-0123456789ab\",\"controller\":true,\"blockOwnerDeletion\":true}]},"
                "\"spec\":{\"cloudProvider\":\"azure\",\"instanceID\":\"/subscriptions/s/resourceGroups/rg/providers/"
                "Microsoft.Compute/virtualMachines/podvm-web-0-0a1b2c3d\"}}");
    /* Quotes survive as JSON escapes; invalid UTF-8 is refused. */
    b = kubejson_peerpod_body("n", "x", "p\"q", "u", "libvirt", "i", &len);
    assert_non_null(strstr(b, "\"name\":\"p\\\"q\""));
    free(b);
    assert_null(kubejson_peerpod_body("n", "x", "p\xff", "u", "libvirt", "i", &len));
    assert_string_equal(kubejson_peerpod_release_patch, "[{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}]");
}

static void test_object_uid(void **state)
{
    (void)state;
    char uid[40];
    static const char pod[] = "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"web-0\",\"uid\":\"6f1c2d3e-aaaa\"}}";
    assert_int_equal(kubejson_object_uid(pod, strlen(pod), uid, sizeof(uid)), 0);
    assert_string_equal(uid, "6f1c2d3e-aaaa");
    static const char *const bad[] = {
        "{\"metadata\":{\"name\":\"x\"}}", "{\"metadata\":{\"uid\":\"\"}}", "{\"metadata\":{\"uid\":7}}",
        "{\"metadata\":[]}", "{}", "[]", "not json", "{\"metadata\":{\"uid\":\"a\\u0000b\"}}",
        "{\"metadata\":{\"uid\":\"0123456789012345678901234567890123456789\"}}", /* does not fit */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        strcpy(uid, "stale");
        assert_int_equal(kubejson_object_uid(bad[i], strlen(bad[i]), uid, sizeof(uid)), -1);
        assert_string_equal(uid, "");
    }
}

static void test_capacity_patches(void **state)
{
    (void)state;
    static const struct {
        long long limit;
        const char *want;
    } cases[] = {
        {10, "[{\"op\":\"add\",\"path\":\"/status/capacity/kata.peerpods.io~1vm\",\"value\":\"10\"}]"},
        {0, "[{\"op\":\"add\",\"path\":\"/status/capacity/kata.peerpods.io~1vm\",\"value\":\"0\"}]"},
        {-3, "[{\"op\":\"add\",\"path\":\"/status/capacity/kata.peerpods.io~1vm\",\"value\":\"-3\"}]"},
        {LLONG_MAX,
         "[{\"op\":\"add\",\"path\":\"/status/capacity/kata.peerpods.io~1vm\",\"value\":\"9223372036854775807\"}]"},
        {LLONG_MIN,
         "[{\"op\":\"add\",\"path\":\"/status/capacity/kata.peerpods.io~1vm\",\"value\":\"-9223372036854775808\"}]"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = 0;
        char *p = kubejson_capacity_add_patch(cases[i].limit, &len);
        expect_text(p, len, cases[i].want);
    }
    /* The value is omitempty in Go's struct: the remove op has none. */
    assert_string_equal(kubejson_capacity_remove_patch,
                        "[{\"op\":\"remove\",\"path\":\"/status/capacity/kata.peerpods.io~1vm\"}]");
}

/* ---- Node -------------------------------------------------------------------------------- */

static int owner_of(const char *body, char *owner, size_t cap)
{
    return kubejson_node_owner(body, n_of(body), owner, cap);
}

static void test_node_owner(void **state)
{
    (void)state;
    char owner[KUBEJSON_NAME_MAX + 1];
    const char *node = "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"worker-1\",\"annotations\":"
                       "{\"node.alpha.kubernetes.io/ttl\":\"0\",\"kata.peerpods.io/caa-owner\":\"uid-1\"}},"
                       "\"status\":{\"capacity\":{\"cpu\":\"4\",\"kata.peerpods.io/vm\":\"10\"}}}";
    assert_int_equal(owner_of(node, owner, sizeof(owner)), 1);
    assert_string_equal(owner, "uid-1");
    /* Absent: no such annotation, no annotations, no metadata. */
    strcpy(owner, "stale");
    assert_int_equal(owner_of("{\"metadata\":{\"annotations\":{\"other\":\"x\"}}}", owner, sizeof(owner)), 0);
    assert_string_equal(owner, "");
    assert_int_equal(owner_of("{\"metadata\":{\"name\":\"w\"}}", owner, sizeof(owner)), 0);
    assert_int_equal(owner_of("{\"metadata\":{\"annotations\":null}}", owner, sizeof(owner)), 0);
    assert_int_equal(owner_of("{}", owner, sizeof(owner)), 0);
    /* Too long for the buffer: present and different. Exactly fitting is kept. */
    char small[6];
    assert_int_equal(owner_of(node, small, 5), 1);
    assert_string_equal(small, "");
    assert_int_equal(owner_of(node, small, 6), 1);
    assert_string_equal(small, "uid-1");
    assert_int_equal(owner_of(node, NULL, 0), 1);
    /* A NUL byte cannot equal a pod uid; a null value is an empty one. */
    assert_int_equal(owner_of("{\"metadata\":{\"annotations\":{\"kata.peerpods.io/caa-owner\":\"a\\u0000b\"}}}",
                              owner, sizeof(owner)),
                     1);
    assert_string_equal(owner, "");
    assert_int_equal(owner_of("{\"metadata\":{\"annotations\":{\"kata.peerpods.io/caa-owner\":null}}}", owner,
                              sizeof(owner)),
                     1);
    assert_string_equal(owner, "");
    /* Not an object, not JSON, wrong types. */
    const char *bad[] = {
        "[]", "null", "\"node\"", "", "{", "{\"metadata\":{}} x",
        "{\"metadata\":\"m\"}",
        "{\"metadata\":{\"annotations\":[]}}",
        "{\"metadata\":{\"annotations\":{\"kata.peerpods.io/caa-owner\":7}}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        strcpy(owner, "stale");
        assert_int_equal(owner_of(bad[i], owner, sizeof(owner)), -1);
        assert_string_equal(owner, "");
    }
    assert_int_equal(kubejson_node_owner(NULL, 0, owner, sizeof(owner)), -1);
}

/* ---- Pod, ServiceAccount ------------------------------------------------------------------- */

static void test_pod_names(void **state)
{
    (void)state;
    struct kubejson_names n;
    const char *pod = "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\"},"
                      "\"spec\":{\"serviceAccountName\":\"builder\",\"imagePullSecrets\":[{\"name\":\"s1\"},{},"
                      "{\"name\":\"\"},null,{\"name\":null},{\"name\":\"s2\",\"extra\":[1,2]},{\"name\":\"s1\"}],"
                      "\"runtimeClassName\":\"kata-remote\"}}";
    assert_int_equal(kubejson_pod_pull_secrets(pod, n_of(pod), &n), 0);
    assert_string_equal(n.service_account, "builder");
    assert_int_equal(n.n, 3); /* document order, duplicates kept */
    assert_string_equal(n.v[0], "s1");
    assert_string_equal(n.v[1], "s2");
    assert_string_equal(n.v[2], "s1");
    kubejson_names_clear(&n);
    assert_null(n.v);
    assert_int_equal(n.n, 0);
    assert_null(n.service_account);
    kubejson_names_clear(&n); /* idempotent */

    const char *defaults[] = {
        "{\"spec\":{\"serviceAccountName\":\"\",\"imagePullSecrets\":[]}}",
        "{\"spec\":{\"serviceAccountName\":null,\"imagePullSecrets\":null}}",
        "{\"spec\":{}}",
        "{\"metadata\":{\"name\":\"p\"}}",
    };
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        assert_int_equal(kubejson_pod_pull_secrets(defaults[i], n_of(defaults[i]), &n), 0);
        assert_string_equal(n.service_account, "default");
        assert_int_equal(n.n, 0);
        kubejson_names_clear(&n);
    }

    const char *bad[] = {
        "[]",
        "not json",
        "{\"spec\":[]}",
        "{\"spec\":{\"serviceAccountName\":5}}",
        "{\"spec\":{\"imagePullSecrets\":{\"name\":\"s\"}}}",
        "{\"spec\":{\"imagePullSecrets\":[\"s\"]}}",
        "{\"spec\":{\"imagePullSecrets\":[{\"name\":\"ok\"},{\"name\":1}]}}",
        "{\"spec\":{\"imagePullSecrets\":[{\"name\":\"a\\u0000b\"}]}}",
        "{\"spec\":{\"serviceAccountName\":\"a\\u0000b\"}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(kubejson_pod_pull_secrets(bad[i], n_of(bad[i]), &n), -1);
        assert_null(n.v);
        assert_int_equal(n.n, 0);
        assert_null(n.service_account);
    }
}

static void test_sa_names(void **state)
{
    (void)state;
    struct kubejson_names n;
    const char *sa = "{\"kind\":\"ServiceAccount\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"default\"},"
                     "\"secrets\":[{\"name\":\"tok\"}],\"imagePullSecrets\":[{\"name\":\"regcred\"},{\"name\":\"\"}]}";
    assert_int_equal(kubejson_sa_pull_secrets(sa, n_of(sa), &n), 0);
    assert_null(n.service_account);
    assert_int_equal(n.n, 1);
    assert_string_equal(n.v[0], "regcred");
    kubejson_names_clear(&n);
    /* spec.imagePullSecrets is a Pod's field, not a ServiceAccount's. */
    const char *none = "{\"spec\":{\"imagePullSecrets\":[{\"name\":\"x\"}]}}";
    assert_int_equal(kubejson_sa_pull_secrets(none, n_of(none), &n), 0);
    assert_int_equal(n.n, 0);
    kubejson_names_clear(&n);
    const char *bad[] = {"5", "{\"imagePullSecrets\":\"regcred\"}", "{\"imagePullSecrets\":[[]]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(kubejson_sa_pull_secrets(bad[i], n_of(bad[i]), &n), -1);
        assert_int_equal(n.n, 0);
        assert_null(n.v);
    }
}

/* ---- Secrets ------------------------------------------------------------------------------- */

/* A Secret as the API returns it, data[key] = base64(config[0..len)). */
static char *secret_n(const char *key, const char *config, size_t len)
{
    char *b64 = malloc((len + 2) / 3 * 4 + 1);
    assert_non_null(b64);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)config, (int)len);
    size_t n = strlen(b64) + strlen(key) + 256;
    char *body = malloc(n);
    assert_non_null(body);
    snprintf(body, n,
             "{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"regcred\",\"namespace\":\"ns\"},"
             "\"data\":{\"%s\":\"%s\"},\"type\":\"kubernetes.io/%s\"}",
             key, b64, key + 1);
    free(b64);
    return body;
}

static char *secret(const char *key, const char *config)
{
    return secret_n(key, config, strlen(config));
}

static int add_body(struct kubejson_auths *a, char *body, char *err, size_t errlen)
{
    int rc = kubejson_auths_add_secret(a, body, strlen(body), err, errlen);
    free(body);
    return rc;
}

/* Adds one secret and checks what the collection renders afterwards (NULL: nothing). */
static void expect_auths(struct kubejson_auths *a, const char *want)
{
    size_t len = 99;
    char *got = kubejson_auths_render(a, &len);
    if (!want) {
        assert_null(got);
        assert_int_equal(len, 0);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
    userdata_text_free(got);
}

static void test_secret_dockerconfigjson(void **state)
{
    (void)state;
    struct kubejson_auths a = {0};
    char err[256];
    /* What kubectl create secret docker-registry writes: auth kept as it is. */
    assert_int_equal(add_body(&a,
                              secret(".dockerconfigjson", "{\"auths\":{\"reg.example\":{\"username\":\"u\","
                                                          "\"password\":\"p\",\"auth\":\"dTpw\",\"email\":\"x\"}}}"),
                              err, sizeof(err)),
                     0);
    assert_string_equal(err, "");
    expect_auths(&a, "{\"auths\":{\"reg.example\":{\"auth\":\"dTpw\"}}}");
    kubejson_auths_clear(&a);
    /* auth given and different from user:password: auth wins. */
    assert_int_equal(add_body(&a,
                              secret(".dockerconfigjson", "{\"auths\":{\"r\":{\"username\":\"u\",\"password\":\"p\","
                                                          "\"auth\":\"dG9rZW4=\"}}}"),
                              err, sizeof(err)),
                     0);
    expect_auths(&a, "{\"auths\":{\"r\":{\"auth\":\"dG9rZW4=\"}}}");
    kubejson_auths_clear(&a);
    /* Only username and password: base64("user:password"), padded. */
    assert_int_equal(add_body(&a,
                              secret(".dockerconfigjson", "{\"auths\":{\"quay.io\":{\"username\":\"alice\","
                                                          "\"password\":\"s3cr\\\"t\",\"auth\":\"\"},"
                                                          "\"x.io\":{\"username\":\"\\ufffd\",\"password\":\"p\"}}}"),
                              err, sizeof(err)),
                     0);
    expect_auths(&a, "{\"auths\":{\"quay.io\":{\"auth\":\"YWxpY2U6czNjciJ0\"},\"x.io\":{\"auth\":\"77+9OnA=\"}}}");
    kubejson_auths_clear(&a);
    /* A NUL in the password is just a byte of it. */
    assert_int_equal(add_body(&a,
                              secret(".dockerconfigjson",
                                     "{\"auths\":{\"r\":{\"username\":\"user\",\"password\":\"pa\\u0000ss\"}}}"),
                              err, sizeof(err)),
                     0);
    expect_auths(&a, "{\"auths\":{\"r\":{\"auth\":\"dXNlcjpwYQBzcw==\"}}}");
    kubejson_auths_clear(&a);
    /* Only a username, only a password, or nothing: skipped. */
    assert_int_equal(add_body(&a,
                              secret(".dockerconfigjson", "{\"auths\":{\"a\":{\"username\":\"u\"},\"b\":{\"password\":"
                                                          "\"p\"},\"c\":{},\"d\":null,\"e\":{\"username\":\"u\","
                                                          "\"password\":\"\"}},\"credsStore\":\"desktop\"}"),
                              err, sizeof(err)),
                     0);
    assert_int_equal(a.n, 0);
    expect_auths(&a, NULL);
    kubejson_auths_clear(&a);
}

static void test_secret_dockercfg(void **state)
{
    (void)state;
    struct kubejson_auths a = {0};
    char err[256];
    assert_int_equal(add_body(&a,
                              secret(".dockercfg", "{\"https://index.docker.io/v1/\":{\"auth\":\"eDp5\",\"email\":"
                                                   "\"e@x\"},\"reg.example\":{\"username\":\"u\",\"password\":\"p\"}}"),
                              err, sizeof(err)),
                     0);
    expect_auths(&a, "{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"eDp5\"},"
                     "\"reg.example\":{\"auth\":\"dTpw\"}}}");
    /* The bare map: an "auths" key there is just a registry named so. */
    assert_int_equal(add_body(&a, secret(".dockercfg", "{\"auths\":{\"auth\":\"QQ==\"}}"), err, sizeof(err)), 0);
    expect_auths(&a, "{\"auths\":{\"auths\":{\"auth\":\"QQ==\"},\"https://index.docker.io/v1/\":{\"auth\":\"eDp5\"},"
                     "\"reg.example\":{\"auth\":\"dTpw\"}}}");
    kubejson_auths_clear(&a);
}

static void test_secret_both_keys(void **state)
{
    (void)state;
    struct kubejson_auths a = {0};
    char err[256];
    /* .dockerconfigjson wins; .dockercfg is not even decoded (here it is not base64). */
    const char *body = "{\"kind\":\"Secret\",\"data\":{\".dockercfg\":\"!!!\",\".dockerconfigjson\":"
                       "\"eyJhdXRocyI6eyJyIjp7ImF1dGgiOiJkVHB3In19fQ==\"},\"type\":\"kubernetes.io/dockerconfigjson\"}";
    assert_int_equal(kubejson_auths_add_secret(&a, body, n_of(body), err, sizeof(err)), 0);
    expect_auths(&a, "{\"auths\":{\"r\":{\"auth\":\"dTpw\"}}}");
    kubejson_auths_clear(&a);
    /* No data, null data, neither key: nothing, no error. */
    const char *none[] = {
        "{\"kind\":\"Secret\",\"metadata\":{\"name\":\"s\"}}",
        "{\"data\":null}",
        "{\"data\":{\"token\":\"dG9r\",\"ca.crt\":null},\"type\":\"Opaque\"}",
    };
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        strcpy(err, "stale");
        assert_int_equal(kubejson_auths_add_secret(&a, none[i], n_of(none[i]), err, sizeof(err)), 0);
        assert_string_equal(err, "");
        assert_int_equal(a.n, 0);
    }
    expect_auths(&a, NULL);
    kubejson_auths_clear(&a);
}

static void test_secret_malformed(void **state)
{
    (void)state;
    struct kubejson_auths a = {0};
    char err[256];
    assert_int_equal(add_body(&a, secret(".dockerconfigjson", "{\"auths\":{\"keep\":{\"auth\":\"a2VlcA==\"}}}"), err,
                              sizeof(err)),
                     0);
    static const struct {
        const char *key, *config, *err;
    } cases[] = {
        {".dockerconfigjson", "not json", "data[\".dockerconfigjson\"] is not JSON"},
        {".dockerconfigjson", "{\"auths\":{}} {}", "data[\".dockerconfigjson\"] is not JSON"},
        {".dockerconfigjson", "[]", "data[\".dockerconfigjson\"] is not a JSON object"},
        {".dockerconfigjson", "\"str\"", "data[\".dockerconfigjson\"] is not a JSON object"},
        {".dockerconfigjson", "{\"auths\":[]}", "data[\".dockerconfigjson\"] auths is not an object"},
        {".dockerconfigjson", "{\"auths\":{\"r\":\"s3cret\"}}",
         "data[\".dockerconfigjson\"] a registry's entry is not an object"},
        {".dockerconfigjson", "{\"auths\":{\"r\":{\"auth\":1234}}}",
         "data[\".dockerconfigjson\"] a registry's auth is not a string"},
        {".dockerconfigjson", "{\"auths\":{\"r\":{\"username\":true,\"password\":\"p\"}}}",
         "data[\".dockerconfigjson\"] a registry's username is not a string"},
        {".dockerconfigjson", "{\"auths\":{\"r\":{\"password\":[]}}}",
         "data[\".dockerconfigjson\"] a registry's password is not a string"},
        /* Go checks every entry, even one without credentials or replaced later. */
        {".dockerconfigjson", "{\"auths\":{\"ok\":{\"auth\":\"eA==\"},\"bad\":{\"auth\":{}}}}",
         "data[\".dockerconfigjson\"] a registry's auth is not a string"},
        {".dockerconfigjson", "{\"auths\":{\"r\":{\"auth\":\"a\\u0000b\"}}}",
         "data[\".dockerconfigjson\"] a registry's auth holds a NUL byte"},
        {".dockercfg", "[{\"auth\":\"eA==\"}]", "data[\".dockercfg\"] is not a JSON object"},
        {".dockercfg", "{\"r\":{\"auth\":false}}", "data[\".dockercfg\"] a registry's auth is not a string"},
        {".dockercfg", "", "data[\".dockercfg\"] is empty"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(add_body(&a, secret(cases[i].key, cases[i].config), err, sizeof(err)), -1);
        assert_string_equal(err, cases[i].err);
        assert_null(strstr(err, "s3cret"));
    }
    static const struct {
        const char *body, *err;
    } bodies[] = {
        {"{\"data\":{\".dockerconfigjson\":\"e30=!\"}}", "data[\".dockerconfigjson\"] is not base64"},
        {"{\"data\":{\".dockercfg\":\"@@@@\"}}", "data[\".dockercfg\"] is not base64"},
        {"{\"data\":{\".dockerconfigjson\":null}}", "data[\".dockerconfigjson\"] is empty"},
        {"{\"data\":{\".dockerconfigjson\":7}}", "a data value is not a base64 string"},
        {"{\"data\":{\"other\":{},\".dockerconfigjson\":\"e30=\"}}", "a data value is not a base64 string"},
        {"{\"data\":[]}", "data is not an object"},
        {"[]", "the reply is not a JSON object"},
        {"{\"data\":", "the reply is not a JSON object"},
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        assert_int_equal(kubejson_auths_add_secret(&a, bodies[i].body, n_of(bodies[i].body), err, sizeof(err)), -1);
        assert_string_equal(err, bodies[i].err);
    }
    /* A failed secret adds nothing, not even the entries before the bad one. */
    expect_auths(&a, "{\"auths\":{\"keep\":{\"auth\":\"a2VlcA==\"}}}");
    assert_int_equal(a.n, 1);
    /* err may be absent or tiny. */
    assert_int_equal(add_body(&a, secret(".dockerconfigjson", "[]"), NULL, 0), -1);
    char tiny[8];
    assert_int_equal(add_body(&a, secret(".dockerconfigjson", "[]"), tiny, sizeof(tiny)), -1);
    assert_string_equal(tiny, "data[\".");
    kubejson_auths_clear(&a);
}

static void test_secret_go_decoding(void **state)
{
    (void)state;
    struct kubejson_auths a = {0};
    char err[256];
    /* Field names match case-insensitively; U+017F (long s) folds to s. */
    assert_int_equal(add_body(&a,
                              secret(".dockerconfigjson",
                                     "{\"AUTHS\":{\"a\":{\"Auth\":\"QQ==\"}},"
                                     "\"Auth\xc5\xbf\":{\"b\":{\"USERNAME\":\"u\","
                                     "\"PassWord\":\"p\"}},\"authz\":{\"c\":{\"auth\":\"Qw==\"}},"
                                     "\"auths\":{\"d\":{\"auth\xc5\xbf\":\"RA==\"}}}"),
                              err, sizeof(err)),
                     0);
    expect_auths(&a, "{\"auths\":{\"a\":{\"auth\":\"QQ==\"},\"b\":{\"auth\":\"dTpw\"}}}");
    kubejson_auths_clear(&a);
    /* A later Auths key decodes into the same map: entries replaced whole; null empties it. */
    assert_int_equal(add_body(&a,
                              secret(".dockerconfigjson", "{\"auths\":{\"a\":{\"auth\":\"QQ==\"},\"b\":{\"auth\":"
                                                          "\"Qg==\"}},\"Auths\":{\"a\":{\"username\":\"u\"}}}"),
                              err, sizeof(err)),
                     0);
    expect_auths(&a, "{\"auths\":{\"b\":{\"auth\":\"Qg==\"}}}");
    kubejson_auths_clear(&a);
    assert_int_equal(add_body(&a,
                              secret(".dockerconfigjson",
                                     "{\"auths\":{\"a\":{\"auth\":\"QQ==\"}},\"AUTHS\":null,\"Auths\":{\"c\":{\"auth\":"
                                     "\"Qw==\"}}}"),
                              err, sizeof(err)),
                     0);
    expect_auths(&a, "{\"auths\":{\"c\":{\"auth\":\"Qw==\"}}}");
    kubejson_auths_clear(&a);
    /* In an entry a later field overrides an earlier one, null leaves it as it was. */
    assert_int_equal(add_body(&a,
                              secret(".dockercfg", "{\"r\":{\"auth\":\"QQ==\",\"AUTH\":\"Qg==\"},\"s\":{\"auth\":"
                                                   "\"Uw==\",\"Auth\":null},\"t\":{\"auth\":null,\"username\":\"u\","
                                                   "\"password\":\"p\"}}"),
                              err, sizeof(err)),
                     0);
    expect_auths(&a, "{\"auths\":{\"r\":{\"auth\":\"Qg==\"},\"s\":{\"auth\":\"Uw==\"},\"t\":{\"auth\":\"dTpw\"}}}");
    kubejson_auths_clear(&a);
    /* null documents and null auths: nothing, no error. */
    assert_int_equal(add_body(&a, secret(".dockerconfigjson", " null "), err, sizeof(err)), 0);
    assert_int_equal(add_body(&a, secret(".dockerconfigjson", "{\"auths\":null}"), err, sizeof(err)), 0);
    assert_int_equal(add_body(&a, secret(".dockercfg", "null"), err, sizeof(err)), 0);
    assert_int_equal(a.n, 0);
    /* Invalid UTF-8 and an unpaired surrogate escape read as U+FFFD, one per byte. */
    const char bytes[] = "{\"auths\":{\"r\":{\"username\":\"\xff\",\"password\":\"p\"},"
                         "\"s\":{\"username\":\"\\ud800\",\"password\":\"p\"},"
                         "\"t\":{\"username\":\"\xe2\x82\",\"password\":\"p\"},"
                         "\"u\":{\"username\":\"\\ud83d\\ude00\",\"password\":\"p\"},"
                         "\"v\":{\"username\":\"\\\\ud800\",\"password\":\"p\"},"
                         "\"w\":{\"username\":\"\\udc00\\ud800\",\"password\":\"p\"}}}";
    assert_int_equal(add_body(&a, secret_n(".dockerconfigjson", bytes, sizeof(bytes) - 1), err, sizeof(err)), 0);
    /* base64("\ufffd:p"), of "\ufffd\ufffd:p", of the emoji, of "\ud800" as typed. */
    expect_auths(&a, "{\"auths\":{\"r\":{\"auth\":\"77+9OnA=\"},\"s\":{\"auth\":\"77+9OnA=\"},"
                     "\"t\":{\"auth\":\"77+977+9OnA=\"},\"u\":{\"auth\":\"8J+YgDpw\"},"
                     "\"v\":{\"auth\":\"XHVkODAwOnA=\"},\"w\":{\"auth\":\"77+977+9OnA=\"}}}");
    kubejson_auths_clear(&a);
    /* Outside strings such bytes stay a syntax error. */
    assert_int_equal(add_body(&a, secret(".dockerconfigjson", "{\"auths\":{}}\xff"), err, sizeof(err)), -1);
    assert_int_equal(add_body(&a, secret(".dockerconfigjson", "{\"auths\":{\"r\":{\"auth\":\"\\x\"}}}"), err,
                              sizeof(err)),
                     -1);
    /* Numbers nobody reads may be beyond 64 bits. */
    assert_int_equal(add_body(&a,
                              secret(".dockerconfigjson", "{\"n\":123456789012345678901234567890,\"auths\":{\"r\":"
                                                          "{\"auth\":\"QQ==\",\"x\":-1.5e300}}}"),
                              err, sizeof(err)),
                     0);
    expect_auths(&a, "{\"auths\":{\"r\":{\"auth\":\"QQ==\"}}}");
    kubejson_auths_clear(&a);
}

static void test_secret_override_render(void **state)
{
    (void)state;
    struct kubejson_auths a = {0};
    char err[256];
    expect_auths(&a, NULL); /* nothing collected: no auth.json */
    assert_null(kubejson_auths_render(NULL, NULL));
    /* The service account's secret first, then the pod's: the pod's wins for "reg.b". */
    assert_int_equal(add_body(&a,
                              secret(".dockerconfigjson", "{\"auths\":{\"reg.b\":{\"auth\":\"b2xk\"},"
                                                          "\"reg.c\":{\"auth\":"
                                                          "\"Yw==\"},\"Reg.A\":{\"auth\":\"QQ==\"}}}"),
                              err, sizeof(err)),
                     0);
    assert_int_equal(add_body(&a,
                              secret(".dockercfg", "{\"reg.b\":{\"username\":\"x\",\"password\":\"y\"},\"reg.a\":"
                                                   "{\"auth\":\"YQ==\"}}"),
                              err, sizeof(err)),
                     0);
    /* A later secret without usable credentials for a registry does not remove it. */
    assert_int_equal(add_body(&a, secret(".dockerconfigjson", "{\"auths\":{\"reg.c\":{\"username\":\"only\"}}}"),
                              err, sizeof(err)),
                     0);
    /* Sorted bytewise: upper case first. */
    expect_auths(&a, "{\"auths\":{\"Reg.A\":{\"auth\":\"QQ==\"},\"reg.a\":{\"auth\":\"YQ==\"},"
                     "\"reg.b\":{\"auth\":\"eDp5\"},\"reg.c\":{\"auth\":\"Yw==\"}}}");
    /* Registries are written with Go's escaping. */
    assert_int_equal(add_body(&a, secret(".dockercfg", "{\"r<&>\\\"\":{\"auth\":\"eA==\"}}"), err, sizeof(err)), 0);
    expect_auths(&a, "{\"auths\":{\"Reg.A\":{\"auth\":\"QQ==\"},\"r\\u003c\\u0026\\u003e\\\"\":{\"auth\":\"eA==\"},"
                     "\"reg.a\":{\"auth\":\"YQ==\"},\"reg.b\":{\"auth\":\"eDp5\"},\"reg.c\":{\"auth\":\"Yw==\"}}}");
    kubejson_auths_clear(&a);
    assert_null(a.v);
    assert_int_equal(a.n, 0);
    assert_int_equal(a.cap, 0);
    expect_auths(&a, NULL);
    /* Reusable after clear. */
    assert_int_equal(add_body(&a, secret(".dockercfg", "{\"r\":{\"auth\":\"eA==\"}}"), err, sizeof(err)), 0);
    expect_auths(&a, "{\"auths\":{\"r\":{\"auth\":\"eA==\"}}}");
    kubejson_auths_clear(&a);
    kubejson_auths_clear(&a);
    kubejson_auths_clear(NULL);
}

/* ---- startup check ------------------------------------------------------------------------- */

#define START 1796192308 /* 2026-12-02T06:18:28Z */

static char *pod_list(const char *items)
{
    size_t n = strlen(items) + 64;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{},\"items\":[%s]}", items);
    return s;
}

#define POD(ns, name, rc, conds)                                                                              \
    "{\"metadata\":{\"name\":\"" name "\",\"namespace\":\"" ns "\"},\"spec\":{\"runtimeClassName\":" rc "," \
    "\"containers\":[{\"name\":\"c\"}]},\"status\":{\"phase\":\"Running\",\"conditions\":[" conds "]}}"
#define COND(type, status, time) \
    "{\"type\":\"" type "\",\"status\":\"" status "\",\"lastProbeTime\":null,\"lastTransitionTime\":" time "}"

/* Ready one second after START; not Ready. */
#define AFTER COND("Ready", "True", "\"2026-12-02T06:18:29Z\"")
#define STALE COND("Ready", "False", "null")

struct known {
    const char *ns, *name;
    int calls;
};

static bool is_known(const char *ns, const char *name, void *arg)
{
    struct known *k = arg;
    k->calls++;
    return !strcmp(ns, k->ns) && !strcmp(name, k->name);
}

static int check(const char *items, kubejson_pod_known_fn known, void *arg, char *why, size_t whylen)
{
    char *body = pod_list(items);
    int rc = kubejson_startup_check(body, strlen(body), "kata-remote", START, known, arg, why, whylen);
    free(body);
    return rc;
}

static void test_startup_check(void **state)
{
    (void)state;
    char why[256];
    struct known k = {"ns", "old", 0};
    /* No pods, and pods that all became Ready after the start. */
    assert_int_equal(check("", NULL, NULL, why, sizeof(why)), 1);
    assert_string_equal(why, "");
    assert_int_equal(check(POD("ns", "a", "\"kata-remote\"", COND("PodScheduled", "True", "null") "," AFTER) "," POD(
                               "ns", "b", "\"kata-remote\"", COND("Ready", "True", "\"2026-12-02T07:00:00+00:30\"")),
                           NULL, NULL, why, sizeof(why)),
                     1);
    /* Not Ready. */
    assert_int_equal(check(POD("ns", "a", "\"kata-remote\"", AFTER) "," POD(
                               "team", "web", "\"kata-remote\"", COND("Ready", "False", "\"2027-01-01T00:00:00Z\"")),
                           NULL, NULL, why, sizeof(why)),
                     0);
    assert_string_equal(why, "pod team/web is not Ready");
    /* Ready since before the start (an equal second is not after it). */
    const char *before[] = {"\"2026-12-02T06:18:28Z\"",      "\"2026-12-02T06:18:28.999999Z\"",
                            "\"2026-12-02T06:18:29+00:01\"", "\"2020-01-01T00:00:00Z\"",
                            "null",                         "\"\"",
                            "\"yesterday\""};
    for (size_t i = 0; i < sizeof(before) / sizeof(before[0]); i++) {
        char items[512];
        snprintf(items, sizeof(items),
                 "{\"metadata\":{\"name\":\"old\",\"namespace\":\"ns\"},"
                 "\"spec\":{\"runtimeClassName\":\"kata-remote\"},"
                 "\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"lastTransitionTime\":%s}]}}",
                 before[i]);
        assert_int_equal(check(items, NULL, NULL, why, sizeof(why)), 0);
        assert_string_equal(why, "pod ns/old has been Ready since before the daemon started");
        /* ... unless its sandbox survived the restart. */
        k.calls = 0;
        assert_int_equal(check(items, is_known, &k, why, sizeof(why)), 1);
        assert_int_equal(k.calls, 1);
    }
    /* A known pod passes even when not Ready; known is asked only about failing pods. */
    k.calls = 0;
    assert_int_equal(check(POD("ns", "new", "\"kata-remote\"", AFTER) "," POD("ns", "old", "\"kata-remote\"",
                                                                                COND("Ready", "False", "null")),
                           is_known, &k, why, sizeof(why)),
                     1);
    assert_int_equal(k.calls, 1);
    k.calls = 0;
    assert_int_equal(check(POD("ns", "other", "\"kata-remote\"", COND("Ready", "Unknown", "null")), is_known, &k, why,
                           sizeof(why)),
                     0);
    assert_int_equal(k.calls, 1);
    assert_string_equal(why, "pod ns/other is not Ready");
    /* Ignored: another runtime class, none, no Ready condition, no conditions, null items. */
    assert_int_equal(check(POD("ns", "a", "\"runc\"", "") "," POD("ns", "b", "null", "") "," POD(
                               "ns", "c", "\"kata-remote\"", COND("ContainersReady", "False", "null")) ","
                               "{\"metadata\":{\"name\":\"d\"},\"spec\":{\"runtimeClassName\":\"kata-remote\"}},null,"
                               "{\"metadata\":{\"name\":\"e\"},\"spec\":{},\"status\":{\"conditions\":[{\"type\":"
                               "\"Ready\",\"status\":\"False\"}]}}," POD("ns", "f", "\"Kata-Remote\"", ""),
                           NULL, NULL, why, sizeof(why)),
                     1);
    /* The first failing pod is named; the first Ready condition counts. */
    assert_int_equal(check(POD("ns", "one", "\"kata-remote\"", COND("Ready", "False", "null")) "," POD(
                               "ns", "two", "\"kata-remote\"", COND("Ready", "False", "null")),
                           NULL, NULL, why, sizeof(why)),
                     0);
    assert_string_equal(why, "pod ns/one is not Ready");
    assert_int_equal(check(POD("ns", "p", "\"kata-remote\"", COND("Ready", "False", "null") "," AFTER), NULL, NULL, why,
                           sizeof(why)),
                     0);
    /* why is bounded and may be absent. */
    char small[10];
    assert_int_equal(check(POD("ns", "web", "\"kata-remote\"", STALE), NULL, NULL, small, sizeof(small)), 0);
    assert_string_equal(small, "pod ns/we");
    assert_int_equal(check(POD("ns", "web", "\"kata-remote\"", STALE), NULL, NULL, NULL, 0), 0);
}

static void test_startup_not_podlist(void **state)
{
    (void)state;
    char why[256];
    static const struct {
        const char *body, *why;
    } cases[] = {
        {"[]", "the reply is not a JSON object"},
        {"", "the reply is not a JSON object"},
        {"{\"kind\":\"PodList\",\"items\":[]", "the reply is not a JSON object"},
        {"{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"pods is forbidden\","
         "\"code\":403}",
         "the reply is not a PodList"},
        {"{\"kind\":\"Pod\",\"items\":[]}", "the reply is not a PodList"},
        {"{\"kind\":7,\"items\":[]}", "the reply is not a PodList"},
        {"{\"kind\":\"PodList\"}", "the reply is not a PodList: no items array"},
        {"{\"kind\":\"PodList\",\"items\":null}", "the reply is not a PodList: no items array"},
        {"{\"kind\":\"PodList\",\"items\":{}}", "the reply is not a PodList: no items array"},
        {"{\"kind\":\"PodList\",\"items\":[7]}",
         "the reply is not a PodList: items[0]: a field of the item has the wrong type"},
        {"{\"items\":[{},{\"metadata\":{\"name\":5}}]}",
         "the reply is not a PodList: items[1]: a field of metadata has the wrong type"},
        {"{\"items\":[{\"spec\":{\"runtimeClassName\":[]}}]}",
         "the reply is not a PodList: items[0]: a field of spec has the wrong type"},
        {"{\"items\":[{\"status\":{\"conditions\":{}}}]}",
         "the reply is not a PodList: items[0]: a field of status has the wrong type"},
        {"{\"items\":[{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":true}]}}]}",
         "the reply is not a PodList: items[0]: a field of status has the wrong type"},
        /* A wrong type after a failing pod still fails the whole list, as Go's decoding does. */
        {"{\"items\":[" POD("ns", "a", "\"kata-remote\"", COND("Ready", "False", "null")) ",{\"spec\":5}]}",
         "the reply is not a PodList: items[1]: a field of spec has the wrong type"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(kubejson_startup_check(cases[i].body, n_of(cases[i].body), "kata-remote", START, NULL, NULL,
                                                why, sizeof(why)),
                         -1);
        assert_string_equal(why, cases[i].why);
    }
    /* Control bytes in names never reach a log line. */
    const char *odd = "{\"items\":[" POD("ns", "a\\nb", "\"kata-remote\"", COND("Ready", "False", "null")) "]}";
    assert_int_equal(kubejson_startup_check(odd, n_of(odd), "kata-remote", START, NULL, NULL, why, sizeof(why)), 0);
    assert_string_equal(why, "pod ns/a?b is not Ready");
}

/* ---- time ------------------------------------------------------------------------------------ */

static void test_time_parse(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t t;
    } good[] = {
        {"2026-12-02T06:18:28Z", 1796192308},
        {"1970-01-01T00:00:00Z", 0},
        {"1969-12-31T23:59:59Z", -1},
        {"2024-02-29T23:59:59Z", 1709251199},
        {"9999-12-31T23:59:59Z", 253402300799},
        {"0000-01-01T00:00:00Z", -62167219200},
        {"2026-12-02T06:18:28.5Z", 1796192308},
        {"2026-12-02T06:18:28.123456789123Z", 1796192308},
        {"2026-12-02T06:18:28,5Z", 1796192308},
        {"2026-12-02T11:48:28+05:30", 1796192308},
        {"2026-12-01T22:18:28-08:00", 1796192308},
        {"2026-12-02T06:18:28.25-00:00", 1796192308},
        {"2026-12-02T6:18:28Z", 1796192308}, /* Go takes a one-digit hour */
        {"2026-12-03T06:18:28+24:00", 1796192308},
        {"2026-12-02T07:18:28+00:60", 1796192308},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int64_t t = 42;
        assert_int_equal(kubejson_time_parse(good[i].s, &t), 0);
        assert_int_equal(t, good[i].t);
    }
    const char *bad[] = {
        "", "garbage", "2026-12-02", "2026-12-02T06:18:28", "2026-12-02 06:18:28Z", "2026-12-02t06:18:28Z",
        "2026-12-02T06:18:28z", "2026-12-02T06:18:28+0100", "2026-12-02T06:18:28+01", "2026-12-02T06:18:28+01:00x",
        "2026-12-02T06:18:28Zx", "2026-12-02T06:18:28.Z", "2026-12-02T06:18Z", "2026-13-02T06:18:28Z",
        "2026-00-02T06:18:28Z", "2026-02-29T06:18:28Z", "2100-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
        "2026-12-00T00:00:00Z", "2026-12-02T24:00:00Z", "2026-12-02T23:60:00Z", "2026-12-02T23:59:60Z",
        "2026-12-02T06:18:28+25:00", "2026-12-02T06:18:28+00:61", "2026-12-02T006:18:28Z", "2026-12-02T:18:28Z",
        "+2026-12-02T06:18:28Z", "20261-12-02T06:18:28Z", "2026-1-02T06:18:28Z", "2026-12-2T06:18:28Z",
        "2026-12-02T06:8:28Z", "2026-12-02T06:18:8Z", "2026-12-02T06:18:28 Z", "２026-12-02T06:18:28Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t t = 42;
        assert_int_equal(kubejson_time_parse(bad[i], &t), -1);
    }
    assert_int_equal(kubejson_time_parse(NULL, NULL), -1);
    assert_int_equal(kubejson_time_parse("2026-12-02T06:18:28Z", NULL), 0);
}

/* ---- Status -------------------------------------------------------------------------------- */

static void test_status_message(void **state)
{
    (void)state;
    char msg[64];
    const char *st = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":"
                     "\"nodes \\\"w1\\\" is forbidden: User \\\"system:serviceaccount:x\\\" cannot patch\","
                     "\"reason\":\"Forbidden\",\"details\":{\"name\":\"w1\",\"kind\":\"nodes\"},\"code\":403}";
    kubejson_status_message(st, n_of(st), msg, sizeof(msg));
    assert_string_equal(msg, "nodes \"w1\" is forbidden: User \"system:serviceaccount:x\" cannot ");
    assert_int_equal(strlen(msg), sizeof(msg) - 1);
    /* Control bytes become '?'; a cut never splits a character. */
    const char *ctl = "{\"kind\":\"Status\",\"message\":\"a\\nb\\u0000c\\u007f\\td\"}";
    kubejson_status_message(ctl, n_of(ctl), msg, sizeof(msg));
    assert_string_equal(msg, "a?b?c??d");
    const char *utf = "{\"kind\":\"Status\",\"message\":\"ab\xc3\xa9\xe2\x82\xac\"}";
    char m5[5], m6[6], m8[8];
    kubejson_status_message(utf, n_of(utf), m5, sizeof(m5));
    assert_string_equal(m5, "ab\xc3\xa9");
    kubejson_status_message(utf, n_of(utf), m6, sizeof(m6));
    assert_string_equal(m6, "ab\xc3\xa9");
    kubejson_status_message(utf, n_of(utf), m8, sizeof(m8));
    assert_string_equal(m8, "ab\xc3\xa9\xe2\x82\xac");
    /* Not a Status, or none: "". */
    const char *none[] = {
        "{\"kind\":\"Status\",\"status\":\"Failure\"}",
        "{\"kind\":\"Status\",\"message\":5}",
        "{\"kind\":\"Pod\",\"message\":\"m\"}",
        "{\"message\":\"m\"}",
        "{\"kind\":\"Status\\u0000x\",\"message\":\"m\"}",
        "<html>502 Bad Gateway</html>",
        "",
        "[\"Status\"]",
    };
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        strcpy(msg, "stale");
        kubejson_status_message(none[i], n_of(none[i]), msg, sizeof(msg));
        assert_string_equal(msg, "");
    }
    kubejson_status_message(st, n_of(st), NULL, 0);
    char one[1] = {'x'};
    kubejson_status_message(st, n_of(st), one, sizeof(one));
    assert_int_equal(one[0], '\0');
}

/* Which 404s name a missing object (then the resource type exists) and which do not. */
static void test_status_names_object(void **state)
{
    (void)state;
    static const char ns_gone[] = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                                  "\"message\":\"namespaces \\\"x\\\" not found\",\"reason\":\"NotFound\","
                                  "\"details\":{\"name\":\"x\",\"kind\":\"namespaces\"},\"code\":404}";
    static const char no_type[] = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                                  "\"message\":\"the server could not find the requested resource\","
                                  "\"reason\":\"NotFound\",\"details\":{},\"code\":404}";
    static const char *const unnamed[] = {no_type, "404 page not found", "{\"kind\":\"Status\"}",
                                          "{\"kind\":\"Status\",\"details\":{\"kind\":\"\"}}",
                                          "{\"kind\":\"Pod\",\"details\":{\"kind\":\"x\"}}", ""};
    assert_true(kubejson_status_names_object(ns_gone, strlen(ns_gone)));
    for (size_t i = 0; i < sizeof(unnamed) / sizeof(unnamed[0]); i++)
        if (kubejson_status_names_object(unnamed[i], strlen(unnamed[i])))
            fail_msg("case %zu taken as naming an object", i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_owner_patch),
        cmocka_unit_test(test_capacity_patches),
        cmocka_unit_test(test_node_owner),
        cmocka_unit_test(test_pod_names),
        cmocka_unit_test(test_sa_names),
        cmocka_unit_test(test_secret_dockerconfigjson),
        cmocka_unit_test(test_secret_dockercfg),
        cmocka_unit_test(test_secret_both_keys),
        cmocka_unit_test(test_secret_malformed),
        cmocka_unit_test(test_secret_go_decoding),
        cmocka_unit_test(test_secret_override_render),
        cmocka_unit_test(test_startup_check),
        cmocka_unit_test(test_startup_not_podlist),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_status_message),
        cmocka_unit_test(test_status_names_object),
        cmocka_unit_test(test_peerpod_name),
        cmocka_unit_test(test_peerpod_body),
        cmocka_unit_test(test_object_uid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
