#include "azure_provider.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../adaptor/log.h"
#include "../instance.h"
#include "auth.h"
#include "azjson.h"
#include "azreq.h"
#include "http.h"

#define SIZES_MAX 256
#define POLL_DEFAULT_MS 1000
#define POLL_MAX_MS 30000
#define NIC_POLL_MS 1000
#define LIST_PAGES_MAX 100
#define DELETE_POLL_MAX_MS (10 * 60 * 1000) /* one resource's deletion; VMs take minutes */

struct az_options {
    const char *client_id, *secret, *tenant, *subscription, *region, *rg, *size, *sizes, *zone, *subnet, *nsg;
    const char *image, *ssh_key_path, *ssh_user, *tags, *arm_endpoint, *authority, *token_file, *ca_bundle, *imds;
    bool disable_cvm, secure_boot, public_ip;
    int64_t root_gb;
    int64_t request_timeout_ns; /* one ARM request, not the operation it starts */
};

struct arm_call;

struct provider {
    uv_loop_t *loop;
    struct az_options *o;
    struct http *http;
    struct az_auth *auth;
    char base[256]; /* ARM endpoint, no trailing slash */
    char scope_rg[512]; /* /subscriptions/S/resourceGroups/R */
    struct instance_type sizes[SIZES_MAX];
    size_t n_sizes;
    char **allow;
    size_t n_allow;
    struct az_tag *tags;
    size_t n_tags;
    char node[256];
    char *ssh_key;
    LIST_HEAD(, arm_call) calls; /* every call in flight, for shutdown */
    LIST_HEAD(, provider_op) ops;
    LIST_HEAD(, az_del) dels;
    LIST_HEAD(, az_list) lists;
    uint32_t seed;
    uint64_t throttled_until; /* ARM said 429 with Retry-After: every ARM call queues until then */
    uint64_t api_calls[METRICS_CLASSES]; /* ARM calls by the class of their final answer */
    char unreachable[256];               /* why the last ARM call got no answer; "" after an answer */
    uint64_t api_retries;
};

/* ------------------------------------------------------------------ ARM calls */

typedef void (*arm_cb)(void *arg, const struct http_response *r);

struct arm_call {
    struct provider *p;
    char method[8];
    char *url;
    char *body;
    uint64_t deadline;
    arm_cb cb;
    void *arg;
    struct azreq *q;
    uv_timer_t start; /* first step on the next loop turn: callbacks never run inside arm_start */
    bool retried_401;
    LIST_ENTRY(arm_call) link; /* on p->calls until it ends */
};

static void call_closed(uv_handle_t *h)
{
    struct arm_call *c = h->data;
    free(c->url);
    free(c->body);
    free(c);
}

static void call_end(struct arm_call *c)
{
    LIST_REMOVE(c, link);
    az_auth_forget(c->p->auth, c);
    uv_close((uv_handle_t *)&c->start, call_closed);
}

static void call_reply(void *arg, const struct http_response *r, unsigned retries);

static void call_token(void *arg, const char *token, const char *err)
{
    struct arm_call *c = arg;
    if (!token) {
        char msg[600];
        snprintf(msg, sizeof(msg), "authentication: %s", err);
        struct http_response r = {.error = msg, .body = ""};
        c->cb(c->arg, &r);
        call_end(c);
        return;
    }
    size_t tl = strlen(token) + 32;
    char *auth = malloc(tl);
    if (!auth) {
        struct http_response r = {.error = "out of memory", .body = ""};
        c->cb(c->arg, &r);
        call_end(c);
        return;
    }
    snprintf(auth, tl, "Authorization: Bearer %s", token);
    const char *hdrs[] = {auth, "Accept: application/json", c->body ? "Content-Type: application/json" : NULL, NULL};
    struct azreq_params ap = {
        .http = c->p->http,
        .loop = c->p->loop,
        .req = {.method = c->method, .url = c->url, .headers = hdrs, .body = c->body,
                .body_len = c->body ? strlen(c->body) : 0,
                .timeout_ms = c->p->o->request_timeout_ns / 1000000},
        .deadline = c->deadline,
        .seed = c->p->seed++,
        .hold_until = &c->p->throttled_until,
    };
    c->q = azreq_start(&ap, call_reply, c);
    memset(auth, 0, tl);
    free(auth);
    if (!c->q) {
        struct http_response r = {.error = "out of memory", .body = ""};
        c->cb(c->arg, &r);
        call_end(c);
    }
}

static void call_reply(void *arg, const struct http_response *r, unsigned retries)
{
    struct arm_call *c = arg;
    c->q = NULL;
    c->p->api_calls[r->status >= 200 && r->status < 600 ? r->status / 100 - 2 : METRICS_NO_ANSWER]++;
    c->p->api_retries += retries;
    if (r->status)
        c->p->unreachable[0] = '\0';
    else
        snprintf(c->p->unreachable, sizeof(c->p->unreachable), "Azure Resource Manager %.120s: %s", c->p->base,
                 r->timed_out ? "timed out" : r->error ? r->error : "no answer");
    if (r->status == 401 && !c->retried_401) { /* expired or revoked: one more try with a new token */
        c->retried_401 = true;
        az_auth_invalidate(c->p->auth);
        if (az_auth_get(c->p->auth, call_token, c) == 0)
            return;
    }
    c->cb(c->arg, r);
    call_end(c);
}

static void call_begin(uv_timer_t *t)
{
    struct arm_call *c = t->data;
    if (az_auth_get(c->p->auth, call_token, c)) {
        struct http_response r = {.error = "out of memory", .body = ""};
        c->cb(c->arg, &r);
        call_end(c);
    }
}

static struct arm_call *arm_start(struct provider *p, const char *method, const char *url, const char *body,
                                  uint64_t deadline, arm_cb cb, void *arg)
{
    struct arm_call *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (!(c->url = strdup(url)) || (body && !(c->body = strdup(body)))) {
        free(c->url);
        free(c);
        return NULL;
    }
    c->p = p;
    snprintf(c->method, sizeof(c->method), "%s", method);
    c->deadline = deadline;
    c->cb = cb;
    c->arg = arg;
    uv_timer_init(p->loop, &c->start);
    c->start.data = c;
    uv_timer_start(&c->start, call_begin, 0, 0);
    LIST_INSERT_HEAD(&p->calls, c, link);
    return c;
}

static void arm_cancel(struct arm_call *c)
{
    if (!c)
        return;
    uv_timer_stop(&c->start);
    azreq_cancel(c->q);
    c->q = NULL;
    call_end(c);
}

/* What the shim reads: the step, the HTTP status, Azure's code and message, the setting. */
static const char *hint_for(const char *code, long status)
{
    static const struct {
        const char *code, *hint;
    } h[] = {
        {"SkuNotAvailable", "the VM size is not offered in AZURE_REGION (AZURE_INSTANCE_SIZE(S), machine_type annotation)"},
        {"QuotaExceeded", "the subscription's vCPU quota for this size family in AZURE_REGION"},
        {"OperationNotAllowed", "the subscription's quota and the VM size (AZURE_INSTANCE_SIZE(S))"},
        {"InvalidParameter", "the setting named in the message"},
        {"AuthorizationFailed", "the role assignments of AZURE_CLIENT_ID on AZURE_RESOURCE_GROUP and the subnet"},
        {"ImageNotFound", "AZURE_IMAGE_ID or the pod's image annotation"},
        {"GalleryImageNotFound", "AZURE_IMAGE_ID or the pod's image annotation"},
        {"ResourceGroupNotFound", "AZURE_RESOURCE_GROUP and AZURE_SUBSCRIPTION_ID"},
        {"InvalidResourceReference", "AZURE_SUBNET_ID and AZURE_NSG_ID"},
        {"SubnetNotFound", "AZURE_SUBNET_ID"},
        {"InvalidAuthenticationToken", "AZURE_TENANT_ID and the credentials"},
        {"AllocationFailed", "another VM size or region; Azure has no capacity for this one now"},
        {"ZonalAllocationFailed", "another zone (-zone) or none"},
    };
    for (size_t i = 0; code && i < sizeof(h) / sizeof(h[0]); i++)
        if (!strcmp(code, h[i].code))
            return h[i].hint;
    return status == 403 ? "the role assignments of AZURE_CLIENT_ID" : NULL;
}

static int code_for(const char *code, long status)
{
    if (status == 429 || (code && (!strcmp(code, "QuotaExceeded") || !strcmp(code, "OperationNotAllowed"))))
        return TTRPC_RESOURCE_EXHAUSTED;
    if (status == 401 || status == 403)
        return TTRPC_PERMISSION_DENIED;
    if (status == 400 || status == 404)
        return TTRPC_INVALID_ARGUMENT;
    if (status == 0 || status >= 500)
        return TTRPC_UNAVAILABLE;
    return TTRPC_UNKNOWN;
}

static void arm_error(const struct http_response *r, const char *what, struct provider_error *e)
{
    if (!r->status) {
        e->code = TTRPC_UNAVAILABLE;
        snprintf(e->msg, sizeof(e->msg), "%s: %s", what, r->error ? r->error : "no reply");
        return;
    }
    char code[128], msg[600];
    azjson_error(r->body, r->body_len, code, sizeof(code), msg, sizeof(msg));
    const char *hc = http_header_get(r, "x-ms-error-code");
    if (hc && *hc)
        snprintf(code, sizeof(code), "%s", hc);
    const char *hint = hint_for(code, r->status);
    e->code = code_for(code, r->status);
    snprintf(e->msg, sizeof(e->msg), "%s: HTTP %ld %s: %s%s%s%s", what, r->status, code[0] ? code : "(no code)",
             msg[0] ? msg : "(no message)", hint ? " (check " : "", hint ? hint : "", hint ? ")" : "");
}

/* ------------------------------------------------------------------ URLs */

static void url_vm(const struct provider *p, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s%s/providers/Microsoft.Compute/virtualMachines/%s?api-version=" AZ_API_COMPUTE, p->base,
             p->scope_rg, name);
}

static void url_nic(const struct provider *p, const char *nic, char *out, size_t n)
{
    snprintf(out, n, "%s%s/providers/Microsoft.Network/networkInterfaces/%s?api-version=" AZ_API_NETWORK, p->base,
             p->scope_rg, nic);
}

static void url_pip(const struct provider *p, const char *pip, char *out, size_t n)
{
    snprintf(out, n, "%s%s/providers/Microsoft.Network/publicIPAddresses/%s?api-version=" AZ_API_NETWORK, p->base,
             p->scope_rg, pip);
}

static void url_disk(const struct provider *p, const char *disk, char *out, size_t n)
{
    snprintf(out, n, "%s%s/providers/Microsoft.Compute/disks/%s?api-version=" AZ_API_DISK, p->base, p->scope_rg,
             disk);
}

/* Polling URLs come from ARM; only ours (same endpoint) are followed, so a reply cannot send
 * our token elsewhere. */
static bool poll_url_ok(const struct provider *p, const char *u)
{
    size_t n = strlen(p->base);
    return u && !strncmp(u, p->base, n) && (u[n] == '/' || u[n] == '?');
}

/* base ms spread over [0.8, 1.2) x base: pods started together must not poll in lockstep,
 * or every poll of a burst lands in the same loop iteration. */
static uint64_t spread(struct provider *p, uint64_t base)
{
    p->seed ^= p->seed << 13;
    p->seed ^= p->seed >> 17;
    p->seed ^= p->seed << 5;
    return base * 8 / 10 + (uint64_t)(p->seed % 1000u) * base * 4 / 10000;
}

static uint64_t poll_delay(struct provider *p, const struct http_response *r)
{
    int64_t ra = http_retry_after_ms(r, (int64_t)time(NULL));
    if (ra < 0)
        return spread(p, POLL_DEFAULT_MS);
    return ra > POLL_MAX_MS ? POLL_MAX_MS : (uint64_t)ra;
}

/* ------------------------------------------------------------------ create */

enum create_stage { C_DISKS, C_PUT, C_POLL, C_FINAL_GET, C_NIC, C_PIP, C_DONE };

struct provider_op {
    struct provider *p;
    struct provider_create_cbs cbs;
    void *arg;
    char name[INSTANCE_NAME_MAX + 1];
    char vm_url[1024];
    char poll_url[2048];
    bool poll_async; /* Azure-AsyncOperation (else the resource itself / Location) */
    enum create_stage stage;
    uint64_t deadline;
    struct arm_call *call, *niccall;
    uv_timer_t timer, nictimer;
    bool addressed, cancelled, finished;
    struct provider_instance inst;
    char nics[2][AZ_NAME_MAX];
    int n_nics, nic_i;
    struct az_ipconfig cfgs[4];
    int n_cfgs;
    char public_ips[2][INET6_ADDRSTRLEN];
    int n_pub, pip_i;
    struct provider_error err;
    /* CSI data disks (part A 3.7): checked one by one before the PUT, which waits in body. */
    char **disks;
    size_t n_disks, disk_i;
    char *body;
    char *disk_errs; /* the checks' findings, "\n  - ..." each; NULL when none */
    unsigned closes;
    LIST_ENTRY(provider_op) link; /* on p->ops until freed */
};

static void op_closed(uv_handle_t *h)
{
    struct provider_op *op = h->data;
    if (--op->closes)
        return;
    for (size_t i = 0; i < op->n_disks; i++)
        free(op->disks[i]);
    free(op->disks);
    free(op->body);
    free(op->disk_errs);
    free(op);
}

static void op_free(struct provider_op *op)
{
    arm_cancel(op->call);
    arm_cancel(op->niccall);
    op->call = op->niccall = NULL;
    LIST_REMOVE(op, link);
    op->closes = 2;
    uv_close((uv_handle_t *)&op->timer, op_closed);
    uv_close((uv_handle_t *)&op->nictimer, op_closed);
}

/* Ends the create: success when err is NULL. The instance (name, and id when known) goes
 * along either way, so a failure is rolled back by name. */
static void create_finish(struct provider_op *op, const struct provider_error *err)
{
    if (op->finished)
        return;
    op->finished = true;
    uv_timer_stop(&op->timer);
    uv_timer_stop(&op->nictimer);
    arm_cancel(op->niccall);
    op->niccall = NULL;
    if (err)
        log_warn("azure", "creating VM %s: %s", op->name, err->msg);
    else
        log_info("azure", "created VM successfully: %s", op->inst.id);
    struct provider_create_cbs cbs = op->cbs;
    void *arg = op->arg;
    struct provider_instance inst = op->inst;
    op_free(op);
    cbs.on_done(arg, err, &inst);
}

static void create_fail(struct provider_op *op, const struct http_response *r, const char *what)
{
    struct provider_error e = {0};
    arm_error(r, what, &e);
    create_finish(op, &e);
}

static void create_fail_msg(struct provider_op *op, int code, const char *msg)
{
    struct provider_error e = {.code = code};
    snprintf(e.msg, sizeof(e.msg), "%s", msg);
    create_finish(op, &e);
}

static bool ip_ready(const char *ip)
{
    return ip[0] && strcmp(ip, "0.0.0.0") != 0;
}

/* --- the early address: the NIC exists (and has its private IP) long before the VM is up */

static void nic_poll_fire(uv_timer_t *t);

static void nic_polled(void *arg, const struct http_response *r)
{
    struct provider_op *op = arg;
    op->niccall = NULL;
    if (op->finished || op->addressed)
        return;
    struct az_ipconfig cfg[2];
    int n = r->status == 200 ? azjson_nic_ipconfigs(r->body, r->body_len, cfg, 2) : -1;
    if (n > 0 && ip_ready(cfg[0].private_ip)) {
        op->addressed = true;
        struct provider_instance early = op->inst;
        snprintf(early.ips[0], sizeof(early.ips[0]), "%s", cfg[0].private_ip);
        early.n_ips = 1;
        log_info("azure", "VM %s: NIC %s-net has %s while the VM is still being created", op->name, op->name,
                 cfg[0].private_ip);
        if (op->cbs.on_address)
            op->cbs.on_address(op->arg, &early);
        return;
    }
    uv_timer_start(&op->nictimer, nic_poll_fire, spread(op->p, NIC_POLL_MS), 0);
}

static void nic_poll_fire(uv_timer_t *t)
{
    struct provider_op *op = t->data;
    char url[1024], nic[AZ_NAME_MAX + 8];
    snprintf(nic, sizeof(nic), "%s-net", op->name);
    url_nic(op->p, nic, url, sizeof(url));
    op->niccall = arm_start(op->p, "GET", url, NULL, op->deadline, nic_polled, op);
}

/* --- IPs after the VM succeeded (part A.3.5) */

static void ips_done(struct provider_op *op)
{
    op->inst.n_ips = 0;
    for (int i = 0; i < op->n_pub && op->inst.n_ips < PROVIDER_IPS_MAX; i++)
        snprintf(op->inst.ips[op->inst.n_ips++], sizeof(op->inst.ips[0]), "%s", op->public_ips[i]);
    for (int i = 0; i < op->n_cfgs && op->inst.n_ips < PROVIDER_IPS_MAX; i++) {
        if (!ip_ready(op->cfgs[i].private_ip)) {
            char m[160];
            snprintf(m, sizeof(m), "VM %s: private IP address not found in IP configuration %d (address not ready)",
                     op->name, i);
            create_fail_msg(op, TTRPC_UNKNOWN, m);
            return;
        }
        snprintf(op->inst.ips[op->inst.n_ips++], sizeof(op->inst.ips[0]), "%s", op->cfgs[i].private_ip);
    }
    for (unsigned i = 0; i < op->inst.n_ips; i++)
        log_info("azure", "pod vm IP[%u]=%s", i, op->inst.ips[i]);
    create_finish(op, NULL);
}

static void pip_next(struct provider_op *op);

static void pip_got(void *arg, const struct http_response *r)
{
    struct provider_op *op = arg;
    op->call = NULL;
    if (r->status != 200) {
        create_fail(op, r, "get public ip");
        return;
    }
    char ip[INET6_ADDRSTRLEN];
    if (azjson_public_ip(r->body, r->body_len, ip, sizeof(ip)) == 0 && ip_ready(ip) && op->n_pub < 2)
        snprintf(op->public_ips[op->n_pub++], sizeof(op->public_ips[0]), "%s", ip);
    pip_next(op);
}

static void pip_next(struct provider_op *op)
{
    while (op->pip_i < op->n_cfgs && !op->cfgs[op->pip_i].public_ip_name[0])
        op->pip_i++;
    if (op->pip_i >= op->n_cfgs || !op->p->o->public_ip) {
        ips_done(op);
        return;
    }
    char url[1024];
    url_pip(op->p, op->cfgs[op->pip_i++].public_ip_name, url, sizeof(url));
    op->stage = C_PIP;
    if (!(op->call = arm_start(op->p, "GET", url, NULL, op->deadline, pip_got, op)))
        create_fail_msg(op, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
}

static void nic_next(struct provider_op *op);

static void nic_got(void *arg, const struct http_response *r)
{
    struct provider_op *op = arg;
    op->call = NULL;
    if (r->status != 200) {
        create_fail(op, r, "get network interface");
        return;
    }
    int n = azjson_nic_ipconfigs(r->body, r->body_len, op->cfgs + op->n_cfgs, 4 - (size_t)op->n_cfgs);
    if (n < 0) {
        create_fail_msg(op, TTRPC_UNKNOWN, "get network interface: the reply is not a network interface");
        return;
    }
    op->n_cfgs += n;
    nic_next(op);
}

static void nic_next(struct provider_op *op)
{
    if (op->nic_i >= op->n_nics) {
        op->pip_i = 0;
        pip_next(op);
        return;
    }
    char url[1024];
    url_nic(op->p, op->nics[op->nic_i++], url, sizeof(url));
    op->stage = C_NIC;
    if (!(op->call = arm_start(op->p, "GET", url, NULL, op->deadline, nic_got, op)))
        create_fail_msg(op, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
}

static void final_got(void *arg, const struct http_response *r)
{
    struct provider_op *op = arg;
    op->call = NULL;
    if (r->status != 200) {
        create_fail(op, r, "waiting for the VM creation: reading the VM");
        return;
    }
    if (azjson_id(r->body, r->body_len, op->inst.id, sizeof(op->inst.id)))
        snprintf(op->inst.id, sizeof(op->inst.id), "%.400s/providers/Microsoft.Compute/virtualMachines/%.63s",
                 op->p->scope_rg, op->name);
    op->n_nics = azjson_vm_nics(r->body, r->body_len, op->nics, 2);
    if (op->n_nics <= 0) {
        op->n_nics = 1; /* Compute names it <name>-net */
        snprintf(op->nics[0], sizeof(op->nics[0]), "%s-net", op->name);
    }
    uv_timer_stop(&op->nictimer);
    arm_cancel(op->niccall);
    op->niccall = NULL;
    op->nic_i = 0;
    nic_next(op);
}

static void final_get(struct provider_op *op)
{
    op->stage = C_FINAL_GET;
    if (!(op->call = arm_start(op->p, "GET", op->vm_url, NULL, op->deadline, final_got, op)))
        create_fail_msg(op, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
}

static void poll_fire(uv_timer_t *t);

static void polled(void *arg, const struct http_response *r)
{
    struct provider_op *op = arg;
    op->call = NULL;
    if (r->status < 200 || r->status > 204) {
        create_fail(op, r, "waiting for the VM creation");
        return;
    }
    enum az_state st = azjson_state(r->body, r->body_len);
    if (!op->poll_async && st == AZ_STATE_NONE)
        st = r->status == 202 ? AZ_STATE_IN_PROGRESS : AZ_STATE_SUCCEEDED;
    if (op->poll_async && st == AZ_STATE_NONE) {
        create_fail_msg(op, TTRPC_UNKNOWN, "waiting for the VM creation: the response did not contain a status");
        return;
    }
    if (st == AZ_STATE_SUCCEEDED) {
        final_get(op);
        return;
    }
    if (st == AZ_STATE_FAILED || st == AZ_STATE_CANCELED) {
        struct http_response fake = *r;
        fake.status = 409; /* the operation's error document, reported like an ARM reply */
        struct provider_error e = {0};
        arm_error(&fake, "waiting for the VM creation: the operation ended", &e);
        e.code = TTRPC_UNKNOWN;
        create_finish(op, &e);
        return;
    }
    const char *loc = http_header_get(r, "location");
    if (!op->poll_async && loc && poll_url_ok(op->p, loc))
        snprintf(op->poll_url, sizeof(op->poll_url), "%s", loc);
    uv_timer_start(&op->timer, poll_fire, poll_delay(op->p, r), 0);
}

static void poll_fire(uv_timer_t *t)
{
    struct provider_op *op = t->data;
    op->stage = C_POLL;
    if (!(op->call = arm_start(op->p, "GET", op->poll_url, NULL, op->deadline, polled, op)))
        create_fail_msg(op, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
}

static void put_done(void *arg, const struct http_response *r)
{
    struct provider_op *op = arg;
    op->call = NULL;
    if (r->status != 200 && r->status != 201) {
        create_fail(op, r, "beginning VM creation or update");
        return;
    }
    const char *async = http_header_get(r, "azure-asyncoperation");
    const char *loc = http_header_get(r, "location");
    if (async && poll_url_ok(op->p, async)) {
        op->poll_async = true;
        snprintf(op->poll_url, sizeof(op->poll_url), "%s", async);
    } else if (loc && poll_url_ok(op->p, loc)) {
        snprintf(op->poll_url, sizeof(op->poll_url), "%s", loc);
    } else {
        enum az_state st = azjson_state(r->body, r->body_len);
        if (st == AZ_STATE_SUCCEEDED || (st == AZ_STATE_NONE && r->status == 200)) {
            final_get(op);
            return;
        }
        snprintf(op->poll_url, sizeof(op->poll_url), "%s", op->vm_url); /* body poller */
    }
    if (!op->p->o->public_ip) /* with a public IP, that one goes first: wait for the VM */
        uv_timer_start(&op->nictimer, nic_poll_fire, 0, 0);
    uv_timer_start(&op->timer, poll_fire, poll_delay(op->p, r), 0);
}

/* ---- CSI data disks: validated before the VM PUT, as the Go daemon does ---------------- */

static void disks_next(struct provider_op *op);

static void disk_err_add(struct provider_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void disk_err_add(struct provider_op *op, const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    size_t have = op->disk_errs ? strlen(op->disk_errs) : 0, add = strlen(line) + 5;
    char *n = realloc(op->disk_errs, have + add + 1);
    if (!n)
        return; /* the findings so far still fail the create */
    snprintf(n + have, add + 1, "\n  - %s", line);
    op->disk_errs = n;
}

/* Azure names regions as "East US" or "eastus"; compared lower-cased without spaces. */
static bool same_region(const char *a, const char *b)
{
    for (;;) {
        while (*a == ' ')
            a++;
        while (*b == ' ')
            b++;
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return false;
        if (!*a)
            return true;
        a++;
        b++;
    }
}

static void disk_got(void *arg, const struct http_response *r)
{
    struct provider_op *op = arg;
    op->call = NULL;
    const char *id = op->disks[op->disk_i];
    char rg[256], name[256];
    azjson_disk_id_split(id, rg, sizeof(rg), name, sizeof(name)); /* split before the GET */
    struct az_disk dk;
    if (r->status == 200 && azjson_disk(r->body, r->body_len, &dk) == 0) {
        if (!strcmp(dk.state, "Attached") || !strcmp(dk.state, "Reserved"))
            disk_err_add(op, "disk \"%s\" is in state \"%s\" (attached to %s) — cannot attach to new PodVM", id,
                         dk.state, dk.managed_by[0] ? dk.managed_by : "(unknown)");
        if (dk.location[0] && !same_region(dk.location, op->p->o->region))
            disk_err_add(op, "disk \"%s\" is in region \"%s\" but PodVM targets region \"%s\"", id, dk.location,
                         op->p->o->region);
        if (dk.zoned)
            log_info("azure", "disk %s is zonal; the pod VM %s must be in its zone (-zone)", id, op->name);
    } else {
        struct provider_error e = {0};
        arm_error(r, "reading the disk", &e); /* names Azure's code, e.g. ResourceNotFound */
        if (r->status == 404 || strstr(e.msg, "NotFound"))
            disk_err_add(op, "disk \"%s\" does not exist in resource group \"%s\"", name, rg);
        else
            disk_err_add(op, "disk \"%s\" is inaccessible: %s", id, e.msg);
    }
    op->disk_i++;
    disks_next(op);
}

static void disks_next(struct provider_op *op)
{
    struct provider *p = op->p;
    char rg[256], name[256], url[1400];
    while (op->disk_i < op->n_disks) {
        const char *id = op->disks[op->disk_i];
        if (azjson_disk_id_split(id, rg, sizeof(rg), name, sizeof(name)) == 0) {
            snprintf(url, sizeof(url),
                     "%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/disks/%s?api-version=" AZ_API_DISK,
                     p->base, p->o->subscription, rg, name);
            if (!(op->call = arm_start(p, "GET", url, NULL, op->deadline, disk_got, op)))
                create_fail_msg(op, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
            return;
        }
        log_warn("azure", "data disk id %s names no disk (.../resourceGroups/<rg>/providers/Microsoft.Compute/disks/"
                 "<name>): not checked before the create", id);
        op->disk_i++;
    }
    if (op->disk_errs) {
        struct provider_error e = {.code = TTRPC_FAILED_PRECONDITION};
        snprintf(e.msg, sizeof(e.msg), "disk pre-validation failed:%s\n(the pod's CSI volumes: their disks must exist "
                 "in the subscription, in AZURE_REGION, and be attached to nothing)", op->disk_errs);
        create_finish(op, &e);
        return;
    }
    op->stage = C_PUT;
    op->call = arm_start(p, "PUT", op->vm_url, op->body, op->deadline, put_done, op);
    free(op->body);
    op->body = NULL;
    if (!op->call)
        create_fail_msg(op, TTRPC_RESOURCE_EXHAUSTED, "out of memory");
}

/* First step of a create with data disks (a timer callback: never inside az_create). */
static void disks_begin(uv_timer_t *t)
{
    disks_next(t->data);
}

static void create_deferred_fail(uv_timer_t *t)
{
    struct provider_op *op = t->data;
    create_finish(op, &op->err);
}

static void create_cancelled(uv_timer_t *t)
{
    struct provider_op *op = t->data;
    create_fail_msg(op, TTRPC_CANCELED, "azure: VM creation canceled");
}

static char *b64(const uint8_t *d, size_t n)
{
    char *o = malloc(4 * ((n + 2) / 3) + 1);
    if (o)
        EVP_EncodeBlock((unsigned char *)o, d, (int)n);
    return o;
}

static struct provider_op *az_create(struct provider *p, const struct provider_create_req *req,
                                     const struct provider_create_cbs *cbs, void *arg)
{
    struct provider_op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->p = p;
    op->cbs = *cbs;
    op->arg = arg;
    op->deadline = req->deadline;
    snprintf(op->name, sizeof(op->name), "%s", req->instance_name);
    snprintf(op->inst.name, sizeof(op->inst.name), "%s", req->instance_name);
    snprintf(op->inst.sandbox_id, sizeof(op->inst.sandbox_id), "%s", req->sandbox_id);
    uv_timer_init(p->loop, &op->timer);
    uv_timer_init(p->loop, &op->nictimer);
    op->timer.data = op->nictimer.data = op;
    LIST_INSERT_HEAD(&p->ops, op, link);
    url_vm(p, op->name, op->vm_url, sizeof(op->vm_url));

    const struct az_options *o = p->o;
    const struct pod_spec *pod = req->pod;
    char size[128], err[512];
    if (instance_type_select(p->sizes, p->n_sizes, (const char *const *)p->allow, p->n_allow, o->size,
                             pod->machine_type, pod->vcpus, pod->memory_mib, pod->gpus, size, sizeof(size), err,
                             sizeof(err))) {
        op->err.code = TTRPC_INVALID_ARGUMENT;
        snprintf(op->err.msg, sizeof(op->err.msg), "%s (Azure settings: AZURE_INSTANCE_SIZES, AZURE_INSTANCE_SIZE; only sizes offered in %s count)",
                 err, o->region);
        uv_timer_start(&op->timer, create_deferred_fail, 0, 0);
        return op;
    }
    const char *image = pod->image && *pod->image ? pod->image : o->image;
    if (pod->image && *pod->image)
        log_info("azure", "Choosing %s from annotation as the Azure Image for the PodVM image", pod->image);
    char *ud = b64(req->userdata, req->userdata_len);
    if (!image || !*image || !ud || strlen(ud) > AZ_USERDATA_B64_MAX) {
        op->err.code = TTRPC_INVALID_ARGUMENT;
        snprintf(op->err.msg, sizeof(op->err.msg), "%s",
                 !ud     ? "out of memory"
                 : !image || !*image
                     ? "no pod VM image: set AZURE_IMAGE_ID (-imageid) or the pod's image annotation"
                     : "base64 encoded userData is greater than 64KB; make the initdata smaller");
        free(ud);
        uv_timer_start(&op->timer, create_deferred_fail, 0, 0);
        return op;
    }
    if (req->n_data_disks) {
        const struct instance_type *t = NULL;
        for (size_t i = 0; i < p->n_sizes && !t; i++)
            if (!strcmp(p->sizes[i].name, size))
                t = &p->sizes[i];
        if (t && t->max_data_disks && req->n_data_disks > t->max_data_disks) {
            free(ud);
            op->err.code = TTRPC_INVALID_ARGUMENT;
            snprintf(op->err.msg, sizeof(op->err.msg),
                     "requested %zu data disks but VM size %s supports at most %u (the pod's CSI volumes; a larger "
                     "size: machine_type annotation, AZURE_INSTANCE_SIZES)",
                     req->n_data_disks, size, t->max_data_disks);
            uv_timer_start(&op->timer, create_deferred_fail, 0, 0);
            return op;
        }
        if (!t || !t->max_data_disks)
            log_warn("azure", "VM size %s: its data disk limit is not known (not in the region's size listing); "
                     "%zu data disks not checked against it", size, req->n_data_disks);
        if (!(op->disks = calloc(req->n_data_disks, sizeof(*op->disks)))) {
            free(ud);
            op_free(op);
            return NULL;
        }
        for (; op->n_disks < req->n_data_disks; op->n_disks++)
            if (!(op->disks[op->n_disks] = strdup(req->data_disks[op->n_disks]))) {
                free(ud);
                op_free(op);
                return NULL;
            }
    }
    struct az_tag tags[AZ_TAGS_MAX + 4];
    size_t nt = 0;
    for (size_t i = 0; i < p->n_tags && nt < AZ_TAGS_MAX; i++)
        tags[nt++] = p->tags[i];
    char created[24];
    snprintf(created, sizeof(created), "%lld", (long long)time(NULL));
    tags[nt++] = (struct az_tag){AZ_TAG_CREATED_BY, AZ_TAG_CREATED_BY_VALUE};
    tags[nt++] = (struct az_tag){AZ_TAG_NODE, p->node};
    tags[nt++] = (struct az_tag){AZ_TAG_SANDBOX, (char *)req->sandbox_id};
    tags[nt++] = (struct az_tag){AZ_TAG_CREATED, created};
    struct az_vm_spec spec = {
        .location = o->region, .name = op->name, .vm_size = size, .image_id = image, .subnet_id = o->subnet,
        .nsg_id = o->nsg, .admin_user = o->ssh_user, .ssh_public_key = p->ssh_key, .zone = o->zone,
        .userdata_b64 = ud, .tags = tags, .n_tags = nt, .cvm = !o->disable_cvm, .secure_boot = o->secure_boot,
        .public_ip = o->public_ip, .root_volume_gb = o->root_gb,
        .data_disks = (const char *const *)op->disks, .n_data_disks = op->n_disks,
    };
    char *body = azjson_vm_body(&spec);
    free(ud);
    if (!body) {
        op_free(op);
        return NULL;
    }
    log_info("azure", "CreateInstance: name: \"%s\" size %s image %s%s%s", op->name, size, image,
             o->disable_cvm ? "" : " (confidential VM)", req->n_data_disks ? " with data disks" : "");
    if (req->n_data_disks) {
        op->body = body;
        op->stage = C_DISKS;
        uv_timer_start(&op->timer, disks_begin, 0, 0);
        return op;
    }
    op->stage = C_PUT;
    op->call = arm_start(p, "PUT", op->vm_url, body, op->deadline, put_done, op);
    free(body);
    if (!op->call) {
        op_free(op);
        return NULL;
    }
    return op;
}

static void az_cancel(struct provider_op *op)
{
    if (op->cancelled || op->finished)
        return;
    op->cancelled = true;
    arm_cancel(op->call);
    op->call = NULL;
    uv_timer_stop(&op->timer);
    uv_timer_start(&op->timer, create_cancelled, 0, 0);
}

/* ------------------------------------------------------------------ delete */

enum del_stage { D_VM, D_NIC, D_PIP, D_DISK, D_END };

struct az_del {
    struct provider *p;
    char name[INSTANCE_NAME_MAX + 1];
    enum del_stage stage;
    char url[1024], poll_url[2048];
    bool poll_async;
    uint64_t poll_until; /* loop ms: a deletion ARM never finishes fails, and is retried */
    struct arm_call *call;
    uv_timer_t timer;
    provider_delete_cb cb;
    void *arg;
    LIST_ENTRY(az_del) link; /* on p->dels until freed */
};

static void del_closed(uv_handle_t *h)
{
    free(h->data);
}

static void del_free(struct az_del *d)
{
    arm_cancel(d->call);
    d->call = NULL;
    LIST_REMOVE(d, link);
    uv_close((uv_handle_t *)&d->timer, del_closed);
}

static void del_finish(struct az_del *d, const struct provider_error *e)
{
    provider_delete_cb cb = d->cb;
    void *arg = d->arg;
    if (!e)
        log_info("azure", "deleted VM successfully: %s", d->name);
    del_free(d);
    cb(arg, e);
}

static void del_fail(struct az_del *d, const struct http_response *r, const char *what)
{
    struct provider_error e = {0};
    arm_error(r, what, &e);
    del_finish(d, &e);
}

static void del_step(struct az_del *d);
static void del_poll_fire(uv_timer_t *t);

static const char *del_what(const struct az_del *d)
{
    static const char *const w[] = {"VM deletion", "network interface deletion", "public IP deletion",
                                    "OS disk deletion", ""};
    return w[d->stage];
}

static void del_polled(void *arg, const struct http_response *r)
{
    struct az_del *d = arg;
    d->call = NULL;
    char what[96];
    snprintf(what, sizeof(what), "waiting for the %s", del_what(d));
    if (r->status == 404) { /* the resource (or its operation) is gone */
        d->stage++;
        del_step(d);
        return;
    }
    if (r->status < 200 || r->status > 204) {
        del_fail(d, r, what);
        return;
    }
    enum az_state st = azjson_state(r->body, r->body_len);
    if (!d->poll_async && st == AZ_STATE_NONE)
        st = r->status == 202 ? AZ_STATE_IN_PROGRESS : AZ_STATE_SUCCEEDED;
    if (st != AZ_STATE_SUCCEEDED && st != AZ_STATE_FAILED && st != AZ_STATE_CANCELED &&
        uv_now(d->p->loop) >= d->poll_until) {
        struct provider_error e = {.code = TTRPC_DEADLINE_EXCEEDED};
        snprintf(e.msg, sizeof(e.msg), "%s of %s: not finished after %d minutes; it is tried again", what, d->name,
                 DELETE_POLL_MAX_MS / 60000);
        del_finish(d, &e);
        return;
    }
    if (st == AZ_STATE_SUCCEEDED) {
        d->stage++;
        del_step(d);
        return;
    }
    if (st == AZ_STATE_FAILED || st == AZ_STATE_CANCELED || st == AZ_STATE_NONE) {
        struct http_response fake = *r;
        fake.status = 409;
        del_fail(d, &fake, what);
        return;
    }
    uv_timer_start(&d->timer, del_poll_fire, poll_delay(d->p, r), 0);
}

static void del_poll_fire(uv_timer_t *t)
{
    struct az_del *d = t->data;
    if (!(d->call = arm_start(d->p, "GET", d->poll_url, NULL, 0, del_polled, d))) {
        struct provider_error e = {.code = TTRPC_RESOURCE_EXHAUSTED, .msg = "out of memory"};
        del_finish(d, &e);
    }
}

static void del_answered(void *arg, const struct http_response *r)
{
    struct az_del *d = arg;
    d->call = NULL;
    char what[96];
    snprintf(what, sizeof(what), "beginning %s", del_what(d));
    if (r->status == 404) { /* already gone (DECISIONS 2) */
        d->stage++;
        del_step(d);
        return;
    }
    if (r->status < 200 || r->status > 204 || r->status == 203) {
        del_fail(d, r, what);
        return;
    }
    /* Any success that names an operation is polled to its end (spec 4.1), a 200 too. */
    const char *async = http_header_get(r, "azure-asyncoperation");
    const char *loc = http_header_get(r, "location");
    d->poll_async = async && poll_url_ok(d->p, async);
    d->poll_until = uv_now(d->p->loop) + DELETE_POLL_MAX_MS;
    if (d->poll_async)
        snprintf(d->poll_url, sizeof(d->poll_url), "%s", async);
    else if (loc && poll_url_ok(d->p, loc))
        snprintf(d->poll_url, sizeof(d->poll_url), "%s", loc);
    else if (r->status == 200 || r->status == 204) {
        d->stage++; /* done at once */
        del_step(d);
        return;
    } else {
        struct provider_error e = {.code = TTRPC_UNKNOWN};
        snprintf(e.msg, sizeof(e.msg), "%s of %s: response is missing polling URL", what, d->name);
        del_finish(d, &e);
        return;
    }
    uv_timer_start(&d->timer, del_poll_fire, poll_delay(d->p, r), 0);
}

static void del_step(struct az_del *d)
{
    char res[AZ_NAME_MAX + 8];
    for (;;) {
        switch (d->stage) {
        case D_VM:
            url_vm(d->p, d->name, d->url, sizeof(d->url));
            break;
        case D_NIC:
            snprintf(res, sizeof(res), "%s-net", d->name);
            url_nic(d->p, res, d->url, sizeof(d->url));
            break;
        case D_PIP:
            if (!d->p->o->public_ip) {
                d->stage++;
                continue;
            }
            snprintf(res, sizeof(res), "%s-net", d->name);
            url_pip(d->p, res, d->url, sizeof(d->url));
            break;
        case D_DISK:
            snprintf(res, sizeof(res), "%s-disk", d->name);
            url_disk(d->p, res, d->url, sizeof(d->url));
            break;
        case D_END:
            del_finish(d, NULL);
            return;
        }
        break;
    }
    if (!(d->call = arm_start(d->p, "DELETE", d->url, NULL, 0, del_answered, d))) {
        struct provider_error e = {.code = TTRPC_RESOURCE_EXHAUSTED, .msg = "out of memory"};
        del_finish(d, &e);
    }
}

static void del_begin(uv_timer_t *t)
{
    del_step(t->data);
}

static void az_destroy(struct provider *p, const char *name, const char *id, provider_delete_cb cb, void *arg)
{
    (void)id; /* deleted by name in the configured resource group, as the Go daemon does */
    struct az_del *d = calloc(1, sizeof(*d));
    if (!d) {
        struct provider_error e = {.code = TTRPC_RESOURCE_EXHAUSTED, .msg = "out of memory"};
        cb(arg, &e);
        return;
    }
    d->p = p;
    d->cb = cb;
    d->arg = arg;
    snprintf(d->name, sizeof(d->name), "%s", name);
    uv_timer_init(p->loop, &d->timer);
    d->timer.data = d;
    LIST_INSERT_HEAD(&p->dels, d, link);
    uv_timer_start(&d->timer, del_begin, 0, 0);
}

/* ------------------------------------------------------------------ list */

struct az_list {
    struct provider *p;
    provider_list_cb cb;
    void *arg;
    struct provider_instance *v;
    size_t n, cap;
    unsigned pages;
    struct arm_call *call;
    LIST_ENTRY(az_list) link; /* on p->lists until freed */
};

static void list_free(struct az_list *l)
{
    arm_cancel(l->call);
    LIST_REMOVE(l, link);
    free(l->v);
    free(l);
}

static void list_page(void *arg, const struct http_response *r)
{
    struct az_list *l = arg;
    l->call = NULL;
    if (r->status != 200) {
        struct provider_error e = {0};
        arm_error(r, "listing VMs", &e);
        provider_list_cb cb = l->cb;
        void *a = l->arg;
        list_free(l);
        cb(a, &e, NULL, 0);
        return;
    }
    /* A page holds as many VMs as ARM chooses (the resource group may be shared): every one is
     * read, or an orphan of ours past a fixed count would never be collected. */
    size_t ecap = 128;
    struct az_vm_entry *ents = malloc(ecap * sizeof(*ents));
    char *next = NULL;
    bool oom = !ents;
    int n = ents ? azjson_vm_list(r->body, r->body_len, ents, ecap, &next) : -1;
    if (n > (int)ecap) {
        free(next);
        next = NULL;
        ecap = (size_t)n;
        struct az_vm_entry *more = realloc(ents, ecap * sizeof(*ents));
        oom = !more;
        if (more)
            ents = more;
        n = more ? azjson_vm_list(r->body, r->body_len, ents, ecap, &next) : -1;
    }
    if (n < 0) {
        free(ents);
        free(next);
        struct provider_error e = {.code = TTRPC_UNKNOWN};
        snprintf(e.msg, sizeof(e.msg), "listing VMs: %s", oom ? "out of memory" : "the answer is not a VM list");
        provider_list_cb cb = l->cb;
        void *a = l->arg;
        list_free(l);
        cb(a, &e, NULL, 0);
        return;
    }
    for (int i = 0; i < n; i++) {
        if (!ents[i].ours || strcmp(ents[i].node, l->p->node))
            continue;
        if (l->n == l->cap) {
            size_t cap = l->cap ? 2 * l->cap : 16;
            struct provider_instance *nv = realloc(l->v, cap * sizeof(*nv));
            if (!nv)
                break;
            l->v = nv;
            l->cap = cap;
        }
        struct provider_instance *pi = &l->v[l->n++];
        memset(pi, 0, sizeof(*pi));
        snprintf(pi->name, sizeof(pi->name), "%.63s", ents[i].name);
        snprintf(pi->id, sizeof(pi->id), "%s", ents[i].id);
        snprintf(pi->sandbox_id, sizeof(pi->sandbox_id), "%s", ents[i].sandbox);
        pi->created_unix = ents[i].created_unix;
    }
    free(ents);
    if (next && poll_url_ok(l->p, next) && ++l->pages < LIST_PAGES_MAX) {
        l->call = arm_start(l->p, "GET", next, NULL, 0, list_page, l);
        free(next);
        if (l->call)
            return;
    } else {
        free(next);
    }
    provider_list_cb cb = l->cb;
    void *a = l->arg;
    struct provider_instance *v = l->v;
    size_t cnt = l->n;
    l->v = NULL;
    list_free(l);
    cb(a, NULL, v, cnt);
    free(v);
}

static void az_list(struct provider *p, provider_list_cb cb, void *arg)
{
    struct az_list *l = calloc(1, sizeof(*l));
    char url[1024];
    snprintf(url, sizeof(url), "%s%s/providers/Microsoft.Compute/virtualMachines?api-version=" AZ_API_COMPUTE,
             p->base, p->scope_rg);
    if (l) {
        l->p = p;
        l->cb = cb;
        l->arg = arg;
        LIST_INSERT_HEAD(&p->lists, l, link);
        if ((l->call = arm_start(p, "GET", url, NULL, 0, list_page, l)))
            return;
        list_free(l);
    }
    struct provider_error e = {.code = TTRPC_RESOURCE_EXHAUSTED, .msg = "out of memory"};
    cb(arg, &e, NULL, 0);
}

/* ------------------------------------------------------------------ options, start-up */

static void *az_options_new(struct config_registry *r)
{
    struct az_options *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    int rc = 0;
#define S(flag, env, def, help, dst) rc |= config_registry_add(r, flag, env, CONFIG_STRING, def, help, dst)
#define B(flag, env, def, help, dst) rc |= config_registry_add(r, flag, env, CONFIG_BOOL, def, help, dst)
    S("clientid", "AZURE_CLIENT_ID", "", "Client Id, defaults to env AZURE_CLIENT_ID", &o->client_id);
    S("secret", "AZURE_CLIENT_SECRET", "", "Client Secret, defaults to env AZURE_CLIENT_SECRET", &o->secret);
    S("tenantid", "AZURE_TENANT_ID", "", "Tenant Id, defaults to env AZURE_TENANT_ID", &o->tenant);
    S("subscriptionid", "AZURE_SUBSCRIPTION_ID", "", "Subscription ID", &o->subscription);
    S("region", "AZURE_REGION", "", "Region", &o->region);
    S("resourcegroup", "AZURE_RESOURCE_GROUP", "", "Resource Group", &o->rg);
    S("instance-size", "AZURE_INSTANCE_SIZE", "Standard_DC2as_v5", "Instance size", &o->size);
    S("instance-sizes", "AZURE_INSTANCE_SIZES", "", "Instance sizes to be used for the Pod VMs, comma separated",
      &o->sizes);
    S("zone", NULL, "", "Zone (honoured: the VM gets zones: [zone])", &o->zone);
    S("subnetid", "AZURE_SUBNET_ID", "", "Network Subnet Id", &o->subnet);
    S("securitygroupid", "AZURE_NSG_ID", "", "Security Group Id", &o->nsg);
    S("imageid", "AZURE_IMAGE_ID", "", "Image Id", &o->image);
    S("ssh-key-path", NULL, "", "Path to SSH public key (empty: one key per daemon start)", &o->ssh_key_path);
    S("ssh-username", "SSH_USERNAME", "peerpod", "SSH User Name", &o->ssh_user);
    B("disable-cvm", "DISABLECVM", "false", "Use non-CVMs for peer pods", &o->disable_cvm);
    B("enable-secure-boot", "ENABLE_SECURE_BOOT", "false", "Enable secure boot for the VMs", &o->secure_boot);
    B("use-public-ip", "USE_PUBLIC_IP", "false", "Use Public IP for connecting to the kata-agent inside the Pod VM",
      &o->public_ip);
    rc |= config_registry_add(r, "root-volume-size", "ROOT_VOLUME_SIZE", CONFIG_INT, "0",
                              "Root volume size in GB (0: the image's)", &o->root_gb);
    S("tags", "TAGS", "", "Custom tags (key=value pairs) to be used for the Pod VMs, comma separated", &o->tags);
    S("arm-endpoint", "AZURE_ARM_ENDPOINT", "https://management.azure.com",
      "Azure Resource Manager endpoint (sovereign clouds; our addition)", &o->arm_endpoint);
    S("authority-host", "AZURE_AUTHORITY_HOST", "", "Entra ID authority host (default the public cloud's)",
      &o->authority);
    S("federated-token-file", "AZURE_FEDERATED_TOKEN_FILE", "", "workload identity token file", &o->token_file);
    S("azure-ca-bundle", "AZURE_CA_BUNDLE", "", "extra CA bundle for Azure endpoints (tests, proxies)",
      &o->ca_bundle);
    S("imds-endpoint", "AZURE_IMDS_ENDPOINT", AZ_IMDS_DEFAULT, "instance metadata service (managed identity)",
      &o->imds);
    rc |= config_registry_add(r, "request-timeout", "AZURE_REQUEST_TIMEOUT", CONFIG_DURATION, "60s",
                              "time limit of one ARM request; a request past it is retried like a lost connection",
                              &o->request_timeout_ns);
#undef S
#undef B
    if (rc) {
        free(o);
        return NULL;
    }
    return o;
}

static void az_options_free(void *o)
{
    free(o);
}

/* The ARM audience of the known clouds (spec 2.5); others (test fakes) take the public one. */
static const char *audience_of(const char *endpoint)
{
    if (strstr(endpoint, "usgovcloudapi.net"))
        return "https://management.core.usgovcloudapi.net";
    if (strstr(endpoint, "chinacloudapi.cn"))
        return "https://management.core.chinacloudapi.cn";
    return "https://management.core.windows.net/";
}

static void provider_free(struct provider *p)
{
    while (!LIST_EMPTY(&p->ops))
        op_free(LIST_FIRST(&p->ops));
    while (!LIST_EMPTY(&p->dels))
        del_free(LIST_FIRST(&p->dels));
    while (!LIST_EMPTY(&p->lists))
        list_free(LIST_FIRST(&p->lists));
    while (!LIST_EMPTY(&p->calls))
        arm_cancel(LIST_FIRST(&p->calls));
    az_auth_free(p->auth);
    http_free(p->http);
    instance_list_free(p->allow, p->n_allow);
    azjson_tags_free(p->tags, p->n_tags);
    free(p->ssh_key);
    free(p);
}

/* One ed25519 public key per daemon start: Azure requires a key, the pod VM never uses it
 * and the private half is discarded at once (DECISIONS 17). */
static char *ssh_key_generate(void)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    uint8_t pub[32], blob[64];
    size_t plen = sizeof(pub);
    char *out = NULL;
    if (c && EVP_PKEY_keygen_init(c) > 0 && EVP_PKEY_keygen(c, &k) > 0 &&
        EVP_PKEY_get_raw_public_key(k, pub, &plen) > 0 && plen == 32) {
        static const char type[] = "ssh-ed25519";
        size_t n = 0;
        blob[n++] = 0, blob[n++] = 0, blob[n++] = 0, blob[n++] = 11;
        memcpy(blob + n, type, 11);
        n += 11;
        blob[n++] = 0, blob[n++] = 0, blob[n++] = 0, blob[n++] = 32;
        memcpy(blob + n, pub, 32);
        n += 32;
        char *b = b64(blob, n);
        if (b && (out = malloc(strlen(b) + 16)))
            sprintf(out, "ssh-ed25519 %s\n", b);
        free(b);
    }
    EVP_PKEY_free(k);
    EVP_PKEY_CTX_free(c);
    return out;
}

static char *file_read_small(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *b = NULL;
    if (fd >= 0 && (b = malloc(16385))) {
        ssize_t n = read(fd, b, 16384);
        if (n > 0) {
            b[n] = '\0';
            close(fd);
            return b;
        }
    }
    snprintf(err, errlen, "reading ssh public key file %s: %s", path, fd < 0 ? strerror(errno) : "empty");
    if (fd >= 0)
        close(fd);
    free(b);
    return NULL;
}

struct startup {
    bool done;
    struct provider *p;
    struct provider_error *err;
    const char *const *wanted;
    size_t n_wanted;
};

static void sizes_listed(void *arg, const struct http_response *r)
{
    struct startup *s = arg;
    s->done = true;
    if (r->status != 200) {
        arm_error(r, "listing VM sizes (AZURE_SUBSCRIPTION_ID, AZURE_REGION)", s->err);
        return;
    }
    int n = azjson_vm_sizes(r->body, r->body_len, s->wanted, s->n_wanted, s->p->sizes, SIZES_MAX);
    if (n < 0) {
        s->err->code = TTRPC_UNKNOWN;
        snprintf(s->err->msg, sizeof(s->err->msg), "listing VM sizes: the reply is not a vmSizes listing");
        return;
    }
    s->p->n_sizes = (size_t)n;
    instance_types_sort(s->p->sizes, s->p->n_sizes);
    char line[1024];
    size_t off = 0;
    for (size_t i = 0; i < s->p->n_sizes && off < sizeof(line) - 80; i++)
        off += (size_t)snprintf(line + off, sizeof(line) - off, "%s{%s %u vCPU %u MiB}", i ? " " : "",
                                s->p->sizes[i].name, s->p->sizes[i].vcpus, s->p->sizes[i].memory_mib);
    line[off] = '\0';
    log_info("azure", "instanceSizeSpecList ([%s])", line);
}

/* ------------------------------------------------------------------ -cloud-config-verify */

struct check {
    bool done;
    const char *what;
    struct provider_error *err;
};

static void check_got(void *arg, const struct http_response *r)
{
    struct check *c = arg;
    c->done = true;
    if (r->status != 200)
        arm_error(r, c->what, c->err);
}

/* One GET at start-up, the loop run until it answers; 0 when it is there. */
static int check_get(struct provider *p, const char *url, const char *what, struct provider_error *err)
{
    struct check c = {.what = what, .err = err};
    err->msg[0] = '\0';
    if (!arm_start(p, "GET", url, NULL, uv_now(p->loop) + 60000, check_got, &c)) {
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        return -1;
    }
    while (!c.done)
        uv_run(p->loop, UV_RUN_ONCE);
    return err->msg[0] ? -1 : 0;
}

/* The lookup URL of an image id in any of its forms (spec 7), or -1 if it has none. */
static int image_url(const struct provider *p, const char *id, char *out, size_t n)
{
    static const char cg[] = "/CommunityGalleries/";
    if (!strncmp(id, cg, sizeof(cg) - 1)) {
        char g[128], i[128], v[64] = "";
        if (sscanf(id + sizeof(cg) - 1, "%127[^/]/%*1[Ii]mages/%127[^/]/%*1[Vv]ersions/%63[^/]", g, i, v) < 2)
            return -1;
        if (*v && strcmp(v, "latest"))
            snprintf(out, n, "%s/subscriptions/%s/providers/Microsoft.Compute/locations/%s/communityGalleries/%s/images/%s/versions/%s?api-version=" AZ_API_GALLERY,
                     p->base, p->o->subscription, p->o->region, g, i, v);
        else
            snprintf(out, n, "%s/subscriptions/%s/providers/Microsoft.Compute/locations/%s/communityGalleries/%s/images/%s?api-version=" AZ_API_GALLERY,
                     p->base, p->o->subscription, p->o->region, g, i);
        return 0;
    }
    if (*id != '/' || strchr(id, '?') || strchr(id, '#'))
        return -1;
    snprintf(out, n, "%s%s?api-version=%s", p->base, id, strcasestr(id, "/galleries/") ? AZ_API_GALLERY : AZ_API_COMPUTE);
    return 0;
}

/* authorized_keys form: "<type> <base64> [comment]" with a known key type. */
static bool ssh_key_valid(const char *k)
{
    static const char *const types[] = {"ssh-ed25519 ", "ssh-rsa ", "ecdsa-sha2-nistp256 ", "ecdsa-sha2-nistp384 ",
                                        "ecdsa-sha2-nistp521 ", "sk-ssh-ed25519@openssh.com ",
                                        "sk-ecdsa-sha2-nistp256@openssh.com "};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        size_t tl = strlen(types[i]);
        if (strncmp(k, types[i], tl))
            continue;
        size_t bl = strspn(k + tl, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=");
        return bl >= 16 && (k[tl + bl] == '\0' || k[tl + bl] == ' ' || k[tl + bl] == '\n');
    }
    return false;
}

/* -cloud-config-verify: everything a create needs, checked once so a wrong setting stops the
 * daemon with its name instead of failing every pod. Credentials were proven by the sizes
 * listing. */
static int config_check(struct provider *p, struct provider_error *err)
{
    const struct az_options *o = p->o;
    char url[2048], what[256];
    err->code = TTRPC_INVALID_ARGUMENT;
    if (!*o->image) {
        snprintf(err->msg, sizeof(err->msg), "cloud config check: AZURE_IMAGE_ID (-imageid) is empty");
        return -1;
    }
    if (*o->ssh_key_path) {
        struct stat st;
        if (stat(o->ssh_key_path, &st)) {
            snprintf(err->msg, sizeof(err->msg), "cloud config check: -ssh-key-path %s: %s", o->ssh_key_path,
                     strerror(errno));
            return -1;
        }
        if ((st.st_mode & 0777) != 0600) {
            snprintf(err->msg, sizeof(err->msg), "cloud config check: -ssh-key-path %s has mode %03o, want 600",
                     o->ssh_key_path, (unsigned)(st.st_mode & 0777));
            return -1;
        }
        if (!ssh_key_valid(p->ssh_key)) {
            snprintf(err->msg, sizeof(err->msg), "cloud config check: SSH key is invalid: %s is not an "
                     "authorized_keys public key", o->ssh_key_path);
            return -1;
        }
    }
    snprintf(url, sizeof(url), "%s/subscriptions/%s/resourcegroups/%s?api-version=" AZ_API_RESOURCES, p->base,
             o->subscription, o->rg);
    snprintf(what, sizeof(what), "cloud config check: resource group %s (AZURE_RESOURCE_GROUP)", o->rg);
    if (check_get(p, url, what, err))
        return -1;
    if (*o->subnet != '/') {
        snprintf(err->msg, sizeof(err->msg), "cloud config check: AZURE_SUBNET_ID is not an ARM resource id");
        return -1;
    }
    snprintf(url, sizeof(url), "%s%s?api-version=" AZ_API_NETWORK, p->base, o->subnet);
    if (check_get(p, url, "cloud config check: subnet AZURE_SUBNET_ID", err))
        return -1;
    if (*o->nsg) {
        snprintf(url, sizeof(url), "%s%s?api-version=" AZ_API_NETWORK, p->base, o->nsg);
        if (*o->nsg != '/' || check_get(p, url, "cloud config check: network security group AZURE_NSG_ID", err)) {
            if (*o->nsg != '/')
                snprintf(err->msg, sizeof(err->msg), "cloud config check: AZURE_NSG_ID is not an ARM resource id");
            return -1;
        }
    }
    if (image_url(p, o->image, url, sizeof(url))) {
        snprintf(err->msg, sizeof(err->msg), "cloud config check: AZURE_IMAGE_ID %s is not an image id "
                 "(/CommunityGalleries/..., or an ARM id of an image or gallery image)", o->image);
        return -1;
    }
    snprintf(what, sizeof(what), "cloud config check: image %s (AZURE_IMAGE_ID)", o->image);
    if (check_get(p, url, what, err))
        return -1;
    log_info("azure", "cloud config check passed: resource group, subnet%s and image exist", *o->nsg ? ", NSG" : "");
    return 0;
}

static int az_init(uv_loop_t *loop, struct turn *turn, const struct config *cfg, void *opts, struct provider **out,
                   struct provider_error *err)
{
    struct az_options *o = opts;
    err->code = TTRPC_INVALID_ARGUMENT;
    const char *missing = !*o->subscription ? "AZURE_SUBSCRIPTION_ID (-subscriptionid)"
                          : !*o->region     ? "AZURE_REGION (-region)"
                          : !*o->rg         ? "AZURE_RESOURCE_GROUP (-resourcegroup)"
                          : !*o->subnet     ? "AZURE_SUBNET_ID (-subnetid)"
                                            : NULL;
    if (missing) {
        snprintf(err->msg, sizeof(err->msg), "%s is not set", missing);
        return -1;
    }
    if (o->root_gb < 0)
        o->root_gb = 0;
    if (o->request_timeout_ns < 1000000) {
        snprintf(err->msg, sizeof(err->msg), "AZURE_REQUEST_TIMEOUT (-request-timeout) must be at least 1ms, e.g. 60s");
        return -1;
    }
    struct provider *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        return -1;
    }
    p->loop = loop;
    p->o = o;
    p->seed = (uint32_t)uv_hrtime() | 1u;
    snprintf(p->base, sizeof(p->base), "%s", o->arm_endpoint);
    size_t bl = strlen(p->base);
    while (bl && p->base[bl - 1] == '/')
        p->base[--bl] = '\0';
    if (strncmp(p->base, "https://", 8)) {
        snprintf(err->msg, sizeof(err->msg), "AZURE_ARM_ENDPOINT (-arm-endpoint) must be an https:// URL");
        goto fail;
    }
    snprintf(p->scope_rg, sizeof(p->scope_rg), "/subscriptions/%s/resourceGroups/%s", o->subscription, o->rg);
    if (cfg->node_name && *cfg->node_name)
        snprintf(p->node, sizeof(p->node), "%s", cfg->node_name);
    else if (gethostname(p->node, sizeof(p->node) - 1))
        snprintf(p->node, sizeof(p->node), "localhost");
    char e2[512];
    const char *env_tags = getenv("TAGS");
    bool strict = !env_tags || strcmp(env_tags, o->tags) != 0; /* the flag: strict; the env var: lenient */
    if (azjson_tags_parse(o->tags, strict, &p->tags, &p->n_tags, e2, sizeof(e2))) {
        snprintf(err->msg, sizeof(err->msg), "%s", e2);
        goto fail;
    }
    if (instance_list_parse(o->sizes, &p->allow, &p->n_allow)) {
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        goto fail;
    }
    p->ssh_key = *o->ssh_key_path ? file_read_small(o->ssh_key_path, e2, sizeof(e2)) : ssh_key_generate();
    if (!p->ssh_key) {
        snprintf(err->msg, sizeof(err->msg), "%s", *o->ssh_key_path ? e2 : "generating the SSH public key failed");
        goto fail;
    }
    struct http_config hc = {.ca_file = o->ca_bundle, .max_active = 16, .turn = turn};
    if (!(p->http = http_new(loop, &hc, e2, sizeof(e2)))) {
        snprintf(err->msg, sizeof(err->msg), "%s", e2);
        goto fail;
    }
    struct az_auth_config ac = {
        .authority_host = o->authority, .tenant_id = o->tenant, .client_id = o->client_id,
        .client_secret = o->secret, .token_file = o->token_file, .audience = audience_of(p->base),
        .imds_url = o->imds,
    };
    if (!(p->auth = az_auth_new(loop, p->http, &ac, e2, sizeof(e2)))) {
        snprintf(err->msg, sizeof(err->msg), "creating azure client: %s", e2);
        goto fail;
    }
    log_info("azure", "azure config: subscription %s, region %s, resource group %s, size %s, CVM %s, auth %s",
             o->subscription, o->region, o->rg, o->size, o->disable_cvm ? "off" : "on",
             az_auth_flow_name(az_auth_flow_of(p->auth)));
    /* Start-up: one vmSizes listing (the first token use, so bad credentials stop us here). */
    const char *one[] = {o->size};
    struct startup s = {.p = p, .err = err};
    s.wanted = p->n_allow ? (const char *const *)p->allow : one;
    s.n_wanted = p->n_allow ? p->n_allow : 1;
    char url[1024];
    snprintf(url, sizeof(url), "%s/subscriptions/%s/providers/Microsoft.Compute/locations/%s/vmSizes?api-version=" AZ_API_COMPUTE,
             p->base, o->subscription, o->region);
    err->msg[0] = '\0';
    if (!arm_start(p, "GET", url, NULL, uv_now(loop) + 120000, sizes_listed, &s)) {
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        goto fail;
    }
    while (!s.done)
        uv_run(loop, UV_RUN_ONCE);
    if (err->msg[0])
        goto fail;
    if (!p->n_sizes)
        log_warn("azure", "none of the wanted sizes (AZURE_INSTANCE_SIZE(S)) is offered in %s; pods that ask for "
                          "vCPUs and memory will fail", o->region);
    if (cfg->cloud_config_verify && config_check(p, err))
        goto fail;
    *out = p;
    return 0;
fail:
    provider_free(p);
    /* The handles closed above finish closing here, before the daemon goes on. */
    uv_run(loop, UV_RUN_NOWAIT);
    return -1;
}

static void az_shutdown(struct provider *p)
{
    provider_free(p);
}

static size_t az_userdata_limit(const struct provider *p)
{
    (void)p;
    return AZ_USERDATA_B64_MAX;
}

static void az_api_counts(const struct provider *p, uint64_t calls[METRICS_CLASSES], uint64_t *retries)
{
    memcpy(calls, p->api_calls, sizeof(p->api_calls));
    *retries = p->api_retries;
}

static const char *az_unreachable(const struct provider *p)
{
    return p->unreachable[0] ? p->unreachable : NULL;
}

const struct provider_ops azure_provider_ops = {
    .name = "azure",
    .attaches_volumes = true,
    .options_new = az_options_new,
    .options_free = az_options_free,
    .init = az_init,
    .create = az_create,
    .cancel = az_cancel,
    .destroy = az_destroy,
    .list = az_list,
    .shutdown = az_shutdown,
    .userdata_limit = az_userdata_limit,
    .api_counts = az_api_counts,
    .unreachable = az_unreachable,
};
