#include "azjson.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- TAGS ----------------------------------------------------------------------------- */

static char *trimmed(const char *p, size_t n)
{
    while (n && isspace((unsigned char)*p)) {
        p++;
        n--;
    }
    while (n && isspace((unsigned char)p[n - 1]))
        n--;
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

void azjson_tags_free(struct az_tag *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].key);
        free(v[i].value);
    }
    free(v);
}

int azjson_tags_parse(const char *s, bool strict, struct az_tag **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!s || !*s)
        return 0;
    struct az_tag *v = NULL;
    size_t k = 0;
    const char *p = s;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq) {
            if (strict) {
                snprintf(err, errlen, "TAGS (-tags): invalid key-value pair: %.*s", (int)(len > 64 ? 64 : len), p);
                azjson_tags_free(v, k);
                return -1;
            }
            break; /* the Go daemon keeps what came before and ignores the rest */
        }
        char *key = trimmed(p, (size_t)(eq - p)), *val = trimmed(eq + 1, len - (size_t)(eq - p) - 1);
        if (!key || !val) {
            free(key);
            free(val);
            goto oom;
        }
        size_t i = 0;
        while (i < k && strcmp(v[i].key, key))
            i++;
        if (i < k) { /* later duplicates win */
            free(v[i].value);
            v[i].value = val;
            free(key);
        } else {
            struct az_tag *nv = realloc(v, (k + 1) * sizeof(*v));
            if (!nv) {
                free(key);
                free(val);
                goto oom;
            }
            v = nv;
            v[k].key = key;
            v[k].value = val;
            k++;
        }
        if (!e)
            break;
        p = e + 1;
    }
    *out = v;
    *n = k;
    return 0;
oom:
    azjson_tags_free(v, k);
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* ---- the VM body ---------------------------------------------------------------------- */

/* json_object_set_new that tolerates a NULL value by failing the whole build later. */
static void set(json_t *o, const char *k, json_t *v, bool *ok)
{
    if (!o || !v || json_object_set_new(o, k, v))
        *ok = false;
}

char *azjson_vm_body(const struct az_vm_spec *s)
{
    bool ok = true;
    char buf[512];
    json_t *root = json_object();

    json_t *tags = json_object();
    for (size_t i = 0; i < s->n_tags; i++)
        set(tags, s->tags[i].key, json_string(s->tags[i].value), &ok);
    set(root, "tags", tags, &ok);
    set(root, "location", json_string(s->location), &ok);
    if (s->zone && s->zone[0])
        set(root, "zones", json_pack("[s]", s->zone), &ok);

    json_t *props = json_object();
    set(root, "properties", props, &ok);
    set(props, "hardwareProfile", json_pack("{s:s}", "vmSize", s->vm_size), &ok);
    set(props, "diagnosticsProfile", json_pack("{s:{s:b}}", "bootDiagnostics", "enabled", 1), &ok);
    set(props, "userData", json_string(s->userdata_b64), &ok);

    /* storage */
    json_t *image = strncmp(s->image_id, "/CommunityGalleries/", 20) == 0
                        ? json_pack("{s:s}", "communityGalleryImageId", s->image_id)
                        : json_pack("{s:s}", "id", s->image_id);
    snprintf(buf, sizeof(buf), "%s-disk", s->name);
    json_t *managed = json_pack("{s:s}", "storageAccountType", "Premium_LRS");
    if (s->cvm)
        set(managed, "securityProfile", json_pack("{s:s}", "securityEncryptionType", "VMGuestStateOnly"), &ok);
    json_t *osdisk = json_pack("{s:s, s:s, s:s, s:s, s:o}", "name", buf, "createOption", "FromImage", "caching",
                               "ReadWrite", "deleteOption", "Delete", "managedDisk", managed);
    if (!osdisk)
        ok = false;
    if (s->root_volume_gb > 0)
        set(osdisk, "diskSizeGB", json_integer(s->root_volume_gb), &ok);
    json_t *storage = json_pack("{s:o, s:o}", "imageReference", image, "osDisk", osdisk);
    if (s->n_data_disks) {
        /* Detach on VM delete: the disks are the user's volumes and outlive the pod VM. */
        json_t *dd = json_array();
        for (size_t i = 0; i < s->n_data_disks; i++)
            if (!dd || json_array_append_new(dd, json_pack("{s:s, s:s, s:I, s:{s:s}}", "createOption", "Attach",
                                                           "deleteOption", "Detach", "lun", (json_int_t)i,
                                                           "managedDisk", "id", s->data_disks[i])))
                ok = false;
        set(storage, "dataDisks", dd, &ok);
    }
    set(props, "storageProfile", storage, &ok);

    /* os */
    char keypath[320];
    snprintf(keypath, sizeof(keypath), "/home/%s/.ssh/authorized_keys", s->admin_user);
    set(props, "osProfile",
        json_pack("{s:s, s:s, s:{s:b, s:{s:[{s:s, s:s}]}}}", "adminUsername", s->admin_user, "computerName", s->name,
                  "linuxConfiguration", "disablePasswordAuthentication", 1, "ssh", "publicKeys", "keyData",
                  s->ssh_public_key, "path", keypath),
        &ok);

    /* network: the NIC (and public IP) are made by Compute from this configuration */
    json_t *ipprops = json_pack("{s:{s:s}}", "subnet", "id", s->subnet_id);
    snprintf(buf, sizeof(buf), "%s-net", s->name);
    if (s->public_ip)
        set(ipprops, "publicIPAddressConfiguration",
            json_pack("{s:s, s:{s:s}}", "name", buf, "properties", "deleteOption", "Delete"), &ok);
    json_t *nicprops = json_pack("{s:s, s:[{s:s, s:o}]}", "deleteOption", "Delete", "ipConfigurations", "name",
                                 "ip-config", "properties", ipprops);
    if (!nicprops)
        ok = false;
    if (s->nsg_id && s->nsg_id[0])
        set(nicprops, "networkSecurityGroup", json_pack("{s:s}", "id", s->nsg_id), &ok);
    set(props, "networkProfile",
        json_pack("{s:s, s:[{s:s, s:o}]}", "networkApiVersion", "2020-11-01", "networkInterfaceConfigurations",
                  "name", buf, "properties", nicprops),
        &ok);

    if (s->cvm)
        set(props, "securityProfile",
            json_pack("{s:s, s:{s:b, s:b}}", "securityType", "ConfidentialVM", "uefiSettings", "secureBootEnabled",
                      s->secure_boot, "vTpmEnabled", 1),
            &ok);

    char *out = ok ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    return out;
}

/* ---- readers -------------------------------------------------------------------------- */

static json_t *load(const char *body, size_t len)
{
    if (!body || !len)
        return NULL;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static void copy_str(json_t *v, char *out, size_t cap)
{
    const char *s = json_string_value(v);
    snprintf(out, cap, "%s", s ? s : "");
}

static const char *last_segment(const char *id)
{
    const char *s = id ? strrchr(id, '/') : NULL;
    return s ? s + 1 : id ? id : "";
}

int azjson_error(const char *body, size_t len, char *code, size_t codelen, char *msg, size_t msglen)
{
    code[0] = msg[0] = '\0';
    json_t *j = load(body, len);
    if (!j)
        return -1;
    json_t *e = json_object_get(j, "error");
    if (json_is_object(e)) {
        copy_str(json_object_get(e, "code"), code, codelen);
        copy_str(json_object_get(e, "message"), msg, msglen);
    } else if (json_is_string(e)) { /* OAuth: {"error":"invalid_client","error_description":...} */
        copy_str(e, code, codelen);
        copy_str(json_object_get(j, "error_description"), msg, msglen);
    }
    json_decref(j);
    return code[0] || msg[0] ? 0 : -1;
}

enum az_state azjson_state(const char *body, size_t len)
{
    json_t *j = load(body, len);
    if (!j)
        return AZ_STATE_NONE;
    const char *s = json_string_value(json_object_get(j, "status"));
    if (!s)
        s = json_string_value(json_object_get(json_object_get(j, "properties"), "provisioningState"));
    enum az_state st = AZ_STATE_NONE;
    if (s) {
        if (!strcasecmp(s, "Succeeded"))
            st = AZ_STATE_SUCCEEDED;
        else if (!strcasecmp(s, "Failed"))
            st = AZ_STATE_FAILED;
        else if (!strcasecmp(s, "Canceled") || !strcasecmp(s, "Cancelled"))
            st = AZ_STATE_CANCELED;
        else
            st = AZ_STATE_IN_PROGRESS;
    }
    json_decref(j);
    return st;
}

int azjson_id(const char *body, size_t len, char *out, size_t outlen)
{
    json_t *j = load(body, len);
    const char *id = json_string_value(json_object_get(j, "id"));
    int rc = -1;
    if (id && *id && strlen(id) < outlen) {
        memcpy(out, id, strlen(id) + 1);
        rc = 0;
    }
    json_decref(j);
    return rc;
}

static uint32_t u32_of(json_t *v)
{
    json_int_t x = json_is_integer(v) ? json_integer_value(v) : 0;
    return x < 0 ? 0 : x > UINT32_MAX ? UINT32_MAX : (uint32_t)x;
}

int azjson_vm_sizes(const char *body, size_t len, const char *const *wanted, size_t n_wanted,
                    struct instance_type *out, size_t cap)
{
    json_t *j = load(body, len);
    json_t *arr = json_object_get(j, "value");
    if (!json_is_array(arr)) {
        json_decref(j);
        return -1;
    }
    size_t k = 0, i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        if (!name || strlen(name) >= sizeof(out[0].name))
            continue;
        bool want = false;
        for (size_t w = 0; w < n_wanted && !want; w++)
            want = !strcmp(wanted[w], name);
        if (!want || k >= cap)
            continue;
        snprintf(out[k].name, sizeof(out[k].name), "%s", name);
        out[k].vcpus = u32_of(json_object_get(e, "numberOfCores"));
        out[k].memory_mib = u32_of(json_object_get(e, "memoryInMB"));
        out[k].gpus = 0; /* vmSizes says nothing about GPUs */
        out[k].max_data_disks = u32_of(json_object_get(e, "maxDataDiskCount"));
        k++;
    }
    json_decref(j);
    return (int)k;
}

int azjson_disk_id_split(const char *id, char *rg, size_t rglen, char *name, size_t namelen)
{
    static const char pre[] = "resourceGroups/", mid[] = "/providers/Microsoft.Compute/disks/";
    for (const char *at = id ? strstr(id, pre) : NULL; at; at = strstr(at + 1, pre)) {
        const char *g = at + sizeof(pre) - 1, *slash = strchr(g, '/');
        if (!slash || slash == g || strncmp(slash, mid, sizeof(mid) - 1))
            continue;
        const char *n = slash + sizeof(mid) - 1;
        size_t glen = (size_t)(slash - g), nlen = strlen(n);
        if (!nlen)
            continue;
        if (glen >= rglen || nlen >= namelen)
            return -1;
        memcpy(rg, g, glen);
        rg[glen] = '\0';
        memcpy(name, n, nlen + 1);
        return 0;
    }
    return -1;
}

int azjson_disk(const char *body, size_t len, struct az_disk *out)
{
    memset(out, 0, sizeof(*out));
    json_t *j = load(body, len);
    if (!j)
        return -1;
    json_t *props = json_object_get(j, "properties");
    copy_str(json_object_get(props, "diskState"), out->state, sizeof(out->state));
    copy_str(json_object_get(j, "managedBy"), out->managed_by, sizeof(out->managed_by));
    copy_str(json_object_get(j, "location"), out->location, sizeof(out->location));
    json_t *z = json_object_get(j, "zones");
    out->zoned = json_is_array(z) && json_array_size(z) > 0;
    json_decref(j);
    return 0;
}

int azjson_vm_nics(const char *body, size_t len, char names[][AZ_NAME_MAX], size_t cap)
{
    json_t *j = load(body, len);
    if (!j)
        return -1;
    json_t *arr = json_object_get(json_object_get(json_object_get(j, "properties"), "networkProfile"),
                                  "networkInterfaces");
    size_t k = 0, i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        const char *id = json_string_value(json_object_get(e, "id"));
        if (!id || k >= cap)
            continue;
        const char *seg = last_segment(id);
        if (!*seg || strlen(seg) >= AZ_NAME_MAX)
            continue;
        snprintf(names[k++], AZ_NAME_MAX, "%s", seg);
    }
    json_decref(j);
    return (int)k;
}

int azjson_nic_ipconfigs(const char *body, size_t len, struct az_ipconfig *out, size_t cap)
{
    json_t *j = load(body, len);
    json_t *arr = json_object_get(json_object_get(j, "properties"), "ipConfigurations");
    if (!json_is_array(arr)) {
        json_decref(j);
        return -1;
    }
    size_t k = 0, i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        if (k >= cap)
            break;
        json_t *p = json_object_get(e, "properties");
        copy_str(json_object_get(p, "privateIPAddress"), out[k].private_ip, sizeof(out[k].private_ip));
        const char *pub = json_string_value(json_object_get(json_object_get(p, "publicIPAddress"), "id"));
        const char *seg = last_segment(pub);
        snprintf(out[k].public_ip_name, sizeof(out[k].public_ip_name), "%s",
                 pub && strlen(seg) < AZ_NAME_MAX ? seg : "");
        k++;
    }
    json_decref(j);
    return (int)k;
}

int azjson_public_ip(const char *body, size_t len, char *out, size_t outlen)
{
    json_t *j = load(body, len);
    json_t *p = json_object_get(j, "properties");
    if (!json_is_object(p)) {
        json_decref(j);
        return -1;
    }
    copy_str(json_object_get(p, "ipAddress"), out, outlen);
    json_decref(j);
    return 0;
}

void azjson_secret_free(char *s)
{
    if (!s)
        return;
    volatile char *v = s;
    while (*v)
        *v++ = 0;
    free(s);
}

char *azjson_token(const char *body, size_t len, int64_t *expires_in)
{
    json_t *j = load(body, len);
    const char *tok = json_string_value(json_object_get(j, "access_token"));
    json_t *exp = json_object_get(j, "expires_in");
    int64_t e = -1;
    if (json_is_integer(exp)) {
        e = json_integer_value(exp);
    } else if (json_is_string(exp)) {
        const char *s = json_string_value(exp);
        char *end;
        long long v = strtoll(s, &end, 10);
        if (*s && !*end)
            e = v;
    }
    if (e > AZ_TOKEN_LIFE_MAX_S) /* a cloud-supplied number: no wrap in the expiry sums */
        e = AZ_TOKEN_LIFE_MAX_S;
    char *out = NULL;
    if (tok && *tok && e > 0 && strlen(tok) < 65536)
        out = strdup(tok);
    *expires_in = e;
    /* The parsed copy of the token goes with the document. */
    if (tok)
        memset((char *)tok, 0, strlen(tok));
    json_decref(j);
    return out;
}

int azjson_vm_list(const char *body, size_t len, struct az_vm_entry *out, size_t cap, char **next)
{
    *next = NULL;
    json_t *j = load(body, len);
    json_t *arr = json_object_get(j, "value");
    if (!json_is_array(arr)) {
        json_decref(j);
        return -1;
    }
    size_t k = 0, i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        if (k < cap) {
            struct az_vm_entry *v = &out[k];
            memset(v, 0, sizeof(*v));
            const char *name = json_string_value(json_object_get(e, "name"));
            const char *id = json_string_value(json_object_get(e, "id"));
            if (!name || strlen(name) >= sizeof(v->name) || !id || strlen(id) >= sizeof(v->id))
                continue;
            memcpy(v->name, name, strlen(name) + 1);
            memcpy(v->id, id, strlen(id) + 1);
            json_t *tags = json_object_get(e, "tags");
            const char *by = json_string_value(json_object_get(tags, AZ_TAG_CREATED_BY));
            v->ours = by && !strcmp(by, AZ_TAG_CREATED_BY_VALUE);
            copy_str(json_object_get(tags, AZ_TAG_NODE), v->node, sizeof(v->node));
            copy_str(json_object_get(tags, AZ_TAG_SANDBOX), v->sandbox, sizeof(v->sandbox));
            const char *c = json_string_value(json_object_get(tags, AZ_TAG_CREATED));
            v->created_unix = c ? strtoll(c, NULL, 10) : 0;
        }
        k++;
    }
    const char *nl = json_string_value(json_object_get(j, "nextLink"));
    if (nl && *nl && strlen(nl) < 4096)
        *next = strdup(nl);
    json_decref(j);
    return (int)k;
}
