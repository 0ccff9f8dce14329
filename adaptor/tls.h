/* tls: one client connection to a pod VM's forwarder, TCP with or without TLS, on the libuv
 * loop (spec protocols.md 3.2, 3.6). OpenSSL runs over memory BIOs: libuv moves ciphertext,
 * OpenSSL never touches a socket, nothing blocks. Handshake steps (key exchange, certificate
 * checks, the client signature) run in the loop's thread pool, one at a time per connection,
 * with reading stopped meanwhile; everything else runs on the loop thread.
 *
 * Ownership: the caller owns the struct tls_conn from tls_conn_dial until tls_conn_close;
 * after tls_conn_close no callback runs and the memory is released once libuv has closed the
 * handle. tls_conn_dial takes a reference on the SSL_CTX. Bytes passed to tls_conn_write are
 * copied (encrypted into a fresh buffer), so the caller may reuse them at once;
 * tls_conn_writev_owned instead takes over the malloc'd block its last buffer lies in.
 *
 * Callbacks run on the loop thread; a callback may call tls_conn_close on its own connection. */
#ifndef ADAPTOR_TLS_H
#define ADAPTOR_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

struct tls_conn;

struct tls_conn_cbs {
    /* Once: err NULL when TCP (and the TLS handshake) are up, else why not. */
    void (*on_connected)(void *arg, const char *err);
    /* Plaintext from the peer. */
    void (*on_data)(void *arg, const uint8_t *p, size_t n);
    /* After on_connected succeeded: the link is gone (peer closed, reset, TLS alert). */
    void (*on_lost)(void *arg, const char *why);
    /* Optional: the write queue fell below the low-water mark after tls_conn_write reported
     * it full. */
    void (*on_drained)(void *arg);
};

/* Write-queue bounds: above HIGH the writer should stop feeding, below LOW it may resume. */
#define TLS_CONN_QUEUE_HIGH (16u << 20)
#define TLS_CONN_QUEUE_LOW (4u << 20)

/* Starts connecting to addr. ctx NULL means plain TCP (-disable-tls); otherwise prepare, if
 * given, is called on the new SSL before the handshake (SNI, expected name). Returns NULL
 * with the reason in err if the attempt cannot even start. */
struct tls_conn *tls_conn_dial(uv_loop_t *loop, const struct sockaddr *addr, SSL_CTX *ctx,
                               int (*prepare)(void *parg, SSL *ssl, char *err, size_t errlen), void *parg,
                               const struct tls_conn_cbs *cbs, void *arg, char *err, size_t errlen);

/* Queues bytes for the peer. Returns 1 if the queue is now above TLS_CONN_QUEUE_HIGH (the
 * caller should pause its source until on_drained), 0 otherwise, -1 if the connection is
 * not up or encryption failed. */
int tls_conn_write(struct tls_conn *c, const uint8_t *p, size_t n);
/* Several buffers in one write: a frame header and its body. Same returns. */
int tls_conn_writev(struct tls_conn *c, const uv_buf_t *bufs, unsigned nbufs);
/* The same, for a big body the caller need not keep: the last buffer lies inside owner, a
 * malloc'd block this call takes over in every case (returns included). On plain TCP what the
 * socket does not take at once is queued from owner itself, not copied; owner is freed once
 * written (or at once: with TLS the bytes are encrypted into the queue anyway). */
int tls_conn_writev_owned(struct tls_conn *c, const uv_buf_t *bufs, unsigned nbufs, void *owner);
size_t tls_conn_queued(const struct tls_conn *c);

/* Back-pressure towards the peer: stop and resume reading. */
void tls_conn_pause(struct tls_conn *c);
void tls_conn_resume(struct tls_conn *c);

/* Closes at once (no TLS close_notify wait); no callback follows. */
void tls_conn_close(struct tls_conn *c);

#endif
