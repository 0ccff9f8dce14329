/* tlsca-tool: drives adaptor/tlsca.c from tests/tls/run.sh so the material it makes can be
 * checked with the openssl command-line tools, independently of this code.
 *
 *   tlsca-tool init STATE_DIR                      generate (or reload) the CA and client cert
 *   tlsca-tool issue STATE_DIR NAME OUT_DIR        write OUT_DIR/server.crt and server.key (0600)
 *   tlsca-tool open STATE_DIR CA_FILE CERT KEY     decide the mode ("" = not given); print it
 *   tlsca-tool profile MIN_VERSION CIPHER_SUITES   print the OpenSSL form of a TLS profile
 *
 * Exit status 0 on success, 1 with the module's error message on stderr otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tlsca.h"

static int tool_file_write(const char *dir, const char *name, const char *data, mode_t mode)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        fprintf(stderr, "tlsca-tool: path too long\n");
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        fprintf(stderr, "tlsca-tool: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t len = strlen(data), off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "tlsca-tool: %s: %s\n", path, strerror(errno));
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0) {
        fprintf(stderr, "tlsca-tool: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int tool_open(struct tlsca **ca, const char *dir, const char *ca_file, const char *cert, const char *key)
{
    struct tlsca_options opt = {
        .ca_cert_file = ca_file, .cert_file = cert, .cert_key = key, .state_dir = dir,
    };
    char err[512];
    if (tlsca_open(ca, &opt, err, sizeof(err)) < 0) {
        fprintf(stderr, "tlsca-tool: %s\n", err);
        return -1;
    }
    return 0;
}

static int tool_issue(const char *dir, const char *name, const char *out)
{
    struct tlsca *ca;
    if (tool_open(&ca, dir, NULL, NULL, NULL) < 0)
        return 1;
    char *crt = NULL, *key = NULL, err[512];
    int rc = 1;
    if (tlsca_issue_server(ca, name, &crt, &key, err, sizeof(err)) < 0)
        fprintf(stderr, "tlsca-tool: %s\n", err);
    else if (tool_file_write(out, "server.crt", crt, 0644) == 0 && tool_file_write(out, "server.key", key, 0600) == 0)
        rc = 0;
    free(crt);
    tlsca_pem_free(key);
    tlsca_free(ca);
    return rc;
}

static int tool_describe(const char *dir, const char *ca_file, const char *cert, const char *key)
{
    struct tlsca *ca;
    if (tool_open(&ca, dir, ca_file, cert, key) < 0)
        return 1;
    const char *sn = tlsca_server_name(ca, "vm1");
    printf("mode=%s server-name=%s issues-server-certs=%s apf-client-ca=%s\n", tlsca_mode_name(tlsca_mode_get(ca)),
           sn ? sn : "-", tlsca_issues_server_certs(ca) ? "yes" : "no", tlsca_apf_client_ca(ca) ? "yes" : "no");
    tlsca_free(ca);
    return 0;
}

static int tool_profile(const char *min, const char *suites)
{
    struct tlsca_profile p;
    char err[512];
    if (tlsca_profile_parse(&p, min, suites, err, sizeof(err)) < 0) {
        fprintf(stderr, "tlsca-tool: %s\n", err);
        return 1;
    }
    printf("min=%s ciphers=%s\n", p.min_version == TLS1_3_VERSION ? "TLS1.3" : "TLS1.2",
           p.cipher_list ? p.cipher_list : "default");
    tlsca_profile_free(&p);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "init")) {
        struct tlsca *ca;
        if (tool_open(&ca, argv[2], NULL, NULL, NULL) < 0)
            return 1;
        tlsca_free(ca);
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "issue"))
        return tool_issue(argv[2], argv[3], argv[4]);
    if (argc == 6 && !strcmp(argv[1], "open"))
        return tool_describe(argv[2], argv[3], argv[4], argv[5]);
    if (argc == 4 && !strcmp(argv[1], "profile"))
        return tool_profile(argv[2], argv[3]);
    fprintf(stderr, "usage: tlsca-tool init DIR | issue DIR NAME OUT_DIR | open DIR CA_FILE CERT KEY | "
                    "profile MIN_VERSION SUITES\n");
    return 2;
}
