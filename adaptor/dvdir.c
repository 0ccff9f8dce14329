/* dvdir: kata's direct-volumes directory (see dvdir.h). */
#include "dvdir.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"

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
        v[nv].info_json = fileio_read(sub, "mountInfo.json", DVDIR_INFO_MAX, NULL);
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
