/* Unit tests for adaptor/csivol.c: direct-volume names, target paths (existing value kept,
 * no leading comma), cloud-volume entries (disk id choice, defaults, the index rules, Go's
 * key order and escaping) and what is skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csivol.h"
#include "provider.h"

const struct provider_ops *const provider_table[] = {NULL};

#define POD "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/"

static void test_names(void **state)
{
    (void)state;
    char *n = csivol_name_of("/a");
    assert_string_equal(n, "L2E=");
    char *p = csivol_path_of(n);
    assert_string_equal(p, "/a");
    free(n);
    free(p);
    n = csivol_name_of(POD "pvc/mount");
    p = csivol_path_of(n);
    assert_string_equal(p, POD "pvc/mount");
    free(n);
    free(p);
    static const char *bad[] = {"", "abc", "L2E", "L2E=L2E=", "L=E=", "a+b/", "AAA\\"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(csivol_path_of(bad[i]));
    assert_null(csivol_path_of("AA=="
                               "")); /* decodes to a NUL byte */
}

static void test_target_paths(void **state)
{
    (void)state;
    char *a = csivol_name_of(POD "a/mount"), *b = csivol_name_of(POD "b/mount");
    struct csivol_volume v[] = {{a, NULL}, {b, NULL}};
    struct csivol_mount m[] = {
        {"/etc/hosts", "/run/hosts"},
        {"/x", POD "a/mount"},
        {"/y", "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/../kubernetes.io~csi/b/mount"},
        {"/z", POD "b/mount"},
        {"/w", POD "c/mount"}, /* no direct volume for it */
    };
    char *tp, *cv;
    assert_int_equal(csivol_annotations(m, 5, v, 2, NULL, NULL, &tp, &cv), 0);
    assert_string_equal(tp, POD "a/mount," POD "b/mount");
    free(tp);
    free(cv);
    assert_int_equal(csivol_annotations(m, 5, v, 2, "/earlier", NULL, &tp, &cv), 0);
    assert_string_equal(tp, "/earlier," POD "a/mount," POD "b/mount");
    free(tp);
    free(cv);
    /* Nothing qualifies: no annotation at all (the existing one stays). */
    assert_int_equal(csivol_annotations(m, 1, v, 2, "/earlier", NULL, &tp, &cv), 0);
    assert_null(tp);
    free(a);
    free(b);
}

static void test_cloud_volumes(void **state)
{
    (void)state;
    char names[12][256];
    struct csivol_volume v[12];
    struct csivol_mount m[12];
    char dsts[12][16], srcs[12][128];
    for (int i = 0; i < 12; i++) {
        snprintf(srcs[i], sizeof(srcs[i]), POD "pvc-%02d/mount", i);
        snprintf(dsts[i], sizeof(dsts[i]), "/d%02d", i);
        char *n = csivol_name_of(srcs[i]);
        snprintf(names[i], sizeof(names[i]), "%s", n);
        free(n);
        m[i] = (struct csivol_mount){dsts[i], srcs[i]};
    }
    /* The caller sorts by name; here the names happen to sort as the indexes do. */
    for (int i = 0; i < 12; i++)
        v[i] = (struct csivol_volume){names[i], "{\"device\":\"/dev/x\"}"};
    v[1].info_json = "{\"metadata\":{\"cloud-volume-path\":\"disk<&>\",\"kbs-key-id\":\"k\"},\"fstype\":\"xfs\"}";
    v[2].info_json = "{}";         /* no disk: skipped, index not advanced */
    v[3].info_json = "not json";   /* unreadable: skipped */
    v[4].info_json = NULL;
    char *tp, *cv;
    assert_int_equal(csivol_annotations(m, 12, v, 12, NULL, NULL, &tp, &cv), 0);
    assert_non_null(strstr(cv, "\"vol-1\":{\"mount_point\":\"/d01\",\"fs_type\":\"xfs\",\"lun\":\"1\",\"disk_id\":"
                               "\"disk\\u003c\\u0026\\u003e\",\"key_id\":\"k\"}"));
    assert_non_null(strstr(cv, "{\"vol-0\":{\"mount_point\":\"/d00\",\"fs_type\":\"ext4\",\"lun\":\"0\","
                               "\"disk_id\":\"/dev/x\"},\"vol-1\":"));
    char *p10 = strstr(cv, "\"vol-10\""), *p2 = strstr(cv, "\"vol-2\"");
    assert_non_null(p2);
    assert_null(strstr(cv, "\"vol-9\"")); /* 12 volumes, 3 skipped: vol-0 .. vol-8 */
    assert_null(p10);
    assert_non_null(strstr(cv, "\"vol-8\":{\"mount_point\":\"/d11\""));
    free(tp);
    free(cv);
    /* Twelve volumes: Go's map order puts vol-10 and vol-11 between vol-1 and vol-2. */
    for (int i = 0; i < 12; i++)
        v[i].info_json = "{\"device\":\"/dev/x\"}";
    assert_int_equal(csivol_annotations(m, 12, v, 12, NULL, NULL, &tp, &cv), 0);
    char *k1 = strstr(cv, "\"vol-1\""), *k10 = strstr(cv, "\"vol-10\""), *k11 = strstr(cv, "\"vol-11\""),
         *k2 = strstr(cv, "\"vol-2\"");
    assert_true(k1 && k10 && k11 && k2 && k1 < k10 && k10 < k11 && k11 < k2);
    free(tp);
    free(cv);
    /* A volume without a matching OCI mount advances the index; another pod's is ignored. */
    struct csivol_volume w[] = {{names[0], "{\"device\":\"/dev/a\"}"}, {names[1], "{\"device\":\"/dev/b\"}"}};
    struct csivol_mount only1[] = {{"/one", srcs[1]}};
    assert_int_equal(csivol_annotations(only1, 1, w, 2, NULL, NULL, &tp, &cv), 0);
    assert_string_equal(cv, "{\"vol-1\":{\"mount_point\":\"/one\",\"fs_type\":\"ext4\",\"lun\":\"1\",\"disk_id\":"
                            "\"/dev/b\"}}");
    free(tp);
    free(cv);
    assert_int_equal(csivol_annotations(only1, 1, w, 2, NULL, "other-uid", &tp, &cv), 0);
    assert_null(cv);
    free(tp);
}

/* The disks for the pod VM follow the same rules, so disk i is the annotation's LUN i. */
static void test_disks(void **state)
{
    (void)state;
    char *n0 = csivol_name_of(POD "pvc-a/mount"), *n1 = csivol_name_of(POD "pvc-b/mount"),
         *n2 = csivol_name_of("/var/lib/kubelet/pods/u2/volumes/kubernetes.io~csi/pvc-c/mount"),
         *n3 = csivol_name_of("/var/lib/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/e"),
         *n4 = csivol_name_of(POD "pvc-d/mount");
    struct csivol_volume v[] = {
        {n0, "{\"metadata\":{\"cloud-volume-path\":\"/subscriptions/S/resourceGroups/r/providers/"
             "Microsoft.Compute/disks/d0\"},\"device\":\"/dev/ignored\"}"},
        {n1, "{}"}, /* no disk: skipped, index not advanced */
        {n2, "{\"device\":\"disk-of-u2\"}"},
        {n3, "{\"device\":\"not-csi\"}"},
        {"!!", "{\"device\":\"bad-name\"}"},
        {n4, "{\"device\":\"d4\"}"},
    };
    char **d;
    size_t n;
    assert_int_equal(csivol_disks(v, 6, NULL, &d, &n), 0);
    assert_int_equal(n, 3); /* unfiltered, as the Go daemon */
    assert_string_equal(d[0], "/subscriptions/S/resourceGroups/r/providers/Microsoft.Compute/disks/d0");
    assert_string_equal(d[1], "disk-of-u2");
    assert_string_equal(d[2], "d4");
    csivol_disks_free(d, n);
    assert_int_equal(csivol_disks(v, 6, "u1", &d, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(d[1], "d4");
    /* ... and the annotation of a container with both mounts numbers them alike. */
    struct csivol_mount m[] = {{"/a", POD "pvc-a/mount"}, {"/d", POD "pvc-d/mount"}};
    char *tp, *cv;
    assert_int_equal(csivol_annotations(m, 2, v, 6, NULL, "u1", &tp, &cv), 0);
    assert_non_null(strstr(cv, "\"lun\":\"0\",\"disk_id\":\"/subscriptions/"));
    assert_non_null(strstr(cv, "\"lun\":\"1\",\"disk_id\":\"d4\""));
    free(tp);
    free(cv);
    csivol_disks_free(d, n);
    assert_int_equal(csivol_disks(v, 0, NULL, &d, &n), 0);
    assert_int_equal(n, 0);
    assert_null(d);
    free(n0);
    free(n1);
    free(n2);
    free(n3);
    free(n4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_target_paths),
        cmocka_unit_test(test_cloud_volumes),
        cmocka_unit_test(test_disks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
