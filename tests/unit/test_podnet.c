/* Unit tests for vxlan/podnet.c (Inspect's selection rules, route order, POD_SUBNET_CIDRS,
 * the apf.json pod-network it yields), vxlan/vni.c (allocation, wrap-around, reuse never
 * while in use, the 24-bit bound) and the pure part of vxlan/notrack.c (nft's JSON listing,
 * the VNI comment). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "notrack.h"
#include "podnet.h"
#include "provider.h"
#include "userdata.h"
#include "vni.h"

const struct provider_ops *const provider_table[] = {NULL};

static uint32_t ip4(const char *s)
{
    struct in_addr a;
    assert_int_equal(inet_pton(AF_INET, s, &a), 1);
    return a.s_addr;
}

static void test_route_filter(void **state)
{
    (void)state;
    assert_true(podnet_route_wanted(AF_INET, RTN_UNICAST, RT_TABLE_MAIN, RTPROT_KERNEL));
    assert_true(podnet_route_wanted(AF_INET, RTN_UNICAST, RT_TABLE_MAIN, RTPROT_BOOT));
    assert_true(podnet_route_wanted(AF_INET, RTN_UNICAST, RT_TABLE_MAIN, RTPROT_STATIC));
    assert_true(podnet_route_wanted(AF_INET, RTN_UNICAST, RT_TABLE_MAIN, RTPROT_DHCP));
    assert_false(podnet_route_wanted(AF_INET, RTN_UNICAST, RT_TABLE_MAIN, 186 /* bird */));
    assert_false(podnet_route_wanted(AF_INET, RTN_LOCAL, RT_TABLE_LOCAL, RTPROT_KERNEL));
    assert_false(podnet_route_wanted(AF_INET, RTN_UNICAST, 100, RTPROT_BOOT));
    assert_false(podnet_route_wanted(AF_INET6, RTN_UNICAST, RT_TABLE_MAIN, RTPROT_BOOT));
    assert_false(podnet_route_wanted(AF_INET, RTN_BLACKHOLE, RT_TABLE_MAIN, RTPROT_BOOT));
}

static void test_primary(void **state)
{
    (void)state;
    assert_true(podnet_primary_better("", "eth1"));
    assert_true(podnet_primary_better("eth1", "eth0"));
    assert_false(podnet_primary_better("eth0", "eth1"));
    assert_false(podnet_primary_better("eth0", "ens3"));  /* another prefix: the first stays */
    assert_false(podnet_primary_better("eth10", "eth10"));
    assert_true(podnet_primary_better("eth10", "eth9"));
    assert_false(podnet_primary_better("br-ex", "br-ex0")); /* no suffix: no comparison */
}

static void test_sort_and_subnets(void **state)
{
    (void)state;
    struct podnet pn = {0};
    snprintf(pn.ifname, sizeof(pn.ifname), "eth0");
    pn.gateway = ip4("10.244.1.1");
    struct podnet_route r[] = {
        {.dst = ip4("10.244.1.0"), .dst_len = 24, .table = 254, .protocol = RTPROT_KERNEL, .scope = 253},
        {.dst = 0, .dst_len = 0, .gw = ip4("10.244.1.1"), .table = 254, .protocol = RTPROT_BOOT, .metric = 5},
        {.dst = 0, .dst_len = 0, .gw = ip4("10.244.1.2"), .table = 254, .protocol = RTPROT_BOOT, .metric = 1},
        {.dst = ip4("9.0.0.0"), .dst_len = 8, .table = 254, .protocol = RTPROT_STATIC},
        {.dst = ip4("10.244.1.0"), .dst_len = 16, .table = 254, .protocol = RTPROT_STATIC},
    };
    memcpy(pn.routes, r, sizeof(r));
    pn.n_routes = 5;
    podnet_routes_sort(pn.routes, pn.n_routes);
    assert_int_equal(pn.routes[0].metric, 1);
    assert_int_equal(pn.routes[1].metric, 5);
    assert_int_equal(pn.routes[2].dst, ip4("9.0.0.0"));
    assert_int_equal(pn.routes[3].dst_len, 16);
    assert_int_equal(pn.routes[4].dst_len, 24);

    char err[256];
    assert_int_equal(podnet_subnets_add(&pn, " 10.96.0.0/12 ,, 172.30.0.0/16", err, sizeof(err)), 0);
    assert_int_equal(pn.n_routes, 7);
    assert_int_equal(pn.routes[5].dst, ip4("10.96.0.0"));
    assert_int_equal(pn.routes[5].dst_len, 12);
    assert_int_equal(pn.routes[5].gw, ip4("10.244.1.1"));
    assert_string_equal(pn.routes[6].dev, "eth0");
    assert_int_equal(podnet_subnets_add(&pn, "10.0.0.0/33", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "10.0.0.0/33"));
    assert_int_equal(podnet_subnets_add(&pn, "fd00::/8", err, sizeof(err)), -1);
    assert_int_equal(podnet_subnets_add(&pn, "10.0.0.0", err, sizeof(err)), -1);
    assert_int_equal(podnet_subnets_add(&pn, "", err, sizeof(err)), 0);
    assert_int_equal(podnet_subnets_add(&pn, NULL, err, sizeof(err)), 0);
    pn.n_routes = PODNET_ROUTES_MAX;
    assert_int_equal(podnet_subnets_add(&pn, "10.0.0.0/8", err, sizeof(err)), -1);
}

/* What Inspect yields becomes apf.json's pod-network byte for byte as the Go daemon writes it. */
static void test_to_userdata(void **state)
{
    (void)state;
    struct podnet pn = {0};
    snprintf(pn.ifname, sizeof(pn.ifname), "eth0");
    pn.pod_ip = ip4("10.244.2.5");
    pn.pod_prefix = 32;
    memcpy(pn.mac, "\x0a\x58\x0a\xf4\x02\x05", 6);
    pn.mtu = 1400;
    pn.worker_ip = ip4("10.224.0.5");
    pn.worker_prefix = 16;
    pn.routes[0] = (struct podnet_route){.dst = 0, .gw = ip4("169.254.1.1"), .protocol = RTPROT_BOOT};
    snprintf(pn.routes[0].dev, sizeof(pn.routes[0].dev), "eth0");
    pn.routes[1] = (struct podnet_route){.dst = ip4("169.254.1.1"), .dst_len = 32, .protocol = RTPROT_BOOT,
                                         .scope = 253};
    snprintf(pn.routes[1].dev, sizeof(pn.routes[1].dev), "eth0");
    pn.n_routes = 2;
    pn.neighbors[0] = (struct podnet_neighbor){.ip = ip4("169.254.1.1"), .state = 0x80};
    memcpy(pn.neighbors[0].mac, "\xee\xee\xee\xee\xee\xee", 6);
    snprintf(pn.neighbors[0].dev, sizeof(pn.neighbors[0].dev), "eth0");
    pn.n_neighbors = 1;
    struct podnet_text *txt = malloc(sizeof(*txt));
    assert_non_null(txt);
    struct userdata_pod_network net = {0};
    podnet_to_userdata(&pn, txt, &net);
    net.tunnel_type = "vxlan";
    net.vxlan_port = 9000;
    net.vxlan_id = 555003;
    net.index = 3;
    struct userdata_apf apf = {.pod_network = net, .pod_namespace = "default", .pod_name = "p"};
    char err[128];
    size_t len;
    char *j = userdata_apf_json_build(&apf, &len, err, sizeof(err));
    assert_non_null(j);
    static const char want[] =
        "{\n    \"pod-network\": {\n        \"podip\": \"10.244.2.5/32\",\n"
        "        \"pod-hw-addr\": \"0a:58:0a:f4:02:05\",\n        \"interface\": \"eth0\",\n"
        "        \"worker-node-ip\": \"10.224.0.5/16\",\n        \"tunnel-type\": \"vxlan\",\n"
        "        \"routes\": [\n            {\n                \"dst\": \"0.0.0.0/0\",\n"
        "                \"gw\": \"169.254.1.1\",\n                \"dev\": \"eth0\",\n"
        "                \"protocol\": \"boot\"\n            },\n            {\n"
        "                \"dst\": \"169.254.1.1/32\",\n                \"gw\": \"\",\n"
        "                \"dev\": \"eth0\",\n                \"protocol\": \"boot\",\n"
        "                \"scope\": \"link\"\n            }\n        ],\n"
        "        \"neighbors\": [\n            {\n                \"ip\": \"169.254.1.1\",\n"
        "                \"hw-addr\": \"ee:ee:ee:ee:ee:ee\",\n                \"dev\": \"eth0\",\n"
        "                \"state\": \"permanent\"\n            }\n        ],\n"
        "        \"mtu\": 1400,\n        \"index\": 3,\n        \"vxlan-port\": 9000,\n"
        "        \"vxlan-id\": 555003,\n        \"dedicated\": false,\n"
        "        \"external-net-via-pod-vm\": false\n    },\n"
        "    \"pod-namespace\": \"default\",\n    \"pod-name\": \"p\"\n}";
    assert_string_equal(j, want);
    userdata_text_free(j);
    free(txt);
}

static void test_vni(void **state)
{
    (void)state;
    struct vni_alloc a;
    assert_int_equal(vni_alloc_init(&a, 0, 10), -1);
    assert_int_equal(vni_alloc_init(&a, 10, 9), -1);
    assert_int_equal(vni_alloc_init(&a, 1, PODNET_VNI_MAX + 1), -1);
    assert_int_equal(vni_alloc_init(&a, 555000, PODNET_VNI_MAX), 0);
    uint32_t v;
    assert_int_equal(vni_alloc_take(&a, &v), 0);
    assert_int_equal(v, 555000);
    assert_int_equal(vni_alloc_take(&a, &v), 0);
    assert_int_equal(v, 555001);
    vni_alloc_release(&a, 555000);
    assert_int_equal(vni_alloc_take(&a, &v), 0);
    assert_int_equal(v, 555002); /* round-robin: a freed VNI is not reused at once */
    vni_alloc_free(&a);

    /* Start-up: marks in any order; the cursor resumes past the highest; holes are skipped. */
    assert_int_equal(vni_alloc_init(&a, 100, 105), 0);
    assert_int_equal(vni_alloc_mark(&a, 103), 0);
    assert_int_equal(vni_alloc_mark(&a, 101), 0);
    assert_int_equal(vni_alloc_mark(&a, 99), 0);  /* outside the range: ignored */
    assert_int_equal(vni_alloc_mark(&a, 106), 0); /* ditto */
    assert_true(vni_alloc_used(&a, 103));
    assert_false(vni_alloc_used(&a, 99));
    assert_int_equal(vni_alloc_take(&a, &v), 0);
    assert_int_equal(v, 104);
    assert_int_equal(vni_alloc_take(&a, &v), 0);
    assert_int_equal(v, 105);
    assert_int_equal(vni_alloc_take(&a, &v), 0); /* wraps, skips 101 and 103 */
    assert_int_equal(v, 100);
    assert_int_equal(vni_alloc_take(&a, &v), 0);
    assert_int_equal(v, 102);
    errno = 0;
    assert_int_equal(vni_alloc_take(&a, &v), -1); /* 100..105 all in use */
    assert_int_equal(errno, ENOSPC);
    vni_alloc_release(&a, 103);
    vni_alloc_release(&a, 42); /* unknown: ignored */
    assert_int_equal(vni_alloc_take(&a, &v), 0);
    assert_int_equal(v, 103);
    vni_alloc_free(&a);

    /* The top of the 24-bit space. */
    assert_int_equal(vni_alloc_init(&a, PODNET_VNI_MAX - 1, PODNET_VNI_MAX), 0);
    assert_int_equal(vni_alloc_take(&a, &v), 0);
    assert_int_equal(vni_alloc_take(&a, &v), 0);
    assert_int_equal(v, PODNET_VNI_MAX);
    assert_int_equal(vni_alloc_take(&a, &v), -1);
    vni_alloc_free(&a);
}

/* A randomized model check: the allocator never hands out a VNI in use. */
static void test_vni_model(void **state)
{
    (void)state;
    enum { MIN = 1000, MAX = 1063 };
    struct vni_alloc a;
    assert_int_equal(vni_alloc_init(&a, MIN, MAX), 0);
    bool used[MAX + 1] = {0};
    unsigned n = 0, seed = 12345;
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t r = (seed >> 8) % 100;
        if (r < 55) {
            uint32_t v;
            int rc = vni_alloc_take(&a, &v);
            if (n == MAX - MIN + 1) {
                assert_int_equal(rc, -1);
            } else {
                assert_int_equal(rc, 0);
                assert_true(v >= MIN && v <= MAX);
                assert_false(used[v]);
                used[v] = true;
                n++;
            }
        } else if (r < 95) {
            uint32_t v = MIN + (seed >> 16) % (MAX - MIN + 1);
            if (used[v])
                n--;
            used[v] = false;
            vni_alloc_release(&a, v);
        } else {
            uint32_t v = MIN + (seed >> 12) % (MAX - MIN + 1);
            if (!used[v])
                n++;
            used[v] = true;
            assert_int_equal(vni_alloc_mark(&a, v), 0);
        }
        for (uint32_t v = MIN; v <= MAX; v++)
            assert_int_equal(vni_alloc_used(&a, v), used[v]);
    }
    vni_alloc_free(&a);
}

static void test_notrack_parse(void **state)
{
    (void)state;
    assert_int_equal(notrack_comment_vni("peerpod [vni:555000]"), 555000);
    assert_int_equal(notrack_comment_vni("peerpod [vni:16777215]"), 16777215);
    assert_int_equal(notrack_comment_vni("peerpod [vni:16777216]"), 0);
    assert_int_equal(notrack_comment_vni("peerpod [vni:0]"), 0);
    assert_int_equal(notrack_comment_vni("peerpod [vni:12]x"), 0);
    assert_int_equal(notrack_comment_vni("peerpod [vni:]"), 0);
    assert_int_equal(notrack_comment_vni("other"), 0);
    assert_int_equal(notrack_comment_vni(NULL), 0);
    static const char listing[] =
        "{\"nftables\": [{\"metainfo\": {\"version\": \"1.0.6\", \"json_schema_version\": 1}},"
        " {\"table\": {\"family\": \"ip\", \"name\": \"peerpod\", \"handle\": 3}},"
        " {\"chain\": {\"family\": \"ip\", \"table\": \"peerpod\", \"name\": \"output\", \"handle\": 1}},"
        " {\"rule\": {\"family\": \"ip\", \"table\": \"peerpod\", \"chain\": \"output\", \"handle\": 4,"
        "  \"comment\": \"peerpod [vni:555000]\", \"expr\": []}},"
        " {\"rule\": {\"family\": \"ip\", \"table\": \"peerpod\", \"chain\": \"prerouting\", \"handle\": 5,"
        "  \"comment\": \"peerpod [vni:555001]\", \"expr\": []}},"
        " {\"rule\": {\"family\": \"ip\", \"table\": \"peerpod\", \"chain\": \"output\", \"handle\": 6}},"
        " {\"rule\": {\"family\": \"ip\", \"table\": \"other\", \"chain\": \"output\", \"handle\": 7}},"
        " {\"rule\": {\"family\": \"ip\", \"table\": \"peerpod\", \"chain\": \"output\", \"handle\": \"x\"}}]}";
    struct notrack_rule r[8];
    assert_int_equal(notrack_rules_parse(listing, strlen(listing), r, 8), 3);
    assert_string_equal(r[0].chain, "output");
    assert_int_equal(r[0].handle, 4);
    assert_int_equal(r[0].vni, 555000);
    assert_string_equal(r[1].chain, "prerouting");
    assert_int_equal(r[1].vni, 555001);
    assert_int_equal(r[2].handle, 6);
    assert_int_equal(r[2].vni, 0);
    assert_int_equal(notrack_rules_parse(listing, strlen(listing), r, 1), 3); /* count beyond cap */
    assert_int_equal(notrack_rules_parse("{}", 2, r, 8), -1);
    assert_int_equal(notrack_rules_parse("not json", 8, r, 8), -1);
    assert_int_equal(notrack_rules_parse("{\"nftables\": []}", 16, r, 8), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_filter),  cmocka_unit_test(test_primary),
        cmocka_unit_test(test_sort_and_subnets), cmocka_unit_test(test_to_userdata),
        cmocka_unit_test(test_vni),           cmocka_unit_test(test_vni_model),
        cmocka_unit_test(test_notrack_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
