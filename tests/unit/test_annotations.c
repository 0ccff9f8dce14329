/* Unit tests for adaptor/annotations.c: CreateVM annotation parsing (§2.3, §2.4 2-4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "annotations.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static bool spec_is_zero(const struct pod_spec *ps)
{
    static const struct pod_spec zero;
    return memcmp(ps, &zero, sizeof(zero)) == 0;
}

/* What the Go kata runtime sends: all nine keys, defaults "" / "0". */
static void test_containerd_form(void **state)
{
    const struct annotation a[] = {
        { ANNOTATION_SANDBOX_NAME, "nginx-866fdb5bfb-b98nw" },
        { ANNOTATION_SANDBOX_NAMESPACE, "default" },
        { ANNOTATION_MACHINE_TYPE, "Standard_DC4as_v5" },
        { ANNOTATION_IMAGE, "/subscriptions/x/images/podvm" },
        { ANNOTATION_VCPUS, "2" },
        { ANNOTATION_MEMORY, "4096" },
        { ANNOTATION_INITDATA, "algorithm = \"sha256\"\nversion = \"0.1.0\"\n" },
        { ANNOTATION_GPUS, "0" },
        { ANNOTATION_GPU_MODEL, "" },
    };
    struct pod_spec ps;
    char err[256];

    (void)state;
    assert_int_equal(pod_spec_parse(&ps, a, ARRAY_LEN(a), err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_string_equal(ps.pod_name, "nginx-866fdb5bfb-b98nw");
    assert_string_equal(ps.pod_namespace, "default");
    assert_string_equal(ps.machine_type, "Standard_DC4as_v5");
    assert_string_equal(ps.image, "/subscriptions/x/images/podvm");
    assert_string_equal(ps.gpu_model, "");
    assert_string_equal(ps.initdata, "algorithm = \"sha256\"\nversion = \"0.1.0\"\n");
    assert_int_equal(ps.vcpus, 2);
    assert_int_equal(ps.memory_mib, 4096);
    assert_int_equal(ps.gpus, 0);
    assert_true(ps.gpus_annotated); /* "0" still counts as annotated */
    pod_spec_free(&ps);
    assert_true(spec_is_zero(&ps));
    pod_spec_free(&ps); /* idempotent */
}

/* Only the two required keys: everything else defaults, strings are "" not NULL. */
static void test_minimal(void **state)
{
    const struct annotation a[] = {
        { ANNOTATION_SANDBOX_NAMESPACE, "ns" },
        { "unrelated.key", "x" },
        { NULL, "ignored" },
        { ANNOTATION_SANDBOX_NAME, "pod" },
    };
    struct pod_spec ps;

    (void)state;
    assert_int_equal(pod_spec_parse(&ps, a, ARRAY_LEN(a), NULL, 0), 0);
    assert_string_equal(ps.pod_name, "pod");
    assert_string_equal(ps.pod_namespace, "ns");
    assert_string_equal(ps.machine_type, "");
    assert_string_equal(ps.image, "");
    assert_string_equal(ps.gpu_model, "");
    assert_string_equal(ps.initdata, "");
    assert_int_equal(ps.vcpus, 0);
    assert_int_equal(ps.memory_mib, 0);
    assert_int_equal(ps.gpus, 0);
    assert_false(ps.gpus_annotated);
    pod_spec_free(&ps);
}

struct name_case {
    const char *value;
    const char *want; /* NULL: missing-name error */
};

static const struct name_case name_cases[] = {
    { "nginx", "nginx" },
    { "k8s_nginx_default_0c1d5a7e-1111-2222-3333-444455556666_0", "nginx" }, /* CRI-O */
    { "k8s_nginx", "nginx" },
    { "my_pod_name", "my_pod_name" }, /* only a "k8s" first part triggers the split */
    { "K8S_nginx_ns", "K8S_nginx_ns" },
    { "k8sx_nginx", "k8sx_nginx" },
    { "k8s", "k8s" }, /* one part: no split */
    { "k8s_", NULL },
    { "k8s__ns_uid_0", NULL },
    { "", NULL },
    { NULL, NULL }, /* key absent */
};

static void test_pod_name_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(name_cases); i++) {
        const struct name_case *c = &name_cases[i];
        struct annotation a[2] = {
            { ANNOTATION_SANDBOX_NAMESPACE, "ns" },
            { ANNOTATION_SANDBOX_NAME, c->value },
        };
        struct pod_spec ps;
        char err[256];
        int rc = pod_spec_parse(&ps, a, c->value ? 2 : 1, err, sizeof(err));

        if (c->want) {
            if (rc != 0 || strcmp(ps.pod_name, c->want) != 0)
                fail_msg("name case %zu: rc %d err \"%s\"", i, rc, err);
            pod_spec_free(&ps);
        } else {
            if (rc != -1 ||
                strcmp(err, "pod name io.kubernetes.cri.sandbox-name is missing in annotations") !=
                    0 ||
                !spec_is_zero(&ps))
                fail_msg("name case %zu: rc %d err \"%s\"", i, rc, err);
        }
    }
}

static void test_missing_namespace(void **state)
{
    const struct annotation a[] = {
        { ANNOTATION_SANDBOX_NAME, "pod" },
        { ANNOTATION_SANDBOX_NAMESPACE, "" },
        { ANNOTATION_MACHINE_TYPE, "big" },
    };
    struct pod_spec ps;
    char err[256];

    (void)state;
    memset(&ps, 0xa5, sizeof(ps));
    assert_int_equal(pod_spec_parse(&ps, a, ARRAY_LEN(a), err, sizeof(err)), -1);
    assert_string_equal(err,
                        "namespace name io.kubernetes.cri.sandbox-namespace is missing in annotations");
    assert_true(spec_is_zero(&ps));
    /* absent key, and no annotations at all (name is checked first) */
    assert_int_equal(pod_spec_parse(&ps, a, 1, err, sizeof(err)), -1);
    assert_string_equal(err,
                        "namespace name io.kubernetes.cri.sandbox-namespace is missing in annotations");
    assert_int_equal(pod_spec_parse(&ps, NULL, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "pod name io.kubernetes.cri.sandbox-name is missing in annotations");
    /* truncated error buffer */
    assert_int_equal(pod_spec_parse(&ps, NULL, 0, err, 9), -1);
    assert_string_equal(err, "pod name");
}

/* Names that XML, YAML and cloud tags cannot carry are refused; UTF-8 letters pass. */
static void test_unprintable_names(void **state)
{
    static const struct {
        const char *name, *ns;
        int want;
    } cases[] = {
        { "ns/po\x01d", "default", -1 },
        { "pod", "de\rfault", -1 },
        { "pod\x7f", "default", -1 },
        { "pod\xc3", "default", -1 },         /* truncated sequence */
        { "pod\xc0\xaf", "default", -1 },     /* overlong */
        { "pod\xf5\x80\x80\x80", "default", -1 }, /* beyond U+10FFFF */
        { "p\xc3\xa4" "d", "d\xe2\x82\xac" "f", 0 },
        { "k8s_web-0_prod_uid_0", "prod", 0 },
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const struct annotation a[] = {
            { ANNOTATION_SANDBOX_NAME, cases[i].name },
            { ANNOTATION_SANDBOX_NAMESPACE, cases[i].ns },
        };
        struct pod_spec ps;
        char err[256];
        int rc = pod_spec_parse(&ps, a, ARRAY_LEN(a), err, sizeof(err));
        if (rc != cases[i].want)
            fail_msg("case %zu: rc %d, want %d (%s)", i, rc, cases[i].want, err);
        if (rc == 0)
            pod_spec_free(&ps);
        else
            assert_non_null(strstr(err, "control characters or invalid UTF-8"));
    }
}

struct number_case {
    const char *value; /* NULL: key absent */
    uint32_t want;
};

static const struct number_case number_cases[] = {
    { NULL, 0 },
    { "", 0 },
    { "0", 0 },
    { "1", 1 },
    { "4096", 4096 },
    { "+3", 3 },
    { "007", 7 },
    { "abc", 0 },
    { "12abc", 0 },
    { " 2", 0 },
    { "2 ", 0 },
    { "-1", 0 },
    { "-0.5", 0 },
    { "1.5", 2 },  /* runtime-rs f32: round up */
    { "1.0", 1 },
    { "2.000", 2 },
    { "0.1", 1 },
    { "1.", 0 },
    { ".5", 0 },
    { "1.5.2", 0 },
    { "1e3", 0 },
    { "0x10", 0 },
    { "4294967295", 4294967295u },
    { "4294967296", 4294967295u },
    { "99999999999", 4294967295u },
    { "99999999999999999999999999", 4294967295u }, /* beyond int64 too */
    { "4294967295.5", 4294967295u },
    { "4294967294.5", 4294967295u },
};

/* Each of vcpus, memory and gpus goes through the same parser. */
static void test_numbers_table(void **state)
{
    static const char *const keys[] = { ANNOTATION_VCPUS, ANNOTATION_MEMORY, ANNOTATION_GPUS };

    (void)state;
    for (size_t k = 0; k < ARRAY_LEN(keys); k++) {
        for (size_t i = 0; i < ARRAY_LEN(number_cases); i++) {
            const struct number_case *c = &number_cases[i];
            struct annotation a[3] = {
                { ANNOTATION_SANDBOX_NAME, "p" },
                { ANNOTATION_SANDBOX_NAMESPACE, "n" },
                { keys[k], c->value },
            };
            struct pod_spec ps;
            uint32_t got;

            assert_int_equal(pod_spec_parse(&ps, a, c->value ? 3 : 2, NULL, 0), 0);
            got = k == 0 ? ps.vcpus : k == 1 ? ps.memory_mib : ps.gpus;
            if (got != c->want)
                fail_msg("%s=\"%s\": got %u want %u", keys[k], c->value ? c->value : "(absent)",
                         got, c->want);
            pod_spec_free(&ps);
        }
    }
}

struct gpu_flag_case {
    const char *value; /* NULL: key absent */
    uint32_t gpus;
    bool annotated;
};

static const struct gpu_flag_case gpu_flag_cases[] = {
    { NULL, 0, false }, { "", 0, false }, { "0", 0, true },
    { "2", 2, true },   { "abc", 0, true },
};

static void test_gpus_annotated(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(gpu_flag_cases); i++) {
        const struct gpu_flag_case *c = &gpu_flag_cases[i];
        struct annotation a[3] = {
            { ANNOTATION_SANDBOX_NAME, "p" },
            { ANNOTATION_SANDBOX_NAMESPACE, "n" },
            { ANNOTATION_GPUS, c->value },
        };
        struct pod_spec ps;

        assert_int_equal(pod_spec_parse(&ps, a, c->value ? 3 : 2, NULL, 0), 0);
        if (ps.gpus != c->gpus || ps.gpus_annotated != c->annotated)
            fail_msg("gpus case %zu: gpus %u annotated %d", i, ps.gpus, ps.gpus_annotated);
        pod_spec_free(&ps);
    }
}

struct initdata_case {
    const char *hyp, *rt; /* NULL: key absent */
    const char *want;
};

static const struct initdata_case initdata_cases[] = {
    { NULL, NULL, "" },
    { "", "", "" },
    { "H", NULL, "H" },
    { "H", "R", "H" },
    { NULL, "R", "R" },
    { "", "R", "R" }, /* the Go runtime always sends the hypervisor key, often empty */
};

static void test_initdata_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(initdata_cases); i++) {
        const struct initdata_case *c = &initdata_cases[i];
        struct annotation a[4] = {
            { ANNOTATION_SANDBOX_NAME, "p" },
            { ANNOTATION_SANDBOX_NAMESPACE, "n" },
        };
        size_t n = 2;
        struct pod_spec ps;

        if (c->rt)
            a[n++] = (struct annotation){ ANNOTATION_INITDATA_RUNTIME, c->rt };
        if (c->hyp)
            a[n++] = (struct annotation){ ANNOTATION_INITDATA, c->hyp };
        assert_int_equal(pod_spec_parse(&ps, a, n, NULL, 0), 0);
        if (strcmp(ps.initdata, c->want) != 0)
            fail_msg("initdata case %zu: got \"%s\"", i, ps.initdata);
        pod_spec_free(&ps);
    }
}

static void test_duplicates_last_wins(void **state)
{
    const struct annotation a[] = {
        { ANNOTATION_SANDBOX_NAME, "" },
        { ANNOTATION_SANDBOX_NAMESPACE, "ns1" },
        { ANNOTATION_VCPUS, "2" },
        { ANNOTATION_GPUS, "1" },
        { ANNOTATION_SANDBOX_NAME, "pod2" },
        { ANNOTATION_SANDBOX_NAMESPACE, "ns2" },
        { ANNOTATION_VCPUS, "4" },
        { ANNOTATION_GPUS, "" },
        { ANNOTATION_IMAGE, NULL }, /* NULL value counts as "" */
    };
    struct pod_spec ps;

    (void)state;
    assert_int_equal(pod_spec_parse(&ps, a, ARRAY_LEN(a), NULL, 0), 0);
    assert_string_equal(ps.pod_name, "pod2");
    assert_string_equal(ps.pod_namespace, "ns2");
    assert_int_equal(ps.vcpus, 4);
    assert_int_equal(ps.gpus, 0);
    assert_false(ps.gpus_annotated);
    assert_string_equal(ps.image, "");
    pod_spec_free(&ps);

    /* a later empty name overrides an earlier good one */
    assert_int_equal(pod_spec_parse(&ps, a + 4, 1, NULL, 0), -1);
    {
        const struct annotation b[] = {
            { ANNOTATION_SANDBOX_NAMESPACE, "ns" },
            { ANNOTATION_SANDBOX_NAME, "pod" },
            { ANNOTATION_SANDBOX_NAME, "" },
        };
        assert_int_equal(pod_spec_parse(&ps, b, ARRAY_LEN(b), NULL, 0), -1);
        assert_true(spec_is_zero(&ps));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_containerd_form),
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_pod_name_table),
        cmocka_unit_test(test_missing_namespace),
        cmocka_unit_test(test_unprintable_names),
        cmocka_unit_test(test_numbers_table),
        cmocka_unit_test(test_gpus_annotated),
        cmocka_unit_test(test_initdata_table),
        cmocka_unit_test(test_duplicates_last_wins),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
