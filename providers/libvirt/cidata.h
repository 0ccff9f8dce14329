/* cidata: the NoCloud seed ISO a libvirt pod VM boots with (spec providers-libvirt-and-install.md
 * 1.2 c): ISO 9660 with volume id "cidata" and exactly three files in its root, user-data (the
 * document), meta-data ("local-hostname: <name>", no newline) and an empty vendor-data. Names
 * are written as upstream's writer does ("user-data;1", lower case, no forced dot) plus Rock
 * Ridge and Joliet, so every reader sees the same three names. Built in memory with
 * libisofs; no file is written.
 *
 * Memory: *out is malloc'd and owned by the caller, who releases it with cidata_iso_free
 * (it holds the TLS private key of apf.json, so it is wiped). libisofs keeps process-wide
 * state: cidata_library_init once before any build, cidata_library_finish at the end. */
#ifndef PROVIDERS_LIBVIRT_CIDATA_H
#define PROVIDERS_LIBVIRT_CIDATA_H

#include <stddef.h>
#include <stdint.h>

/* The ISO volume label cloud-init's NoCloud source looks for. */
#define CIDATA_VOLUME_ID "cidata"
/* Bounds the document (an ISO sector is 2 KiB; user-data is far smaller than this). */
#define CIDATA_USERDATA_MAX (16u << 20)

int cidata_library_init(void);
void cidata_library_finish(void);

/* 0, or -1 with the reason in err. Safe to call from several threads at once. */
int cidata_iso_build(const char *hostname, const uint8_t *userdata, size_t len, uint8_t **out, size_t *out_len,
                     char *err, size_t errlen);
void cidata_iso_free(uint8_t *iso, size_t len);

#endif
