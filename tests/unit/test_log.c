/* Unit tests for adaptor/log's field values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "log.h"
#include "provider.h"

const struct provider_ops *const provider_table[] = {NULL};

static void test_value(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(log_value(b, sizeof(b), "podvm-web-0-1234abcd"), "podvm-web-0-1234abcd");
    assert_string_equal(log_value(b, sizeof(b), "/var/run/netns/cni-1"), "/var/run/netns/cni-1");
    /* Anything that could be mistaken for another field, or is empty, is quoted. */
    assert_string_equal(log_value(b, sizeof(b), ""), "\"\"");
    assert_string_equal(log_value(b, sizeof(b), "timed out"), "\"timed out\"");
    assert_string_equal(log_value(b, sizeof(b), "a=b"), "\"a=b\"");
    assert_string_equal(log_value(b, sizeof(b), "say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
    assert_string_equal(log_value(b, sizeof(b), "tab\there"), "\"tab\there\"");
    /* Cut to fit, still quoted. */
    char s[8];
    assert_string_equal(log_value(s, sizeof(s), "a b c d e f"), "\"a b c\"");
    assert_string_equal(log_value(s, sizeof(s), "abcdefghij"), "abcdefg");
    char t[2];
    assert_string_equal(log_value(t, sizeof(t), "a b"), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
