/* domxml: the XML the libvirt provider hands libvirt and reads back from it (spec
 * providers-libvirt-and-install.md 1.2, 1.2.1, 1.3). Builders for the domain (x86_64 with
 * and without UEFI, aarch64, s390x; x86 SEV, SEV-SNP and TDX launch security), the two
 * volumes (qcow2 overlay, raw ISO) and our ownership marker (DECISIONS 16); readers for the
 * capabilities (domain type, machine, emulator), a volume's format and the marker. Pure
 * code: no I/O, no logging; every value is escaped.
 *
 * Memory: builders return malloc'd NUL-terminated text owned by the caller (free()); inputs
 * are borrowed for the call. Readers fill caller buffers. */
#ifndef PROVIDERS_LIBVIRT_DOMXML_H
#define PROVIDERS_LIBVIRT_DOMXML_H

#include <stddef.h>
#include <stdint.h>

/* Our metadata namespace, read back with virDomainGetMetadata(VIR_DOMAIN_METADATA_ELEMENT). */
#define DOMXML_MARKER_URI "https://confidentialcontainers.org/cloud-api-adaptor/peerpod/1"
#define DOMXML_MARKER_PREFIX "caa"

enum domxml_arch { DOMXML_X86_64, DOMXML_AARCH64, DOMXML_S390X };

enum domxml_security {
    DOMXML_SEC_NONE,
    DOMXML_SEC_S390PV,  /* s390x Secure Execution: iommu on every virtio device */
    DOMXML_SEC_SEV,     /* x86 AMD SEV */
    DOMXML_SEC_SEV_SNP, /* x86 AMD SEV-SNP (libvirt >= 10.5) */
    DOMXML_SEC_TDX,     /* x86 Intel TDX (libvirt >= 11.0) */
};

struct domxml_marker {
    char node[256];
    char sandbox[129];
    char pod[512]; /* "namespace/name" */
    int64_t created_unix;
};

struct domxml_domain {
    const char *type; /* "kvm", "qemu" or "test" */
    enum domxml_arch arch;
    const char *name;
    unsigned vcpus;
    const char *cpuset; /* NULL or "": no cpuset attribute */
    unsigned memory_mib;
    const char *firmware; /* x86: UEFI loader path; NULL or "": legacy BIOS */
    const char *machine;  /* canonical machine (aarch64, s390x); x86 CVMs default to q35 */
    const char *emulator; /* from the capabilities; NULL: not written */
    const char *root_path;
    const char *iso_path;
    const char *network;
    enum domxml_security security;
    unsigned sev_cbitpos, sev_reduced_phys_bits; /* from the domain capabilities; 0: not written */
    const struct domxml_marker *marker;
};

/* Returns the domain XML, or NULL with a reason in err for a combination libvirt would
 * refuse (e.g. s390-pv on x86, SEV on s390x, an empty name or path). */
char *domxml_domain_build(const struct domxml_domain *d, char *err, size_t errlen);

/* <volume> of a qcow2 overlay named name over backing_path (format backing_format). */
char *domxml_volume_overlay(const char *name, uint64_t capacity_bytes, const char *backing_path,
                            const char *backing_format);
/* <volume> of a raw volume (the cidata ISO). */
char *domxml_volume_raw(const char *name, uint64_t capacity_bytes);

/* Just the marker element, for virDomainSetMetadata. */
char *domxml_marker_build(const struct domxml_marker *m);
/* Reads the marker element as virDomainGetMetadata returns it (without a namespace) or as
 * written (in ours). 0, or -1 if it is not ours or lacks node or sandbox. */
int domxml_marker_parse(const char *xml, struct domxml_marker *out);

/* Capabilities: the domain type to use for hvm guests of arch ("kvm" when offered, else
 * "qemu"; "test" on the test driver, whose guests only offer that), the canonical name of
 * machine (NULL machine: skip) and the emulator path. -1 with the reason in err. */
int domxml_caps_guest(const char *caps, const char *arch, const char *machine, char *type, size_t typelen,
                      char *canon, size_t canonlen, char *emulator, size_t emulen, char *err, size_t errlen);

/* Domain capabilities (virConnectGetDomainCapabilities): whether the x86 launch security s
 * is offered (<sev>, <sev-snp> or <tdx> with supported="yes" under <features>), and for SEV
 * and SEV-SNP the cbitpos and reducedPhysBits to write. -1 with the reason in err. */
int domxml_domcaps_security(const char *xml, enum domxml_security s, unsigned *cbitpos, unsigned *reduced_phys_bits,
                            char *err, size_t errlen);

/* The <target><format type=...> of a volume's XML, "raw" when absent. -1 if unreadable. */
int domxml_volume_format(const char *xml, char *out, size_t outlen);

/* Cuts a capacity in GiB to bytes, never less than base_bytes; -1 on overflow. */
int domxml_capacity(uint64_t gib, uint64_t base_bytes, uint64_t *out);

const char *domxml_arch_name(enum domxml_arch a);
/* "" or "none", "s390-pv", "sev", "sev-snp", "tdx" (LIBVIRT_LAUNCH_SECURITY); -1 if unknown. */
int domxml_security_parse(const char *s, enum domxml_security *out);
const char *domxml_security_name(enum domxml_security s);
/* LIBVIRT_CPUSET syntax: ^(\d+(-\d+)?)(,\d+(-\d+)?)*$ ("" is fine: no cpuset). */
int domxml_cpuset_check(const char *s);

#endif
