/* proxy: one sandbox's agent relay (spec protocols.md 3, DECISIONS 3). The kata shim talks
 * ttrpc to <pods-dir>/<id>/agent.ttrpc as if the agent were local; every call is relayed as
 * a frame onto ONE upstream connection (TCP, mutual TLS unless -disable-tls) to the pod VM's
 * forwarder, with stream ids renumbered, and the response routed back to the connection and
 * stream it belongs to. Payloads pass untouched except CreateContainer (ccedit). Metadata
 * and timeout_nano are kept; calls without a deadline (WaitProcess, ReadStdout, ...) are
 * never timed out here.
 *
 * The upstream is dialled with back-off from 50 ms to 1 s per attempt; when it drops, the
 * calls in flight fail with code 14 and the proxy dials again; calls that arrive while it is
 * down wait (bounded) for it, for at most their deadline and PROXY_TIMEOUT.
 * Back-pressure: a side whose write queue passes TLS_CONN_QUEUE_HIGH pauses the reading of
 * the side that feeds it until it drains.
 *
 * Ownership: struct proxy is created by proxy_new and released by proxy_close, which
 * removes the socket file, fails what is in flight with code 14 and frees everything once
 * libuv has closed the handles. No callback runs after proxy_close. */
#ifndef ADAPTOR_PROXY_H
#define ADAPTOR_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "metrics.h"
#include "tlsca.h"

struct proxy;

struct proxy_params {
    uv_loop_t *loop;
    const char *socket_path; /* <pods-dir>/<id>/agent.ttrpc (copied) */
    const char *sandbox_id;  /* for log lines (copied) */
    const char *vm_name;     /* expected TLS server name (copied) */
    SSL_CTX *ctx;            /* NULL: plain TCP (-disable-tls); referenced, not owned */
    const struct tlsca *tls; /* for the expected server name; NULL with -disable-tls */
    uint16_t port;           /* FORWARDER_PORT */
    int64_t proxy_timeout_ns;
    bool gpus_annotated; /* CreateContainer gets the CDI marker */
    const char *direct_volumes_dir; /* CSI direct volumes for CreateContainer (copied) */
    struct metrics_relay *counts;   /* NULL or the daemon's; must outlive the proxy */
};

/* Listens on socket_path (a stale file is replaced). NULL with the reason in err. */
struct proxy *proxy_new(const struct proxy_params *p, char *err, size_t errlen);

/* Called once when the first upstream connection is up (code 0) or when waiting for it
 * ended (code 4 at the deadline or PROXY_TIMEOUT, 1 when canceled), msg explaining. */
typedef void (*proxy_ready_cb)(void *arg, int code, const char *msg);

/* Starts dialling ip:port. deadline_ms (uv_now scale) 0 = only PROXY_TIMEOUT bounds the
 * wait. -1 if ip is not an address. */
int proxy_connect(struct proxy *px, const char *ip, uint64_t deadline_ms, proxy_ready_cb cb, void *arg);
/* Stops waiting for readiness: cb runs with code 1 and msg, unless it already ran. Calls
 * already accepted keep waiting for the connection. */
void proxy_cancel_ready(struct proxy *px, const char *msg);
bool proxy_is_up(const struct proxy *px);

void proxy_close(struct proxy *px);

/* The methods the relay serves (spec 3.3); others get code 12 "method X". */
bool proxy_method_known(const char *service, size_t slen, const char *method, size_t mlen, bool *service_known);

#endif
