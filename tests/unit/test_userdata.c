/* Unit tests for adaptor/userdata.c: byte-for-byte golden tests of the cloud-config document,
 * apf.json and auth.json (spec protocols.md 4.1-4.4) against hand-written files under
 * tests/data/userdata/, plus the escaping, omission, ordering and refusal rules. Run from the
 * repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"
#include "userdata.h"

const struct provider_ops *const provider_table[] = {NULL};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define GOLDEN_DIR "tests/data/userdata/"
#define INITDATA "H4sIAAAAAAAA/0rMTVWyUkpKLUvNK0nVUcpMUbJSMjQ1NVGqBQQAAP//AwBVgFKGIAAAAA=="

/* ------------------------------------------------------------------ helpers */

static char *golden_read(const char *name, size_t *len)
{
    char path[256];
    int n = snprintf(path, sizeof(path), GOLDEN_DIR "%s", name);
    assert_true(n > 0 && (size_t)n < sizeof(path));
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (run the tests from the repository root): %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0, used = 0;
    for (;;) {
        if (used + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *p = realloc(buf, cap);
            assert_non_null(p);
            buf = p;
        }
        size_t got = fread(buf + used, 1, cap - used - 1, f);
        used += got;
        if (got == 0)
            break;
    }
    assert_int_equal(ferror(f), 0);
    assert_int_equal(fclose(f), 0);
    buf[used] = '\0';
    *len = used;
    return buf;
}

/* Compares with the golden file and, on a mismatch, shows where the bytes part. */
static void assert_golden(const char *got, size_t got_len, const char *name)
{
    size_t want_len;
    char *want = golden_read(name, &want_len);
    assert_non_null(got);
    assert_int_equal(strlen(got), got_len);
    size_t i = 0;
    while (i < got_len && i < want_len && got[i] == want[i])
        i++;
    if (i != got_len || i != want_len) {
        size_t from = i > 40 ? i - 40 : 0;
        int g = (int)((got_len - from) < 80 ? got_len - from : 80);
        int w = (int)((want_len - from) < 80 ? want_len - from : 80);
        fail_msg("%s: first difference at byte %zu (got %zu bytes, want %zu)\n got: [%.*s]\nwant: [%.*s]", name, i,
                 got_len, want_len, g, got + from, w, want + from);
    }
    free(want);
}

/* ------------------------------------------------------------------ the cases */

static const struct userdata_route auto_routes[] = {
    { "0.0.0.0/0", "10.244.1.1", "eth0", USERDATA_RTPROT_BOOT, 0 },
    { "10.244.1.0/24", "", "eth0", USERDATA_RTPROT_KERNEL, USERDATA_SCOPE_LINK },
};

/* The example of protocols.md 4.3 (flannel, automatic TLS). */
static struct userdata_apf apf_tls_auto(void)
{
    return (struct userdata_apf){
        .pod_network = {
            .pod_ip = "10.244.1.5/24",
            .pod_hw_addr = "0e:8f:62:f3:81:ad",
            .interface = "eth0",
            .worker_node_ip = "10.224.0.4/16",
            .tunnel_type = "vxlan",
            .routes = auto_routes,
            .n_routes = ARRAY_LEN(auto_routes),
            .mtu = 1450,
            .index = 0,
            .vxlan_port = 4789,
            .vxlan_id = 555000,
        },
        .pod_namespace = "default",
        .pod_name = "nginx",
        .tls_server_key = "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n",
        .tls_server_cert = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
        .tls_client_ca = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
    };
}

/* Calico-style: a permanent neighbour for the gateway; every protocol and scope name. */
static const struct userdata_route files_routes[] = {
    { "0.0.0.0/0", "169.254.1.1", "eth0", USERDATA_RTPROT_STATIC, 0 },
    { "10.96.0.0/12", "169.254.1.1", "eth0", 0, 0 }, /* a POD_SUBNET_CIDRS route */
    { "169.254.1.1/32", "", "eth0", USERDATA_RTPROT_STATIC, USERDATA_SCOPE_LINK },
    { "172.16.0.0/16", NULL, NULL, USERDATA_RTPROT_DHCP, USERDATA_SCOPE_HOST },
    { "192.0.2.0/24", "", "eth0", USERDATA_RTPROT_BOOT, USERDATA_SCOPE_SITE },
    { "198.51.100.0/24", "", "eth0", USERDATA_RTPROT_KERNEL, USERDATA_SCOPE_NOWHERE },
};
static const struct userdata_neighbor files_neighbors[] = {
    { "169.254.1.1", "ee:ee:ee:ee:ee:ee", "eth0", USERDATA_NUD_PERMANENT },
    { "169.254.1.2", "ee:ee:ee:ee:ee:ef", "", 0 },
};

/* TLS from files: only the client CA reaches the VM. */
static struct userdata_apf apf_tls_files(void)
{
    return (struct userdata_apf){
        .pod_network = {
            .pod_ip = "192.168.52.7/32",
            .pod_hw_addr = "5a:1e:0c:33:c4:02",
            .interface = "eth0",
            .worker_node_ip = "10.0.2.15/24",
            .tunnel_type = "vxlan",
            .routes = files_routes,
            .n_routes = ARRAY_LEN(files_routes),
            .neighbors = files_neighbors,
            .n_neighbors = ARRAY_LEN(files_neighbors),
            .mtu = 1480,
            .index = 7,
            .vxlan_port = 4789,
            .vxlan_id = 555007,
            .dedicated = true,
            .external_net_via_pod_vm = true,
        },
        .pod_namespace = "kube-system",
        .pod_name = "coredns-5d78c9869d-x2xkq",
        .tls_server_key = "",
        .tls_client_ca = "-----BEGIN CERTIFICATE-----\nMIIBclientPlaceholder\n-----END CERTIFICATE-----\n",
        .tls_min_version = "",
        .tls_cipher_suites = "",
    };
}

/* TLS disabled, no routes, zero port and VNI, unset strings. */
static struct userdata_apf apf_tls_disabled(void)
{
    return (struct userdata_apf){
        .pod_network = {
            .pod_ip = NULL,
            .pod_hw_addr = "",
            .interface = "eth0",
            .worker_node_ip = "10.0.0.2/8",
            .tunnel_type = "vxlan",
            .routes = auto_routes, /* a list with count 0 is still null */
            .n_routes = 0,
            .mtu = 1500,
        },
        .pod_namespace = "default",
        .pod_name = "busybox",
    };
}

static const struct userdata_route profile_routes[] = {
    { "0.0.0.0/0", "10.244.2.1", "eth0", USERDATA_RTPROT_BOOT, 0 },
};

static struct userdata_apf apf_tls_profile(void)
{
    return (struct userdata_apf){
        .pod_network = {
            .pod_ip = "10.244.2.9/24",
            .pod_hw_addr = "aa:bb:cc:00:11:22",
            .interface = "eth0",
            .worker_node_ip = "10.224.0.5/16",
            .tunnel_type = "vxlan",
            .routes = profile_routes,
            .n_routes = ARRAY_LEN(profile_routes),
            .mtu = 1450,
            .index = 12,
            .vxlan_port = 4790,
            .vxlan_id = 555012,
        },
        .pod_namespace = "prod",
        .pod_name = "web-0",
        .tls_server_key = "-----BEGIN PRIVATE KEY-----\nMIGHserverKeyPlaceholder\n-----END PRIVATE KEY-----\n",
        .tls_server_cert = "-----BEGIN CERTIFICATE-----\nMIIBserverCertPlaceholder\n-----END CERTIFICATE-----\n",
        .tls_client_ca = "-----BEGIN CERTIFICATE-----\nMIIBclientCertPlaceholder\n-----END CERTIFICATE-----\n",
        .tls_min_version = "VersionTLS12",
        .tls_cipher_suites = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    };
}

static const struct userdata_route escaping_routes[] = {
    { "0.0.0.0/0", "10.1.0.1", "veth<1>&", USERDATA_RTPROT_DHCP, 0 },
};
static const struct userdata_neighbor escaping_neighbors[] = {
    { "10.1.0.1", "02:42:0a:01:00:01", "eth0", 0x02 },
};

/* HTML characters, control bytes, U+2028/9, invalid UTF-8 of each kind, valid multibyte. */
static struct userdata_apf apf_escaping(void)
{
    return (struct userdata_apf){
        .pod_network = {
            .pod_ip = "10.1.0.3/16",
            .pod_hw_addr = "02:42:0a:01:00:03",
            .interface = "eth0",
            .worker_node_ip = "192.168.122.10/24",
            .tunnel_type = "vxlan",
            .routes = escaping_routes,
            .n_routes = ARRAY_LEN(escaping_routes),
            .neighbors = escaping_neighbors,
            .n_neighbors = ARRAY_LEN(escaping_neighbors),
            .mtu = 9000,
            .index = 1,
            .vxlan_port = 4789,
            .vxlan_id = 555001,
        },
        .pod_namespace = "ns<b>&\"q\"\\",
        .pod_name = "web\x01\x1f\b\f\n\r\t"
                    "\xc3\xa9"                 /* é, raw */
                    "\xe2\x80\xa8\xe2\x80\xa9" /* U+2028 U+2029, escaped */
                    "\xff"                     /* invalid lead */
                    "\xe2\x82"                 /* truncated: two replacements */
                    "x"
                    "\xed\xa0\x80"             /* surrogate: three */
                    "\xc0\xaf"                 /* overlong: two */
                    "\xf4\x90\x80\x80"         /* above U+10FFFF: four */
                    "\xf0\x9f\x98\x80"         /* U+1F600, raw */
                    "\xef\xbf\xbd"             /* a real U+FFFD, raw */
                    "end",
        .tls_client_ca = "-----BEGIN CERTIFICATE-----\r\nA+B/C=&\r\n-----END CERTIFICATE-----\r\n",
        .tls_cipher_suites = "TLS_A,,<b>",
    };
}

static char *apf_build_ok(struct userdata_apf apf, size_t *len)
{
    char err[256] = "x";
    char *json = userdata_apf_json_build(&apf, len, err, sizeof(err));
    if (!json)
        fail_msg("userdata_apf_json_build: %s (%s)", err, strerror(errno));
    assert_string_equal(err, "");
    return json;
}

static const struct userdata_registry_auth golden_regs[] = {
    { "quay.io", "cXVheTpwdw==" },
    { "https://index.docker.io/v1/", "dXNlcjpwYXNz" },
    { "registry.example.com:5000", "YTpi" },
    { "quay.io", "bmV3OnB3" }, /* the pod's own secret, later: it wins */
};

/* ------------------------------------------------------------------ apf.json */

static void test_apf_tls_auto(void **state)
{
    size_t len;
    (void)state;
    char *json = apf_build_ok(apf_tls_auto(), &len);
    assert_golden(json, len, "apf_tls_auto.json");
    userdata_text_free(json);
}

static void test_apf_tls_files(void **state)
{
    size_t len;
    (void)state;
    char *json = apf_build_ok(apf_tls_files(), &len);
    assert_golden(json, len, "apf_tls_files.json");
    userdata_text_free(json);
}

static void test_apf_tls_disabled(void **state)
{
    size_t len;
    (void)state;
    char *json = apf_build_ok(apf_tls_disabled(), &len);
    assert_golden(json, len, "apf_tls_disabled.json");
    userdata_text_free(json);
}

static void test_apf_tls_profile(void **state)
{
    size_t len;
    (void)state;
    char *json = apf_build_ok(apf_tls_profile(), &len);
    assert_golden(json, len, "apf_tls_profile.json");
    userdata_text_free(json);
}

static void test_apf_escaping(void **state)
{
    size_t len;
    (void)state;
    char *json = apf_build_ok(apf_escaping(), &len);
    assert_golden(json, len, "apf_escaping.json");
    userdata_text_free(json);
}

/* The other neighbour states, one TLS string on its own, no sc-* keys ever. */
static void test_apf_names_and_omissions(void **state)
{
    static const struct {
        int state;
        const char *name;
    } states[] = {
        { 0x01, "incomplete" }, { 0x02, "reachable" }, { 0x04, "stale" }, { 0x08, "delay" },
        { 0x10, "probe" },      { 0x20, "failed" },    { 0x40, "noarp" }, { 0x80, "permanent" },
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(states); i++) {
        struct userdata_neighbor nb = { "10.0.0.1", "aa:aa:aa:aa:aa:aa", NULL, states[i].state };
        struct userdata_apf apf = apf_tls_disabled();
        apf.pod_network.neighbors = &nb;
        apf.pod_network.n_neighbors = 1;
        apf.tls_min_version = "VersionTLS13";
        size_t len;
        char *json = apf_build_ok(apf, &len);
        char want[512];
        snprintf(want, sizeof(want),
                 "        \"neighbors\": [\n"
                 "            {\n"
                 "                \"ip\": \"10.0.0.1\",\n"
                 "                \"hw-addr\": \"aa:aa:aa:aa:aa:aa\",\n"
                 "                \"state\": \"%s\"\n"
                 "            }\n"
                 "        ],\n",
                 states[i].name);
        if (!strstr(json, want))
            fail_msg("state 0x%x: no\n%s\nin\n%s", (unsigned)states[i].state, want, json);
        assert_non_null(strstr(json, "    \"pod-name\": \"busybox\",\n    \"tls-min-version\": \"VersionTLS13\"\n}"));
        assert_null(strstr(json, "sc-pp-prv"));
        assert_null(strstr(json, "sc-wn-pub"));
        assert_null(strstr(json, "tls-server"));
        assert_null(strstr(json, "tls-cipher-suites"));
        userdata_text_free(json);
    }

    /* Negative numbers are Go ints too: printed, and a negative port is not "empty". */
    struct userdata_apf apf = apf_tls_disabled();
    apf.pod_network.mtu = -1;
    apf.pod_network.vxlan_port = -2;
    size_t len;
    char *json = apf_build_ok(apf, &len);
    assert_non_null(strstr(json, "\"mtu\": -1,\n        \"index\": 0,\n        \"vxlan-port\": -2,\n        \"dedicated\""));
    userdata_text_free(json);

    /* A single suite, and a trailing comma giving an empty last element. */
    apf = apf_tls_disabled();
    apf.tls_cipher_suites = "TLS_AES_128_GCM_SHA256,";
    json = apf_build_ok(apf, &len);
    assert_non_null(strstr(json, "\"pod-name\": \"busybox\",\n    \"tls-cipher-suites\": [\n"
                                 "        \"TLS_AES_128_GCM_SHA256\",\n        \"\"\n    ]\n}"));
    assert_int_equal(json[len - 1], '}');
    userdata_text_free(json);
}

static void test_apf_refusals(void **state)
{
    struct userdata_route bad_proto[] = { { "0.0.0.0/0", "", "eth0", 186 /* bgp */, 0 } };
    struct userdata_route bad_redirect[] = { auto_routes[0], { "1.0.0.0/8", "", "", 1, 0 } };
    struct userdata_route bad_scope[] = { { "0.0.0.0/0", "", "eth0", 0, 1 } };
    struct userdata_neighbor bad_state[] = { { "10.0.0.1", "aa:aa:aa:aa:aa:aa", "", 0x81 } };
    struct userdata_neighbor bad_state2[] = { { "10.0.0.1", "aa:aa:aa:aa:aa:aa", "", 0x100 } };
    char err[256];
    size_t len = 12345;
    (void)state;

    struct userdata_apf apf = apf_tls_auto();
    apf.pod_network.routes = bad_proto;
    apf.pod_network.n_routes = 1;
    errno = 0;
    assert_null(userdata_apf_json_build(&apf, &len, err, sizeof(err)));
    assert_int_equal(errno, EINVAL);
    assert_string_equal(err, "route 0: protocol 186 is not one of kernel, boot, static, dhcp");
    assert_int_equal(len, 12345);

    apf.pod_network.routes = bad_redirect;
    apf.pod_network.n_routes = 2;
    assert_null(userdata_apf_json_build(&apf, &len, err, sizeof(err)));
    assert_string_equal(err, "route 1: protocol 1 is not one of kernel, boot, static, dhcp");

    apf.pod_network.routes = bad_scope;
    apf.pod_network.n_routes = 1;
    assert_null(userdata_apf_json_build(&apf, &len, err, sizeof(err)));
    assert_string_equal(err, "route 0: scope 1 is not one of site, link, host, nowhere");

    apf = apf_tls_auto();
    apf.pod_network.neighbors = bad_state;
    apf.pod_network.n_neighbors = 1;
    assert_null(userdata_apf_json_build(&apf, &len, err, sizeof(err)));
    assert_string_equal(err, "neighbor 0: state 0x81 is not a single NUD state");
    apf.pod_network.neighbors = bad_state2;
    assert_null(userdata_apf_json_build(&apf, &len, NULL, 0)); /* no err buffer is fine */
    assert_int_equal(errno, EINVAL);

    apf = apf_tls_auto();
    apf.pod_network.routes = NULL;
    apf.pod_network.n_routes = 2;
    assert_null(userdata_apf_json_build(&apf, &len, err, sizeof(err)));
    assert_int_equal(errno, EINVAL);
    assert_null(userdata_apf_json_build(NULL, &len, err, sizeof(err)));
    assert_int_equal(errno, EINVAL);

    /* A short err buffer truncates, never overflows. */
    char tiny[8];
    apf = apf_tls_auto();
    apf.pod_network.routes = bad_proto;
    apf.pod_network.n_routes = 1;
    assert_null(userdata_apf_json_build(&apf, &len, tiny, sizeof(tiny)));
    assert_string_equal(tiny, "route 0");
}

/* Many routes: the buffer grows (by copy, wiping the old one) and the shape holds. */
static void test_apf_many_routes(void **state)
{
    enum { N = 2000 };
    static struct userdata_route routes[N];
    static char dsts[N][24];
    (void)state;
    for (size_t i = 0; i < N; i++) {
        snprintf(dsts[i], sizeof(dsts[i]), "10.%zu.%zu.0/24", i / 256, i % 256);
        routes[i] = (struct userdata_route){ dsts[i], "", "eth0", USERDATA_RTPROT_KERNEL, USERDATA_SCOPE_LINK };
    }
    struct userdata_apf apf = apf_tls_auto();
    apf.pod_network.routes = routes;
    apf.pod_network.n_routes = N;
    size_t len;
    char *json = apf_build_ok(apf, &len);
    size_t count = 0;
    for (const char *p = json; (p = strstr(p, "\"scope\": \"link\"\n")); p++)
        count++;
    assert_int_equal(count, N);
    assert_non_null(strstr(json, "\"dst\": \"10.7.207.0/24\""));
    assert_non_null(strstr(json, "            }\n        ],\n        \"neighbors\": null,"));
    userdata_text_free(json);
}

/* ------------------------------------------------------------------ Go string escaping */

static void test_json_quote(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        const char *want;
    } cases[] = {
        { "", 0, "\"\"" },
        { "plain ASCII ~!@#$%^*()_+", 24, "\"plain ASCII ~!@#$%^*()_+\"" },
        { "<>&", 3, "\"\\u003c\\u003e\\u0026\"" },
        { "\"\\/", 3, "\"\\\"\\\\/\"" }, /* Go leaves '/' alone */
        { "\x00\x01\x07\x0b\x0e\x1a\x1f", 7, "\"\\u0000\\u0001\\u0007\\u000b\\u000e\\u001a\\u001f\"" },
        { "\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\"" }, /* named since Go 1.22 */
        { "\x7f", 1, "\"\x7f\"" },                  /* DEL is not escaped */
        { "\xc2\x80\xc2\x85", 4, "\"\xc2\x80\xc2\x85\"" }, /* C1 controls pass as UTF-8 */
        { "\xe2\x80\xa8|\xe2\x80\xa9|\xe2\x80\xaa", 11, "\"\\u2028|\\u2029|\xe2\x80\xaa\"" },
        { "\xed\x9f\xbf", 3, "\"\xed\x9f\xbf\"" },                  /* U+D7FF */
        { "\xee\x80\x80", 3, "\"\xee\x80\x80\"" },                  /* U+E000 */
        { "\xf4\x8f\xbf\xbf", 4, "\"\xf4\x8f\xbf\xbf\"" },          /* U+10FFFF */
        { "\xe0\x9f\xbf", 3, "\"\\ufffd\\ufffd\\ufffd\"" },         /* overlong 3-byte */
        { "\xf0\x8f\xbf\xbf", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" }, /* overlong 4-byte */
        { "\xc1\xbf", 2, "\"\\ufffd\\ufffd\"" },
        { "\xf5\x80\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" },
        { "\x80", 1, "\"\\ufffd\"" },
        { "a\xc3", 2, "\"a\\ufffd\"" }, /* truncated at the end */
        { "\xe2\x28\xa1", 3, "\"\\ufffd(\\ufffd\"" },
        { "nul\x00inside", 10, "\"nul\\u0000inside\"" },
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        size_t len = 0;
        char *q = userdata_json_quote(cases[i].in, cases[i].len, &len);
        assert_non_null(q);
        if (strcmp(q, cases[i].want) != 0)
            fail_msg("case %zu: got [%s] want [%s]", i, q, cases[i].want);
        assert_int_equal(len, strlen(cases[i].want));
        userdata_text_free(q);
    }
    errno = 0;
    assert_null(userdata_json_quote(NULL, 1, NULL));
    assert_int_equal(errno, EINVAL);
    char *q = userdata_json_quote(NULL, 0, NULL);
    assert_string_equal(q, "\"\"");
    userdata_text_free(q);
    userdata_text_free(NULL);
}

/* ------------------------------------------------------------------ auth.json */

static void test_auth_json_golden(void **state)
{
    size_t len;
    (void)state;
    char *json = userdata_auth_json_render(golden_regs, ARRAY_LEN(golden_regs), &len);
    assert_golden(json, len, "auth.json");
    userdata_text_free(json);
}

static void test_auth_json_edges(void **state)
{
    size_t len;
    (void)state;

    char *json = userdata_auth_json_render(NULL, 0, &len);
    assert_string_equal(json, "{\"auths\":{}}");
    assert_int_equal(len, 12);
    userdata_text_free(json);

    /* Bytewise order: upper case before lower case, non-ASCII last; escaping as Go. */
    const struct userdata_registry_auth regs[] = {
        { "\xc3\xa9.example", "ZQ==" }, { "alpha.io", "YQ==" }, { "Zeta.io", "Wg==" },
        { "r<1>&", "cg==" },            { NULL, "bg==" },       { "alpha.io", "YjI=" },
        { "alpha.io", NULL },
    };
    json = userdata_auth_json_render(regs, ARRAY_LEN(regs), &len);
    assert_string_equal(json, "{\"auths\":{\"\":{\"auth\":\"bg==\"},\"Zeta.io\":{\"auth\":\"Wg==\"},"
                              "\"alpha.io\":{\"auth\":\"\"},\"r\\u003c1\\u003e\\u0026\":{\"auth\":\"cg==\"},"
                              "\"\xc3\xa9.example\":{\"auth\":\"ZQ==\"}}}");
    userdata_text_free(json);

    errno = 0;
    assert_null(userdata_auth_json_render(NULL, 1, &len));
    assert_int_equal(errno, EINVAL);
}

/* ------------------------------------------------------------------ cloud-config */

static void test_cloudconfig_empty(void **state)
{
    size_t len;
    (void)state;
    char *doc = userdata_cloudconfig_render(NULL, 0, &len);
    assert_string_equal(doc, "#cloud-config\n");
    assert_int_equal(len, 14);
    userdata_text_free(doc);
}

/* The 4.1 rules on small inputs: interior empty lines, one trailing "\n" dropped, no content
 * key for an empty file, raw bytes. */
static void test_cloudconfig_rules(void **state)
{
    static const char c1[] = "a\n\nb";
    static const char c2[] = "line1\nline2\n";
    static const char c3[] = "{\n  x: \"#y\"\t|\n\xc3\xa9  \n}";
    const struct userdata_file files[] = {
        { "/run/peerpod/one", (const uint8_t *)c1, sizeof(c1) - 1 },
        { "/run/peerpod/empty", NULL, 0 },
        { "/run/peerpod/two", (const uint8_t *)c2, sizeof(c2) - 1 },
        { "/x/y_z-1.+", (const uint8_t *)c3, sizeof(c3) - 1 },
        { "/run/peerpod/last", (const uint8_t *)"", 0 },
    };
    size_t len;
    (void)state;
    char *doc = userdata_cloudconfig_render(files, ARRAY_LEN(files), &len);
    assert_non_null(doc);
    assert_string_equal(doc, "#cloud-config\n"
                             "\n"
                             "write_files:\n"
                             "  - path: /run/peerpod/one\n"
                             "    content: |\n"
                             "      a\n"
                             "      \n"
                             "      b\n"
                             "  - path: /run/peerpod/empty\n"
                             "  - path: /run/peerpod/two\n"
                             "    content: |\n"
                             "      line1\n"
                             "      line2\n"
                             "  - path: /x/y_z-1.+\n"
                             "    content: |\n"
                             "      {\n"
                             "        x: \"#y\"\t|\n"
                             "      \xc3\xa9  \n"
                             "      }\n"
                             "  - path: /run/peerpod/last\n");
    assert_int_equal(len, strlen(doc));
    userdata_text_free(doc);
}

/* Content a YAML reader would not give back, and paths that would need quoting. */
static void test_cloudconfig_refusals(void **state)
{
    static const struct {
        const char *content;
        size_t len;
    } bad[] = {
        { "a\rb", 3 },              /* CR is a YAML line break */
        { "a\xc2\x85" "b", 4 },     /* NEL */
        { "a\xe2\x80\xa8" "b", 5 }, /* LS */
        { "a\xe2\x80\xa9" "b", 5 }, /* PS */
        { "a\xc2\x80" "b", 4 },     /* C1 control */
        { "a\x7f", 2 },             /* DEL */
        { "a\x00" "b", 3 },         /* NUL */
        { "a\x1b", 2 },             /* ESC */
        { "a\xef\xbf\xbe", 4 },     /* U+FFFE */
        { "a\xff", 2 },             /* invalid UTF-8 */
        { "a\xed\xa0\x80", 4 },     /* surrogate */
        { " a", 2 },                /* first line sets the indentation */
        { "\na", 2 },               /* first line empty */
        { "\n", 1 },
        { "a\n\n", 3 },             /* clip chomping would drop the blank line */
    };
    static const char *const bad_paths[] = { "", "/run/a b", "/run/a:b", "/run/#a", "/run/a\nb", "/run/\"a\"",
                                             "/run/\xc3\xa9" };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        const struct userdata_file f[] = {
            { "/run/peerpod/ok", (const uint8_t *)"ok", 2 },
            { "/run/peerpod/bad", (const uint8_t *)bad[i].content, bad[i].len },
        };
        size_t len = 777;
        errno = 0;
        char *doc = userdata_cloudconfig_render(f, 2, &len);
        if (doc)
            fail_msg("bad content %zu accepted:\n%s", i, doc);
        assert_int_equal(errno, EINVAL);
        assert_int_equal(len, 777);
    }
    for (size_t i = 0; i < ARRAY_LEN(bad_paths); i++) {
        const struct userdata_file f = { bad_paths[i], (const uint8_t *)"x", 1 };
        errno = 0;
        assert_null(userdata_cloudconfig_render(&f, 1, NULL));
        assert_int_equal(errno, EINVAL);
    }
    const struct userdata_file nullpath = { NULL, NULL, 0 };
    assert_null(userdata_cloudconfig_render(&nullpath, 1, NULL));
    const struct userdata_file nullcontent = { "/a", NULL, 3 };
    assert_null(userdata_cloudconfig_render(&nullcontent, 1, NULL));
    assert_null(userdata_cloudconfig_render(NULL, 1, NULL));
    assert_int_equal(errno, EINVAL);

    /* What stays allowed: tabs, spaces after the first character, 4-byte UTF-8, one final LF. */
    const struct userdata_file good = { "/a", (const uint8_t *)"\tx  \n y\xf0\x9f\x98\x80\n", 12 };
    char *doc = userdata_cloudconfig_render(&good, 1, NULL);
    assert_non_null(doc);
    assert_string_equal(doc, "#cloud-config\n\nwrite_files:\n  - path: /a\n    content: |\n      \tx  \n       "
                             "y\xf0\x9f\x98\x80\n");
    userdata_text_free(doc);
}

/* Over USERDATA_TEXT_MAX: refused with EFBIG rather than handed to a cloud. */
static void test_cloudconfig_too_big(void **state)
{
    size_t n = USERDATA_TEXT_MAX;
    char *big = malloc(n);
    (void)state;
    assert_non_null(big);
    memset(big, 'A', n);
    const struct userdata_file f = { USERDATA_PATH_INITDATA, (const uint8_t *)big, n };
    errno = 0;
    assert_null(userdata_cloudconfig_render(&f, 1, NULL));
    assert_int_equal(errno, EFBIG);
    free(big);
}

/* ------------------------------------------------------------------ whole documents (4.2) */

struct doc_case {
    struct userdata_apf (*apf)(void);
    bool auth;
    const char *initdata;
    bool scratch;
    const char *golden;
};

static void doc_check(const struct doc_case *dc)
{
    size_t apf_len, auth_len = 0, doc_len;
    char *apf = apf_build_ok(dc->apf(), &apf_len);
    char *auth = NULL;
    if (dc->auth) {
        auth = userdata_auth_json_render(golden_regs, ARRAY_LEN(golden_regs), &auth_len);
        assert_non_null(auth);
    }
    struct userdata_sources src = {
        .apf_json = apf,
        .apf_json_len = apf_len,
        .auth_json = auth,
        .auth_json_len = auth_len,
        .initdata = dc->initdata,
        .scratch_space = dc->scratch,
    };
    bool dropped = true;
    char *doc = userdata_document_render(&src, &dropped, &doc_len);
    if (!doc)
        fail_msg("%s: %s", dc->golden, strerror(errno));
    assert_false(dropped);
    assert_golden(doc, doc_len, dc->golden);
    userdata_text_free(doc);
    userdata_text_free(auth);
    userdata_text_free(apf);
}

static void test_document_tls_auto(void **state)
{
    const struct doc_case dc = { apf_tls_auto, false, NULL, false, "cc_tls_auto.yaml" };
    (void)state;
    doc_check(&dc);
    const struct doc_case empty_initdata = { apf_tls_auto, false, "", false, "cc_tls_auto.yaml" };
    doc_check(&empty_initdata);
}

static void test_document_tls_auto_initdata(void **state)
{
    const struct doc_case dc = { apf_tls_auto, false, INITDATA, false, "cc_tls_auto_initdata.yaml" };
    (void)state;
    doc_check(&dc);
}

static void test_document_tls_files_full(void **state)
{
    const struct doc_case dc = { apf_tls_files, true, INITDATA, true, "cc_tls_files_full.yaml" };
    (void)state;
    doc_check(&dc);
}

static void test_document_tls_disabled_scratch(void **state)
{
    const struct doc_case dc = { apf_tls_disabled, false, NULL, true, "cc_tls_disabled_scratch.yaml" };
    (void)state;
    doc_check(&dc);
}

static void test_document_tls_profile_auth(void **state)
{
    const struct doc_case dc = { apf_tls_profile, true, NULL, false, "cc_tls_profile_auth.yaml" };
    (void)state;
    doc_check(&dc);
}

static void test_document_escaping(void **state)
{
    const struct doc_case dc = { apf_escaping, false, NULL, false, "cc_escaping.yaml" };
    (void)state;
    doc_check(&dc);
}

/* auth.json is kept up to the limit and dropped (flagged) one byte over it. */
static void test_document_auth_limit(void **state)
{
    size_t apf_len, doc_len;
    (void)state;
    char *apf = apf_build_ok(apf_tls_auto(), &apf_len);
    char *auth = malloc(USERDATA_AUTH_JSON_MAX + 1);
    assert_non_null(auth);
    memset(auth, 'a', USERDATA_AUTH_JSON_MAX + 1);

    struct userdata_sources src = {
        .apf_json = apf,
        .apf_json_len = apf_len,
        .auth_json = auth,
        .auth_json_len = USERDATA_AUTH_JSON_MAX + 1,
        .initdata = INITDATA,
    };
    bool dropped = false;
    char *doc = userdata_document_render(&src, &dropped, &doc_len);
    assert_non_null(doc);
    assert_true(dropped);
    assert_golden(doc, doc_len, "cc_tls_auto_initdata.yaml");
    userdata_text_free(doc);

    src.auth_json_len = USERDATA_AUTH_JSON_MAX;
    doc = userdata_document_render(&src, &dropped, &doc_len);
    assert_non_null(doc);
    assert_false(dropped);
    const char *p = strstr(doc, "  - path: /run/peerpod/auth.json\n    content: |\n      aaaa");
    assert_non_null(p);
    assert_true(p < strstr(doc, "  - path: /run/peerpod/initdata\n"));
    userdata_text_free(doc);
    free(auth);
    userdata_text_free(apf);
}

static void test_files_assemble(void **state)
{
    struct userdata_file f[USERDATA_FILES_MAX];
    bool dropped = true;
    (void)state;

    struct userdata_sources src = { .apf_json = "{}", .apf_json_len = 2, .auth_json = "{\"auths\":{}}",
                                    .auth_json_len = 12, .initdata = "QUJD", .scratch_space = true };
    assert_int_equal(userdata_files_assemble(f, &src, &dropped), 4);
    assert_false(dropped);
    assert_string_equal(f[0].path, USERDATA_PATH_APF_JSON);
    assert_ptr_equal(f[0].content, src.apf_json);
    assert_int_equal(f[0].len, 2);
    assert_string_equal(f[1].path, USERDATA_PATH_AUTH_JSON);
    assert_int_equal(f[1].len, 12);
    assert_string_equal(f[2].path, USERDATA_PATH_INITDATA);
    assert_int_equal(f[2].len, 4);
    assert_string_equal(f[3].path, USERDATA_PATH_SCRATCH_MARKER);
    assert_null(f[3].content);
    assert_int_equal(f[3].len, 0);

    /* An empty auth.json counts as none; NULL auth_dropped is allowed. */
    src.auth_json_len = 0;
    src.scratch_space = false;
    assert_int_equal(userdata_files_assemble(f, &src, NULL), 2);
    assert_string_equal(f[1].path, USERDATA_PATH_INITDATA);

    /* initdata must be one base64 line. */
    static const char *const bad_initdata[] = { "QUJD\n", "QU JD", "QUJD\r", "QUJD-_" };
    for (size_t i = 0; i < ARRAY_LEN(bad_initdata); i++) {
        src.initdata = bad_initdata[i];
        errno = 0;
        assert_int_equal(userdata_files_assemble(f, &src, &dropped), -1);
        assert_int_equal(errno, EINVAL);
        assert_null(userdata_document_render(&src, &dropped, NULL));
    }
    src.initdata = NULL;

    src.apf_json_len = 0;
    assert_int_equal(userdata_files_assemble(f, &src, &dropped), -1);
    src.apf_json = NULL;
    src.apf_json_len = 2;
    assert_int_equal(userdata_files_assemble(f, &src, &dropped), -1);
    assert_int_equal(userdata_files_assemble(f, NULL, &dropped), -1);
    assert_int_equal(errno, EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apf_tls_auto),
        cmocka_unit_test(test_apf_tls_files),
        cmocka_unit_test(test_apf_tls_disabled),
        cmocka_unit_test(test_apf_tls_profile),
        cmocka_unit_test(test_apf_escaping),
        cmocka_unit_test(test_apf_names_and_omissions),
        cmocka_unit_test(test_apf_refusals),
        cmocka_unit_test(test_apf_many_routes),
        cmocka_unit_test(test_json_quote),
        cmocka_unit_test(test_auth_json_golden),
        cmocka_unit_test(test_auth_json_edges),
        cmocka_unit_test(test_cloudconfig_empty),
        cmocka_unit_test(test_cloudconfig_rules),
        cmocka_unit_test(test_cloudconfig_refusals),
        cmocka_unit_test(test_cloudconfig_too_big),
        cmocka_unit_test(test_document_tls_auto),
        cmocka_unit_test(test_document_tls_auto_initdata),
        cmocka_unit_test(test_document_tls_files_full),
        cmocka_unit_test(test_document_tls_disabled_scratch),
        cmocka_unit_test(test_document_tls_profile_auth),
        cmocka_unit_test(test_document_escaping),
        cmocka_unit_test(test_document_auth_limit),
        cmocka_unit_test(test_files_assemble),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
