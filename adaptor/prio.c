/* prio: the event loop thread's CPU priority (see prio.h). */
#include "prio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void pool_noop(uv_work_t *req)
{
    (void)req;
}

static void pool_noop_done(uv_work_t *req, int status)
{
    (void)status;
    free(req);
}

int prio_thread_nice(void)
{
    errno = 0;
    int n = getpriority(PRIO_PROCESS, (id_t)gettid()); /* per thread on Linux */
    return n == -1 && errno ? 0 : n;
}

int prio_loop_raise(uv_loop_t *loop, int nice, char *msg, size_t msglen)
{
    if (nice == 0)
        return 0;
    /* libuv creates all its pool threads inside the first uv_queue_work, before it returns. */
    uv_work_t *req = malloc(sizeof(*req));
    if (!req) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    int rc = uv_queue_work(loop, req, pool_noop, pool_noop_done);
    if (rc) {
        free(req);
        snprintf(msg, msglen, "starting the thread pool: %s", uv_strerror(rc));
        return -1;
    }
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), nice)) {
        int err = errno;
        snprintf(msg, msglen, "setting the event loop thread's nice value to %d: %s%s", nice, strerror(err),
                 err == EACCES || err == EPERM ? " (needs CAP_SYS_NICE; -loop-nice 0 keeps the default)" : "");
        return -1;
    }
    return 0;
}
