/* Unit tests for adaptor/httpreq: the probe server's request-head parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "httpreq.h"
#include "provider.h"

const struct provider_ops *const provider_table[] = {NULL};

static enum httpreq_result parse(const char *s, struct httpreq *r, size_t *used)
{
    return httpreq_parse(s, strlen(s), r, used);
}

static void test_probe_requests(void **state)
{
    (void)state;
    struct httpreq r;
    size_t used = 0;
    /* What kubelet's HTTP probe sends. */
    const char *k = "GET /startup HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: kube-probe/1.29\r\n"
                    "Accept: */*\r\nConnection: close\r\n\r\n";
    assert_int_equal(parse(k, &r, &used), HTTPREQ_OK);
    assert_int_equal(used, strlen(k));
    assert_int_equal(r.method_len, 3);
    assert_memory_equal(r.method, "GET", 3);
    assert_int_equal(r.path_len, 8);
    assert_memory_equal(r.path, "/startup", 8);
    assert_int_equal(r.minor, 1);
    /* Prometheus: a query string is not part of the path; bare LF lines are accepted. */
    const char *p = "HEAD /metrics?x=1 HTTP/1.0\nAccept: text/plain\n\nextra";
    assert_int_equal(parse(p, &r, &used), HTTPREQ_OK);
    assert_int_equal(used, strlen(p) - 5);
    assert_int_equal(r.path_len, 8);
    assert_memory_equal(r.path, "/metrics", 8);
    assert_int_equal(r.minor, 0);
}

static void test_partial_and_bad(void **state)
{
    (void)state;
    struct httpreq r;
    size_t used;
    const char *full = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    for (size_t n = 0; n < strlen(full); n++) /* every prefix: more, please */
        assert_int_equal(httpreq_parse(full, n, &r, &used), HTTPREQ_PARTIAL);
    const char *bad[] = {
        "GET\r\n\r\n",                         /* no target */
        "GET healthz HTTP/1.1\r\n\r\n",        /* not origin-form */
        "GET /x HTTP/2.0\r\n\r\n",             /* not 1.x */
        "GET /x HTTP/1.1 extra\r\n\r\n",       /* trailing junk */
        "G(T /x HTTP/1.1\r\n\r\n",             /* not a token */
        "GET /x HTTP/1.1\r\nNo colon\r\n\r\n", /* header without a colon */
        "GET /x HTTP/1.1\r\n folded: v\r\n\r\n",
        "GET /x HTTP/1.1\r\nA: b\x01\r\n\r\n", /* control character */
        "GET /\x7f HTTP/1.1\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01", /* a TLS hello is refused before 8 KiB arrive */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], &r, &used), HTTPREQ_BAD);
}

static void test_too_long(void **state)
{
    (void)state;
    static char big[HTTPREQ_HEAD_MAX + 100];
    memcpy(big, "GET /metrics HTTP/1.1\r\n", 23);
    for (size_t i = 23; i < sizeof(big); i += 10)
        memcpy(big + i, "X-Pad: ab\n", sizeof(big) - i < 10 ? sizeof(big) - i : 10);
    struct httpreq r;
    size_t used;
    assert_int_equal(httpreq_parse(big, sizeof(big), &r, &used), HTTPREQ_TOO_LONG);
    assert_int_equal(httpreq_parse(big, HTTPREQ_HEAD_MAX - 1, &r, &used), HTTPREQ_PARTIAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_requests),
        cmocka_unit_test(test_partial_and_bad),
        cmocka_unit_test(test_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
