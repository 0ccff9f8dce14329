/* azjson: the Azure REST documents (spec providers-azure.md): the VM PUT body builder and
 * the readers of what ARM, Entra ID and IMDS answer — errors, operation status, VM sizes,
 * the VM's NICs, IP configurations, public IPs, tokens and VM listings — plus the TAGS
 * parser. Every reader takes untrusted bytes, bounds what it copies and never crashes on
 * any input (fuzzed by tests/fuzz/fuzz_azjson).
 *
 * Pure code, no I/O, no logging. Returned char * are malloc'd and owned by the caller
 * (tokens: wipe before free, azjson_secret_free). */
#ifndef AZURE_AZJSON_H
#define AZURE_AZJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../instance.h"

/* Ownership tags (DECISIONS 16) on every VM this daemon creates. */
#define AZ_TAG_CREATED_BY "peerpods-created-by"
#define AZ_TAG_CREATED_BY_VALUE "cloud-api-adaptor"
#define AZ_TAG_NODE "peerpods-node"
#define AZ_TAG_SANDBOX "peerpods-sandbox-id"
#define AZ_TAG_CREATED "peerpods-created"

#define AZ_TAGS_MAX 50
#define AZ_NAME_MAX 80

struct az_tag {
    char *key, *value; /* owned by the array from azjson_tags_parse, or borrowed in az_vm_spec */
};

/* TAGS: "k=v,k2=v2", keys and values trimmed, later duplicates win. strict (a flag): a piece
 * without '=' is an error; not strict (the env var, as the Go daemon): the pairs before it
 * are kept and the rest dropped. Returns 0 with *out and *n (freed by azjson_tags_free), or -1
 * with err. */
int azjson_tags_parse(const char *s, bool strict, struct az_tag **out, size_t *n, char *err, size_t errlen);
void azjson_tags_free(struct az_tag *v, size_t n);

struct az_vm_spec {
    const char *location, *name, *vm_size, *image_id, *subnet_id, *nsg_id, *admin_user, *ssh_public_key;
    const char *zone;         /* "" or NULL: no zones */
    const char *userdata_b64; /* standard padded base64 of the cloud-config */
    const struct az_tag *tags;
    size_t n_tags;
    bool cvm, secure_boot, public_ip;
    int64_t root_volume_gb; /* > 0: diskSizeGB */
    /* Managed disk ids attached as data disks, LUN = index (CSI cloud volumes, part A 3.7). */
    const char *const *data_disks;
    size_t n_data_disks;
};

/* The VM PUT body of part A.3: compact, keys sorted at every level, as the Go SDK writes it. */
char *azjson_vm_body(const struct az_vm_spec *s);

/* The resource group and name in a managed disk id (".../resourceGroups/<rg>/providers/
 * Microsoft.Compute/disks/<name>", matched anywhere in id, case-sensitive, as the Go
 * daemon's pattern). Returns 0, or -1 when id has no such part or a piece does not fit. */
int azjson_disk_id_split(const char *id, char *rg, size_t rglen, char *name, size_t namelen);

/* A managed disk GET: properties.diskState, managedBy, location, and whether zones is
 * non-empty ("" when absent). Returns 0, or -1 if the body is not an object. */
struct az_disk {
    char state[32], managed_by[512], location[64];
    bool zoned;
};
int azjson_disk(const char *body, size_t len, struct az_disk *out);

/* ARM error body {"error":{"code","message"}} (also Entra's {"error","error_description"}).
 * Fills code and message ("" when absent); returns 0 if either was found. */
int azjson_error(const char *body, size_t len, char *code, size_t codelen, char *msg, size_t msglen);

enum az_state { AZ_STATE_IN_PROGRESS, AZ_STATE_SUCCEEDED, AZ_STATE_FAILED, AZ_STATE_CANCELED, AZ_STATE_NONE };
/* "status" of an Azure-AsyncOperation reply, or properties.provisioningState of a resource;
 * AZ_STATE_NONE when neither is there. Case-insensitive; unknown values are in progress. */
enum az_state azjson_state(const char *body, size_t len);

/* The top-level "id" of a resource into out; -1 when absent or too long. */
int azjson_id(const char *body, size_t len, char *out, size_t outlen);

/* vmSizes listing: the entries whose name is in wanted[0..n_wanted) (exact), in API order.
 * Returns the count written to out (at most cap), -1 if the body is not a listing. */
int azjson_vm_sizes(const char *body, size_t len, const char *const *wanted, size_t n_wanted,
                    struct instance_type *out, size_t cap);

/* Last path segments of properties.networkProfile.networkInterfaces[].id (a VM GET), into
 * names; returns the count (at most cap), -1 if not a VM. */
int azjson_vm_nics(const char *body, size_t len, char names[][AZ_NAME_MAX], size_t cap);

struct az_ipconfig {
    char private_ip[46];              /* "" when absent */
    char public_ip_name[AZ_NAME_MAX]; /* last segment of publicIPAddress.id, "" when none */
};
/* properties.ipConfigurations[] of a NIC; returns the count (at most cap), -1 if not a NIC. */
int azjson_nic_ipconfigs(const char *body, size_t len, struct az_ipconfig *out, size_t cap);

/* properties.ipAddress of a public IP resource into out ("" when not yet assigned); -1 if not one. */
int azjson_public_ip(const char *body, size_t len, char *out, size_t outlen);

/* An OAuth token reply (Entra ID or IMDS): access_token and expires_in (number or numeric
 * string). Returns the token (malloc'd) or NULL. */
#define AZ_TOKEN_LIFE_MAX_S (366 * 24 * 3600) /* longer expires_in values are cut to this */
char *azjson_token(const char *body, size_t len, int64_t *expires_in);
void azjson_secret_free(char *s);

struct az_vm_entry {
    char name[AZ_NAME_MAX];
    char id[512];
    char node[256], sandbox[129];
    int64_t created_unix;
    bool ours; /* carries AZ_TAG_CREATED_BY with our value */
};
/* One page of a VM listing: entries into out (at most cap), *next the nextLink (malloc'd,
 * or NULL). Returns the count of entries in the page (may exceed cap), -1 if not a listing. */
int azjson_vm_list(const char *body, size_t len, struct az_vm_entry *out, size_t cap, char **next);

#endif
