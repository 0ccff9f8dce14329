/* probe: the HTTP endpoints on 127.0.0.1:$PROBE_PORT (SO_REUSEPORT, so an old and a new daemon
 * share the port during a rolling update): /startup, /healthz, /readyz and /metrics
 * (Prometheus text). GET and HEAD only; one request per connection, then close.
 *
 * The probe server belongs to the daemon context (d->probe): probe_start opens it, probe_stop
 * closes its listener and connections (their memory goes in the close callbacks), probe_free
 * releases what is left after the loop stopped. Loop thread only. */
#ifndef ADAPTOR_PROBE_H
#define ADAPTOR_PROBE_H

#include <stddef.h>

struct daemon;
struct probe;

/* 0, or -1 with err: the port cannot be bound (the daemon keeps serving without probes). */
int probe_start(struct daemon *d, char *err, size_t errlen);
void probe_stop(struct daemon *d);
void probe_free(struct daemon *d);

#endif
