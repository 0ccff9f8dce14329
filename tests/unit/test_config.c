/* Unit tests for adaptor/config.c (flags and env with Go `flag` rules, protocols.md §7.1-7.3,
 * Go time.ParseDuration) and log_level_parse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "prio.h"
#include "log.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NS_PER_S INT64_C(1000000000)

/* Every variable the code under test reads: reset before each test. */
static const char *const all_env[] = {
    "REMOTE_HYPERVISOR_ENDPOINT", "PODS_DIR", "PAUSE_IMAGE", "FORWARDER_PORT", "CACERT_FILE", "CERT_FILE",
    "CERT_KEY", "TLS_SKIP_VERIFY", "TLS_MIN_VERSION", "TLS_CIPHER_SUITES", "PROXY_TIMEOUT", "TUNNEL_TYPE",
    "VXLAN_PORT", "INITDATA", "CLOUD_CONFIG_VERIFY", "PEERPODS_LIMIT_PER_NODE", "ENABLE_SCRATCH_SPACE",
    "EXTERNAL_NETWORK_VIA_PODVM", "POD_SUBNET_CIDRS", "LOG_LEVEL", "NODE_NAME", "POD_UID", "PROBE_PORT",
    "RUNTIMECLASS_NAME",
};

static int reset_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(all_env); i++)
        unsetenv(all_env[i]);
    return 0;
}

/* Registers the common options into a fresh registry and parses argv. */
struct fixture {
    struct config_registry reg;
    struct config c;
    char err[512];
};

static int parse_argv(struct fixture *f, int argc, char **argv)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(config_register_common(&f->reg, &f->c), 0);
    int rc = config_registry_parse(&f->reg, argc, argv, f->err, sizeof(f->err));
    config_load_env(&f->c);
    config_registry_free(&f->reg);
    return rc;
}

#define PARSE(f, ...)                                                                                     \
    ({                                                                                                    \
        static char *argv_[] = {__VA_ARGS__};                                                             \
        parse_argv((f), (int)ARRAY_LEN(argv_), argv_);                                                    \
    })
#define PARSE0(f) parse_argv((f), 0, NULL)

#define assert_contains(hay, needle)                                                                      \
    do {                                                                                                  \
        if (!strstr((hay), (needle)))                                                                     \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));                                  \
    } while (0)

/* ---- durations ------------------------------------------------------------------------- */

struct dur_case {
    const char *s;
    int64_t ns;
};

static void test_duration_valid(void **state)
{
    (void)state;
    static const struct dur_case cases[] = {
        {"5m", 300 * NS_PER_S},
        {"300s", 300 * NS_PER_S},
        {"1.5h", 5400 * NS_PER_S},
        {"2h45m", 9900 * NS_PER_S},
        {"1h2m3s4ms5us6ns", INT64_C(3723004005006)},
        {"1\xc2\xb5s", 1000},            /* U+00B5 micro sign */
        {"1\xce\xbcs", 1000},            /* U+03BC Greek mu */
        {"2.5\xc2\xb5s", 2500},
        {"0", 0},
        {"-0", 0},
        {"+0", 0},
        {"0s", 0},
        {"0.000s", 0},
        {"-1s", -NS_PER_S},
        {"+5s", 5 * NS_PER_S},
        {".5s", NS_PER_S / 2},
        {"1.s", NS_PER_S},
        {"100ms", 100000000},
        {"1.5ns", 1},                    /* fractions below 1 ns are truncated */
        {"0.000000001s", 1},
        {"0.0000000019s", 1},
        {"1.000000001s", NS_PER_S + 1},
        {"3m0.5s", 180 * NS_PER_S + NS_PER_S / 2},
        {"1h1h", 7200 * NS_PER_S},       /* repeated units add up */
        {"10us10ns", 10010},
        {"-1.5h", -5400 * NS_PER_S},
        {"2562047h47m16.854775807s", INT64_MAX},
        {"-2562047h47m16.854775808s", INT64_MIN},
        {"9223372036854775807ns", INT64_MAX},
        {"2562047h", INT64_C(2562047) * 3600 * NS_PER_S},
        {"00001s", NS_PER_S},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        int64_t ns = 12345;
        const char *why = NULL;
        if (config_duration_parse(cases[i].s, &ns, &why))
            fail_msg("duration \"%s\" rejected: %s", cases[i].s, why ? why : "(no reason)");
        if (ns != cases[i].ns)
            fail_msg("duration \"%s\" = %lld, want %lld", cases[i].s, (long long)ns, (long long)cases[i].ns);
    }
}

static void test_duration_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "300", "5x", "s", "1.2.3s", "--1s", "9999999999h", ".s", "-", "+", "+-1s", "1s ", " 1s",
        "1S", "1sec", "1e3s", "00", "0.0", "1h-1m", "1h 1m", "1.5", "h", "1m1", "2562047h47m16.854775808s",
        "9223372036854775808ns", "2562048h", "1\xc2s", "0x10s", "1,5s",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int64_t ns = 777;
        const char *why = NULL;
        if (!config_duration_parse(bad[i], &ns, &why))
            fail_msg("duration \"%s\" accepted as %lld", bad[i], (long long)ns);
        assert_non_null(why);
        assert_true(strlen(why) > 0);
    }
}

/* Go's ParseDuration rejects every sum above 2^63-1; the parser must not wrap the uint64
 * running total (INT64_MAX ns plus a second term just above 2^63 ns). */
static void test_duration_overflow_sum(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "9223372036854775807ns2562047.99h",
        "2562047h47m16.854775807s2562047.99h",
        "-2562047h47m16.854775808s2562047.99h",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int64_t ns = 777;
        const char *why = NULL;
        if (!config_duration_parse(bad[i], &ns, &why))
            fail_msg("overflowing duration \"%s\" accepted as %lld ns", bad[i], (long long)ns);
    }
}

/* ---- defaults, env, flags --------------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    struct fixture f;
    assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
    struct config *c = &f.c;
    assert_string_equal(c->socket_path, "/run/peerpod/hypervisor.sock");
    assert_string_equal(c->pods_dir, "/run/peerpod/pods");
    assert_string_equal(c->pause_image, "");
    assert_string_equal(c->forwarder_port, "15150");
    assert_string_equal(c->ca_cert_file, "");
    assert_string_equal(c->cert_file, "");
    assert_string_equal(c->cert_key, "");
    assert_false(c->tls_skip_verify);
    assert_string_equal(c->tls_min_version, "");
    assert_string_equal(c->tls_cipher_suites, "");
    assert_true(c->proxy_timeout_ns == 300 * NS_PER_S);
    assert_string_equal(c->tunnel_type, "vxlan");
    assert_true(c->vxlan_port == 4789);
    assert_true(c->vxlan_min_id == 555000);
    assert_string_equal(c->host_interface, "");
    assert_string_equal(c->initdata, "");
    assert_false(c->cloud_config_verify);
    assert_true(c->peerpods_limit == 10);
    assert_false(c->enable_scratch_space);
    assert_false(c->ext_network_via_podvm);
    assert_string_equal(c->pod_subnet_cidrs, "");
    assert_false(c->disable_tls);
    assert_string_equal(c->log_level, "info");
    assert_string_equal(c->node_name, "");
    assert_string_equal(c->pod_uid, "");
    assert_string_equal(c->probe_port, "8000");
    assert_string_equal(c->runtimeclass_name, "kata-remote");
    assert_int_equal(config_validate(c, f.err, sizeof(f.err)), 0);
}

static void test_env_replaces_default(void **state)
{
    (void)state;
    setenv("REMOTE_HYPERVISOR_ENDPOINT", "/tmp/hv.sock", 1);
    setenv("PODS_DIR", "/var/pods", 1);
    setenv("PAUSE_IMAGE", "registry.k8s.io/pause:3.7", 1);
    setenv("FORWARDER_PORT", "16000", 1);
    setenv("CACERT_FILE", "/etc/ca.pem", 1);
    setenv("CERT_FILE", "/etc/c.pem", 1);
    setenv("CERT_KEY", "/etc/k.pem", 1);
    setenv("TLS_SKIP_VERIFY", "true", 1);
    setenv("TLS_MIN_VERSION", "VersionTLS13", 1);
    setenv("PROXY_TIMEOUT", "90s", 1);
    setenv("TUNNEL_TYPE", "vxlan", 1);
    setenv("VXLAN_PORT", "4790", 1);
    setenv("INITDATA", "aW5pdA==", 1);
    setenv("CLOUD_CONFIG_VERIFY", "1", 1);
    setenv("PEERPODS_LIMIT_PER_NODE", "-1", 1);
    setenv("ENABLE_SCRATCH_SPACE", "TRUE", 1);
    setenv("EXTERNAL_NETWORK_VIA_PODVM", "True", 1);
    setenv("POD_SUBNET_CIDRS", "10.0.0.0/8,192.168.0.0/16", 1);
    setenv("LOG_LEVEL", "debug", 1);
    setenv("NODE_NAME", "worker-1", 1);
    setenv("POD_UID", "uid-1", 1);
    setenv("PROBE_PORT", "8001", 1);
    setenv("RUNTIMECLASS_NAME", "kata-x", 1);
    struct fixture f;
    assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
    struct config *c = &f.c;
    assert_string_equal(c->socket_path, "/tmp/hv.sock");
    assert_string_equal(c->pods_dir, "/var/pods");
    assert_string_equal(c->pause_image, "registry.k8s.io/pause:3.7");
    assert_string_equal(c->forwarder_port, "16000");
    assert_string_equal(c->ca_cert_file, "/etc/ca.pem");
    assert_string_equal(c->cert_file, "/etc/c.pem");
    assert_string_equal(c->cert_key, "/etc/k.pem");
    assert_true(c->tls_skip_verify);
    assert_string_equal(c->tls_min_version, "VersionTLS13");
    assert_true(c->proxy_timeout_ns == 90 * NS_PER_S);
    assert_string_equal(c->tunnel_type, "vxlan");
    assert_true(c->vxlan_port == 4790);
    assert_true(c->vxlan_min_id == 555000); /* flag only */
    assert_string_equal(c->initdata, "aW5pdA==");
    assert_true(c->cloud_config_verify);
    assert_true(c->peerpods_limit == -1);
    assert_true(c->enable_scratch_space);
    assert_true(c->ext_network_via_podvm);
    assert_string_equal(c->pod_subnet_cidrs, "10.0.0.0/8,192.168.0.0/16");
    assert_string_equal(c->log_level, "debug");
    assert_string_equal(c->node_name, "worker-1");
    assert_string_equal(c->pod_uid, "uid-1");
    assert_string_equal(c->probe_port, "8001");
    assert_string_equal(c->runtimeclass_name, "kata-x");
    assert_int_equal(config_validate(c, f.err, sizeof(f.err)), 0);
}

static void test_env_empty_ignored(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(all_env); i++)
        setenv(all_env[i], "", 1);
    struct fixture f;
    assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
    assert_string_equal(f.c.socket_path, "/run/peerpod/hypervisor.sock");
    assert_string_equal(f.c.pods_dir, "/run/peerpod/pods");
    assert_string_equal(f.c.forwarder_port, "15150");
    assert_true(f.c.proxy_timeout_ns == 300 * NS_PER_S);
    assert_string_equal(f.c.tunnel_type, "vxlan");
    assert_true(f.c.vxlan_port == 4789);
    assert_true(f.c.peerpods_limit == 10);
    assert_false(f.c.tls_skip_verify);
    assert_string_equal(f.c.log_level, "info");
    assert_string_equal(f.c.probe_port, "8000");
    assert_string_equal(f.c.runtimeclass_name, "kata-remote");
    assert_string_equal(f.c.node_name, "");
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), 0);
}

static void test_flag_overrides_env(void **state)
{
    (void)state;
    setenv("PODS_DIR", "/env/pods", 1);
    setenv("VXLAN_PORT", "1111", 1);
    setenv("TLS_SKIP_VERIFY", "true", 1);
    setenv("PROXY_TIMEOUT", "1m", 1);
    struct fixture f;
    assert_int_equal(PARSE(&f, "-pods-dir", "/flag/pods", "-vxlan-port=2222", "-tls-skip-verify=false",
                           "--proxy-timeout", "2h"),
                     CONFIG_PARSE_OK);
    assert_string_equal(f.c.pods_dir, "/flag/pods");
    assert_true(f.c.vxlan_port == 2222);
    assert_false(f.c.tls_skip_verify);
    assert_true(f.c.proxy_timeout_ns == 7200 * NS_PER_S);
}

static void test_flag_forms(void **state)
{
    (void)state;
    struct fixture f;
    assert_int_equal(PARSE(&f, "-socket", "/a.sock", "-pods-dir=/p", "--forwarder-port", "1234",
                           "--tunnel-type=vxlan", "-disable-tls", "--enable-scratch-space", "-cloud-config-verify=true",
                           "-tls-skip-verify=1", "-ext-network-via-podvm=T", "-pause-image=", "-vxlan-min-id", "7",
                           "-peerpods-limit-per-node", "-3", "-initdata=a=b"),
                     CONFIG_PARSE_OK);
    assert_string_equal(f.c.socket_path, "/a.sock");
    assert_string_equal(f.c.pods_dir, "/p");
    assert_string_equal(f.c.forwarder_port, "1234");
    assert_string_equal(f.c.tunnel_type, "vxlan");
    assert_true(f.c.disable_tls);
    assert_true(f.c.enable_scratch_space);
    assert_true(f.c.cloud_config_verify);
    assert_true(f.c.tls_skip_verify);
    assert_true(f.c.ext_network_via_podvm);
    assert_string_equal(f.c.pause_image, "");
    assert_true(f.c.vxlan_min_id == 7);
    assert_true(f.c.peerpods_limit == -3); /* a non-bool flag takes the next arg even if it starts with '-' */
    assert_string_equal(f.c.initdata, "a=b"); /* split at the first '=' only */

    /* Bool flag values: every strconv.ParseBool spelling. */
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const fl[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < ARRAY_LEN(t); i++) {
        char a[64], b[64];
        snprintf(a, sizeof(a), "-disable-tls=%s", t[i]);
        snprintf(b, sizeof(b), "-enable-scratch-space=%s", fl[i]);
        char *argv[] = {a, "-enable-scratch-space", b};
        assert_int_equal(parse_argv(&f, 3, argv), CONFIG_PARSE_OK);
        assert_true(f.c.disable_tls);
        assert_false(f.c.enable_scratch_space);
    }
    /* The last occurrence wins. */
    assert_int_equal(PARSE(&f, "-vxlan-port", "1", "-vxlan-port=2"), CONFIG_PARSE_OK);
    assert_true(f.c.vxlan_port == 2);
}

static void test_flag_termination(void **state)
{
    (void)state;
    struct fixture f;
    /* "--" ends the flags. */
    assert_int_equal(PARSE(&f, "-vxlan-port", "5000", "--", "-pods-dir", "/x"), CONFIG_PARSE_OK);
    assert_true(f.c.vxlan_port == 5000);
    assert_string_equal(f.c.pods_dir, "/run/peerpod/pods");
    /* The first non-flag ends them too, even if flags follow. */
    assert_int_equal(PARSE(&f, "-vxlan-port", "5001", "extra", "-pods-dir", "/x", "-nope"), CONFIG_PARSE_OK);
    assert_true(f.c.vxlan_port == 5001);
    assert_string_equal(f.c.pods_dir, "/run/peerpod/pods");
    /* A lone "-" is a non-flag. */
    assert_int_equal(PARSE(&f, "-", "-pods-dir", "/x"), CONFIG_PARSE_OK);
    assert_string_equal(f.c.pods_dir, "/run/peerpod/pods");
    /* A bool flag never consumes the next argument: "false" is the first non-flag. */
    assert_int_equal(PARSE(&f, "-disable-tls", "false", "-pods-dir", "/x"), CONFIG_PARSE_OK);
    assert_true(f.c.disable_tls);
    assert_string_equal(f.c.pods_dir, "/run/peerpod/pods");
    /* Empty argument is a non-flag. */
    assert_int_equal(PARSE(&f, "", "-nope"), CONFIG_PARSE_OK);
}

static void test_flag_errors(void **state)
{
    (void)state;
    struct fixture f;
    assert_int_equal(PARSE(&f, "-nope"), CONFIG_PARSE_ERROR);
    assert_contains(f.err, "flag provided but not defined");
    assert_contains(f.err, "-nope");
    assert_int_equal(PARSE(&f, "-socket", "/a", "--no-such-flag=1"), CONFIG_PARSE_ERROR);
    assert_contains(f.err, "flag provided but not defined");
    assert_contains(f.err, "no-such-flag");
    /* Missing value. */
    assert_int_equal(PARSE(&f, "-socket"), CONFIG_PARSE_ERROR);
    assert_contains(f.err, "socket");
    assert_contains(f.err, "argument");
    assert_int_equal(PARSE(&f, "-pods-dir", "/x", "--proxy-timeout"), CONFIG_PARSE_ERROR);
    assert_contains(f.err, "proxy-timeout");
    /* Bad syntax. */
    assert_int_equal(PARSE(&f, "---socket"), CONFIG_PARSE_ERROR);
    assert_contains(f.err, "bad flag syntax");
    assert_int_equal(PARSE(&f, "-=x"), CONFIG_PARSE_ERROR);
    assert_contains(f.err, "bad flag syntax");
    /* Invalid values name the flag. */
    assert_int_equal(PARSE(&f, "-vxlan-port", "abc"), CONFIG_PARSE_ERROR);
    assert_contains(f.err, "vxlan-port");
    assert_int_equal(PARSE(&f, "-vxlan-port="), CONFIG_PARSE_ERROR);
    assert_contains(f.err, "vxlan-port");
    assert_int_equal(PARSE(&f, "-proxy-timeout", "300"), CONFIG_PARSE_ERROR);
    assert_contains(f.err, "proxy-timeout");
    assert_int_equal(PARSE(&f, "-disable-tls=yes"), CONFIG_PARSE_ERROR);
    assert_contains(f.err, "disable-tls");
    assert_int_equal(PARSE(&f, "-peerpods-limit-per-node", "99999999999999999999"), CONFIG_PARSE_ERROR);
    assert_contains(f.err, "peerpods-limit-per-node");
    /* A very long unknown flag name is reported, not overflowed. */
    static char longflag[400];
    longflag[0] = '-';
    memset(longflag + 1, 'x', sizeof(longflag) - 2);
    longflag[sizeof(longflag) - 1] = '\0';
    char *argv[] = {longflag};
    assert_int_equal(parse_argv(&f, 1, argv), CONFIG_PARSE_ERROR);
    assert_contains(f.err, "flag provided but not defined");
}

static void test_flag_help(void **state)
{
    (void)state;
    struct fixture f;
    assert_int_equal(PARSE(&f, "-h"), CONFIG_PARSE_HELP);
    assert_int_equal(PARSE(&f, "-help"), CONFIG_PARSE_HELP);
    assert_int_equal(PARSE(&f, "--help"), CONFIG_PARSE_HELP);
    assert_int_equal(PARSE(&f, "--h"), CONFIG_PARSE_HELP);
    assert_int_equal(PARSE(&f, "-socket", "/x", "-h", "-nope"), CONFIG_PARSE_HELP);
    /* After the end of the flags it is just an argument. */
    assert_int_equal(PARSE(&f, "--", "-h"), CONFIG_PARSE_OK);
    assert_int_equal(PARSE(&f, "x", "-help"), CONFIG_PARSE_OK);
}

static void test_env_bool(void **state)
{
    (void)state;
    static const char *const t[] = {"1", "TRUE", "true", "True", "tRuE"};
    static const char *const fl[] = {"0", "false", "FALSE", "False"};
    struct fixture f;
    for (size_t i = 0; i < ARRAY_LEN(t); i++) {
        setenv("TLS_SKIP_VERIFY", t[i], 1);
        assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
        if (!f.c.tls_skip_verify)
            fail_msg("TLS_SKIP_VERIFY=%s read as false", t[i]);
    }
    for (size_t i = 0; i < ARRAY_LEN(fl); i++) {
        setenv("ENABLE_SCRATCH_SPACE", fl[i], 1);
        assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
        if (f.c.enable_scratch_space)
            fail_msg("ENABLE_SCRATCH_SPACE=%s read as true", fl[i]);
    }
    /* Any other word is false, as for the Go daemon, with a warning. */
    reset_env(NULL);
    setenv("TLS_SKIP_VERIFY", "yes", 1);
    assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
    assert_false(f.c.tls_skip_verify);
    assert_contains(f.reg.warnings, "TLS_SKIP_VERIFY=\"yes\": read as false");
    reset_env(NULL);
    setenv("CLOUD_CONFIG_VERIFY", "on", 1);
    assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
    assert_contains(f.reg.warnings, "CLOUD_CONFIG_VERIFY");
    reset_env(NULL);
    setenv("TLS_SKIP_VERIFY", "false", 1);
    assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
    assert_string_equal(f.reg.warnings, "");
}

/* Env values by the Go daemon's rules (spec 7.1, providers-azure.md 1): never fatal. */
static void test_env_invalid(void **state)
{
    (void)state;
    struct fixture f;
    setenv("PROXY_TIMEOUT", "300", 1); /* a bare number: ignored */
    assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
    assert_int_equal(f.c.proxy_timeout_ns, 5 * 60 * 1000000000LL);
    assert_contains(f.reg.warnings, "PROXY_TIMEOUT=\"300\": not a duration");
    reset_env(NULL);
    setenv("VXLAN_PORT", " 47x89", 1); /* leading number */
    assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
    assert_int_equal(f.c.vxlan_port, 47);
    assert_contains(f.reg.warnings, "VXLAN_PORT");
    reset_env(NULL);
    setenv("PEERPODS_LIMIT_PER_NODE", "10 \n", 1); /* a YAML block scalar's newline */
    assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
    assert_int_equal(f.c.peerpods_limit, 10);
    reset_env(NULL);
    setenv("PEERPODS_LIMIT_PER_NODE", "ten", 1); /* no number: the default stays */
    assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
    assert_int_equal(f.c.peerpods_limit, 10);
    assert_contains(f.reg.warnings, "not a number");
    reset_env(NULL);
    setenv("VXLAN_PORT", "x", 1); /* and a flag overrides the env */
    assert_int_equal(PARSE(&f, "-vxlan-port", "4790"), CONFIG_PARSE_OK);
    assert_int_equal(f.c.vxlan_port, 4790);
    reset_env(NULL);
    /* Flags take ints as Go's flag package does: any base prefix, nothing else. */
    assert_int_equal(PARSE(&f, "-vxlan-port", "0x12b5"), CONFIG_PARSE_OK);
    assert_int_equal(f.c.vxlan_port, 4789);
    assert_int_equal(PARSE(&f, "-vxlan-min-id", "0555000"), CONFIG_PARSE_OK);
    assert_int_equal(f.c.vxlan_min_id, 0555000);
    assert_int_equal(PARSE(&f, "-vxlan-min-id", "0o17"), CONFIG_PARSE_OK);
    assert_int_equal(f.c.vxlan_min_id, 017);
    assert_int_equal(PARSE(&f, "-peerpods-limit-per-node", "-0b101"), CONFIG_PARSE_OK);
    assert_int_equal(f.c.peerpods_limit, -5);
    assert_int_equal(PARSE(&f, "-vxlan-port", "0x"), CONFIG_PARSE_ERROR);
    assert_int_equal(PARSE(&f, "-vxlan-port", " 4789"), CONFIG_PARSE_ERROR);
    assert_int_equal(PARSE(&f, "-vxlan-port", "08"), CONFIG_PARSE_ERROR);
}

/* ---- validation --------------------------------------------------------------------- */

struct validate_case {
    const char *env, *value;
    const char *want1, *want2;
};

static void test_validate(void **state)
{
    (void)state;
    static const struct validate_case cases[] = {
        {"TUNNEL_TYPE", "geneve", "TUNNEL_TYPE", "unknown tunnel type"},
        {"VXLAN_PORT", "0", "VXLAN_PORT", "0"},
        {"VXLAN_PORT", "70000", "VXLAN_PORT", "70000"},
        {"VXLAN_PORT", "-1", "VXLAN_PORT", "-1"},
        {"TLS_MIN_VERSION", "VersionTLS11", "TLS_MIN_VERSION", "VersionTLS11"},
        {"TLS_MIN_VERSION", "tls13", "TLS_MIN_VERSION", "tls13"},
        {"REMOTE_HYPERVISOR_ENDPOINT", "run/hv.sock", "REMOTE_HYPERVISOR_ENDPOINT", "run/hv.sock"},
        {"PODS_DIR", "/run/a:b", "PODS_DIR", "':'"},
        {"PODS_DIR", "pods", "PODS_DIR", "absolute"},
        {"FORWARDER_PORT", "abc", "FORWARDER_PORT", "abc"},
        {"FORWARDER_PORT", "0", "FORWARDER_PORT", "port"},
        {"FORWARDER_PORT", "65536", "FORWARDER_PORT", "port"},
        {"PROXY_TIMEOUT", "-1s", "PROXY_TIMEOUT", "positive"},
        {"PROXY_TIMEOUT", "0s", "PROXY_TIMEOUT", "positive"},
        {"LOG_LEVEL", "verbose", "LOG_LEVEL", "verbose"},
        {"PROBE_PORT", "0", "PROBE_PORT", "port"},
        {"PROBE_PORT", "http", "PROBE_PORT", "http"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        reset_env(NULL);
        setenv(cases[i].env, cases[i].value, 1);
        struct fixture f;
        assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
        f.err[0] = '\0';
        if (!config_validate(&f.c, f.err, sizeof(f.err)))
            fail_msg("%s=%s passed validation", cases[i].env, cases[i].value);
        assert_contains(f.err, cases[i].want1);
        assert_contains(f.err, cases[i].want2);
    }
}

static void test_validate_gc_interval(void **state)
{
    (void)state;
    struct fixture f;
    reset_env(NULL);
    assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
    assert_true(f.c.gc_interval_ns == 600 * 1000000000LL); /* 10m, as GC_INTERVAL_MS */
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), 0);
    assert_int_equal(PARSE(&f, "-gc-interval", "500ms"), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), -1);
    assert_contains(f.err, "-gc-interval");
    assert_int_equal(PARSE(&f, "-gc-interval", "1s"), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), 0);
}

static void test_validate_loop_nice(void **state)
{
    (void)state;
    struct fixture f;
    reset_env(NULL);
    assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
    assert_int_equal(f.c.loop_nice, PRIO_LOOP_NICE_DEFAULT);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), 0);
    assert_int_equal(PARSE(&f, "-loop-nice", "-21"), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), -1);
    assert_contains(f.err, "-loop-nice: -21 is not a nice value");
    assert_int_equal(PARSE(&f, "-loop-nice", "20"), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), -1);
    assert_contains(f.err, "-loop-nice: 20");
    assert_int_equal(PARSE(&f, "-loop-nice", "-20"), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), 0);
    assert_int_equal(PARSE(&f, "-loop-nice", "19"), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), 0);
    assert_int_equal(PARSE(&f, "-loop-nice", "0"), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), 0);
    assert_int_equal(f.c.loop_nice, 0);
}

static void test_validate_tls(void **state)
{
    (void)state;
    struct fixture f;
    /* Cipher suites with TLS 1.3: refused, naming the setting. */
    setenv("TLS_MIN_VERSION", "VersionTLS13", 1);
    setenv("TLS_CIPHER_SUITES", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 1);
    assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), -1);
    assert_contains(f.err, "TLS_CIPHER_SUITES");
    assert_contains(f.err, "VersionTLS13");
    /* With TLS 1.2 or no minimum they are fine. */
    setenv("TLS_MIN_VERSION", "VersionTLS12", 1);
    assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), 0);
    unsetenv("TLS_MIN_VERSION");
    assert_int_equal(PARSE0(&f), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), 0);
}

static void test_validate_flags(void **state)
{
    (void)state;
    struct fixture f;
    assert_int_equal(PARSE(&f, "-vxlan-min-id", "0"), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), -1);
    assert_contains(f.err, "vxlan-min-id");
    assert_int_equal(PARSE(&f, "-vxlan-min-id", "16777216"), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), -1);
    assert_contains(f.err, "vxlan-min-id");
    assert_int_equal(PARSE(&f, "-vxlan-min-id", "16777215", "-vxlan-port", "65535"), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), 0);
    assert_int_equal(PARSE(&f, "-tunnel-type", "VXLAN"), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), -1);
    assert_contains(f.err, "unknown tunnel type");
    /* Socket path must fit sun_path (108 bytes including the NUL). */
    static char sock107[108], sock108[109];
    sock107[0] = sock108[0] = '/';
    memset(sock107 + 1, 's', 106);
    memset(sock108 + 1, 's', 107);
    char *a1[] = {"-socket", sock107};
    assert_int_equal(parse_argv(&f, 2, a1), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), 0);
    char *a2[] = {"-socket", sock108};
    assert_int_equal(parse_argv(&f, 2, a2), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), -1);
    assert_contains(f.err, "REMOTE_HYPERVISOR_ENDPOINT");
    assert_int_equal(PARSE(&f, "-socket", ""), CONFIG_PARSE_OK);
    assert_int_equal(config_validate(&f.c, f.err, sizeof(f.err)), -1);
    assert_contains(f.err, "socket");
}

/* ---- the registry itself ------------------------------------------------------------ */

static void test_registry(void **state)
{
    (void)state;
    struct config_registry r = {0};
    const char *s = NULL;
    int64_t n = 0, d = 0;
    bool b = true;
    assert_int_equal(config_registry_add(&r, "data-dir", "TEST_DATA_DIR", CONFIG_STRING, "/opt", "dir", &s), 0);
    assert_int_equal(config_registry_add(&r, "count", "TEST_COUNT", CONFIG_INT, "3", "n", &n), 0);
    assert_int_equal(config_registry_add(&r, "wait", "TEST_WAIT", CONFIG_DURATION, "1m30s", "w", &d), 0);
    assert_int_equal(config_registry_add(&r, "on", NULL, CONFIG_BOOL, "false", "b", &b), 0);
    assert_int_equal(config_registry_add(&r, "count", NULL, CONFIG_INT, "4", "dup", &n), -1);
    assert_int_equal(r.n, 4);
    /* Growth beyond the initial capacity keeps earlier entries. */
    static int64_t many[70];
    static char names[70][16];
    for (int i = 0; i < 70; i++) {
        snprintf(names[i], sizeof(names[i]), "opt-%d", i);
        assert_int_equal(config_registry_add(&r, names[i], NULL, CONFIG_INT, "0", "", &many[i]), 0);
    }
    assert_non_null(config_registry_find(&r, "data-dir"));
    assert_non_null(config_registry_find(&r, "opt-69"));
    assert_null(config_registry_find(&r, "opt-70"));
    assert_string_equal(config_registry_find(&r, "count")->env, "TEST_COUNT");

    char err[256];
    unsetenv("TEST_DATA_DIR");
    setenv("TEST_COUNT", "12", 1);
    setenv("TEST_WAIT", "2s", 1);
    char *argv[] = {"-opt-69", "9", "-on"};
    assert_int_equal(config_registry_parse(&r, 3, argv, err, sizeof(err)), CONFIG_PARSE_OK);
    assert_string_equal(s, "/opt");
    assert_true(n == 12);
    assert_true(d == 2 * NS_PER_S);
    assert_true(b);
    assert_true(many[69] == 9);
    unsetenv("TEST_COUNT");
    unsetenv("TEST_WAIT");

    /* Usage names flags, kinds, defaults and env vars. */
    char *text = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&text, &len);
    assert_non_null(mf);
    config_registry_usage(&r, mf);
    fclose(mf);
    assert_contains(text, "-data-dir string");
    assert_contains(text, "(default /opt)");
    assert_contains(text, "[env TEST_DATA_DIR]");
    assert_contains(text, "-count int");
    assert_contains(text, "-wait duration");
    assert_contains(text, "(default 1m30s)");
    free(text);
    config_registry_free(&r);
    assert_null(r.opts);
    assert_int_equal(r.n, 0);

    /* An invalid built-in default is reported, naming the flag. */
    struct config_registry r2 = {0};
    assert_int_equal(config_registry_add(&r2, "bad", NULL, CONFIG_DURATION, "300", "x", &d), 0);
    assert_int_equal(config_registry_parse(&r2, 0, NULL, err, sizeof(err)), CONFIG_PARSE_ERROR);
    assert_contains(err, "-bad");
    config_registry_free(&r2);
}

static void test_common_usage(void **state)
{
    (void)state;
    struct config_registry r = {0};
    struct config c;
    assert_int_equal(config_register_common(&r, &c), 0);
    /* Registering twice into the same registry fails (duplicate names). */
    struct config c2;
    assert_int_equal(config_register_common(&r, &c2), -1);
    char *text = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&text, &len);
    assert_non_null(mf);
    config_registry_usage(&r, mf);
    fclose(mf);
    assert_contains(text, "-socket string");
    assert_contains(text, "(default /run/peerpod/hypervisor.sock)");
    assert_contains(text, "[env REMOTE_HYPERVISOR_ENDPOINT]");
    assert_contains(text, "-proxy-timeout duration");
    assert_contains(text, "(default 5m)");
    assert_contains(text, "-vxlan-min-id int");
    assert_contains(text, "-peerpods-limit-per-node int");
    free(text);
    config_registry_free(&r);
}

static void test_log_level_parse(void **state)
{
    (void)state;
    assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
    assert_int_equal(log_level_parse("DEBUG"), LOG_DEBUG);
    assert_int_equal(log_level_parse("info"), LOG_INFO);
    assert_int_equal(log_level_parse("Info"), LOG_INFO);
    assert_int_equal(log_level_parse("warn"), LOG_WARN);
    assert_int_equal(log_level_parse("warning"), LOG_WARN);
    assert_int_equal(log_level_parse("WARNING"), LOG_WARN);
    assert_int_equal(log_level_parse("error"), LOG_ERROR);
    assert_int_equal(log_level_parse("ERROR"), LOG_ERROR);
    assert_int_equal(log_level_parse(""), -1);
    assert_int_equal(log_level_parse("trace"), -1);
    assert_int_equal(log_level_parse("err"), -1);
    assert_int_equal(log_level_parse("info "), -1);
    assert_int_equal(log_level_parse("fatal"), -1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup(fn, reset_env)
    const struct CMUnitTest tests[] = {
        T(test_duration_valid),
        T(test_duration_invalid),
        T(test_duration_overflow_sum),
        T(test_defaults),
        T(test_env_replaces_default),
        T(test_env_empty_ignored),
        T(test_flag_overrides_env),
        T(test_flag_forms),
        T(test_flag_termination),
        T(test_flag_errors),
        T(test_flag_help),
        T(test_env_bool),
        T(test_env_invalid),
        T(test_validate),
        T(test_validate_gc_interval),
        T(test_validate_loop_nice),
        T(test_validate_tls),
        T(test_validate_flags),
        T(test_registry),
        T(test_common_usage),
        T(test_log_level_parse),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
