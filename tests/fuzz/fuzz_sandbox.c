/* libFuzzer target for the sandbox record reader (adaptor/sandbox.c): records are read back
 * from the pods dir at start, where a crash, a full disk or a hand edit may leave anything.
 * Whatever the file holds: no out-of-bounds access or leak, and a record that decodes encodes
 * to a document that decodes to the same record (what the daemon writes it can read). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "provider.h"
#include "sandbox.h"

const struct provider_ops *const provider_table[] = {NULL};

static int same_str(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sandbox *sb = sandbox_new("sb-fuzz");
    if (!sb)
        return 0;
    char err[256];
    if (sandbox_json_decode(sb, (const char *)data, size, err, sizeof(err)) == 0) {
        char *json = sandbox_json_encode(sb);
        CHECK(json);
        struct sandbox *back = sandbox_new("sb-fuzz");
        CHECK(back);
        CHECK(sandbox_json_decode(back, json, strlen(json), err, sizeof(err)) == 0);
        CHECK(back->phase == sb->phase && back->vni == sb->vni && back->created_unix == sb->created_unix);
        CHECK(back->delete_attempts == sb->delete_attempts && back->inst.n_ips == sb->inst.n_ips);
        CHECK(same_str(back->pod.pod_name, sb->pod.pod_name) && same_str(back->netns_path, sb->netns_path));
        CHECK(strcmp(back->inst.name, sb->inst.name) == 0 && strcmp(back->inst.id, sb->inst.id) == 0);
        CHECK(strcmp(back->boot_id, sb->boot_id) == 0 && strcmp(back->pod_if, sb->pod_if) == 0);
        for (unsigned i = 0; i < sb->inst.n_ips; i++)
            CHECK(strcmp(back->inst.ips[i], sb->inst.ips[i]) == 0);
        sandbox_free(back);
        free(json);
    }
    sandbox_free(sb);
    return 0;
}
