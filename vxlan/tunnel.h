/* tunnel: the worker half of a pod's VXLAN splice (spec protocols.md 8.2,
 * network-and-operations.md A.2, A.6).
 *
 * Setup: the conntrack bypass rules (notrack.h); a VXLAN device `vxlan1` whose UDP socket
 * lives in the worker's namespace (VNI, remote = the pod VM, dst port) but which sits, up, in
 * the pod's namespace; an ingress qdisc with a match-all u32 filter and a mirred egress
 * redirect on the pod interface towards vxlan1 and on vxlan1 towards the pod interface.
 * The device is created straight into the pod namespace by one RTM_NEWLINK carrying
 * IFLA_NET_NS_FD, sent from the worker's namespace: the same end state as the Go daemon's
 * create/move/rename/up, without a window in which a temporary device name can clash or be
 * left behind in the worker's namespace.
 *
 * Teardown removes the qdiscs (their filters go with them), vxlan1 and the rules; a pod
 * namespace that no longer exists is not an error, and both calls are idempotent.
 *
 * Blocking netlink/nftables I/O: call from the thread pool. Nothing is allocated for the
 * caller. */
#ifndef VXLAN_TUNNEL_H
#define VXLAN_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "notrack.h"

#define TUNNEL_DEVICE "vxlan1"

struct tunnel_params {
    const char *netns_path; /* the pod's namespace file */
    const char *pod_ifname; /* the CNI interface in it (eth0) */
    uint32_t vni;
    uint16_t port;   /* VXLAN_PORT */
    uint32_t remote; /* pod VM address, network byte order */
};

/* 0, or -1 with err; a failed setup leaves whatever it had made for tunnel_teardown. */
int tunnel_setup(struct notrack *nt, const struct tunnel_params *p, char *err, size_t errlen);

/* 0, or -1 with err (the first failure; every step is still attempted). *netns_gone is set
 * when the pod namespace did not exist (its side needed no teardown). */
int tunnel_teardown(struct notrack *nt, const struct tunnel_params *p, bool *netns_gone, char *err, size_t errlen);

/* Reads the VNI and dst port of every VXLAN device in the namespace at netns_path (NULL:
 * the caller's) and calls fn for each (a device may be reported twice when a concurrent link
 * change made the kernel interrupt the listing); 0 or -errno with err. */
int tunnel_scan(const char *netns_path, void (*fn)(uint32_t vni, uint16_t port, const char *ifname, void *arg),
                void *arg, char *err, size_t errlen);

#endif
