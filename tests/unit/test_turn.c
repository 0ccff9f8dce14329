/* Unit tests for adaptor/turn: the per-turn budget and the deferred-task queue, on a real
 * libuv loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "provider.h"
#include "turn.h"

const struct provider_ops *const provider_table[] = {NULL};

struct job {
    struct turn_task task;
    int id;
    int *order, *n;
    uint64_t burn_ns; /* CPU to spend, to use up the budget */
    unsigned *turn_seen;
    unsigned *turns;
};

static void job_run(struct turn_task *t)
{
    struct job *j = (struct job *)t;
    j->order[(*j->n)++] = j->id;
    j->turn_seen[j->id] = *j->turns;
    uint64_t until = uv_hrtime() + j->burn_ns;
    while (uv_hrtime() < until)
        ;
}

static void count_turn(uv_check_t *c)
{
    (*(unsigned *)c->data)++;
}

static void closed(uv_handle_t *h)
{
    (void)h;
}

static void test_defer_fifo_and_spread(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct turn t;
    turn_init(&t, &loop, 1000000 /* 1 ms */, NULL);
    unsigned turns = 0;
    uv_check_t chk;
    uv_check_init(&loop, &chk);
    chk.data = &turns;
    uv_check_start(&chk, count_turn);
    uv_unref((uv_handle_t *)&chk);

    enum { N = 12 };
    struct job jobs[N];
    int order[N], n = 0;
    unsigned seen[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct job){.task = {.fn = job_run}, .id = i, .order = order, .n = &n,
                               .burn_ns = 400000 /* 0.4 ms */, .turn_seen = seen, .turns = &turns};
        turn_defer(&t, &jobs[i].task);
    }
    uv_run(&loop, UV_RUN_DEFAULT); /* the idle handle keeps the loop alive until all ran */
    assert_int_equal(n, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(order[i], i);
    /* 12 x 0.4 ms against a 1 ms budget: several turns, never all in one, and at most a
     * budget's worth (plus the task that crossed it) per turn. */
    assert_true(seen[N - 1] > seen[0]);
    for (int i = 0; i + 4 < N; i++)
        assert_true(seen[i + 4] > seen[i]);

    /* run_or_defer: runs at once while the budget lasts and nothing waits. */
    n = 0;
    t.began = 0;
    jobs[0].burn_ns = 0;
    turn_run_or_defer(&t, &jobs[0].task);
    assert_int_equal(n, 1);
    turn_close(&t, closed);
    uv_close((uv_handle_t *)&chk, closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_spent(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct turn t;
    turn_init(&t, &loop, 500000, NULL);
    assert_false(turn_spent(&t)); /* the first call starts the clock */
    uint64_t until = uv_hrtime() + 700000;
    while (uv_hrtime() < until)
        ;
    assert_true(turn_spent(&t));
    turn_close(&t, closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defer_fifo_and_spread),
        cmocka_unit_test(test_spent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
