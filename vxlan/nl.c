#include "nl.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int nl_netns_fd(const char *netns_path)
{
    int fd = open(netns_path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static int sock_open(struct nl *nl)
{
    nl->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!nl->sock)
        return -errno;
    if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
        int e = -errno;
        mnl_socket_close(nl->sock);
        nl->sock = NULL;
        return e;
    }
    /* Extended acks give the kernel's reason; harmless where unsupported. */
    int one = 1;
    (void)mnl_socket_setsockopt(nl->sock, NETLINK_EXT_ACK, &one, sizeof(one));
    nl->portid = mnl_socket_get_portid(nl->sock);
    nl->seq = (uint32_t)time(NULL);
    return 0;
}

int nl_open(struct nl *nl, const char *netns_path, char *err, size_t errlen)
{
    memset(nl, 0, sizeof(*nl));
    if (!netns_path) {
        int rc = sock_open(nl);
        if (rc)
            snprintf(err, errlen, "opening a netlink socket: %s", strerror(-rc));
        return rc;
    }
    int target = nl_netns_fd(netns_path);
    if (target < 0) {
        snprintf(err, errlen, "network namespace %s: %s", netns_path, strerror(-target));
        return target;
    }
    int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0) {
        int e = -errno;
        close(target);
        snprintf(err, errlen, "reading this thread's network namespace: %s", strerror(-e));
        return e;
    }
    int rc = 0;
    if (setns(target, CLONE_NEWNET)) {
        rc = -errno; /* EINVAL: the file is not (any more) a network namespace */
        snprintf(err, errlen, "entering network namespace %s: %s", netns_path, strerror(-rc));
    } else {
        rc = sock_open(nl);
        if (rc)
            snprintf(err, errlen, "opening a netlink socket in %s: %s", netns_path, strerror(-rc));
        if (setns(self, CLONE_NEWNET)) {
            /* A pool thread stuck in a pod's namespace would act there for other sandboxes. */
            fprintf(stderr, "fatal: cannot return to the daemon's network namespace: %s\n", strerror(errno));
            abort();
        }
    }
    close(self);
    close(target);
    return rc;
}

void nl_close(struct nl *nl)
{
    if (nl->sock)
        mnl_socket_close(nl->sock);
    nl->sock = NULL;
    free(nl->rbuf);
    nl->rbuf = NULL;
    nl->rcap = 0;
}

struct nlmsghdr *nl_msg(struct nl *nl, void *buf, uint16_t type, uint16_t flags)
{
    memset(buf, 0, MNL_NLMSG_HDRLEN);
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    nlh->nlmsg_seq = ++nl->seq;
    return nlh;
}

#define NL_RBUF_MIN 32768         /* the kernel's usual dump datagram fits */
#define NL_RBUF_MAX (16u << 20) /* beyond any sane rtnetlink datagram */

/* Reads one datagram whole: its size is peeked first and the buffer grown to it. */
static ssize_t recv_whole(struct nl *nl)
{
    int fd = mnl_socket_get_fd(nl->sock);
    ssize_t want;
    do
        want = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC);
    while (want < 0 && errno == EINTR);
    if (want < 0)
        return -1;
    if ((size_t)want > NL_RBUF_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    if (!nl->rbuf || nl->rcap < (size_t)want) {
        size_t cap = nl->rcap ? nl->rcap : NL_RBUF_MIN;
        while (cap < (size_t)want)
            cap *= 2;
        char *b = realloc(nl->rbuf, cap);
        if (!b) {
            errno = ENOMEM;
            return -1;
        }
        nl->rbuf = b;
        nl->rcap = cap;
    }
    ssize_t n;
    do
        n = mnl_socket_recvfrom(nl->sock, nl->rbuf, nl->rcap);
    while (n < 0 && errno == EINTR);
    return n;
}

/* Reads answers to seq until the callback chain says stop; returns 0 or -errno. */
static int run(struct nl *nl, uint32_t seq, nl_msg_cb cb, void *data)
{
    for (;;) {
        ssize_t n = recv_whole(nl);
        if (n < 0)
            return -errno;
        int rc = mnl_cb_run(nl->rbuf, (size_t)n, seq, nl->portid, (mnl_cb_t)cb, data);
        if (rc == MNL_CB_STOP)
            return 0;
        if (rc < 0)
            return errno ? -errno : -EPROTO;
    }
}

struct dump_ctx {
    nl_msg_cb cb;
    void *data;
    int err;
};

static int dump_one(const struct nlmsghdr *nlh, void *arg)
{
    struct dump_ctx *c = arg;
    int rc = c->cb(nlh, c->data);
    if (rc < 0 && !c->err)
        c->err = rc;
    return MNL_CB_OK; /* read to NLMSG_DONE so the socket stays usable */
}

int nl_request(struct nl *nl, struct nlmsghdr *nlh)
{
    return nl_get(nl, nlh, NULL, NULL);
}

int nl_get(struct nl *nl, struct nlmsghdr *nlh, nl_msg_cb cb, void *data)
{
    nlh->nlmsg_flags |= NLM_F_ACK; /* a get is answered by its message, then the ack */
    if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
        return -errno;
    struct dump_ctx c = {cb, data, 0};
    errno = 0;
    int rc = run(nl, nlh->nlmsg_seq, cb ? dump_one : NULL, &c);
    return rc ? rc : c.err;
}

int nl_dump(struct nl *nl, struct nlmsghdr *nlh, nl_msg_cb cb, void *data)
{
    nlh->nlmsg_flags |= NLM_F_DUMP;
    if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
        return -errno;
    struct dump_ctx c = {cb, data, 0};
    errno = 0;
    int rc = run(nl, nlh->nlmsg_seq, dump_one, &c);
    return rc ? rc : c.err;
}

int nl_dump_all(struct nl *nl, uint16_t type, uint8_t family, size_t hdrlen, nl_msg_cb cb, void *data)
{
    char buf[NL_BUF];
    struct nlmsghdr *nlh = nl_msg(nl, buf, type, 0);
    uint8_t *hdr = mnl_nlmsg_put_extra_header(nlh, hdrlen); /* zeroed by libmnl */
    hdr[0] = family; /* every rtnetlink family header starts with it */
    return nl_dump(nl, nlh, cb, data);
}
