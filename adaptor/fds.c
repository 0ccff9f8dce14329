/* fds: the descriptor limit and table, sized once at start-up (see fds.h). */
#include "fds.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

size_t fds_expected(int64_t peerpods_limit)
{
    if (peerpods_limit < 0)
        return FDS_UNLIMITED;
    if ((uint64_t)peerpods_limit > (FDS_MAX - FDS_BASE) / FDS_PER_POD)
        return FDS_MAX;
    return FDS_BASE + (size_t)peerpods_limit * FDS_PER_POD;
}

int fds_prepare(size_t want, char *msg, size_t msglen)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl)) {
        snprintf(msg, msglen, "reading RLIMIT_NOFILE: %s", strerror(errno));
        return -1;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit raised = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = rl.rlim_max;
    }
    if (want > FDS_MAX)
        want = FDS_MAX;
    if (rl.rlim_cur != RLIM_INFINITY && want > rl.rlim_cur)
        want = (size_t)rl.rlim_cur;
    if (want < 2)
        return 0;
    /* A descriptor at slot want-1 makes the kernel size the table for it; the table is never
     * shrunk, so closing it again keeps the room. */
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(msg, msglen, "opening /dev/null: %s", strerror(errno));
        return -1;
    }
    int high = fcntl(fd, F_DUPFD_CLOEXEC, (int)(want - 1));
    int err = errno;
    close(fd);
    if (high < 0) {
        snprintf(msg, msglen, "growing the descriptor table to %zu: %s", want, strerror(err));
        return -1;
    }
    close(high);
    return 0;
}
