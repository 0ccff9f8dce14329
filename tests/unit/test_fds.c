/* Unit tests for adaptor/fds: how many descriptor slots a pod limit asks for, and that
 * fds_prepare raises the soft limit and leaves the table grown (FDSize in /proc). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "fds.h"
#include "provider.h"

const struct provider_ops *const provider_table[] = {NULL};

static void test_expected(void **state)
{
    (void)state;
    assert_int_equal(fds_expected(0), FDS_BASE);
    assert_int_equal(fds_expected(10), FDS_BASE + 10 * FDS_PER_POD); /* the default limit */
    assert_int_equal(fds_expected(1000), FDS_BASE + 1000 * FDS_PER_POD);
    assert_int_equal(fds_expected(-1), FDS_UNLIMITED);
    assert_int_equal(fds_expected(INT64_MAX), FDS_MAX);
    assert_int_equal(fds_expected((FDS_MAX - FDS_BASE) / FDS_PER_POD + 1), FDS_MAX);
}

/* The slots the kernel has allocated for this process's descriptors. */
static long fd_table_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    long n = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "FDSize: %ld", &n) == 1)
            break;
    fclose(f);
    return n;
}

static void test_prepare(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 4096)
        skip(); /* the table can only grow to the hard limit */
    if (rl.rlim_cur > 1024) { /* start from a login-like soft limit, as a shell gives */
        struct rlimit low = {1024, rl.rlim_max};
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    }
    long before = fd_table_size();
    assert_true(before > 0);
    if (before >= 4096)
        skip(); /* valgrind keeps its own descriptors at the top of the table: nothing to show */
    char msg[256] = "";
    assert_int_equal(fds_prepare(4096, msg, sizeof(msg)), 0);
    assert_true(fd_table_size() >= 4096);
    struct rlimit now;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
    assert_true(now.rlim_cur == rl.rlim_max);
    /* Nothing stays open: the next descriptor is a low one again. */
    FILE *f = fopen("/dev/null", "r");
    assert_non_null(f);
    assert_true(fileno(f) < 64);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expected),
        cmocka_unit_test(test_prepare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
