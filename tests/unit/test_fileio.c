/* Unit tests for adaptor/fileio.c: whole and bounded reads, a missing file, a symbolic link
 * refused (O_NOFOLLOW), a path relative to a directory descriptor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "provider.h"

const struct provider_ops *const provider_table[] = {NULL};

static void test_reads(void **state)
{
    (void)state;
    char dir[] = "/tmp/caa-fileio-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], link[256];
    snprintf(path, sizeof(path), "%s/f", dir);
    snprintf(link, sizeof(link), "%s/l", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("hello\nworld", f);
    fclose(f);

    size_t len = 99;
    char *b = fileio_read(AT_FDCWD, path, 100, &len);
    assert_string_equal(b, "hello\nworld");
    assert_int_equal(len, 11);
    free(b);
    b = fileio_read(AT_FDCWD, path, 5, &len); /* bounded: cut, still terminated */
    assert_string_equal(b, "hello");
    assert_int_equal(len, 5);
    free(b);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    b = fileio_read(dfd, "f", 100, NULL);
    assert_string_equal(b, "hello\nworld");
    free(b);
    close(dfd);

    errno = 0;
    assert_null(fileio_read(AT_FDCWD, "/tmp/caa-fileio-no-such-file", 10, &len));
    assert_int_equal(errno, ENOENT);
    assert_int_equal(symlink(path, link), 0);
    assert_null(fileio_read(AT_FDCWD, link, 10, &len));
    assert_int_equal(errno, ELOOP);

    unlink(link);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_reads)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
