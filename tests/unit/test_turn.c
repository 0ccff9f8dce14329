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

/* Where a deferred task runs: counted in polls (a prepare handle runs once per turn, just
 * before the loop polls), and before or after the close callbacks that end the turn whose
 * I/O callback put it off. */
struct where {
    struct turn *t;
    struct turn_task task;
    unsigned polls, at_io, at_task;
    uint64_t burn_ns, deferred_at, ran_after_ns;
    bool ran, turn_ended, ran_after_turn_end;
};

static void where_task(struct turn_task *task)
{
    struct where *w = (struct where *)((char *)task - offsetof(struct where, task));
    w->at_task = w->polls;
    w->ran_after_ns = uv_hrtime() - w->deferred_at;
    w->ran_after_turn_end = w->turn_ended;
    w->ran = true;
}

static void where_count_poll(uv_prepare_t *p)
{
    ((struct where *)p->data)->polls++;
}

static void where_defer(struct where *w)
{
    if (w->burn_ns) {
        turn_spent(w->t); /* starts this turn's clock */
        uint64_t until = uv_hrtime() + w->burn_ns;
        while (uv_hrtime() < until)
            ;
    }
    w->at_io = w->polls;
    w->task.fn = where_task;
    w->deferred_at = uv_hrtime();
    turn_defer(w->t, &w->task);
}

static void where_closed(uv_handle_t *h)
{
    ((struct where *)h->data)->turn_ended = true;
}

static void where_io(uv_async_t *a)
{
    where_defer(a->data);
    uv_close((uv_handle_t *)a, where_closed);
}

static void where_timer(uv_timer_t *tm)
{
    where_defer(tm->data);
    uv_close((uv_handle_t *)tm, where_closed);
}

/* Runs one deferral from an I/O callback (timer = false) or a timer callback. Nothing else
 * keeps the loop alive: a task left waiting without the idle handle would never run. */
static void where_run(struct where *w, bool timer)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct turn t;
    turn_init(&t, &loop, 1000000 /* 1 ms */, NULL);
    w->t = &t;
    uv_prepare_t counter;
    uv_prepare_init(&loop, &counter);
    counter.data = w;
    uv_prepare_start(&counter, where_count_poll);
    uv_unref((uv_handle_t *)&counter);
    uv_async_t io;
    uv_timer_t tm;
    if (timer) {
        uv_timer_init(&loop, &tm);
        tm.data = w;
        uv_timer_start(&tm, where_timer, 1, 0);
    } else {
        uv_async_init(&loop, &io, where_io);
        io.data = w;
        uv_async_send(&io);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&counter, NULL);
    turn_close(&t, closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_defer_from_io_runs_this_turn(void **state)
{
    (void)state;
    struct where w = {0};
    where_run(&w, false);
    assert_true(w.ran);
    assert_false(w.ran_after_turn_end); /* in the same turn's check phase */
    assert_int_equal(w.at_task, w.at_io);
}

static void test_defer_from_io_after_budget_waits_a_turn(void **state)
{
    (void)state;
    struct where w = {.burn_ns = 1500000 /* the 1 ms budget is used up */};
    where_run(&w, false);
    assert_true(w.ran);
    assert_true(w.ran_after_turn_end); /* the next turn's */
}

static void test_defer_from_timer_does_not_wait_for_io(void **state)
{
    (void)state;
    struct where w = {0};
    where_run(&w, true);
    assert_true(w.ran);
    assert_true(w.ran_after_ns < 500000000ull); /* and without blocking in a poll */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defer_fifo_and_spread),
        cmocka_unit_test(test_spent),
        cmocka_unit_test(test_defer_from_io_runs_this_turn),
        cmocka_unit_test(test_defer_from_io_after_budget_waits_a_turn),
        cmocka_unit_test(test_defer_from_timer_does_not_wait_for_io),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
