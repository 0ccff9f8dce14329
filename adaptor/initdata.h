/* initdata: the pod VM's initdata document (spec protocols.md 4.5, DECISIONS 11).
 *
 * Accepts what users and kata actually hand over: raw TOML (kata forwards the pod
 * annotation decoded), base64 of TOML (`base64 -w0 initdata.toml`, what the OpenShift docs
 * tell users to put in INITDATA) and base64 of gzip'd TOML (`gzip | base64 -w0`). The TOML is
 * validated (algorithm sha256/384/512, version, a [data] table of strings), its digest is
 * computed over the TOML bytes, and the VM gets base64(gzip(TOML)) on one line.
 * Pure code: no I/O, no logging.
 *
 * Memory: struct initdata owns vm_value; initdata_clear wipes and frees it. Every
 * intermediate buffer (decoded, decompressed, TOML tree) is wiped before it is freed: the
 * document carries attestation settings and policies. Error strings never quote the
 * document, only the offending algorithm name (bounded and made printable). */
#ifndef ADAPTOR_INITDATA_H
#define ADAPTOR_INITDATA_H

#include <stddef.h>
#include <stdint.h>

/* Largest TOML accepted, after decoding and decompression (a gzip bomb stops here). */
#define INITDATA_TOML_MAX (1u << 20)
/* Largest encoded value accepted. */
#define INITDATA_INPUT_MAX (4u << 20)

enum initdata_source {
    INITDATA_FROM_ANNOTATION, /* CreateVM's cc_init_data: raw TOML, or base64 [gzip] TOML */
    INITDATA_FROM_GLOBAL,     /* INITDATA / -initdata: base64 of TOML or of gzip'd TOML */
};

enum initdata_form { INITDATA_RAW_TOML, INITDATA_BASE64_TOML, INITDATA_BASE64_GZIP };

struct initdata {
    char algorithm[8];  /* "sha256", "sha384" or "sha512" */
    char digest[129];   /* lower-case hex over the TOML bytes */
    size_t toml_len;
    enum initdata_form form; /* how it was given, for the log line */
    char *vm_value;     /* base64(gzip(TOML)), one line, NUL-terminated; owned */
};

/* Decodes, validates and re-encodes value[0..len). Returns 0, or -1 with a one-line reason
 * in err that starts with "INITDATA: " (global) or "initdata: " (annotation) and ends with
 * which setting to fix. *out is zeroed on failure. */
int initdata_decode(struct initdata *out, enum initdata_source src, const char *value, size_t len, char *err,
                    size_t errlen);
void initdata_clear(struct initdata *d);
const char *initdata_form_name(enum initdata_form f);

/* --- The pure steps, exposed for tests and fuzzing. --- */

/* Checks the TOML document; on success writes the algorithm name into algorithm. Returns
 * 0, or -1 with the reason (no prefix) in err. */
int initdata_toml_check(const char *toml, size_t len, char algorithm[8], char *err, size_t errlen);
/* Standard base64 with optional padding; ASCII white space is ignored. Returns the decoded
 * length into a malloc'd *out (wipe and free it), or -1 if s is not base64. */
long initdata_base64_decode(const char *s, size_t len, uint8_t **out);
/* Inflates one or more concatenated gzip members into a malloc'd *out of at most max bytes.
 * Returns the length, or -1 with the reason in err. */
long initdata_gunzip(const uint8_t *in, size_t len, size_t max, uint8_t **out, char *err, size_t errlen);

#endif
