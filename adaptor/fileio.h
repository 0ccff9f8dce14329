/* fileio: a bounded read of a whole small file (records, mountInfo.json, the boot id).
 *
 * Blocking: thread pool, or start-up before the loop runs. The file is opened with
 * O_NOFOLLOW. The buffer returned is malloc'd, NUL-terminated and owned by the caller. */
#ifndef ADAPTOR_FILEIO_H
#define ADAPTOR_FILEIO_H

#include <stddef.h>

/* At most max bytes of path (relative to dirfd, or AT_FDCWD), stopping early at end of file
 * or at a read error; *len (if len) is the count read. NULL (errno set) if the file cannot be
 * opened or memory runs out. */
char *fileio_read(int dirfd, const char *path, size_t max, size_t *len);

#endif
