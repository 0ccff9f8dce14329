/* nl: rtnetlink requests and dumps over libmnl, on a socket bound to a chosen network
 * namespace.
 *
 * A socket belongs to the namespace it was created in, so nl_open switches the calling
 * thread into the target namespace only long enough to create the socket and switches back
 * before returning; the thread is never left in a foreign namespace (a failed switch back
 * aborts the process rather than let a pool thread run in the pod's namespace). Blocking:
 * call from the loop's thread pool or at start-up, never from the loop thread.
 *
 * struct nl is owned by the caller; nl_close releases it (socket and receive buffer). One
 * struct nl is used by one thread at a time. */
#ifndef VXLAN_NL_H
#define VXLAN_NL_H

#include <libmnl/libmnl.h>
#include <stddef.h>
#include <stdint.h>

struct nl {
    struct mnl_socket *sock;
    uint32_t portid, seq;
    /* Receive buffer, sized to the largest datagram seen: a dump datagram can be far bigger
     * than a page (a link with many altnames, a PF with its VFs), and one read into a smaller
     * buffer loses its tail without an error. Freed by nl_close. */
    char *rbuf;
    size_t rcap;
};

/* Opens a NETLINK_ROUTE socket in the namespace at netns_path (a bind-mounted netns file
 * such as /run/netns/cni-...), or in the caller's own namespace when netns_path is NULL.
 * Returns 0, or -errno with a reason in err (ENOENT/EINVAL: no such namespace). */
int nl_open(struct nl *nl, const char *netns_path, char *err, size_t errlen);
void nl_close(struct nl *nl);

/* Starts a message in buf (at least NL_BUF bytes): header with type and flags (NLM_F_REQUEST
 * added) and sequence number filled in. */
#define NL_BUF 8192
struct nlmsghdr *nl_msg(struct nl *nl, void *buf, uint16_t type, uint16_t flags);

/* Sends a request that takes NLM_F_ACK and waits for its answer: 0 or -errno. */
int nl_request(struct nl *nl, struct nlmsghdr *nlh);

/* Sends a request with NLM_F_ACK and passes the message it is answered with (if any) to
 * cb: 0 or -errno. */
typedef int (*nl_msg_cb)(const struct nlmsghdr *nlh, void *data);
int nl_get(struct nl *nl, struct nlmsghdr *nlh, nl_msg_cb cb, void *data);

/* Sends a dump request and calls cb for every message until NLMSG_DONE: 0 or -errno (also
 * the first negative value cb returns, as -errno). */
int nl_dump(struct nl *nl, struct nlmsghdr *nlh, nl_msg_cb cb, void *data);

/* How often a caller reads again after a dump the kernel marked interrupted (-EINTR: the set
 * changed while it was read); each try starts from scratch. */
#define NL_DUMP_TRIES 8

/* A dump of every object of one kind: type (RTM_GETLINK, RTM_GETROUTE, ...) with its family
 * header of hdrlen bytes (ifinfomsg, rtmsg, ...) zeroed but for the family, its first byte. */
int nl_dump_all(struct nl *nl, uint16_t type, uint8_t family, size_t hdrlen, nl_msg_cb cb, void *data);

/* Opens the namespace file (O_RDONLY|O_CLOEXEC); -errno on failure. */
int nl_netns_fd(const char *netns_path);

#endif
