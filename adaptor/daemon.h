/* daemon: the one daemon context. Everything the process owns hangs off it: the loop, the
 * configuration, the provider, the sandbox store, the ttrpc server and the signal handles.
 * It is the only mutable state that is not local to a module instance. */
#ifndef ADAPTOR_DAEMON_H
#define ADAPTOR_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <uv.h>

#include "turn.h"
#include "../providers/provider.h"
#include "config.h"
#include "initdata.h"
#include "metrics.h"
#include "sandbox.h"
#include "tlsca.h"
#include "ttrpc_server.h"

/* Set by the Makefile from git; "unknown" for builds outside it. */
#ifndef CAA_VERSION
#define CAA_VERSION "unknown"
#endif
#ifndef CAA_COMMIT
#define CAA_COMMIT "unknown"
#endif

struct getinfo_wait;
struct gc;
struct kube;
struct network;
struct probe;

struct daemon {
    uv_loop_t *loop;
    struct turn turn; /* CPU budget per loop turn; completions of bursts are spread over turns */
    struct config cfg;
    struct config_registry reg;
    const struct provider_ops *pops;
    void *popts;
    struct provider *prov;
    struct sandbox_store store;
    struct tlsca *tls;                /* NULL with -disable-tls */
    struct tlsca_profile tls_profile; /* TLS_MIN_VERSION / TLS_CIPHER_SUITES */
    SSL_CTX *client_ctx;              /* dials pod VMs; NULL with -disable-tls */
    struct initdata initdata;         /* validated INITDATA; vm_value NULL when unset */
    struct ttrpc_server *server;
    LIST_HEAD(, getinfo_wait) waiters; /* podvminfo GetInfo calls waiting for an instance id */
    struct gc *gc;                /* orphan GC */
    struct network *net;          /* pod networking (vxlan/) */
    struct probe *probe;          /* /startup, /healthz, /readyz, /metrics on PROBE_PORT */
    struct metrics metrics;       /* counted by the hypervisor service and the GC */
    struct kube *kube;            /* Kubernetes API; NULL outside Kubernetes (no NODE_NAME) */
    int64_t start_unix;           /* for /startup: peer pods Ready since before are stale */
    bool startup_ok;              /* /startup succeeded once; it is not checked again */
    uv_signal_t sig_term, sig_int;
    unsigned signals;
    bool shutting_down;
    dev_t sock_dev; /* identity of the socket we bound, to remove it only if still ours */
    ino_t sock_ino;
};

#endif
