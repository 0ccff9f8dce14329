/* turn: a CPU budget per loop turn, and a queue of work put off to later turns.
 *
 * One loop turn runs every callback whose event is ready. When a hundred pods start at once,
 * a hundred replies, record writes and handshakes are ready in the same turn, each worth a
 * fraction of a millisecond, and the shim's next call waits behind all of them. A module
 * that does such work asks turn_spent() first; once the turn has used its budget it puts the
 * rest off (turn_defer, or by leaving a level-triggered socket for the next turn), so every
 * turn stays short and a call that arrives meanwhile is read within a few milliseconds.
 *
 * The budget starts with the first turn_spent() of a turn and is reset just before the loop
 * polls. Deferred tasks run FIFO, at least one per turn, more while the budget lasts. Work put
 * off by an I/O callback runs in the check phase of the same turn, right after the other I/O
 * callbacks, unless they used the budget up: later than its caller, but without the extra
 * zero-timeout poll and loop turn that waiting for the next turn costs. While tasks wait an
 * idle handle is active: it keeps the next poll from blocking, and the loop alive, until they
 * ran.
 *
 * Ownership: the caller owns struct turn (embedded) and each task until its fn is called;
 * turn_close closes the three handles, cb runs once per handle (three times). Loop thread
 * only. */
#ifndef ADAPTOR_TURN_H
#define ADAPTOR_TURN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

#define TURN_BUDGET_NS 2000000u /* 2 ms */

struct turn_task {
    void (*fn)(struct turn_task *task);
    STAILQ_ENTRY(turn_task) link; /* while deferred */
};

struct turn {
    uv_prepare_t prepare; /* .data is the owner's */
    uv_check_t check;     /* .data is the owner's */
    uv_idle_t idle;       /* .data is the owner's */
    uint64_t began;       /* uv_hrtime() of the first turn_spent() this turn, 0 = none yet */
    uint64_t budget_ns;
    STAILQ_HEAD(, turn_task) tasks; /* deferred, run in this order; not owned */
};

/* budget_ns 0 = TURN_BUDGET_NS. The handles do not keep the loop alive by themselves. */
void turn_init(struct turn *t, uv_loop_t *loop, uint64_t budget_ns, void *owner);
/* True once this turn has used its budget; the first call of a turn starts the clock. */
bool turn_spent(struct turn *t);
/* Runs task->fn in a later turn. */
void turn_defer(struct turn *t, struct turn_task *task);
/* Runs task->fn now if the budget allows, else defers it. */
void turn_run_or_defer(struct turn *t, struct turn_task *task);
void turn_close(struct turn *t, uv_close_cb cb);

#endif
