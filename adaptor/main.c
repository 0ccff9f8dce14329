/* cloud-api-adaptor: command line and daemon lifecycle (start-up, signals, shutdown). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "fds.h"
#include "gc.h"
#include "hypervisor.h"
#include "kube.h"
#include "log.h"
#include "network.h"
#include "notify.h"
#include "prio.h"
#include "probe.h"

static void usage(FILE *out)
{
    fprintf(out, "Usage: cloud-api-adaptor <provider> [flags]\n"
                 "       cloud-api-adaptor help\n"
                 "       cloud-api-adaptor version\n\nProviders:");
    for (size_t i = 0; provider_table[i]; i++)
        fprintf(out, " %s", provider_table[i]->name);
    if (!provider_table[0])
        fprintf(out, " (none compiled in)");
    fprintf(out, "\n\nRun 'cloud-api-adaptor <provider> -help' for the flags of a provider.\n");
}

static const struct provider_ops *provider_find(const char *name)
{
    for (size_t i = 0; provider_table[i]; i++)
        if (!strcmp(provider_table[i]->name, name))
            return provider_table[i];
    return NULL;
}

/* Creates the hypervisor socket with mode 0600 from the start (fchmod before bind applies
 * to the socket file on Linux), replacing a stale one. Returns the listening fd or -1. */
static int socket_listen(struct daemon *d, char *err, size_t errlen)
{
    const char *path = d->cfg.socket_path;
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        for (char *p = dir + 1; *p; p++) {
            if (*p != '/')
                continue;
            *p = '\0';
            if (mkdir(dir, 0755) && errno != EEXIST)
                goto mkdir_fail;
            *p = '/';
        }
        if (mkdir(dir, 0755) && errno != EEXIST)
            goto mkdir_fail;
    }
    if (unlink(path) && errno != ENOENT) {
        snprintf(err, errlen, "REMOTE_HYPERVISOR_ENDPOINT: cannot remove stale socket %s: %s", path, strerror(errno));
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (fchmod(fd, 0600) || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1024) ||
        stat(path, &st)) {
        snprintf(err, errlen, "REMOTE_HYPERVISOR_ENDPOINT: cannot listen on %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    d->sock_dev = st.st_dev;
    d->sock_ino = st.st_ino;
    return fd;
mkdir_fail:
    snprintf(err, errlen, "REMOTE_HYPERVISOR_ENDPOINT: cannot create directory %s: %s", dir, strerror(errno));
    return -1;
}

/* TLS profile and material for the pod VM link, decided once at start-up (spec 3.6). The
 * generated CA lives beside the pods dir, so a restart keeps talking to running VMs. */
static int tls_setup(struct daemon *d, char *err, size_t errlen)
{
    if (d->cfg.disable_tls)
        log_warn("adaptor", "-disable-tls: the link to pod VMs is plain TCP; the pod VM image must run its "
                            "forwarder with -disable-tls too");
    else if (tlsca_profile_parse(&d->tls_profile, d->cfg.tls_min_version, d->cfg.tls_cipher_suites, err, errlen))
        return -1;
    char state[4096];
    snprintf(state, sizeof(state), "%s", d->cfg.pods_dir);
    char *slash = strrchr(state, '/');
    if (slash && slash != state)
        *slash = '\0';
    else
        snprintf(state, sizeof(state), "/");
    struct tlsca_options o = {
        .disable_tls = d->cfg.disable_tls,
        .ca_cert_file = d->cfg.ca_cert_file,
        .cert_file = d->cfg.cert_file,
        .cert_key = d->cfg.cert_key,
        .state_dir = state,
    };
    if (tlsca_open(&d->tls, &o, err, errlen))
        return -1;
    if (d->tls && tlsca_mode_get(d->tls) != TLSCA_DISABLED &&
        !(d->client_ctx = tlsca_client_ctx_new(d->tls, &d->tls_profile, d->cfg.tls_skip_verify, err, errlen)))
        return -1;
    if (d->cfg.tls_skip_verify && !d->cfg.disable_tls)
        log_warn("adaptor", "TLS_SKIP_VERIFY: pod VM certificates are not verified (mutual TLS is kept)");
    return 0;
}

static void socket_remove_if_ours(const struct daemon *d)
{
    struct stat st;
    if (stat(d->cfg.socket_path, &st) == 0 && st.st_dev == d->sock_dev && st.st_ino == d->sock_ino)
        unlink(d->cfg.socket_path);
    else
        log_info("adaptor", "socket %s belongs to another instance now; leaving it", d->cfg.socket_path);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void daemon_stop(struct daemon *d)
{
    log_info("adaptor", "shutting down: running pod VMs are kept and picked up at the next start");
    if (notify_send("STOPPING=1"))
        log_warn("adaptor", "NOTIFY_SOCKET: %s", strerror(errno));
    hypervisor_shutdown(d);
    gc_stop(d);
    probe_stop(d);
    kube_stop(d->kube, true);
    if (d->server) {
        ttrpc_server_close(d->server);
        d->server = NULL;
        socket_remove_if_ours(d);
    }
    if (d->prov) {
        d->pops->shutdown(d->prov);
        d->prov = NULL;
    }
    /* The watchers stay, for a second signal, without keeping the loop alive; they are closed
     * with everything else once it has drained. */
    uv_unref((uv_handle_t *)&d->sig_term);
    uv_unref((uv_handle_t *)&d->sig_int);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct daemon *d = s->data;
    if (++d->signals > 1) {
        log_warn("adaptor", "second signal %d: exiting now", signum);
        _exit(1);
    }
    log_info("adaptor", "received signal %d", signum);
    daemon_stop(d);
}

struct vni_list {
    uint32_t *v;
    size_t n, cap;
};

static void vni_collect(struct sandbox *sb, void *arg)
{
    struct vni_list *l = arg;
    if (sb->vni && l->n < l->cap)
        l->v[l->n++] = sb->vni;
}

/* Pod networking: the VNIs the records hold and those found on the node are never handed
 * out again (DECISIONS 8). */
static int network_start(struct daemon *d, char *err, size_t errlen)
{
    struct network_config nc = {
        .vxlan_min_id = (uint32_t)d->cfg.vxlan_min_id,
        .vxlan_port = (uint16_t)d->cfg.vxlan_port,
        .host_interface = d->cfg.host_interface,
        .pod_subnet_cidrs = d->cfg.pod_subnet_cidrs,
    };
    if (!(d->net = network_new(d->loop, &nc, err, errlen)))
        return -1;
    struct vni_list l = {.cap = d->store.count ? d->store.count : 1};
    if (!(l.v = calloc(l.cap, sizeof(*l.v)))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sandbox_store_foreach(&d->store, vni_collect, &l);
    network_reconcile(d->net, l.v, l.n);
    free(l.v);
    return 0;
}

static void advertised(void *arg, bool done)
{
    (void)done; /* not yet: kube keeps trying in the background */
    *(bool *)arg = true;
}

/* In Kubernetes (NODE_NAME set): the API client, and the node's capacity advertised before
 * the socket serves, as the Go daemon does; an API that does not answer within
 * KUBE_START_WAIT_MS delays serving no longer. */
#define KUBE_START_WAIT_MS 5000u
static void kube_start(struct daemon *d)
{
    char err[1024], ua[96];
    snprintf(ua, sizeof(ua), "cloud-api-adaptor/%s", CAA_VERSION);
    struct kube_config kc = {
        .node_name = d->cfg.node_name,
        .pod_uid = d->cfg.pod_uid,
        .limit = d->cfg.peerpods_limit,
        .host = d->cfg.kube_host,
        .port = d->cfg.kube_port,
        .sa_dir = d->cfg.kube_sa_dir,
        .user_agent = ua,
        .turn = &d->turn,
    };
    if (!(d->kube = kube_new(d->loop, &kc, err, sizeof(err)))) {
        if (*err)
            log_warn("kube", "%s; running without the Kubernetes API: no node capacity, no image pull secrets, "
                             "/startup without its pod check", err);
        return;
    }
    bool waited = false;
    kube_node_advertise(d->kube, KUBE_START_WAIT_MS, advertised, &waited);
    while (!waited && uv_run(d->loop, UV_RUN_ONCE))
        ;
}

static int daemon_run(struct daemon *d)
{
    char err[1024];
    struct provider_error perr = {0};
    /* SIGTERM/SIGINT wait (blocked) until the watchers below run: start-up may take seconds
     * (the Kubernetes API), and a stop then must still be an orderly shutdown. */
    sigset_t stops, before;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &stops, &before)) {
        fprintf(stderr, "cloud-api-adaptor: blocking SIGTERM during start-up failed\n");
        return 1;
    }
    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc) {
        fprintf(stderr, "cloud-api-adaptor: event loop: %s\n", uv_strerror(rc));
        return 1;
    }
    d->loop = &loop;
    loop.data = d;
    d->start_unix = (int64_t)time(NULL);
    if (*d->cfg.pause_image)
        log_warn("adaptor", "PAUSE_IMAGE is accepted for compatibility and ignored");
    if (*d->cfg.initdata) {
        /* Checked before anything starts: a bad INITDATA would fail every pod later. */
        if (initdata_decode(&d->initdata, INITDATA_FROM_GLOBAL, d->cfg.initdata, strlen(d->cfg.initdata), err,
                            sizeof(err))) {
            fprintf(stderr, "cloud-api-adaptor: %s\n", err);
            uv_loop_close(&loop);
            return 1;
        }
        log_info("adaptor", "INITDATA: %zu bytes of %s, %s digest %s; used for pods without a cc_init_data "
                            "annotation", d->initdata.toml_len, initdata_form_name(d->initdata.form),
                 d->initdata.algorithm, d->initdata.digest);
    }
    if (tls_setup(d, err, sizeof(err))) {
        initdata_clear(&d->initdata);
        tlsca_profile_free(&d->tls_profile);
        tlsca_free(d->tls);
        d->tls = NULL;
        fprintf(stderr, "cloud-api-adaptor: %s\n", err);
        uv_loop_close(&loop);
        return 1;
    }
    if (prio_loop_raise(&loop, (int)d->cfg.loop_nice, err, sizeof(err)))
        log_warn("adaptor", "%s", err);
    turn_init(&d->turn, &loop, 0, d);
    if (d->pops->init(&loop, &d->turn, &d->cfg, d->popts, &d->prov, &perr)) {
        fprintf(stderr, "cloud-api-adaptor: %s: %s\n", d->pops->name, perr.msg);
        turn_close(&d->turn, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        SSL_CTX_free(d->client_ctx);
        tlsca_free(d->tls);
        tlsca_profile_free(&d->tls_profile);
        initdata_clear(&d->initdata);
        return 1;
    }
    int status = 1;
    if (sandbox_store_init(&d->store, &loop, d->cfg.pods_dir)) {
        fprintf(stderr, "cloud-api-adaptor: out of memory\n");
        goto out_provider;
    }
    d->store.turn = &d->turn;
    int loaded = sandbox_store_load(&d->store, NULL, err, sizeof(err));
    if (loaded < 0) {
        fprintf(stderr, "cloud-api-adaptor: %s\n", err);
        goto out_store;
    }
    if (loaded)
        log_info("adaptor", "loaded %d sandbox records from %s", loaded, d->cfg.pods_dir);
    if (d->store.memory_fs)
        log_info("adaptor", "pods dir %s is in memory (tmpfs): sandbox records are written without syncs, on the "
                            "event loop", d->cfg.pods_dir);
    if (network_start(d, err, sizeof(err))) {
        fprintf(stderr, "cloud-api-adaptor: %s\n", err);
        goto out_store;
    }
    kube_start(d);
    int fd = socket_listen(d, err, sizeof(err));
    if (fd < 0) {
        fprintf(stderr, "cloud-api-adaptor: %s\n", err);
        goto out_store;
    }
    d->server = ttrpc_server_new(&loop, hypervisor_methods, hypervisor_methods_count, d);
    if (!d->server || (rc = ttrpc_server_serve_fd(d->server, fd))) {
        fprintf(stderr, "cloud-api-adaptor: serving %s: %s\n", d->cfg.socket_path, d->server ? uv_strerror(rc) : "out of memory");
        if (!d->server)
            close(fd);
        goto out_server;
    }
    uv_signal_init(&loop, &d->sig_term);
    uv_signal_init(&loop, &d->sig_int);
    d->sig_term.data = d->sig_int.data = d;
    uv_signal_start(&d->sig_term, on_signal, SIGTERM);
    uv_signal_start(&d->sig_int, on_signal, SIGINT);
    pthread_sigmask(SIG_SETMASK, &before, NULL); /* a stop sent during start-up is handled now */
    hypervisor_recover(d);
    if (probe_start(d, err, sizeof(err)))
        log_warn("adaptor", "%s; serving without /startup, /healthz, /readyz and /metrics", err);
    if (gc_start(d))
        log_warn("adaptor", "orphan GC could not start: leftover pod VMs of this node will not be collected");
    log_info("adaptor", "server started: provider %s, socket %s, pods dir %s", d->pops->name, d->cfg.socket_path,
             d->cfg.pods_dir);
    if (notify_send("READY=1"))
        log_warn("adaptor", "NOTIFY_SOCKET: %s", strerror(errno));
    uv_run(&loop, UV_RUN_DEFAULT);
    status = 0;
    /* Thread-pool work has finished; abandoned calls close their own timers here. */
    hypervisor_free(d);
    gc_free(d);
    probe_free(d);
    goto out_store;
out_server:
    if (d->server)
        ttrpc_server_close(d->server);
    d->server = NULL;
out_store:
    kube_stop(d->kube, false); /* no-op after a normal shutdown; a failed start-up keeps the capacity */
    sandbox_store_free(&d->store);
    network_free(d->net);
    d->net = NULL;
out_provider:
    if (d->prov)
        d->pops->shutdown(d->prov);
    uv_walk(&loop, close_any, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    kube_free(d->kube);
    d->kube = NULL;
    if (uv_loop_close(&loop))
        log_warn("adaptor", "event loop closed with handles still open");
    SSL_CTX_free(d->client_ctx);
    tlsca_free(d->tls);
    tlsca_profile_free(&d->tls_profile);
    initdata_clear(&d->initdata);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help")) {
        usage(stdout);
        /* The settings every provider shares, as README's configuration reference lists them. */
        struct config_registry reg = {0};
        struct config cfg = {0};
        if (config_register_common(&reg, &cfg) == 0) {
            printf("\nFlags of every provider:\n");
            config_registry_usage(&reg, stdout);
            config_env_usage(stdout);
        }
        config_registry_free(&reg);
        return 0;
    }
    if (!strcmp(cmd, "version")) {
        printf("cloud-api-adaptor version %s\n  commit: %s\n  go: none (C implementation, built with %s)\n",
               CAA_VERSION, CAA_COMMIT, __VERSION__);
        return 0;
    }
    if (!*cmd || *cmd == '-') {
        fprintf(stderr, "Unknown option: %s\n", cmd);
        usage(stderr);
        return 1;
    }
    struct daemon d = {0};
    d.pops = provider_find(cmd);
    if (!d.pops) {
        fprintf(stderr, "Unsupported cloud provider: %s\n", cmd);
        usage(stderr);
        return 1;
    }
    char err[1024];
    if (config_register_common(&d.reg, &d.cfg) || !(d.popts = d.pops->options_new(&d.reg))) {
        fprintf(stderr, "cloud-api-adaptor: registering options failed\n");
        config_registry_free(&d.reg);
        return 1;
    }
    int rc = config_registry_parse(&d.reg, argc - 2, argv + 2, err, sizeof(err));
    if (rc == CONFIG_PARSE_OK) {
        config_load_env(&d.cfg);
        if (config_validate(&d.cfg, err, sizeof(err)))
            rc = CONFIG_PARSE_ERROR;
    }
    if (rc != CONFIG_PARSE_OK) {
        if (rc == CONFIG_PARSE_HELP) {
            printf("Usage of cloud-api-adaptor %s:\n", cmd);
            config_registry_usage(&d.reg, stdout);
            config_env_usage(stdout);
        } else {
            fprintf(stderr, "cloud-api-adaptor: %s\n", err); /* one line: the setting and the problem */
        }
        d.pops->options_free(d.popts);
        config_registry_free(&d.reg);
        return rc == CONFIG_PARSE_HELP ? 0 : 1;
    }
    log_level_set((enum log_level)log_level_parse(d.cfg.log_level));
    for (char *w = d.reg.warnings, *nl; *w; w = nl ? nl + 1 : w + strlen(w)) {
        if ((nl = strchr(w, '\n')))
            *nl = '\0';
        log_warn("config", "%s", w);
    }
    /* A peer that hangs up before its answer is written (a shim, a pod VM) must cost a write
     * error on that connection, not the process: libuv leaves SIGPIPE at its default. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    if (sigaction(SIGPIPE, &ign, NULL)) {
        fprintf(stderr, "cloud-api-adaptor: ignoring SIGPIPE: %s\n", strerror(errno));
        d.pops->options_free(d.popts);
        config_registry_free(&d.reg);
        return 1;
    }
    if (fds_prepare(fds_expected(d.cfg.peerpods_limit), err, sizeof(err))) /* before any thread */
        log_warn("adaptor", "file descriptors: %s; the table grows on demand", err);
    int status = daemon_run(&d);
    d.pops->options_free(d.popts);
    config_registry_free(&d.reg);
    return status;
}
