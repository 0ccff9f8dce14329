/* libvirt_provider: the libvirt provider (spec providers-libvirt-and-install.md part 1, DECISIONS 16,
 * 19): pod VMs as libvirt domains with a qcow2 overlay over the pod VM image and a cidata ISO.
 *
 * Threads: every libvirt call runs on the loop's thread pool over one shared connection
 * (libvirt connections are thread-safe, and each connection to a test-driver node file
 * would see its own copy of the node). The connection is reopened, under a mutex, when a
 * call finds it dead (libvirtd restarted, ssh transport dropped). A dedicated thread runs
 * libvirt's default event loop for the connection's keepalive. Completions and every
 * provider callback run on the loop thread.
 *
 * Ownership: struct provider owns the connection, the event thread and every in-flight
 * operation; shutdown drops pending operations without callbacks and frees the rest once
 * the thread pool has returned them. */
#ifndef PROVIDERS_LIBVIRT_LIBVIRT_PROVIDER_H
#define PROVIDERS_LIBVIRT_LIBVIRT_PROVIDER_H

#include <libvirt/libvirt.h>

#include "../provider.h"

extern const struct provider_ops libvirt_provider_ops;

/* How the provider asks for a domain's addresses: virDomainInterfaceAddresses. */
typedef int (*libvirt_ifaddrs_fn)(virDomainPtr dom, virDomainInterfacePtr **ifaces, unsigned int source,
                                  unsigned int flags);

/* Tests only: replaces the address source (NULL restores libvirt's), called from worker
 * threads. The test driver makes up addresses at once; a real guest takes its time. */
void libvirt_provider_set_ifaddrs(struct provider *p, libvirt_ifaddrs_fn fn);

/* Tests only: replaces virDomainCreate (NULL restores it), to make the last step fail. */
void libvirt_provider_set_domain_start(struct provider *p, int (*fn)(virDomainPtr dom));

/* Tests only: the shared connection (a new connection to a test-driver node file would see
 * a fresh node). The caller must not close it. */
virConnectPtr libvirt_provider_conn(struct provider *p);

/* Tests only: closes the shared connection as a libvirtd restart would; the next call
 * reconnects. */
void libvirt_provider_conn_drop(struct provider *p);

#endif
