/* cidata: NoCloud seed ISO in memory with libisofs (see cidata.h). */
#include "cidata.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* No libburn here: libisofs then declares struct burn_source itself. */
#define LIBISOFS_WITHOUT_LIBBURN 1
#include <libisofs/libisofs.h>
#include <openssl/crypto.h>

int cidata_library_init(void)
{
    if (iso_init() < 0)
        return -1;
    /* libisofs prints its messages itself unless told otherwise; errors reach us as codes. */
    iso_set_msgs_severities("NEVER", "NEVER", "cidata");
    return 0;
}

void cidata_library_finish(void)
{
    iso_finish();
}

void cidata_iso_free(uint8_t *iso, size_t len)
{
    if (iso) {
        OPENSSL_cleanse(iso, len);
        free(iso);
    }
}

/* Adds a file whose bytes are a copy of data (libisofs frees the copy with the stream). */
static int file_add(IsoImage *img, IsoDir *root, const char *name, const void *data, size_t len)
{
    unsigned char *copy = malloc(len ? len : 1);
    if (!copy)
        return -1;
    if (len)
        memcpy(copy, data, len);
    IsoStream *st = NULL;
    if (iso_memory_stream_new(copy, len, &st) < 0) {
        free(copy);
        return -1;
    }
    IsoFile *f = NULL;
    if (iso_image_add_new_file(img, root, name, st, &f) < 0) {
        iso_stream_unref(st);
        return -1;
    }
    iso_node_set_permissions((IsoNode *)f, 0644);
    return 0;
}

int cidata_iso_build(const char *hostname, const uint8_t *userdata, size_t len, uint8_t **out, size_t *out_len,
                     char *err, size_t errlen)
{
    *out = NULL;
    *out_len = 0;
    if (len > CIDATA_USERDATA_MAX) {
        snprintf(err, errlen, "user-data of %zu bytes is too large for the cidata ISO", len);
        return -1;
    }
    char meta[320];
    int mn = snprintf(meta, sizeof(meta), "local-hostname: %s", hostname);
    if (mn < 0 || (size_t)mn >= sizeof(meta)) {
        snprintf(err, errlen, "host name too long for meta-data");
        return -1;
    }
    IsoImage *img = NULL;
    IsoWriteOpts *opts = NULL;
    struct burn_source *src = NULL;
    uint8_t *iso = NULL;
    size_t size = 0;
    const char *what = "creating the image";
    if (iso_image_new(CIDATA_VOLUME_ID, &img) < 0)
        goto fail;
    iso_image_set_volume_id(img, CIDATA_VOLUME_ID);
    IsoDir *root = iso_image_get_root(img);
    what = "adding the files";
    if (file_add(img, root, "user-data", userdata, len) || file_add(img, root, "meta-data", meta, (size_t)mn) ||
        file_add(img, root, "vendor-data", "", 0))
        goto fail;
    what = "setting the write options";
    if (iso_write_opts_new(&opts, 0) < 0 || iso_write_opts_set_iso_level(opts, 2) < 0 ||
        iso_write_opts_set_rockridge(opts, 1) < 0 || iso_write_opts_set_joliet(opts, 1) < 0 ||
        iso_write_opts_set_allow_lowercase(opts, 1) < 0 || iso_write_opts_set_allow_full_ascii(opts, 1) < 0 ||
        iso_write_opts_set_no_force_dots(opts, 1) < 0 || iso_write_opts_set_relaxed_vol_atts(opts, 1) < 0 ||
        iso_write_opts_set_always_gmt(opts, 1) < 0)
        goto fail;
    what = "writing the image";
    if (iso_image_create_burn_source(img, opts, &src) < 0)
        goto fail;
    off_t total = src->get_size(src);
    if (total <= 0 || total % 2048 || (uint64_t)total > (uint64_t)CIDATA_USERDATA_MAX * 2)
        goto fail;
    size = (size_t)total;
    if (!(iso = malloc(size)))
        goto fail;
    /* The generator thread hands out one 2 KiB sector per read. */
    size_t got = 0;
    while (got < size) {
        int n = src->read_xt(src, iso + got, 2048);
        if (n != 2048)
            break;
        got += 2048;
    }
    if (got != size)
        goto fail;
    src->free_data(src);
    free(src);
    iso_write_opts_free(opts);
    iso_image_unref(img);
    *out = iso;
    *out_len = size;
    return 0;
fail:
    if (src) {
        src->free_data(src);
        free(src);
    }
    if (opts)
        iso_write_opts_free(opts);
    if (img)
        iso_image_unref(img);
    cidata_iso_free(iso, size);
    snprintf(err, errlen, "building the cidata ISO: %s failed", what);
    return -1;
}
