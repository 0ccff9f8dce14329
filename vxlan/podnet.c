#include "podnet.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

bool podnet_route_wanted(uint8_t family, uint8_t type, uint32_t table, uint8_t protocol)
{
    if (family != AF_INET || type != RTN_UNICAST || table != RT_TABLE_MAIN)
        return false;
    return protocol == RTPROT_STATIC || protocol == RTPROT_BOOT || protocol == RTPROT_DHCP ||
           protocol == RTPROT_KERNEL;
}

static int route_cmp(const void *a, const void *b)
{
    const struct podnet_route *x = a, *y = b;
    if (x->table != y->table)
        return x->table < y->table ? -1 : 1;
    uint32_t dx = ntohl(x->dst), dy = ntohl(y->dst);
    if (dx != dy)
        return dx < dy ? -1 : 1;
    if (x->dst_len != y->dst_len)
        return x->dst_len < y->dst_len ? -1 : 1;
    if (x->metric != y->metric)
        return x->metric < y->metric ? -1 : 1;
    return 0;
}

void podnet_routes_sort(struct podnet_route *r, size_t n)
{
    if (n > 1)
        qsort(r, n, sizeof(*r), route_cmp);
}

/* Splits "eth12" into prefix length 3 and suffix 12; no digits at the end gives -1. */
static long name_suffix(const char *s, size_t *plen)
{
    size_t n = strlen(s), i = n;
    while (i > 0 && isdigit((unsigned char)s[i - 1]))
        i--;
    *plen = i;
    if (i == n || n - i > 9)
        return -1;
    return strtol(s + i, NULL, 10);
}

bool podnet_primary_better(const char *cur, const char *cand)
{
    if (!cur || !cur[0])
        return true;
    size_t pa, pb;
    long sa = name_suffix(cur, &pa), sb = name_suffix(cand, &pb);
    if (sa < 0 || sb < 0 || pa != pb || memcmp(cur, cand, pa))
        return false;
    return sb < sa;
}

int podnet_cidr_parse(const char *s, uint32_t *addr, uint8_t *len)
{
    char buf[24];
    const char *slash = strchr(s, '/');
    if (!slash || (size_t)(slash - s) >= sizeof(buf) || !slash[1] || strlen(slash + 1) > 2)
        return -1;
    memcpy(buf, s, (size_t)(slash - s));
    buf[slash - s] = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, buf, &a) != 1)
        return -1;
    for (const char *p = slash + 1; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    int l = atoi(slash + 1);
    if (l > 32)
        return -1;
    *addr = a.s_addr;
    *len = (uint8_t)l;
    return 0;
}

int podnet_subnets_add(struct podnet *pn, const char *cidrs, char *err, size_t errlen)
{
    if (!cidrs)
        return 0;
    const char *p = cidrs;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if (t > p) {
            char one[32];
            uint32_t a;
            uint8_t l;
            if ((size_t)(t - p) >= sizeof(one)) {
                snprintf(err, errlen, "POD_SUBNET_CIDRS: an entry is too long for an IPv4 CIDR");
                return -1;
            }
            memcpy(one, p, (size_t)(t - p));
            one[t - p] = '\0';
            if (podnet_cidr_parse(one, &a, &l)) {
                snprintf(err, errlen, "POD_SUBNET_CIDRS: '%s' is not an IPv4 CIDR (a.b.c.d/n)", one);
                return -1;
            }
            if (pn->n_routes >= PODNET_ROUTES_MAX) {
                snprintf(err, errlen, "POD_SUBNET_CIDRS: more than %d routes in all", PODNET_ROUTES_MAX);
                return -1;
            }
            struct podnet_route *r = &pn->routes[pn->n_routes++];
            memset(r, 0, sizeof(*r));
            r->dst = a;
            r->dst_len = l;
            r->gw = pn->gateway;
            memcpy(r->dev, pn->ifname, sizeof(r->dev));
        }
        p = *e ? e + 1 : e;
    }
    return 0;
}

static void ip_text(uint32_t a, char *out, size_t cap)
{
    struct in_addr in = {.s_addr = a};
    if (!inet_ntop(AF_INET, &in, out, (socklen_t)cap))
        out[0] = '\0';
}

static void cidr_text(uint32_t a, uint8_t len, char *out, size_t cap)
{
    char ip[16];
    ip_text(a, ip, sizeof(ip));
    snprintf(out, cap, "%s/%u", ip, len);
}

static void mac_text(const uint8_t m[6], char out[18])
{
    snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

void podnet_to_userdata(const struct podnet *pn, struct podnet_text *txt, struct userdata_pod_network *out)
{
    memset(txt, 0, sizeof(*txt));
    cidr_text(pn->pod_ip, pn->pod_prefix, txt->pod_ip, sizeof(txt->pod_ip));
    mac_text(pn->mac, txt->hw_addr);
    cidr_text(pn->worker_ip, pn->worker_prefix, txt->worker_ip, sizeof(txt->worker_ip));
    for (size_t i = 0; i < pn->n_routes; i++) {
        const struct podnet_route *r = &pn->routes[i];
        cidr_text(r->dst, r->dst_len, txt->dst[i], sizeof(txt->dst[i]));
        if (r->gw)
            ip_text(r->gw, txt->gw[i], sizeof(txt->gw[i]));
        txt->routes[i] = (struct userdata_route){
            .dst = txt->dst[i], .gw = txt->gw[i], .dev = r->dev, .protocol = r->protocol, .scope = r->scope};
    }
    for (size_t i = 0; i < pn->n_neighbors; i++) {
        const struct podnet_neighbor *nb = &pn->neighbors[i];
        ip_text(nb->ip, txt->nip[i], sizeof(txt->nip[i]));
        mac_text(nb->mac, txt->nmac[i]);
        txt->neighbors[i] = (struct userdata_neighbor){
            .ip = txt->nip[i], .hw_addr = txt->nmac[i], .dev = nb->dev, .state = nb->state};
    }
    out->pod_ip = txt->pod_ip;
    out->pod_hw_addr = txt->hw_addr;
    out->interface = pn->ifname;
    out->worker_node_ip = txt->worker_ip;
    out->routes = pn->n_routes ? txt->routes : NULL;
    out->n_routes = pn->n_routes;
    out->neighbors = pn->n_neighbors ? txt->neighbors : NULL;
    out->n_neighbors = pn->n_neighbors;
    out->mtu = (int)pn->mtu;
    out->dedicated = pn->dedicated;
}
