/* fds: the process's file descriptor limit and table, sized once at start-up.
 *
 * Every pod holds a few descriptors (its agent socket, the shim's connections to it, the link
 * to its pod VM) and a burst of pod starts opens them by the hundred. The kernel grows a
 * process's descriptor table by doubling, and in a multi-threaded process each growth waits
 * for an RCU grace period (expand_fdtable -> synchronize_rcu): on a busy small node that held
 * the loop thread for 5-10 ms, the longest stalls a shim's call saw (perf sched). Growing the
 * table before the first thread exists costs no grace period, and later opens never wait.
 * As the Go daemon does at start (Go's runtime), the soft RLIMIT_NOFILE is raised to the hard
 * one, so the node's limit, not a login default, bounds the pods.
 *
 * Owns nothing. fds_prepare must run before any thread is created. */
#ifndef ADAPTOR_FDS_H
#define ADAPTOR_FDS_H

#include <stddef.h>
#include <stdint.h>

#define FDS_BASE 256       /* sockets, files, libcurl's kept connections, netlink, libvirt */
#define FDS_PER_POD 8      /* agent listener, shim connections, pod VM link, transient calls */
#define FDS_UNLIMITED 4096 /* table size when PEERPODS_LIMIT_PER_NODE is negative (no limit) */
#define FDS_MAX 65536      /* never more table than this up front (8 bytes per slot) */

/* Descriptor slots to have ready for peerpods_limit pods (negative: no limit). */
size_t fds_expected(int64_t peerpods_limit);

/* Raises the soft RLIMIT_NOFILE to the hard limit and grows the descriptor table to
 * min(want, soft limit) slots. 0 on success; -1 with what failed in msg (the daemon runs on:
 * the table then grows on demand). */
int fds_prepare(size_t want, char *msg, size_t msglen);

#endif
