/* hypervisor: the kata remote-hypervisor service (hypervisor.Hypervisor) and the
 * podvminfo.PodVMInfo service, on top of the sandbox store and the provider.
 *
 * Owns the per-sandbox operations (StartVM, StopVM, rollbacks, delete retries) and the
 * GetInfo waiters. Operations on one sandbox run one at a time in arrival order, except
 * that StopVM cancels an in-flight StartVM; different sandboxes never wait for each other. */
#ifndef ADAPTOR_HYPERVISOR_H
#define ADAPTOR_HYPERVISOR_H

#include <stddef.h>

#include "daemon.h"
#include "ttrpc_server.h"

extern const struct ttrpc_method hypervisor_methods[];
extern const size_t hypervisor_methods_count;

/* After the store was loaded: finishes work that a previous run left half done
 * (rollbacks of interrupted starts, queued deletions). */
void hypervisor_recover(struct daemon *d);
/* Deletes the pod VM and records of a running sandbox whose pod is gone without a StopVM
 * (the GC found its network namespace removed), as a StopVM would. why is logged. */
void hypervisor_stop_lost(struct daemon *d, struct sandbox *sb, const char *why);
/* Daemon shutdown: stops retry timers and answers nothing more. Call after the server was
 * closed and the provider shut down, and run the loop until the store has no I/O pending
 * before hypervisor_free. */
void hypervisor_shutdown(struct daemon *d);
/* Frees every operation and waiter (their calls are abandoned). */
void hypervisor_free(struct daemon *d);

#endif
