/* dvdir: reads kata's direct-volumes directory (one subdirectory per CSI volume, named
 * base64url of the volume's path, holding the driver's mountInfo.json) for csivol.
 *
 * Blocking file system calls: thread pool only. The array and its strings are malloc'd and
 * owned by the caller (dvdir_free). */
#ifndef ADAPTOR_DVDIR_H
#define ADAPTOR_DVDIR_H

#include <stddef.h>

#include "csivol.h"

#define DVDIR_INFO_MAX 65536 /* bytes of a mountInfo.json read; a longer one is cut (and then fails to parse) */

/* The subdirectories of dir, sorted by name, each with its mountInfo.json (NULL when
 * unreadable). A missing or unreadable dir is no volumes. Entries that cannot be allocated
 * are left out. */
void dvdir_read(const char *dir, struct csivol_volume **out, size_t *n);
void dvdir_free(struct csivol_volume *v, size_t n);

#endif
