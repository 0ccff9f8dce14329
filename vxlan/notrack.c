#include "notrack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <nftables/libnftables.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "podnet.h"

#define RULES_MAX 4096

/* The rules of our table as last seen, so a setup or teardown is one nft transaction (no
 * listing first); any failure drops the cache and the next call lists the table again. */
struct notrack {
    struct nft_ctx *ctx;
    pthread_mutex_t mu;
    bool cached;
    int n;
    struct notrack_rule rules[RULES_MAX]; /* under mu */
    struct notrack_rule echo[8];          /* scratch, under mu */
};

uint32_t notrack_comment_vni(const char *c)
{
    static const char pfx[] = "peerpod [vni:";
    if (!c || strncmp(c, pfx, sizeof(pfx) - 1))
        return 0;
    const char *p = c + sizeof(pfx) - 1;
    uint64_t v = 0;
    size_t digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 9) {
        v = v * 10 + (uint64_t)(*p++ - '0');
        digits++;
    }
    if (!digits || strcmp(p, "]") || v == 0 || v > PODNET_VNI_MAX)
        return 0;
    return (uint32_t)v;
}

int notrack_rules_parse(const char *json, size_t len, struct notrack_rule *out, size_t cap)
{
    json_t *root = json_loadb(json, len, 0, NULL);
    json_t *arr = json_object_get(root, "nftables");
    if (!json_is_array(arr)) {
        json_decref(root);
        return -1;
    }
    int n = 0;
    size_t i;
    json_t *item;
    json_array_foreach(arr, i, item) {
        json_t *rule = json_object_get(item, "rule");
        if (!rule) /* the echo of an added rule */
            rule = json_object_get(json_object_get(item, "add"), "rule");
        if (!json_is_object(rule))
            continue;
        const char *table = json_string_value(json_object_get(rule, "table"));
        const char *family = json_string_value(json_object_get(rule, "family"));
        const char *chain = json_string_value(json_object_get(rule, "chain"));
        json_t *handle = json_object_get(rule, "handle");
        if (!table || strcmp(table, NOTRACK_TABLE) || !family || strcmp(family, "ip") || !chain ||
            !json_is_integer(handle) || json_integer_value(handle) <= 0)
            continue;
        if ((size_t)n < cap) {
            struct notrack_rule *r = &out[n];
            snprintf(r->chain, sizeof(r->chain), "%s", chain);
            r->handle = (uint64_t)json_integer_value(handle);
            r->vni = notrack_comment_vni(json_string_value(json_object_get(rule, "comment")));
        }
        if (n < RULES_MAX * 16)
            n++;
    }
    json_decref(root);
    return n;
}

struct notrack *notrack_new(void)
{
    struct notrack *nt = calloc(1, sizeof(*nt));
    if (!nt)
        return NULL;
    nt->ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!nt->ctx || nft_ctx_buffer_output(nt->ctx) || nft_ctx_buffer_error(nt->ctx) ||
        pthread_mutex_init(&nt->mu, NULL)) {
        if (nt->ctx)
            nft_ctx_free(nt->ctx);
        free(nt);
        return NULL;
    }
    nft_ctx_output_set_flags(nt->ctx, NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE | NFT_CTX_OUTPUT_ECHO);
    return nt;
}

void notrack_free(struct notrack *nt)
{
    if (!nt)
        return;
    nft_ctx_free(nt->ctx);
    pthread_mutex_destroy(&nt->mu);
    free(nt);
}

/* Runs cmd; on failure copies the first line of nft's complaint into err. Under mu. */
static int run(struct notrack *nt, const char *cmd, const char *what, char *err, size_t errlen)
{
    (void)nft_ctx_get_output_buffer(nt->ctx); /* rewinds both buffers */
    (void)nft_ctx_get_error_buffer(nt->ctx);
    if (nft_run_cmd_from_buffer(nt->ctx, cmd) == 0)
        return 0;
    const char *e = nft_ctx_get_error_buffer(nt->ctx);
    size_t n = e ? strcspn(e, "\n") : 0;
    snprintf(err, errlen, "nftables: %s: %.*s", what, (int)(n > 200 ? 200 : n), e ? e : "");
    return -1;
}

/* Fills the cache from the kernel; an absent table is an empty one. Under mu. */
static int list(struct notrack *nt, char *err, size_t errlen)
{
    nt->cached = false;
    if (run(nt, "list table ip " NOTRACK_TABLE, "listing table " NOTRACK_TABLE, err, errlen)) {
        if (!strstr(err, "No such file or directory"))
            return -1;
        nt->n = 0;
        nt->cached = true;
        return 0;
    }
    const char *out = nft_ctx_get_output_buffer(nt->ctx);
    int n = notrack_rules_parse(out ? out : "", out ? strlen(out) : 0, nt->rules, RULES_MAX);
    if (n < 0 || n > RULES_MAX) {
        snprintf(err, errlen, "nftables: table %s: %s", NOTRACK_TABLE,
                 n < 0 ? "unreadable listing" : "more rules than this daemon manages");
        return -1;
    }
    nt->n = n;
    nt->cached = true;
    return 0;
}

static int cache(struct notrack *nt, char *err, size_t errlen)
{
    return nt->cached ? 0 : list(nt, err, errlen);
}

/* Appends "delete rule" commands for vni's cached rules to buf; returns how many. */
static int delete_cmds(const struct notrack *nt, uint32_t vni, char *buf, size_t cap, size_t *off)
{
    int k = 0;
    for (int i = 0; i < nt->n; i++) {
        if (nt->rules[i].vni != vni)
            continue;
        int w = snprintf(buf + *off, cap - *off, "delete rule ip " NOTRACK_TABLE " %s handle %llu\n",
                         nt->rules[i].chain, (unsigned long long)nt->rules[i].handle);
        if (w < 0 || (size_t)w >= cap - *off)
            return -1;
        *off += (size_t)w;
        k++;
    }
    return k;
}

static void cache_drop_vni(struct notrack *nt, uint32_t vni)
{
    int j = 0;
    for (int i = 0; i < nt->n; i++)
        if (nt->rules[i].vni != vni)
            nt->rules[j++] = nt->rules[i];
    nt->n = j;
}

static int add_once(struct notrack *nt, uint32_t vni, const char *ip, uint16_t port, char *err, size_t errlen)
{
    if (cache(nt, err, errlen))
        return -1;
    char cmd[2048];
    size_t off = (size_t)snprintf(cmd, sizeof(cmd),
                                  "add table ip " NOTRACK_TABLE "\n"
                                  "add chain ip " NOTRACK_TABLE
                                  " output { type filter hook output priority raw; policy accept; }\n"
                                  "add chain ip " NOTRACK_TABLE
                                  " prerouting { type filter hook prerouting priority raw; policy accept; }\n");
    int w;
    if (delete_cmds(nt, vni, cmd, sizeof(cmd), &off) < 0 ||
        (w = snprintf(cmd + off, sizeof(cmd) - off,
                      "add rule ip " NOTRACK_TABLE
                      " output ip daddr %s udp dport %u notrack comment \"peerpod [vni:%u]\"\n"
                      "add rule ip " NOTRACK_TABLE
                      " prerouting ip saddr %s udp dport %u notrack comment \"peerpod [vni:%u]\"\n",
                      ip, port, vni, ip, port, vni)) < 0 ||
        (size_t)w >= sizeof(cmd) - off) {
        snprintf(err, errlen, "nftables: too many rules for VNI %u in table %s", vni, NOTRACK_TABLE);
        return -1;
    }
    if (run(nt, cmd, "adding the conntrack bypass rules", err, errlen)) {
        nt->cached = false;
        return -1;
    }
    cache_drop_vni(nt, vni);
    const char *out = nft_ctx_get_output_buffer(nt->ctx);
    int k = notrack_rules_parse(out ? out : "", out ? strlen(out) : 0, nt->echo, 8);
    if (k != 2 || nt->n + k > RULES_MAX) {
        nt->cached = false; /* no echo to learn the handles from: list next time */
        return 0;
    }
    memcpy(&nt->rules[nt->n], nt->echo, 2 * sizeof(nt->echo[0]));
    nt->n += 2;
    return 0;
}

int notrack_add(struct notrack *nt, uint32_t vni, uint32_t remote, uint16_t port, char *err, size_t errlen)
{
    char ip[16];
    struct in_addr a = {.s_addr = remote};
    if (!vni || !inet_ntop(AF_INET, &a, ip, sizeof(ip))) {
        snprintf(err, errlen, "nftables: bad tunnel parameters");
        return -1;
    }
    pthread_mutex_lock(&nt->mu);
    bool was_cached = nt->cached;
    int rc = add_once(nt, vni, ip, port, err, errlen);
    if (rc && was_cached) /* the cache may have been stale: once more from a fresh listing */
        rc = add_once(nt, vni, ip, port, err, errlen);
    pthread_mutex_unlock(&nt->mu);
    return rc;
}

static int del_once(struct notrack *nt, uint32_t vni, char *err, size_t errlen)
{
    if (cache(nt, err, errlen))
        return -1;
    char cmd[2048];
    size_t off = 0;
    int k = delete_cmds(nt, vni, cmd, sizeof(cmd), &off);
    if (k < 0) {
        snprintf(err, errlen, "nftables: too many rules for VNI %u in table %s", vni, NOTRACK_TABLE);
        return -1;
    }
    if (k == 0)
        return 0;
    if (k == nt->n) /* the last ones: the table goes too */
        snprintf(cmd, sizeof(cmd), "delete table ip " NOTRACK_TABLE "\n");
    if (run(nt, cmd, "removing the conntrack bypass rules", err, errlen)) {
        nt->cached = false;
        return -1;
    }
    cache_drop_vni(nt, vni);
    return 0;
}

int notrack_del(struct notrack *nt, uint32_t vni, char *err, size_t errlen)
{
    pthread_mutex_lock(&nt->mu);
    bool was_cached = nt->cached;
    int rc = del_once(nt, vni, err, errlen);
    if (rc && was_cached)
        rc = del_once(nt, vni, err, errlen);
    pthread_mutex_unlock(&nt->mu);
    return rc;
}

int notrack_vnis(struct notrack *nt, uint32_t *out, size_t cap, char *err, size_t errlen)
{
    pthread_mutex_lock(&nt->mu);
    int rc = list(nt, err, errlen);
    int k = 0;
    for (int i = 0; !rc && i < nt->n; i++) {
        uint32_t v = nt->rules[i].vni;
        bool seen = v == 0;
        for (int j = 0; j < i && !seen; j++)
            seen = nt->rules[j].vni == v;
        if (seen)
            continue;
        if ((size_t)k < cap)
            out[k] = v;
        k++;
    }
    pthread_mutex_unlock(&nt->mu);
    return rc ? -1 : k;
}
