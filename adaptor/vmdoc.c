/* vmdoc: one sandbox's user-data document (see vmdoc.h). */
#include "vmdoc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ttrpc.h"

size_t vmdoc_base64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

void vmdoc_result_clear(struct vmdoc_result *r)
{
    userdata_text_free((char *)r->doc);
    memset(r, 0, sizeof(*r));
}

int vmdoc_build(const struct vmdoc_input *in, struct vmdoc_result *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    int code = TTRPC_INTERNAL;
    struct initdata pod_init = {0};
    char *cert = NULL, *key = NULL, *apf = NULL;
    const char *initdata = NULL;

    /* Initdata: the pod's annotation wins over INITDATA (spec 4.5). */
    if (in->pod->initdata && *in->pod->initdata) {
        if (initdata_decode(&pod_init, INITDATA_FROM_ANNOTATION, in->pod->initdata, strlen(in->pod->initdata), err,
                            errlen)) {
            code = TTRPC_INVALID_ARGUMENT;
            goto out;
        }
        initdata = pod_init.vm_value;
        r->initdata_source = VMDOC_INITDATA_ANNOTATION;
        memcpy(r->initdata_algorithm, pod_init.algorithm, sizeof(r->initdata_algorithm));
        memcpy(r->initdata_digest, pod_init.digest, sizeof(r->initdata_digest));
    } else if (in->global && in->global->vm_value) {
        initdata = in->global->vm_value;
        r->initdata_source = VMDOC_INITDATA_GLOBAL;
        memcpy(r->initdata_algorithm, in->global->algorithm, sizeof(r->initdata_algorithm));
        memcpy(r->initdata_digest, in->global->digest, sizeof(r->initdata_digest));
    }

    struct userdata_apf a = {
        .pod_network = *in->net,
        .pod_namespace = in->pod->pod_namespace,
        .pod_name = in->pod->pod_name,
    };
    if (in->tls && tlsca_mode_get(in->tls) != TLSCA_DISABLED) { /* spec 4.3: TLS keys only with TLS */
        if (tlsca_issues_server_certs(in->tls)) {
            char why[256];
            if (tlsca_issue_server(in->tls, in->vm_name, &cert, &key, why, sizeof(why))) {
                snprintf(err, errlen, "creating TLS certificate for communication between worker node and peer pod "
                                      "VM: %s", why);
                goto out;
            }
            a.tls_server_cert = cert;
            a.tls_server_key = key;
            r->server_cert = true;
        }
        a.tls_client_ca = tlsca_apf_client_ca(in->tls);
        a.tls_min_version = in->cfg->tls_min_version;
        a.tls_cipher_suites = in->cfg->tls_cipher_suites;
    }
    size_t apf_len;
    char why[256];
    if (!(apf = userdata_apf_json_build(&a, &apf_len, why, sizeof(why)))) {
        snprintf(err, errlen, "building apf.json for the pod VM: %s", errno == EINVAL ? why : strerror(errno));
        goto out;
    }
    struct userdata_sources src = {
        .apf_json = apf,
        .apf_json_len = apf_len,
        .auth_json = in->auth_json,
        .auth_json_len = in->auth_json_len,
        .initdata = initdata,
        .scratch_space = in->cfg->enable_scratch_space,
    };
    char *doc = userdata_document_render(&src, &r->auth_dropped, &r->len);
    if (!doc) {
        snprintf(err, errlen, "rendering the pod VM's cloud-config: %s", strerror(errno));
        goto out;
    }
    r->doc = (uint8_t *)doc;
    code = 0;
out:
    tlsca_pem_free(cert);
    tlsca_pem_free(key);
    userdata_text_free(apf);
    initdata_clear(&pod_init);
    if (code)
        vmdoc_result_clear(r);
    return code;
}
