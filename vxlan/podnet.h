/* podnet: the pod network of one sandbox as the worker node sees it (spec protocols.md 8.1,
 * network-and-operations.md A.1), the selection rules Inspect applies to what netlink
 * reports, and its conversion into apf.json's pod-network (adaptor/userdata).
 *
 * Pure code, no I/O. A struct podnet is a plain value with fixed-size arrays: copy it,
 * zero it, nothing to free. podnet_text holds the strings userdata needs and lives as long
 * as the userdata_pod_network that points into it. */
#ifndef VXLAN_PODNET_H
#define VXLAN_PODNET_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "userdata.h"

#define PODNET_ROUTES_MAX 64
#define PODNET_NEIGHBORS_MAX 32
#define PODNET_VNI_MAX 16777215u /* 24 bits */

struct podnet_route {
    uint32_t dst; /* network byte order */
    uint8_t dst_len;
    uint32_t gw; /* 0: none */
    char dev[IF_NAMESIZE];
    uint8_t protocol, scope; /* RTPROT_*, RT_SCOPE_* */
    uint32_t table, metric;  /* for ordering only */
};

struct podnet_neighbor {
    uint32_t ip;
    uint8_t mac[6];
    char dev[IF_NAMESIZE];
    uint16_t state; /* NUD_* */
};

struct podnet {
    /* pod side */
    char ifname[IF_NAMESIZE];
    uint32_t pod_ip;
    uint8_t pod_prefix;
    uint8_t mac[6];
    uint32_t mtu;
    uint32_t gateway; /* of the default route, 0 if it has none */
    struct podnet_route routes[PODNET_ROUTES_MAX];
    size_t n_routes;
    struct podnet_neighbor neighbors[PODNET_NEIGHBORS_MAX];
    size_t n_neighbors;
    /* worker side */
    char node_ifname[IF_NAMESIZE];
    uint32_t worker_ip;
    uint8_t worker_prefix;
    bool dedicated;
};

/* Inspect keeps main-table IPv4 unicast routes whose protocol is static, boot, dhcp or
 * kernel. */
bool podnet_route_wanted(uint8_t family, uint8_t type, uint32_t table, uint8_t protocol);

/* The Go daemon's order: (table, destination bytes, prefix length, metric). */
void podnet_routes_sort(struct podnet_route *r, size_t n);

/* Primary-interface choice among default-route devices, in the order netlink listed them:
 * the first wins unless a later one has the same alphabetic prefix and a lower numeric
 * suffix (eth0 beats eth1). Returns true when cand should replace cur. */
bool podnet_primary_better(const char *cur, const char *cand);

/* Appends one route per entry of POD_SUBNET_CIDRS ("a.b.c.d/n,..."; blanks around entries
 * allowed, empty list fine) via the pod's default gateway on its interface. -1 with err for
 * a malformed entry or when the routes do not fit. */
int podnet_subnets_add(struct podnet *pn, const char *cidrs, char *err, size_t errlen);

/* "a.b.c.d/n" into host-independent fields; -1 if malformed. */
int podnet_cidr_parse(const char *s, uint32_t *addr, uint8_t *len);

struct podnet_text {
    char pod_ip[24], hw_addr[18], worker_ip[24];
    char dst[PODNET_ROUTES_MAX][24], gw[PODNET_ROUTES_MAX][16];
    char nip[PODNET_NEIGHBORS_MAX][16], nmac[PODNET_NEIGHBORS_MAX][18];
    struct userdata_route routes[PODNET_ROUTES_MAX];
    struct userdata_neighbor neighbors[PODNET_NEIGHBORS_MAX];
};

/* Fills out (its tunnel/port/id/index/external fields are left to the caller) with pointers
 * into pn and txt. */
void podnet_to_userdata(const struct podnet *pn, struct podnet_text *txt, struct userdata_pod_network *out);

#endif
