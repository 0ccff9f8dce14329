#include "tunnel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/tc_act/tc_mirred.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nl.h"

#define INGRESS_HANDLE 0xffff0000u
#define FILTER_PRIO 1

/* ---- links ---------------------------------------------------------------------------- */

struct link_lookup {
    int index;
};

static int index_cb(const struct nlmsghdr *nlh, void *data)
{
    struct link_lookup *l = data;
    if (nlh->nlmsg_type == RTM_NEWLINK)
        l->index = ((const struct ifinfomsg *)mnl_nlmsg_get_payload(nlh))->ifi_index;
    return 0;
}

/* ifindex of name in nl's namespace, or -errno (-ENODEV when absent). */
static int link_index(struct nl *nl, const char *name)
{
    char buf[NL_BUF];
    struct nlmsghdr *nlh = nl_msg(nl, buf, RTM_GETLINK, 0);
    struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    struct link_lookup l = {0};
    int rc = nl_get(nl, nlh, index_cb, &l);
    if (rc)
        return rc;
    return l.index > 0 ? l.index : -ENODEV;
}

static int link_delete(struct nl *nl, const char *name)
{
    char buf[NL_BUF];
    struct nlmsghdr *nlh = nl_msg(nl, buf, RTM_DELLINK, 0);
    struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    int rc = nl_request(nl, nlh);
    return rc == -ENODEV ? 0 : rc;
}

/* RTM_NEWLINK of a vxlan device named TUNNEL_DEVICE, created up inside the namespace of
 * pod_fd; sent on nl, whose namespace keeps the device's UDP socket. Attributes as the Go
 * daemon's netlink library sends them. */
static int vxlan_create(struct nl *nl, int pod_fd, uint32_t vni, uint32_t remote, uint16_t port)
{
    char buf[NL_BUF];
    struct nlmsghdr *nlh = nl_msg(nl, buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, TUNNEL_DEVICE);
    mnl_attr_put_u32(nlh, IFLA_TXQLEN, 0);
    mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)pod_fd);
    struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "vxlan");
    struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
    mnl_attr_put_u32(nlh, IFLA_VXLAN_ID, vni);
    mnl_attr_put(nlh, IFLA_VXLAN_GROUP, sizeof(remote), &remote);
    mnl_attr_put_u8(nlh, IFLA_VXLAN_TTL, 0);
    mnl_attr_put_u8(nlh, IFLA_VXLAN_TOS, 0);
    mnl_attr_put_u8(nlh, IFLA_VXLAN_LEARNING, 0);
    mnl_attr_put_u8(nlh, IFLA_VXLAN_PROXY, 0);
    mnl_attr_put_u8(nlh, IFLA_VXLAN_RSC, 0);
    mnl_attr_put_u8(nlh, IFLA_VXLAN_L2MISS, 0);
    mnl_attr_put_u8(nlh, IFLA_VXLAN_L3MISS, 0);
    mnl_attr_put_u8(nlh, IFLA_VXLAN_UDP_ZERO_CSUM6_TX, 0);
    mnl_attr_put_u8(nlh, IFLA_VXLAN_UDP_ZERO_CSUM6_RX, 0);
    mnl_attr_put_u16(nlh, IFLA_VXLAN_PORT, htons(port));
    mnl_attr_nest_end(nlh, data);
    mnl_attr_nest_end(nlh, info);
    return nl_request(nl, nlh);
}

/* ---- tc ------------------------------------------------------------------------------- */

static struct nlmsghdr *tc_msg(struct nl *nl, void *buf, uint16_t type, uint16_t flags, int ifindex,
                               uint32_t parent, uint32_t handle, uint32_t info)
{
    struct nlmsghdr *nlh = nl_msg(nl, buf, type, flags);
    struct tcmsg *tc = mnl_nlmsg_put_extra_header(nlh, sizeof(*tc));
    tc->tcm_family = AF_UNSPEC;
    tc->tcm_ifindex = ifindex;
    tc->tcm_parent = parent;
    tc->tcm_handle = handle;
    tc->tcm_info = info;
    return nlh;
}

static int ingress_delete(struct nl *nl, int ifindex)
{
    char buf[NL_BUF];
    struct nlmsghdr *nlh = tc_msg(nl, buf, RTM_DELQDISC, 0, ifindex, TC_H_INGRESS, INGRESS_HANDLE, 0);
    mnl_attr_put_strz(nlh, TCA_KIND, "ingress");
    int rc = nl_request(nl, nlh);
    /* No ingress qdisc there: EINVAL or ENOENT depending on the kernel. */
    return rc == -EINVAL || rc == -ENOENT || rc == -ENODEV ? 0 : rc;
}

static int ingress_add(struct nl *nl, int ifindex)
{
    char buf[NL_BUF];
    struct nlmsghdr *nlh =
        tc_msg(nl, buf, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, ifindex, TC_H_INGRESS, INGRESS_HANDLE, 0);
    mnl_attr_put_strz(nlh, TCA_KIND, "ingress");
    return nl_request(nl, nlh);
}

/* u32 match-all on ingress of from, action mirred egress redirect to `to`, verdict stolen. */
static int redirect_add(struct nl *nl, int from, int to)
{
    char buf[NL_BUF];
    uint32_t info = TC_H_MAKE((uint32_t)FILTER_PRIO << 16, htons(ETH_P_ALL));
    struct nlmsghdr *nlh = tc_msg(nl, buf, RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, from, INGRESS_HANDLE, 0, info);
    mnl_attr_put_strz(nlh, TCA_KIND, "u32");
    struct nlattr *opts = mnl_attr_nest_start(nlh, TCA_OPTIONS);
    /* A selector with one key of mask 0, value 0: every packet. */
    uint8_t sel[sizeof(struct tc_u32_sel) + sizeof(struct tc_u32_key)];
    struct tc_u32_sel hdr;
    memset(sel, 0, sizeof(sel));
    memset(&hdr, 0, sizeof(hdr));
    hdr.flags = TC_U32_TERMINAL;
    hdr.nkeys = 1;
    memcpy(sel, &hdr, sizeof(hdr));
    mnl_attr_put(nlh, TCA_U32_SEL, sizeof(sel), sel);
    struct nlattr *acts = mnl_attr_nest_start(nlh, TCA_U32_ACT);
    struct nlattr *act = mnl_attr_nest_start(nlh, 1);
    mnl_attr_put_strz(nlh, TCA_ACT_KIND, "mirred");
    struct nlattr *aopts = mnl_attr_nest_start(nlh, TCA_ACT_OPTIONS);
    struct tc_mirred m;
    memset(&m, 0, sizeof(m));
    m.action = TC_ACT_STOLEN;
    m.eaction = TCA_EGRESS_REDIR;
    m.ifindex = (uint32_t)to;
    mnl_attr_put(nlh, TCA_MIRRED_PARMS, sizeof(m), &m);
    mnl_attr_nest_end(nlh, aopts);
    mnl_attr_nest_end(nlh, act);
    mnl_attr_nest_end(nlh, acts);
    mnl_attr_nest_end(nlh, opts);
    return nl_request(nl, nlh);
}

/* ---- setup / teardown ----------------------------------------------------------------- */

int tunnel_setup(struct notrack *nt, const struct tunnel_params *p, char *err, size_t errlen)
{
    if (notrack_add(nt, p->vni, p->remote, p->port, err, errlen))
        return -1;
    struct nl node, pod;
    int rc, pod_fd = -1, pod_if, vx_if;
    const char *step = "";
    if (nl_open(&node, NULL, err, errlen))
        return -1;
    if (nl_open(&pod, p->netns_path, err, errlen)) {
        nl_close(&node);
        return -1;
    }
    if ((pod_fd = nl_netns_fd(p->netns_path)) < 0) {
        rc = pod_fd;
        step = "opening the pod network namespace";
        goto fail;
    }
    if ((pod_if = link_index(&pod, p->pod_ifname)) < 0) {
        rc = pod_if;
        step = "finding the pod interface";
        goto fail;
    }
    /* A device left by an interrupted setup is replaced, never reused half-made. */
    step = "removing a stale " TUNNEL_DEVICE;
    if ((rc = link_delete(&pod, TUNNEL_DEVICE)))
        goto fail;
    step = "creating " TUNNEL_DEVICE;
    if ((rc = vxlan_create(&node, pod_fd, p->vni, p->remote, p->port))) {
        if (rc == -EEXIST) {
            snprintf(err, errlen, "creating " TUNNEL_DEVICE " in %s: VNI %u on UDP port %u is already used by "
                     "another VXLAN device of this worker", p->netns_path, p->vni, p->port);
            goto out;
        }
        goto fail;
    }
    step = "finding " TUNNEL_DEVICE;
    if ((vx_if = link_index(&pod, TUNNEL_DEVICE)) < 0) {
        rc = vx_if;
        goto fail;
    }
    step = "adding the tc redirects";
    if ((rc = ingress_delete(&pod, pod_if)) || (rc = ingress_add(&pod, pod_if)) ||
        (rc = redirect_add(&pod, pod_if, vx_if)) || (rc = ingress_add(&pod, vx_if)) ||
        (rc = redirect_add(&pod, vx_if, pod_if)))
        goto fail;
    rc = 0;
    goto out;
fail:
    snprintf(err, errlen, "%s in %s (%s, VNI %u): %s", step, p->netns_path, p->pod_ifname, p->vni, strerror(-rc));
out:
    if (pod_fd >= 0)
        close(pod_fd);
    nl_close(&pod);
    nl_close(&node);
    return rc ? -1 : 0;
}

int tunnel_teardown(struct notrack *nt, const struct tunnel_params *p, bool *netns_gone, char *err, size_t errlen)
{
    int rc = 0;
    *netns_gone = false;
    err[0] = '\0';
    struct nl pod;
    char e2[256];
    if (p->netns_path && p->netns_path[0]) {
        int orc = nl_open(&pod, p->netns_path, e2, sizeof(e2));
        if (orc == -ENOENT || orc == -EINVAL) {
            *netns_gone = true; /* the pod's namespace went with the pod, and its devices with it */
        } else if (orc) {
            snprintf(err, errlen, "%s", e2);
            rc = -1;
        } else {
            int pod_if = link_index(&pod, p->pod_ifname);
            int r = pod_if > 0 ? ingress_delete(&pod, pod_if) : pod_if == -ENODEV ? 0 : pod_if;
            int r2 = link_delete(&pod, TUNNEL_DEVICE); /* its qdisc and filter go with it */
            if (r || r2) {
                snprintf(err, errlen, "removing the tunnel from %s: %s", p->netns_path, strerror(-(r ? r : r2)));
                rc = -1;
            }
            nl_close(&pod);
        }
    }
    if (notrack_del(nt, p->vni, e2, sizeof(e2)) && !rc) {
        snprintf(err, errlen, "%s", e2);
        rc = -1;
    }
    return rc;
}

/* ---- scan ----------------------------------------------------------------------------- */

struct scan_ctx {
    void (*fn)(uint32_t vni, uint16_t port, const char *ifname, void *arg);
    void *arg;
};

static int scan_cb(const struct nlmsghdr *nlh, void *data)
{
    struct scan_ctx *c = data;
    const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
    if (nlh->nlmsg_type != RTM_NEWLINK)
        return 0;
    const char *name = "", *kind = NULL;
    const struct nlattr *a, *infodata = NULL;
    mnl_attr_for_each(a, nlh, sizeof(*ifi)) {
        if (mnl_attr_get_type(a) == IFLA_IFNAME && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
            name = mnl_attr_get_str(a);
        if (mnl_attr_get_type(a) != IFLA_LINKINFO || mnl_attr_validate(a, MNL_TYPE_NESTED))
            continue;
        const struct nlattr *b;
        mnl_attr_for_each_nested(b, a) {
            if (mnl_attr_get_type(b) == IFLA_INFO_KIND && mnl_attr_validate(b, MNL_TYPE_NUL_STRING) == 0)
                kind = mnl_attr_get_str(b);
            else if (mnl_attr_get_type(b) == IFLA_INFO_DATA && mnl_attr_validate(b, MNL_TYPE_NESTED) == 0)
                infodata = b;
        }
    }
    if (!kind || strcmp(kind, "vxlan") || !infodata)
        return 0;
    uint32_t vni = 0;
    uint16_t port = 0;
    const struct nlattr *b;
    mnl_attr_for_each_nested(b, infodata) {
        if (mnl_attr_get_type(b) == IFLA_VXLAN_ID && mnl_attr_validate(b, MNL_TYPE_U32) == 0)
            vni = mnl_attr_get_u32(b);
        else if (mnl_attr_get_type(b) == IFLA_VXLAN_PORT && mnl_attr_validate(b, MNL_TYPE_U16) == 0)
            port = ntohs(mnl_attr_get_u16(b));
    }
    c->fn(vni, port, name, c->arg);
    return 0;
}

int tunnel_scan(const char *netns_path, void (*fn)(uint32_t vni, uint16_t port, const char *ifname, void *arg),
                void *arg, char *err, size_t errlen)
{
    struct scan_ctx c = {fn, arg};
    int rc;
    /* An interrupted dump (a link changed meanwhile) leaves its rest queued on the socket:
     * read again on a new one. fn may then see a device twice. */
    for (int i = 0; i <= NL_DUMP_TRIES; i++) {
        struct nl nl;
        if ((rc = nl_open(&nl, netns_path, err, errlen)))
            return rc;
        rc = nl_dump_all(&nl, RTM_GETLINK, AF_UNSPEC, sizeof(struct ifinfomsg), scan_cb, &c);
        nl_close(&nl);
        if (rc != -EINTR)
            break;
    }
    if (rc)
        snprintf(err, errlen, "listing links in %s: %s", netns_path ? netns_path : "the worker", strerror(-rc));
    return rc;
}
