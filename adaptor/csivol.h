/* csivol: the CSI volume annotations of CreateContainer (spec protocols.md 3.4 items 1 and 3,
 * DECISIONS 4): io.confidentialcontainers.org.peerpodvolumes.target_path lists the container's
 * CSI mounts that kata handed over as direct volumes, so the forwarder waits for them to be
 * mounted; io.confidentialcontainers.org.cloud_volumes describes, per direct volume, the cloud
 * disk to attach and where to mount it. Pure code: the caller reads the direct-volumes
 * directory (one entry per volume, named base64url(path), holding mountInfo.json) and passes
 * what it found.
 *
 * Memory: inputs are borrowed; the strings returned are malloc'd and owned by the caller. */
#ifndef ADAPTOR_CSIVOL_H
#define ADAPTOR_CSIVOL_H

#include <stddef.h>

#define CSIVOL_DIRECT_VOLUMES_DIR "/run/kata-containers/shared/direct-volumes"
#define CSIVOL_ANNOTATION_TARGET_PATH "io.confidentialcontainers.org.peerpodvolumes.target_path"
#define CSIVOL_ANNOTATION_CLOUD_VOLUMES "io.confidentialcontainers.org.cloud_volumes"
#define CSIVOL_ANNOTATION_SANDBOX_UID "io.kubernetes.cri.sandbox-uid"

struct csivol_mount {
    const char *dst, *src; /* NUL-terminated */
};

struct csivol_volume {
    const char *name;      /* the directory's name: base64url (padded) of the volume's path */
    const char *info_json; /* its mountInfo.json, NULL if unreadable */
};

/* Computes both annotations. *target_path is NULL when no mount qualifies (the existing
 * value then stays as it is), else existing + "," + the new paths (no leading comma);
 * *cloud_volumes is NULL when no volume qualifies. volumes must be sorted by name. Returns 0,
 * or -1 on allocation failure. */
int csivol_annotations(const struct csivol_mount *m, size_t n_mounts, const struct csivol_volume *v,
                       size_t n_volumes, const char *existing_target_path, const char *sandbox_uid,
                       char **target_path, char **cloud_volumes);

/* The cloud disks to attach to the pod VM (spec protocols.md 2.4 step 5): per CSI volume with
 * a disk in its mountInfo.json (metadata["cloud-volume-path"], else "device"), in the order of
 * volumes (sorted by name), so disk i is LUN i, as in the cloud_volumes annotation. pod_uid
 * non-empty keeps only that pod's volumes (the Go daemon's filter never engages: kata sends
 * no uid with CreateVM). Returns 0 with *disks (NULL when *n is 0; csivol_disks_free), or -1
 * on allocation failure. */
int csivol_disks(const struct csivol_volume *v, size_t n_volumes, const char *pod_uid, char ***disks, size_t *n);
void csivol_disks_free(char **disks, size_t n);

/* base64url with padding of s, as kata names direct-volume directories; malloc'd. */
char *csivol_name_of(const char *s);
/* The path a direct-volume name stands for, malloc'd, NULL if the name does not decode. */
char *csivol_path_of(const char *name);

#endif
