/* domxml: libvirt XML builders and readers (see domxml.h). */
#include "domxml.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

/* ------------------------------------------------------------------ writer */

/* Growable text; the first allocation failure is latched and later writes are no-ops. */
struct xw {
    char *d;
    size_t len, cap;
    bool oom;
};

static void xw_put(struct xw *w, const char *s, size_t n)
{
    if (w->oom)
        return;
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 1024;
        while (cap < w->len + n + 1)
            cap *= 2;
        char *d = realloc(w->d, cap);
        if (!d) {
            w->oom = true;
            return;
        }
        w->d = d;
        w->cap = cap;
    }
    memcpy(w->d + w->len, s, n);
    w->len += n;
    w->d[w->len] = '\0';
}

static void xw_raw(struct xw *w, const char *s)
{
    xw_put(w, s, strlen(s));
}

/* Text and attribute values: the five XML specials become entities. */
static void xw_esc(struct xw *w, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': xw_raw(w, "&amp;"); break;
        case '<': xw_raw(w, "&lt;"); break;
        case '>': xw_raw(w, "&gt;"); break;
        case '"': xw_raw(w, "&quot;"); break;
        case '\'': xw_raw(w, "&apos;"); break;
        default: xw_put(w, s, 1);
        }
    }
}

/* Appends fmt, where each %s argument is escaped and %u/%llu are numbers. */
static void xw_fmt(struct xw *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            xw_put(w, p, 1);
            continue;
        }
        char num[32];
        p++;
        if (*p == 's') {
            xw_esc(w, va_arg(ap, const char *));
        } else if (*p == 'u') {
            snprintf(num, sizeof(num), "%u", va_arg(ap, unsigned));
            xw_raw(w, num);
        } else if (p[0] == 'l' && p[1] == 'l' && p[2] == 'u') {
            snprintf(num, sizeof(num), "%llu", va_arg(ap, unsigned long long));
            xw_raw(w, num);
            p += 2;
        } else if (p[0] == 'l' && p[1] == 'l' && p[2] == 'd') {
            snprintf(num, sizeof(num), "%lld", va_arg(ap, long long));
            xw_raw(w, num);
            p += 2;
        } else {
            xw_put(w, p, 1); /* "%%" */
        }
    }
    va_end(ap);
}

static char *xw_finish(struct xw *w)
{
    if (w->oom) {
        free(w->d);
        errno = ENOMEM;
        return NULL;
    }
    return w->d;
}

/* ------------------------------------------------------------------ names */

const char *domxml_arch_name(enum domxml_arch a)
{
    switch (a) {
    case DOMXML_X86_64: return "x86_64";
    case DOMXML_AARCH64: return "aarch64";
    case DOMXML_S390X: return "s390x";
    }
    return "?";
}

static const char *const sec_names[] = {"none", "s390-pv", "sev", "sev-snp", "tdx"};

const char *domxml_security_name(enum domxml_security s)
{
    return (unsigned)s < sizeof(sec_names) / sizeof(sec_names[0]) ? sec_names[s] : "?";
}

int domxml_security_parse(const char *s, enum domxml_security *out)
{
    if (!s || !*s) {
        *out = DOMXML_SEC_NONE;
        return 0;
    }
    for (size_t i = 0; i < sizeof(sec_names) / sizeof(sec_names[0]); i++)
        if (strcmp(s, sec_names[i]) == 0) {
            *out = (enum domxml_security)i;
            return 0;
        }
    return -1;
}

int domxml_cpuset_check(const char *s)
{
    if (!s || !*s)
        return 0;
    /* item (',' item)*, item = digits ('-' digits)? */
    const char *p = s;
    for (;;) {
        if (*p < '0' || *p > '9')
            return -1;
        while (*p >= '0' && *p <= '9')
            p++;
        if (*p == '-') {
            p++;
            if (*p < '0' || *p > '9')
                return -1;
            while (*p >= '0' && *p <= '9')
                p++;
        }
        if (*p == '\0')
            return 0;
        if (*p != ',')
            return -1;
        p++;
    }
}

int domxml_capacity(uint64_t gib, uint64_t base_bytes, uint64_t *out)
{
    if (gib > UINT64_MAX >> 30)
        return -1;
    uint64_t b = gib << 30;
    *out = b > base_bytes ? b : base_bytes;
    return 0;
}

/* ------------------------------------------------------------------ builders */

static void marker_write(struct xw *w, const struct domxml_marker *m, const char *indent)
{
    xw_fmt(w, "%s<" DOMXML_MARKER_PREFIX ":peerpod xmlns:" DOMXML_MARKER_PREFIX "=\"" DOMXML_MARKER_URI "\">\n", indent);
    xw_fmt(w, "%s  <caa:node>%s</caa:node>\n", indent, m->node);
    xw_fmt(w, "%s  <caa:sandbox>%s</caa:sandbox>\n", indent, m->sandbox);
    xw_fmt(w, "%s  <caa:pod>%s</caa:pod>\n", indent, m->pod);
    xw_fmt(w, "%s  <caa:created>%lld</caa:created>\n", indent, (long long)m->created_unix);
    xw_fmt(w, "%s</caa:peerpod>\n", indent);
}

char *domxml_marker_build(const struct domxml_marker *m)
{
    struct xw w = {0};
    marker_write(&w, m, "");
    return xw_finish(&w);
}

static bool empty(const char *s)
{
    return !s || !*s;
}

/* A virtio disk (aarch64 root, s390x and x86 CVM disks). */
static void disk_virtio(struct xw *w, const char *device, const char *format, const char *path, const char *dev,
                        bool iommu, bool boot, bool readonly)
{
    xw_fmt(w, "    <disk type=\"file\" device=\"%s\">\n", device);
    xw_fmt(w, "      <driver name=\"qemu\" type=\"%s\"", format);
    xw_raw(w, iommu ? " iommu=\"on\"/>\n" : "/>\n");
    xw_fmt(w, "      <source file=\"%s\"/>\n", path);
    xw_fmt(w, "      <target dev=\"%s\" bus=\"virtio\"/>\n", dev);
    if (readonly)
        xw_raw(w, "      <readonly/>\n");
    if (boot)
        xw_raw(w, "      <boot order=\"1\"/>\n");
    xw_raw(w, "    </disk>\n");
}

static void interface_write(struct xw *w, const char *network, bool iommu)
{
    xw_fmt(w, "    <interface type=\"network\">\n      <source network=\"%s\"/>\n      <model type=\"virtio\"/>\n",
           network);
    if (iommu)
        xw_raw(w, "      <driver iommu=\"on\"/>\n");
    xw_raw(w, "    </interface>\n");
}

static bool x86_cvm(enum domxml_security s)
{
    return s == DOMXML_SEC_SEV || s == DOMXML_SEC_SEV_SNP || s == DOMXML_SEC_TDX;
}

static void x86_write(struct xw *w, const struct domxml_domain *d)
{
    bool uefi = !empty(d->firmware), cvm = x86_cvm(d->security);
    xw_fmt(w, "  <memory unit=\"MiB\" dumpCore=\"on\">%u</memory>\n", d->memory_mib);
    if (!empty(d->cpuset))
        xw_fmt(w, "  <vcpu cpuset=\"%s\">%u</vcpu>\n", d->cpuset, d->vcpus);
    else
        xw_fmt(w, "  <vcpu>%u</vcpu>\n", d->vcpus);
    xw_raw(w, "  <os>\n");
    if (cvm)
        xw_fmt(w, "    <type arch=\"x86_64\" machine=\"%s\">hvm</type>\n", empty(d->machine) ? "q35" : d->machine);
    else
        xw_raw(w, "    <type arch=\"x86_64\">hvm</type>\n");
    /* The manual loader form: libvirt 9.0 refuses firmware="efi" next to an explicit loader. */
    if (uefi && (d->security == DOMXML_SEC_SEV_SNP || d->security == DOMXML_SEC_TDX))
        xw_fmt(w, "    <loader type=\"rom\" stateless=\"yes\">%s</loader>\n", d->firmware); /* measured, no NVRAM */
    else if (uefi)
        xw_fmt(w, "    <loader readonly=\"yes\" type=\"pflash\">%s</loader>\n", d->firmware);
    xw_raw(w, "  </os>\n");
    xw_raw(w, "  <features>\n    <acpi/>\n    <apic/>\n");
    if (!cvm)
        xw_raw(w, "    <vmport state=\"off\"/>\n");
    xw_raw(w, "  </features>\n");
    xw_raw(w, cvm ? "  <cpu mode=\"host-passthrough\"/>\n" : "  <cpu mode=\"host-model\"/>\n");
    xw_raw(w, "  <on_reboot>restart</on_reboot>\n");
    xw_raw(w, "  <devices>\n");
    if (!empty(d->emulator))
        xw_fmt(w, "    <emulator>%s</emulator>\n", d->emulator);
    if (cvm) {
        /* Guest memory is encrypted: virtio devices must use the IOMMU (bounce buffers). */
        disk_virtio(w, "disk", "qcow2", d->root_path, "vda", true, true, false);
        disk_virtio(w, "disk", "raw", d->iso_path, "vdb", true, false, true);
        interface_write(w, d->network, true);
        xw_raw(w, "    <memballoon model=\"none\"/>\n");
    } else {
        xw_raw(w, "    <disk type=\"file\" device=\"disk\">\n      <driver type=\"qcow2\"/>\n");
        xw_fmt(w, "      <source file=\"%s\"/>\n", d->root_path);
        xw_raw(w, "      <target dev=\"sda\" bus=\"sata\"/>\n      <boot order=\"1\"/>\n"
                  "      <address type=\"drive\" controller=\"0\" bus=\"0\" target=\"0\" unit=\"0\"/>\n"
                  "    </disk>\n");
        xw_raw(w, "    <disk type=\"file\" device=\"cdrom\">\n      <driver name=\"qemu\" type=\"raw\"/>\n");
        xw_fmt(w, "      <source file=\"%s\"/>\n", d->iso_path);
        /* BIOS images (packer) boot with IDE, UEFI ones (mkosi) with SATA, as upstream. */
        if (uefi)
            xw_raw(w, "      <target dev=\"sdb\" bus=\"sata\"/>\n      <readonly/>\n"
                      "      <address type=\"drive\" controller=\"0\" bus=\"0\" target=\"0\" unit=\"1\"/>\n");
        else
            xw_raw(w, "      <target dev=\"hda\" bus=\"ide\"/>\n      <readonly/>\n"
                      "      <address type=\"drive\" controller=\"0\" bus=\"0\" target=\"0\" unit=\"0\"/>\n");
        xw_raw(w, "    </disk>\n");
        interface_write(w, d->network, false);
    }
    xw_raw(w, "    <console type=\"pty\">\n      <target type=\"serial\"/>\n    </console>\n");
    xw_raw(w, "  </devices>\n");
    if (d->security == DOMXML_SEC_SEV || d->security == DOMXML_SEC_SEV_SNP) {
        xw_fmt(w, "  <launchSecurity type=\"%s\">\n", d->security == DOMXML_SEC_SEV ? "sev" : "sev-snp");
        if (d->sev_cbitpos)
            xw_fmt(w, "    <cbitpos>%u</cbitpos>\n", d->sev_cbitpos);
        if (d->sev_reduced_phys_bits)
            xw_fmt(w, "    <reducedPhysBits>%u</reducedPhysBits>\n", d->sev_reduced_phys_bits);
        /* SEV: no debug, no key sharing, SEV-ES; SEV-SNP: SMT allowed and the reserved bit 17. */
        xw_raw(w, d->security == DOMXML_SEC_SEV ? "    <policy>0x0007</policy>\n" : "    <policy>0x00030000</policy>\n");
        xw_raw(w, "  </launchSecurity>\n");
    } else if (d->security == DOMXML_SEC_TDX) {
        /* SEPT_VE_DISABLE: the guest gets no #VE for EPT violations, as Linux guests expect. */
        xw_raw(w, "  <launchSecurity type=\"tdx\">\n    <policy>0x10000000</policy>\n  </launchSecurity>\n");
    }
}

static void s390x_write(struct xw *w, const struct domxml_domain *d)
{
    xw_fmt(w, "  <memory unit=\"MiB\">%u</memory>\n  <currentMemory unit=\"MiB\">%u</currentMemory>\n", d->memory_mib,
           d->memory_mib);
    if (!empty(d->cpuset))
        xw_fmt(w, "  <vcpu cpuset=\"%s\">%u</vcpu>\n", d->cpuset, d->vcpus);
    else
        xw_fmt(w, "  <vcpu>%u</vcpu>\n", d->vcpus);
    xw_fmt(w, "  <os>\n    <type arch=\"s390x\" machine=\"%s\">hvm</type>\n  </os>\n", d->machine);
    xw_raw(w, "  <cpu mode=\"host-model\"/>\n  <clock offset=\"utc\"/>\n  <devices>\n");
    if (!empty(d->emulator))
        xw_fmt(w, "    <emulator>%s</emulator>\n", d->emulator);
    /* Secure Execution needs iommu on every virtio device; upstream writes it always. */
    disk_virtio(w, "disk", "qcow2", d->root_path, "vda", true, true, false);
    disk_virtio(w, "disk", "raw", d->iso_path, "vdb", true, false, false);
    interface_write(w, d->network, true);
    xw_raw(w, "    <memballoon model=\"virtio\">\n      <driver iommu=\"on\"/>\n    </memballoon>\n");
    xw_raw(w, "    <rng model=\"virtio\">\n      <backend model=\"random\">/dev/urandom</backend>\n    </rng>\n");
    xw_raw(w, "    <console type=\"pty\">\n      <target type=\"sclp\"/>\n    </console>\n  </devices>\n");
}

static void aarch64_write(struct xw *w, const struct domxml_domain *d)
{
    xw_fmt(w, "  <memory unit=\"MiB\">%u</memory>\n", d->memory_mib);
    if (!empty(d->cpuset))
        xw_fmt(w, "  <vcpu cpuset=\"%s\">%u</vcpu>\n", d->cpuset, d->vcpus);
    else
        xw_fmt(w, "  <vcpu>%u</vcpu>\n", d->vcpus);
    xw_fmt(w, "  <os firmware=\"efi\">\n    <type arch=\"aarch64\" machine=\"%s\">hvm</type>\n  </os>\n", d->machine);
    xw_raw(w, "  <cpu mode=\"host-passthrough\"/>\n  <devices>\n");
    if (!empty(d->emulator))
        xw_fmt(w, "    <emulator>%s</emulator>\n", d->emulator);
    disk_virtio(w, "disk", "qcow2", d->root_path, "vda", true, true, false);
    xw_raw(w, "    <disk type=\"file\" device=\"cdrom\">\n      <driver name=\"qemu\" type=\"raw\"/>\n");
    xw_fmt(w, "      <source file=\"%s\"/>\n", d->iso_path);
    xw_raw(w, "      <target dev=\"sda\" bus=\"scsi\"/>\n      <readonly/>\n    </disk>\n");
    xw_raw(w, "    <controller type=\"scsi\" model=\"virtio-scsi\"/>\n");
    interface_write(w, d->network, true);
    xw_raw(w, "    <memballoon model=\"virtio\">\n      <driver iommu=\"on\"/>\n    </memballoon>\n");
    xw_raw(w, "    <console type=\"pty\">\n      <target type=\"serial\"/>\n    </console>\n  </devices>\n");
}

char *domxml_domain_build(const struct domxml_domain *d, char *err, size_t errlen)
{
    if (empty(d->type) || empty(d->name) || empty(d->root_path) || empty(d->iso_path) || empty(d->network) ||
        !d->marker) {
        snprintf(err, errlen, "domain XML: type, name, disk paths, network and marker are required");
        return NULL;
    }
    if (d->vcpus == 0 || d->memory_mib == 0) {
        snprintf(err, errlen, "domain XML: vCPUs and memory must be greater than zero");
        return NULL;
    }
    if (domxml_cpuset_check(d->cpuset)) {
        snprintf(err, errlen, "invalid CPUSet format: %s (expected format: e.g. 0-3 or 0,2,4-7)", d->cpuset);
        return NULL;
    }
    bool x86 = d->arch == DOMXML_X86_64;
    if ((x86 && d->security == DOMXML_SEC_S390PV) || (!x86 && x86_cvm(d->security)) ||
        (d->arch == DOMXML_AARCH64 && d->security != DOMXML_SEC_NONE)) {
        snprintf(err, errlen, "launch Security type is not supported for this domain: %s on %s",
                 domxml_security_name(d->security), domxml_arch_name(d->arch));
        return NULL;
    }
    if (!x86 && empty(d->machine)) {
        snprintf(err, errlen, "domain XML: %s needs a machine type", domxml_arch_name(d->arch));
        return NULL;
    }
    if ((d->security == DOMXML_SEC_SEV_SNP || d->security == DOMXML_SEC_TDX) && empty(d->firmware)) {
        snprintf(err, errlen, "%s guests boot from UEFI: set LIBVIRT_EFI_FIRMWARE (-firmware) to a firmware built for it",
                 domxml_security_name(d->security));
        return NULL;
    }
    struct xw w = {0};
    xw_fmt(&w, "<domain type=\"%s\">\n  <name>%s</name>\n", d->type, d->name);
    xw_raw(&w, "  <description>This Virtual Machine is the peer-pod VM</description>\n  <metadata>\n");
    marker_write(&w, d->marker, "    ");
    xw_raw(&w, "  </metadata>\n");
    switch (d->arch) {
    case DOMXML_X86_64: x86_write(&w, d); break;
    case DOMXML_S390X: s390x_write(&w, d); break;
    case DOMXML_AARCH64: aarch64_write(&w, d); break;
    }
    xw_raw(&w, "</domain>\n");
    char *s = xw_finish(&w);
    if (!s)
        snprintf(err, errlen, "out of memory");
    return s;
}

char *domxml_volume_overlay(const char *name, uint64_t capacity_bytes, const char *backing_path,
                            const char *backing_format)
{
    struct xw w = {0};
    xw_fmt(&w, "<volume>\n  <name>%s</name>\n  <capacity unit=\"bytes\">%llu</capacity>\n", name,
           (unsigned long long)capacity_bytes);
    xw_raw(&w, "  <target>\n    <format type=\"qcow2\"/>\n    <permissions>\n      <mode>0644</mode>\n"
               "    </permissions>\n  </target>\n");
    xw_fmt(&w, "  <backingStore>\n    <path>%s</path>\n    <format type=\"%s\"/>\n  </backingStore>\n</volume>\n",
           backing_path, empty(backing_format) ? "raw" : backing_format);
    return xw_finish(&w);
}

char *domxml_volume_raw(const char *name, uint64_t capacity_bytes)
{
    struct xw w = {0};
    xw_fmt(&w, "<volume>\n  <name>%s</name>\n  <capacity unit=\"bytes\">%llu</capacity>\n", name,
           (unsigned long long)capacity_bytes);
    xw_raw(&w, "  <target>\n    <format type=\"raw\"/>\n    <permissions>\n      <mode>0644</mode>\n"
               "    </permissions>\n  </target>\n</volume>\n");
    return xw_finish(&w);
}

/* ------------------------------------------------------------------ readers */

static xmlDocPtr doc_read(const char *xml)
{
    if (!xml)
        return NULL;
    size_t n = strlen(xml);
    if (n > (64u << 20))
        return NULL;
    /* No network, no entity expansion beyond the predefined ones, no DTD loading. */
    return xmlReadMemory(xml, (int)n, "libvirt.xml", NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static bool is(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static xmlNode *child(const xmlNode *n, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (is(c, name))
            return c;
    return NULL;
}

/* An attribute or the element's text into out; false if absent or too long. */
static bool attr_get(const xmlNode *n, const char *name, char *out, size_t outlen)
{
    xmlChar *v = n ? xmlGetProp(n, (const xmlChar *)name) : NULL;
    if (!v)
        return false;
    int k = snprintf(out, outlen, "%s", (const char *)v);
    xmlFree(v);
    return k >= 0 && (size_t)k < outlen;
}

static bool text_get(const xmlNode *n, char *out, size_t outlen)
{
    xmlChar *v = n ? xmlNodeGetContent(n) : NULL;
    if (!v)
        return false;
    int k = snprintf(out, outlen, "%s", (const char *)v);
    xmlFree(v);
    return k >= 0 && (size_t)k < outlen;
}

int domxml_marker_parse(const char *xml, struct domxml_marker *out)
{
    memset(out, 0, sizeof(*out));
    xmlDocPtr doc = doc_read(xml);
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    int rc = -1;
    /* virDomainGetMetadata hands the element back without its namespace (it was asked for
     * ours); any other namespace is someone else's. */
    if (!is(root, "peerpod") || (root->ns && root->ns->href && strcmp((const char *)root->ns->href, DOMXML_MARKER_URI)))
        goto out;
    char created[32] = "";
    if (!text_get(child(root, "node"), out->node, sizeof(out->node)) ||
        !text_get(child(root, "sandbox"), out->sandbox, sizeof(out->sandbox)))
        goto out;
    text_get(child(root, "pod"), out->pod, sizeof(out->pod));
    if (text_get(child(root, "created"), created, sizeof(created)))
        out->created_unix = strtoll(created, NULL, 10);
    rc = 0;
out:
    xmlFreeDoc(doc);
    return rc;
}

/* Canonical name of machine among the <machine> children of n; true if found. */
static bool machine_find(const xmlNode *n, const char *machine, char *canon, size_t canonlen)
{
    for (xmlNode *m = n ? n->children : NULL; m; m = m->next) {
        char name[128];
        if (!is(m, "machine") || !text_get(m, name, sizeof(name)) || strcmp(name, machine) != 0)
            continue;
        if (!attr_get(m, "canonical", canon, canonlen))
            snprintf(canon, canonlen, "%s", machine);
        return true;
    }
    return false;
}

int domxml_caps_guest(const char *caps, const char *arch, const char *machine, char *type, size_t typelen,
                      char *canon, size_t canonlen, char *emulator, size_t emulen, char *err, size_t errlen)
{
    xmlDocPtr doc = doc_read(caps);
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    int rc = -1;
    if (!is(root, "capabilities")) {
        snprintf(err, errlen, "cannot read the libvirt capabilities");
        goto out;
    }
    bool test_only = false;
    if (canonlen)
        canon[0] = '\0';
    if (emulen)
        emulator[0] = '\0';
    for (xmlNode *g = root->children; g; g = g->next) {
        char os[16], name[32];
        if (!is(g, "guest") || !text_get(child(g, "os_type"), os, sizeof(os)) || strcmp(os, "hvm") != 0)
            continue;
        xmlNode *a = child(g, "arch");
        bool any_test = false, kvm = false, qemu = false;
        for (xmlNode *dn = a ? a->children : NULL; dn; dn = dn->next) {
            char t[16];
            if (is(dn, "domain") && attr_get(dn, "type", t, sizeof(t))) {
                kvm |= strcmp(t, "kvm") == 0;
                qemu |= strcmp(t, "qemu") == 0;
                any_test |= strcmp(t, "test") == 0;
            }
        }
        test_only |= any_test;
        if (!attr_get(a, "name", name, sizeof(name)) || strcmp(name, arch) != 0)
            continue;
        snprintf(type, typelen, "%s", kvm ? "kvm" : qemu ? "qemu" : any_test ? "test" : "qemu");
        if (emulen)
            text_get(child(a, "emulator"), emulator, emulen);
        if (machine) {
            bool found = machine_find(a, machine, canon, canonlen);
            for (xmlNode *dn = a->children; !found && dn; dn = dn->next)
                if (is(dn, "domain"))
                    found = machine_find(dn, machine, canon, canonlen);
            if (!found) {
                snprintf(err, errlen, "cannot find machine type %s for hvm/%s in the libvirt capabilities", machine,
                         arch);
                goto out;
            }
        }
        rc = 0;
        goto out;
    }
    if (test_only && !machine) {
        /* libvirt's test driver offers only i686 "test" guests, yet defines any arch. */
        snprintf(type, typelen, "test");
        rc = 0;
        goto out;
    }
    snprintf(err, errlen, "could not find any guests for architecture type hvm/%s", arch);
out:
    xmlFreeDoc(doc);
    return rc;
}

int domxml_volume_format(const char *xml, char *out, size_t outlen)
{
    xmlDocPtr doc = doc_read(xml);
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    int rc = -1;
    if (is(root, "volume")) {
        if (!attr_get(child(child(root, "target"), "format"), "type", out, outlen))
            snprintf(out, outlen, "raw");
        rc = 0;
    }
    xmlFreeDoc(doc);
    return rc;
}

int domxml_domcaps_security(const char *xml, enum domxml_security s, unsigned *cbitpos, unsigned *reduced_phys_bits,
                            char *err, size_t errlen)
{
    *cbitpos = *reduced_phys_bits = 0;
    const char *el = s == DOMXML_SEC_SEV ? "sev" : s == DOMXML_SEC_SEV_SNP ? "sev-snp" : s == DOMXML_SEC_TDX ? "tdx" : NULL;
    if (!el) {
        snprintf(err, errlen, "%s is not an x86 launch security", domxml_security_name(s));
        return -1;
    }
    xmlDocPtr doc = doc_read(xml);
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    int rc = -1;
    char yes[8] = "", num[16];
    xmlNode *f = child(child(root, "features"), el);
    if (!is(root, "domainCapabilities")) {
        snprintf(err, errlen, "cannot read the libvirt domain capabilities");
    } else if (!f || !attr_get(f, "supported", yes, sizeof(yes)) || strcmp(yes, "yes") != 0) {
        snprintf(err, errlen, "the hypervisor does not offer %s guests (no <%s supported='yes'> in the domain "
                              "capabilities)", el, el);
    } else {
        /* SEV-SNP reuses the SEV parameters, reported under <sev>. */
        xmlNode *params = child(f, "cbitpos") ? f : child(child(root, "features"), "sev");
        if (text_get(child(params, "cbitpos"), num, sizeof(num)))
            *cbitpos = (unsigned)strtoul(num, NULL, 10);
        if (text_get(child(params, "reducedPhysBits"), num, sizeof(num)))
            *reduced_phys_bits = (unsigned)strtoul(num, NULL, 10);
        rc = 0;
    }
    xmlFreeDoc(doc);
    return rc;
}
