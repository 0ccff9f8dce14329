#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "log.h"

int config_registry_add(struct config_registry *r, const char *flag, const char *env, enum config_kind kind,
                        const char *def, const char *help, void *dst)
{
    if (config_registry_find(r, flag))
        return -1;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 32;
        struct config_option *o = realloc(r->opts, cap * sizeof(*o));
        if (!o)
            return -1;
        r->opts = o;
        r->cap = cap;
    }
    r->opts[r->n++] = (struct config_option){flag, env, kind, def, help, dst};
    return 0;
}

void config_registry_free(struct config_registry *r)
{
    free(r->opts);
    r->opts = NULL;
    r->n = r->cap = 0;
}

const struct config_option *config_registry_find(const struct config_registry *r, const char *flag)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->opts[i].flag, flag))
            return &r->opts[i];
    return NULL;
}

struct duration_unit {
    const char *name;
    int64_t ns;
};

static const struct duration_unit duration_units[] = {
    {"ns", 1},
    {"us", 1000},
    {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
    {"\xce\xbcs", 1000}, /* U+03BC Greek mu */
    {"ms", 1000000},
    {"s", 1000000000LL},
    {"m", 60 * 1000000000LL},
    {"h", 3600 * 1000000000LL},
};

int config_duration_parse(const char *s, int64_t *ns, const char **why)
{
    const char *p = s;
    bool neg = false;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (!strcmp(p, "0")) {
        *ns = 0;
        return 0;
    }
    if (!*p) {
        *why = "empty duration";
        return -1;
    }
    uint64_t total = 0;
    while (*p) {
        if (!(*p == '.' || (*p >= '0' && *p <= '9'))) {
            *why = "expected a number, e.g. 300s or 5m";
            return -1;
        }
        uint64_t whole = 0, frac = 0, scale = 1;
        bool digits = false, overflow = false;
        for (; *p >= '0' && *p <= '9'; p++, digits = true) {
            if (whole > (UINT64_MAX - 9) / 10)
                overflow = true;
            else
                whole = whole * 10 + (uint64_t)(*p - '0');
        }
        if (*p == '.') {
            p++;
            for (; *p >= '0' && *p <= '9'; p++, digits = true) {
                if (scale <= UINT64_MAX / 100) { /* extra digits cannot matter below 1 ns */
                    frac = frac * 10 + (uint64_t)(*p - '0');
                    scale *= 10;
                }
            }
        }
        if (!digits) {
            *why = "expected a number, e.g. 300s or 5m";
            return -1;
        }
        size_t ulen = 0;
        while (p[ulen] && p[ulen] != '.' && !(p[ulen] >= '0' && p[ulen] <= '9'))
            ulen++;
        if (!ulen) {
            *why = "missing unit (ns, us, ms, s, m or h), e.g. 300s or 5m";
            return -1;
        }
        const struct duration_unit *u = NULL;
        for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++)
            if (strlen(duration_units[i].name) == ulen && !strncmp(p, duration_units[i].name, ulen))
                u = &duration_units[i];
        if (!u) {
            *why = "unknown unit (use ns, us, ms, s, m or h)";
            return -1;
        }
        p += ulen;
        uint64_t unit = (uint64_t)u->ns;
        if (overflow || whole > (uint64_t)INT64_MAX / unit) {
            *why = "out of range";
            return -1;
        }
        uint64_t v = whole * unit;
        if (frac)
            v += (uint64_t)((long double)frac * (long double)unit / (long double)scale);
        uint64_t limit = (uint64_t)INT64_MAX + (neg ? 1u : 0u);
        if (v > limit || total > limit - v) { /* checked before adding: the sum could wrap */
            *why = "out of range";
            return -1;
        }
        total += v;
        if (total > limit) {
            *why = "out of range";
            return -1;
        }
    }
    *ns = neg ? (int64_t)(0 - total) : (int64_t)total;
    return 0;
}

/* strconv.ParseBool, used for flag values. */
static int bool_parse_flag(const char *v, bool *out)
{
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (!strcmp(v, t[i])) {
            *out = true;
            return 0;
        }
        if (!strcmp(v, f[i])) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* A flag's int as Go's flag package reads it (strconv.ParseInt base 0): an optional sign, then
 * 0x/0X hex, 0o/0O or a leading 0 octal, 0b/0B binary, or decimal; nothing else around it. */
static int int_parse(const char *v, int64_t *out)
{
    const char *p = v + (*v == '-' || *v == '+');
    int base = 10;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        base = 16, p += 2;
    else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O'))
        base = 8, p += 2;
    else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B'))
        base = 2, p += 2;
    else if (p[0] == '0' && p[1])
        base = 8, p += 1;
    if (!*p || *p == '-' || *p == '+' || *p == ' ')
        return -1;
    errno = 0;
    char *end;
    unsigned long long x = strtoull(p, &end, base);
    bool neg = *v == '-';
    if (errno || *end || x > (neg ? (unsigned long long)INT64_MAX + 1 : (unsigned long long)INT64_MAX))
        return -1;
    *out = neg ? (int64_t)(0 - x) : (int64_t)x;
    return 0;
}

/* An env int as the Go daemon reads it (sscanf "%d"): blanks, a sign, the leading digits;
 * trailing junk ignored. 0 when digits were found (*junk: something followed them). */
static int env_int_parse(const char *v, int64_t *out, bool *junk)
{
    while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r' || *v == '\v' || *v == '\f')
        v++;
    const char *d = v + (*v == '-' || *v == '+');
    if (*d < '0' || *d > '9')
        return -1;
    errno = 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (errno)
        return -1;
    *out = x;
    *junk = *end != '\0';
    return 0;
}

static void warn_add(struct config_registry *r, const char *env, const char *v, const char *what)
{
    size_t n = strlen(r->warnings);
    if (n < sizeof(r->warnings) - 1)
        snprintf(r->warnings + n, sizeof(r->warnings) - n, "%s%s=\"%.64s\": %s", n ? "\n" : "", env, v, what);
}

/* An env value by the Go daemon's rules, which never stop start-up: bools are true only for
 * 1/true, ints take their leading digits, a duration that does not parse is ignored. What
 * reads otherwise than it looks is noted in r->warnings. */
static void env_set(struct config_registry *r, const struct config_option *o, const char *v)
{
    const char *why = NULL;
    switch (o->kind) {
    case CONFIG_STRING:
        *(const char **)o->dst = v;
        return;
    case CONFIG_BOOL:
        *(bool *)o->dst = !strcmp(v, "1") || !strcasecmp(v, "true");
        if (!*(bool *)o->dst && strcmp(v, "0") && strcasecmp(v, "false"))
            warn_add(r, o->env, v, "read as false (only 1 and true are true)");
        return;
    case CONFIG_INT: {
        int64_t x;
        bool junk;
        if (env_int_parse(v, &x, &junk)) {
            warn_add(r, o->env, v, "not a number: ignored, the default stays");
            return;
        }
        *(int64_t *)o->dst = x;
        if (junk)
            warn_add(r, o->env, v, "read as its leading number");
        return;
    }
    case CONFIG_DURATION: {
        int64_t ns;
        if (config_duration_parse(v, &ns, &why)) {
            warn_add(r, o->env, v, "not a duration (e.g. 300s or 5m): ignored, the default stays");
            return;
        }
        *(int64_t *)o->dst = ns;
        return;
    }
    }
}

/* Stores a flag's (or a built-in default's) value into o->dst. */
static int option_set(const struct config_option *o, const char *value, const char **why)
{
    switch (o->kind) {
    case CONFIG_STRING:
        *(const char **)o->dst = value;
        return 0;
    case CONFIG_BOOL:
        if (bool_parse_flag(value, (bool *)o->dst)) {
            *why = "not a boolean (use true or false)";
            return -1;
        }
        return 0;
    case CONFIG_INT:
        if (int_parse(value, (int64_t *)o->dst)) {
            *why = "not a decimal integer";
            return -1;
        }
        return 0;
    case CONFIG_DURATION:
        return config_duration_parse(value, (int64_t *)o->dst, why);
    }
    return -1;
}

int config_registry_parse(struct config_registry *r, int argc, char *const *argv, char *err, size_t errlen)
{
    const char *why = NULL;
    r->warnings[0] = '\0';
    for (size_t i = 0; i < r->n; i++) {
        const struct config_option *o = &r->opts[i];
        if (option_set(o, o->def, &why)) {
            snprintf(err, errlen, "-%s: invalid built-in default \"%s\": %s", o->flag, o->def, why);
            return CONFIG_PARSE_ERROR;
        }
    }
    for (size_t i = 0; i < r->n; i++) {
        const struct config_option *o = &r->opts[i];
        const char *v = o->env ? getenv(o->env) : NULL;
        if (v && *v)
            env_set(r, o, v); /* strings (secrets among them) are never quoted in a warning */
    }
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (s[0] != '-' || s[1] == '\0')
            break;
        const char *name = s + 1;
        if (*name == '-') {
            name++;
            if (!*name)
                break; /* "--" terminates the flags */
        }
        if (*name == '-' || *name == '=') {
            snprintf(err, errlen, "bad flag syntax: %s", s);
            return CONFIG_PARSE_ERROR;
        }
        const char *eq = strchr(name, '=');
        char fname[128];
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (nlen >= sizeof(fname)) {
            snprintf(err, errlen, "flag provided but not defined: -%.64s...", name);
            return CONFIG_PARSE_ERROR;
        }
        memcpy(fname, name, nlen);
        fname[nlen] = '\0';
        const struct config_option *o = config_registry_find(r, fname);
        if (!o) {
            if (!strcmp(fname, "h") || !strcmp(fname, "help"))
                return CONFIG_PARSE_HELP;
            snprintf(err, errlen, "flag provided but not defined: -%s", fname);
            return CONFIG_PARSE_ERROR;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (o->kind == CONFIG_BOOL) {
            value = "true";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(err, errlen, "flag needs an argument: -%s", fname);
            return CONFIG_PARSE_ERROR;
        }
        if (option_set(o, value, &why)) {
            snprintf(err, errlen, "invalid value \"%.64s\" for flag -%s: %s", value, fname, why);
            return CONFIG_PARSE_ERROR;
        }
    }
    return CONFIG_PARSE_OK;
}

void config_registry_usage(const struct config_registry *r, FILE *out)
{
    for (size_t i = 0; i < r->n; i++) {
        const struct config_option *o = &r->opts[i];
        const char *kind = o->kind == CONFIG_BOOL ? "" : o->kind == CONFIG_INT ? " int"
                                                     : o->kind == CONFIG_DURATION ? " duration"
                                                                                   : " string";
        fprintf(out, "  -%s%s\n    \t%s", o->flag, kind, o->help);
        if (o->def && *o->def && !(o->kind == CONFIG_BOOL && !strcmp(o->def, "false")))
            fprintf(out, " (default %s)", o->def);
        if (o->env)
            fprintf(out, " [env %s]", o->env);
        fputc('\n', out);
    }
}

int config_register_common(struct config_registry *r, struct config *c)
{
    int rc = 0;
#define ADD(flag, env, kind, def, help, dst) rc |= config_registry_add(r, flag, env, kind, def, help, dst)
    ADD("socket", "REMOTE_HYPERVISOR_ENDPOINT", CONFIG_STRING, "/run/peerpod/hypervisor.sock",
        "Unix domain socket path of remote hypervisor service", &c->socket_path);
    ADD("pods-dir", "PODS_DIR", CONFIG_STRING, "/run/peerpod/pods", "base directory for pod directories",
        &c->pods_dir);
    ADD("pause-image", "PAUSE_IMAGE", CONFIG_STRING, "", "accepted for compatibility and ignored",
        &c->pause_image);
    ADD("forwarder-port", "FORWARDER_PORT", CONFIG_STRING, "15150",
        "port number of agent protocol forwarder", &c->forwarder_port);
    ADD("ca-cert-file", "CACERT_FILE", CONFIG_STRING, "", "CA cert file", &c->ca_cert_file);
    ADD("cert-file", "CERT_FILE", CONFIG_STRING, "", "cert file", &c->cert_file);
    ADD("cert-key", "CERT_KEY", CONFIG_STRING, "", "cert key", &c->cert_key);
    ADD("tls-skip-verify", "TLS_SKIP_VERIFY", CONFIG_BOOL, "false",
        "keep mutual TLS but skip verifying the pod VM's certificate", &c->tls_skip_verify);
    ADD("tls-min-version", "TLS_MIN_VERSION", CONFIG_STRING, "",
        "minimum TLS version: VersionTLS12 or VersionTLS13", &c->tls_min_version);
    ADD("tls-cipher-suites", "TLS_CIPHER_SUITES", CONFIG_STRING, "",
        "comma-separated TLS 1.2 cipher suites (IANA names)", &c->tls_cipher_suites);
    ADD("proxy-timeout", "PROXY_TIMEOUT", CONFIG_DURATION, "5m",
        "maximum time to wait for the agent proxy connection", &c->proxy_timeout_ns);
    ADD("tunnel-type", "TUNNEL_TYPE", CONFIG_STRING, "vxlan", "tunnel provider", &c->tunnel_type);
    ADD("vxlan-port", "VXLAN_PORT", CONFIG_INT, "4789", "vxlan port number", &c->vxlan_port);
    ADD("vxlan-min-id", NULL, CONFIG_INT, "555000", "minimum VXLAN ID", &c->vxlan_min_id);
    ADD("host-interface", NULL, CONFIG_STRING, "", "host interface for the tunnel (empty: the default route's device)",
        &c->host_interface);
    ADD("initdata", "INITDATA", CONFIG_STRING, "", "default initdata for all pods (base64)", &c->initdata);
    ADD("cloud-config-verify", "CLOUD_CONFIG_VERIFY", CONFIG_BOOL, "false",
        "verify the cloud configuration at start-up and exit if it is wrong", &c->cloud_config_verify);
    ADD("peerpods-limit-per-node", "PEERPODS_LIMIT_PER_NODE", CONFIG_INT, "10",
        "peer pods per node (negative: no limit)", &c->peerpods_limit);
    ADD("enable-scratch-space", "ENABLE_SCRATCH_SPACE", CONFIG_BOOL, "false",
        "enable encrypted scratch space for pod VMs", &c->enable_scratch_space);
    ADD("ext-network-via-podvm", "EXTERNAL_NETWORK_VIA_PODVM", CONFIG_BOOL, "false",
        "[experimental] route external traffic through the pod VM", &c->ext_network_via_podvm);
    ADD("pod-subnet-cidrs", "POD_SUBNET_CIDRS", CONFIG_STRING, "",
        "[experimental] comma-separated pod subnet CIDRs routed via the pod gateway", &c->pod_subnet_cidrs);
    ADD("disable-tls", NULL, CONFIG_BOOL, "false", "disable TLS between the daemon and the pod VM",
        &c->disable_tls);
    ADD("log-level", "LOG_LEVEL", CONFIG_STRING, "info", "log level: debug, info, warn or error",
        &c->log_level);
    ADD("direct-volumes-dir", NULL, CONFIG_STRING, "/run/kata-containers/shared/direct-volumes",
        "where kata publishes CSI direct volumes (read for CreateContainer's volume annotations)",
        &c->direct_volumes_dir);
    ADD("gc-interval", NULL, CONFIG_DURATION, "10m",
        "how often leftover pod VMs and sandboxes whose pod is gone are looked for", &c->gc_interval_ns);
    ADD("loop-nice", NULL, CONFIG_INT, "-10",
        "nice value of the event loop thread (-20..19; 0: the process's own)", &c->loop_nice);
#undef ADD
    return rc ? -1 : 0;
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

/* Settings read from the environment only, as the Go daemon does. */
static const struct env_only {
    const char *name, *def, *help;
    size_t off; /* of the const char * in struct config */
} env_only[] = {
    {"NODE_NAME", "", "this node's name (downward API): node capacity, the startup probe",
     offsetof(struct config, node_name)},
    {"POD_UID", "", "the daemon pod's UID (downward API): owner of the node's capacity",
     offsetof(struct config, pod_uid)},
    {"PROBE_PORT", "8000", "TCP port of /startup, /healthz, /readyz and /metrics on 127.0.0.1",
     offsetof(struct config, probe_port)},
    {"RUNTIMECLASS_NAME", "kata-remote", "runtime class of the peer pods the startup probe waits for",
     offsetof(struct config, runtimeclass_name)},
    {"KUBERNETES_SERVICE_HOST", "", "Kubernetes API address (set by Kubernetes in every pod)",
     offsetof(struct config, kube_host)},
    {"KUBERNETES_SERVICE_PORT", "", "Kubernetes API port (set by Kubernetes in every pod)",
     offsetof(struct config, kube_port)},
    {"K8S_SERVICE_ACCOUNT_DIR", "/var/run/secrets/kubernetes.io/serviceaccount",
     "directory of the service-account token and ca.crt for the Kubernetes API",
     offsetof(struct config, kube_sa_dir)},
};

void config_load_env(struct config *c)
{
    for (size_t i = 0; i < sizeof(env_only) / sizeof(env_only[0]); i++)
        *(const char **)((char *)c + env_only[i].off) = env_or(env_only[i].name, env_only[i].def);
}

void config_env_usage(FILE *out)
{
    fprintf(out, "Environment only:\n");
    for (size_t i = 0; i < sizeof(env_only) / sizeof(env_only[0]); i++) {
        fprintf(out, "  %s\n    \t%s", env_only[i].name, env_only[i].help);
        if (*env_only[i].def)
            fprintf(out, " (default %s)", env_only[i].def);
        fputc('\n', out);
    }
}

static int port_check(const char *s, int64_t *out)
{
    return int_parse(s, out) || *out < 1 || *out > 65535 ? -1 : 0;
}

int config_validate(const struct config *c, char *err, size_t errlen)
{
    int64_t port;
    if (strcmp(c->tunnel_type, "vxlan")) {
        snprintf(err, errlen, "TUNNEL_TYPE (-tunnel-type): failed to get tunneler: unknown tunnel type \"%.64s\"",
                 c->tunnel_type);
        return -1;
    }
    if (c->vxlan_port < 1 || c->vxlan_port > 65535) {
        snprintf(err, errlen, "VXLAN_PORT (-vxlan-port): %lld is not a UDP port (1-65535)", (long long)c->vxlan_port);
        return -1;
    }
    if (c->vxlan_min_id < 1 || c->vxlan_min_id > 0xffffff) {
        snprintf(err, errlen, "-vxlan-min-id: %lld is not a VXLAN id (1-16777215)", (long long)c->vxlan_min_id);
        return -1;
    }
    if (port_check(c->forwarder_port, &port)) {
        snprintf(err, errlen, "FORWARDER_PORT (-forwarder-port): \"%.64s\" is not a TCP port (1-65535)",
                 c->forwarder_port);
        return -1;
    }
    if (c->proxy_timeout_ns <= 0) {
        snprintf(err, errlen, "PROXY_TIMEOUT (-proxy-timeout): must be positive, e.g. 5m");
        return -1;
    }
    if (c->gc_interval_ns < 1000000000LL) {
        snprintf(err, errlen, "-gc-interval: must be at least 1s, e.g. 10m");
        return -1;
    }
    if (c->loop_nice < -20 || c->loop_nice > 19) {
        snprintf(err, errlen, "-loop-nice: %lld is not a nice value (-20..19)", (long long)c->loop_nice);
        return -1;
    }
    if (*c->tls_min_version && strcmp(c->tls_min_version, "VersionTLS12") &&
        strcmp(c->tls_min_version, "VersionTLS13")) {
        snprintf(err, errlen, "TLS_MIN_VERSION (-tls-min-version): invalid TLS profile: \"%.64s\" is not "
                 "VersionTLS12 or VersionTLS13", c->tls_min_version);
        return -1;
    }
    if (*c->tls_cipher_suites && !strcmp(c->tls_min_version, "VersionTLS13")) {
        snprintf(err, errlen, "TLS_CIPHER_SUITES (-tls-cipher-suites): invalid TLS profile: cipher suites "
                 "cannot be configured with VersionTLS13");
        return -1;
    }
    if (c->socket_path[0] != '/' || strlen(c->socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        snprintf(err, errlen, "REMOTE_HYPERVISOR_ENDPOINT (-socket): \"%.128s\" must be an absolute path "
                 "shorter than %zu bytes", c->socket_path, sizeof(((struct sockaddr_un *)0)->sun_path));
        return -1;
    }
    if (c->pods_dir[0] != '/' || strchr(c->pods_dir, ':')) {
        snprintf(err, errlen, "PODS_DIR (-pods-dir): \"%.128s\" must be an absolute path without ':' "
                 "(kata splits the agent socket address on ':')", c->pods_dir);
        return -1;
    }
    if (log_level_parse(c->log_level) < 0) {
        snprintf(err, errlen, "LOG_LEVEL (-log-level): \"%.32s\" is not debug, info, warn or error", c->log_level);
        return -1;
    }
    int64_t probe;
    if (port_check(c->probe_port, &probe)) {
        snprintf(err, errlen, "PROBE_PORT: \"%.32s\" is not a TCP port (1-65535)", c->probe_port);
        return -1;
    }
    return 0;
}
