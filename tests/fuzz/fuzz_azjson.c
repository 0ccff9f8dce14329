/* libFuzzer target: every reader of Azure replies (ARM errors, operation status, vmSizes,
 * VM, NIC, public IP, disk, token, VM listing), Retry-After and disk ids, over untrusted bytes. Invariants:
 * no crash, NUL-terminated bounded outputs, counts within their caps. */
#include <string.h>

#include "azure/azjson.h"
#include "http.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *b = (const char *)data;
    char code[64], msg[128];
    if (azjson_error(b, size, code, sizeof(code), msg, sizeof(msg)) == 0)
        CHECK(strlen(code) < sizeof(code) && strlen(msg) < sizeof(msg));
    CHECK(azjson_state(b, size) <= AZ_STATE_NONE);
    const char *want[] = {"Standard_DC2as_v5", "Standard_DC4as_v5"};
    struct instance_type t[4];
    CHECK(azjson_vm_sizes(b, size, want, 2, t, 4) <= 4);
    char nics[2][AZ_NAME_MAX];
    int n = azjson_vm_nics(b, size, nics, 2);
    CHECK(n <= 2);
    for (int i = 0; i < n; i++)
        CHECK(strlen(nics[i]) < AZ_NAME_MAX);
    struct az_ipconfig c[3];
    CHECK(azjson_nic_ipconfigs(b, size, c, 3) <= 3);
    char ip[46], id[128];
    if (azjson_public_ip(b, size, ip, sizeof(ip)) == 0)
        CHECK(strlen(ip) < sizeof(ip));
    if (azjson_id(b, size, id, sizeof(id)) == 0)
        CHECK(strlen(id) < sizeof(id));
    int64_t exp;
    char *tok = azjson_token(b, size, &exp);
    if (tok)
        CHECK(exp > 0 && *tok);
    azjson_secret_free(tok);
    struct az_disk dk;
    if (azjson_disk(b, size, &dk) == 0)
        CHECK(strlen(dk.state) < sizeof(dk.state) && strlen(dk.managed_by) < sizeof(dk.managed_by) &&
              strlen(dk.location) < sizeof(dk.location));
    struct az_vm_entry v[2];
    char *next = NULL;
    azjson_vm_list(b, size, v, 2, &next);
    free(next);
    /* The same bytes as a Retry-After value. */
    char value[HTTP_HEADER_VALUE_MAX];
    size_t k = size < sizeof(value) - 1 ? size : sizeof(value) - 1;
    memcpy(value, data, k);
    value[k] = '\0';
    struct http_header h = {"retry-after", value};
    struct http_response r = {.status = 429, .headers = &h, .n_headers = 1};
    CHECK(http_retry_after_ms(&r, 1700000000) >= -1);
    /* ... and as a disk id (from a CSI driver's mountInfo.json). */
    char rg[16], dn[16];
    if (azjson_disk_id_split(value, rg, sizeof(rg), dn, sizeof(dn)) == 0)
        CHECK(*rg && *dn && strlen(rg) < sizeof(rg) && strlen(dn) < sizeof(dn) && !strchr(rg, '/'));
    return 0;
}
