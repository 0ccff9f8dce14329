/* notrack: conntrack bypass for the tunnels' UDP in the worker's namespace (spec
 * network-and-operations.md A.2 step 2: the VXLAN source port is random, so tracked packets
 * would fill the conntrack table with UNREPLIED flows).
 *
 * Through libnftables, in a table of our own, `ip peerpod`, with two chains at raw priority:
 *   output:     ip daddr <VM> udp dport <port> notrack comment "peerpod [vni:<id>]"
 *   prerouting: ip saddr <VM> udp dport <port> notrack comment "peerpod [vni:<id>]"
 * Each sandbox's rules carry its VNI, which is how they are found again (also after a
 * restart). The table is removed with its last rule.
 *
 * struct notrack owns one nft context and a mutex that serialises every change (libnftables
 * contexts are not thread-safe); the functions are blocking and safe to call from several
 * pool threads. notrack_new/notrack_free belong to the daemon's start-up and shutdown. The
 * JSON reader of nft's listing is pure and unit-tested. */
#ifndef VXLAN_NOTRACK_H
#define VXLAN_NOTRACK_H

#include <stddef.h>
#include <stdint.h>

#define NOTRACK_TABLE "peerpod"

struct notrack;

struct notrack *notrack_new(void);
void notrack_free(struct notrack *nt);

/* Installs the two rules of vni (replacing any it already has, so it is idempotent).
 * remote is the pod VM's address (network byte order). 0 or -1 with err. */
int notrack_add(struct notrack *nt, uint32_t vni, uint32_t remote, uint16_t port, char *err, size_t errlen);

/* Removes the rules of vni; none is not an error. 0 or -1 with err. */
int notrack_del(struct notrack *nt, uint32_t vni, char *err, size_t errlen);

/* The VNIs that have rules, each once, into out[0..cap); returns their count (may exceed
 * cap) or -1 with err. */
int notrack_vnis(struct notrack *nt, uint32_t *out, size_t cap, char *err, size_t errlen);

/* ---- pure: nft's JSON listing of the table ---- */

struct notrack_rule {
    char chain[16];
    uint64_t handle;
    uint32_t vni; /* 0 when the comment is not ours */
};

/* Reads the rules of table peerpod out of `nft -j list table ip peerpod` output into
 * out[0..cap); returns how many rules the listing has (may exceed cap), -1 if it is not
 * nft JSON. */
int notrack_rules_parse(const char *json, size_t len, struct notrack_rule *out, size_t cap);

/* "peerpod [vni:555000]" -> 555000; 0 for anything else. */
uint32_t notrack_comment_vni(const char *comment);

#endif
