/* cidata-tool: writes the cidata ISO of providers/libvirt/cidata.c for a host name and a
 * user-data file, so tests/libvirt/run.sh can check it with xorriso and blkid.
 * Usage: cidata-tool HOSTNAME USERDATA-FILE OUT.iso */
#include <stdio.h>
#include <stdlib.h>

#include "libvirt/cidata.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: cidata-tool HOSTNAME USERDATA-FILE OUT.iso\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f)
        return perror(argv[2]), 1;
    static unsigned char ud[CIDATA_USERDATA_MAX];
    size_t n = fread(ud, 1, sizeof(ud), f);
    fclose(f);
    uint8_t *iso;
    size_t len;
    char err[256];
    if (cidata_library_init() || cidata_iso_build(argv[1], ud, n, &iso, &len, err, sizeof(err))) {
        fprintf(stderr, "cidata-tool: %s\n", err);
        return 1;
    }
    FILE *o = fopen(argv[3], "wb");
    if (!o || fwrite(iso, 1, len, o) != len || fclose(o))
        return perror(argv[3]), 1;
    cidata_iso_free(iso, len);
    cidata_library_finish();
    return 0;
}
