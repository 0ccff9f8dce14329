/* inspect: reads a sandbox's pod network (spec protocols.md 8.1) from the kernel: the
 * worker's tunnel interface and address in the daemon's own namespace, and the pod's
 * interface, address, MAC, MTU, routes and permanent neighbours in the pod's namespace.
 *
 * Blocking netlink I/O (and a namespace switch, see nl.h): run it in the thread pool. Fills
 * a caller-owned struct podnet; errors are one line in err naming what is wrong and what to
 * check, never a partial result. */
#ifndef VXLAN_INSPECT_H
#define VXLAN_INSPECT_H

#include <stddef.h>

#include "podnet.h"

/* Worker side: the primary interface (device of the default route, podnet_primary_better
 * among several) or host_iface when given (then dedicated = it differs from the primary),
 * and its first IPv4 address with prefix. host_iface may be NULL or "". */
int inspect_node(const char *host_iface, struct podnet *pn, char *err, size_t errlen);

/* Pod side, from the namespace file kata passes (NetworkNamespacePath). */
int inspect_pod(const char *netns_path, struct podnet *pn, char *err, size_t errlen);

#endif
