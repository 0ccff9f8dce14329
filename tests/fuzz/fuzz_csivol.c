/* libFuzzer target for adaptor/csivol.c: mountInfo.json files and direct-volume names come
 * from the node's file system. The input is split at the first two NUL bytes into a volume
 * name, a mountInfo.json and a mount source. Whatever it is: no out-of-bounds access or leak,
 * names round-trip, a cloud-volumes value, when produced, is valid JSON, and the disks for the
 * pod VM are non-empty ids. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "csivol.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 3);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = s[size + 1] = s[size + 2] = '\0';
    const char *name = s, *info = name + strlen(name) + 1;
    if ((size_t)(info - s) > size)
        info = "";
    const char *src = info + strlen(info) + 1;
    if ((size_t)(src - s) > size + 1)
        src = "";
    char *path = csivol_path_of(name);
    if (path) {
        char *again = csivol_name_of(path);
        CHECK(again);
        char *back = csivol_path_of(again);
        CHECK(back && strcmp(back, path) == 0);
        free(again);
        free(back);
    }
    struct csivol_volume v = {name, info};
    struct csivol_mount m = {"/dst", path ? path : src};
    char *tp, *cv;
    if (csivol_annotations(&m, 1, &v, 1, src, "", &tp, &cv) == 0 && cv) {
        json_t *j = json_loads(cv, 0, NULL);
        CHECK(json_is_object(j));
        json_decref(j);
    }
    free(tp);
    free(cv);
    /* The pod VM's disks: one at most, and only when the annotation had an entry to give. */
    char **d;
    size_t n;
    if (csivol_disks(&v, 1, "", &d, &n) == 0) {
        CHECK(n <= 1 && (n == 0) == (d == NULL));
        if (n)
            CHECK(*d[0] != '\0');
        csivol_disks_free(d, n);
    }
    free(path);
    free(s);
    return 0;
}
