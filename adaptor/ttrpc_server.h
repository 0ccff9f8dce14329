/* ttrpc_server: a ttrpc server on AF_UNIX stream sockets, driven by the libuv loop.
 *
 * Owns the listener, every accepted connection and every in-flight call. Handlers are
 * looked up by (service, method); each call is answered exactly once by the handler through
 * ttrpc_call_reply/ttrpc_call_fail (or dropped with ttrpc_call_abandon), which frees it. A
 * call outlives its connection: if the client went away, the answer is discarded. There
 * is no cancel frame in ttrpc; a call's deadline (timeout_nano) invokes the handler's
 * cancel hook, after which the handler must answer promptly. */
#ifndef ADAPTOR_TTRPC_SERVER_H
#define ADAPTOR_TTRPC_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "ttrpc.h"

struct ttrpc_server;
struct ttrpc_call;

typedef void (*ttrpc_handler_fn)(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx);
typedef void (*ttrpc_cancel_fn)(struct ttrpc_call *call, int code, void *arg);

struct ttrpc_method {
    const char *service;
    const char *method;
    ttrpc_handler_fn handler;
};

/* methods must stay valid for the server's lifetime; ctx is passed to every handler. */
struct ttrpc_server *ttrpc_server_new(uv_loop_t *loop, const struct ttrpc_method *methods, size_t n, void *ctx);
/* Serves on an already listening AF_UNIX socket; the server owns fd from now on. */
int ttrpc_server_serve_fd(struct ttrpc_server *s, int fd);
/* Stops accepting and closes all connections; in-flight calls are cancelled (TTRPC_CANCELED)
 * and stay with their handlers (their answers are discarded). The server is freed once every handle is closed; the
 * calls keep no pointer to it. */
void ttrpc_server_close(struct ttrpc_server *s);
size_t ttrpc_server_connections(const struct ttrpc_server *s);

void ttrpc_call_reply(struct ttrpc_call *c, const uint8_t *payload, size_t len);
void ttrpc_call_fail(struct ttrpc_call *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Frees the call without answering (daemon shutdown). */
void ttrpc_call_abandon(struct ttrpc_call *c);
/* Absolute deadline in uv_now() milliseconds, 0 if the client gave none. */
uint64_t ttrpc_call_deadline(const struct ttrpc_call *c);
/* Registers the hook run once when the call's context ends before it is answered: its
 * deadline passed (TTRPC_DEADLINE_EXCEEDED) or its connection closed (TTRPC_CANCELED). */
void ttrpc_call_on_cancel(struct ttrpc_call *c, ttrpc_cancel_fn fn, void *arg);
/* Cancels a call as if its deadline had passed, with the given code (e.g. TTRPC_CANCELED). */
void ttrpc_call_cancel(struct ttrpc_call *c, int code);

#endif
