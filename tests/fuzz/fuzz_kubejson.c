/* libFuzzer target for adaptor/kubejson.c: the input as every reply the daemon reads from the
 * API server (Node, Pod, ServiceAccount, Secret, PodList, Status), as the docker config
 * inside a Secret (base64'd into one under each key, where a mutator could hardly reach), as
 * an RFC 3339 time, as a pod uid, and as an object whose metadata.uid is read. Invariants: no crash, leak or UB; outputs NUL-terminated
 * within their buffers; names non-empty; a failed secret leaves the collection unchanged;
 * auth.json and the patches are JSON of their shape; a parsed time is within range and a
 * canonical one formats back to itself. */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"
#include "kubejson.h"

static bool known_odd(const char *ns, const char *name, void *arg)
{
    (void)arg;
    CHECK(ns && name);
    return (strlen(ns) + strlen(name)) % 2 == 1;
}

static void names_check(int rc, const struct kubejson_names *n, bool pod)
{
    CHECK(rc == 0 || rc == -1);
    if (rc) {
        CHECK(!n->v && !n->n && !n->service_account);
        return;
    }
    CHECK(pod ? n->service_account && *n->service_account : !n->service_account);
    for (size_t i = 0; i < n->n; i++)
        CHECK(n->v[i] && *n->v[i]);
}

static void add_check(struct kubejson_auths *a, const char *body, size_t len)
{
    char err[96];
    size_t before = a->n;
    int rc = kubejson_auths_add_secret(a, body, len, err, sizeof(err));
    CHECK(rc == 0 || rc == -1);
    CHECK(strlen(err) < sizeof(err));
    if (rc)
        CHECK(a->n == before && *err);
    else
        CHECK(a->n >= before && !*err);
    for (size_t i = 0; i < a->n; i++)
        CHECK(a->v[i].registry && a->v[i].auth && *a->v[i].auth);
}

/* {"data":{"<key>":"<base64 of data>"}} */
static void add_wrapped(struct kubejson_auths *a, const char *key, const uint8_t *data, size_t size)
{
    size_t b64len = (size + 2) / 3 * 4;
    char *body = malloc(b64len + strlen(key) + 32);
    if (!body)
        return;
    int n = sprintf(body, "{\"data\":{\"%s\":\"", key);
    CHECK(EVP_EncodeBlock((unsigned char *)body + n, data, (int)size) == (int)b64len);
    strcpy(body + n + b64len, "\"}}");
    add_check(a, body, strlen(body));
    free(body);
}

static void render_check(const struct kubejson_auths *a)
{
    size_t len = 1;
    char *out = kubejson_auths_render(a, &len);
    if (!a->n) {
        CHECK(!out && len == 0);
        return;
    }
    CHECK(out && len == strlen(out) && len <= USERDATA_TEXT_MAX);
    json_t *j = json_loadb(out, len, 0, NULL), *auths = json_object_get(j, "auths");
    CHECK(json_is_object(j) && json_object_size(j) == 1 && json_is_object(auths));
    CHECK(json_object_size(auths) >= 1 && json_object_size(auths) <= a->n);
    const char *reg;
    json_t *v;
    json_object_foreach(auths, reg, v) {
        json_t *auth = json_object_get(v, "auth");
        CHECK(json_object_size(v) == 1 && json_is_string(auth) && json_string_length(auth) > 0);
    }
    json_decref(j);
    userdata_text_free(out);
}

static void time_check(const uint8_t *data, size_t size)
{
    char s[48];
    size_t k = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
    memcpy(s, data, k);
    s[k] = '\0';
    int64_t t;
    if (kubejson_time_parse(s, &t))
        return;
    /* Year 0000 to 9999, offsets up to 25 hours either way. */
    CHECK(t >= -62167219200LL - 90000 && t <= 253402300799LL + 90000);
    if (strlen(s) == 20 && s[19] == 'Z' && t >= 0) {
        time_t tt = (time_t)t;
        struct tm tm;
        char back[32];
        CHECK(gmtime_r(&tt, &tm) && strftime(back, sizeof(back), "%Y-%m-%dT%H:%M:%SZ", &tm) == 20);
        CHECK(!strcmp(back, s));
    }
}

static void patch_check(const uint8_t *data, size_t size)
{
    char uid[80];
    size_t k = size < sizeof(uid) - 1 ? size : sizeof(uid) - 1;
    memcpy(uid, data, k);
    uid[k] = '\0';
    size_t len;
    char *p = kubejson_owner_patch(uid, &len);
    CHECK(p && len == strlen(p));
    json_t *j = json_loadb(p, len, 0, NULL);
    json_t *v = json_object_get(json_object_get(json_object_get(j, "metadata"), "annotations"),
                                KUBEJSON_OWNER_ANNOTATION);
    CHECK(json_is_string(v));
    json_t *want = json_string(uid); /* NULL when uid is not UTF-8: Go then writes U+FFFD */
    if (want)
        CHECK(json_equal(v, want));
    json_decref(want);
    json_decref(j);
    free(p);

    long long limit = 0;
    memcpy(&limit, data, size < sizeof(limit) ? size : sizeof(limit));
    p = kubejson_capacity_add_patch(limit, &len);
    CHECK(p && len == strlen(p));
    j = json_loadb(p, len, 0, NULL);
    char num[24];
    snprintf(num, sizeof(num), "%lld", limit);
    json_t *op = json_array_get(j, 0);
    CHECK(json_array_size(j) == 1 && json_object_size(op) == 3);
    CHECK(!strcmp(json_string_value(json_object_get(op, "value")), num));
    json_decref(j);
    free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *b = malloc(size ? size : 1); /* exact size: ASan sees any read past the end */
    if (!b)
        return 0;
    memcpy(b, data, size);

    char owner[KUBEJSON_NAME_MAX + 1], small[8];
    int rc = kubejson_node_owner(b, size, owner, sizeof(owner));
    CHECK(rc >= -1 && rc <= 1 && strlen(owner) < sizeof(owner) && (rc == 1 || !*owner));
    CHECK(kubejson_node_owner(b, size, small, sizeof(small)) == rc && strlen(small) < sizeof(small));

    struct kubejson_names n;
    names_check(kubejson_pod_pull_secrets(b, size, &n), &n, true);
    kubejson_names_clear(&n);
    names_check(kubejson_sa_pull_secrets(b, size, &n), &n, false);
    kubejson_names_clear(&n);

    struct kubejson_auths a = {0};
    add_check(&a, b, size);
    add_wrapped(&a, ".dockerconfigjson", data, size);
    add_wrapped(&a, ".dockercfg", data, size);
    render_check(&a);
    kubejson_auths_clear(&a);
    CHECK(!a.v && !a.n && !a.cap);

    char why[160];
    rc = kubejson_startup_check(b, size, "kata-remote", 1796192308, known_odd, NULL, why, sizeof(why));
    CHECK(rc >= -1 && rc <= 1 && strlen(why) < sizeof(why) && (rc == 1) == !*why);
    CHECK(kubejson_startup_check(b, size, "kata-remote", 1796192308, NULL, NULL, NULL, 0) <= rc);

    char uid[40];
    rc = kubejson_object_uid(b, size, uid, sizeof(uid));
    CHECK((rc == 0 && *uid && strlen(uid) < sizeof(uid)) || (rc == -1 && !*uid));

    char msg[64];
    kubejson_status_message(b, size, msg, sizeof(msg));
    CHECK(strlen(msg) < sizeof(msg));
    for (const char *p = msg; *p; p++)
        CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
    /* A Status naming an object is a Status: it has a message key or none, never garbage. */
    if (kubejson_status_names_object(b, size))
        CHECK(b[0] != '\0');

    time_check(data, size);
    patch_check(data, size);
    free(b);
    return 0;
}
