/* Unit tests for providers/libvirt/domxml.c: byte-for-byte golden domain XML for every
 * variant (x86_64 UEFI, BIOS, cpuset; aarch64; s390x with and without s390-pv; x86 SEV,
 * SEV-SNP, TDX), escaping, refusals, the volume XML, the ownership marker round trip and the
 * capabilities readers. tests/libvirt/validate.sh runs virt-xml-validate over the same
 * goldens. Run from the repository root; UPDATE_GOLDEN=1 rewrites the goldens (review them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libvirt/domxml.h"
#include "provider.h"

const struct provider_ops *const provider_table[] = {NULL};

#define GOLDEN "tests/data/libvirt/"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = '\0';
    return b;
}

static void golden(const char *got, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), GOLDEN "%s", name);
    if (getenv("UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fputs(got, f);
        fclose(f);
    }
    char *want = slurp(path);
    if (!want)
        fail_msg("missing golden %s (run from the repository root)", path);
    if (strcmp(got, want) != 0) {
        size_t i = 0;
        while (got[i] && got[i] == want[i])
            i++;
        fail_msg("%s differs at byte %zu:\n got: %.80s\nwant: %.80s", name, i, got + i, want + i);
    }
    free(want);
}

static const struct domxml_marker marker = {
    .node = "worker-1", .sandbox = "7a0d0584e0c1a7d3b2a1f00112233445566778899aabbccddeeff00112233", .pod = "default/nginx",
    .created_unix = 1780000000};

static struct domxml_domain base(void)
{
    struct domxml_domain d = {
        .type = "kvm",
        .arch = DOMXML_X86_64,
        .name = "podvm-nginx-7a0d0584",
        .vcpus = 2,
        .memory_mib = 8192,
        .firmware = "/usr/share/OVMF/OVMF_CODE_4M.fd",
        .root_path = "/var/lib/libvirt/images/podvm-nginx-7a0d0584-root.qcow2",
        .iso_path = "/var/lib/libvirt/images/podvm-nginx-7a0d0584-cloudinit.iso",
        .network = "default",
        .marker = &marker,
    };
    return d;
}

static void check(const struct domxml_domain *d, const char *name)
{
    char err[256];
    char *x = domxml_domain_build(d, err, sizeof(err));
    if (!x)
        fail_msg("%s: %s", name, err);
    golden(x, name);
    free(x);
}

static void test_x86_variants(void **state)
{
    (void)state;
    struct domxml_domain d = base();
    check(&d, "x86_64-uefi.xml");
    d.firmware = "";
    d.type = "qemu";
    check(&d, "x86_64-bios.xml");
    d = base();
    d.cpuset = "0,2,4-7";
    d.vcpus = 4;
    d.memory_mib = 4096;
    check(&d, "x86_64-cpuset.xml");
    d = base();
    d.security = DOMXML_SEC_SEV;
    d.sev_cbitpos = 47;
    d.sev_reduced_phys_bits = 1;
    check(&d, "x86_64-sev.xml");
    d.security = DOMXML_SEC_SEV_SNP;
    d.firmware = "/usr/share/ovmf/OVMF.amdsev.fd";
    check(&d, "x86_64-sev-snp.xml");
    d = base();
    d.security = DOMXML_SEC_TDX;
    d.firmware = "/usr/share/ovmf/OVMF.inteltdx.fd";
    check(&d, "x86_64-tdx.xml");
}

static void test_other_arches(void **state)
{
    (void)state;
    struct domxml_domain d = base();
    d.arch = DOMXML_S390X;
    d.machine = "s390-ccw-virtio-7.2";
    d.emulator = "/usr/bin/qemu-system-s390x";
    d.firmware = NULL;
    check(&d, "s390x.xml");
    d.security = DOMXML_SEC_S390PV; /* identical XML: Secure Execution rides on iommu="on" */
    check(&d, "s390x.xml");
    d = base();
    d.arch = DOMXML_AARCH64;
    d.machine = "virt-7.2";
    d.emulator = "/usr/bin/qemu-system-aarch64";
    check(&d, "aarch64.xml");
}

static void test_escaping_and_refusals(void **state)
{
    (void)state;
    char err[256];
    struct domxml_domain d = base();
    d.network = "net<&>\"'";
    struct domxml_marker m = marker;
    snprintf(m.pod, sizeof(m.pod), "ns/<script>&");
    d.marker = &m;
    char *x = domxml_domain_build(&d, err, sizeof(err));
    assert_non_null(x);
    assert_non_null(strstr(x, "<source network=\"net&lt;&amp;&gt;&quot;&apos;\"/>"));
    assert_non_null(strstr(x, "<caa:pod>ns/&lt;script&gt;&amp;</caa:pod>"));
    free(x);

    d = base();
    d.security = DOMXML_SEC_S390PV;
    assert_null(domxml_domain_build(&d, err, sizeof(err)));
    assert_string_equal(err, "launch Security type is not supported for this domain: s390-pv on x86_64");
    d = base();
    d.arch = DOMXML_S390X;
    d.machine = "s390-ccw-virtio";
    d.security = DOMXML_SEC_SEV;
    assert_null(domxml_domain_build(&d, err, sizeof(err)));
    d = base();
    d.arch = DOMXML_AARCH64;
    assert_null(domxml_domain_build(&d, err, sizeof(err)));
    assert_string_equal(err, "domain XML: aarch64 needs a machine type");
    d = base();
    d.security = DOMXML_SEC_TDX;
    d.firmware = "";
    assert_null(domxml_domain_build(&d, err, sizeof(err)));
    assert_non_null(strstr(err, "LIBVIRT_EFI_FIRMWARE"));
    d = base();
    d.cpuset = "1,";
    assert_null(domxml_domain_build(&d, err, sizeof(err)));
    assert_non_null(strstr(err, "invalid CPUSet format: 1,"));
    d = base();
    d.vcpus = 0;
    assert_null(domxml_domain_build(&d, err, sizeof(err)));
    d = base();
    d.marker = NULL;
    assert_null(domxml_domain_build(&d, err, sizeof(err)));
}

static void test_volumes(void **state)
{
    (void)state;
    char *x = domxml_volume_overlay("podvm-nginx-7a0d0584-root.qcow2", 10737418240ull,
                                    "/var/lib/libvirt/images/podvm-base.qcow2", "qcow2");
    assert_non_null(x);
    golden(x, "volume-overlay.xml");
    free(x);
    x = domxml_volume_raw("podvm-nginx-7a0d0584-cloudinit.iso", 71680);
    assert_non_null(x);
    golden(x, "volume-iso.xml");
    free(x);
    char fmt[16];
    assert_int_equal(domxml_volume_format("<volume><target><format type='qcow2'/></target></volume>", fmt, 16), 0);
    assert_string_equal(fmt, "qcow2");
    assert_int_equal(domxml_volume_format("<volume><target/></volume>", fmt, 16), 0);
    assert_string_equal(fmt, "raw");
    assert_int_equal(domxml_volume_format("<pool/>", fmt, 16), -1);
    assert_int_equal(domxml_volume_format("not xml", fmt, 16), -1);
    uint64_t cap;
    assert_int_equal(domxml_capacity(10, 6ull << 30, &cap), 0);
    assert_true(cap == 10ull << 30);
    assert_int_equal(domxml_capacity(10, 20ull << 30, &cap), 0);
    assert_true(cap == 20ull << 30);
    assert_int_equal(domxml_capacity(17179869183ull, 0, &cap), 0);
    assert_int_equal(domxml_capacity(17179869184ull, 0, &cap), -1);
}

static void test_marker(void **state)
{
    (void)state;
    char *x = domxml_marker_build(&marker);
    assert_non_null(x);
    struct domxml_marker got;
    assert_int_equal(domxml_marker_parse(x, &got), 0);
    assert_string_equal(got.node, marker.node);
    assert_string_equal(got.sandbox, marker.sandbox);
    assert_string_equal(got.pod, marker.pod);
    assert_true(got.created_unix == marker.created_unix);
    free(x);
    /* As virDomainGetMetadata gives it back: no namespace left. */
    const char *lv = "<peerpod>\n  <node>n1</node>\n  <sandbox>abc</sandbox>\n</peerpod>";
    assert_int_equal(domxml_marker_parse(lv, &got), 0);
    assert_string_equal(got.node, "n1");
    assert_string_equal(got.pod, "");
    /* Not ours: another namespace, or no sandbox. */
    assert_int_equal(domxml_marker_parse("<caa:peerpod xmlns:caa='urn:other'><caa:node>n</caa:node>"
                                         "<caa:sandbox>s</caa:sandbox></caa:peerpod>", &got), -1);
    assert_int_equal(domxml_marker_parse("<caa:peerpod xmlns:caa='" DOMXML_MARKER_URI "'><caa:node>n</caa:node>"
                                         "</caa:peerpod>", &got), -1);
    assert_int_equal(domxml_marker_parse("", &got), -1);
    assert_int_equal(domxml_marker_parse(NULL, &got), -1);
}

static const char caps_s390x[] =
    "<capabilities><host/><guest><os_type>hvm</os_type><arch name='s390x'><wordsize>64</wordsize>"
    "<emulator>/usr/bin/qemu-system-s390x</emulator><machine canonical='s390-ccw-virtio-7.2' maxCpus='248'>"
    "s390-ccw-virtio</machine><machine maxCpus='248'>s390-ccw-virtio-7.2</machine><domain type='qemu'/>"
    "<domain type='kvm'/></arch></guest></capabilities>";
static const char caps_aarch64[] =
    "<capabilities><guest><os_type>hvm</os_type><arch name='aarch64'><emulator>/usr/bin/qemu-system-aarch64"
    "</emulator><domain type='qemu'><machine canonical='virt-7.2'>virt</machine></domain></arch></guest>"
    "</capabilities>";
static const char caps_test[] =
    "<capabilities><guest><os_type>hvm</os_type><arch name='i686'><emulator>/usr/bin/test-hv</emulator>"
    "<domain type='test'/></arch></guest></capabilities>";

static void test_caps(void **state)
{
    (void)state;
    char type[16], canon[64], emu[128], err[256];
    assert_int_equal(domxml_caps_guest(caps_s390x, "s390x", "s390-ccw-virtio", type, 16, canon, 64, emu, 128, err,
                                       256), 0);
    assert_string_equal(type, "kvm");
    assert_string_equal(canon, "s390-ccw-virtio-7.2");
    assert_string_equal(emu, "/usr/bin/qemu-system-s390x");
    assert_int_equal(domxml_caps_guest(caps_aarch64, "aarch64", "virt", type, 16, canon, 64, emu, 128, err, 256), 0);
    assert_string_equal(type, "qemu"); /* no KVM offered */
    assert_string_equal(canon, "virt-7.2");
    assert_int_equal(domxml_caps_guest(caps_aarch64, "aarch64", "virt-9", type, 16, canon, 64, emu, 128, err, 256),
                     -1);
    assert_string_equal(err, "cannot find machine type virt-9 for hvm/aarch64 in the libvirt capabilities");
    assert_int_equal(domxml_caps_guest(caps_test, "x86_64", NULL, type, 16, canon, 64, emu, 128, err, 256), 0);
    assert_string_equal(type, "test");
    assert_int_equal(domxml_caps_guest(caps_test, "s390x", "s390-ccw-virtio", type, 16, canon, 64, emu, 128, err,
                                       256), -1);
    assert_string_equal(err, "could not find any guests for architecture type hvm/s390x");
    assert_int_equal(domxml_caps_guest("<x/>", "x86_64", NULL, type, 16, canon, 64, emu, 128, err, 256), -1);

    unsigned cb, rpb;
    const char *dc = "<domainCapabilities><features><sev supported='yes'><cbitpos>51</cbitpos>"
                     "<reducedPhysBits>1</reducedPhysBits></sev><sev-snp supported='yes'/>"
                     "<tdx supported='no'/></features></domainCapabilities>";
    assert_int_equal(domxml_domcaps_security(dc, DOMXML_SEC_SEV, &cb, &rpb, err, 256), 0);
    assert_int_equal(cb, 51);
    assert_int_equal(rpb, 1);
    assert_int_equal(domxml_domcaps_security(dc, DOMXML_SEC_SEV_SNP, &cb, &rpb, err, 256), 0);
    assert_int_equal(cb, 51);
    assert_int_equal(domxml_domcaps_security(dc, DOMXML_SEC_TDX, &cb, &rpb, err, 256), -1);
    assert_non_null(strstr(err, "does not offer tdx guests"));
}

static void test_names(void **state)
{
    (void)state;
    enum domxml_security s;
    assert_int_equal(domxml_security_parse("", &s), 0);
    assert_int_equal(s, DOMXML_SEC_NONE);
    assert_int_equal(domxml_security_parse("s390-pv", &s), 0);
    assert_int_equal(s, DOMXML_SEC_S390PV);
    assert_int_equal(domxml_security_parse("sev-snp", &s), 0);
    assert_int_equal(s, DOMXML_SEC_SEV_SNP);
    assert_int_equal(domxml_security_parse("S390PV", &s), -1);
    static const char *good[] = {"", "0", "0,2,4,6", "0-3", "0,2,4-7,10"};
    static const char *bad[] = {"ABC", "0-", "-3", "0,a,2", "1,", ",1", "1--2", "1 ,2"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(domxml_cpuset_check(good[i]), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(domxml_cpuset_check(bad[i]), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_x86_variants), cmocka_unit_test(test_other_arches),
        cmocka_unit_test(test_escaping_and_refusals), cmocka_unit_test(test_volumes),
        cmocka_unit_test(test_marker), cmocka_unit_test(test_caps), cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
