/* config: command-line flags and environment variables, with Go `flag` semantics.
 *
 * A registry maps each option (flag name, optional env var, kind, default, help) to a
 * destination field owned by whoever registered it: the daemon's struct config for common
 * options, a provider's own config struct for provider options. String destinations are
 * set to pointers into the default literal, the environment or argv (all live for the
 * process lifetime), so nothing parsed here needs freeing except the registry itself.
 * Precedence: built-in default < env var (if set and non-empty) < explicit flag. */
#ifndef ADAPTOR_CONFIG_H
#define ADAPTOR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum config_kind { CONFIG_STRING, CONFIG_BOOL, CONFIG_INT, CONFIG_DURATION };

struct config_option {
    const char *flag; /* without the leading dash */
    const char *env;  /* NULL for flag-only options */
    enum config_kind kind;
    const char *def; /* default, in flag syntax */
    const char *help;
    void *dst; /* const char **, bool *, int64_t *, or int64_t * nanoseconds */
};

struct config_registry {
    struct config_option *opts;
    size_t n, cap;
    /* After config_registry_parse: env values read by the Go daemon's lenient rules that were
     * not what they look like ("yes" is false, "30GB" is 30, a bare "300" duration is ignored),
     * one line each, for the caller to log ("" when none). */
    char warnings[1024];
};

/* Returns 0, or -1 on allocation failure or a duplicate flag name. */
int config_registry_add(struct config_registry *r, const char *flag, const char *env, enum config_kind kind,
                        const char *def, const char *help, void *dst);
void config_registry_free(struct config_registry *r);

enum { CONFIG_PARSE_ERROR = -1, CONFIG_PARSE_OK = 0, CONFIG_PARSE_HELP = 1 };

/* Applies defaults, then the environment, then argv (flags only, Go rules: -f v, -f=v, --f,
 * bool -f / -f=false, parsing stops at the first non-flag or after "--"). On error, err holds
 * one line naming the setting and the problem. */
int config_registry_parse(struct config_registry *r, int argc, char *const *argv, char *err, size_t errlen);
void config_registry_usage(const struct config_registry *r, FILE *out);
const struct config_option *config_registry_find(const struct config_registry *r, const char *flag);

/* Go time.ParseDuration: "300ms", "1.5h", "2h45m", "-1s", "0". Returns 0 or -1 with a reason. */
int config_duration_parse(const char *s, int64_t *ns, const char **why);

/* The options every provider shares (spec protocols.md 7.2/7.3). */
struct config {
    const char *socket_path;
    const char *pods_dir;
    const char *pause_image;
    const char *forwarder_port;
    const char *ca_cert_file;
    const char *cert_file;
    const char *cert_key;
    bool tls_skip_verify;
    const char *tls_min_version;
    const char *tls_cipher_suites;
    int64_t proxy_timeout_ns;
    const char *tunnel_type;
    int64_t vxlan_port;
    int64_t vxlan_min_id;
    const char *host_interface;
    const char *initdata;
    bool cloud_config_verify;
    int64_t peerpods_limit;
    bool enable_scratch_space;
    bool ext_network_via_podvm;
    const char *pod_subnet_cidrs;
    bool disable_tls;
    const char *log_level;
    const char *direct_volumes_dir;
    int64_t gc_interval_ns;
    int64_t loop_nice;
    /* Environment only. */
    const char *node_name;
    const char *pod_uid;
    const char *probe_port;
    const char *runtimeclass_name;
    const char *kube_host, *kube_port; /* KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT */
    const char *kube_sa_dir;           /* K8S_SERVICE_ACCOUNT_DIR */
};

int config_register_common(struct config_registry *r, struct config *c);
/* Reads the environment-only settings. */
void config_load_env(struct config *c);
/* Lists the environment-only settings (name, meaning, default) for -help. */
void config_env_usage(FILE *out);
/* Cross-field and range checks after parsing; err names the setting. */
int config_validate(const struct config *c, char *err, size_t errlen);

#endif
