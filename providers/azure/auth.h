/* auth: bearer tokens for ARM (spec providers-azure.md 2, DECISIONS 18). Three flows: a
 * client secret; workload identity (the federated token file is the client assertion,
 * re-read at every refresh, so kubelet's rotation is picked up); managed identity through
 * IMDS when neither a secret nor a token file is configured.
 *
 * The token is cached and refreshed when less than 5 minutes of its life remain (at half its
 * life for tokens of 2 hours or more, and for those of 5 minutes or less); callers asking meanwhile share one refresh. A failed refresh
 * while the old token is valid keeps using it. Tokens, secrets and assertions are wiped
 * when freed and never logged.
 *
 * struct az_auth borrows the struct http given at creation (it must outlive it) and copies
 * its configuration. A waiter's callback runs exactly once (possibly before az_auth_get
 * returns, when the cached token is fresh) unless az_auth_forget or az_auth_free comes first. */
#ifndef AZURE_AUTH_H
#define AZURE_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http.h"

#define AZ_AUTHORITY_DEFAULT "https://login.microsoftonline.com/"
#define AZ_IMDS_DEFAULT "http://169.254.169.254"

enum az_auth_flow { AZ_AUTH_SECRET, AZ_AUTH_WORKLOAD, AZ_AUTH_MANAGED };

struct az_auth_config {
    const char *authority_host; /* https://...; "" = AZ_AUTHORITY_DEFAULT */
    const char *tenant_id, *client_id, *client_secret;
    const char *token_file; /* AZURE_FEDERATED_TOKEN_FILE */
    const char *audience;   /* ARM audience; scope = audience + "/.default" */
    const char *imds_url;   /* "" = AZ_IMDS_DEFAULT */
    bool allow_http;        /* test builds: plain-http authority */
};

struct az_auth;

/* Picks the flow; -1 with err when the configuration cannot work (names the setting). */
struct az_auth *az_auth_new(uv_loop_t *loop, struct http *http, const struct az_auth_config *cfg, char *err,
                            size_t errlen);
void az_auth_free(struct az_auth *a);
enum az_auth_flow az_auth_flow_of(const struct az_auth *a);
const char *az_auth_flow_name(enum az_auth_flow f);

/* token is borrowed for the callback; on failure token is NULL and err says why. */
typedef void (*az_token_cb)(void *arg, const char *token, const char *err);
/* -1 (no callback) only when out of memory. */
int az_auth_get(struct az_auth *a, az_token_cb cb, void *arg);
/* Drops every waiting callback with this arg. */
void az_auth_forget(struct az_auth *a, void *arg);
/* Drops the cached token (ARM answered 401): the next az_auth_get fetches a new one. */
void az_auth_invalidate(struct az_auth *a);

/* The refresh point of a token valid for expires_in seconds, relative to when it came. Pure. */
int64_t az_auth_refresh_after_s(int64_t expires_in);

/* application/x-www-form-urlencoded escaping (spaces as +). Pure; malloc'd. */
char *az_form_escape(const char *s);

#endif
