/* azreq: one Azure REST request with the retry policy of the Azure SDK (spec
 * providers-azure.md 4.2), shared by the token and ARM code: connection errors and 408, 429,
 * 500, 502, 503, 504 are retried up to max_retries times after the reply's retry-after
 * (retry-after-ms, x-ms-retry-after-ms, Retry-After) or an exponential back-off with jitter
 * ((2^try - 1) x 0.8 s x [0.8, 1.3), capped at 60 s); a requested delay above 60 s, or one
 * that would pass the deadline, ends the retries with that reply.
 *
 * Throttling is shared: a 429 with a server hint closes the caller's gate (hold_until) until
 * then, and every request on that gate, new or retried, queues until it opens, so one
 * throttled call holds back the others instead of each learning it alone.
 *
 * The request is copied; the callback gets the final reply (borrowed) and runs exactly once
 * unless azreq_cancel is called first. */
#ifndef AZURE_AZREQ_H
#define AZURE_AZREQ_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "http.h"

#define AZREQ_RETRIES 3
#define AZREQ_MAX_DELAY_MS 60000

struct azreq;
typedef void (*azreq_cb)(void *arg, const struct http_response *r, unsigned retries);

struct azreq_params {
    struct http *http;
    uv_loop_t *loop;
    struct http_request req;
    unsigned max_retries; /* AZREQ_RETRIES when 0; use azreq_no_retry for none */
    bool no_retry;
    uint64_t deadline; /* uv_now() ms; 0 = none */
    uint32_t seed;     /* jitter */
    uint64_t *hold_until; /* optional shared throttle gate, uv_now() ms; owned by the caller */
};

struct azreq *azreq_start(const struct azreq_params *p, azreq_cb cb, void *arg);
void azreq_cancel(struct azreq *q);

/* Whether a reply (or transport failure) is worth retrying. Pure. */
bool azreq_retriable(const struct http_response *r);
/* The back-off before retry number try (1-based) without a server hint, ms; jitter in [0, 1). Pure. */
uint64_t azreq_backoff_ms(unsigned try, double jitter);

#endif
