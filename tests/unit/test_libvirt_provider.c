/* Integration tests of providers/libvirt on libvirt's test driver with the shipped node
 * (config/libvirt-test-node.xml), no daemon: the provider runs on a real libuv loop and thread
 * pool, and the test inspects the node through the provider's own connection (a second
 * connection to a node file would see a fresh copy). Covers create (volumes, backing store,
 * ISO, domain XML with the marker, address), list, delete (twice), the rollbacks (missing
 * image, unknown network, deadline, cancel), a leftover domain of the same name, concurrent
 * creates, the address reported within one poll step, and shutdown with work in flight.
 * Run from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "libvirt/libvirt_provider.h"
#include "provider.h"

const struct provider_ops *const provider_table[] = {NULL};

#define NODE "config/libvirt-test-node.xml"

struct env {
    uv_loop_t loop;
    struct config cfg;
    struct config_registry reg;
    void *opts;
    struct provider *p;
    char data_dir[64];
    char uri[PATH_MAX]; /* options point into it */
};

struct result {
    struct provider_op *cancel_in_address; /* on_address cancels this op, as the core does */
    int done_calls;
    bool done, addressed;
    bool failed;
    struct provider_error err;
    struct provider_instance inst;
    uint64_t t_done;
};

static void on_address(void *arg, const struct provider_instance *inst)
{
    struct result *r = arg;
    r->addressed = true;
    r->inst = *inst;
    if (r->cancel_in_address)
        libvirt_provider_ops.cancel(r->cancel_in_address);
}

static void on_done(void *arg, const struct provider_error *err, const struct provider_instance *inst)
{
    struct result *r = arg;
    r->done_calls++;
    r->done = true;
    r->failed = err != NULL;
    if (err)
        r->err = *err;
    if (inst)
        r->inst = *inst;
}

static const struct provider_create_cbs cbs = {on_address, on_done};

/* Runs the loop until *flag is set, bounded by 20 s of wall time. */
static void run_until(struct env *e, bool *flag)
{
    time_t end = time(NULL) + 20;
    while (!*flag && time(NULL) < end)
        uv_run(&e->loop, UV_RUN_ONCE);
    if (!*flag)
        fail_msg("the provider did not call back within 20 s");
}

static int env_open(struct env *e, const char *const *extra, size_t n_extra)
{
    memset(e, 0, sizeof(*e));
    uv_loop_init(&e->loop);
    snprintf(e->data_dir, sizeof(e->data_dir), "/tmp/lvprov.XXXXXX");
    assert_non_null(mkdtemp(e->data_dir));
    char cwd[PATH_MAX - 64];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(e->uri, sizeof(e->uri), "test://%s/" NODE, cwd);
    e->opts = libvirt_provider_ops.options_new(&e->reg);
    assert_non_null(e->opts);
    char *argv[16];
    int argc = 0;
    argv[argc++] = "-uri";
    argv[argc++] = e->uri;
    argv[argc++] = "-data-dir";
    argv[argc++] = e->data_dir;
    for (size_t i = 0; i < n_extra; i++)
        argv[argc++] = (char *)extra[i];
    char err[256];
    assert_int_equal(config_registry_parse(&e->reg, argc, argv, err, sizeof(err)), CONFIG_PARSE_OK);
    e->cfg.node_name = "node-under-test";
    struct provider_error pe = {0};
    int rc = libvirt_provider_ops.init(&e->loop, NULL, &e->cfg, e->opts, &e->p, &pe);
    if (rc)
        print_message("init: %s\n", pe.msg);
    return rc;
}

static void env_close(struct env *e)
{
    if (e->p)
        libvirt_provider_ops.shutdown(e->p);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    libvirt_provider_ops.options_free(e->opts);
    config_registry_free(&e->reg);
    rmdir(e->data_dir);
}

static struct pod_spec pod(const char *name)
{
    struct pod_spec ps = {.pod_name = (char *)name, .pod_namespace = "default", .machine_type = "", .image = "",
                          .gpu_model = "", .initdata = ""};
    return ps;
}

static const uint8_t userdata[] = "#cloud-config\n\nwrite_files:\n  - path: /run/peerpod/apf.json\n    content: |\n"
                                  "      {}\n";

static struct provider_op *create(struct env *e, const char *name, const char *sandbox, const struct pod_spec *ps,
                                  uint64_t deadline, struct result *r)
{
    memset(r, 0, sizeof(*r));
    struct provider_create_req req = {
        .sandbox_id = sandbox,
        .instance_name = name,
        .pod = ps,
        .userdata = userdata,
        .userdata_len = sizeof(userdata) - 1,
        .deadline = deadline,
    };
    struct provider_op *op = libvirt_provider_ops.create(e->p, &req, &cbs, r);
    assert_non_null(op);
    return op;
}

struct del_result {
    bool done, failed;
    struct provider_error err;
};

static void on_deleted(void *arg, const struct provider_error *err)
{
    struct del_result *d = arg;
    d->done = true;
    d->failed = err != NULL;
    if (err)
        d->err = *err;
}

static void destroy(struct env *e, const char *name, const char *id)
{
    struct del_result d = {0};
    libvirt_provider_ops.destroy(e->p, name, id, on_deleted, &d);
    run_until(e, &d.done);
    if (d.failed)
        fail_msg("destroy %s: %s", name, d.err.msg);
}

/* Names of the pool's volumes, comma-joined, sorted as libvirt lists them. */
static void pool_volumes(struct env *e, char *out, size_t outlen)
{
    virConnectPtr c = libvirt_provider_conn(e->p);
    virStoragePoolPtr pool = virStoragePoolLookupByName(c, "default");
    assert_non_null(pool);
    virStorageVolPtr *vols = NULL;
    int n = virStoragePoolListAllVolumes(pool, &vols, 0);
    assert_true(n >= 0);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *vn = virStorageVolGetName(vols[i]);
        strncat(out, vn, outlen - strlen(out) - 2);
        strncat(out, ",", outlen - strlen(out) - 1);
        virStorageVolFree(vols[i]);
    }
    free(vols);
    virStoragePoolFree(pool);
}

static bool domain_exists(struct env *e, const char *name)
{
    virDomainPtr d = virDomainLookupByName(libvirt_provider_conn(e->p), name);
    if (d)
        virDomainFree(d);
    return d != NULL;
}

static bool has_volume(const char *list, const char *name)
{
    char needle[256];
    snprintf(needle, sizeof(needle), "%s,", name);
    return strstr(list, needle) != NULL;
}

/* ------------------------------------------------------------------ tests */

static void test_create_list_delete(void **state)
{
    (void)state;
    struct env e;
    assert_int_equal(env_open(&e, NULL, 0), 0);
    struct pod_spec ps = pod("nginx");
    ps.vcpus = 3;
    ps.memory_mib = 3072;
    struct result r;
    const char *name = "podvm-nginx-0123abcd";
    create(&e, name, "0123abcdef", &ps, 0, &r);
    run_until(&e, &r.done);
    if (r.failed)
        fail_msg("create: %s", r.err.msg);
    assert_true(r.addressed);
    assert_int_equal(strlen(r.inst.id), 36); /* the domain UUID */
    assert_string_equal(r.inst.name, name);
    assert_true(r.inst.n_ips >= 1);
    unsigned char a[16];
    assert_int_equal(inet_pton(AF_INET, r.inst.ips[0], a), 1);

    virConnectPtr c = libvirt_provider_conn(e.p);
    virDomainPtr dom = virDomainLookupByUUIDString(c, r.inst.id);
    assert_non_null(dom);
    assert_int_equal(virDomainIsActive(dom), 1);
    char *xml = virDomainGetXMLDesc(dom, 0);
    assert_non_null(xml);
    assert_non_null(strstr(xml, ">3145728</memory>"));
    assert_non_null(strstr(xml, ">3</vcpu>"));
    assert_non_null(strstr(xml, "/var/lib/libvirt/images/podvm-nginx-0123abcd-root.qcow2"));
    assert_non_null(strstr(xml, "podvm-nginx-0123abcd-cloudinit.iso"));
    assert_non_null(strstr(xml, "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"));
    free(xml);
    char *md = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
                                    "https://confidentialcontainers.org/cloud-api-adaptor/peerpod/1", 0);
    assert_non_null(md);
    assert_non_null(strstr(md, "node-under-test"));
    assert_non_null(strstr(md, "0123abcdef"));
    free(md);
    virDomainFree(dom);

    char vols[2048];
    pool_volumes(&e, vols, sizeof(vols));
    assert_true(has_volume(vols, "podvm-base.qcow2"));
    assert_true(has_volume(vols, "podvm-nginx-0123abcd-root.qcow2"));
    /* The test driver cannot upload: the ISO went to -data-dir instead of the pool. */
    assert_false(has_volume(vols, "podvm-nginx-0123abcd-cloudinit.iso"));
    char iso[PATH_MAX];
    snprintf(iso, sizeof(iso), "%s/%s-cloudinit.iso", e.data_dir, name);
    struct stat st;
    assert_int_equal(stat(iso, &st), 0);
    assert_true(st.st_size >= 2048 * 18 && st.st_size % 2048 == 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    virStoragePoolPtr pool = virStoragePoolLookupByName(c, "default");
    assert_non_null(pool);
    virStorageVolPtr rv = virStorageVolLookupByName(pool, "podvm-nginx-0123abcd-root.qcow2");
    assert_non_null(rv);
    char *vx = virStorageVolGetXMLDesc(rv, 0);
    assert_non_null(strstr(vx, "<path>/var/lib/libvirt/images/podvm-base.qcow2</path>"));
    assert_non_null(strstr(vx, "<capacity unit='bytes'>10737418240</capacity>"));
    free(vx);
    virStorageVolFree(rv);
    virStoragePoolFree(pool);

    destroy(&e, name, r.inst.id);
    assert_false(domain_exists(&e, name));
    pool_volumes(&e, vols, sizeof(vols));
    assert_string_equal(vols, "podvm-base.qcow2,");
    assert_int_equal(stat(iso, &st), -1);
    /* Deleting again, by UUID or by name only, is fine. */
    destroy(&e, name, r.inst.id);
    destroy(&e, name, "");
    env_close(&e);
}

struct list_result {
    bool done;
    size_t n;
    char names[4][64], sandboxes[4][129];
};

static void on_list(void *arg, const struct provider_error *err, const struct provider_instance *v, size_t n)
{
    struct list_result *l = arg;
    assert_null(err);
    l->done = true;
    l->n = n;
    for (size_t i = 0; i < n && i < 4; i++) {
        snprintf(l->names[i], sizeof(l->names[i]), "%s", v[i].name);
        snprintf(l->sandboxes[i], sizeof(l->sandboxes[i]), "%s", v[i].sandbox_id);
    }
}

static void test_list_only_ours(void **state)
{
    (void)state;
    struct env e;
    assert_int_equal(env_open(&e, NULL, 0), 0);
    struct pod_spec ps = pod("web");
    struct result r1, r2;
    create(&e, "podvm-web-aaaaaaaa", "aaaaaaaa11", &ps, 0, &r1);
    create(&e, "podvm-web-bbbbbbbb", "bbbbbbbb22", &ps, 0, &r2); /* concurrently, one connection */
    run_until(&e, &r1.done);
    run_until(&e, &r2.done);
    assert_false(r1.failed);
    assert_false(r2.failed);
    assert_string_not_equal(r1.inst.id, r2.inst.id);
    /* A domain without our marker, and one of another node, are not listed. */
    virConnectPtr c = libvirt_provider_conn(e.p);
    virDomainPtr other = virDomainDefineXML(c, "<domain type='test'><name>not-ours</name><memory>1024</memory>"
                                               "<os><type>hvm</type></os></domain>");
    assert_non_null(other);
    virDomainPtr foreign = virDomainDefineXML(
        c, "<domain type='test'><name>podvm-foreign-cccccccc</name><memory>1024</memory><os><type>hvm</type></os>"
           "<metadata><caa:peerpod xmlns:caa='https://confidentialcontainers.org/cloud-api-adaptor/peerpod/1'>"
           "<caa:node>another-node</caa:node><caa:sandbox>cc</caa:sandbox></caa:peerpod></metadata></domain>");
    assert_non_null(foreign);
    struct list_result l = {0};
    libvirt_provider_ops.list(e.p, on_list, &l);
    run_until(&e, &l.done);
    assert_int_equal(l.n, 2);
    bool a = false, b = false;
    for (size_t i = 0; i < l.n; i++) {
        a |= strcmp(l.names[i], "podvm-web-aaaaaaaa") == 0 && strcmp(l.sandboxes[i], "aaaaaaaa11") == 0;
        b |= strcmp(l.names[i], "podvm-web-bbbbbbbb") == 0 && strcmp(l.sandboxes[i], "bbbbbbbb22") == 0;
    }
    assert_true(a && b);
    virDomainFree(other);
    virDomainFree(foreign);
    destroy(&e, r1.inst.name, r1.inst.id);
    destroy(&e, r2.inst.name, r2.inst.id);
    env_close(&e);
}

static void test_missing_image_rolls_back(void **state)
{
    (void)state;
    struct env e;
    assert_int_equal(env_open(&e, NULL, 0), 0);
    struct pod_spec ps = pod("img");
    ps.image = "no-such-image.qcow2";
    struct result r;
    create(&e, "podvm-img-11111111", "11111111", &ps, 0, &r);
    run_until(&e, &r.done);
    assert_true(r.failed);
    assert_int_equal(r.err.code, TTRPC_INVALID_ARGUMENT);
    assert_non_null(strstr(r.err.msg, "Can't retrieve volume no-such-image.qcow2 in pool default"));
    char vols[1024];
    pool_volumes(&e, vols, sizeof(vols));
    assert_string_equal(vols, "podvm-base.qcow2,");
    assert_false(domain_exists(&e, "podvm-img-11111111"));
    env_close(&e);
}

/* The create fails at its last step (start): everything before it is rolled back. */
static int failing_create_hook(virDomainPtr dom)
{
    (void)dom;
    return -1;
}

static void test_start_failure_rolls_back(void **state)
{
    (void)state;
    struct env e;
    assert_int_equal(env_open(&e, NULL, 0), 0);
    libvirt_provider_set_domain_start(e.p, failing_create_hook);
    struct pod_spec ps = pod("net");
    struct result r;
    create(&e, "podvm-net-22222222", "22222222", &ps, 0, &r);
    run_until(&e, &r.done);
    assert_true(r.failed);
    assert_non_null(strstr(r.err.msg, "starting domain podvm-net-22222222"));
    char vols[1024];
    pool_volumes(&e, vols, sizeof(vols));
    assert_string_equal(vols, "podvm-base.qcow2,");
    assert_false(domain_exists(&e, "podvm-net-22222222"));
    char iso[PATH_MAX];
    snprintf(iso, sizeof(iso), "%s/podvm-net-22222222-cloudinit.iso", e.data_dir);
    assert_int_equal(access(iso, F_OK), -1);
    env_close(&e);
}

static void test_leftover_domain_replaced(void **state)
{
    (void)state;
    struct env e;
    assert_int_equal(env_open(&e, NULL, 0), 0);
    virConnectPtr c = libvirt_provider_conn(e.p);
    virDomainPtr old = virDomainDefineXML(c, "<domain type='test'><name>podvm-left-33333333</name><memory>1024"
                                             "</memory><os><type>hvm</type></os></domain>");
    assert_non_null(old);
    char old_uuid[VIR_UUID_STRING_BUFLEN];
    assert_int_equal(virDomainGetUUIDString(old, old_uuid), 0);
    virDomainFree(old);
    struct pod_spec ps = pod("left");
    struct result r;
    create(&e, "podvm-left-33333333", "33333333", &ps, 0, &r);
    run_until(&e, &r.done);
    assert_false(r.failed);
    assert_string_not_equal(r.inst.id, old_uuid);
    destroy(&e, r.inst.name, r.inst.id);
    env_close(&e);
}

/* Address sources for the timing tests: nothing until the flag is raised. */
static atomic_bool addr_ready;
static atomic_llong addr_ready_ms;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int late_ifaddrs(virDomainPtr dom, virDomainInterfacePtr **ifs, unsigned int source, unsigned int flags)
{
    if (!atomic_load(&addr_ready)) {
        *ifs = NULL;
        return 0;
    }
    return virDomainInterfaceAddresses(dom, ifs, source, flags);
}

static void raise_flag(uv_timer_t *t)
{
    (void)t;
    atomic_store(&addr_ready_ms, now_ms());
    atomic_store(&addr_ready, true);
}

static void test_address_within_one_poll(void **state)
{
    (void)state;
    struct env e;
    assert_int_equal(env_open(&e, NULL, 0), 0);
    libvirt_provider_set_ifaddrs(e.p, late_ifaddrs);
    atomic_store(&addr_ready, false);
    uv_timer_t t;
    uv_timer_init(&e.loop, &t);
    uv_timer_start(&t, raise_flag, 700, 0);
    struct pod_spec ps = pod("late");
    struct result r;
    create(&e, "podvm-late-44444444", "44444444", &ps, 0, &r);
    run_until(&e, &r.done);
    long long took = now_ms() - atomic_load(&addr_ready_ms);
    assert_false(r.failed);
    /* One poll step is 250 ms; allow for one in flight plus scheduling. */
    if (took > 250 + 150)
        fail_msg("address reported %lld ms after it appeared (poll step 250 ms)", took);
    uv_close((uv_handle_t *)&t, NULL);
    destroy(&e, r.inst.name, r.inst.id);
    env_close(&e);
}

static void test_deadline_and_cancel(void **state)
{
    (void)state;
    struct env e;
    assert_int_equal(env_open(&e, NULL, 0), 0);
    libvirt_provider_set_ifaddrs(e.p, late_ifaddrs);
    atomic_store(&addr_ready, false);
    struct pod_spec ps = pod("slow");
    struct result r;
    create(&e, "podvm-slow-55555555", "55555555", &ps, uv_now(&e.loop) + 600, &r);
    run_until(&e, &r.done);
    assert_true(r.failed);
    assert_int_equal(r.err.code, TTRPC_DEADLINE_EXCEEDED);
    assert_non_null(strstr(r.err.msg, "IP addresses not found"));
    assert_int_equal(strlen(r.inst.id), 36); /* the core deletes what exists */
    destroy(&e, r.inst.name, r.inst.id);
    assert_false(domain_exists(&e, "podvm-slow-55555555"));

    struct provider_op *op = create(&e, "podvm-slow-66666666", "66666666", &ps, 0, &r);
    /* Let it reach the polling stage, then cancel. */
    time_t end = time(NULL) + 10;
    while (!domain_exists(&e, "podvm-slow-66666666") && time(NULL) < end)
        uv_run(&e.loop, UV_RUN_NOWAIT);
    libvirt_provider_ops.cancel(op);
    run_until(&e, &r.done);
    assert_true(r.failed);
    assert_int_equal(r.err.code, TTRPC_CANCELED);
    destroy(&e, r.inst.name, r.inst.id);
    char vols[1024];
    pool_volumes(&e, vols, sizeof(vols));
    assert_string_equal(vols, "podvm-base.qcow2,");
    env_close(&e);
}

/* The core cancels from inside on_address when the pod's tunnel cannot be set up: the op
 * ends once, cancelled, after the callback returns (it was finished and freed under it). */
static void test_cancel_inside_on_address(void **state)
{
    (void)state;
    struct env e;
    assert_int_equal(env_open(&e, NULL, 0), 0);
    struct pod_spec ps = pod("addrcancel");
    struct result r;
    struct provider_op *op = create(&e, "podvm-addrcancel-77777777", "77777777", &ps, 0, &r);
    r.cancel_in_address = op;
    run_until(&e, &r.done);
    for (int i = 0; i < 20; i++)
        uv_run(&e.loop, UV_RUN_NOWAIT);
    assert_true(r.addressed);
    assert_int_equal(r.done_calls, 1);
    assert_true(r.failed);
    assert_int_equal(r.err.code, TTRPC_CANCELED);
    destroy(&e, r.inst.name, r.inst.id);
    assert_false(domain_exists(&e, "podvm-addrcancel-77777777"));
    env_close(&e);
}

/* /readyz's view: unreachable while libvirt cannot be connected to, reachable once it can. */
static void test_unreachable(void **state)
{
    (void)state;
    struct env e;
    assert_int_equal(env_open(&e, NULL, 0), 0);
    assert_null(libvirt_provider_ops.unreachable(e.p));
    char good[PATH_MAX];
    snprintf(good, sizeof(good), "%s", e.uri);
    libvirt_provider_conn_drop(e.p); /* libvirtd went away ... */
    snprintf(e.uri, sizeof(e.uri), "test:///nonexistent/node.xml"); /* ... and does not come back */
    struct del_result d = {0};
    libvirt_provider_ops.destroy(e.p, "podvm-x-00000000", "", on_deleted, &d);
    run_until(&e, &d.done);
    assert_true(d.failed);
    const char *why = libvirt_provider_ops.unreachable(e.p);
    assert_non_null(why);
    assert_non_null(strstr(why, "LIBVIRT_URI"));
    snprintf(e.uri, sizeof(e.uri), "%s", good);
    destroy(&e, "podvm-x-00000000", ""); /* absent: deleted; the connection is back */
    assert_null(libvirt_provider_ops.unreachable(e.p));
    env_close(&e);
}

static void test_shutdown_in_flight(void **state)
{
    (void)state;
    struct env e;
    assert_int_equal(env_open(&e, NULL, 0), 0);
    libvirt_provider_set_ifaddrs(e.p, late_ifaddrs);
    atomic_store(&addr_ready, false);
    struct pod_spec ps = pod("gone");
    struct result r;
    create(&e, "podvm-gone-77777777", "77777777", &ps, 0, &r);
    uv_run(&e.loop, UV_RUN_NOWAIT);
    env_close(&e); /* shutdown with the create in the pool or polling: no callback, no leak */
    assert_false(r.done);
}

static void test_bad_settings(void **state)
{
    (void)state;
    struct env e;
    const char *bad_pool[] = {"-pool-name", "nope"};
    assert_int_equal(env_open(&e, bad_pool, 2), -1);
    env_close(&e);
    const char *bad_net[] = {"-network-name", "nope"};
    assert_int_equal(env_open(&e, bad_net, 2), -1);
    env_close(&e);
    const char *bad_cpuset[] = {"-cpuset", "0-"};
    assert_int_equal(env_open(&e, bad_cpuset, 2), -1);
    env_close(&e);
    const char *bad_sec[] = {"-launch-security", "bogus"};
    assert_int_equal(env_open(&e, bad_sec, 2), -1);
    env_close(&e);
    /* SEV needs domain capabilities the test driver does not have. */
    const char *sev[] = {"-launch-security", "sev", "-disable-cvm=false"};
    assert_int_equal(env_open(&e, sev, 3), -1);
    env_close(&e);
    /* s390-pv on an x86 host is refused, unless DISABLECVM (the default) ignores it. */
    const char *pv[] = {"-launch-security", "s390-pv", "-disable-cvm=false"};
    assert_int_equal(env_open(&e, pv, 3), -1);
    env_close(&e);
    const char *pv_off[] = {"-launch-security", "s390-pv"};
    assert_int_equal(env_open(&e, pv_off, 2), 0);
    env_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_list_delete),
        cmocka_unit_test(test_list_only_ours),
        cmocka_unit_test(test_missing_image_rolls_back),
        cmocka_unit_test(test_start_failure_rolls_back),
        cmocka_unit_test(test_leftover_domain_replaced),
        cmocka_unit_test(test_address_within_one_poll),
        cmocka_unit_test(test_deadline_and_cancel),
        cmocka_unit_test(test_cancel_inside_on_address),
        cmocka_unit_test(test_shutdown_in_flight),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_bad_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
