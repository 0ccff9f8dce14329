/* csivol: CSI volume annotations for CreateContainer (see csivol.h). */
#include "csivol.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "userdata.h"

#define CSI_MARKER "/volumes/kubernetes.io~csi/"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *csivol_name_of(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)(unsigned char)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)(unsigned char)s[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)s[i + 2];
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64url[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? b64url[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static int b64url_val(char c)
{
    const char *p = c ? strchr(b64url, c) : NULL;
    return p ? (int)(p - b64url) : -1;
}

char *csivol_path_of(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n % 4)
        return NULL;
    char *out = malloc(n / 4 * 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int a = b64url_val(name[i]), b = b64url_val(name[i + 1]);
        int c = name[i + 2] == '=' ? -2 : b64url_val(name[i + 2]);
        int d = name[i + 3] == '=' ? -2 : b64url_val(name[i + 3]);
        bool last = i + 4 == n;
        if (a < 0 || b < 0 || c == -1 || d == -1 || (c == -2 && d != -2) || ((c == -2 || d == -2) && !last)) {
            free(out);
            return NULL;
        }
        unsigned v = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)(c < 0 ? 0 : c) << 6 | (unsigned)(d < 0 ? 0 : d);
        out[o++] = (char)(v >> 16);
        if (c >= 0)
            out[o++] = (char)(v >> 8 & 255);
        if (d >= 0)
            out[o++] = (char)(v & 255);
    }
    out[o] = '\0';
    if (strlen(out) != o) { /* a NUL inside is no path */
        free(out);
        return NULL;
    }
    return out;
}

/* Go's filepath.Clean, enough for the marker test: no empty, "." or ".." elements. */
static char *path_clean(const char *p)
{
    size_t n = strlen(p);
    char *out = malloc(n + 2);
    if (!out)
        return NULL;
    bool rooted = p[0] == '/';
    size_t o = 0;
    if (rooted)
        out[o++] = '/';
    size_t base = o;
    for (size_t i = 0; i < n;) {
        while (i < n && p[i] == '/')
            i++;
        size_t s = i;
        while (i < n && p[i] != '/')
            i++;
        size_t len = i - s;
        if (len == 0 || (len == 1 && p[s] == '.'))
            continue;
        if (len == 2 && p[s] == '.' && p[s + 1] == '.') {
            if (o > base) {
                while (o > base && out[o - 1] != '/')
                    o--;
                if (o > base)
                    o--;
                continue;
            }
            if (rooted)
                continue;
        }
        if (o > base)
            out[o++] = '/';
        memcpy(out + o, p + s, len);
        o += len;
    }
    if (o == 0)
        out[o++] = '.';
    out[o] = '\0';
    return out;
}

static bool is_csi(const char *path)
{
    char *c = path_clean(path);
    bool yes = c && strstr(c, CSI_MARKER);
    free(c);
    return yes;
}

/* Appends a JSON string member "key":"value" (Go's escaping) to *buf. */
static bool member(char **buf, size_t *len, bool comma, const char *key, const char *value)
{
    size_t qn;
    char *q = userdata_json_quote(value, strlen(value), &qn);
    if (!q)
        return false;
    size_t need = *len + strlen(key) + qn + 8;
    char *nb = realloc(*buf, need);
    if (!nb) {
        userdata_text_free(q);
        return false;
    }
    *buf = nb;
    *len += (size_t)snprintf(nb + *len, need - *len, "%s\"%s\":%s", comma ? "," : "", key, q);
    userdata_text_free(q);
    return true;
}

static bool raw(char **buf, size_t *len, const char *s)
{
    size_t n = strlen(s);
    char *nb = realloc(*buf, *len + n + 1);
    if (!nb)
        return false;
    *buf = nb;
    memcpy(nb + *len, s, n + 1);
    *len += n;
    return true;
}

/* Go's sort of map keys: bytewise. The keys are "vol-<n>", so plain strcmp. */
static int entry_cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b); /* the key is the entry's first member */
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

#define UIDPART_MAX 300

/* "/pods/<uid>/", the part of a volume's path that names its pod; "" without a uid. */
static void uid_part(char out[UIDPART_MAX], const char *uid)
{
    out[0] = '\0';
    if (uid && *uid)
        snprintf(out, UIDPART_MAX, "/pods/%s/", uid);
}

/* The cloud disk of direct volume v, if it is a CSI volume (of the pod named by uidpart,
 * when not "") with a mountInfo.json that names one: borrowed from *info, which the caller
 * frees with *path. NULL (nothing to free) otherwise. */
static const char *volume_disk(const struct csivol_volume *v, const char *uidpart, char **path, json_t **info)
{
    *path = csivol_path_of(v->name);
    *info = NULL;
    if (*path && strstr(*path, CSI_MARKER) && (!*uidpart || strstr(*path, uidpart)) && v->info_json) {
        *info = json_loads(v->info_json, 0, NULL);
        if (json_is_object(*info)) {
            const char *disk = jstr(json_object_get(*info, "metadata"), "cloud-volume-path");
            if (!*disk)
                disk = jstr(*info, "device");
            if (*disk)
                return disk;
        }
    }
    json_decref(*info);
    free(*path);
    *info = NULL;
    *path = NULL;
    return NULL;
}

int csivol_disks(const struct csivol_volume *v, size_t n_volumes, const char *pod_uid, char ***disks, size_t *n)
{
    char uidpart[UIDPART_MAX];
    uid_part(uidpart, pod_uid);
    *disks = NULL;
    *n = 0;
    char **out = calloc(n_volumes ? n_volumes : 1, sizeof(*out));
    if (!out)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n_volumes; i++) {
        char *path;
        json_t *info;
        const char *disk = volume_disk(&v[i], uidpart, &path, &info);
        if (!disk)
            continue;
        out[k] = strdup(disk);
        json_decref(info);
        free(path);
        if (!out[k]) {
            csivol_disks_free(out, k);
            return -1;
        }
        k++;
    }
    if (!k) {
        free(out);
        out = NULL;
    }
    *disks = out;
    *n = k;
    return 0;
}

void csivol_disks_free(char **disks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(disks[i]);
    free(disks);
}

int csivol_annotations(const struct csivol_mount *m, size_t n_mounts, const struct csivol_volume *v,
                       size_t n_volumes, const char *existing_target_path, const char *sandbox_uid,
                       char **target_path, char **cloud_volumes)
{
    *target_path = *cloud_volumes = NULL;
    /* 1. CSI target paths: mounts whose source kata made a direct volume. */
    char *tp = NULL;
    size_t tl = 0;
    for (size_t i = 0; i < n_mounts; i++) {
        if (!m[i].src || !is_csi(m[i].src))
            continue;
        char *name = csivol_name_of(m[i].src);
        if (!name)
            goto oom;
        bool found = false;
        for (size_t k = 0; k < n_volumes && !found; k++)
            found = strcmp(v[k].name, name) == 0;
        free(name);
        if (!found)
            continue;
        if (!tp && !raw(&tp, &tl, existing_target_path ? existing_target_path : ""))
            goto oom;
        if ((tl && !raw(&tp, &tl, ",")) || !raw(&tp, &tl, m[i].src))
            goto oom;
    }
    /* 3. Cloud volumes, in the directory's name order; the object's keys in Go's order. */
    struct entry {
        char key[32];
        char *json;
    } *ents = calloc(n_volumes ? n_volumes : 1, sizeof(*ents));
    size_t n_ents = 0;
    if (!ents)
        goto oom;
    unsigned idx = 0;
    char uidpart[UIDPART_MAX];
    uid_part(uidpart, sandbox_uid);
    for (size_t k = 0; k < n_volumes; k++) {
        char *path;
        json_t *info;
        const char *disk = volume_disk(&v[k], uidpart, &path, &info);
        if (!disk)
            continue; /* no disk: the index is not advanced */
        json_t *md = json_object_get(info, "metadata");
        const char *fstype = *jstr(info, "fstype") ? jstr(info, "fstype") : "ext4";
        const char *dst = NULL;
        for (size_t i = 0; i < n_mounts && !dst; i++)
            if (m[i].src && strcmp(m[i].src, path) == 0)
                dst = m[i].dst ? m[i].dst : "";
        if (!dst) {
            idx++;
            json_decref(info);
            free(path);
            continue;
        }
        struct entry *e = &ents[n_ents++];
        char lun[16];
        snprintf(e->key, sizeof(e->key), "vol-%u", idx);
        snprintf(lun, sizeof(lun), "%u", idx);
        size_t el = 0;
        bool ok = raw(&e->json, &el, "{") && member(&e->json, &el, false, "mount_point", dst) &&
                  member(&e->json, &el, true, "fs_type", fstype) && member(&e->json, &el, true, "lun", lun) &&
                  member(&e->json, &el, true, "disk_id", disk);
        if (ok && *jstr(md, "encrypt-type"))
            ok = member(&e->json, &el, true, "encrypt_type", jstr(md, "encrypt-type"));
        if (ok && *jstr(md, "kbs-key-id"))
            ok = member(&e->json, &el, true, "key_id", jstr(md, "kbs-key-id"));
        ok = ok && raw(&e->json, &el, "}");
        idx++;
        json_decref(info);
        free(path);
        if (!ok)
            goto oom_ents;
    }
    char *cv = NULL;
    size_t cl = 0;
    if (n_ents) {
        qsort(ents, n_ents, sizeof(*ents), entry_cmp);
        for (size_t i = 0; i < n_ents; i++)
            if (!raw(&cv, &cl, i ? ",\"" : "{\"") || !raw(&cv, &cl, ents[i].key) || !raw(&cv, &cl, "\":") ||
                !raw(&cv, &cl, ents[i].json)) {
                free(cv);
                goto oom_ents;
            }
        if (!raw(&cv, &cl, "}")) {
            free(cv);
            goto oom_ents;
        }
    }
    for (size_t i = 0; i < n_ents; i++)
        free(ents[i].json);
    free(ents);
    *target_path = tp;
    *cloud_volumes = cv;
    return 0;
oom_ents:
    for (size_t i = 0; i < n_ents; i++)
        free(ents[i].json);
    free(ents);
oom:
    free(tp);
    return -1;
}
