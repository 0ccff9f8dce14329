/* vmdoc: assembles one sandbox's pod-VM user-data document (spec protocols.md 2.4 steps
 * 10-14, 4.2): apf.json with the TLS material of the daemon's mode (a fresh server
 * certificate for the VM name in the modes that issue them), auth.json, the initdata the
 * pod's annotation or else the global INITDATA provides, and the scratch marker, rendered
 * as cloud-config. CPU only: no I/O and no logging (the caller logs what vmdoc_result
 * reports, which never holds a secret).
 *
 * Memory: every input is borrowed for the call. result->doc is malloc'd, owned by the
 * caller and released with vmdoc_result_clear, which wipes it (it holds a TLS private key
 * and maybe registry credentials). */
#ifndef ADAPTOR_VMDOC_H
#define ADAPTOR_VMDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "annotations.h"
#include "config.h"
#include "initdata.h"
#include "tlsca.h"
#include "userdata.h"

struct vmdoc_input {
    const struct config *cfg;        /* ENABLE_SCRATCH_SPACE, TLS profile strings, ... */
    const struct tlsca *tls;         /* NULL with -disable-tls */
    const struct initdata *global;   /* validated INITDATA; vm_value NULL when unset */
    const struct pod_spec *pod;      /* names and the cc_init_data annotation */
    const char *vm_name;             /* spec 5.1; the server certificate's name */
    const struct userdata_pod_network *net;
    const char *auth_json;           /* NULL: no pull secrets */
    size_t auth_json_len;
};

enum vmdoc_initdata_source { VMDOC_INITDATA_NONE, VMDOC_INITDATA_ANNOTATION, VMDOC_INITDATA_GLOBAL };

struct vmdoc_result {
    uint8_t *doc;
    size_t len;
    enum vmdoc_initdata_source initdata_source;
    char initdata_algorithm[8];
    char initdata_digest[129];
    bool auth_dropped;   /* auth.json was over USERDATA_AUTH_JSON_MAX and left out */
    bool server_cert;    /* apf.json carries a server certificate issued for vm_name */
};

/* Returns 0, or a gRPC code (TTRPC_INVALID_ARGUMENT for a bad annotation, TTRPC_INTERNAL
 * otherwise) with a message for the kata shim in err. *result is zeroed on failure. */
int vmdoc_build(const struct vmdoc_input *in, struct vmdoc_result *result, char *err, size_t errlen);
void vmdoc_result_clear(struct vmdoc_result *r);

/* Length of the standard base64 form of n bytes: what clouds that take base64 user-data
 * (Azure: 64 KiB) count against their limit. */
size_t vmdoc_base64_len(size_t n);

#endif
