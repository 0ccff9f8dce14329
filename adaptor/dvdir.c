/* dvdir: kata's direct-volumes directory (see dvdir.h). */
#include "dvdir.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *file_slurp(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    char *buf = malloc(DVDIR_INFO_MAX + 1);
    size_t len = 0;
    while (buf && len < DVDIR_INFO_MAX) {
        ssize_t n = read(fd, buf + len, DVDIR_INFO_MAX - len);
        if (n == 0)
            break;
        if (n < 0) {
            free(buf);
            buf = NULL;
        } else {
            len += (size_t)n;
        }
    }
    close(fd);
    if (buf)
        buf[len] = '\0';
    return buf;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct csivol_volume *)a)->name, ((const struct csivol_volume *)b)->name);
}

void dvdir_read(const char *path, struct csivol_volume **out, size_t *n)
{
    struct csivol_volume *v = NULL;
    size_t nv = 0, cap = 0;
    DIR *dir = opendir(path);
    for (struct dirent *e; dir && (e = readdir(dir));) {
        if (e->d_name[0] == '.')
            continue;
        if (nv == cap) {
            size_t c = cap ? cap * 2 : 8;
            struct csivol_volume *nvv = realloc(v, c * sizeof(*nvv));
            if (!nvv)
                break;
            v = nvv;
            cap = c;
        }
        int sub = openat(dirfd(dir), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (sub < 0)
            continue; /* not a directory */
        v[nv].name = strdup(e->d_name);
        v[nv].info_json = file_slurp(sub, "mountInfo.json");
        close(sub);
        if (v[nv].name)
            nv++;
        else
            free((char *)v[nv].info_json);
    }
    if (dir)
        closedir(dir);
    if (nv)
        qsort(v, nv, sizeof(*v), name_cmp);
    *out = v;
    *n = nv;
}

void dvdir_free(struct csivol_volume *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)v[i].name);
        free((char *)v[i].info_json);
    }
    free(v);
}
