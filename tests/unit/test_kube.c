/* Unit tests for adaptor/kube's pure helpers: API URLs and path escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "kube.h"
#include "provider.h"

const struct provider_ops *const provider_table[] = {NULL};

static void test_url(void **state)
{
    (void)state;
    char u[64];
    assert_int_equal(kube_url(u, sizeof(u), "10.96.0.1", "443", "/api/v1/nodes/n"), 0);
    assert_string_equal(u, "https://10.96.0.1:443/api/v1/nodes/n");
    /* IPv6 service addresses are bracketed, as net.JoinHostPort does. */
    assert_int_equal(kube_url(u, sizeof(u), "fd00::1", "6443", ""), 0);
    assert_string_equal(u, "https://[fd00::1]:6443");
    assert_int_equal(kube_url(u, 16, "10.96.0.1", "443", "/api"), -1);
}

static void test_escape(void **state)
{
    (void)state;
    char out[32];
    size_t len = 0;
    assert_int_equal(kube_escape(out, sizeof(out), &len, "web-0.a_b~"), 0);
    assert_string_equal(out, "web-0.a_b~");
    /* A name is one path segment: '/', '?', '%' and '=' never reach the URL raw. */
    len = 0;
    assert_int_equal(kube_escape(out, sizeof(out), &len, "a/b?c=%"), 0);
    assert_string_equal(out, "a%2Fb%3Fc%3D%25");
    len = 0;
    assert_int_equal(kube_escape(out, sizeof(out), &len, "\xff "), 0);
    assert_string_equal(out, "%FF%20");
    /* Full: refused, never cut. */
    char small[4];
    len = 0;
    assert_int_equal(kube_escape(small, sizeof(small), &len, "a/"), -1);
    len = 0;
    assert_int_equal(kube_escape(small, sizeof(small), &len, "abc"), 0);
    assert_string_equal(small, "abc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
