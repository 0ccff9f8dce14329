/* kubejson: Kubernetes API request bodies and reply readers (see kubejson.h). */
#include "kubejson.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "initdata.h"

/* KUBEJSON_CAPACITY_NAME as a JSON pointer token: "/" is written "~1" (RFC 6901). */
#define CAPACITY_PATH "/status/capacity/kata.peerpods.io~1vm"

const char kubejson_capacity_remove_patch[] = "[{\"op\":\"remove\",\"path\":\"" CAPACITY_PATH "\"}]";

static void set_text(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Formats into buf (when there is one) and makes control bytes '?': the texts end up in log lines. */
static void set_text(char *buf, size_t cap, const char *fmt, ...)
{
    if (!buf || !cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (n < 0)
        buf[0] = '\0';
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

static void wipe_free(void *p, size_t len)
{
    if (p) {
        OPENSSL_cleanse(p, len);
        free(p);
    }
}

/* jansson frees without wiping: clear every string of a tree that held credentials first.
 * Depth is bounded by jansson's parser (2048). */
static void wipe_tree(json_t *j)
{
    if (json_is_string(j)) {
        /* The buffer is jansson's own malloc'd copy, so writing to it is fine. */
        OPENSSL_cleanse((char *)json_string_value(j), json_string_length(j));
    } else if (json_is_object(j)) {
        for (void *it = json_object_iter(j); it; it = json_object_iter_next(j, it))
            wipe_tree(json_object_iter_value(it));
    } else if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++)
            wipe_tree(json_array_get(j, i));
    }
}

/* JSON_ALLOW_NUL: Go accepts "\u0000" in strings (the ones read here are checked for it).
 * JSON_DECODE_INT_AS_REAL: an integer beyond 64 bits in a field nobody reads must not fail
 * the whole document, as it does not in Go. */
static json_t *load(const char *body, size_t len, size_t flags)
{
    return body ? json_loadb(body, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL | flags, NULL) : NULL;
}

/* o[key] into *out when it has type t; NULL when o is NULL or the member is absent or null
 * (Go leaves the field empty). -1 for any other type: Go's decoder fails the document. */
static int member(const json_t *o, const char *key, json_type t, json_t **out)
{
    *out = NULL;
    json_t *v = o ? json_object_get(o, key) : NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_typeof(v) != t)
        return -1;
    *out = v;
    return 0;
}

static bool has_nul(const json_t *s)
{
    return strlen(json_string_value(s)) != json_string_length(s);
}

static bool str_is(const json_t *v, const char *s)
{
    return v && json_string_length(v) == strlen(s) && !memcmp(json_string_value(v), s, strlen(s));
}

/* o[key] as a string ("" when absent or null). A NUL byte counts as the wrong type: no field
 * read this way (object names, condition fields, times) can hold one in a valid object. */
static int member_str(const json_t *o, const char *key, const char **s)
{
    json_t *v;
    *s = "";
    if (member(o, key, JSON_STRING, &v) || (v && has_nul(v)))
        return -1;
    if (v)
        *s = json_string_value(v);
    return 0;
}

/* ---- request bodies ---------------------------------------------------------------- */

char *kubejson_owner_patch(const char *pod_uid, size_t *len)
{
    static const char head[] = "{\"metadata\":{\"annotations\":{\"" KUBEJSON_OWNER_ANNOTATION "\":";
    static const char tail[] = "}}}";
    size_t qlen;
    const char *uid = pod_uid ? pod_uid : "";
    char *q = userdata_json_quote(uid, strlen(uid), &qlen);
    if (!q)
        return NULL;
    size_t n = sizeof(head) - 1 + qlen + sizeof(tail) - 1;
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, head, sizeof(head) - 1);
        memcpy(out + sizeof(head) - 1, q, qlen);
        memcpy(out + sizeof(head) - 1 + qlen, tail, sizeof(tail));
        if (len)
            *len = n;
    }
    userdata_text_free(q);
    return out;
}

char *kubejson_capacity_add_patch(long long limit, size_t *len)
{
    char buf[128];
    int n = snprintf(buf, sizeof(buf), "[{\"op\":\"add\",\"path\":\"" CAPACITY_PATH "\",\"value\":\"%lld\"}]", limit);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return NULL; /* cannot happen: 20 digits at most */
    char *out = strdup(buf);
    if (out && len)
        *len = (size_t)n;
    return out;
}

/* ---- Node -------------------------------------------------------------------------------- */

int kubejson_node_owner(const char *body, size_t len, char *owner, size_t cap)
{
    if (owner && cap)
        owner[0] = '\0';
    json_t *root = load(body, len, 0), *md, *ann;
    int rc = -1;
    if (!json_is_object(root) || member(root, "metadata", JSON_OBJECT, &md) ||
        member(md, "annotations", JSON_OBJECT, &ann))
        goto out;
    json_t *v = ann ? json_object_get(ann, KUBEJSON_OWNER_ANNOTATION) : NULL;
    if (!v) {
        rc = 0;
    } else if (json_is_null(v)) { /* a map value null: present and empty, as in Go */
        rc = 1;
    } else if (json_is_string(v)) {
        rc = 1;
        size_t n = json_string_length(v);
        if (owner && n < cap && !has_nul(v))
            memcpy(owner, json_string_value(v), n + 1);
    }
out:
    json_decref(root);
    return rc;
}

/* ---- PeerPod ------------------------------------------------------------------------------- */

const char kubejson_peerpod_release_patch[] = "[{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}]";

int kubejson_peerpod_name(const char *pod, const char *sandbox_id, char *out, size_t cap)
{
    static const char mid[] = "-resource-";
    char sid[9];
    size_t n = 0;
    for (; n < 8 && sandbox_id[n]; n++) {
        char c = sandbox_id[n];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        sid[n] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : 'x';
    }
    sid[n] = '\0';
    size_t pl = strlen(pod), room = KUBEJSON_NAME_MAX - (sizeof(mid) - 1) - n;
    if (!pl || !n)
        return -1;
    if (pl > room)
        pl = room;
    while (pl && (pod[pl - 1] == '.' || pod[pl - 1] == '-'))
        pl--;
    if (!pl)
        return -1;
    int w = snprintf(out, cap, "%.*s%s%s", (int)pl, pod, mid, sid);
    return w < 0 || (size_t)w >= cap ? -1 : 0;
}

char *kubejson_peerpod_body(const char *ns, const char *name, const char *pod, const char *pod_uid,
                            const char *cloud_provider, const char *instance_id, size_t *len)
{
    json_t *root = json_pack("{s:s, s:s, s:{s:s, s:s, s:[s], s:[{s:s, s:s, s:s, s:s, s:b, s:b}]}, s:{s:s, s:s}}",
                             "apiVersion", "confidentialcontainers.org/v1alpha1", "kind", "PeerPod", "metadata",
                             "name", name, "namespace", ns, "finalizers", KUBEJSON_PEERPOD_FINALIZER,
                             "ownerReferences", "apiVersion", "v1", "kind", "Pod", "name", pod, "uid", pod_uid,
                             "controller", 1, "blockOwnerDeletion", 1, "spec", "cloudProvider", cloud_provider,
                             "instanceID", instance_id);
    char *out = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (out && len)
        *len = strlen(out);
    return out;
}

int kubejson_object_uid(const char *body, size_t len, char *out, size_t cap)
{
    json_t *root = load(body, len, 0), *md;
    const char *uid = "";
    int rc = -1;
    if (json_is_object(root) && !member(root, "metadata", JSON_OBJECT, &md) && !member_str(md, "uid", &uid) &&
        *uid && strlen(uid) < cap) {
        memcpy(out, uid, strlen(uid) + 1);
        rc = 0;
    }
    json_decref(root);
    if (rc && cap)
        out[0] = '\0';
    return rc;
}

/* ---- Pod, ServiceAccount ------------------------------------------------------------------- */

void kubejson_names_clear(struct kubejson_names *names)
{
    if (!names)
        return;
    for (size_t i = 0; i < names->n; i++)
        free(names->v[i]);
    free(names->v);
    free(names->service_account);
    *names = (struct kubejson_names){0};
}

/* holder.imagePullSecrets[].name into out->v. */
static int pull_secret_names(const json_t *holder, struct kubejson_names *out)
{
    json_t *arr;
    if (member(holder, "imagePullSecrets", JSON_ARRAY, &arr))
        return -1;
    size_t n = json_array_size(arr);
    if (!n)
        return 0;
    if (!(out->v = calloc(n, sizeof(*out->v))))
        return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        const char *name;
        if (json_is_null(e)) /* a null element decodes to an entry without a name */
            continue;
        if (!json_is_object(e) || member_str(e, "name", &name))
            return -1;
        if (!*name)
            continue;
        if (!(out->v[out->n] = strdup(name)))
            return -1;
        out->n++;
    }
    return 0;
}

int kubejson_pod_pull_secrets(const char *body, size_t len, struct kubejson_names *out)
{
    *out = (struct kubejson_names){0};
    json_t *root = load(body, len, 0), *spec;
    const char *sa;
    int rc = -1;
    if (json_is_object(root) && !member(root, "spec", JSON_OBJECT, &spec) &&
        !member_str(spec, "serviceAccountName", &sa) && !pull_secret_names(spec, out) &&
        (out->service_account = strdup(*sa ? sa : "default")))
        rc = 0;
    json_decref(root);
    if (rc)
        kubejson_names_clear(out);
    return rc;
}

int kubejson_sa_pull_secrets(const char *body, size_t len, struct kubejson_names *out)
{
    *out = (struct kubejson_names){0};
    json_t *root = load(body, len, 0);
    int rc = json_is_object(root) && !pull_secret_names(root, out) ? 0 : -1;
    json_decref(root);
    if (rc)
        kubejson_names_clear(out);
    return rc;
}

/* ---- Secrets ------------------------------------------------------------------------------- */

void kubejson_auths_clear(struct kubejson_auths *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        wipe_free((char *)a->v[i].registry, strlen(a->v[i].registry));
        wipe_free((char *)a->v[i].auth, strlen(a->v[i].auth));
    }
    free(a->v);
    *a = (struct kubejson_auths){0};
}

/* Room for extra more entries in a (the pointers it holds are no secrets: realloc is fine). */
static int auths_reserve(struct kubejson_auths *a, size_t extra)
{
    if (extra <= a->cap - a->n)
        return 0;
    size_t max = SIZE_MAX / sizeof(*a->v) / 2;
    if (a->n > max || extra > max - a->n)
        return -1;
    size_t cap = a->cap ? a->cap : 8;
    while (cap < a->n + extra)
        cap *= 2;
    struct userdata_registry_auth *v = realloc(a->v, cap * sizeof(*v));
    if (!v)
        return -1;
    a->v = v;
    a->cap = cap;
    return 0;
}

/* Takes registry and auth (both malloc'd) on success. Equal registries are all kept: the
 * renderer writes the last, which is how a later secret overrides an earlier one. */
static int auths_push(struct kubejson_auths *a, char *registry, char *auth)
{
    if (auths_reserve(a, 1))
        return -1;
    a->v[a->n++] = (struct userdata_registry_auth){registry, auth};
    return 0;
}

/* Length of the UTF-8 sequence at s[0..n) (n >= 1) as Go's utf8.DecodeRune accepts it, or
 * 0: no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return need;
}

static bool hex4(const unsigned char *s, size_t n, unsigned *v)
{
    if (n < 4)
        return false;
    *v = 0;
    for (size_t i = 0; i < 4; i++) {
        unsigned char c = s[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                     : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (unsigned)((c | 0x20) - 'a' + 10)
                                                              : 16u;
        if (d > 15)
            return false;
        *v = *v << 4 | d;
    }
    return true;
}

/* Go's decoder reads invalid UTF-8 and unpaired UTF-16 surrogate escapes in strings as
 * U+FFFD (one per byte, one per escape); jansson refuses both. Rewrites them so that jansson
 * reads what Go reads; outside strings such bytes are syntax errors either way. Escapes are
 * stepped over as pairs so that "\\u..." is never taken for an escape. Returns a malloc'd
 * copy (wipe it), NULL when out of memory. */
static char *go_text(const unsigned char *s, size_t n, size_t *out_len)
{
    static const char fffd[] = "\xEF\xBF\xBD";
    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    char *o = malloc(n * 3 + 1);
    if (!o)
        return NULL;
    size_t i = 0, k = 0;
    while (i < n) {
        unsigned r, r2;
        if (s[i] == '\\' && i + 1 < n && s[i + 1] == 'u' && hex4(s + i + 2, n - i - 2, &r)) {
            size_t step = 6;
            if (r >= 0xD800 && r <= 0xDFFF) {
                if (r <= 0xDBFF && n - i >= 12 && s[i + 6] == '\\' && s[i + 7] == 'u' &&
                    hex4(s + i + 8, 4, &r2) && r2 >= 0xDC00 && r2 <= 0xDFFF) {
                    step = 12;
                } else {
                    memcpy(o + k, "\\ufffd", 6);
                    k += 6;
                    i += 6;
                    continue;
                }
            }
            memcpy(o + k, s + i, step);
            k += step;
            i += step;
        } else if (s[i] == '\\') {
            size_t step = i + 1 < n ? 2 : 1;
            memcpy(o + k, s + i, step);
            k += step;
            i += step;
        } else {
            size_t m = utf8_len(s + i, n - i);
            if (m) {
                memcpy(o + k, s + i, m);
                k += m;
                i += m;
            } else {
                memcpy(o + k, fffd, 3);
                k += 3;
                i++;
            }
        }
    }
    o[k] = '\0';
    *out_len = k;
    return o;
}

/* Whether the object key names the field f (lower-case ASCII) for Go's encoding/json, which
 * matches field names case-insensitively under Unicode folding: besides ASCII case, U+017F
 * (long s) folds to s. (The other non-ASCII folds onto ASCII, to k and i, cannot occur in
 * the names read here.) */
static bool go_field(const char *key, size_t klen, const char *f)
{
    const unsigned char *k = (const unsigned char *)key;
    size_t i = 0;
    for (; *f; f++) {
        if (i < klen && (k[i] | 0x20) == (unsigned char)*f) {
            i++;
        } else if (*f == 's' && klen - i >= 2 && k[i] == 0xC5 && k[i + 1] == 0xBF) {
            i += 2;
        } else {
            return false;
        }
    }
    return i == klen;
}

struct cred {
    const json_t *username, *password, *auth; /* strings, or NULL when empty */
};

/* One registry's entry as Go decodes struct{Username, Password, Auth string}: keys in
 * document order, a later matching key overriding an earlier one, null leaving the field as
 * it was. */
static const char *cred_read(const json_t *e, struct cred *c)
{
    *c = (struct cred){0};
    if (json_is_null(e))
        return NULL;
    if (!json_is_object(e))
        return "a registry's entry is not an object";
    for (void *it = json_object_iter((json_t *)e); it; it = json_object_iter_next((json_t *)e, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        json_t *v = json_object_iter_value(it);
        const json_t **slot = go_field(key, klen, "username")   ? &c->username
                              : go_field(key, klen, "password") ? &c->password
                              : go_field(key, klen, "auth")     ? &c->auth
                                                                : NULL;
        if (!slot || json_is_null(v))
            continue;
        if (!json_is_string(v))
            return slot == &c->auth ? "a registry's auth is not a string"
                                    : slot == &c->username ? "a registry's username is not a string"
                                                           : "a registry's password is not a string";
        *slot = v;
    }
    return NULL;
}

/* Checks every entry of a registry map (Go fails on any, even one replaced later). */
static const char *map_check(const json_t *m)
{
    struct cred c;
    for (void *it = json_object_iter((json_t *)m); it; it = json_object_iter_next((json_t *)m, it)) {
        const char *why = cred_read(json_object_iter_value(it), &c);
        if (why)
            return why;
    }
    return NULL;
}

static char *basic_auth(const json_t *user, const json_t *pass)
{
    size_t ul = json_string_length(user), pl = json_string_length(pass), n = ul + 1 + pl;
    if (ul > INT_MAX / 2 || pl > INT_MAX / 2 || n > INT_MAX / 4 * 3 - 3)
        return NULL;
    unsigned char *raw = malloc(n);
    size_t olen = (n + 2) / 3 * 4;
    char *out = malloc(olen + 1);
    if (raw && out) {
        memcpy(raw, json_string_value(user), ul);
        raw[ul] = ':';
        memcpy(raw + ul + 1, json_string_value(pass), pl);
    }
    /* Padded, without line breaks: what Go's base64.StdEncoding writes. */
    if (!raw || !out || EVP_EncodeBlock((unsigned char *)out, raw, (int)n) != (int)olen) {
        wipe_free(out, olen + 1);
        out = NULL;
    }
    wipe_free(raw, n);
    return out;
}

/* Appends the registries of the map m (after map_check) to a. */
static const char *map_collect(const json_t *m, struct kubejson_auths *a)
{
    for (void *it = json_object_iter((json_t *)m); it; it = json_object_iter_next((json_t *)m, it)) {
        struct cred c;
        (void)cred_read(json_object_iter_value(it), &c);
        char *auth;
        if (c.auth && json_string_length(c.auth)) {
            if (has_nul(c.auth))
                return "a registry's auth holds a NUL byte"; /* auth.json could not carry it */
            if (!(auth = strdup(json_string_value(c.auth))))
                return "out of memory";
        } else if (c.username && c.password && json_string_length(c.username) && json_string_length(c.password)) {
            if (!(auth = basic_auth(c.username, c.password)))
                return "out of memory";
        } else {
            continue;
        }
        char *reg = strdup(json_object_iter_key(it));
        if (!reg || auths_push(a, reg, auth)) {
            free(reg);
            wipe_free(auth, strlen(auth));
            return "out of memory";
        }
    }
    return NULL;
}

/* The decoded docker config: .dockerconfigjson is {"auths": map}, .dockercfg the bare map. */
static const char *docker_config(const json_t *doc, bool wrapped, struct kubejson_auths *a)
{
    if (json_is_null(doc))
        return NULL; /* Go: nothing decoded, no error */
    if (!json_is_object(doc))
        return "is not a JSON object";
    if (!wrapped) {
        const char *why = map_check(doc);
        return why ? why : map_collect(doc, a);
    }
    /* Every key that names Auths decodes into the same map, in document order: an object
     * adds and replaces entries, null empties the map. */
    json_t *merged = json_object();
    const char *why = merged ? NULL : "out of memory";
    for (void *it = json_object_iter((json_t *)doc); !why && it; it = json_object_iter_next((json_t *)doc, it)) {
        json_t *v = json_object_iter_value(it);
        if (!go_field(json_object_iter_key(it), json_object_iter_key_len(it), "auths"))
            continue;
        if (json_is_null(v))
            json_object_clear(merged);
        else if (!json_is_object(v))
            why = "auths is not an object";
        else if (!(why = map_check(v)) && json_object_update(merged, v))
            why = "out of memory";
    }
    if (!why)
        why = map_collect(merged, a);
    json_decref(merged);
    return why;
}

/* The docker config of a Secret: data[".dockerconfigjson"], else data[".dockercfg"]. *val is
 * NULL when there is neither. Returns the reason the Secret is malformed, or NULL. */
static const char *secret_config(const json_t *root, const char **key, const json_t **val)
{
    json_t *data;
    *key = NULL;
    *val = NULL;
    if (!json_is_object(root))
        return "the reply is not a JSON object";
    if (member(root, "data", JSON_OBJECT, &data))
        return "data is not an object";
    /* Go decodes all of map[string][]byte: a value that is not a string fails it. */
    for (void *it = data ? json_object_iter(data) : NULL; it; it = json_object_iter_next(data, it)) {
        json_t *v = json_object_iter_value(it);
        if (!json_is_string(v) && !json_is_null(v))
            return "a data value is not a base64 string";
    }
    if (data && (*val = json_object_get(data, ".dockerconfigjson")))
        *key = ".dockerconfigjson";
    else if (data && (*val = json_object_get(data, ".dockercfg")))
        *key = ".dockercfg";
    return NULL;
}

/* Decodes the value of data[key] and appends its registries to add. */
static int config_read(struct kubejson_auths *add, const char *key, const json_t *val, char *err, size_t errlen)
{
    uint8_t *raw = NULL;
    char *text = NULL;
    size_t tlen = 0;
    long rlen = 0;
    json_t *doc = NULL;
    const char *why = NULL;
    if (json_is_null(val) || json_string_length(val) == 0)
        why = "is empty"; /* for Go the empty input is not JSON */
    else if ((rlen = initdata_base64_decode(json_string_value(val), json_string_length(val), &raw)) < 0)
        why = "is not base64";
    else if (!(text = go_text(raw, (size_t)rlen, &tlen)))
        why = "could not be read: out of memory";
    else if (!(doc = load(text, tlen, JSON_DECODE_ANY)))
        set_text(err, errlen, "data[\"%s\"] is not JSON", key);
    else
        why = docker_config(doc, !strcmp(key, ".dockerconfigjson"), add);
    if (why)
        set_text(err, errlen, "data[\"%s\"] %s", key, why);
    if (doc) {
        wipe_tree(doc);
        json_decref(doc);
    }
    wipe_free(raw, rlen > 0 ? (size_t)rlen : 0);
    wipe_free(text, tlen);
    return why || !doc ? -1 : 0;
}

int kubejson_auths_add_secret(struct kubejson_auths *a, const char *body, size_t len, char *err, size_t errlen)
{
    set_text(err, errlen, "%s", "");
    json_t *root = load(body, len, 0);
    const json_t *val;
    const char *key;
    const char *why = secret_config(root, &key, &val);
    struct kubejson_auths add = {0};
    int rc = -1;
    if (why) {
        set_text(err, errlen, "%s", why);
    } else if (!key) {
        rc = 0;
    } else if (!config_read(&add, key, val, err, errlen)) {
        /* All or nothing: a keeps what it had when the Secret is malformed. */
        if (auths_reserve(a, add.n)) {
            set_text(err, errlen, "data[\"%s\"] could not be read: out of memory", key);
        } else {
            if (add.n)
                memcpy(a->v + a->n, add.v, add.n * sizeof(*add.v));
            a->n += add.n;
            add.n = 0;
            rc = 0;
        }
    }
    kubejson_auths_clear(&add);
    if (root) {
        wipe_tree(root); /* the base64 of the credentials */
        json_decref(root);
    }
    return rc;
}

char *kubejson_auths_render(const struct kubejson_auths *a, size_t *len)
{
    if (len)
        *len = 0;
    if (!a || !a->n)
        return NULL;
    size_t n = 0;
    char *out = userdata_auth_json_render(a->v, a->n, &n);
    if (out && len)
        *len = n;
    return out;
}

/* ---- startup check ------------------------------------------------------------------------- */

/* Go's time.Parse(time.RFC3339, s) as metav1.Time uses it: four-digit year, two-digit
 * month, day, minute and second, a one- or two-digit hour, an optional fraction ('.' or ',')
 * and "Z" or an offset ±hh:mm (hours up to 24 and minutes up to 60, as Go allows). */
static bool digits(const char *s, size_t n, int *v)
{
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        *v = *v * 10 + (s[i] - '0');
    }
    return true;
}

static int days_in(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : d[m - 1];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int y, int m, int d)
{
    int64_t yy = y - (m <= 2);
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int kubejson_time_parse(const char *s, int64_t *unix_out)
{
    int y, mo, d, h, mi, sec, oh = 0, om = 0;
    if (!s)
        return -1;
    size_t n = strlen(s);
    if (n < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || s[10] != 'T')
        return -1;
    const char *p = s + 11;
    size_t hl = p[0] >= '0' && p[0] <= '9' ? (p[1] >= '0' && p[1] <= '9' ? 2 : 1) : 0;
    if (!hl || !digits(p, hl, &h))
        return -1;
    p += hl;
    if (p[0] != ':' || !digits(p + 1, 2, &mi) || p[3] != ':' || !digits(p + 4, 2, &sec))
        return -1;
    p += 6;
    if ((p[0] == '.' || p[0] == ',') && p[1] >= '0' && p[1] <= '9')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    int sign = 0;
    if (p[0] == 'Z' && !p[1]) {
        sign = 0;
    } else if ((p[0] == '+' || p[0] == '-') && digits(p + 1, 2, &oh) && p[3] == ':' && digits(p + 4, 2, &om) &&
               !p[6]) {
        sign = p[0] == '+' ? 1 : -1;
    } else {
        return -1;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > days_in(y, mo) || h > 23 || mi > 59 || sec > 59 || oh > 24 || om > 60)
        return -1;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    if (unix_out)
        *unix_out = t - (int64_t)sign * (oh * 3600 + om * 60);
    return 0;
}

struct pod_view {
    const char *ns, *name, *runtime_class;
    bool has_class, has_ready;
    const char *status, *since; /* of the first Ready condition */
};

/* The fields of one PodList item, type-checked as Go's decoder does. Returns NULL, or where
 * a field has the wrong type. */
static const char *pod_view(const json_t *item, struct pod_view *v)
{
    json_t *md, *spec, *st, *conds, *rc;
    *v = (struct pod_view){"", "", "", false, false, "", ""};
    if (json_is_null(item))
        return NULL;
    if (!json_is_object(item))
        return "the item";
    if (member(item, "metadata", JSON_OBJECT, &md) || member_str(md, "name", &v->name) ||
        member_str(md, "namespace", &v->ns))
        return "metadata";
    if (member(item, "spec", JSON_OBJECT, &spec) || member(spec, "runtimeClassName", JSON_STRING, &rc) ||
        (rc && has_nul(rc)))
        return "spec";
    if (rc) {
        v->has_class = true;
        v->runtime_class = json_string_value(rc);
    }
    if (member(item, "status", JSON_OBJECT, &st) || member(st, "conditions", JSON_ARRAY, &conds))
        return "status";
    for (size_t i = 0; i < json_array_size(conds); i++) {
        json_t *c = json_array_get(conds, i);
        const char *type, *status, *since;
        if (json_is_null(c))
            continue;
        if (!json_is_object(c) || member_str(c, "type", &type) || member_str(c, "status", &status) ||
            member_str(c, "lastTransitionTime", &since))
            return "status";
        if (!v->has_ready && !strcmp(type, "Ready")) {
            v->has_ready = true;
            v->status = status;
            v->since = since;
        }
    }
    return NULL;
}

int kubejson_startup_check(const char *body, size_t len, const char *runtime_class, int64_t start_unix,
                           kubejson_pod_known_fn known, void *arg, char *why, size_t whylen)
{
    set_text(why, whylen, "%s", "");
    json_t *root = load(body, len, 0), *items, *kind;
    int rc = -1;
    if (!json_is_object(root)) {
        set_text(why, whylen, "the reply is not a JSON object");
        goto out;
    }
    if (member(root, "kind", JSON_STRING, &kind) || (kind && !str_is(kind, "PodList"))) {
        set_text(why, whylen, "the reply is not a PodList");
        goto out;
    }
    if (member(root, "items", JSON_ARRAY, &items) || !items) {
        set_text(why, whylen, "the reply is not a PodList: no items array");
        goto out;
    }
    /* The first failing pod decides, but a wrong type anywhere fails the whole list as it
     * fails Go's decoding of it: keep type-checking after a failure. */
    rc = 1;
    for (size_t i = 0; i < json_array_size(items); i++) {
        struct pod_view v;
        const char *bad = pod_view(json_array_get(items, i), &v);
        if (bad) {
            set_text(why, whylen, "the reply is not a PodList: items[%zu]: a field of %s has the wrong type", i,
                     bad);
            rc = -1;
            goto out;
        }
        if (rc == 0 || !v.has_class || !v.has_ready || strcmp(v.runtime_class, runtime_class ? runtime_class : ""))
            continue;
        int64_t t;
        bool ready = !strcmp(v.status, "True");
        if (ready && !kubejson_time_parse(v.since, &t) && t > start_unix)
            continue;
        if (known && known(v.ns, v.name, arg))
            continue;
        rc = 0;
        if (ready)
            set_text(why, whylen, "pod %s/%s has been Ready since before the daemon started", v.ns, v.name);
        else
            set_text(why, whylen, "pod %s/%s is not Ready", v.ns, v.name);
    }
out:
    json_decref(root);
    return rc;
}

/* ---- Status -------------------------------------------------------------------------------- */

void kubejson_status_message(const char *body, size_t len, char *out, size_t cap)
{
    if (!out || !cap)
        return;
    out[0] = '\0';
    json_t *root = load(body, len, 0), *kind, *msg;
    if (json_is_object(root) && !member(root, "kind", JSON_STRING, &kind) && str_is(kind, "Status") &&
        !member(root, "message", JSON_STRING, &msg) && msg) {
        const unsigned char *s = (const unsigned char *)json_string_value(msg);
        size_t n = json_string_length(msg);
        if (n >= cap) { /* cut at a character boundary: the log line stays UTF-8 */
            n = cap - 1;
            while (n && (s[n] & 0xC0) == 0x80)
                n--;
        }
        for (size_t i = 0; i < n; i++)
            out[i] = s[i] < 0x20 || s[i] == 0x7f ? '?' : (char)s[i];
        out[n] = '\0';
    }
    json_decref(root);
}

bool kubejson_status_names_object(const char *body, size_t len)
{
    json_t *root = load(body, len, 0), *kind, *details, *dkind;
    bool named = json_is_object(root) && !member(root, "kind", JSON_STRING, &kind) && str_is(kind, "Status") &&
                 !member(root, "details", JSON_OBJECT, &details) && details &&
                 !member(details, "kind", JSON_STRING, &dkind) && dkind && json_string_length(dkind) > 0;
    json_decref(root);
    return named;
}
