/* libFuzzer target for the libvirt XML readers (providers/libvirt/domxml.c): the ownership
 * marker, the capabilities, the domain capabilities and a volume's format, all fed the same
 * input. Whatever it is: no out-of-bounds access or leak, and every output is a terminated
 * string within its buffer. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "libvirt/domxml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    struct domxml_marker m;
    if (domxml_marker_parse(s, &m) == 0) {
        CHECK(strlen(m.node) < sizeof(m.node) && strlen(m.sandbox) < sizeof(m.sandbox));
        CHECK(strlen(m.pod) < sizeof(m.pod));
    }
    char type[16], canon[64], emu[128], err[256], fmt[32];
    static const char *arches[] = {"x86_64", "s390x", "aarch64"};
    static const char *machines[] = {NULL, "s390-ccw-virtio", "virt"};
    for (int i = 0; i < 3; i++)
        if (domxml_caps_guest(s, arches[i], machines[i], type, sizeof(type), canon, sizeof(canon), emu, sizeof(emu),
                              err, sizeof(err)) == 0)
            CHECK(strlen(type) < sizeof(type) && strlen(canon) < sizeof(canon) && strlen(emu) < sizeof(emu));
        else
            CHECK(strlen(err) < sizeof(err));
    unsigned cb, rpb;
    domxml_domcaps_security(s, DOMXML_SEC_SEV_SNP, &cb, &rpb, err, sizeof(err));
    if (domxml_volume_format(s, fmt, sizeof(fmt)) == 0)
        CHECK(strlen(fmt) < sizeof(fmt));
    free(s);
    return 0;
}
