/* tlsca: the TLS material between the daemon and the pod VMs (spec protocols.md 3.2, 3.6, 4.3).
 *
 * Owns the mode decided at start-up, the CA (generated, or loaded from CACERT_FILE), the
 * client certificate and key (generated, or loaded from CERT_FILE/CERT_KEY) and the TLS
 * profile (TLS_MIN_VERSION, TLS_CIPHER_SUITES). Generated material is persisted under
 * <state_dir>/tls/ (ca.key, ca.crt, client.key, client.crt; mode 0600) and reloaded at the
 * next start, so a restarted daemon still talks to the pod VMs it created before.
 *
 * Memory: struct tlsca is freed by tlsca_free; every const char * it hands out lives as
 * long as the struct. The PEM strings tlsca_issue_server and tlsca_client_key_pem return
 * are malloc'd and owned by the caller, who frees them with tlsca_pem_free (which wipes
 * them: they may hold a private key). An SSL_CTX from tlsca_client_ctx_new is the caller's
 * (SSL_CTX_free); it holds its own references, so it may outlive the struct tlsca.
 *
 * After tlsca_open the struct is read-only: its functions may be called from any thread.
 * No function here logs key material; error strings name files, never their contents. */
#ifndef ADAPTOR_TLSCA_H
#define ADAPTOR_TLSCA_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/ssl.h>

/* What the pod VM presents when CACERT_FILE is given (proxy.go podvmServername). */
#define TLSCA_PODVM_SERVER_NAME "podvm-server"

enum tlsca_mode {
    TLSCA_DISABLED,     /* -disable-tls: plain TCP to the forwarder */
    TLSCA_AUTO,         /* generated CA, generated client cert, a server cert per VM */
    TLSCA_CLIENT_FILES, /* client cert/key from CERT_FILE/CERT_KEY, generated CA */
    TLSCA_CA_FILE,      /* CA from CACERT_FILE, client from files or generated; no server certs */
};

struct tlsca_options {
    bool disable_tls;
    const char *ca_cert_file; /* NULL or "" = none */
    const char *cert_file;    /* NULL or "" = none; given together with cert_key */
    const char *cert_key;
    /* Generated material goes to <state_dir>/tls/; required whenever something must be
     * generated (every mode but TLSCA_DISABLED and CA file + cert/key files). */
    const char *state_dir;
    /* Clock for generated certificates; 0 = the real clock. Only tests set it. */
    time_t now;
};

struct tlsca;

/* Decides the mode, then loads or generates (and persists) the material it needs. A
 * persisted certificate that has expired is regenerated with a warning; a persisted key
 * that is missing, unreadable or does not match its certificate is an error (replacing it
 * silently would cut off every running pod VM). Returns 0, or -1 with err naming the
 * setting or file and what is wrong. */
int tlsca_open(struct tlsca **out, const struct tlsca_options *opt, char *err, size_t errlen);
void tlsca_free(struct tlsca *ca);

enum tlsca_mode tlsca_mode_get(const struct tlsca *ca);
const char *tlsca_mode_name(enum tlsca_mode mode);

/* --- What apf.json gets (spec 4.3) --- */

/* True in TLSCA_AUTO and TLSCA_CLIENT_FILES: apf.json carries tls-server-cert/-key. */
bool tlsca_issues_server_certs(const struct tlsca *ca);
/* A fresh ECDSA P-256 key and a certificate for server_name (a DNS label sequence of at
 * most 64 characters, normally the VM name), signed by the CA: CN and SAN DNS = server_name,
 * EKU serverAuth, validity clipped to the CA's. *cert_pem and *key_pem (PKCS#8) are
 * malloc'd; free both with tlsca_pem_free. Fails outside the modes above. */
int tlsca_issue_server(const struct tlsca *ca, const char *server_name, char **cert_pem, char **key_pem,
                       char *err, size_t errlen);
/* Wipes and frees a PEM string from this module; NULL is a no-op. */
void tlsca_pem_free(char *pem);
/* tls-client-ca: the client certificate PEM (the forwarder's root pool) in TLSCA_AUTO and
 * TLSCA_CLIENT_FILES, NULL otherwise. */
const char *tlsca_apf_client_ca(const struct tlsca *ca);

/* --- What the client side of the agent relay needs (spec 3.2) --- */

/* PEM of the certificates the pod VM's chain is verified against; NULL when disabled. */
const char *tlsca_ca_pem(const struct tlsca *ca);
/* The client certificate PEM (with any chain from CERT_FILE); NULL when disabled. */
const char *tlsca_client_cert_pem(const struct tlsca *ca);
/* A malloc'd PKCS#8 PEM copy of the client key; free with tlsca_pem_free. */
int tlsca_client_key_pem(const struct tlsca *ca, char **key_pem, char *err, size_t errlen);
/* The name the pod VM's certificate must carry: vm_name when the daemon runs its own CA,
 * TLSCA_PODVM_SERVER_NAME when a CA file is given; NULL when disabled. */
const char *tlsca_server_name(const struct tlsca *ca, const char *vm_name);

/* --- TLS profile (TLS_MIN_VERSION, TLS_CIPHER_SUITES) --- */

struct tlsca_profile {
    int min_version;   /* TLS1_2_VERSION or TLS1_3_VERSION */
    char *cipher_list; /* OpenSSL TLS 1.2 cipher string; NULL = the built-in default */
};

/* Maps a cipher-suite name Kubernetes/Go accept (IANA spelling, plus Go's two legacy
 * CHACHA20 aliases) to OpenSSL's name. Returns 1 for a TLS 1.2 suite (*openssl set), 0 for
 * a TLS 1.3 suite (accepted, but neither Go nor this daemon let it be restricted; *openssl
 * NULL), -1 for an unknown name. */
int tlsca_cipher_lookup(const char *iana, const char **openssl);
/* Validates the two settings as the daemon reads them ("" = unset). Names are taken as
 * written between commas, not trimmed, because apf.json passes them to the forwarder the
 * same way. Known suites this OpenSSL lacks (3DES, RC4) are skipped with a warning; if only
 * TLS 1.3 names remain, TLS 1.2 cannot be negotiated and min_version becomes TLS 1.3, as
 * with Go. Errors start with "invalid TLS profile: ". On success free with
 * tlsca_profile_free. */
int tlsca_profile_parse(struct tlsca_profile *p, const char *min_version, const char *cipher_suites, char *err,
                        size_t errlen);
void tlsca_profile_free(struct tlsca_profile *p);

/* A client context for dialling pod VMs: client certificate and key, the CA as the only
 * trust anchors, peer verification with the TLS profile applied (profile NULL = TLS 1.2+
 * with the default suites). skip_verify (TLS_SKIP_VERIFY, DECISIONS 5) keeps presenting
 * the client certificate but does not check the pod VM's chain or name. NULL when
 * disabled or on error. */
SSL_CTX *tlsca_client_ctx_new(const struct tlsca *ca, const struct tlsca_profile *profile, bool skip_verify,
                              char *err, size_t errlen);
/* Per connection: SNI and the expected name (tlsca_server_name), checked against the SAN
 * DNS names only, as Go does. Call before SSL_connect. */
int tlsca_client_ssl_prepare(const struct tlsca *ca, SSL *ssl, const char *vm_name, char *err, size_t errlen);

#endif
