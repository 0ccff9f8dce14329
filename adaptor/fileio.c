/* fileio: bounded whole-file reads (see fileio.h). */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

char *fileio_read(int dirfd, const char *path, size_t max, size_t *len)
{
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    char *buf = malloc(max + 1);
    size_t off = 0;
    while (buf && off < max) {
        ssize_t n = read(fd, buf + off, max - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    int e = errno;
    close(fd);
    errno = e;
    if (buf) {
        buf[off] = '\0';
        if (len)
            *len = off;
    }
    return buf;
}
