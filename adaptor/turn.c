/* turn: per-turn CPU budget and deferred work (see turn.h). */
#include "turn.h"

#include <stddef.h>

static struct turn *turn_of_prepare(uv_prepare_t *p)
{
    return (struct turn *)((char *)p - offsetof(struct turn, prepare));
}

static struct turn *turn_of_check(uv_check_t *c)
{
    return (struct turn *)((char *)c - offsetof(struct turn, check));
}

static struct turn *turn_of_idle(uv_idle_t *i)
{
    return (struct turn *)((char *)i - offsetof(struct turn, idle));
}

static void turn_idle(uv_idle_t *i);

static void turn_reset(uv_prepare_t *p)
{
    turn_of_prepare(p)->began = 0;
}

/* Runs waiting tasks while the budget lasts (at least one when at_least_one, so deferred
 * work always progresses); what is left keeps the idle handle on, so the next poll does not
 * block and the next turn runs it. */
static void turn_drain(struct turn *t, bool at_least_one)
{
    struct turn_task *task;
    if (!STAILQ_EMPTY(&t->tasks) && (at_least_one || !turn_spent(t))) {
        do {
            task = STAILQ_FIRST(&t->tasks);
            STAILQ_REMOVE_HEAD(&t->tasks, link);
            task->fn(task);
        } while (!STAILQ_EMPTY(&t->tasks) && !turn_spent(t));
    }
    if (!STAILQ_EMPTY(&t->tasks))
        uv_idle_start(&t->idle, turn_idle);
    else
        uv_idle_stop(&t->idle);
}

static void turn_idle(uv_idle_t *i)
{
    turn_drain(turn_of_idle(i), true);
}

/* After the I/O callbacks: what they put off runs now unless they used the turn up. */
static void turn_after_io(uv_check_t *c)
{
    turn_drain(turn_of_check(c), false);
}

void turn_init(struct turn *t, uv_loop_t *loop, uint64_t budget_ns, void *owner)
{
    t->began = 0;
    t->budget_ns = budget_ns ? budget_ns : TURN_BUDGET_NS;
    STAILQ_INIT(&t->tasks);
    uv_prepare_init(loop, &t->prepare);
    uv_check_init(loop, &t->check);
    uv_idle_init(loop, &t->idle);
    t->prepare.data = t->check.data = t->idle.data = owner;
    /* Both always on and unreferenced: neither keeps the loop alive. */
    uv_prepare_start(&t->prepare, turn_reset);
    uv_unref((uv_handle_t *)&t->prepare);
    uv_check_start(&t->check, turn_after_io);
    uv_unref((uv_handle_t *)&t->check);
}

bool turn_spent(struct turn *t)
{
    uint64_t now = uv_hrtime();
    if (!t->began) {
        t->began = now;
        return false;
    }
    return now - t->began > t->budget_ns;
}

void turn_defer(struct turn *t, struct turn_task *task)
{
    STAILQ_INSERT_TAIL(&t->tasks, task, link);
    /* The idle handle keeps the next poll from blocking; when an I/O callback put the task
     * off, this turn's check phase usually runs it first and stops the handle again. */
    uv_idle_start(&t->idle, turn_idle);
}

void turn_run_or_defer(struct turn *t, struct turn_task *task)
{
    if (!STAILQ_EMPTY(&t->tasks) || turn_spent(t)) /* FIFO: nothing overtakes what waits already */
        turn_defer(t, task);
    else
        task->fn(task);
}

void turn_close(struct turn *t, uv_close_cb cb)
{
    uv_prepare_stop(&t->prepare);
    uv_check_stop(&t->check);
    uv_idle_stop(&t->idle);
    uv_close((uv_handle_t *)&t->prepare, cb);
    uv_close((uv_handle_t *)&t->check, cb);
    uv_close((uv_handle_t *)&t->idle, cb);
}
