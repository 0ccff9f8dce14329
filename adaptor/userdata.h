/* userdata: the document a pod VM receives as user-data (spec protocols.md 4.1-4.4):
 * the cloud-config renderer, the write_files entries of 4.2 in their order, the apf.json
 * builder (byte-compatible with Go's json.MarshalIndent) and the auth.json renderer
 * (byte-compatible with Go's json.Marshal). Pure code, no I/O, no logging.
 *
 * Memory: every input (structs, strings, byte ranges) is borrowed for the duration of the
 * call only. Every char * returned is malloc'd, NUL-terminated (the NUL is not counted in
 * *out_len), owned by the caller and released with userdata_text_free, which wipes it
 * first: apf.json carries a TLS private key and auth.json registry credentials. A
 * userdata_file array filled by userdata_files_assemble points into the caller's inputs and
 * owns nothing. Intermediate buffers are wiped before they are freed.
 *
 * Errors: functions returning a pointer return NULL and set errno (ENOMEM, EINVAL for input
 * the pod VM could not read back, EFBIG above USERDATA_TEXT_MAX); where an err buffer is
 * taken it receives a one-line reason that never quotes a secret. */
#ifndef ADAPTOR_USERDATA_H
#define ADAPTOR_USERDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Paths of protocols.md 4.2 (CAA pkg/paths). */
#define USERDATA_PATH_APF_JSON "/run/peerpod/apf.json"
#define USERDATA_PATH_AUTH_JSON "/run/peerpod/auth.json"
#define USERDATA_PATH_INITDATA "/run/peerpod/initdata"
#define USERDATA_PATH_SCRATCH_MARKER "/run/peerpod/scratch-space.marker"

/* auth.json above this many bytes is not sent (CAA DefaultAuthfileLimit). */
#define USERDATA_AUTH_JSON_MAX 12288
/* The most entries of 4.2: apf.json, auth.json, initdata, scratch marker. */
#define USERDATA_FILES_MAX 4
/* No text this module produces may exceed this; far above any cloud's user-data limit. */
#define USERDATA_TEXT_MAX (16u << 20)

/* ------------------------------------------------------------------ cloud-config (4.1) */

struct userdata_file {
    const char *path;       /* NUL-terminated; [A-Za-z0-9._/+-]+, written unquoted */
    const uint8_t *content; /* may be NULL when len == 0 */
    size_t len;             /* 0: the entry gets no content key (the scratch marker) */
};

/* Renders "#cloud-config\n" and, for n >= 1, the write_files list exactly as CAA does.
 * Refuses (EINVAL) a file whose content a YAML reader would not give back as content + "\n"
 * (or as content itself when it ends in one "\n"): invalid UTF-8, characters YAML does not
 * allow, line breaks other than "\n", trailing blank lines, or a first line that is empty
 * or starts with a space (YAML would take the block's indentation from it). files may be
 * NULL when n == 0. */
char *userdata_cloudconfig_render(const struct userdata_file *files, size_t n, size_t *out_len);

/* ------------------------------------------------------------------ write_files (4.2) */

struct userdata_sources {
    const char *apf_json; /* required, non-empty (userdata_apf_json_build) */
    size_t apf_json_len;
    const char *auth_json; /* NULL or empty: the pod has no pull secrets */
    size_t auth_json_len;
    const char *initdata; /* base64(gzip(TOML)) on one line; NULL or "" = none */
    bool scratch_space;   /* ENABLE_SCRATCH_SPACE */
};

/* Fills out[0..return) with the 4.2 entries in order. An auth.json over
 * USERDATA_AUTH_JSON_MAX is left out and *auth_dropped set, for the caller to log (without
 * its contents); otherwise *auth_dropped is false. Returns the entry count (1..4), or -1 with
 * errno EINVAL when apf_json is missing or initdata holds anything but the base64 alphabet. */
int userdata_files_assemble(struct userdata_file out[USERDATA_FILES_MAX], const struct userdata_sources *src,
                            bool *auth_dropped);

/* userdata_files_assemble followed by userdata_cloudconfig_render. */
char *userdata_document_render(const struct userdata_sources *src, bool *auth_dropped, size_t *out_len);

/* ------------------------------------------------------------------ apf.json (4.3) */

/* Kernel numbers (RTPROT_*, RT_SCOPE_*, NUD_*); 0 means "omit the key". Other values are
 * refused: APF accepts only these names. */
#define USERDATA_RTPROT_KERNEL 2
#define USERDATA_RTPROT_BOOT 3
#define USERDATA_RTPROT_STATIC 4
#define USERDATA_RTPROT_DHCP 16
#define USERDATA_SCOPE_SITE 200
#define USERDATA_SCOPE_LINK 253
#define USERDATA_SCOPE_HOST 254
#define USERDATA_SCOPE_NOWHERE 255
#define USERDATA_NUD_PERMANENT 0x80

/* For every string below NULL is written as "" (or omitted where the key is omitempty). */
struct userdata_route {
    const char *dst; /* "a.b.c.d/len"; the default route is "0.0.0.0/0" */
    const char *gw;  /* address, "" for none */
    const char *dev; /* omitted when empty */
    int protocol;    /* RTPROT_*: 2 kernel, 3 boot, 4 static, 16 dhcp; 0 omitted */
    int scope;       /* RT_SCOPE_*: 200 site, 253 link, 254 host, 255 nowhere; 0 omitted */
};

struct userdata_neighbor {
    const char *ip;
    const char *hw_addr; /* "xx:xx:xx:xx:xx:xx" */
    const char *dev;     /* omitted when empty */
    int state;           /* one NUD_* bit 0x01..0x80, named as vishvananda/netlink does; 0 omitted */
};

struct userdata_pod_network {
    const char *pod_ip;         /* "a.b.c.d/len" or "" */
    const char *pod_hw_addr;
    const char *interface;
    const char *worker_node_ip; /* "a.b.c.d/len" */
    const char *tunnel_type;    /* "vxlan" */
    const struct userdata_route *routes; /* n_routes == 0 writes null, as Go does for a nil slice */
    size_t n_routes;
    const struct userdata_neighbor *neighbors; /* n_neighbors == 0 writes null */
    size_t n_neighbors;
    int mtu;
    int index;
    int vxlan_port; /* omitted when 0 */
    int vxlan_id;   /* omitted when 0 */
    bool dedicated;
    bool external_net_via_pod_vm;
};

struct userdata_apf {
    struct userdata_pod_network pod_network;
    const char *pod_namespace;
    const char *pod_name;
    /* The TLS keys are omitted when NULL or "": pass what the TLS mode gives (3.6). */
    const char *tls_server_key;
    const char *tls_server_cert;
    const char *tls_client_ca;
    const char *tls_min_version;
    /* TLS_CIPHER_SUITES as configured: split on ',' without trimming ("a,,b" gives three
     * elements); NULL or "" omits the key. */
    const char *tls_cipher_suites;
};

/* Builds apf.json: 4-space indentation, keys in the order of 4.3, no trailing newline, Go's
 * string escaping; sc-pp-prv and sc-wn-pub are never written. Returns NULL with errno EINVAL
 * and a reason in err for a protocol, scope or state number APF would not accept. */
char *userdata_apf_json_build(const struct userdata_apf *apf, size_t *out_len, char *err, size_t errlen);

/* ------------------------------------------------------------------ auth.json (4.4) */

struct userdata_registry_auth {
    const char *registry;
    const char *auth; /* base64("user:password") */
};

/* Renders {"auths":{"<registry>":{"auth":"<b64>"},...}} compactly, registries sorted
 * bytewise as Go sorts map keys; when a registry appears twice the later entry wins (the
 * pod's own secrets come after the service account's). n == 0 gives {"auths":{}}. */
char *userdata_auth_json_render(const struct userdata_registry_auth *regs, size_t n, size_t *out_len);

/* ------------------------------------------------------------------ helpers */

/* s[0..len) as a Go encoding/json string literal, quotes included: HTML escaping on,
 * \b \f \n \r \t by name (Go 1.22+), other control bytes as \u00xx, U+2028/U+2029 escaped,
 * each byte of invalid UTF-8 as \ufffd. */
char *userdata_json_quote(const char *s, size_t len, size_t *out_len);

/* Wipes and frees a text returned here (none holds a NUL byte before its end). NULL is
 * ignored. */
void userdata_text_free(char *text);

#endif
