/* prio: the event loop thread's CPU priority, set once at start-up.
 *
 * Every shim call, relayed agent call and cloud reply waits for the one loop thread. On a busy
 * small node the loop, woken by a call, often waited a scheduler tick or two (4 ms at HZ=250)
 * behind CPU-bound threads, the daemon's own pool threads among them, before it ran (perf
 * sched; azure_concurrent_100's slowest Version answers). A lower nice value gives the loop a
 * larger share and an earlier deadline, so at the next scheduling decision it runs first; it
 * uses little CPU, so what it takes from others is small. Nice values rank threads within one
 * CPU cgroup (in Kubernetes: the daemon's pod). Only the loop thread is raised: the thread
 * pool (key generation, TLS handshakes, blocking libvirt, netns and fsync work) is started
 * first and keeps the process's priority.
 *
 * Owns nothing after prio_loop_raise returns (its no-op pool job frees itself). */
#ifndef ADAPTOR_PRIO_H
#define ADAPTOR_PRIO_H

#include <stddef.h>
#include <uv.h>

#define PRIO_LOOP_NICE_DEFAULT (-10)

/* Starts libuv's thread pool (its threads inherit the caller's nice value now, not the raised
 * one), then sets the calling thread's nice value to nice (-20..19; 0 leaves it alone).
 * 0 on success; -1 with what failed and how to fix it in msg (the daemon runs on). */
int prio_loop_raise(uv_loop_t *loop, int nice, char *msg, size_t msglen);

/* The calling thread's nice value. */
int prio_thread_nice(void);

#endif
