/* Unit tests for the pure parts of providers/azure: the VM PUT body (golden, part A.3),
 * TAGS parsing, the readers of ARM/Entra/IMDS replies, Retry-After, the retry policy and the
 * token refresh point, form escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "azure/auth.h"
#include "azure/azjson.h"
#include "azure/azreq.h"
#include "azure/http.h"
#include "provider.h"

const struct provider_ops *const provider_table[] = {NULL};

#define SUB "/subscriptions/S/resourceGroups/R/providers/Microsoft.Network/virtualNetworks/V/subnets/N"
#define IMG "/subscriptions/S/resourceGroups/R/providers/Microsoft.Compute/galleries/G/images/I/versions/0.1.0"

static void test_vm_body_default(void **state)
{
    (void)state;
    struct az_vm_spec s = {
        .location = "eastus", .name = "podvm-nginx-3f2a9c1e", .vm_size = "Standard_DC2as_v5", .image_id = IMG,
        .subnet_id = SUB, .admin_user = "peerpod", .ssh_public_key = "ssh-rsa AAAAB3Nza\n",
        .userdata_b64 = "I2Nsb3VkLWNvbmZpZwoK", .cvm = true,
    };
    char *b = azjson_vm_body(&s);
    assert_non_null(b);
    /* The Go SDK's bytes for the default case (spec providers-azure.md 3.3). */
    static const char want[] =
        "{\"location\":\"eastus\",\"properties\":{\"diagnosticsProfile\":{\"bootDiagnostics\":{\"enabled\":true}},"
        "\"hardwareProfile\":{\"vmSize\":\"Standard_DC2as_v5\"},\"networkProfile\":{\"networkApiVersion\":"
        "\"2020-11-01\",\"networkInterfaceConfigurations\":[{\"name\":\"podvm-nginx-3f2a9c1e-net\",\"properties\":"
        "{\"deleteOption\":\"Delete\",\"ipConfigurations\":[{\"name\":\"ip-config\",\"properties\":{\"subnet\":"
        "{\"id\":\"" SUB "\"}}}]}}]},\"osProfile\":{\"adminUsername\":\"peerpod\",\"computerName\":"
        "\"podvm-nginx-3f2a9c1e\",\"linuxConfiguration\":{\"disablePasswordAuthentication\":true,\"ssh\":"
        "{\"publicKeys\":[{\"keyData\":\"ssh-rsa AAAAB3Nza\\n\",\"path\":\"/home/peerpod/.ssh/authorized_keys\"}]}}},"
        "\"securityProfile\":{\"securityType\":\"ConfidentialVM\",\"uefiSettings\":{\"secureBootEnabled\":false,"
        "\"vTpmEnabled\":true}},\"storageProfile\":{\"imageReference\":{\"id\":\"" IMG "\"},\"osDisk\":"
        "{\"caching\":\"ReadWrite\",\"createOption\":\"FromImage\",\"deleteOption\":\"Delete\",\"managedDisk\":"
        "{\"securityProfile\":{\"securityEncryptionType\":\"VMGuestStateOnly\"},\"storageAccountType\":"
        "\"Premium_LRS\"},\"name\":\"podvm-nginx-3f2a9c1e-disk\"}},\"userData\":\"I2Nsb3VkLWNvbmZpZwoK\"},"
        "\"tags\":{}}";
    assert_string_equal(b, want);
    free(b);
}

static void test_vm_body_variants(void **state)
{
    (void)state;
    struct az_tag tags[] = {{"a", "1"}, {AZ_TAG_NODE, "node-1"}};
    struct az_vm_spec s = {
        .location = "eastus", .name = "p", .vm_size = "Standard_D2as_v5",
        .image_id = "/CommunityGalleries/cc/Images/podvm/Versions/latest", .subnet_id = SUB,
        .nsg_id = "/subscriptions/S/providers/Microsoft.Network/networkSecurityGroups/nsg", .admin_user = "u",
        .ssh_public_key = "k", .userdata_b64 = "", .tags = tags, .n_tags = 2, .cvm = false, .public_ip = true,
        .root_volume_gb = 30, .zone = "2",
    };
    char *b = azjson_vm_body(&s);
    assert_non_null(b);
    assert_non_null(strstr(b, "\"imageReference\":{\"communityGalleryImageId\":\"/CommunityGalleries/cc/"));
    assert_null(strstr(b, "securityProfile"));      /* DISABLECVM: no CVM settings anywhere */
    assert_null(strstr(b, "VMGuestStateOnly"));
    assert_non_null(strstr(b, "\"diskSizeGB\":30"));
    assert_non_null(strstr(b, "\"networkSecurityGroup\":{\"id\":\"/subscriptions/S/providers/"));
    assert_non_null(strstr(b, "\"publicIPAddressConfiguration\":{\"name\":\"p-net\",\"properties\":"
                              "{\"deleteOption\":\"Delete\"}}"));
    assert_non_null(strstr(b, "\"tags\":{\"a\":\"1\",\"peerpods-node\":\"node-1\"}"));
    assert_non_null(strstr(b, "\"zones\":[\"2\"]"));
    free(b);
    s.cvm = true;
    s.secure_boot = true;
    s.zone = "";
    b = azjson_vm_body(&s);
    assert_non_null(strstr(b, "\"secureBootEnabled\":true"));
    assert_null(strstr(b, "zones"));
    free(b);
}

static void test_tags(void **state)
{
    (void)state;
    struct az_tag *t;
    size_t n;
    char err[128];
    assert_int_equal(azjson_tags_parse("a=1, b = 2", true, &t, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(t[1].key, "b");
    assert_string_equal(t[1].value, "2");
    azjson_tags_free(t, n);
    assert_int_equal(azjson_tags_parse("a=1,bad,c=3", false, &t, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1); /* env: kept up to the bad piece, as the Go daemon */
    azjson_tags_free(t, n);
    assert_int_equal(azjson_tags_parse("a=1,bad,c=3", true, &t, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "invalid key-value pair: bad"));
    assert_int_equal(azjson_tags_parse("a=1,a=2,=x,k=v=w", true, &t, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    assert_string_equal(t[0].value, "2");
    assert_string_equal(t[1].key, "");
    assert_string_equal(t[2].value, "v=w");
    azjson_tags_free(t, n);
    assert_int_equal(azjson_tags_parse("", true, &t, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
}

static void test_readers(void **state)
{
    (void)state;
    char code[64], msg[128];
    const char *e = "{\"error\":{\"code\":\"SkuNotAvailable\",\"message\":\"not here\"}}";
    assert_int_equal(azjson_error(e, strlen(e), code, sizeof(code), msg, sizeof(msg)), 0);
    assert_string_equal(code, "SkuNotAvailable");
    assert_string_equal(msg, "not here");
    e = "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: bad secret\"}";
    assert_int_equal(azjson_error(e, strlen(e), code, sizeof(code), msg, sizeof(msg)), 0);
    assert_string_equal(code, "invalid_client");
    assert_int_equal(azjson_error("nope", 4, code, sizeof(code), msg, sizeof(msg)), -1);

    assert_int_equal(azjson_state("{\"status\":\"InProgress\"}", 23), AZ_STATE_IN_PROGRESS);
    assert_int_equal(azjson_state("{\"status\":\"succeeded\"}", 22), AZ_STATE_SUCCEEDED);
    const char *vm = "{\"id\":\"/x/vm\",\"properties\":{\"provisioningState\":\"Failed\",\"networkProfile\":"
                     "{\"networkInterfaces\":[{\"id\":\"/s/r/providers/Microsoft.Network/networkInterfaces/vm-net\"},"
                     "{\"nope\":1}]}}}";
    assert_int_equal(azjson_state(vm, strlen(vm)), AZ_STATE_FAILED);
    assert_int_equal(azjson_state("{}", 2), AZ_STATE_NONE);
    char nics[2][AZ_NAME_MAX], id[64];
    assert_int_equal(azjson_vm_nics(vm, strlen(vm), nics, 2), 1);
    assert_string_equal(nics[0], "vm-net");
    assert_int_equal(azjson_id(vm, strlen(vm), id, sizeof(id)), 0);
    assert_string_equal(id, "/x/vm");

    const char *nic = "{\"properties\":{\"ipConfigurations\":[{\"name\":\"ip-config\",\"properties\":"
                      "{\"privateIPAddress\":\"10.0.0.5\",\"publicIPAddress\":{\"id\":\"/a/publicIPAddresses/p-net\"}}}]}}";
    struct az_ipconfig c[2];
    assert_int_equal(azjson_nic_ipconfigs(nic, strlen(nic), c, 2), 1);
    assert_string_equal(c[0].private_ip, "10.0.0.5");
    assert_string_equal(c[0].public_ip_name, "p-net");
    char ip[46];
    const char *pip = "{\"properties\":{\"ipAddress\":\"20.1.2.3\"}}";
    assert_int_equal(azjson_public_ip(pip, strlen(pip), ip, sizeof(ip)), 0);
    assert_string_equal(ip, "20.1.2.3");

    const char *sizes = "{\"value\":[{\"name\":\"Standard_DC4as_v5\",\"numberOfCores\":4,\"memoryInMB\":16384},"
                        "{\"name\":\"Other\",\"numberOfCores\":1,\"memoryInMB\":1},"
                        "{\"name\":\"Standard_DC2as_v5\",\"numberOfCores\":2,\"memoryInMB\":8192}]}";
    const char *want[] = {"Standard_DC2as_v5", "Standard_DC4as_v5"};
    struct instance_type t[4];
    assert_int_equal(azjson_vm_sizes(sizes, strlen(sizes), want, 2, t, 4), 2);
    assert_string_equal(t[0].name, "Standard_DC4as_v5");
    assert_int_equal(t[1].memory_mib, 8192);

    int64_t exp;
    const char *tok = "{\"token_type\":\"Bearer\",\"expires_in\":\"3599\",\"access_token\":\"tok1\"}";
    char *tk = azjson_token(tok, strlen(tok), &exp);
    assert_string_equal(tk, "tok1");
    assert_int_equal(exp, 3599);
    azjson_secret_free(tk);
    assert_null(azjson_token("{\"access_token\":\"x\"}", 20, &exp));

    const char *list = "{\"value\":[{\"name\":\"a\",\"id\":\"/x/a\",\"tags\":{\"peerpods-created-by\":"
                       "\"cloud-api-adaptor\",\"peerpods-node\":\"n1\",\"peerpods-sandbox-id\":\"s1\","
                       "\"peerpods-created\":\"1700000000\"}},{\"name\":\"b\",\"id\":\"/x/b\"}],"
                       "\"nextLink\":\"https://m/next\"}";
    struct az_vm_entry v[4];
    char *next;
    assert_int_equal(azjson_vm_list(list, strlen(list), v, 4, &next), 2);
    assert_true(v[0].ours);
    assert_string_equal(v[0].node, "n1");
    assert_int_equal(v[0].created_unix, 1700000000);
    assert_false(v[1].ours);
    assert_string_equal(next, "https://m/next");
    free(next);
}

static void test_retry_policy(void **state)
{
    (void)state;
    struct http_header h[2] = {{"retry-after", "2"}, {"x", "y"}};
    struct http_response r = {.status = 429, .headers = h, .n_headers = 2};
    assert_int_equal(http_retry_after_ms(&r, 0), 2000);
    snprintf(h[0].name, sizeof(h[0].name), "retry-after-ms");
    snprintf(h[0].value, sizeof(h[0].value), "150");
    assert_int_equal(http_retry_after_ms(&r, 0), 150);
    snprintf(h[0].name, sizeof(h[0].name), "retry-after");
    snprintf(h[0].value, sizeof(h[0].value), "Wed, 21 Oct 2015 07:28:10 GMT");
    assert_int_equal(http_retry_after_ms(&r, 1445412480), 10000);
    snprintf(h[0].value, sizeof(h[0].value), "Fri, 31 Dec 9999 23:59:59 GMT"); /* found by fuzz_azjson */
    assert_true(http_retry_after_ms(&r, 0) > 0);
    snprintf(h[0].value, sizeof(h[0].value), "soon");
    assert_int_equal(http_retry_after_ms(&r, 0), -1);
    r.n_headers = 0;
    assert_int_equal(http_retry_after_ms(&r, 0), -1);

    long yes[] = {0, 408, 429, 500, 502, 503, 504}, no[] = {200, 201, 400, 401, 403, 404, 409, 501};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        r.status = yes[i];
        assert_true(azreq_retriable(&r));
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        r.status = no[i];
        assert_false(azreq_retriable(&r));
    }
    assert_int_equal(azreq_backoff_ms(1, 0.0), 640);   /* 0.8 s x 0.8 */
    assert_int_equal(azreq_backoff_ms(2, 0.5), 2520);  /* 3 x 0.8 s x 1.05 */
    assert_int_equal(azreq_backoff_ms(3, 0.999), 7277); /* 7 x 0.8 s x ~1.3 */
    assert_int_equal(azreq_backoff_ms(10, 0.5), AZREQ_MAX_DELAY_MS);

    assert_int_equal(az_auth_refresh_after_s(3599), 3299);
    assert_int_equal(az_auth_refresh_after_s(301), 1);
    assert_int_equal(az_auth_refresh_after_s(120), 60);
    assert_int_equal(az_auth_refresh_after_s(0), 0);
    char *f = az_form_escape("https://management.core.windows.net//.default a&b=c~");
    assert_string_equal(f, "https%3A%2F%2Fmanagement.core.windows.net%2F%2F.default+a%26b%3Dc~");
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vm_body_default), cmocka_unit_test(test_vm_body_variants),
        cmocka_unit_test(test_tags),            cmocka_unit_test(test_readers),
        cmocka_unit_test(test_retry_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
