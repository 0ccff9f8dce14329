/* Unit tests for adaptor/sandbox.c: id rules (DECISIONS 15), the phase machine, the JSON
 * record and the on-disk store (DECISIONS 10), the latter with a real uv loop in a temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define assert_contains(hay, needle)                                                                      \
    do {                                                                                                  \
        if (!strstr((hay), (needle)))                                                                     \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));                                  \
    } while (0)

/* ---- ids ---------------------------------------------------------------------------- */

static void test_id_check(void **state)
{
    (void)state;
    char id128[129], id129[130], id200[201];
    memset(id128, 'a', 128);
    id128[128] = '\0';
    memset(id129, 'b', 129);
    id129[129] = '\0';
    memset(id200, 'c', 200);
    id200[200] = '\0';
    const char *const good[] = {
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "a", "A", "0", "...", ".a", "a.", "a..b", "-", "_", "a-b_c.D9", id128,
    };
    const char *const bad[] = {
        "", ".", "..", "../x", "a/b", "/", id129, id200, "a b", "a:b", "caf\xc3\xa9", "\xff", "a\nb",
        "a\tb", "a\\b", "a*", "a%2f", "a@b", "~",
    };
    char err[256];
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        err[0] = '\0';
        if (sandbox_id_check(good[i], err, sizeof(err)))
            fail_msg("id \"%s\" rejected: %s", good[i], err);
    }
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        if (!sandbox_id_check(bad[i], err, sizeof(err)))
            fail_msg("id \"%s\" accepted", bad[i]);
        assert_contains(err, "sandbox id");
        /* The message echoes only printable ASCII. */
        for (const char *p = err; *p; p++)
            assert_true(*p >= 0x20 && *p < 0x7f);
    }
    /* The echo of a long id is bounded. */
    sandbox_id_check(id200, err, sizeof(err));
    assert_null(strstr(err, id128));
    /* A tiny buffer is not overflowed. */
    char small[8];
    memset(small, 'z', sizeof(small));
    assert_int_equal(sandbox_id_check("a/b", small, 4), -1);
    assert_int_equal(strlen(small), 3);
}

/* ---- phases --------------------------------------------------------------------------- */

static void test_phase_names(void **state)
{
    (void)state;
    static const char *const names[] = {"created", "starting", "running", "stopping", "failed", "gone"};
    for (int p = SANDBOX_CREATED; p <= SANDBOX_GONE; p++) {
        assert_string_equal(sandbox_phase_name((enum sandbox_phase)p), names[p]);
        enum sandbox_phase out = (enum sandbox_phase)99;
        assert_int_equal(sandbox_phase_parse(names[p], &out), 0);
        assert_int_equal(out, p);
    }
    enum sandbox_phase out = SANDBOX_RUNNING;
    assert_int_equal(sandbox_phase_parse("", &out), -1);
    assert_int_equal(sandbox_phase_parse("Running", &out), -1);
    assert_int_equal(sandbox_phase_parse("paused", &out), -1);
    assert_int_equal(sandbox_phase_parse("running ", &out), -1);
    assert_int_equal(out, SANDBOX_RUNNING);
    assert_string_equal(sandbox_phase_name((enum sandbox_phase)6), "invalid");
    assert_string_equal(sandbox_phase_name((enum sandbox_phase)-1), "invalid");
}

static void test_phase_allowed(void **state)
{
    (void)state;
    enum { C = SANDBOX_CREATED, S = SANDBOX_STARTING, R = SANDBOX_RUNNING, P = SANDBOX_STOPPING,
           F = SANDBOX_FAILED, G = SANDBOX_GONE };
    /* allowed[from][to], rows/columns in enum order: created starting running stopping failed gone */
    static const bool allowed[6][6] = {
        [C] = {[C] = 1, [S] = 1, [R] = 0, [P] = 1, [F] = 0, [G] = 0},
        [S] = {[C] = 0, [S] = 1, [R] = 1, [P] = 0, [F] = 1, [G] = 0},
        [R] = {[C] = 0, [S] = 0, [R] = 1, [P] = 1, [F] = 0, [G] = 0},
        [P] = {[C] = 0, [S] = 0, [R] = 0, [P] = 1, [F] = 0, [G] = 1},
        [F] = {[C] = 0, [S] = 1, [R] = 0, [P] = 1, [F] = 1, [G] = 0},
        [G] = {[C] = 0, [S] = 0, [R] = 0, [P] = 0, [F] = 0, [G] = 0},
    };
    for (int from = 0; from < 6; from++)
        for (int to = 0; to < 6; to++)
            if (sandbox_phase_allowed((enum sandbox_phase)from, (enum sandbox_phase)to) != allowed[from][to])
                fail_msg("%s -> %s: got %d, want %d", sandbox_phase_name((enum sandbox_phase)from),
                         sandbox_phase_name((enum sandbox_phase)to), !allowed[from][to], allowed[from][to]);
}

static void test_phase_recover(void **state)
{
    (void)state;
    /* Synced before acting: a VM about to be created, a deletion owed; nothing else. */
    assert_true(sandbox_phase_durable(SANDBOX_STARTING));
    assert_true(sandbox_phase_durable(SANDBOX_STOPPING));
    assert_false(sandbox_phase_durable(SANDBOX_CREATED));
    assert_false(sandbox_phase_durable(SANDBOX_RUNNING));
    assert_false(sandbox_phase_durable(SANDBOX_FAILED));
    assert_int_equal(sandbox_phase_recover(SANDBOX_CREATED), SANDBOX_CREATED);
    assert_int_equal(sandbox_phase_recover(SANDBOX_STARTING), SANDBOX_FAILED);
    assert_int_equal(sandbox_phase_recover(SANDBOX_RUNNING), SANDBOX_RUNNING);
    assert_int_equal(sandbox_phase_recover(SANDBOX_STOPPING), SANDBOX_STOPPING);
    assert_int_equal(sandbox_phase_recover(SANDBOX_FAILED), SANDBOX_FAILED);
    assert_int_equal(sandbox_phase_recover(SANDBOX_GONE), SANDBOX_GONE);
}

/* ---- JSON ----------------------------------------------------------------------------- */

static struct sandbox *make_full(const char *id, enum sandbox_phase phase)
{
    struct sandbox *sb = sandbox_new(id);
    assert_non_null(sb);
    sb->phase = phase;
    sb->pod.pod_name = strdup("nginx-866fdb5bfb-b98nw");
    sb->pod.pod_namespace = strdup("default");
    sb->pod.machine_type = strdup("Standard_DC4as_v5");
    sb->pod.image = strdup("/subscriptions/x/images/podvm \"quoted\" \\ \xc3\xa9");
    sb->pod.gpu_model = strdup("tesla");
    sb->pod.initdata = strdup("SECRET-INITDATA-BODY");
    sb->pod.vcpus = 2;
    sb->pod.memory_mib = 4096;
    sb->pod.gpus = 1;
    sb->pod.gpus_annotated = true;
    sb->netns_path = strdup("/var/run/netns/cni-1234");
    sb->vni = 555123;
    snprintf(sb->pod_if, sizeof(sb->pod_if), "eth0");
    sb->net_dedicated = true;
    snprintf(sb->inst.name, sizeof(sb->inst.name), "podvm-nginx-866fdb5b-%.8s", id);
    snprintf(sb->inst.id, sizeof(sb->inst.id), "/subscriptions/s/resourceGroups/g/providers/vm/%s", id);
    snprintf(sb->inst.ips[0], sizeof(sb->inst.ips[0]), "10.0.0.4");
    snprintf(sb->inst.ips[1], sizeof(sb->inst.ips[1]), "fd00::1234:5678:9abc:def0");
    sb->inst.n_ips = 2;
    sb->created_unix = 1700000000;
    sb->delete_attempts = 3;
    snprintf(sb->boot_id, sizeof(sb->boot_id), "0b5e7d2c-3f4a-4b6e-9c1d-2a8f6e4b7c90");
    return sb;
}

static void assert_same_record(const struct sandbox *a, const struct sandbox *b)
{
    assert_string_equal(a->id, b->id);
    assert_int_equal(a->phase, b->phase);
    assert_string_equal(a->pod.pod_name, b->pod.pod_name);
    assert_string_equal(a->pod.pod_namespace, b->pod.pod_namespace);
    assert_string_equal(a->pod.machine_type, b->pod.machine_type);
    assert_string_equal(a->pod.image, b->pod.image);
    assert_string_equal(a->pod.gpu_model, b->pod.gpu_model);
    assert_int_equal(a->pod.vcpus, b->pod.vcpus);
    assert_int_equal(a->pod.memory_mib, b->pod.memory_mib);
    assert_int_equal(a->pod.gpus, b->pod.gpus);
    assert_int_equal(a->pod.gpus_annotated, b->pod.gpus_annotated);
    assert_string_equal(a->netns_path, b->netns_path);
    assert_int_equal(a->vni, b->vni);
    assert_string_equal(a->pod_if, b->pod_if);
    assert_int_equal(a->net_dedicated, b->net_dedicated);
    assert_string_equal(a->inst.name, b->inst.name);
    assert_string_equal(a->inst.id, b->inst.id);
    assert_int_equal(a->inst.n_ips, b->inst.n_ips);
    for (unsigned i = 0; i < a->inst.n_ips; i++)
        assert_string_equal(a->inst.ips[i], b->inst.ips[i]);
    assert_true(a->created_unix == b->created_unix);
    assert_int_equal(a->delete_attempts, b->delete_attempts);
    assert_string_equal(a->boot_id, b->boot_id);
}

static void test_json_roundtrip(void **state)
{
    (void)state;
    for (int phase = SANDBOX_CREATED; phase <= SANDBOX_GONE; phase++) {
        struct sandbox *sb = make_full("sb-1", (enum sandbox_phase)phase);
        char *json = sandbox_json_encode(sb);
        assert_non_null(json);
        /* initdata is never persisted (it may hold secrets). */
        assert_null(strstr(json, "SECRET-INITDATA-BODY"));
        struct sandbox *back = sandbox_new("sb-1");
        char err[256] = "";
        if (sandbox_json_decode(back, json, strlen(json), err, sizeof(err)))
            fail_msg("decode failed: %s\n%s", err, json);
        assert_same_record(sb, back);
        assert_non_null(back->pod.initdata);
        assert_string_equal(back->pod.initdata, "");
        assert_string_equal(back->inst.sandbox_id, "sb-1");
        /* Runtime fields start empty. */
        assert_null(back->op);
        assert_null(back->retry);
        free(json);
        sandbox_free(sb);
        sandbox_free(back);
    }
}

/* A fresh record (NULL strings, no instance) survives too, with strings read back as "". */
static void test_json_roundtrip_empty(void **state)
{
    (void)state;
    struct sandbox *sb = sandbox_new("fresh");
    assert_non_null(sb);
    time_t now = time(NULL);
    assert_true(sb->created_unix >= now - 5 && sb->created_unix <= now);
    assert_int_equal(sb->phase, SANDBOX_CREATED);
    char *json = sandbox_json_encode(sb);
    assert_non_null(json);
    struct sandbox *back = sandbox_new("fresh");
    char err[256];
    assert_int_equal(sandbox_json_decode(back, json, strlen(json), err, sizeof(err)), 0);
    assert_int_equal(back->phase, SANDBOX_CREATED);
    assert_string_equal(back->pod.pod_name, "");
    assert_string_equal(back->pod.pod_namespace, "");
    assert_string_equal(back->pod.image, "");
    assert_string_equal(back->netns_path, "");
    assert_string_equal(back->inst.name, "");
    assert_string_equal(back->inst.id, "");
    assert_int_equal(back->inst.n_ips, 0);
    assert_true(back->created_unix == sb->created_unix);
    assert_int_equal(back->delete_attempts, 0);
    free(json);
    sandbox_free(sb);
    sandbox_free(back);
    sandbox_free(NULL);
}

/* Decoding twice into the same record replaces (and frees) the earlier strings. */
static void test_json_decode_twice(void **state)
{
    (void)state;
    struct sandbox *a = make_full("twice", SANDBOX_RUNNING);
    struct sandbox *b = make_full("twice", SANDBOX_STOPPING);
    free(b->pod.pod_name);
    b->pod.pod_name = strdup("other");
    b->inst.n_ips = 1;
    char *ja = sandbox_json_encode(a), *jb = sandbox_json_encode(b);
    struct sandbox *x = sandbox_new("twice");
    char err[256];
    assert_int_equal(sandbox_json_decode(x, ja, strlen(ja), err, sizeof(err)), 0);
    assert_int_equal(sandbox_json_decode(x, jb, strlen(jb), err, sizeof(err)), 0);
    assert_same_record(b, x);
    free(ja);
    free(jb);
    sandbox_free(a);
    sandbox_free(b);
    sandbox_free(x);
}

static void test_json_decode_lenient(void **state)
{
    (void)state;
    /* Out-of-range numbers are clamped, wrong types read as empty, extra ips dropped. */
    const char *j = "{\"id\":\"x\",\"phase\":\"running\",\"vcpus\":-4,\"memory_mib\":1099511627776,"
                    "\"gpus\":\"2\",\"pod_name\":7,\"delete_attempts\":5,\"unknown\":[1,2],"
                    "\"instance\":{\"name\":\"vm\",\"id\":\"i-1\",\"ips\":[\"1.1.1.1\",\"2.2.2.2\",\"3.3.3.3\"]}}";
    struct sandbox *sb = sandbox_new("x");
    char err[256];
    assert_int_equal(sandbox_json_decode(sb, j, strlen(j), err, sizeof(err)), 0);
    assert_int_equal(sb->phase, SANDBOX_RUNNING);
    assert_int_equal(sb->pod.vcpus, 0);
    assert_int_equal(sb->pod.memory_mib, UINT32_MAX);
    assert_int_equal(sb->pod.gpus, 0);
    assert_string_equal(sb->pod.pod_name, "");
    assert_int_equal(sb->delete_attempts, 5);
    assert_string_equal(sb->inst.name, "vm");
    assert_string_equal(sb->inst.id, "i-1");
    assert_int_equal(sb->inst.n_ips, PROVIDER_IPS_MAX);
    assert_string_equal(sb->inst.ips[0], "1.1.1.1");
    assert_string_equal(sb->inst.ips[1], "2.2.2.2");
    sandbox_free(sb);
    /* Only a length is given: the text need not be NUL-terminated. */
    const char *k = "{\"id\":\"y\",\"phase\":\"gone\"}GARBAGE";
    sb = sandbox_new("y");
    assert_int_equal(sandbox_json_decode(sb, k, strlen(k) - 7, err, sizeof(err)), 0);
    assert_int_equal(sb->phase, SANDBOX_GONE);
    sandbox_free(sb);
}

struct json_bad {
    const char *id, *text, *want;
};

static void test_json_decode_errors(void **state)
{
    (void)state;
    char name64[65], id512[513], longjson[1024];
    memset(name64, 'n', 64);
    name64[64] = '\0';
    memset(id512, 'i', 512);
    id512[512] = '\0';
    const struct json_bad cases[] = {
        {"x", "", "JSON"},
        {"x", "not json", "JSON"},
        {"x", "{\"id\":\"x\",\"phase\":\"running\"", "JSON"},
        {"x", "[1,2]", "JSON"},
        {"x", "\"x\"", "JSON"},
        {"x", "{\"id\":\"y\",\"phase\":\"running\"}", "id"},
        {"x", "{\"phase\":\"running\"}", "id"},
        {"x", "{\"id\":7,\"phase\":\"running\"}", "id"},
        {"x", "{\"id\":\"X\",\"phase\":\"running\"}", "id"},
        {"x", "{\"id\":\"x\",\"phase\":\"paused\"}", "phase"},
        {"x", "{\"id\":\"x\"}", "phase"},
        {"x", "{\"id\":\"x\",\"phase\":1}", "phase"},
        {"x", "{\"id\":\"x\",\"phase\":\"RUNNING\"}", "phase"},
        {"x", NULL, "too long"}, /* instance name of 64 chars */
        {"x", NULL, "too long"}, /* instance id of 512 chars */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const char *text = cases[i].text;
        if (!text) {
            snprintf(longjson, sizeof(longjson), "{\"id\":\"x\",\"phase\":\"running\",\"instance\":{\"name\":\"%s\","
                     "\"id\":\"%s\"}}", i == 13 ? name64 : "vm", i == 13 ? "i" : id512);
            text = longjson;
        }
        struct sandbox *sb = sandbox_new(cases[i].id);
        char err[256] = "";
        if (!sandbox_json_decode(sb, text, strlen(text), err, sizeof(err)))
            fail_msg("case %zu decoded: %s", i, text);
        assert_true(strlen(err) > 0);
        assert_contains(err, cases[i].want);
        sandbox_free(sb);
    }
    /* The longest name and id that fit are fine. */
    snprintf(longjson, sizeof(longjson), "{\"id\":\"x\",\"phase\":\"running\",\"instance\":{\"name\":\"%.63s\","
             "\"id\":\"%.511s\"}}", name64, id512);
    struct sandbox *sb = sandbox_new("x");
    char err[256];
    assert_int_equal(sandbox_json_decode(sb, longjson, strlen(longjson), err, sizeof(err)), 0);
    assert_int_equal(strlen(sb->inst.name), 63);
    assert_int_equal(strlen(sb->inst.id), 511);
    sandbox_free(sb);
}

static void test_sandbox_new_truncates(void **state)
{
    (void)state;
    char id[300];
    memset(id, 'q', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    struct sandbox *sb = sandbox_new(id);
    assert_non_null(sb);
    assert_int_equal(strlen(sb->id), SANDBOX_ID_MAX);
    sandbox_free(sb);
}

static void test_sandbox_path(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(sandbox_path(out, sizeof(out), "/run/peerpod/pods", "abc", "agent.ttrpc"), 0);
    assert_string_equal(out, "/run/peerpod/pods/abc/agent.ttrpc");
    assert_int_equal(sandbox_path(out, sizeof(out), "/run/peerpod/pods", "abc", NULL), 0);
    assert_string_equal(out, "/run/peerpod/pods/abc");
    /* Exactly fitting (63 chars + NUL) and one too many. */
    char dir[64];
    memset(dir, 'd', sizeof(dir));
    dir[0] = '/';
    dir[63 - 4] = '\0'; /* "/ddd..." of 59 chars + "/a/b" = 63 */
    assert_int_equal(sandbox_path(out, sizeof(out), dir, "a", "b"), 0);
    assert_int_equal(strlen(out), 63);
    assert_int_equal(sandbox_path(out, sizeof(out), dir, "ab", "b"), -1);
}

/* ---- store --------------------------------------------------------------------------- */

struct store_fixture {
    uv_loop_t loop;
    char dir[64];
    char pods[128];
    struct sandbox_store st;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int store_setup(void **state)
{
    struct store_fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_sandbox.XXXXXX");
    if (!mkdtemp(f->dir) || uv_loop_init(&f->loop))
        return -1;
    snprintf(f->pods, sizeof(f->pods), "%s/pods", f->dir);
    if (sandbox_store_init(&f->st, &f->loop, f->pods))
        return -1;
    *state = f;
    return 0;
}

static int store_teardown(void **state)
{
    struct store_fixture *f = *state;
    sandbox_store_free(&f->st);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc ? -1 : 0;
}

struct io_result {
    int calls;
    int err;
};

static void io_cb(void *arg, int err)
{
    struct io_result *r = arg;
    r->calls++;
    r->err = err;
}

static void run_until_done(struct store_fixture *f, struct io_result *r, int calls)
{
    for (int i = 0; i < 1000 && r->calls < calls; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(r->calls, calls);
    assert_int_equal(f->st.io_pending, 0);
}

static void count_cb(struct sandbox *sb, void *arg)
{
    (void)sb;
    (*(size_t *)arg)++;
}

static void remove_odd_cb(struct sandbox *sb, void *arg)
{
    struct sandbox_store *st = arg;
    if ((sb->id[strlen(sb->id) - 1] - '0') % 2) {
        sandbox_store_remove(st, sb);
        sandbox_free(sb);
    }
}

static void test_store_basic(void **state)
{
    struct store_fixture *f = *state;
    struct sandbox_store *st = &f->st;
    assert_ptr_equal(st->loop, &f->loop);
    assert_string_equal(st->dir, f->pods);
    assert_int_equal(st->count, 0);
    assert_null(sandbox_store_get(st, "nope"));

    /* Many records: bucket chains are exercised. */
    char id[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof(id), "sb-%d", i);
        struct sandbox *sb = sandbox_new(id);
        assert_non_null(sb);
        assert_int_equal(sandbox_store_insert(st, sb), 0);
    }
    assert_int_equal(st->count, 3000);
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof(id), "sb-%d", i);
        struct sandbox *sb = sandbox_store_get(st, id);
        assert_non_null(sb);
        assert_string_equal(sb->id, id);
    }
    /* Duplicate id refused; the caller keeps ownership. */
    struct sandbox *dup = sandbox_new("sb-7");
    assert_int_equal(sandbox_store_insert(st, dup), -1);
    assert_int_equal(st->count, 3000);
    assert_ptr_not_equal(sandbox_store_get(st, "sb-7"), dup);
    sandbox_free(dup);

    size_t n = 0;
    sandbox_store_foreach(st, count_cb, &n);
    assert_int_equal(n, 3000);

    /* Remove one: gone from the index, the caller owns it. */
    struct sandbox *sb = sandbox_store_get(st, "sb-42");
    sandbox_store_remove(st, sb);
    assert_int_equal(st->count, 2999);
    assert_null(sandbox_store_get(st, "sb-42"));
    assert_null(sb->hnext);
    /* Removing it again is a no-op. */
    sandbox_store_remove(st, sb);
    assert_int_equal(st->count, 2999);
    /* And it can be re-inserted. */
    assert_int_equal(sandbox_store_insert(st, sb), 0);
    assert_ptr_equal(sandbox_store_get(st, "sb-42"), sb);

    /* foreach may remove the record it is called with. */
    sandbox_store_foreach(st, remove_odd_cb, st);
    assert_int_equal(st->count, 1500);
    assert_null(sandbox_store_get(st, "sb-1"));
    assert_non_null(sandbox_store_get(st, "sb-2"));
    n = 0;
    sandbox_store_foreach(st, count_cb, &n);
    assert_int_equal(n, 1500);
    /* The rest is freed by the teardown (sandbox_store_free). */
}

static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static bool exists(const char *path)
{
    struct stat s;
    return lstat(path, &s) == 0;
}

static void test_store_save(void **state)
{
    struct store_fixture *f = *state;
    struct sandbox *sb = make_full("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                                   SANDBOX_RUNNING);
    struct io_result r = {0, -1};
    /* The pods dir does not exist yet: save creates it. */
    assert_int_equal(sandbox_store_save(&f->st, sb, io_cb, &r), 0);
    assert_int_equal(f->st.io_pending, 1);
    run_until_done(f, &r, 1);
    assert_int_equal(r.err, 0);

    char path[512], dirpath[512], tmp[512];
    snprintf(dirpath, sizeof(dirpath), "%s/%s", f->pods, sb->id);
    snprintf(path, sizeof(path), "%s/%s/sandbox.json", f->pods, sb->id);
    snprintf(tmp, sizeof(tmp), "%s/%s/sandbox.json.tmp", f->pods, sb->id);
    struct stat s;
    assert_int_equal(stat(path, &s), 0);
    assert_true(S_ISREG(s.st_mode));
    assert_int_equal(s.st_mode & 07777, 0600);
    assert_int_equal(stat(dirpath, &s), 0);
    assert_true(S_ISDIR(s.st_mode));
    assert_int_equal(s.st_mode & 0077, 0); /* not readable by others */
    assert_false(exists(tmp));

    /* The file holds the record. */
    const char *text = read_text(path);
    assert_non_null(text);
    assert_null(strstr(text, "SECRET-INITDATA-BODY"));
    struct sandbox *back = sandbox_new(sb->id);
    char err[256];
    assert_int_equal(sandbox_json_decode(back, text, strlen(text), err, sizeof(err)), 0);
    assert_same_record(sb, back);
    sandbox_free(back);

    /* A second save replaces the content; no callback is fine too. */
    sb->phase = SANDBOX_STOPPING;
    sb->delete_attempts = 8;
    assert_int_equal(sandbox_store_save(&f->st, sb, io_cb, &r), 0);
    run_until_done(f, &r, 2);
    assert_int_equal(r.err, 0);
    sb->delete_attempts = 9;
    assert_int_equal(sandbox_store_save(&f->st, sb, NULL, NULL), 0);
    assert_int_equal(f->st.io_pending, 1);
    for (int i = 0; i < 1000 && f->st.io_pending; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->st.io_pending, 0);
    text = read_text(path);
    back = sandbox_new(sb->id);
    assert_int_equal(sandbox_json_decode(back, text, strlen(text), err, sizeof(err)), 0);
    assert_int_equal(back->phase, SANDBOX_STOPPING);
    assert_int_equal(back->delete_attempts, 9);
    sandbox_free(back);
    assert_int_equal(stat(path, &s), 0);
    assert_int_equal(s.st_mode & 07777, 0600);
    assert_false(exists(tmp));

    /* Erase removes the directory and everything in it. */
    snprintf(tmp, sizeof(tmp), "%s/%s/agent.ttrpc", f->pods, sb->id);
    write_text(tmp, "x");
    assert_int_equal(sandbox_store_erase(&f->st, sb->id, io_cb, &r), 0);
    run_until_done(f, &r, 3);
    assert_int_equal(r.err, 0);
    assert_false(exists(dirpath));
    /* Erasing what does not exist succeeds. */
    assert_int_equal(sandbox_store_erase(&f->st, sb->id, io_cb, &r), 0);
    run_until_done(f, &r, 4);
    assert_int_equal(r.err, 0);
    sandbox_free(sb);
}

static void test_store_save_error(void **state)
{
    struct store_fixture *f = *state;
    /* The pods dir path is a regular file: the write fails with an errno in the callback. */
    write_text(f->pods, "not a directory");
    struct sandbox *sb = make_full("sb-err", SANDBOX_CREATED);
    struct io_result r = {0, 0};
    assert_int_equal(sandbox_store_save(&f->st, sb, io_cb, &r), 0);
    run_until_done(f, &r, 1);
    assert_int_not_equal(r.err, 0);
    sandbox_free(sb);
    /* load cannot use it either, and says which setting is wrong. */
    char err[512] = "";
    assert_int_equal(sandbox_store_load(&f->st, NULL, err, sizeof(err)), -1);
    assert_contains(err, "PODS_DIR");
    unlink(f->pods);
}

static void save_sync(struct store_fixture *f, const struct sandbox *sb)
{
    struct io_result r = {0, -1};
    assert_int_equal(sandbox_store_save(&f->st, sb, io_cb, &r), 0);
    run_until_done(f, &r, 1);
    assert_int_equal(r.err, 0);
}

static void test_store_load(void **state)
{
    struct store_fixture *f = *state;
    const enum sandbox_phase phases[] = {SANDBOX_CREATED, SANDBOX_STARTING, SANDBOX_RUNNING, SANDBOX_STOPPING,
                                         SANDBOX_FAILED};
    struct sandbox *orig[ARRAY_LEN(phases)];
    for (size_t i = 0; i < ARRAY_LEN(phases); i++) {
        char id[16];
        snprintf(id, sizeof(id), "pod-%zu", i);
        orig[i] = make_full(id, phases[i]);
        save_sync(f, orig[i]);
    }
    char path[512];
    /* A directory with no record (CreateVM cut off): removed by load, with its files. */
    snprintf(path, sizeof(path), "%s/incomplete", f->pods);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/incomplete/sandbox.json.tmp", f->pods);
    write_text(path, "{");
    snprintf(path, sizeof(path), "%s/empty-dir", f->pods);
    assert_int_equal(mkdir(path, 0700), 0);
    /* A corrupt record: skipped, left in place for a human. */
    snprintf(path, sizeof(path), "%s/corrupt", f->pods);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/corrupt/sandbox.json", f->pods);
    write_text(path, "{\"id\":\"corrupt\",\"phase\":");
    /* A record whose id does not match its directory: skipped, left in place. */
    snprintf(path, sizeof(path), "%s/mismatch", f->pods);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/mismatch/sandbox.json", f->pods);
    write_text(path, "{\"id\":\"other\",\"phase\":\"running\"}");
    /* Names that are not sandbox ids: ignored, even without a record. */
    snprintf(path, sizeof(path), "%s/a b", f->pods);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/x:y", f->pods);
    assert_int_equal(mkdir(path, 0700), 0);
    /* A stray regular file with a sandbox-like name: not loaded, not removed. */
    snprintf(path, sizeof(path), "%s/stray-file", f->pods);
    write_text(path, "x");

    struct sandbox_store st2;
    assert_int_equal(sandbox_store_init(&st2, &f->loop, f->pods), 0);
    char err[512] = "";
    int n = sandbox_store_load(&st2, NULL, err, sizeof(err));
    if (n != (int)ARRAY_LEN(phases))
        fail_msg("load returned %d (%s), want %zu", n, err, ARRAY_LEN(phases));
    assert_int_equal(st2.count, ARRAY_LEN(phases));
    for (size_t i = 0; i < ARRAY_LEN(phases); i++) {
        struct sandbox *sb = sandbox_store_get(&st2, orig[i]->id);
        assert_non_null(sb);
        /* STARTING comes back as FAILED (its instance is rolled back); the rest as saved. */
        enum sandbox_phase want = phases[i] == SANDBOX_STARTING ? SANDBOX_FAILED : phases[i];
        assert_int_equal(sb->phase, want);
        orig[i]->phase = want;
        assert_same_record(orig[i], sb);
        assert_string_equal(sb->inst.sandbox_id, orig[i]->id);
        sandbox_free(orig[i]);
    }
    assert_null(sandbox_store_get(&st2, "corrupt"));
    assert_null(sandbox_store_get(&st2, "mismatch"));
    assert_null(sandbox_store_get(&st2, "incomplete"));

    snprintf(path, sizeof(path), "%s/incomplete", f->pods);
    assert_false(exists(path));
    snprintf(path, sizeof(path), "%s/empty-dir", f->pods);
    assert_false(exists(path));
    snprintf(path, sizeof(path), "%s/corrupt/sandbox.json", f->pods);
    assert_true(exists(path));
    snprintf(path, sizeof(path), "%s/mismatch/sandbox.json", f->pods);
    assert_true(exists(path));
    snprintf(path, sizeof(path), "%s/a b", f->pods);
    assert_true(exists(path));
    snprintf(path, sizeof(path), "%s/x:y", f->pods);
    assert_true(exists(path));
    snprintf(path, sizeof(path), "%s/stray-file", f->pods);
    assert_true(exists(path));

    /* Loading again into the same store: records already present are not duplicated. */
    n = sandbox_store_load(&st2, NULL, err, sizeof(err));
    assert_int_equal(n, 0);
    assert_int_equal(st2.count, ARRAY_LEN(phases));
    sandbox_store_free(&st2);
}

static void test_boot_is_previous(void **state)
{
    (void)state;
    assert_true(sandbox_boot_is_previous("b-1", "b-2"));
    assert_false(sandbox_boot_is_previous("b-1", "b-1"));
    /* A record from before boot ids were kept, or an unreadable boot id: never "previous",
     * so an upgrade or a locked-down /proc does not delete running pods. */
    assert_false(sandbox_boot_is_previous("", "b-2"));
    assert_false(sandbox_boot_is_previous("b-1", ""));
    assert_false(sandbox_boot_is_previous("", ""));
}

/* Records name the boot they were created in; load marks those of another boot. */
static void test_store_boot_id(void **state)
{
    struct store_fixture *f = *state;
    const char *boots[] = {"this-boot", "an-earlier-boot", ""};
    for (size_t i = 0; i < ARRAY_LEN(boots); i++) {
        char id[16];
        snprintf(id, sizeof(id), "boot-%zu", i);
        struct sandbox *sb = make_full(id, SANDBOX_RUNNING);
        snprintf(sb->boot_id, sizeof(sb->boot_id), "%s", boots[i]);
        save_sync(f, sb);
        sandbox_free(sb);
    }
    char bootfile[256], err[256] = "";
    snprintf(bootfile, sizeof(bootfile), "%s/boot_id", f->dir);
    write_text(bootfile, "this-boot\n");
    struct sandbox_store st2;
    assert_int_equal(sandbox_store_init(&st2, &f->loop, f->pods), 0);
    assert_int_equal(sandbox_store_load(&st2, bootfile, err, sizeof(err)), 3);
    assert_string_equal(st2.boot_id, "this-boot");
    assert_false(sandbox_store_get(&st2, "boot-0")->previous_boot);
    assert_true(sandbox_store_get(&st2, "boot-1")->previous_boot);
    assert_string_equal(sandbox_store_get(&st2, "boot-1")->boot_id, "an-earlier-boot");
    assert_false(sandbox_store_get(&st2, "boot-2")->previous_boot);
    sandbox_store_free(&st2);

    /* Without a readable boot id nothing is marked. */
    snprintf(bootfile, sizeof(bootfile), "%s/no-such-file", f->dir);
    assert_int_equal(sandbox_store_init(&st2, &f->loop, f->pods), 0);
    assert_int_equal(sandbox_store_load(&st2, bootfile, err, sizeof(err)), 3);
    assert_string_equal(st2.boot_id, "");
    for (size_t i = 0; i < ARRAY_LEN(boots); i++) {
        char id[16];
        snprintf(id, sizeof(id), "boot-%zu", i);
        assert_false(sandbox_store_get(&st2, id)->previous_boot);
    }
    sandbox_store_free(&st2);
}

/* A running record's namespace: gone only when its file is missing and its directory is not. */
static void test_netns_gone(void **state)
{
    struct store_fixture *f = *state;
    char nsdir[256], nsfile[300];
    snprintf(nsdir, sizeof(nsdir), "%s/netns", f->dir);
    snprintf(nsfile, sizeof(nsfile), "%s/cni-1234", nsdir);
    assert_int_equal(mkdir(nsdir, 0755), 0);
    write_text(nsfile, "");
    struct sandbox *sb = sandbox_new("sb-ns");
    sb->netns_path = strdup(nsfile);
    sb->vni = 555001;
    assert_false(sandbox_netns_gone(sb)); /* still there */
    assert_int_equal(unlink(nsfile), 0);
    assert_true(sandbox_netns_gone(sb));
    sb->vni = 0; /* no tunnel: its namespace was never ours to look at */
    assert_false(sandbox_netns_gone(sb));
    sb->vni = 555001;
    assert_int_equal(rmdir(nsdir), 0); /* no /run/netns at all: nothing can be told */
    assert_false(sandbox_netns_gone(sb));
    free(sb->netns_path);
    sb->netns_path = strdup("");
    assert_false(sandbox_netns_gone(sb));
    sandbox_free(sb);
}

static void test_store_load_creates_dir(void **state)
{
    struct store_fixture *f = *state;
    struct sandbox_store st2;
    char deep[256];
    snprintf(deep, sizeof(deep), "%s/a/b/c", f->dir);
    assert_int_equal(sandbox_store_init(&st2, &f->loop, deep), 0);
    char err[256];
    assert_int_equal(sandbox_store_load(&st2, NULL, err, sizeof(err)), 0);
    struct stat s;
    assert_int_equal(stat(deep, &s), 0);
    assert_true(S_ISDIR(s.st_mode));
    assert_int_equal(st2.count, 0);
    sandbox_store_free(&st2);
}


/* A symlink in the pods dir (whoever put it there) must not make load delete the files of
 * the directory it points to: remove_dir_flat promises it "never follows links". */
static void test_store_load_symlink_not_followed(void **state)
{
    struct store_fixture *f = *state;
    char target[256], file[300], link[256];
    snprintf(target, sizeof(target), "%s/precious", f->dir);
    assert_int_equal(mkdir(target, 0700), 0);
    snprintf(file, sizeof(file), "%s/data.txt", target);
    write_text(file, "keep me");
    assert_int_equal(mkdir(f->pods, 0755), 0);
    snprintf(link, sizeof(link), "%s/linked-sandbox", f->pods);
    assert_int_equal(symlink(target, link), 0);
    char err[256];
    assert_int_equal(sandbox_store_load(&f->st, NULL, err, sizeof(err)), 0);
    if (!exists(file))
        fail_msg("sandbox_store_load deleted %s through the symlink %s", file, link);
}

static bool is_running(const struct sandbox *sb)
{
    return sb->phase == SANDBOX_RUNNING;
}

static void test_store_find_pod(void **state)
{
    struct store_fixture *f = *state;
    struct sandbox *bare = sandbox_new("bare"); /* no pod names yet */
    struct sandbox *stopping = make_full("a-stopping", SANDBOX_STOPPING);
    struct sandbox *running = make_full("b-running", SANDBOX_RUNNING);
    struct sandbox *other = make_full("c-other", SANDBOX_RUNNING);
    free(other->pod.pod_namespace);
    other->pod.pod_namespace = strdup("kube-system");
    assert_int_equal(sandbox_store_insert(&f->st, bare), 0);
    assert_int_equal(sandbox_store_insert(&f->st, stopping), 0);
    assert_int_equal(sandbox_store_insert(&f->st, running), 0);
    assert_int_equal(sandbox_store_insert(&f->st, other), 0);
    const char *pod = "nginx-866fdb5bfb-b98nw";
    assert_ptr_equal(sandbox_store_find_pod(&f->st, "default", pod, is_running), running);
    const struct sandbox *any = sandbox_store_find_pod(&f->st, "default", pod, NULL);
    assert_true(any == running || any == stopping);
    assert_ptr_equal(sandbox_store_find_pod(&f->st, "kube-system", pod, is_running), other);
    assert_null(sandbox_store_find_pod(&f->st, "default", "nginx", NULL));
    assert_null(sandbox_store_find_pod(&f->st, "other", pod, NULL));
    sandbox_store_remove(&f->st, running);
    sandbox_free(running);
    assert_null(sandbox_store_find_pod(&f->st, "default", pod, is_running));
}

/* On tmpfs (as /run/peerpod on a node) with a turn, records are written on the loop thread:
 * the file is there when save returns, no pool job is pending, and the callback still comes
 * in a later turn, never from inside the call. */
static void test_store_memory_fs(void **state)
{
    (void)state;
    struct statfs fs;
    if (statfs("/dev/shm", &fs) || fs.f_type != TMPFS_MAGIC)
        skip(); /* no tmpfs to try it on */
    char dir[64], pods[96];
    snprintf(dir, sizeof(dir), "/dev/shm/test_sandbox.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(pods, sizeof(pods), "%s/pods", dir);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct turn turn;
    turn_init(&turn, &loop, 0, NULL);
    struct sandbox_store st;
    assert_int_equal(sandbox_store_init(&st, &loop, pods), 0);
    st.turn = &turn;
    char err[256];
    assert_int_equal(sandbox_store_load(&st, NULL, err, sizeof(err)), 0);
    assert_true(st.memory_fs);

    struct sandbox *sb = make_full("memfs-1", SANDBOX_STARTING); /* a durable phase */
    sb->userdata = (uint8_t *)strdup("#cloud-config\n");
    sb->userdata_len = strlen((char *)sb->userdata);
    struct io_result r = {0, -1};
    assert_int_equal(sandbox_store_save_userdata(&st, sb, io_cb, &r), 0);
    assert_int_equal(r.calls, 0);
    assert_int_equal(st.io_pending, 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/memfs-1/sandbox.json", pods);
    assert_true(exists(path));
    snprintf(path, sizeof(path), "%s/memfs-1/userdata", pods);
    assert_string_equal(read_text(path), "#cloud-config\n");
    for (int i = 0; i < 100 && !r.calls; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, 0);

    /* A failed write is reported the same way: a file where the sandbox dir should be. */
    struct sandbox *bad = make_full("memfs-2", SANDBOX_RUNNING);
    snprintf(path, sizeof(path), "%s/memfs-2", pods);
    write_text(path, "not a directory");
    assert_int_equal(sandbox_store_save(&st, bad, io_cb, &r), 0);
    for (int i = 0; i < 100 && r.calls < 2; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(r.calls, 2);
    assert_int_equal(r.err, ENOTDIR);
    unlink(path);
    sandbox_free(bad);

    assert_int_equal(sandbox_store_erase(&st, sb->id, io_cb, &r), 0);
    snprintf(path, sizeof(path), "%s/memfs-1", pods);
    assert_false(exists(path));
    for (int i = 0; i < 100 && r.calls < 3; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(r.calls, 3);
    assert_int_equal(r.err, 0);

    sandbox_free(sb);
    sandbox_store_free(&st);
    turn_close(&turn, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
#define S(fn) cmocka_unit_test_setup_teardown(fn, store_setup, store_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_check),
        cmocka_unit_test(test_phase_names),
        cmocka_unit_test(test_phase_allowed),
        cmocka_unit_test(test_phase_recover),
        cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_json_roundtrip_empty),
        cmocka_unit_test(test_json_decode_twice),
        cmocka_unit_test(test_json_decode_lenient),
        cmocka_unit_test(test_json_decode_errors),
        cmocka_unit_test(test_sandbox_new_truncates),
        cmocka_unit_test(test_sandbox_path),
        S(test_store_basic),
        S(test_store_save),
        S(test_store_save_error),
        S(test_store_load),
        S(test_store_load_creates_dir),
        cmocka_unit_test(test_boot_is_previous),
        S(test_netns_gone),
        S(test_store_boot_id),
        S(test_store_load_symlink_not_followed),
        cmocka_unit_test(test_store_memory_fs),
        S(test_store_find_pod),
    };
#undef S
    return cmocka_run_group_tests(tests, NULL, NULL);
}
