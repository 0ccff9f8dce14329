/* tls: TCP (+TLS over memory BIOs) client connections on the loop (see tls.h). */
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#define READ_CHUNK 65536

struct tls_conn {
    uv_tcp_t tcp; /* first: handle callbacks recover the connection from it */
    uv_connect_t creq;
    SSL *ssl; /* NULL: plain TCP */
    BIO *rbio, *wbio;
    int (*prepare)(void *parg, SSL *ssl, char *err, size_t errlen);
    void *parg;
    struct tls_conn_cbs cbs;
    void *arg;
    bool connected, closing, lost, paused, full, handshaking;
    /* A handshake step runs on a pool thread (hs_busy): the SSL belongs to it until the step
     * is back, reading is stopped meanwhile, and a close waits for it before freeing. */
    bool hs_busy, handle_closed;
    uv_work_t hs_work;
    int hs_rc;
    char hs_why[384];
    size_t queued;
    /* Malloc'd apart, not zeroed: only the pages traffic touches become resident, so an idle
     * link costs a few KiB, not 128 (issue 9, P3). pbuf only with TLS. */
    uint8_t *rbuf; /* ciphertext (or plain bytes) from the socket, READ_CHUNK */
    uint8_t *pbuf; /* plaintext out of SSL_read, READ_CHUNK */
};

struct wreq {
    uv_write_t req;
    struct tls_conn *c;
    size_t len;  /* of data */
    void *own;   /* tls_conn_writev_owned: the caller's block, then ext_len bytes from ext */
    const uint8_t *ext;
    size_t ext_len;
    uint8_t data[];
};

static void ssl_reason(char *out, size_t outlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    snprintf(out, outlen, "%s%s%s", what, *buf ? ": " : "", buf);
}

static void closed(uv_handle_t *h)
{
    struct tls_conn *c = (struct tls_conn *)h;
    c->handle_closed = true;
    if (c->hs_busy)
        return; /* hs_done frees */
    if (c->ssl)
        SSL_free(c->ssl); /* frees both BIOs */
    free(c->rbuf);
    if (c->pbuf)
        OPENSSL_cleanse(c->pbuf, READ_CHUNK); /* decrypted agent traffic */
    free(c->pbuf);
    free(c);
}

void tls_conn_close(struct tls_conn *c)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, closed);
}

static void lose(struct tls_conn *c, const char *why)
{
    if (c->closing || c->lost)
        return;
    c->lost = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (c->connected) {
        if (c->cbs.on_lost)
            c->cbs.on_lost(c->arg, why);
    } else {
        c->cbs.on_connected(c->arg, why);
    }
}

static void write_done(uv_write_t *r, int status)
{
    struct wreq *w = (struct wreq *)r;
    struct tls_conn *c = w->c;
    c->queued -= w->len + w->ext_len;
    OPENSSL_cleanse(w->data, w->len);
    free(w->own); /* the caller's read buffer, which it frees uncleansed too */
    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        lose(c, uv_strerror(status));
        return;
    }
    if (c->full && c->queued < TLS_CONN_QUEUE_LOW) {
        c->full = false;
        if (c->cbs.on_drained)
            c->cbs.on_drained(c->arg);
    }
}

static int raw_write(struct tls_conn *c, struct wreq *w)
{
    w->c = c;
    uv_buf_t b[2] = {uv_buf_init((char *)w->data, (unsigned)w->len), uv_buf_init((char *)w->ext, (unsigned)w->ext_len)};
    size_t n = w->len + w->ext_len;
    c->queued += n;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, w->len ? b : b + 1, w->len ? (w->ext_len ? 2 : 1) : 1, write_done);
    if (rc) {
        c->queued -= n;
        free(w->own);
        free(w);
        return -1;
    }
    return 0;
}

static struct wreq *wreq_new(size_t inline_len)
{
    struct wreq *w = malloc(sizeof(*w) + inline_len);
    if (w) {
        w->len = 0;
        w->own = NULL;
        w->ext = NULL;
        w->ext_len = 0;
    }
    return w;
}

/* Sends whatever OpenSSL has queued in the write BIO. */
static int flush_wbio(struct tls_conn *c)
{
    size_t n = BIO_ctrl_pending(c->wbio);
    if (!n)
        return 0;
    struct wreq *w = wreq_new(n);
    if (!w)
        return -1;
    int got = BIO_read(c->wbio, w->data, (int)n);
    if (got <= 0) {
        free(w);
        return -1;
    }
    w->len = (size_t)got;
    return raw_write(c, w);
}

static int queue_state(struct tls_conn *c)
{
    if (c->queued > TLS_CONN_QUEUE_HIGH) {
        c->full = true;
        return 1;
    }
    return 0;
}

/* Plain TCP: straight into the socket when nothing is queued (libuv refuses otherwise); the
 * rest is copied, except the last buffer's when owner holds it. */
static int plain_writev(struct tls_conn *c, const uv_buf_t *bufs, unsigned nbufs, void *owner)
{
    size_t n = 0;
    for (unsigned i = 0; i < nbufs; i++)
        n += bufs[i].len;
    int sent = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
    size_t skip = sent > 0 ? (size_t)sent : 0;
    if (skip == n) {
        free(owner);
        return queue_state(c);
    }
    unsigned copied = owner ? nbufs - 1 : nbufs;
    size_t left = n - skip, last = bufs[nbufs - 1].len;
    struct wreq *w = wreq_new(left - (owner ? (last < left ? last : left) : 0));
    if (!w) {
        free(owner);
        return -1;
    }
    for (unsigned i = 0; i < nbufs; i++) {
        size_t take = bufs[i].len;
        const char *from = bufs[i].base;
        if (skip >= take) {
            skip -= take;
            continue;
        }
        from += skip;
        take -= skip;
        skip = 0;
        if (i < copied) {
            memcpy(w->data + w->len, from, take);
            w->len += take;
        } else {
            w->own = owner;
            w->ext = (const uint8_t *)from;
            w->ext_len = take;
        }
    }
    if (owner && !w->own)
        free(owner); /* the last buffer went out whole; only leading bytes are left */
    return raw_write(c, w) ? -1 : queue_state(c);
}

int tls_conn_writev(struct tls_conn *c, const uv_buf_t *bufs, unsigned nbufs)
{
    if (!c->connected || c->closing || c->lost)
        return -1;
    if (!c->ssl)
        return plain_writev(c, bufs, nbufs, NULL);
    for (unsigned i = 0; i < nbufs; i++) {
        if (bufs[i].len && SSL_write(c->ssl, bufs[i].base, (int)bufs[i].len) <= 0) {
            ERR_clear_error();
            return -1;
        }
    }
    return flush_wbio(c) ? -1 : queue_state(c);
}

int tls_conn_writev_owned(struct tls_conn *c, const uv_buf_t *bufs, unsigned nbufs, void *owner)
{
    if (!owner || !nbufs || c->ssl || !c->connected || c->closing || c->lost) {
        int rc = tls_conn_writev(c, bufs, nbufs);
        free(owner);
        return rc;
    }
    return plain_writev(c, bufs, nbufs, owner);
}

int tls_conn_write(struct tls_conn *c, const uint8_t *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    return tls_conn_writev(c, &b, 1);
}

size_t tls_conn_queued(const struct tls_conn *c)
{
    return c->queued;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct tls_conn *c = (struct tls_conn *)h;
    *buf = uv_buf_init((char *)c->rbuf, READ_CHUNK);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void drain(struct tls_conn *c);

/* One SSL_do_handshake on a pool thread: the key exchange, certificate checks and the
 * client's signature are the costliest CPU work of a dial, and many VMs come up at once.
 * OpenSSL's error queue is per thread, so the reason is read here too. */
static void hs_run(uv_work_t *w)
{
    struct tls_conn *c = w->data;
    ERR_clear_error();
    int rc = SSL_do_handshake(c->ssl);
    int e = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, rc);
    c->hs_rc = rc == 1 ? 1 : e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
    c->hs_why[0] = '\0';
    if (c->hs_rc < 0) {
        long vr = SSL_get_verify_result(c->ssl);
        if (vr != X509_V_OK) {
            snprintf(c->hs_why, sizeof(c->hs_why), "TLS handshake: the pod VM's certificate was refused: %s",
                     X509_verify_cert_error_string(vr));
        } else {
            ssl_reason(c->hs_why, sizeof(c->hs_why), "TLS handshake failed");
        }
    }
    ERR_clear_error();
}

static void hs_done(uv_work_t *w, int status)
{
    struct tls_conn *c = w->data;
    c->hs_busy = false;
    if (c->closing) {
        if (c->handle_closed)
            closed((uv_handle_t *)&c->tcp);
        return;
    }
    if (c->lost)
        return;
    if (status) {
        lose(c, "TLS handshake canceled");
        return;
    }
    if (flush_wbio(c)) {
        lose(c, "out of memory during the TLS handshake");
        return;
    }
    if (c->hs_rc < 0) {
        lose(c, c->hs_why);
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) {
        lose(c, "cannot read from the connection");
        return;
    }
    if (c->hs_rc == 0)
        return; /* more from the peer first */
    c->handshaking = false;
    c->connected = true;
    c->cbs.on_connected(c->arg, NULL);
    if (!c->closing && !c->lost)
        drain(c); /* records that came with the server's last flight */
}

static void handshake_step(struct tls_conn *c)
{
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->hs_busy = true;
    c->hs_work.data = c;
    if (uv_queue_work(c->tcp.loop, &c->hs_work, hs_run, hs_done)) {
        c->hs_busy = false;
        lose(c, "cannot queue the TLS handshake");
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tls_conn *c = (struct tls_conn *)s;
    (void)buf;
    if (c->closing)
        return;
    if (nread == 0)
        return;
    if (nread < 0) {
        lose(c, nread == UV_EOF ? "connection closed by the pod VM" : uv_strerror((int)nread));
        return;
    }
    if (!c->ssl) {
        c->cbs.on_data(c->arg, c->rbuf, (size_t)nread);
        return;
    }
    if (BIO_write(c->rbio, c->rbuf, (int)nread) != nread) {
        lose(c, "out of memory reading TLS records");
        return;
    }
    if (c->handshaking) {
        handshake_step(c);
        return;
    }
    drain(c);
}

/* Decrypts what the read BIO holds and hands it on. */
static void drain(struct tls_conn *c)
{
    for (;;) {
        int n = SSL_read(c->ssl, c->pbuf, READ_CHUNK);
        if (n > 0) {
            c->cbs.on_data(c->arg, c->pbuf, (size_t)n);
            if (c->closing || c->lost)
                return;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            break;
        char why[320];
        if (e == SSL_ERROR_ZERO_RETURN)
            snprintf(why, sizeof(why), "TLS session closed by the pod VM");
        else
            ssl_reason(why, sizeof(why), "TLS error");
        lose(c, why);
        return;
    }
    if (flush_wbio(c))
        lose(c, "out of memory writing TLS records");
}

static void on_connect(uv_connect_t *r, int status)
{
    struct tls_conn *c = r->data;
    if (c->closing)
        return;
    if (status < 0) {
        lose(c, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) {
        lose(c, "cannot read from the connection");
        return;
    }
    if (!c->ssl) {
        c->connected = true;
        c->cbs.on_connected(c->arg, NULL);
        return;
    }
    c->handshaking = true;
    handshake_step(c);
}

struct tls_conn *tls_conn_dial(uv_loop_t *loop, const struct sockaddr *addr, SSL_CTX *ctx,
                               int (*prepare)(void *parg, SSL *ssl, char *err, size_t errlen), void *parg,
                               const struct tls_conn_cbs *cbs, void *arg, char *err, size_t errlen)
{
    struct tls_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->cbs = *cbs;
    c->arg = arg;
    c->prepare = prepare;
    c->parg = parg;
    if (!(c->rbuf = malloc(READ_CHUNK)) || (ctx && !(c->pbuf = malloc(READ_CHUNK)))) {
        free(c->rbuf);
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (ctx) {
        c->ssl = SSL_new(ctx);
        c->rbio = BIO_new(BIO_s_mem());
        c->wbio = BIO_new(BIO_s_mem());
        if (!c->ssl || !c->rbio || !c->wbio) {
            if (c->ssl)
                SSL_free(c->ssl);
            BIO_free(c->rbio);
            BIO_free(c->wbio);
            free(c->rbuf);
            free(c->pbuf);
            free(c);
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        SSL_set_bio(c->ssl, c->rbio, c->wbio);
        SSL_set_connect_state(c->ssl);
        if (prepare && prepare(parg, c->ssl, err, errlen)) {
            SSL_free(c->ssl);
            free(c->rbuf);
            free(c->pbuf);
            free(c);
            return NULL;
        }
    }
    uv_tcp_init(loop, &c->tcp);
    c->creq.data = c;
    int rc = uv_tcp_connect(&c->creq, &c->tcp, addr, on_connect);
    if (rc) {
        snprintf(err, errlen, "%s", uv_strerror(rc));
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, closed);
        return NULL;
    }
    return c;
}

void tls_conn_pause(struct tls_conn *c)
{
    if (!c->paused && c->connected && !c->closing && !c->lost) {
        c->paused = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

void tls_conn_resume(struct tls_conn *c)
{
    if (c->paused && !c->closing && !c->lost) {
        c->paused = false;
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))
            lose(c, "cannot read from the connection");
    }
}
