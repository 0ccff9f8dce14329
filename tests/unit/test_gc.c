/* Unit test of the orphan GC's decision (adaptor/gc.c); the I/O path runs end to end in the
 * orphan_gc scenario. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "gc.h"

const struct provider_ops *const provider_table[] = {NULL};

static void test_candidate(void **state)
{
    (void)state;
    struct provider_instance in;
    memset(&in, 0, sizeof(in));
    int64_t now = 1780000000;
    /* No marker: never ours to delete. */
    in.created_unix = now - 3600;
    assert_false(gc_candidate(&in, false, now));
    strcpy(in.sandbox_id, "abc");
    assert_true(gc_candidate(&in, false, now));
    /* Known to the store (running, or queued for deletion): not an orphan. */
    assert_false(gc_candidate(&in, true, now));
    /* Within the grace period a create of another daemon instance may own it. */
    in.created_unix = now - GC_GRACE_S + 1;
    assert_false(gc_candidate(&in, false, now));
    in.created_unix = now - GC_GRACE_S;
    assert_true(gc_candidate(&in, false, now));
    /* Unknown age: the marker and the store decide. */
    in.created_unix = 0;
    assert_true(gc_candidate(&in, false, now));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_candidate)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
