/* Unit tests for providers/instance.c: VM names (§5.1), instance-type selection (§5.2,
 * DECISIONS 20) and allow-list parsing. Expected names were cross-checked against Go's
 * strings.ToLower + regexp semantics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "instance.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- names ------------------------------------------------------------------------ */

struct name_case {
    const char *pod, *id;
    size_t max;
    const char *want;
};

#define E10 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
#define D10 "----------"

static const char long_pod[] =
    "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789"
    "abcdefghijklmnopqrstuvwxyz01"; /* 100 chars */

static const struct name_case name_cases[] = {
    { "nginx-866fdb5bfb-b98nw", "7a0d0584b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0",
      63, "podvm-nginx-866fdb5bfb-b98nw-7a0d0584" },
    { "NGINX-Web", "7A0D0584FFFF", 63, "podvm-nginx-web-7a0d0584" },
    { "my_pod.v1", "ab_cd.ef12345", 63, "podvm-my-pod-v1-ab-cd-ef" },
    /* é is 2 bytes, 日 and 本 3 bytes each: one '-' per code point */
    { "caf\xc3\xa9-\xe6\x97\xa5\xe6\x9c\xac", "12345678", 63, "podvm-caf-----12345678" },
    /* 4-byte emoji is one code point */
    { "\xf0\x9f\x98\x80pod", "1234567890", 63, "podvm--pod-12345678" },
    /* invalid bytes count one each; a truncated sequence is two invalid bytes */
    { "a\xff" "b\xe2\x82", "x", 63, "podvm-a-b---x" },
    /* overlong '/' and a UTF-16 surrogate are invalid byte by byte */
    { "\xc0\xaf", "\xed\xa0\x80", 63, "podvm-" "--" "-" "---" },
    /* the only non-ASCII code points Go lower-cases into [a-z] */
    { "\xc4\xb0\xe2\x84\xaa", "abc", 63, "podvm-ik-abc" },
    { "", "7a0d0584", 63, "podvm--7a0d0584" },
    { "pod", "", 63, "podvm-pod-" },
    { "pod", "ab", 63, "podvm-pod-ab" },
    { NULL, NULL, 63, "podvm--" },
    /* 48 chars is the longest pod part kept whole at max 63 */
    { "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijkl", "0123456789", 63,
      "podvm-abcdefghijklmnopqrstuvwxyz0123456789abcdefghijkl-01234567" },
    { long_pod, "7a0d0584ffff", 63,
      "podvm-abcdefghijklmnopqrstuvwxyz0123456789abcdefghijkl-7a0d0584" },
    { long_pod, "7a0d0584ffff", 47, "podvm-abcdefghijklmnopqrstuvwxyz012345-7a0d0584" },
    /* truncation counts sanitized chars, not UTF-8 bytes: 40 x U+00E9 -> 32 dashes */
    { E10 E10 E10 E10, "ID", 47, "podvm-" D10 D10 D10 "--" "-id" },
};

static void test_name_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(name_cases); i++) {
        const struct name_case *c = &name_cases[i];
        char out[INSTANCE_NAME_MAX + 1];

        if (instance_name_generate(out, sizeof(out), c->pod, c->id, c->max) != 0 ||
            strcmp(out, c->want) != 0 || strlen(out) > c->max)
            fail_msg("name case %zu: got \"%s\", want \"%s\"", i, out, c->want);
    }
}

static void test_name_truncated_total_is_max(void **state)
{
    char out[INSTANCE_NAME_MAX + 1];

    (void)state;
    assert_int_equal(instance_name_generate(out, sizeof(out), long_pod, "7a0d0584", 63), 0);
    assert_int_equal(strlen(out), 63);
    assert_int_equal(instance_name_generate(out, sizeof(out), long_pod, "7a0d0584", 47), 0);
    assert_int_equal(strlen(out), 47);
}

static void test_name_outlen(void **state)
{
    char out[64];
    const char *want = "podvm-nginx-7a0d0584"; /* 20 chars */

    (void)state;
    assert_int_equal(instance_name_generate(out, 21, "nginx", "7a0d0584", 63), 0);
    assert_string_equal(out, want);
    memset(out, 'x', sizeof(out));
    assert_int_equal(instance_name_generate(out, 20, "nginx", "7a0d0584", 63), -1);
    assert_int_equal(out[0], '\0');
    assert_int_equal(instance_name_generate(out, 0, "nginx", "7a0d0584", 63), -1);
    assert_int_equal(out[0], '\0');
    assert_int_equal(instance_name_generate(NULL, 64, "nginx", "7a0d0584", 63), -1);
}

/* ---- sort ------------------------------------------------------------------------- */

static void test_sort_stable(void **state)
{
    struct instance_type v[] = {
        { "g1", 4, 16384, 1, 0 }, { "b", 2, 8192, 0, 0 }, { "a", 2, 8192, 0, 0 },
        { "c", 4, 8192, 0, 0 },   { "d", 1, 4096, 0, 0 }, { "e", 8, 4096, 0, 0 },
        { "a2", 2, 8192, 0, 0 },  { "g0", 2, 8192, 1, 0 },
    };
    const char *want[] = { "d", "e", "b", "a", "a2", "c", "g0", "g1" };

    (void)state;
    instance_types_sort(v, ARRAY_LEN(v));
    for (size_t i = 0; i < ARRAY_LEN(v); i++)
        assert_string_equal(v[i].name, want[i]);
    instance_types_sort(v, 0);
    instance_types_sort(v, 1);
    assert_string_equal(v[0].name, "d");
}

/* ---- selection -------------------------------------------------------------------- */

struct select_case {
    const char *what;
    const struct instance_type *types;
    size_t n;
    const char *const *allow;
    size_t n_allow;
    const char *dflt, *machine_type;
    uint32_t vcpus, mem, gpus;
    const char *want;     /* NULL: expect an error */
    const char *want_err; /* expected prefix of the error */
};

static const struct instance_type azure_sorted[] = {
    { "Standard_DC2as_v5", 2, 8192, 0, 0 },
    { "Standard_DC4as_v5", 4, 16384, 0, 0 },
    { "Standard_DC8as_v5", 8, 32768, 0, 0 },
};
static const char *const azure_allow[] = { "Standard_DC2as_v5", "Standard_DC4as_v5",
                                           "Standard_DC8as_v5" };

/* providers-azure.md §6: upstream's binary search fails here, linear scan finds (2,4096) */
static const struct instance_type nonmono_sorted[] = {
    { "two-four", 2, 4096, 0, 0 },
    { "one-eight", 1, 8192, 0, 0 },
    { "one-sixteen", 1, 16384, 0, 0 },
};
static const char *const nonmono_allow[] = { "one-eight", "two-four", "one-sixteen" };

static const struct instance_type gpu_sorted[] = {
    { "cpu-big", 64, 262144, 0, 0 },
    { "gpu1-small", 4, 16384, 1, 0 },
    { "gpu1-big", 16, 65536, 1, 0 },
    { "gpu4", 32, 131072, 4, 0 },
};
static const char *const gpu_allow[] = { "cpu-big", "gpu1-small", "gpu1-big", "gpu4" };

/* equal sizes keep allow-list order after the stable sort */
static const struct instance_type tie_sorted[] = {
    { "first", 2, 8192, 0, 0 },
    { "second", 2, 8192, 0, 0 },
};
static const char *const tie_allow[] = { "first", "second" };

#define AZ azure_sorted, ARRAY_LEN(azure_sorted), azure_allow, ARRAY_LEN(azure_allow)
#define HINT_MT "; set the pod annotation io.katacontainers.config.hypervisor.machine_type"

static const struct select_case select_cases[] = {
    { "machine_type allowed", AZ, "Standard_DC2as_v5", "Standard_DC8as_v5", 0, 0, 0,
      "Standard_DC8as_v5", NULL },
    { "machine_type wins over sizes", AZ, "Standard_DC2as_v5", "Standard_DC4as_v5", 8, 32768, 0,
      "Standard_DC4as_v5", NULL },
    { "machine_type not allowed", AZ, "Standard_DC2as_v5", "Standard_D2s_v5", 0, 0, 0, NULL,
      "failed to verify instance type: requested instance type (\"Standard_D2s_v5\") is not "
      "part of supported instance types list" HINT_MT " to one of the allowed sizes" },
    { "machine_type is case-sensitive", AZ, "Standard_DC2as_v5", "standard_dc2as_v5", 0, 0, 0,
      NULL, "failed to verify instance type: requested instance type (\"standard_dc2as_v5\") is "
            "not part of supported instance types list;" },
    { "default not in non-empty list is still used for empty candidate", AZ, "Other_default",
      "", 0, 0, 0, "Other_default", NULL },
    { "default not in non-empty list is refused when requested", AZ, "Other_default",
      "Other_default", 0, 0, 0, NULL,
      "failed to verify instance type: requested instance type (\"Other_default\") is not part "
      "of supported instance types list;" },
    { "empty allow-list, default requested", NULL, 0, NULL, 0, "Standard_DC2as_v5",
      "Standard_DC2as_v5", 0, 0, 0, "Standard_DC2as_v5", NULL },
    { "empty allow-list, nothing requested", NULL, 0, NULL, 0, "Standard_DC2as_v5", NULL, 0, 0,
      0, "Standard_DC2as_v5", NULL },
    { "empty allow-list, other requested", NULL, 0, NULL, 0, "Standard_DC2as_v5",
      "Standard_DC4as_v5", 0, 0, 0, NULL,
      "failed to verify instance type: requested instance type (\"Standard_DC4as_v5\") is not "
      "default (\"Standard_DC2as_v5\") and supported instance types list is empty;" },
    { "quotes escaped like Go %q", NULL, 0, NULL, 0, "d", "a\"b\\c\n\x01\xff", 0, 0, 0, NULL,
      "failed to verify instance type: requested instance type (\"a\\\"b\\\\c\\n\\x01\\xff\") "
      "is not default (\"d\")" },
    { "a huge machine_type is cut, the hint stays", AZ, "Standard_DC2as_v5",
      "Standard_DC2as_v5Standard_DC2as_v5Standard_DC2as_v5Standard_DC2as_v5Standard_DC2as_v5Standard_DC2as_v5"
      "Standard_DC2as_v5Standard_DC2as_v5", 0, 0, 0, NULL,
      "failed to verify instance type: requested instance type (\"Standard_DC2as_v5Standard_DC2as_v5Standard_"
      "DC2as_v5Standard_DC2as_v5Standard_DC2as_v5Standard_DC\"... (136 bytes)) is not part of supported "
      "instance types list" HINT_MT },
    { "vcpu+mem exact fit", AZ, "Standard_DC2as_v5", NULL, 4, 16384, 0, "Standard_DC4as_v5",
      NULL },
    { "vcpu+mem rounds up", AZ, "Standard_DC2as_v5", NULL, 3, 9000, 0, "Standard_DC4as_v5",
      NULL },
    { "vcpu+mem smallest", AZ, "Standard_DC2as_v5", NULL, 1, 1, 0, "Standard_DC2as_v5", NULL },
    { "vcpu bound, memory small", AZ, "Standard_DC2as_v5", NULL, 6, 2048, 0,
      "Standard_DC8as_v5", NULL },
    { "vcpu+mem too big", AZ, "Standard_DC2as_v5", NULL, 16, 4096, 0, NULL,
      "failed to get instance type based on vCPU and memory annotations: no instance type "
      "found for the given vcpus (16) and memory (4096);" },
    { "only vcpus set -> default", AZ, "Standard_DC2as_v5", NULL, 64, 0, 0,
      "Standard_DC2as_v5", NULL },
    { "only memory set -> default", AZ, "Standard_DC2as_v5", NULL, 0, 999999, 0,
      "Standard_DC2as_v5", NULL },
    { "non-monotone list: linear scan finds (2,4096)", nonmono_sorted,
      ARRAY_LEN(nonmono_sorted), nonmono_allow, ARRAY_LEN(nonmono_allow), "one-eight", NULL, 2,
      4096, 0, "two-four", NULL },
    { "non-monotone list: later entry fits", nonmono_sorted, ARRAY_LEN(nonmono_sorted),
      nonmono_allow, ARRAY_LEN(nonmono_allow), "one-eight", NULL, 1, 10000, 0, "one-sixteen",
      NULL },
    { "stable ties: first given wins", tie_sorted, ARRAY_LEN(tie_sorted), tie_allow,
      ARRAY_LEN(tie_allow), "second", NULL, 2, 8192, 0, "first", NULL },
    { "vcpu+mem skips GPU sizes", gpu_sorted, ARRAY_LEN(gpu_sorted), gpu_allow,
      ARRAY_LEN(gpu_allow), "cpu-big", NULL, 2, 2048, 0, "cpu-big", NULL },
    { "vcpu+mem never picks a GPU size", gpu_sorted, ARRAY_LEN(gpu_sorted), gpu_allow,
      ARRAY_LEN(gpu_allow), "cpu-big", NULL, 128, 2048, 0, NULL,
      "failed to get instance type based on vCPU and memory annotations: no instance type "
      "found for the given vcpus (128) and memory (2048)" },
    { "GPU smallest fit", gpu_sorted, ARRAY_LEN(gpu_sorted), gpu_allow, ARRAY_LEN(gpu_allow),
      "cpu-big", NULL, 0, 0, 1, "gpu1-small", NULL },
    { "GPU with vcpus", gpu_sorted, ARRAY_LEN(gpu_sorted), gpu_allow, ARRAY_LEN(gpu_allow),
      "cpu-big", NULL, 8, 0, 1, "gpu1-big", NULL },
    { "GPU count", gpu_sorted, ARRAY_LEN(gpu_sorted), gpu_allow, ARRAY_LEN(gpu_allow),
      "cpu-big", NULL, 2, 4096, 2, "gpu4", NULL },
    { "GPU none fits", gpu_sorted, ARRAY_LEN(gpu_sorted), gpu_allow, ARRAY_LEN(gpu_allow),
      "cpu-big", NULL, 2, 4096, 8, NULL,
      "failed to get instance type based on GPU, vCPU, and memory annotations: no instance "
      "type found for the given GPUs (8), vCPUs (2), and memory (4096);" },
    { "GPU on Azure always fails", AZ, "Standard_DC2as_v5", NULL, 0, 0, 1, NULL,
      "failed to get instance type based on GPU, vCPU, and memory annotations: no instance "
      "type found for the given GPUs (1), vCPUs (0), and memory (0)" },
    { "GPU ignored when machine_type set", AZ, "Standard_DC2as_v5", "Standard_DC4as_v5", 0, 0,
      4, "Standard_DC4as_v5", NULL },
};

static void test_select_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(select_cases); i++) {
        const struct select_case *c = &select_cases[i];
        char out[128], err[512];
        int rc;

        memset(err, 'x', sizeof(err));
        rc = instance_type_select(c->types, c->n, c->allow, c->n_allow, c->dflt,
                                  c->machine_type, c->vcpus, c->mem, c->gpus, out, sizeof(out),
                                  err, sizeof(err));
        if (c->want) {
            if (rc != 0 || strcmp(out, c->want) != 0 || err[0] != '\0')
                fail_msg("select case %zu (%s): rc %d out \"%s\" err \"%.200s\"", i, c->what,
                         rc, out, err);
        } else {
            /* Go's text is an exact prefix and a hint follows it */
            if (rc != -1 || strncmp(err, c->want_err, strlen(c->want_err)) != 0 ||
                strlen(err) <= strlen(c->want_err))
                fail_msg("select case %zu (%s): rc %d err \"%s\"", i, c->what, rc, err);
        }
    }
}

static void test_select_error_truncated(void **state)
{
    char out[64], err[16];

    (void)state;
    assert_int_equal(instance_type_select(NULL, 0, NULL, 0, "d", "other", 0, 0, 0, out,
                                          sizeof(out), err, sizeof(err)),
                     -1);
    assert_int_equal(strlen(err), sizeof(err) - 1);
    assert_string_equal(err, "failed to verif");
    /* tiny and absent error buffers are fine */
    assert_int_equal(instance_type_select(NULL, 0, NULL, 0, "d", "other", 0, 0, 0, out,
                                          sizeof(out), err, 1),
                     -1);
    assert_string_equal(err, "");
    assert_int_equal(instance_type_select(NULL, 0, NULL, 0, "d", "other", 0, 0, 0, out,
                                          sizeof(out), NULL, 0),
                     -1);
}

static void test_select_out_too_small(void **state)
{
    char out[4], err[128];

    (void)state;
    assert_int_equal(instance_type_select(NULL, 0, NULL, 0, "toolong", NULL, 0, 0, 0, out,
                                          sizeof(out), err, sizeof(err)),
                     -1);
    assert_true(err[0] != '\0');
    assert_int_equal(instance_type_select(NULL, 0, NULL, 0, "abc", NULL, 0, 0, 0, out,
                                          sizeof(out), err, sizeof(err)),
                     0);
    assert_string_equal(out, "abc");
}

/* ---- allow-list ------------------------------------------------------------------- */

struct list_case {
    const char *csv;
    size_t n;
    const char *want[4];
};

static const struct list_case list_cases[] = {
    { "Standard_DC2as_v5,Standard_DC4as_v5", 2, { "Standard_DC2as_v5", "Standard_DC4as_v5" } },
    { " a , b\t,c ", 3, { "a", "b", "c" } },
    { "a,,b, ,", 2, { "a", "b" } },
    { "", 0, { NULL } },
    { " , ,", 0, { NULL } },
    { NULL, 0, { NULL } },
    { "single", 1, { "single" } },
    { "x y,z", 2, { "x y", "z" } },
};

static void test_list_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(list_cases); i++) {
        const struct list_case *c = &list_cases[i];
        char **v = (char **)&v; /* must be overwritten */
        size_t n = 99;

        assert_int_equal(instance_list_parse(c->csv, &v, &n), 0);
        assert_int_equal(n, c->n);
        if (n == 0)
            assert_null(v);
        for (size_t j = 0; j < n; j++)
            assert_string_equal(v[j], c->want[j]);
        instance_list_free(v, n);
    }
    instance_list_free(NULL, 0);
}

/* The parsed list plugs straight into selection. */
static void test_list_into_select(void **state)
{
    char **v;
    size_t n;
    char out[64], err[256];

    (void)state;
    assert_int_equal(instance_list_parse("Standard_DC2as_v5, Standard_DC4as_v5", &v, &n), 0);
    assert_int_equal(instance_type_select(azure_sorted, 2, (const char *const *)v, n,
                                          "Standard_DC2as_v5", "Standard_DC4as_v5", 0, 0, 0,
                                          out, sizeof(out), err, sizeof(err)),
                     0);
    assert_string_equal(out, "Standard_DC4as_v5");
    instance_list_free(v, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_table),
        cmocka_unit_test(test_name_truncated_total_is_max),
        cmocka_unit_test(test_name_outlen),
        cmocka_unit_test(test_sort_stable),
        cmocka_unit_test(test_select_table),
        cmocka_unit_test(test_select_error_truncated),
        cmocka_unit_test(test_select_out_too_small),
        cmocka_unit_test(test_list_table),
        cmocka_unit_test(test_list_into_select),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
