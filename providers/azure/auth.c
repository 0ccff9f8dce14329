#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "azjson.h"
#include "azreq.h"

#define REFRESH_RETRY_MS 30000
#define ASSERTION_MAX (64u << 10)

struct az_token_wait {
    az_token_cb cb;
    void *arg;
    LIST_ENTRY(az_token_wait) link; /* on a->waiters */
    bool due; /* waiting when the answer came: wake() gives it this answer */
};

struct az_auth {
    uv_loop_t *loop;
    struct http *http;
    enum az_auth_flow flow;
    char *token_url;  /* Entra token endpoint, or the IMDS URL */
    char *client_id, *secret, *token_file, *scope;
    char *token;      /* cached, wiped on free */
    uint64_t expires_at, refresh_at, retry_at; /* uv_now() ms */
    struct azreq *req;
    LIST_HEAD(, az_token_wait) waiters;
    uint32_t seed;
};

static void wipe_free(char *s)
{
    if (s) {
        volatile char *v = s;
        while (*v)
            *v++ = 0;
        free(s);
    }
}

const char *az_auth_flow_name(enum az_auth_flow f)
{
    return f == AZ_AUTH_SECRET ? "client secret" : f == AZ_AUTH_WORKLOAD ? "workload identity" : "managed identity";
}

enum az_auth_flow az_auth_flow_of(const struct az_auth *a)
{
    return a->flow;
}

int64_t az_auth_refresh_after_s(int64_t expires_in)
{
    if (expires_in <= 0)
        return 0;
    if (expires_in >= 7200) /* long-lived (IMDS: 24 h): at half-life, as the Azure SDK */
        return expires_in / 2;
    return expires_in > 300 ? expires_in - 300 : expires_in / 2;
}

char *az_form_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *o = malloc(3 * n + 1), *p = o;
    if (!o)
        return NULL;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
            c == '_' || c == '~') {
            *p++ = (char)c;
        } else if (c == ' ') {
            *p++ = '+';
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p = '\0';
    return o;
}

static bool valid_tenant(const char *t)
{
    if (!t || !*t)
        return false;
    for (; *t; t++)
        if (!((*t >= '0' && *t <= '9') || (*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || *t == '-' ||
              *t == '.'))
            return false;
    return true;
}

struct az_auth *az_auth_new(uv_loop_t *loop, struct http *http, const struct az_auth_config *c, char *err,
                            size_t errlen)
{
    struct az_auth *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->loop = loop;
    LIST_INIT(&a->waiters);
    a->http = http;
    a->seed = (uint32_t)uv_hrtime() | 1u;
    const char *aud = c->audience && *c->audience ? c->audience : "https://management.core.windows.net/";
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s%s.default", aud, "/");
    if (!(a->scope = strdup(buf)) || !(a->client_id = strdup(c->client_id ? c->client_id : "")))
        goto oom;
    if (c->client_secret && *c->client_secret) {
        a->flow = AZ_AUTH_SECRET;
        if (!(a->secret = strdup(c->client_secret)))
            goto oom;
    } else if (c->token_file && *c->token_file) {
        a->flow = AZ_AUTH_WORKLOAD;
        if (!(a->token_file = strdup(c->token_file)))
            goto oom;
    } else {
        a->flow = AZ_AUTH_MANAGED;
    }
    if (a->flow != AZ_AUTH_MANAGED) {
        const char *host = c->authority_host && *c->authority_host ? c->authority_host : AZ_AUTHORITY_DEFAULT;
        if (strncmp(host, "https://", 8) && !(c->allow_http && !strncmp(host, "http://", 7))) {
            snprintf(err, errlen, "AZURE_AUTHORITY_HOST: cannot use an authority host without https (%.200s)", host);
            goto fail;
        }
        if (!valid_tenant(c->tenant_id)) {
            snprintf(err, errlen, "AZURE_TENANT_ID (-tenantid): %s", c->tenant_id && *c->tenant_id
                                                                            ? "invalid tenantID: only [0-9a-zA-Z-.] allowed"
                                                                            : "not set; it is needed for the token");
            goto fail;
        }
        if (!a->client_id[0]) {
            snprintf(err, errlen, "AZURE_CLIENT_ID (-clientid) is not set; it is needed for the %s flow",
                     az_auth_flow_name(a->flow));
            goto fail;
        }
        size_t hl = strlen(host);
        snprintf(buf, sizeof(buf), "%s%s%s/oauth2/v2.0/token", host, host[hl - 1] == '/' ? "" : "/", c->tenant_id);
    } else {
        const char *imds = c->imds_url && *c->imds_url ? c->imds_url : AZ_IMDS_DEFAULT;
        char *res = az_form_escape(aud), *cid = a->client_id[0] ? az_form_escape(a->client_id) : NULL;
        if (!res || (a->client_id[0] && !cid)) {
            free(res);
            free(cid);
            goto oom;
        }
        snprintf(buf, sizeof(buf), "%s/metadata/identity/oauth2/token?api-version=2018-02-01&resource=%s%s%s", imds,
                 res, cid ? "&client_id=" : "", cid ? cid : "");
        free(res);
        free(cid);
    }
    if (!(a->token_url = strdup(buf)))
        goto oom;
    return a;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    az_auth_free(a);
    return NULL;
}

void az_auth_free(struct az_auth *a)
{
    if (!a)
        return;
    azreq_cancel(a->req);
    struct az_token_wait *w;
    while ((w = LIST_FIRST(&a->waiters))) {
        LIST_REMOVE(w, link);
        free(w);
    }
    wipe_free(a->token);
    wipe_free(a->secret);
    free(a->token_file);
    free(a->client_id);
    free(a->scope);
    free(a->token_url);
    free(a);
}

void az_auth_invalidate(struct az_auth *a)
{
    wipe_free(a->token);
    a->token = NULL;
    a->retry_at = 0;
}

/* Answers everyone waiting now, one at a time off the live list: a callback may forget
 * another waiter (a create that fails ends its other calls) or start waiting anew (then for
 * the next fetch, not this answer). */
static void wake(struct az_auth *a, const char *token, const char *err)
{
    struct az_token_wait *w;
    LIST_FOREACH(w, &a->waiters, link)
        w->due = true;
    for (;;) {
        LIST_FOREACH(w, &a->waiters, link)
            if (w->due)
                break;
        if (!w)
            return;
        LIST_REMOVE(w, link);
        w->cb(w->arg, token, err);
        free(w);
    }
}

static void fetched(void *arg, const struct http_response *r, unsigned retries)
{
    struct az_auth *a = arg;
    (void)retries;
    a->req = NULL;
    uint64_t now = uv_now(a->loop);
    char err[512];
    if (r->status == 200) {
        int64_t exp;
        char *tok = azjson_token(r->body, r->body_len, &exp);
        if (tok) {
            wipe_free(a->token);
            a->token = tok;
            a->expires_at = now + (uint64_t)exp * 1000;
            a->refresh_at = now + (uint64_t)az_auth_refresh_after_s(exp) * 1000;
            a->retry_at = 0;
            wake(a, a->token, NULL);
            return;
        }
        snprintf(err, sizeof(err), "%s token endpoint: HTTP 200 without an access_token and expires_in",
                 az_auth_flow_name(a->flow));
    } else if (r->status) {
        char code[128], msg[256];
        azjson_error(r->body, r->body_len, code, sizeof(code), msg, sizeof(msg));
        snprintf(err, sizeof(err), "%s token request: HTTP %ld %s: %s; check %s", az_auth_flow_name(a->flow),
                 r->status, code[0] ? code : "(no error code)", msg[0] ? msg : "(no message)",
                 a->flow == AZ_AUTH_SECRET     ? "AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_TENANT_ID"
                 : a->flow == AZ_AUTH_WORKLOAD ? "AZURE_CLIENT_ID, AZURE_TENANT_ID and the federated identity"
                                               : "the VM's managed identity (AZURE_CLIENT_ID selects one)");
    } else {
        snprintf(err, sizeof(err), "%s token request: %s", az_auth_flow_name(a->flow), r->error);
    }
    if (a->token && now < a->expires_at) {
        a->retry_at = now + REFRESH_RETRY_MS; /* keep the old one for now */
        wake(a, a->token, NULL);
        return;
    }
    wake(a, NULL, err);
}

static char *read_assertion(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "AZURE_FEDERATED_TOKEN_FILE %s: %s", path, strerror(errno));
        return NULL;
    }
    char *b = malloc(ASSERTION_MAX + 1);
    size_t n = 0;
    ssize_t r = 0;
    while (b && n < ASSERTION_MAX && (r = read(fd, b + n, ASSERTION_MAX - n)) > 0)
        n += (size_t)r;
    close(fd);
    if (!b || r < 0) {
        snprintf(err, errlen, "AZURE_FEDERATED_TOKEN_FILE %s: %s", path, b ? strerror(errno) : "out of memory");
        free(b);
        return NULL;
    }
    b[n] = '\0';
    while (n && (b[n - 1] == '\n' || b[n - 1] == '\r'))
        b[--n] = '\0';
    if (!n) {
        snprintf(err, errlen, "AZURE_FEDERATED_TOKEN_FILE %s is empty", path);
        free(b);
        return NULL;
    }
    return b;
}

static int fetch(struct az_auth *a, char *err, size_t errlen)
{
    char *body = NULL;
    const char *ct = "Content-Type: application/x-www-form-urlencoded";
    const char *hdr_post[] = {ct, "Accept: application/json", NULL};
    const char *hdr_imds[] = {"Metadata: true", "Accept: application/json", NULL};
    struct azreq_params p = {.http = a->http, .loop = a->loop, .seed = a->seed++};
    p.req.timeout_ms = 30000;
    p.req.url = a->token_url;
    if (a->flow == AZ_AUTH_MANAGED) {
        p.req.method = "GET";
        p.req.headers = hdr_imds;
        p.max_retries = 5; /* IMDS may be briefly unavailable */
    } else {
        char *cid = az_form_escape(a->client_id), *scope = az_form_escape(a->scope), *cred = NULL;
        if (a->flow == AZ_AUTH_SECRET) {
            cred = az_form_escape(a->secret);
        } else {
            char *as = read_assertion(a->token_file, err, errlen);
            if (!as) {
                free(cid);
                free(scope);
                return -1;
            }
            cred = az_form_escape(as);
            wipe_free(as);
        }
        if (cid && scope && cred) {
            size_t n = strlen(cid) + strlen(scope) + strlen(cred) + 256;
            if ((body = malloc(n))) {
                if (a->flow == AZ_AUTH_SECRET)
                    snprintf(body, n, "client_id=%s&client_secret=%s&grant_type=client_credentials&scope=%s", cid,
                             cred, scope);
                else
                    snprintf(body, n,
                             "client_assertion=%s&client_assertion_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3A"
                             "client-assertion-type%%3Ajwt-bearer&client_id=%s&client_info=1"
                             "&grant_type=client_credentials&scope=%s",
                             cred, cid, scope);
            }
        }
        free(cid);
        free(scope);
        wipe_free(cred);
        if (!body) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        p.req.method = "POST";
        p.req.headers = hdr_post;
        p.req.body = body;
        p.req.body_len = strlen(body);
    }
    a->req = azreq_start(&p, fetched, a);
    wipe_free(body);
    if (!a->req) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int az_auth_get(struct az_auth *a, az_token_cb cb, void *arg)
{
    uint64_t now = uv_now(a->loop);
    bool valid = a->token && now < a->expires_at;
    bool fresh = valid && (now < a->refresh_at || (a->retry_at && now < a->retry_at));
    if (fresh) {
        cb(arg, a->token, NULL);
        return 0;
    }
    struct az_token_wait *w = calloc(1, sizeof(*w));
    if (!w)
        return -1;
    w->cb = cb;
    w->arg = arg;
    LIST_INSERT_HEAD(&a->waiters, w, link);
    if (a->req)
        return 0; /* one refresh for everyone */
    char err[512];
    if (fetch(a, err, sizeof(err))) {
        if (valid)
            wake(a, a->token, NULL);
        else
            wake(a, NULL, err);
    }
    return 0;
}

void az_auth_forget(struct az_auth *a, void *arg)
{
    struct az_token_wait *w = LIST_FIRST(&a->waiters), *next;
    for (; w; w = next) {
        next = LIST_NEXT(w, link);
        if (w->arg == arg) {
            LIST_REMOVE(w, link);
            free(w);
        }
    }
}
