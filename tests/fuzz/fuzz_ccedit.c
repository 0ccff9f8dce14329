/* libFuzzer target for the CreateContainer edit (adaptor/ccedit.c), which reads protobuf the
 * kata shim sends. Whatever the input: no out-of-bounds access or leak; when the edit
 * succeeds, editing its output again with the same annotation gives the same bytes (the
 * edit is idempotent), and the mount walk of the output agrees with that of the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ccedit.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct ccedit_annotation a = {CCEDIT_ANNOTATION_CDI, CCEDIT_CDI_ALL_GPUS};
    uint8_t *out, *again;
    size_t n, m;
    if (ccedit_set_annotations(data, size, &a, 1, &out, &n))
        return 0;
    CHECK(ccedit_set_annotations(out, n, &a, 1, &again, &m) == 0);
    CHECK(m == n && memcmp(out, again, n) == 0);
    int before = ccedit_mounts(data, size, NULL, NULL);
    int after = ccedit_mounts(out, n, NULL, NULL);
    CHECK(before < 0 || before == after);
    free(out);
    free(again);
    return 0;
}
