/* Unit tests for adaptor/prio: the loop thread gets the nice value asked for, the thread pool
 * started first keeps the process's own, and a refusal is reported with the fix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <linux/capability.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "prio.h"
#include "provider.h"

const struct provider_ops *const provider_table[] = {NULL};

struct pool_seen {
    int nice;
};

static void read_nice(uv_work_t *req)
{
    ((struct pool_seen *)req->data)->nice = prio_thread_nice();
}

static void read_nice_done(uv_work_t *req, int status)
{
    (void)req;
    assert_int_equal(status, 0);
}

static void test_zero_is_noop(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    int before = prio_thread_nice();
    char msg[256] = "";
    assert_int_equal(prio_loop_raise(&loop, 0, msg, sizeof(msg)), 0);
    assert_int_equal(prio_thread_nice(), before);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0); /* nothing was queued */
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_raise(void **state)
{
    (void)state;
    int before = prio_thread_nice();
    if (geteuid() != 0 || before != 0)
        skip(); /* needs CAP_SYS_NICE and a thread at the default priority */
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char msg[256] = "";
    assert_int_equal(prio_loop_raise(&loop, -7, msg, sizeof(msg)), 0);
    assert_int_equal(prio_thread_nice(), -7);
    /* Pool threads were made before the raise: their work runs at the old priority. */
    struct pool_seen seen = {.nice = 99};
    uv_work_t req = {.data = &seen};
    assert_int_equal(uv_queue_work(&loop, &req, read_nice, read_nice_done), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(seen.nice, before);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(setpriority(PRIO_PROCESS, (id_t)gettid(), before), 0);
}

/* Clears or restores CAP_SYS_NICE in this thread's effective set (it stays permitted). */
static int cap_sys_nice_set(int on)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d))
        return -1;
    if (on)
        d[0].effective |= 1u << CAP_SYS_NICE;
    else
        d[0].effective &= ~(1u << CAP_SYS_NICE);
    return (int)syscall(SYS_capset, &h, d);
}

static void test_refused(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NICE, &rl), 0);
    if (rl.rlim_cur > 20 || prio_thread_nice() != 0)
        skip(); /* RLIMIT_NICE allows the raise: nothing to refuse */
    int root = geteuid() == 0;
    if (root)
        assert_int_equal(cap_sys_nice_set(0), 0); /* root as a DaemonSet without CAP_SYS_NICE */
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char msg[256] = "";
    int rc = prio_loop_raise(&loop, -20, msg, sizeof(msg));
    int nice = prio_thread_nice();
    if (root)
        assert_int_equal(cap_sys_nice_set(1), 0);
    assert_int_equal(rc, -1);
    assert_int_equal(nice, 0);
    assert_non_null(strstr(msg, "nice value to -20"));
    assert_non_null(strstr(msg, "CAP_SYS_NICE"));
    assert_non_null(strstr(msg, "-loop-nice 0"));
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_is_noop),
        cmocka_unit_test(test_raise),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
