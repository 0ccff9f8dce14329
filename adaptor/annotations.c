/* annotations: CreateVM annotation parsing (see annotations.h). */
#include "annotations.h"

#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

/* Last value of key, or NULL if the key is absent. */
static const char *annotation_lookup(const struct annotation *a, size_t n, const char *key)
{
    const char *v = NULL;

    for (size_t i = 0; i < n; i++)
        if (a[i].key && strcmp(a[i].key, key) == 0)
            v = a[i].value ? a[i].value : "";
    return v;
}

/* Go parses these as int64 and uses 0 for anything unparsable; negatives also become 0
 * here. Improvement: runtime-rs prints vCPUs as an f32, so "1.5" is accepted and rounded
 * up (the VM must not get less than asked for). Saturates at UINT32_MAX. */
static uint32_t annotation_count_parse(const char *s)
{
    uint64_t v = 0;
    const char *p = s;
    bool round_up = false;

    if (!p || !*p)
        return 0;
    if (*p == '+')
        p++;
    if (*p < '0' || *p > '9')
        return 0; /* also rejects '-' */
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > UINT32_MAX)
            v = UINT32_MAX; /* keeps v*10 far from uint64 overflow */
    }
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return 0;
        for (; *p >= '0' && *p <= '9'; p++)
            if (*p != '0')
                round_up = true;
    }
    if (*p)
        return 0;
    if (round_up && v < UINT32_MAX)
        v++;
    return (uint32_t)v;
}

/* Pod name per CAA GetPodName: CRI-O passes "k8s_<pod>_<ns>_<uid>_<n>". */
static char *annotation_pod_name(const char *v)
{
    const char *first_sep = strchr(v, '_');

    if (first_sep && first_sep - v == 3 && strncmp(v, "k8s", 3) == 0) {
        const char *start = first_sep + 1;
        const char *end = strchr(start, '_');
        return strndup(start, end ? (size_t)(end - start) : strlen(start));
    }
    return strdup(v);
}

/* Kubernetes names are ASCII; the pod's name and namespace also go into XML (libvirt domain
 * metadata), YAML and cloud tags, where control characters or broken UTF-8 cannot go. */
static bool name_printable(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (*p < 0x20 || *p == 0x7f)
            return false;
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t k = (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : 0;
        if (!k || *p == 0xc0 || *p == 0xc1 || *p > 0xf4)
            return false;
        for (size_t i = 1; i <= k; i++)
            if ((p[i] & 0xc0) != 0x80)
                return false;
        p += k + 1;
    }
    return true;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

int pod_spec_parse(struct pod_spec *out, const struct annotation *a, size_t n, char *err,
                   size_t errlen)
{
    struct pod_spec ps = { 0 };
    const char *v;

    if (err && errlen > 0)
        err[0] = '\0';
    memset(out, 0, sizeof(*out));
    if (!a)
        n = 0;

    ps.pod_name = annotation_pod_name(or_empty(annotation_lookup(a, n, ANNOTATION_SANDBOX_NAME)));
    if (!ps.pod_name)
        goto oom;
    if (!ps.pod_name[0]) {
        set_err(err, errlen,
                "pod name " ANNOTATION_SANDBOX_NAME " is missing in annotations");
        goto fail;
    }

    ps.pod_namespace = strdup(or_empty(annotation_lookup(a, n, ANNOTATION_SANDBOX_NAMESPACE)));
    if (!ps.pod_namespace)
        goto oom;
    if (!ps.pod_namespace[0]) {
        set_err(err, errlen,
                "namespace name " ANNOTATION_SANDBOX_NAMESPACE " is missing in annotations");
        goto fail;
    }
    if (!name_printable(ps.pod_name) || !name_printable(ps.pod_namespace)) {
        set_err(err, errlen,
                "pod name (" ANNOTATION_SANDBOX_NAME ") or namespace (" ANNOTATION_SANDBOX_NAMESPACE
                ") holds control characters or invalid UTF-8");
        goto fail;
    }

    ps.machine_type = strdup(or_empty(annotation_lookup(a, n, ANNOTATION_MACHINE_TYPE)));
    ps.image = strdup(or_empty(annotation_lookup(a, n, ANNOTATION_IMAGE)));
    ps.gpu_model = strdup(or_empty(annotation_lookup(a, n, ANNOTATION_GPU_MODEL)));
    v = annotation_lookup(a, n, ANNOTATION_INITDATA);
    if (!v || !v[0])
        v = annotation_lookup(a, n, ANNOTATION_INITDATA_RUNTIME);
    ps.initdata = strdup(or_empty(v));
    if (!ps.machine_type || !ps.image || !ps.gpu_model || !ps.initdata)
        goto oom;

    ps.vcpus = annotation_count_parse(annotation_lookup(a, n, ANNOTATION_VCPUS));
    ps.memory_mib = annotation_count_parse(annotation_lookup(a, n, ANNOTATION_MEMORY));
    v = annotation_lookup(a, n, ANNOTATION_GPUS);
    ps.gpus = annotation_count_parse(v);
    ps.gpus_annotated = v && v[0];

    *out = ps;
    return 0;

oom:
    set_err(err, errlen, "parsing annotations: out of memory");
fail:
    pod_spec_free(&ps);
    return -1;
}

void pod_spec_free(struct pod_spec *ps)
{
    if (!ps)
        return;
    free(ps->pod_name);
    free(ps->pod_namespace);
    free(ps->machine_type);
    free(ps->image);
    free(ps->gpu_model);
    free(ps->initdata);
    memset(ps, 0, sizeof(*ps));
}
