/* http: asynchronous HTTPS requests on the libuv loop, libcurl's multi interface driven by
 * libuv socket polls and one timer (no blocking easy handles on the loop thread). Used by
 * the Azure provider (ARM, Entra ID) and the Kubernetes API client (kube).
 *
 * One struct http per user: it owns the curl multi handle (and so its connection cache:
 * connections are reused), the poll handles, the timer and the queue of requests waiting
 * for one of the max_active slots. Requests are copied at http_start (URL, headers, body);
 * the response handed to the callback is borrowed for the callback's duration. Every started
 * request calls its callback exactly once, unless it is cancelled (http_cancel) or the
 * struct http is freed first. TLS peers are always verified (ca_file adds a CA bundle for
 * tests and private clouds). Nothing here logs: header values may be secrets. */
#ifndef ADAPTOR_HTTP_H
#define ADAPTOR_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HTTP_BODY_MAX (16u << 20)
#define HTTP_HEADERS_MAX 48
#define HTTP_HEADER_NAME_MAX 64
#define HTTP_HEADER_VALUE_MAX 4096

struct http;
struct turn;
struct http_call;

struct http_config {
    const char *ca_file;  /* NULL or "": the system's CA store */
    unsigned max_active;  /* concurrent transfers; 0 = 16 */
    long connect_timeout_ms; /* 0 = 10 s */
    struct turn *turn;       /* optional: libcurl work per loop turn is bounded by its budget */
};

struct http_request {
    const char *method; /* "GET", "PUT", "POST", "DELETE" */
    const char *url;
    const char *const *headers; /* "Name: value", NULL-terminated; may be NULL */
    const void *body;
    size_t body_len;
    long timeout_ms; /* whole transfer; 0 = 60 s */
};

struct http_header {
    const char *name; /* lower-case */
    const char *value;
};

struct http_response {
    long status;       /* 0 when the transfer failed */
    const char *error; /* transport error text (connection refused, TLS, timeout), NULL on a reply */
    bool timed_out;
    const char *body; /* NUL-terminated, body_len bytes before the NUL */
    size_t body_len;
    const struct http_header *headers;
    size_t n_headers;
};

typedef void (*http_cb)(void *arg, const struct http_response *resp);

struct http *http_new(uv_loop_t *loop, const struct http_config *cfg, char *err, size_t errlen);
/* Closes everything; callbacks of pending requests are not called. Handle closes complete
 * on the loop's next iterations. */
void http_free(struct http *h);

/* NULL only on allocation failure. cb never runs from inside http_start or http_cancel. */
struct http_call *http_start(struct http *h, const struct http_request *req, http_cb cb, void *arg);
void http_cancel(struct http_call *c);

/* Case-insensitive header lookup; NULL when absent. */
const char *http_header_get(const struct http_response *r, const char *name);

/* The server's requested delay in ms from retry-after-ms, x-ms-retry-after-ms or Retry-After
 * (delta seconds or an HTTP date, relative to now_unix); -1 when none is given. Pure. */
int64_t http_retry_after_ms(const struct http_response *r, int64_t now_unix);

#endif
