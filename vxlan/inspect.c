#include "inspect.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nl.h"

struct link_info {
    int index;
    char name[IF_NAMESIZE];
    uint8_t mac[6];
    uint32_t mtu;
};

/* Every link of the namespace: a node with hundreds of pods has hundreds of veths, and a
 * link missing here would make a route's device unknown. Grown as the dump goes; freed by
 * the caller. */
struct links {
    struct link_info *v;
    size_t n, cap;
};

static const struct link_info *link_find(const struct links *l, int index)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].index == index)
            return &l->v[i];
    return NULL;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
    struct links *l = data;
    const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
    if (nlh->nlmsg_type != RTM_NEWLINK)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct link_info *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    struct link_info *li = &l->v[l->n];
    memset(li, 0, sizeof(*li));
    li->index = ifi->ifi_index;
    const struct nlattr *a;
    mnl_attr_for_each(a, nlh, sizeof(*ifi)) {
        switch (mnl_attr_get_type(a)) {
        case IFLA_IFNAME:
            if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
                snprintf(li->name, sizeof(li->name), "%s", mnl_attr_get_str(a));
            break;
        case IFLA_ADDRESS:
            if (mnl_attr_get_payload_len(a) == 6)
                memcpy(li->mac, mnl_attr_get_payload(a), 6);
            break;
        case IFLA_MTU:
            if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
                li->mtu = mnl_attr_get_u32(a);
            break;
        }
    }
    l->n++;
    return 0;
}

static int links_read(struct nl *nl, struct links *l)
{
    l->n = 0;
    return nl_dump_all(nl, RTM_GETLINK, AF_UNSPEC, sizeof(struct ifinfomsg), link_cb, l);
}

/* ---- routes --------------------------------------------------------------------------- */

struct route_acc {
    const struct links *links;
    struct podnet *pn;  /* routes kept (pod side); NULL on the node side */
    bool overflow;
    /* default routes seen, for the primary interface */
    char primary[IF_NAMESIZE];
    int primary_index;
    uint32_t primary_gw;
};

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
    struct route_acc *acc = data;
    const struct rtmsg *rt = mnl_nlmsg_get_payload(nlh);
    if (nlh->nlmsg_type != RTM_NEWROUTE)
        return 0;
    uint32_t table = rt->rtm_table, dst = 0, gw = 0, metric = 0;
    int oif = 0;
    const struct nlattr *a;
    mnl_attr_for_each(a, nlh, sizeof(*rt)) {
        uint16_t t = mnl_attr_get_type(a);
        bool u32 = mnl_attr_validate(a, MNL_TYPE_U32) == 0;
        if (t == RTA_TABLE && u32)
            table = mnl_attr_get_u32(a);
        else if (t == RTA_DST && u32)
            dst = mnl_attr_get_u32(a);
        else if (t == RTA_GATEWAY && u32)
            gw = mnl_attr_get_u32(a);
        else if (t == RTA_OIF && u32)
            oif = (int)mnl_attr_get_u32(a);
        else if (t == RTA_PRIORITY && u32)
            metric = mnl_attr_get_u32(a);
    }
    if (!podnet_route_wanted(rt->rtm_family, rt->rtm_type, table, rt->rtm_protocol))
        return 0;
    const struct link_info *li = link_find(acc->links, oif);
    if (rt->rtm_dst_len == 0 && li && podnet_primary_better(acc->primary, li->name)) {
        snprintf(acc->primary, sizeof(acc->primary), "%s", li->name);
        acc->primary_index = oif;
        acc->primary_gw = gw;
    }
    if (!acc->pn)
        return 0;
    if (acc->pn->n_routes >= PODNET_ROUTES_MAX) {
        acc->overflow = true;
        return 0;
    }
    struct podnet_route *r = &acc->pn->routes[acc->pn->n_routes++];
    memset(r, 0, sizeof(*r));
    r->dst = dst;
    r->dst_len = rt->rtm_dst_len;
    r->gw = gw;
    if (li)
        memcpy(r->dev, li->name, sizeof(r->dev));
    r->protocol = rt->rtm_protocol;
    r->scope = rt->rtm_scope;
    r->table = table;
    r->metric = metric;
    return 0;
}

static int routes_read(struct nl *nl, struct route_acc *acc)
{
    return nl_dump_all(nl, RTM_GETROUTE, AF_INET, sizeof(struct rtmsg), route_cb, acc);
}

/* ---- addresses ------------------------------------------------------------------------ */

struct addr_acc {
    int index;
    unsigned count;
    uint32_t first;
    uint8_t first_len;
};

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
    struct addr_acc *acc = data;
    const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
    if (nlh->nlmsg_type != RTM_NEWADDR || ifa->ifa_family != AF_INET || (int)ifa->ifa_index != acc->index)
        return 0;
    uint32_t local = 0, address = 0;
    bool has_local = false, has_address = false;
    const struct nlattr *a;
    mnl_attr_for_each(a, nlh, sizeof(*ifa)) {
        if (mnl_attr_validate(a, MNL_TYPE_U32))
            continue;
        if (mnl_attr_get_type(a) == IFA_LOCAL) {
            local = mnl_attr_get_u32(a);
            has_local = true;
        } else if (mnl_attr_get_type(a) == IFA_ADDRESS) {
            address = mnl_attr_get_u32(a);
            has_address = true;
        }
    }
    if (!has_local && !has_address)
        return 0;
    if (acc->count++ == 0) {
        acc->first = has_local ? local : address; /* IFA_ADDRESS is the peer on point-to-point links */
        acc->first_len = ifa->ifa_prefixlen;
    }
    return 0;
}

static int addrs_read(struct nl *nl, struct addr_acc *acc)
{
    return nl_dump_all(nl, RTM_GETADDR, AF_INET, sizeof(struct ifaddrmsg), addr_cb, acc);
}

/* ---- neighbours ----------------------------------------------------------------------- */

struct neigh_acc {
    struct podnet *pn;
    int index;
    bool overflow;
};

static int neigh_cb(const struct nlmsghdr *nlh, void *data)
{
    struct neigh_acc *acc = data;
    const struct ndmsg *nd = mnl_nlmsg_get_payload(nlh);
    if (nlh->nlmsg_type != RTM_NEWNEIGH || nd->ndm_family != AF_INET || nd->ndm_ifindex != acc->index ||
        !(nd->ndm_state & NUD_PERMANENT))
        return 0;
    uint32_t ip = 0;
    const uint8_t *mac = NULL;
    const struct nlattr *a;
    mnl_attr_for_each(a, nlh, sizeof(*nd)) {
        if (mnl_attr_get_type(a) == NDA_DST && mnl_attr_validate(a, MNL_TYPE_U32) == 0)
            ip = mnl_attr_get_u32(a);
        else if (mnl_attr_get_type(a) == NDA_LLADDR && mnl_attr_get_payload_len(a) == 6)
            mac = mnl_attr_get_payload(a);
    }
    if (!ip || !mac)
        return 0;
    if (acc->pn->n_neighbors >= PODNET_NEIGHBORS_MAX) {
        acc->overflow = true;
        return 0;
    }
    struct podnet_neighbor *n = &acc->pn->neighbors[acc->pn->n_neighbors++];
    memset(n, 0, sizeof(*n));
    n->ip = ip;
    memcpy(n->mac, mac, 6);
    memcpy(n->dev, acc->pn->ifname, sizeof(n->dev));
    n->state = NUD_PERMANENT;
    return 0;
}

static int neighs_read(struct nl *nl, struct neigh_acc *acc)
{
    return nl_dump_all(nl, RTM_GETNEIGH, AF_INET, sizeof(struct ndmsg), neigh_cb, acc);
}

/* ---- entry points --------------------------------------------------------------------- */

static int node_once(const char *host_iface, struct podnet *pn, char *err, size_t errlen)
{
    struct nl nl;
    struct links links = {0};
    int rc = nl_open(&nl, NULL, err, errlen);
    if (rc)
        return rc;
    struct route_acc racc = {.links = &links};
    if ((rc = links_read(&nl, &links)) || (rc = routes_read(&nl, &racc))) {
        snprintf(err, errlen, "reading the worker's links and routes: %s", strerror(-rc));
        goto out;
    }
    const char *tun = host_iface && host_iface[0] ? host_iface : racc.primary;
    if (!tun[0]) {
        snprintf(err, errlen, "the worker's network namespace has no IPv4 default route to find its primary "
                              "interface; give the tunnel interface with -host-interface");
        rc = -ENOENT;
        goto out;
    }
    const struct link_info *li = NULL;
    for (size_t i = 0; i < links.n; i++)
        if (!strcmp(links.v[i].name, tun))
            li = &links.v[i];
    if (!li) {
        snprintf(err, errlen, "the worker has no interface %s (-host-interface)", tun);
        rc = -ENODEV;
        goto out;
    }
    struct addr_acc aacc = {.index = li->index};
    if ((rc = addrs_read(&nl, &aacc))) {
        snprintf(err, errlen, "reading the addresses of %s: %s", tun, strerror(-rc));
        goto out;
    }
    if (!aacc.count) {
        snprintf(err, errlen, "the worker's tunnel interface %s has no IPv4 address", tun);
        rc = -EADDRNOTAVAIL;
        goto out;
    }
    snprintf(pn->node_ifname, sizeof(pn->node_ifname), "%s", tun);
    pn->worker_ip = aacc.first;
    pn->worker_prefix = aacc.first_len;
    pn->dedicated = host_iface && host_iface[0] && strcmp(host_iface, racc.primary) != 0;
out:
    free(links.v);
    nl_close(&nl);
    return rc;
}

static int pod_once(const char *netns_path, struct podnet *pn, char *err, size_t errlen)
{
    struct nl nl;
    struct links links = {0};
    int rc = nl_open(&nl, netns_path, err, errlen);
    if (rc)
        return rc;
    pn->n_routes = 0;
    pn->n_neighbors = 0;
    struct route_acc racc = {.links = &links, .pn = pn};
    if ((rc = links_read(&nl, &links)) || (rc = routes_read(&nl, &racc))) {
        snprintf(err, errlen, "pod network namespace %s: reading links and routes: %s", netns_path, strerror(-rc));
        goto out;
    }
    if (racc.overflow) {
        snprintf(err, errlen, "pod network namespace %s has more than %d routes", netns_path, PODNET_ROUTES_MAX);
        rc = -E2BIG;
        goto out;
    }
    const struct link_info *li = link_find(&links, racc.primary_index);
    if (!racc.primary[0] || !li) {
        snprintf(err, errlen, "pod network namespace %s has no IPv4 default route; the CNI plugin did not set up "
                              "the pod's network", netns_path);
        rc = -ENOENT;
        goto out;
    }
    snprintf(pn->ifname, sizeof(pn->ifname), "%s", li->name);
    memcpy(pn->mac, li->mac, 6);
    pn->mtu = li->mtu;
    pn->gateway = racc.primary_gw;
    struct addr_acc aacc = {.index = li->index};
    if ((rc = addrs_read(&nl, &aacc))) {
        snprintf(err, errlen, "pod network namespace %s: reading addresses of %s: %s", netns_path, li->name,
                 strerror(-rc));
        goto out;
    }
    if (aacc.count != 1) {
        snprintf(err, errlen, "pod interface %s in %s has %u IPv4 addresses; peer pods need exactly one "
                              "(IPv6-only pods are not supported)", li->name, netns_path, aacc.count);
        rc = -EINVAL;
        goto out;
    }
    pn->pod_ip = aacc.first;
    pn->pod_prefix = aacc.first_len;
    struct neigh_acc nacc = {.pn = pn, .index = li->index};
    if ((rc = neighs_read(&nl, &nacc))) {
        snprintf(err, errlen, "pod network namespace %s: reading neighbours: %s", netns_path, strerror(-rc));
        goto out;
    }
    if (nacc.overflow) {
        snprintf(err, errlen, "pod interface %s has more than %d permanent neighbours", li->name,
                 PODNET_NEIGHBORS_MAX);
        rc = -E2BIG;
        goto out;
    }
    podnet_routes_sort(pn->routes, pn->n_routes);
out:
    free(links.v);
    nl_close(&nl);
    return rc;
}

/* A dump the kernel marks interrupted (NLM_F_DUMP_INTR, EINTR from libmnl) raced a change of
 * the namespace's links, routes or addresses, e.g. a CNI adding another pod: read it all again. */
int inspect_node(const char *host_iface, struct podnet *pn, char *err, size_t errlen)
{
    int rc;
    for (int i = 0; (rc = node_once(host_iface, pn, err, errlen)) == -EINTR && i < NL_DUMP_TRIES; i++)
        ;
    return rc;
}

int inspect_pod(const char *netns_path, struct podnet *pn, char *err, size_t errlen)
{
    int rc;
    for (int i = 0; (rc = pod_once(netns_path, pn, err, errlen)) == -EINTR && i < NL_DUMP_TRIES; i++)
        ;
    return rc;
}
