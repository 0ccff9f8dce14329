/* libFuzzer target for the initdata decoder (adaptor/initdata.c): base64, gzip, TOML and
 * the initdata checks, as an annotation value and as the global INITDATA.
 *
 * Whatever the input: no out-of-bounds access or leak. On success the digest is hex of the
 * algorithm's length and the VM value is one line of base64 that decodes and gunzips back
 * to exactly toml_len bytes. On failure the error starts with the source's prefix. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#include "initdata.h"


static void one(enum initdata_source src, const char *v, size_t n)
{
    struct initdata d;
    char err[512];
    err[0] = '\0';
    if (initdata_decode(&d, src, v, n, err, sizeof(err))) {
        CHECK(strncmp(err, src == INITDATA_FROM_GLOBAL ? "INITDATA: " : "initdata: ", 10) == 0);
        CHECK(d.vm_value == NULL);
        return;
    }
    size_t want = strcmp(d.algorithm, "sha256") == 0 ? 64 : strcmp(d.algorithm, "sha384") == 0 ? 96 : 128;
    CHECK(strlen(d.digest) == want);
    CHECK(d.toml_len <= INITDATA_TOML_MAX);
    CHECK(strpbrk(d.vm_value, "\n\r ") == NULL);
    uint8_t *gz, *plain;
    long gn = initdata_base64_decode(d.vm_value, strlen(d.vm_value), &gz);
    CHECK(gn > 0);
    long pn = initdata_gunzip(gz, (size_t)gn, INITDATA_TOML_MAX, &plain, err, sizeof(err));
    CHECK(pn == (long)d.toml_len);
    free(gz);
    free(plain);
    initdata_clear(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(INITDATA_FROM_ANNOTATION, (const char *)data, size);
    one(INITDATA_FROM_GLOBAL, (const char *)data, size);
    return 0;
}
