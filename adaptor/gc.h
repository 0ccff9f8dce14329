/* gc: orphan garbage collection (DECISIONS 16). A VM that carries this node's ownership
 * marker but that no sandbox of this node knows (not in the store, whose STOPPING records are
 * the durable delete queue, and no record on disk that another daemon instance of the node
 * may have written since) is a bill nobody will stop: after a grace period it is deleted.
 * Instances without a marker (empty sandbox id) are never touched.
 *
 * Runs once right after start-up recovery, then every -gc-interval (GC_INTERVAL_MS by
 * default), one pass at a time: provider list, then an asynchronous stat of each candidate's
 * record (thread pool), then the provider delete. Each pass also stats, in the thread pool,
 * the network namespace of every idle running sandbox: one found gone in two passes in a row
 * lost its kata shim without a StopVM, and is deleted as a StopVM would (hypervisor). Owns its timer and the per-candidate state; gc_stop closes the timer and
 * gc_free releases whatever the shutdown left in flight. */
#ifndef ADAPTOR_GC_H
#define ADAPTOR_GC_H

#include <stdbool.h>
#include <stdint.h>

#include "../providers/provider.h"

#define GC_INTERVAL_MS (10 * 60 * 1000)
#define GC_GRACE_S 300 /* younger instances may belong to a create another instance has in flight */

struct daemon;
struct gc;

/* The pure decision: true if inst may be an orphan, given whether the store knows its
 * sandbox and the current time. The disk check comes after. */
bool gc_candidate(const struct provider_instance *inst, bool known, int64_t now_unix);

int gc_start(struct daemon *d);
void gc_stop(struct daemon *d);
void gc_free(struct daemon *d);

#endif
