#include "kube.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "log.h"

#define TOKEN_MAX 16384
#define TOKEN_REFRESH_MS 60000u
#define PATH_MAX_LEN 1024 /* API paths: names are at most KUBEJSON_NAME_MAX, three times escaped */

struct kreq;
/* resp NULL: the request was ended by kube_stop or could not be sent. */
typedef void (*kreq_cb)(struct kreq *q, const struct http_response *resp);

/* One API request; a 401 re-reads the token and sends it once more. */
struct kreq {
    struct kube *k;
    const char *method, *ctype; /* static strings */
    char *url;
    char *body;
    size_t body_len;
    struct http_call *call;
    bool retried, parked;
    kreq_cb cb;
    void *arg;
    LIST_ENTRY(kreq) link; /* on k->reqs */
};

struct kube_pull {
    struct kube *k;
    char ns[KUBEJSON_NAME_MAX + 1], name[KUBEJSON_NAME_MAX + 1];
    enum { PULL_POD, PULL_ACCOUNT, PULL_SECRETS } stage;
    struct kubejson_names sa, pod;
    char uid[KUBE_UID_MAX];
    size_t next; /* secrets fetched so far: the service account's, then the pod's */
    struct kubejson_auths auths;
    struct kreq *q;
    uv_timer_t deadline;
    kube_auth_cb cb;
    void *arg;
    LIST_ENTRY(kube_pull) link; /* on k->pulls */
};

struct kube_check {
    char *runtime_class;
    int64_t start_unix;
    kubejson_pod_known_fn known;
    void *known_arg;
    kube_startup_cb cb;
    void *arg;
};

/* One PeerPod create (pod GET, then POST) or release (PATCH). */
struct kube_pp {
    struct kube *k;
    char ns[KUBEJSON_NAME_MAX + 1], pod[KUBEJSON_NAME_MAX + 1], name[KUBEJSON_NAME_MAX + 1];
    char *provider, *instance;
    enum { PP_POD, PP_CREATE, PP_RELEASE } stage;
    bool release_after; /* StopVM's release came while the create was under way */
    LIST_ENTRY(kube_pp) link; /* on k->pps */
};

struct kube {
    uv_loop_t *loop;
    struct http *http;
    char *node, *uid, *sa_dir, *user_agent;
    char base[300];
    long long limit;
    char *token; /* wiped when replaced */
    LIST_HEAD(, kreq) reqs;
    LIST_HEAD(, kube_pull) pulls;
    LIST_HEAD(, kube_pp) pps;
    uint64_t pp_absent_until; /* uv_now(): the PeerPod CRD was missing; not asked again before */
    /* token re-reads in the thread pool */
    uv_work_t token_work;
    bool token_busy;
    char *token_new;
    uv_timer_t token_timer;
    /* advertisement */
    int adv_step; /* 0 owner patch, 1 capacity patch, 2 done */
    uint64_t adv_backoff_ms;
    uv_timer_t adv_wait, adv_retry;
    kube_advertised_cb adv_cb;
    void *adv_arg;
    /* shutdown */
    uv_timer_t release_timer;
    bool stopping, closed;
};

/* ---- pure helpers --------------------------------------------------------------------- */

int kube_escape(char *out, size_t cap, size_t *len, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '~' || c == '-';
        if (*len + (plain ? 1 : 3) >= cap)
            return -1;
        if (plain) {
            out[(*len)++] = (char)c;
        } else {
            out[(*len)++] = '%';
            out[(*len)++] = hex[c >> 4];
            out[(*len)++] = hex[c & 15];
        }
    }
    out[*len] = '\0';
    return 0;
}

int kube_url(char *out, size_t cap, const char *host, const char *port, const char *path)
{
    int v6 = strchr(host, ':') != NULL;
    int n = snprintf(out, cap, "https://%s%s%s:%s%s", v6 ? "[" : "", host, v6 ? "]" : "", port, path);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* Builds an API path from parts[0..n): even entries are literal, odd ones are object names
 * (escaped as one path segment; NULL adds nothing). */
static int api_path(char *out, size_t cap, const char *const *parts, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i % 2 == 0) {
            size_t l = strlen(parts[i]);
            if (len + l >= cap)
                return -1;
            memcpy(out + len, parts[i], l + 1);
            len += l;
        } else if (parts[i] && kube_escape(out, cap, &len, parts[i])) {
            return -1;
        }
    }
    return 0;
}

/* ---- token ----------------------------------------------------------------------------- */

/* The token file's contents without trailing white space; malloc'd, NULL on failure. */
static char *token_read(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/token", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %.600s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(TOKEN_MAX + 1);
    size_t n = 0;
    ssize_t r = 0;
    while (buf && n < TOKEN_MAX && (r = read(fd, buf + n, TOKEN_MAX - n)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf || r < 0 || n == TOKEN_MAX) {
        snprintf(err, errlen, "cannot read %.600s: %s", path, !buf ? "out of memory" : r < 0 ? strerror(errno) : "too large");
        if (buf)
            OPENSSL_cleanse(buf, n);
        free(buf);
        return NULL;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
    if (!n) {
        snprintf(err, errlen, "%.600s is empty", path);
        free(buf);
        return NULL;
    }
    return buf;
}

static void secret_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static int kreq_send(struct kreq *q);
static void kreq_abort(struct kreq *q);

static void token_work_run(uv_work_t *w)
{
    struct kube *k = w->data;
    char err[256];
    k->token_new = token_read(k->sa_dir, err, sizeof(err));
}

static void token_work_done(uv_work_t *w, int status)
{
    struct kube *k = w->data;
    k->token_busy = false;
    if (status || !k->token_new) {
        if (!status)
            log_warn("kube", "cannot read the service-account token in %s; keeping the one read before", k->sa_dir);
    } else {
        secret_free(k->token);
        k->token = k->token_new;
    }
    k->token_new = NULL;
    if (k->closed)
        return;
    /* Requests refused with 401 go again, once, with whatever token we now hold. */
    struct kreq *q, *next;
    for (q = LIST_FIRST(&k->reqs); q; q = next) {
        next = LIST_NEXT(q, link); /* an abort frees q */
        if (q->parked) {
            q->parked = false;
            if (kreq_send(q))
                kreq_abort(q);
        }
    }
}

static void token_reload(struct kube *k)
{
    if (k->token_busy || k->closed)
        return;
    k->token_work.data = k;
    if (uv_queue_work(k->loop, &k->token_work, token_work_run, token_work_done) == 0)
        k->token_busy = true;
}

static void token_tick(uv_timer_t *t)
{
    token_reload(t->data);
}

/* ---- requests -------------------------------------------------------------------------- */

static void kreq_free(struct kreq *q)
{
    if (!q)
        return;
    if (q->call)
        http_cancel(q->call);
    LIST_REMOVE(q, link);
    free(q->url);
    free(q->body);
    free(q);
}

/* Ends q through its callback with no response (the caller's cleanup path). */
static void kreq_abort(struct kreq *q)
{
    if (q->call)
        http_cancel(q->call);
    q->call = NULL;
    q->cb(q, NULL);
}

static void kreq_reply(void *arg, const struct http_response *resp)
{
    struct kreq *q = arg;
    q->call = NULL;
    if (resp->status == 401 && !q->retried) {
        q->retried = true;
        q->parked = true;
        token_reload(q->k);
        if (!q->k->token_busy) { /* could not queue the re-read: answer with the 401 */
            q->parked = false;
            q->cb(q, resp);
        }
        return;
    }
    q->cb(q, resp);
}

/* Sends q with the current token; -1 when out of memory (q is untouched). */
static int kreq_send(struct kreq *q)
{
    struct kube *k = q->k;
    size_t tl = strlen(k->token) + sizeof("Authorization: Bearer ");
    char *auth = malloc(tl);
    char ua[256], ct[96];
    if (!auth)
        return -1;
    snprintf(auth, tl, "Authorization: Bearer %s", k->token);
    snprintf(ua, sizeof(ua), "User-Agent: %s", k->user_agent);
    snprintf(ct, sizeof(ct), "Content-Type: %s", q->ctype ? q->ctype : "application/json");
    const char *headers[] = {auth, "Accept: application/json", ua, q->body ? ct : NULL, NULL};
    struct http_request req = {
        .method = q->method,
        .url = q->url,
        .headers = headers,
        .body = q->body,
        .body_len = q->body_len,
        .timeout_ms = KUBE_REQUEST_MS,
    };
    q->call = http_start(k->http, &req, kreq_reply, q);
    secret_free(auth);
    return q->call ? 0 : -1;
}

/* Starts a request; body (may be NULL) is taken over. NULL when closed or out of memory
 * (body is then freed). */
static struct kreq *kreq_start(struct kube *k, const char *method, const char *path, const char *ctype, char *body,
                               size_t body_len, kreq_cb cb, void *arg)
{
    struct kreq *q = NULL;
    char url[sizeof(k->base) + PATH_MAX_LEN];
    int n = snprintf(url, sizeof(url), "%s%s", k->base, path);
    if (k->closed || n < 0 || (size_t)n >= sizeof(url) || !(q = calloc(1, sizeof(*q))) ||
        !(q->url = strdup(url))) {
        free(q);
        free(body);
        return NULL;
    }
    q->k = k;
    q->method = method;
    q->ctype = ctype;
    q->body = body;
    q->body_len = body_len;
    q->cb = cb;
    q->arg = arg;
    LIST_INSERT_HEAD(&k->reqs, q, link);
    if (kreq_send(q)) {
        kreq_free(q); /* no callback: the caller learns it from NULL */
        return NULL;
    }
    return q;
}

/* "HTTP 403: <the Status message>" or the transport error, for logs. */
static void describe(const struct http_response *resp, char *out, size_t cap)
{
    if (!resp) {
        snprintf(out, cap, "canceled");
    } else if (!resp->status) {
        snprintf(out, cap, "%s", resp->timed_out ? "timed out" : resp->error ? resp->error : "no reply");
    } else {
        char msg[256];
        kubejson_status_message(resp->body, resp->body_len, msg, sizeof(msg));
        snprintf(out, cap, "HTTP %ld%s%s", resp->status, *msg ? ": " : "", msg);
    }
}

static bool ok_reply(const struct http_response *resp)
{
    return resp && resp->status >= 200 && resp->status < 300;
}

/* ---- node capacity ----------------------------------------------------------------------- */

static void adv_step(struct kube *k);

static void adv_report(struct kube *k, bool done)
{
    kube_advertised_cb cb = k->adv_cb;
    k->adv_cb = NULL;
    uv_timer_stop(&k->adv_wait);
    if (cb)
        cb(k->adv_arg, done);
}

static void adv_wait_expired(uv_timer_t *t)
{
    struct kube *k = t->data;
    log_warn("kube", "the node capacity is not advertised yet; serving meanwhile, it is retried in the background "
                     "node=%s capacity=%s", k->node, KUBEJSON_CAPACITY_NAME);
    adv_report(k, false);
}

static void adv_retry_fire(uv_timer_t *t)
{
    adv_step(t->data);
}

static void adv_reply(struct kreq *q, const struct http_response *resp)
{
    struct kube *k = q->k;
    char why[400];
    if (!ok_reply(resp)) {
        describe(resp, why, sizeof(why));
        kreq_free(q);
        if (k->stopping)
            return;
        k->adv_backoff_ms = k->adv_backoff_ms ? k->adv_backoff_ms * 2 : 1000;
        if (k->adv_backoff_ms > KUBE_RETRY_MAX_MS)
            k->adv_backoff_ms = KUBE_RETRY_MAX_MS;
        bool denied = resp && (resp->status == 401 || resp->status == 403);
        char e[450];
        log_warn("kube", "%s failed%s node=%s retry_in_s=%llu error=%s",
                 k->adv_step == 0 ? "setting the owner annotation " KUBEJSON_OWNER_ANNOTATION
                                  : "advertising the capacity " KUBEJSON_CAPACITY_NAME,
                 denied ? " (the service account needs patch on nodes and nodes/status: config/base/rbac.yaml)" : "",
                 k->node, (unsigned long long)(k->adv_backoff_ms / 1000), log_value(e, sizeof(e), why));
        uv_timer_start(&k->adv_retry, adv_retry_fire, k->adv_backoff_ms, 0);
        return;
    }
    kreq_free(q);
    k->adv_backoff_ms = 0;
    k->adv_step++;
    adv_step(k);
}

static void adv_step(struct kube *k)
{
    char path[PATH_MAX_LEN];
    char *body = NULL;
    size_t len = 0;
    if (k->stopping)
        return;
    if (k->adv_step == 0 && !*k->uid)
        k->adv_step = 1;
    if (k->adv_step == 2) {
        log_info("kube", "node capacity advertised node=%s capacity=%s value=%lld owner=%s", k->node,
                 KUBEJSON_CAPACITY_NAME, k->limit, *k->uid ? k->uid : "\"\"");
        adv_report(k, true);
        return;
    }
    const char *parts[] = {"/api/v1/nodes/", k->node, k->adv_step ? "/status" : "", NULL};
    if (api_path(path, sizeof(path), parts, 4) ||
        !(body = k->adv_step ? kubejson_capacity_add_patch(k->limit, &len) : kubejson_owner_patch(k->uid, &len)) ||
        !kreq_start(k, "PATCH", path, k->adv_step ? "application/json-patch+json" : "application/merge-patch+json",
                    body, len, adv_reply, NULL)) {
        k->adv_backoff_ms = KUBE_RETRY_MAX_MS;
        uv_timer_start(&k->adv_retry, adv_retry_fire, k->adv_backoff_ms, 0);
    }
}

void kube_node_advertise(struct kube *k, uint64_t wait_ms, kube_advertised_cb cb, void *arg)
{
    k->adv_cb = cb;
    k->adv_arg = arg;
    if (k->limit < 0) {
        log_info("kube", "PEERPODS_LIMIT_PER_NODE is negative: no %s capacity is advertised", KUBEJSON_CAPACITY_NAME);
        k->adv_step = 2;
        adv_report(k, true);
        return;
    }
    uv_timer_start(&k->adv_wait, adv_wait_expired, wait_ms, 0);
    adv_step(k);
}

/* ---- shutdown ----------------------------------------------------------------------------- */

static void handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void kube_close(struct kube *k)
{
    if (k->closed)
        return;
    k->closed = true;
    struct kreq *q;
    while ((q = LIST_FIRST(&k->reqs)))
        kreq_free(q);
    http_free(k->http);
    k->http = NULL;
    uv_close((uv_handle_t *)&k->token_timer, handle_closed);
    uv_close((uv_handle_t *)&k->adv_wait, handle_closed);
    uv_close((uv_handle_t *)&k->adv_retry, handle_closed);
    uv_close((uv_handle_t *)&k->release_timer, handle_closed);
}

static void release_expired(uv_timer_t *t)
{
    struct kube *k = t->data;
    log_warn("kube", "removing the node capacity did not finish in time; leaving it node=%s capacity=%s "
             "timeout_s=%u", k->node, KUBEJSON_CAPACITY_NAME, KUBE_RELEASE_MS / 1000);
    kube_close(k);
}

static void release_removed(struct kreq *q, const struct http_response *resp)
{
    struct kube *k = q->k;
    char why[400];
    if (ok_reply(resp)) {
        log_info("kube", "node capacity removed node=%s capacity=%s", k->node, KUBEJSON_CAPACITY_NAME);
    } else {
        describe(resp, why, sizeof(why));
        char e[450];
        log_warn("kube", "removing the node capacity failed node=%s capacity=%s error=%s", k->node,
                 KUBEJSON_CAPACITY_NAME, log_value(e, sizeof(e), why));
    }
    kreq_free(q);
    kube_close(k);
}

static void release_node_read(struct kreq *q, const struct http_response *resp)
{
    struct kube *k = q->k;
    char why[400], owner[KUBEJSON_NAME_MAX + 1] = "";
    if (!ok_reply(resp)) {
        describe(resp, why, sizeof(why));
        char e[450];
        log_warn("kube", "reading the node at shutdown failed; its capacity is left as it is node=%s capacity=%s "
                 "error=%s", k->node, KUBEJSON_CAPACITY_NAME, log_value(e, sizeof(e), why));
        kreq_free(q);
        kube_close(k);
        return;
    }
    int has = kubejson_node_owner(resp->body, resp->body_len, owner, sizeof(owner));
    kreq_free(q);
    if (*k->uid && (has != 1 || strcmp(owner, k->uid))) {
        char o[300];
        log_info("kube", "another pod owns the node now: its capacity is left to it node=%s owner=%s pod_uid=%s",
                 k->node, log_value(o, sizeof(o), has == 1 ? owner : ""), k->uid);
        kube_close(k);
        return;
    }
    char path[PATH_MAX_LEN];
    const char *parts[] = {"/api/v1/nodes/", k->node, "/status", NULL};
    char *body = strdup(kubejson_capacity_remove_patch);
    if (api_path(path, sizeof(path), parts, 4) || !body) {
        free(body);
        kube_close(k);
        return;
    }
    if (!kreq_start(k, "PATCH", path, "application/json-patch+json", body, strlen(kubejson_capacity_remove_patch),
                    release_removed, NULL))
        kube_close(k);
}

void kube_stop(struct kube *k, bool release)
{
    if (!k || k->stopping || k->closed)
        return;
    k->stopping = true;
    uv_timer_stop(&k->token_timer);
    uv_timer_stop(&k->adv_retry);
    adv_report(k, false);
    /* End what is pending: pulls and checks answer their callers with an error (a pull
     * always waits for one request, and starts no other while stopping). */
    struct kreq *q;
    while ((q = LIST_FIRST(&k->reqs)))
        kreq_abort(q);
    char path[PATH_MAX_LEN];
    if (!release) {
        kube_close(k);
        return;
    }
    const char *parts[] = {"/api/v1/nodes/", k->node, "", NULL};
    if (api_path(path, sizeof(path), parts, 4)) {
        kube_close(k);
        return;
    }
    uv_timer_start(&k->release_timer, release_expired, KUBE_RELEASE_MS, 0);
    if (!kreq_start(k, "GET", path, NULL, NULL, 0, release_node_read, NULL))
        kube_close(k);
}

/* ---- pull secrets ------------------------------------------------------------------------ */

static void pull_closed(uv_handle_t *h)
{
    free(h->data);
}

static void pull_finish(struct kube_pull *p, const char *err)
{
    LIST_REMOVE(p, link);
    size_t len = 0;
    char *auth = err ? NULL : kubejson_auths_render(&p->auths, &len);
    kubejson_auths_clear(&p->auths);
    kubejson_names_clear(&p->sa);
    kubejson_names_clear(&p->pod);
    uv_timer_stop(&p->deadline);
    p->deadline.data = p;
    uv_close((uv_handle_t *)&p->deadline, pull_closed);
    p->cb(p->arg, auth, auth ? len : 0, err, p->uid);
}

static void pull_reply(struct kreq *q, const struct http_response *resp);

static int pull_get(struct kube_pull *p, const char *kind, const char *name)
{
    char path[PATH_MAX_LEN];
    const char *parts[] = {"/api/v1/namespaces/", p->ns, kind, name};
    if (api_path(path, sizeof(path), parts, 4) ||
        !(p->q = kreq_start(p->k, "GET", path, NULL, NULL, 0, pull_reply, p)))
        return -1;
    return 0;
}

/* Asks for the next secret, or finishes when all are read. */
static void pull_next_secret(struct kube_pull *p)
{
    size_t i = p->next;
    if (p->k->stopping)
        pull_finish(p, "the daemon is shutting down");
    else if (i >= p->sa.n + p->pod.n)
        pull_finish(p, NULL);
    else if (pull_get(p, "/secrets/", i < p->sa.n ? p->sa.v[i] : p->pod.v[i - p->sa.n]))
        pull_finish(p, "out of memory");
}

/* Ends p with "reading <what>: <cause>": the failed reply's, or for a 2xx reply that did not
 * parse, "the reply is not a <kind>". */
static void pull_fail_reading(struct kube_pull *p, struct kreq *q, const struct http_response *resp, const char *what,
                              const char *kind)
{
    char why[1280], desc[400];
    if (ok_reply(resp))
        snprintf(desc, sizeof(desc), "the reply is not a %s", kind);
    else
        describe(resp, desc, sizeof(desc));
    snprintf(why, sizeof(why), "reading %s: %s", what, desc);
    kreq_free(q);
    pull_finish(p, why);
}

static void pull_reply(struct kreq *q, const struct http_response *resp)
{
    struct kube_pull *p = q->arg;
    char why[1280], desc[400], what[2 * KUBEJSON_NAME_MAX + 32];
    p->q = NULL;
    if (!resp) {
        kreq_free(q);
        pull_finish(p, p->k->stopping ? "the daemon is shutting down" : "the request could not be sent");
        return;
    }
    if (p->stage == PULL_POD) {
        if (!ok_reply(resp) || kubejson_pod_pull_secrets(resp->body, resp->body_len, &p->pod)) {
            snprintf(what, sizeof(what), "pod %s/%s", p->ns, p->name);
            pull_fail_reading(p, q, resp, what, "Pod");
            return;
        }
        kubejson_object_uid(resp->body, resp->body_len, p->uid, sizeof(p->uid)); /* "" if it has none */
        kreq_free(q);
        p->stage = PULL_ACCOUNT;
        if (pull_get(p, "/serviceaccounts/", p->pod.service_account))
            pull_finish(p, "out of memory");
        return;
    }
    if (p->stage == PULL_ACCOUNT) {
        if (!ok_reply(resp) || kubejson_sa_pull_secrets(resp->body, resp->body_len, &p->sa)) {
            snprintf(what, sizeof(what), "service account %s/%s", p->ns, p->pod.service_account);
            pull_fail_reading(p, q, resp, what, "ServiceAccount");
            return;
        }
        kreq_free(q);
        p->stage = PULL_SECRETS;
        pull_next_secret(p);
        return;
    }
    size_t i = p->next++;
    const char *name = i < p->sa.n ? p->sa.v[i] : p->pod.v[i - p->sa.n];
    if (resp->status == 404) { /* as the kubelet: a missing pull secret is skipped */
        log_debug("kube", "image pull secret does not exist; skipped pod=%s/%s secret=%s", p->ns, p->name, name);
    } else if (!ok_reply(resp)) {
        describe(resp, desc, sizeof(desc));
        char e[450];
        log_warn("kube", "reading an image pull secret failed; skipped pod=%s/%s secret=%s error=%s", p->ns, p->name,
                 name, log_value(e, sizeof(e), desc));
    } else if (kubejson_auths_add_secret(&p->auths, resp->body, resp->body_len, desc, sizeof(desc))) {
        snprintf(why, sizeof(why), "image pull secret %s: %s", name, desc);
        kreq_free(q);
        pull_finish(p, why);
        return;
    }
    kreq_free(q);
    pull_next_secret(p);
}

static void pull_expired(uv_timer_t *t)
{
    struct kube_pull *p = t->data;
    if (p->q)
        kreq_free(p->q);
    p->q = NULL;
    char why[128];
    snprintf(why, sizeof(why), "the Kubernetes API did not answer within %u s", KUBE_PULL_MS / 1000);
    pull_finish(p, why);
}

int kube_pull_auth(struct kube *k, const char *ns, const char *name, kube_auth_cb cb, void *arg)
{
    if (strlen(ns) > KUBEJSON_NAME_MAX || strlen(name) > KUBEJSON_NAME_MAX)
        return -1;
    struct kube_pull *p = calloc(1, sizeof(*p));
    if (!p)
        return -1;
    p->k = k;
    memcpy(p->ns, ns, strlen(ns) + 1);
    memcpy(p->name, name, strlen(name) + 1);
    p->cb = cb;
    p->arg = arg;
    if (uv_timer_init(k->loop, &p->deadline)) {
        free(p);
        return -1;
    }
    p->deadline.data = p;
    LIST_INSERT_HEAD(&k->pulls, p, link);
    if (k->stopping || pull_get(p, "/pods/", name)) {
        /* Unlinked and closed without calling cb. */
        LIST_REMOVE(p, link);
        uv_close((uv_handle_t *)&p->deadline, pull_closed);
        return -1;
    }
    uv_timer_start(&p->deadline, pull_expired, KUBE_PULL_MS, 0);
    return 0;
}

/* ---- PeerPod objects ------------------------------------------------------------------------ */

static void pp_free(struct kube_pp *pp)
{
    LIST_REMOVE(pp, link);
    free(pp->provider);
    free(pp->instance);
    free(pp);
}

static struct kube_pp *pp_find(struct kube *k, const char *ns, const char *name)
{
    struct kube_pp *pp;
    LIST_FOREACH(pp, &k->pps, link)
        if (!strcmp(pp->ns, ns) && !strcmp(pp->name, name))
            return pp;
    return NULL;
}

static struct kube_pp *pp_new(struct kube *k, const char *ns, const char *pod, const char *sandbox_id)
{
    struct kube_pp *pp = calloc(1, sizeof(*pp));
    if (!pp)
        return NULL;
    if (strlen(ns) > KUBEJSON_NAME_MAX || strlen(pod) > KUBEJSON_NAME_MAX || !*ns ||
        kubejson_peerpod_name(pod, sandbox_id, pp->name, sizeof(pp->name))) {
        free(pp);
        return NULL;
    }
    pp->k = k;
    memcpy(pp->ns, ns, strlen(ns) + 1);
    memcpy(pp->pod, pod, strlen(pod) + 1);
    LIST_INSERT_HEAD(&k->pps, pp, link);
    return pp;
}

static bool pp_absent(struct kube *k)
{
    return k->pp_absent_until && uv_now(k->loop) < k->pp_absent_until;
}

static void pp_reply(struct kreq *q, const struct http_response *resp);

/* The pod GET (PP_POD) or the finalizer PATCH (PP_RELEASE); the POST is pp_create's. */
static int pp_send(struct kube_pp *pp)
{
    char path[PATH_MAX_LEN];
    if (pp->stage == PP_POD) {
        const char *parts[] = {"/api/v1/namespaces/", pp->ns, "/pods/", pp->pod};
        if (api_path(path, sizeof(path), parts, 4))
            return -1;
        return kreq_start(pp->k, "GET", path, NULL, NULL, 0, pp_reply, pp) ? 0 : -1;
    }
    const char *parts[] = {KUBEJSON_PEERPOD_API "/namespaces/", pp->ns, "/peerpods/", pp->name};
    char *body = strdup(kubejson_peerpod_release_patch);
    if (!body || api_path(path, sizeof(path), parts, 4)) {
        free(body);
        return -1;
    }
    return kreq_start(pp->k, "PATCH", path, "application/json-patch+json", body, strlen(body), pp_reply, pp) ? 0
                                                                                                               : -1;
}

static int pp_create(struct kube_pp *pp, const char *pod_uid)
{
    char path[PATH_MAX_LEN];
    size_t len = 0;
    const char *parts[] = {KUBEJSON_PEERPOD_API "/namespaces/", pp->ns, "/peerpods", NULL};
    char *body;
    if (api_path(path, sizeof(path), parts, 4) ||
        !(body = kubejson_peerpod_body(pp->ns, pp->name, pp->pod, pod_uid, pp->provider, pp->instance, &len)))
        return -1;
    pp->stage = PP_CREATE;
    return kreq_start(pp->k, "POST", path, NULL, body, len, pp_reply, pp) ? 0 : -1;
}

static void pp_warn(struct kube_pp *pp, const char *what, const struct http_response *resp)
{
    char why[400], e[450];
    describe(resp, why, sizeof(why));
    bool denied = resp && resp->status == 403;
    log_warn("kube", "%s the PeerPod failed%s pod=%s/%s peerpod=%s error=%s", what,
             denied ? " (the service account needs create and patch on peerpods.confidentialcontainers.org: "
                      "config/base/rbac.yaml)" : "",
             pp->ns, pp->pod, pp->name, log_value(e, sizeof(e), why));
}

static void pp_reply(struct kreq *q, const struct http_response *resp)
{
    struct kube_pp *pp = q->arg;
    struct kube *k = pp->k;
    long status = resp ? resp->status : 0;
    char uid[KUBEJSON_NAME_MAX + 1];
    if (!resp || k->stopping) {
        kreq_free(q);
        pp_free(pp);
        return;
    }
    switch (pp->stage) {
    case PP_POD:
        if (status == 404) {
            log_info("kube", "the pod is gone: no PeerPod for it pod=%s/%s", pp->ns, pp->pod);
        } else if (!ok_reply(resp)) {
            pp_warn(pp, "reading the pod for", resp);
        } else if (kubejson_object_uid(resp->body, resp->body_len, uid, sizeof(uid))) {
            log_warn("kube", "no PeerPod for the pod: its reply has no metadata.uid pod=%s/%s", pp->ns, pp->pod);
        } else {
            kreq_free(q);
            if (pp_create(pp, uid)) {
                log_warn("kube", "creating the PeerPod failed: out of memory pod=%s/%s", pp->ns, pp->pod);
                pp_free(pp);
            }
            return;
        }
        break;
    case PP_CREATE:
        if (ok_reply(resp) || status == 409) { /* 409: made before (a retried StartVM) */
            log_info("kube", "PeerPod %s pod=%s/%s peerpod=%s instance=%s", status == 409 ? "exists" : "created",
                     pp->ns, pp->pod, pp->name, pp->instance);
            if (pp->release_after) {
                kreq_free(q);
                pp->stage = PP_RELEASE;
                if (pp_send(pp))
                    pp_free(pp);
                return;
            }
        } else if (pp->release_after && (status == 0 || status >= 500)) {
            /* No telling whether the create landed, and the VM is gone already: release anyway
             * (a PeerPod that does not exist answers 404, which is fine). */
            pp_warn(pp, "creating", resp);
            kreq_free(q);
            pp->stage = PP_RELEASE;
            if (pp_send(pp))
                pp_free(pp);
            return;
        } else if (status == 404 && kubejson_status_names_object(resp->body, resp->body_len)) {
            pp_warn(pp, "creating", resp); /* its namespace went away: this pod's, not the node's */
        } else if (status == 404) {
            /* A 404 naming no object: the resource type is what is missing. */
            k->pp_absent_until = uv_now(k->loop) + KUBE_PEERPOD_ABSENT_MS;
            log_info("kube", "the PeerPod resource (CRD peerpods.confidentialcontainers.org) is not installed: pod VMs "
                     "get no PeerPod objects for peerpod-ctrl; asked again in %u min pod=%s/%s",
                     KUBE_PEERPOD_ABSENT_MS / 60000, pp->ns, pp->pod);
        } else {
            pp_warn(pp, "creating", resp);
        }
        break;
    case PP_RELEASE:
        if (ok_reply(resp))
            log_info("kube", "PeerPod released (finalizer removed) pod=%s/%s peerpod=%s", pp->ns, pp->pod, pp->name);
        else if (status == 404 || status == 422) /* none, or its finalizer is gone already */
            log_debug("kube", "no PeerPod finalizer to remove pod=%s/%s peerpod=%s status=%ld", pp->ns, pp->pod,
                      pp->name, status);
        else
            pp_warn(pp, "releasing", resp);
        break;
    }
    kreq_free(q);
    pp_free(pp);
}

void kube_peerpod_own(struct kube *k, const char *ns, const char *pod, const char *pod_uid, const char *sandbox_id,
                      const char *cloud_provider, const char *instance_id)
{
    if (!k || k->stopping || k->closed || pp_absent(k) || !*pod || !*instance_id)
        return;
    char name[KUBEJSON_NAME_MAX + 1];
    if (kubejson_peerpod_name(pod, sandbox_id, name, sizeof(name)) == 0 && pp_find(k, ns, name))
        return; /* already under way */
    struct kube_pp *pp = pp_new(k, ns, pod, sandbox_id);
    if (!pp) {
        log_warn("kube", "no PeerPod for the pod: its name or namespace is not usable pod=%.250s/%.250s", ns, pod);
        return;
    }
    pp->stage = PP_POD;
    if (!(pp->provider = strdup(cloud_provider)) || !(pp->instance = strdup(instance_id)) ||
        (pod_uid && *pod_uid ? pp_create(pp, pod_uid) : pp_send(pp))) {
        log_warn("kube", "creating the PeerPod failed: out of memory pod=%s/%s", pp->ns, pp->pod);
        pp_free(pp);
    }
}

void kube_peerpod_release(struct kube *k, const char *ns, const char *pod, const char *sandbox_id)
{
    if (!k || k->stopping || k->closed || !*pod)
        return;
    char name[KUBEJSON_NAME_MAX + 1];
    if (kubejson_peerpod_name(pod, sandbox_id, name, sizeof(name)))
        return;
    struct kube_pp *pp = pp_find(k, ns, name);
    if (pp) {
        if (pp->stage != PP_RELEASE)
            pp->release_after = true; /* after the create lands */
        return;
    }
    if (pp_absent(k) || !(pp = pp_new(k, ns, pod, sandbox_id)))
        return;
    pp->stage = PP_RELEASE;
    if (pp_send(pp)) {
        log_warn("kube", "releasing the PeerPod failed: out of memory pod=%s/%s", pp->ns, pp->pod);
        pp_free(pp);
    }
}

/* ---- startup check ----------------------------------------------------------------------- */

static void check_reply(struct kreq *q, const struct http_response *resp)
{
    struct kube_check *c = q->arg;
    char why[1280];
    int verdict;
    if (!ok_reply(resp)) {
        char desc[400];
        describe(resp, desc, sizeof(desc));
        snprintf(why, sizeof(why), "listing the pods of node %s: %s", q->k->node, desc);
        verdict = -1;
    } else {
        verdict = kubejson_startup_check(resp->body, resp->body_len, c->runtime_class, c->start_unix, c->known,
                                         c->known_arg, why, sizeof(why));
    }
    kreq_free(q);
    c->cb(c->arg, verdict, verdict == 1 ? NULL : why);
    free(c->runtime_class);
    free(c);
}

int kube_startup_check(struct kube *k, const char *runtime_class, int64_t start_unix, kubejson_pod_known_fn known,
                       void *known_arg, kube_startup_cb cb, void *arg)
{
    char path[PATH_MAX_LEN];
    const char *parts[] = {"/api/v1/pods?fieldSelector=spec.nodeName%3D", k->node};
    struct kube_check *c = calloc(1, sizeof(*c));
    if (!c || k->stopping || !(c->runtime_class = strdup(runtime_class)) || api_path(path, sizeof(path), parts, 2)) {
        if (c)
            free(c->runtime_class);
        free(c);
        return -1;
    }
    c->start_unix = start_unix;
    c->known = known;
    c->known_arg = known_arg;
    c->cb = cb;
    c->arg = arg;
    if (!kreq_start(k, "GET", path, NULL, NULL, 0, check_reply, c)) {
        free(c->runtime_class);
        free(c);
        return -1;
    }
    return 0;
}

/* ---- life cycle ---------------------------------------------------------------------------- */

struct kube *kube_new(uv_loop_t *loop, const struct kube_config *cfg, char *err, size_t errlen)
{
    err[0] = '\0';
    if (!cfg->node_name || !*cfg->node_name)
        return NULL;
    if (!cfg->host || !*cfg->host || !cfg->port || !*cfg->port) {
        snprintf(err, errlen, "NODE_NAME is set but KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not: no "
                              "in-cluster Kubernetes configuration");
        return NULL;
    }
    if (strlen(cfg->node_name) > KUBEJSON_NAME_MAX) {
        snprintf(err, errlen, "NODE_NAME is longer than %d bytes", KUBEJSON_NAME_MAX);
        return NULL;
    }
    struct kube *k = calloc(1, sizeof(*k));
    char why[1280];
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    k->loop = loop;
    k->limit = cfg->limit;
    if (kube_url(k->base, sizeof(k->base), cfg->host, cfg->port, "")) {
        snprintf(err, errlen, "KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are too long");
        free(k);
        return NULL;
    }
    if (!(k->node = strdup(cfg->node_name)) || !(k->uid = strdup(cfg->pod_uid ? cfg->pod_uid : "")) ||
        !(k->sa_dir = strdup(cfg->sa_dir && *cfg->sa_dir ? cfg->sa_dir : KUBE_SA_DIR_DEFAULT)) ||
        !(k->user_agent = strdup(cfg->user_agent))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (!(k->token = token_read(k->sa_dir, why, sizeof(why)))) {
        snprintf(err, errlen, "service-account token (K8S_SERVICE_ACCOUNT_DIR): %s", why);
        goto fail;
    }
    char ca[4096];
    struct stat st;
    snprintf(ca, sizeof(ca), "%s/ca.crt", k->sa_dir);
    struct http_config hc = {.ca_file = stat(ca, &st) == 0 ? ca : NULL, .max_active = 8, .turn = cfg->turn,
                             .connect_timeout_ms = KUBE_REQUEST_MS};
    if (!(k->http = http_new(loop, &hc, why, sizeof(why)))) {
        snprintf(err, errlen, "Kubernetes API client: %s", why);
        goto fail;
    }
    uv_timer_init(loop, &k->token_timer);
    uv_timer_init(loop, &k->adv_wait);
    uv_timer_init(loop, &k->adv_retry);
    uv_timer_init(loop, &k->release_timer);
    k->token_timer.data = k->adv_wait.data = k->adv_retry.data = k->release_timer.data = k;
    uv_timer_start(&k->token_timer, token_tick, TOKEN_REFRESH_MS, TOKEN_REFRESH_MS);
    uv_unref((uv_handle_t *)&k->token_timer);
    log_info("kube", "using the Kubernetes API api=%s node=%s pod_uid=%s", k->base, k->node, *k->uid ? k->uid : "\"\"");
    return k;
fail:
    free(k->node);
    free(k->uid);
    free(k->sa_dir);
    free(k->user_agent);
    secret_free(k->token);
    free(k);
    return NULL;
}

void kube_free(struct kube *k)
{
    if (!k)
        return;
    struct kube_pp *pp;
    while ((pp = LIST_FIRST(&k->pps))) /* their requests were freed by kube_stop */
        pp_free(pp);
    /* The handles were closed by kube_stop (or never started: kube_new failed). */
    free(k->node);
    free(k->uid);
    free(k->sa_dir);
    free(k->user_agent);
    secret_free(k->token);
    secret_free(k->token_new);
    free(k);
}
