#include "tlsca.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "log.h"

#define TLSCA_LOG "tls"
/* PEM files we read are a few KiB; the cap keeps a wrong path (a device, a huge log) from
 * being slurped whole. */
#define TLSCA_FILE_MAX (1024 * 1024)
#define TLSCA_NAME_MAX 64 /* X.520 ub-common-name: OpenSSL refuses longer CNs */
#define TLSCA_BACKDATE (5 * 60)
#define TLSCA_YEARS 2

#define TLSCA_ORG_FORWARDER "agent-protocol-forwarder"
#define TLSCA_ORG_CLIENT "cloud-api-adaptor"

/* Without TLS_CIPHER_SUITES: the TLS 1.2 suites a current Go client offers (ECDHE only, AEAD
 * first), so the daemon never agrees on more than the Go daemon would. */
#define TLSCA_DEFAULT_CIPHERS                                                                                   \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                  \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                    \
    "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA"

struct tlsca {
    enum tlsca_mode mode;
    time_t fixed_now;
    EVP_PKEY *ca_key; /* only when the daemon runs its own CA */
    X509 *ca_cert;
    STACK_OF(X509) *trust; /* what the pod VM's chain must lead to */
    char *ca_pem;
    X509 *client_cert;
    STACK_OF(X509) *client_chain; /* certificates after the leaf in CERT_FILE */
    EVP_PKEY *client_key;
    char *client_cert_pem;
};

/* Which generated certificate: they differ in subject, SAN, EKU and the CA flag. */
enum tlsca_kind { TLSCA_KIND_CA, TLSCA_KIND_SERVER, TLSCA_KIND_CLIENT };

static void tlsca_err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void tlsca_err_set(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (n < 0)
        err[0] = '\0';
}

/* OpenSSL's reason strings are static texts without data, so they are safe to show even
 * when the failing operation touched a key. Drains the queue so later calls start clean. */
static const char *tlsca_ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown OpenSSL error";
}

static time_t tlsca_now(const struct tlsca *ca)
{
    return ca->fixed_now ? ca->fixed_now : time(NULL);
}

static bool tlsca_str_set(const char *s)
{
    return s && *s;
}

/* ------------------------------------------------------------------ files */

static int tlsca_file_read(const char *path, char **buf, size_t *len, int *errnum)
{
    *buf = NULL;
    *len = 0;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; the check below refuses it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        *errnum = errno;
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        *errnum = errno;
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        *errnum = EINVAL;
        close(fd);
        return -1;
    }
    if (st.st_size > TLSCA_FILE_MAX) {
        *errnum = EFBIG;
        close(fd);
        return -1;
    }
    size_t cap = (size_t)st.st_size + 1;
    char *b = malloc(cap);
    if (!b) {
        *errnum = ENOMEM;
        close(fd);
        return -1;
    }
    size_t n = 0;
    for (;;) {
        if (n + 1 >= cap) {
            /* The file grew after fstat; stop at the cap rather than chase it. */
            if (cap > TLSCA_FILE_MAX) {
                OPENSSL_clear_free(b, cap);
                *errnum = EFBIG;
                close(fd);
                return -1;
            }
            char *nb = OPENSSL_clear_realloc(b, cap, cap * 2);
            if (!nb) {
                OPENSSL_clear_free(b, cap);
                *errnum = ENOMEM;
                close(fd);
                return -1;
            }
            b = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, b + n, cap - 1 - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            *errnum = errno;
            OPENSSL_clear_free(b, cap);
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

/* Frees a buffer that may have held key bytes. */
static void tlsca_buf_wipe_free(char *buf, size_t len)
{
    if (buf)
        OPENSSL_clear_free(buf, len + 1);
}

static int tlsca_dir_fsync(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    if (close(fd) < 0 && rc == 0)
        return -1;
    errno = e;
    return rc;
}

/* Writes path atomically with mode 0600: a crash leaves the old file or the new one, never
 * a torn key. */
static int tlsca_file_write(const char *dir, const char *name, const char *data, size_t len, char *err,
                            size_t errlen)
{
    char path[4096], tmp[4096];
    int n1 = snprintf(path, sizeof(path), "%s/%s", dir, name);
    int n2 = snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(path) || (size_t)n2 >= sizeof(tmp)) {
        tlsca_err_set(err, errlen, "TLS state %s/%s: path too long", dir, name);
        return -1;
    }
    if (unlink(tmp) < 0 && errno != ENOENT) {
        tlsca_err_set(err, errlen, "TLS state %s: cannot remove stale temp file: %s", tmp, strerror(errno));
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        tlsca_err_set(err, errlen, "TLS state %s: cannot create: %s", tmp, strerror(errno));
        return -1;
    }
    const char *what = "write";
    /* The umask may have narrowed the mode; 0600 is the contract, nothing wider, nothing less. */
    if (fchmod(fd, 0600) < 0) {
        what = "chmod";
        goto fail;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        off += (size_t)w;
    }
    if (fsync(fd) < 0) {
        what = "fsync";
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        what = "close";
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        what = "rename";
        goto fail;
    }
    if (tlsca_dir_fsync(dir) < 0) {
        tlsca_err_set(err, errlen, "TLS state %s: fsync of the directory: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    tlsca_err_set(err, errlen, "TLS state %s: %s failed: %s", path, what, strerror(e));
    return -1;
}

/* mkdir -p with mode 0700 for the directories we create; existing ones are left as they are. */
static int tlsca_dir_make(const char *dir, char *err, size_t errlen)
{
    char p[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof(p)) {
        tlsca_err_set(err, errlen, "TLS state directory \"%.200s\": invalid path", dir);
        return -1;
    }
    memcpy(p, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
            tlsca_err_set(err, errlen, "TLS state directory %s: %s", p, strerror(errno));
            return -1;
        }
        p[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        tlsca_err_set(err, errlen, "TLS state directory %s: not a directory", dir);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ PEM */

static char *tlsca_bio_take(BIO *b)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    if (n < 0 || !data)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    return s;
}

static char *tlsca_certs_pem(X509 *first, STACK_OF(X509) *rest)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return NULL;
    char *s = NULL;
    if (first && PEM_write_bio_X509(b, first) != 1)
        goto out;
    for (int i = 0; rest && i < sk_X509_num(rest); i++)
        if (PEM_write_bio_X509(b, sk_X509_value(rest, i)) != 1)
            goto out;
    s = tlsca_bio_take(b);
out:
    BIO_free(b);
    return s;
}

/* PKCS#8 "PRIVATE KEY". The secure-memory BIO wipes its buffer when freed. */
static char *tlsca_key_pem(EVP_PKEY *key)
{
    BIO *b = BIO_new(BIO_s_secmem());
    if (!b)
        return NULL;
    char *s = NULL;
    if (PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1)
        s = tlsca_bio_take(b);
    BIO_free(b);
    return s;
}

void tlsca_pem_free(char *pem)
{
    if (!pem)
        return;
    OPENSSL_cleanse(pem, strlen(pem));
    free(pem);
}

/* Never prompts on a terminal for an encrypted key: the daemon has no one to ask. */
static int tlsca_no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Every certificate in a PEM buffer, in order. Returns 0 with *first set (and *rest, possibly
 * empty), -1 with *why: no certificate at all, or a malformed block. */
static int tlsca_certs_parse(const char *buf, size_t len, X509 **first, STACK_OF(X509) **rest, const char **why)
{
    *first = NULL;
    *rest = NULL;
    if (len > INT32_MAX) {
        *why = "file too large";
        return -1;
    }
    BIO *b = BIO_new_mem_buf(buf, (int)len);
    STACK_OF(X509) *sk = sk_X509_new_null();
    if (!b || !sk) {
        BIO_free(b);
        sk_X509_free(sk);
        *why = "out of memory";
        return -1;
    }
    ERR_clear_error();
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            *why = "out of memory";
            goto fail;
        }
    }
    unsigned long e = ERR_peek_last_error();
    if (sk_X509_num(sk) == 0) {
        *why = e && ERR_GET_REASON(e) != PEM_R_NO_START_LINE ? "malformed PEM certificate"
                                                             : "no PEM certificate found (not a PEM file?)";
        goto fail;
    }
    /* Running out of blocks ends the loop with NO_START_LINE; anything else is a bad block. */
    if (e && ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
        *why = "malformed PEM certificate after the first one";
        goto fail;
    }
    ERR_clear_error();
    BIO_free(b);
    *first = sk_X509_shift(sk);
    *rest = sk;
    return 0;
fail:
    ERR_clear_error();
    BIO_free(b);
    sk_X509_pop_free(sk, X509_free);
    return -1;
}

static EVP_PKEY *tlsca_key_parse(const char *buf, size_t len, const char **why)
{
    if (len > INT32_MAX) {
        *why = "file too large";
        return NULL;
    }
    BIO *b = BIO_new_mem_buf(buf, (int)len);
    if (!b) {
        *why = "out of memory";
        return NULL;
    }
    ERR_clear_error();
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, tlsca_no_password, NULL);
    BIO_free(b);
    ERR_clear_error();
    if (!k) {
        if (memmem(buf, len, "ENCRYPTED", 9))
            *why = "encrypted private keys are not supported";
        else
            *why = "no PEM private key found (not a PEM key file?)";
    }
    return k;
}

/* ------------------------------------------------------------------ certificates */

static int tlsca_time_from_asn1(const ASN1_TIME *t, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (ASN1_TIME_to_tm(t, &tm) != 1)
        return -1;
    *out = timegm(&tm);
    return 0;
}

/* now + 2 calendar years, as Go's AddDate (Feb 29 rolls over to Mar 1). */
static time_t tlsca_time_add_years(time_t now, int years)
{
    struct tm tm;
    if (!gmtime_r(&now, &tm))
        return now + (time_t)years * 365 * 24 * 3600;
    tm.tm_year += years;
    return timegm(&tm);
}

static bool tlsca_cert_expired(const X509 *x, time_t now)
{
    time_t na;
    if (tlsca_time_from_asn1(X509_get0_notAfter(x), &na) < 0)
        return true;
    return na <= now;
}

/* Subject attributes as Go's pkix encodes ours: PrintableString, O before CN. */
static X509_NAME *tlsca_name_build(const char *org, const char *cn)
{
    X509_NAME *n = X509_NAME_new();
    if (!n)
        return NULL;
    if (X509_NAME_add_entry_by_NID(n, NID_organizationName, V_ASN1_PRINTABLESTRING, (const unsigned char *)org,
                                   -1, -1, 0) != 1)
        goto fail;
    if (cn && X509_NAME_add_entry_by_NID(n, NID_commonName, V_ASN1_PRINTABLESTRING, (const unsigned char *)cn,
                                         -1, -1, 0) != 1)
        goto fail;
    return n;
fail:
    X509_NAME_free(n);
    return NULL;
}

static int tlsca_serial_set(X509 *x)
{
    unsigned char b[16];
    BIGNUM *bn = NULL;
    ASN1_INTEGER *ai = NULL;
    int rc = -1;
    /* A zero serial is not a positive integer (RFC 5280 4.1.2.2); redraw the 2^-128 case. */
    do {
        if (RAND_bytes(b, sizeof(b)) != 1)
            return -1;
        BN_free(bn);
        bn = BN_bin2bn(b, sizeof(b), NULL);
        if (!bn)
            return -1;
    } while (BN_is_zero(bn));
    ai = BN_to_ASN1_INTEGER(bn, NULL);
    if (ai && X509_set_serialNumber(x, ai) == 1)
        rc = 0;
    ASN1_INTEGER_free(ai);
    BN_free(bn);
    return rc;
}

static int tlsca_ext_basic(X509 *x, bool is_ca)
{
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    if (!bc)
        return -1;
    bc->ca = is_ca ? 0xFF : 0;
    int rc = X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT) == 1 ? 0 : -1;
    BASIC_CONSTRAINTS_free(bc);
    return rc;
}

static int tlsca_ext_key_usage(X509 *x)
{
    ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
    if (!ku)
        return -1;
    int rc = -1;
    /* Bit 0 digitalSignature, bit 5 keyCertSign: what Go's certgen puts on every cert. */
    if (ASN1_BIT_STRING_set_bit(ku, 0, 1) == 1 && ASN1_BIT_STRING_set_bit(ku, 5, 1) == 1 &&
        X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) == 1)
        rc = 0;
    ASN1_BIT_STRING_free(ku);
    return rc;
}

static int tlsca_ext_eku(X509 *x, int nid)
{
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    if (!eku)
        return -1;
    int rc = -1;
    ASN1_OBJECT *o = OBJ_nid2obj(nid);
    if (o && sk_ASN1_OBJECT_push(eku, o) > 0 && X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT) == 1)
        rc = 0;
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return rc;
}

/* Built from GENERAL_NAME objects rather than a "DNS:..." config string so no server name
 * can smuggle in extra entries. */
static int tlsca_ext_san(X509 *x, const char *dns)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    int rc = -1;
    if (!gens || !gn || !ia5)
        goto out;
    if (ASN1_STRING_set(ia5, dns, (int)strlen(dns)) != 1)
        goto out;
    GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
    ia5 = NULL;
    if (sk_GENERAL_NAME_push(gens, gn) <= 0)
        goto out;
    gn = NULL;
    if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1)
        rc = 0;
out:
    ASN1_IA5STRING_free(ia5);
    GENERAL_NAME_free(gn);
    GENERAL_NAMES_free(gens);
    return rc;
}

/* SHA-1 of the public key bits, like Go does for CA certificates, so issued certs can name
 * their issuer's key (authorityKeyIdentifier) and chain building never guesses. */
static int tlsca_ext_ski(X509 *x)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (X509_pubkey_digest(x, EVP_sha1(), md, &mdlen) != 1)
        return -1;
    ASN1_OCTET_STRING *o = ASN1_OCTET_STRING_new();
    if (!o)
        return -1;
    int rc = -1;
    if (ASN1_OCTET_STRING_set(o, md, (int)mdlen) == 1 &&
        X509_add1_ext_i2d(x, NID_subject_key_identifier, o, 0, X509V3_ADD_DEFAULT) == 1)
        rc = 0;
    ASN1_OCTET_STRING_free(o);
    return rc;
}

static int tlsca_ext_aki(X509 *x, const X509 *issuer)
{
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id((X509 *)issuer);
    if (!ski)
        return 0;
    AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
    if (!akid)
        return -1;
    int rc = -1;
    akid->keyid = ASN1_OCTET_STRING_dup(ski);
    if (akid->keyid && X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT) == 1)
        rc = 0;
    AUTHORITY_KEYID_free(akid);
    return rc;
}

/* One certificate of the table in spec 3.6. issuer/signer NULL = self-signed. not_after_cap
 * (0 = none) clips the validity to the issuer's. */
static X509 *tlsca_cert_make(enum tlsca_kind kind, const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *signer,
                             time_t now, const ASN1_TIME *not_after_cap)
{
    X509 *x = X509_new();
    X509_NAME *subj = NULL;
    if (!x)
        return NULL;
    const char *org = kind == TLSCA_KIND_CLIENT ? TLSCA_ORG_CLIENT : TLSCA_ORG_FORWARDER;
    subj = tlsca_name_build(org, kind == TLSCA_KIND_SERVER ? cn : NULL);
    if (!subj)
        goto fail;
    if (X509_set_version(x, X509_VERSION_3) != 1 || tlsca_serial_set(x) < 0)
        goto fail;
    if (X509_set_subject_name(x, subj) != 1)
        goto fail;
    if (X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subj) != 1)
        goto fail;
    if (!ASN1_TIME_set(X509_getm_notBefore(x), now - TLSCA_BACKDATE))
        goto fail;
    time_t na = tlsca_time_add_years(now, TLSCA_YEARS);
    time_t cap;
    if (not_after_cap && tlsca_time_from_asn1(not_after_cap, &cap) == 0 && cap < na) {
        if (X509_set1_notAfter(x, not_after_cap) != 1)
            goto fail;
    } else if (!ASN1_TIME_set(X509_getm_notAfter(x), na)) {
        goto fail;
    }
    if (X509_set_pubkey(x, key) != 1)
        goto fail;
    if (tlsca_ext_basic(x, kind == TLSCA_KIND_CA) < 0 || tlsca_ext_key_usage(x) < 0 ||
        tlsca_ext_eku(x, kind == TLSCA_KIND_CLIENT ? NID_client_auth : NID_server_auth) < 0)
        goto fail;
    if (kind == TLSCA_KIND_SERVER && tlsca_ext_san(x, cn) < 0)
        goto fail;
    if (kind == TLSCA_KIND_CA && tlsca_ext_ski(x) < 0)
        goto fail;
    if (issuer && tlsca_ext_aki(x, issuer) < 0)
        goto fail;
    if (X509_sign(x, signer ? signer : key, EVP_sha256()) <= 0)
        goto fail;
    X509_NAME_free(subj);
    return x;
fail:
    X509_NAME_free(subj);
    X509_free(x);
    return NULL;
}

/* ------------------------------------------------------------------ persisted pairs */

/* Loads <dir>/<base>.crt and .key, or generates and persists them. The certificate is the
 * commit point (written after the key): a key without a certificate is an interrupted first
 * generation and is replaced; a certificate whose key is missing or wrong is an error. */
static int tlsca_pair_load_or_make(struct tlsca *ca, const char *dir, const char *base, enum tlsca_kind kind,
                                   X509 **cert_out, EVP_PKEY **key_out, char *err, size_t errlen)
{
    char crt_path[4096], key_path[4096], crt_name[64], key_name[64];
    snprintf(crt_name, sizeof(crt_name), "%s.crt", base);
    snprintf(key_name, sizeof(key_name), "%s.key", base);
    int n1 = snprintf(crt_path, sizeof(crt_path), "%s/%s", dir, crt_name);
    int n2 = snprintf(key_path, sizeof(key_path), "%s/%s", dir, key_name);
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(crt_path) || (size_t)n2 >= sizeof(key_path)) {
        tlsca_err_set(err, errlen, "TLS state directory %.200s: path too long", dir);
        return -1;
    }
    time_t now = tlsca_now(ca);
    char *buf = NULL;
    size_t len = 0;
    int e = 0;
    const char *why = NULL;

    if (tlsca_file_read(crt_path, &buf, &len, &e) == 0) {
        X509 *cert = NULL;
        STACK_OF(X509) *rest = NULL;
        int prc = tlsca_certs_parse(buf, len, &cert, &rest, &why);
        tlsca_buf_wipe_free(buf, len);
        sk_X509_pop_free(rest, X509_free);
        if (prc < 0) {
            tlsca_err_set(err, errlen, "TLS state %s: %s", crt_path, why);
            return -1;
        }
        if (tlsca_cert_expired(cert, now)) {
            log_warn(TLSCA_LOG, "%s has expired; generating a new one (pod VMs created with the old one can "
                     "no longer be reached)", crt_path);
            X509_free(cert);
            goto generate;
        }
        if (kind == TLSCA_KIND_CA && X509_check_ca(cert) < 1) {
            tlsca_err_set(err, errlen, "TLS state %s: not a CA certificate", crt_path);
            X509_free(cert);
            return -1;
        }
        if (tlsca_file_read(key_path, &buf, &len, &e) < 0) {
            tlsca_err_set(err, errlen, "TLS state %s: cannot read: %s (its certificate %s exists; remove both "
                          "to start over)", key_path, strerror(e), crt_path);
            X509_free(cert);
            return -1;
        }
        EVP_PKEY *key = tlsca_key_parse(buf, len, &why);
        tlsca_buf_wipe_free(buf, len);
        if (!key) {
            tlsca_err_set(err, errlen, "TLS state %s: %s", key_path, why);
            X509_free(cert);
            return -1;
        }
        if (EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1) {
            ERR_clear_error();
            tlsca_err_set(err, errlen, "TLS state %s does not match the certificate %s", key_path, crt_path);
            EVP_PKEY_free(key);
            X509_free(cert);
            return -1;
        }
        *cert_out = cert;
        *key_out = key;
        log_info(TLSCA_LOG, "loaded %s", crt_path);
        return 0;
    }
    if (e != ENOENT) {
        tlsca_err_set(err, errlen, "TLS state %s: cannot read: %s", crt_path, strerror(e));
        return -1;
    }

generate:;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (!key) {
        tlsca_err_set(err, errlen, "generating the %s key: %s", base, tlsca_ssl_reason());
        return -1;
    }
    X509 *cert = tlsca_cert_make(kind, NULL, key, NULL, NULL, now, NULL);
    if (!cert) {
        tlsca_err_set(err, errlen, "generating the %s certificate: %s", base, tlsca_ssl_reason());
        EVP_PKEY_free(key);
        return -1;
    }
    char *key_pem = tlsca_key_pem(key);
    char *crt_pem = tlsca_certs_pem(cert, NULL);
    int rc = -1;
    if (!key_pem || !crt_pem)
        tlsca_err_set(err, errlen, "encoding the %s material: out of memory", base);
    else if (tlsca_file_write(dir, key_name, key_pem, strlen(key_pem), err, errlen) == 0 &&
             tlsca_file_write(dir, crt_name, crt_pem, strlen(crt_pem), err, errlen) == 0)
        rc = 0;
    tlsca_pem_free(key_pem);
    free(crt_pem);
    if (rc < 0) {
        X509_free(cert);
        EVP_PKEY_free(key);
        return -1;
    }
    log_info(TLSCA_LOG, "generated %s", crt_path);
    *cert_out = cert;
    *key_out = key;
    return 0;
}

/* ------------------------------------------------------------------ files given by the user */

static int tlsca_user_certs_load(const char *setting, const char *path, X509 **first, STACK_OF(X509) **rest,
                                 char *err, size_t errlen)
{
    char *buf;
    size_t len;
    int e = 0;
    const char *why;
    if (tlsca_file_read(path, &buf, &len, &e) < 0) {
        tlsca_err_set(err, errlen, "%s \"%s\": cannot read: %s", setting, path,
                      e == EINVAL ? "not a regular file" : strerror(e));
        return -1;
    }
    int rc = tlsca_certs_parse(buf, len, first, rest, &why);
    tlsca_buf_wipe_free(buf, len);
    if (rc < 0) {
        tlsca_err_set(err, errlen, "%s \"%s\": %s", setting, path, why);
        return -1;
    }
    return 0;
}

static int tlsca_user_client_load(struct tlsca *ca, const char *cert_file, const char *key_file, char *err,
                                  size_t errlen)
{
    if (tlsca_user_certs_load("CERT_FILE (-cert-file)", cert_file, &ca->client_cert, &ca->client_chain, err,
                              errlen) < 0)
        return -1;
    char *buf;
    size_t len;
    int e = 0;
    const char *why;
    if (tlsca_file_read(key_file, &buf, &len, &e) < 0) {
        tlsca_err_set(err, errlen, "CERT_KEY (-cert-key) \"%s\": cannot read: %s", key_file,
                      e == EINVAL ? "not a regular file" : strerror(e));
        return -1;
    }
    ca->client_key = tlsca_key_parse(buf, len, &why);
    tlsca_buf_wipe_free(buf, len);
    if (!ca->client_key) {
        tlsca_err_set(err, errlen, "CERT_KEY (-cert-key) \"%s\": %s", key_file, why);
        return -1;
    }
    if (EVP_PKEY_eq(X509_get0_pubkey(ca->client_cert), ca->client_key) != 1) {
        ERR_clear_error();
        tlsca_err_set(err, errlen, "CERT_KEY (-cert-key) \"%s\" does not match the certificate in CERT_FILE "
                      "(-cert-file) \"%s\"", key_file, cert_file);
        return -1;
    }
    uint32_t flags = X509_get_extension_flags(ca->client_cert);
    if ((flags & EXFLAG_XKUSAGE) && !(X509_get_extended_key_usage(ca->client_cert) & XKU_SSL_CLIENT))
        log_warn(TLSCA_LOG, "CERT_FILE %s has an extended key usage without clientAuth; pod VMs will refuse it",
                 cert_file);
    if (tlsca_cert_expired(ca->client_cert, tlsca_now(ca)))
        log_warn(TLSCA_LOG, "CERT_FILE %s has expired", cert_file);
    return 0;
}

/* ------------------------------------------------------------------ open / free */

const char *tlsca_mode_name(enum tlsca_mode mode)
{
    switch (mode) {
    case TLSCA_DISABLED:
        return "disabled";
    case TLSCA_AUTO:
        return "automatic";
    case TLSCA_CLIENT_FILES:
        return "client-cert-files";
    case TLSCA_CA_FILE:
        return "ca-file";
    }
    return "unknown";
}

void tlsca_free(struct tlsca *ca)
{
    if (!ca)
        return;
    EVP_PKEY_free(ca->ca_key);
    X509_free(ca->ca_cert);
    sk_X509_pop_free(ca->trust, X509_free);
    free(ca->ca_pem);
    X509_free(ca->client_cert);
    sk_X509_pop_free(ca->client_chain, X509_free);
    EVP_PKEY_free(ca->client_key);
    free(ca->client_cert_pem);
    free(ca);
}

static int tlsca_mode_decide(const struct tlsca_options *opt, enum tlsca_mode *mode, char *err, size_t errlen)
{
    bool has_ca = tlsca_str_set(opt->ca_cert_file);
    bool has_cert = tlsca_str_set(opt->cert_file), has_key = tlsca_str_set(opt->cert_key);
    if (opt->disable_tls) {
        if (has_ca || has_cert || has_key)
            log_warn(TLSCA_LOG, "-disable-tls is set: CACERT_FILE, CERT_FILE and CERT_KEY are ignored");
        *mode = TLSCA_DISABLED;
        return 0;
    }
    /* Go silently generates a client certificate when only one of the pair is given; a
     * half-configured pair is far more likely a typo than a wish. */
    if (has_cert != has_key) {
        tlsca_err_set(err, errlen, "%s is set but %s is not: give both or neither",
                      has_cert ? "CERT_FILE (-cert-file)" : "CERT_KEY (-cert-key)",
                      has_cert ? "CERT_KEY (-cert-key)" : "CERT_FILE (-cert-file)");
        return -1;
    }
    *mode = has_ca ? TLSCA_CA_FILE : has_cert ? TLSCA_CLIENT_FILES : TLSCA_AUTO;
    return 0;
}

int tlsca_open(struct tlsca **out, const struct tlsca_options *opt, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    *out = NULL;
    enum tlsca_mode mode;
    if (tlsca_mode_decide(opt, &mode, err, errlen) < 0)
        return -1;
    struct tlsca *ca = calloc(1, sizeof(*ca));
    if (!ca) {
        tlsca_err_set(err, errlen, "out of memory");
        return -1;
    }
    ca->mode = mode;
    ca->fixed_now = opt->now;
    if (mode == TLSCA_DISABLED) {
        log_info(TLSCA_LOG, "TLS to pod VMs is disabled");
        *out = ca;
        return 0;
    }

    bool user_client = tlsca_str_set(opt->cert_file);
    char dir[4096] = "";
    if (mode != TLSCA_CA_FILE || !user_client) {
        if (!tlsca_str_set(opt->state_dir)) {
            tlsca_err_set(err, errlen, "TLS mode %s needs a state directory for the generated material",
                          tlsca_mode_name(mode));
            goto fail;
        }
        int n = snprintf(dir, sizeof(dir), "%s/tls", opt->state_dir);
        if (n < 0 || (size_t)n >= sizeof(dir)) {
            tlsca_err_set(err, errlen, "TLS state directory \"%.200s\": path too long", opt->state_dir);
            goto fail;
        }
        if (tlsca_dir_make(dir, err, errlen) < 0)
            goto fail;
    }

    if (mode == TLSCA_CA_FILE) {
        X509 *first = NULL;
        if (tlsca_user_certs_load("CACERT_FILE (-ca-cert-file)", opt->ca_cert_file, &first, &ca->trust, err,
                                  errlen) < 0)
            goto fail;
        if (sk_X509_unshift(ca->trust, first) <= 0) {
            X509_free(first);
            tlsca_err_set(err, errlen, "out of memory");
            goto fail;
        }
    } else {
        if (tlsca_pair_load_or_make(ca, dir, "ca", TLSCA_KIND_CA, &ca->ca_cert, &ca->ca_key, err, errlen) < 0)
            goto fail;
        ca->trust = sk_X509_new_null();
        if (!ca->trust || X509_up_ref(ca->ca_cert) != 1)
            goto oom;
        if (sk_X509_push(ca->trust, ca->ca_cert) <= 0) {
            X509_free(ca->ca_cert);
            goto oom;
        }
    }

    if (user_client) {
        if (tlsca_user_client_load(ca, opt->cert_file, opt->cert_key, err, errlen) < 0)
            goto fail;
    } else if (tlsca_pair_load_or_make(ca, dir, "client", TLSCA_KIND_CLIENT, &ca->client_cert, &ca->client_key, err,
                                       errlen) < 0) {
        goto fail;
    }

    ca->ca_pem = tlsca_certs_pem(NULL, ca->trust);
    ca->client_cert_pem = tlsca_certs_pem(ca->client_cert, ca->client_chain);
    if (!ca->ca_pem || !ca->client_cert_pem)
        goto oom;
    log_info(TLSCA_LOG, "TLS to pod VMs: %s mode", tlsca_mode_name(mode));
    *out = ca;
    return 0;
oom:
    tlsca_err_set(err, errlen, "out of memory");
fail:
    tlsca_free(ca);
    return -1;
}

enum tlsca_mode tlsca_mode_get(const struct tlsca *ca)
{
    return ca->mode;
}

/* ------------------------------------------------------------------ apf.json */

bool tlsca_issues_server_certs(const struct tlsca *ca)
{
    return ca->mode == TLSCA_AUTO || ca->mode == TLSCA_CLIENT_FILES;
}

const char *tlsca_apf_client_ca(const struct tlsca *ca)
{
    /* Go leaves this empty for the first VM in client-files mode (quirk); every VM gets it here. */
    return tlsca_issues_server_certs(ca) ? ca->client_cert_pem : NULL;
}

/* What may appear in a certificate name: the VM names of spec 5.1 and dotted DNS names. */
static int tlsca_server_name_check(const char *name, char *err, size_t errlen)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > TLSCA_NAME_MAX) {
        tlsca_err_set(err, errlen, "server name must be 1-%d characters, got %zu", TLSCA_NAME_MAX, len);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                  (c == '.' && i > 0 && i + 1 < len && name[i - 1] != '.');
        if (!ok) {
            tlsca_err_set(err, errlen, "server name \"%.64s\": invalid character at offset %zu (letters, digits, "
                          "'-' and inner '.' only)", name, i);
            return -1;
        }
    }
    return 0;
}

int tlsca_issue_server(const struct tlsca *ca, const char *server_name, char **cert_pem, char **key_pem,
                       char *err, size_t errlen)
{
    *cert_pem = NULL;
    *key_pem = NULL;
    if (!tlsca_issues_server_certs(ca)) {
        tlsca_err_set(err, errlen, "TLS mode %s issues no server certificates", tlsca_mode_name(ca->mode));
        return -1;
    }
    if (tlsca_server_name_check(server_name, err, errlen) < 0)
        return -1;
    time_t now = tlsca_now(ca);
    if (tlsca_cert_expired(ca->ca_cert, now)) {
        tlsca_err_set(err, errlen, "the daemon's CA certificate has expired; restart the daemon to generate a "
                      "new one");
        return -1;
    }
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (!key) {
        tlsca_err_set(err, errlen, "generating a server key: %s", tlsca_ssl_reason());
        return -1;
    }
    X509 *x = tlsca_cert_make(TLSCA_KIND_SERVER, server_name, key, ca->ca_cert, ca->ca_key, now,
                              X509_get0_notAfter(ca->ca_cert));
    if (!x) {
        tlsca_err_set(err, errlen, "issuing a server certificate for %s: %s", server_name, tlsca_ssl_reason());
        EVP_PKEY_free(key);
        return -1;
    }
    char *c = tlsca_certs_pem(x, NULL);
    char *k = tlsca_key_pem(key);
    X509_free(x);
    EVP_PKEY_free(key);
    if (!c || !k) {
        free(c);
        tlsca_pem_free(k);
        tlsca_err_set(err, errlen, "encoding the server certificate: out of memory");
        return -1;
    }
    *cert_pem = c;
    *key_pem = k;
    return 0;
}

/* ------------------------------------------------------------------ TLS profile */

struct tlsca_cipher {
    const char *iana;
    const char *openssl; /* NULL: a TLS 1.3 suite */
};

/* The names Kubernetes' --tls-cipher-suites accepts (Go's tls.CipherSuites and
 * tls.InsecureCipherSuites, plus its two legacy CHACHA20 aliases). The TLS 1.2 suites the
 * pod VM's Go forwarder can speak are all here; 3DES and RC4 are known but Debian's OpenSSL
 * no longer ships them. */
static const struct tlsca_cipher tlsca_ciphers[] = {
    {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"},
    {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"},
    {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "ECDHE-ECDSA-CHACHA20-POLY1305"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA"},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"},
    {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256"},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"},
    {"TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "ECDHE-RSA-DES-CBC3-SHA"},
    {"TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", "ECDHE-ECDSA-RC4-SHA"},
    {"TLS_ECDHE_RSA_WITH_RC4_128_SHA", "ECDHE-RSA-RC4-SHA"},
    {"TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"},
    {"TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"},
    {"TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"},
    {"TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"},
    {"TLS_RSA_WITH_AES_128_CBC_SHA256", "AES128-SHA256"},
    {"TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA"},
    {"TLS_RSA_WITH_RC4_128_SHA", "RC4-SHA"},
    {"TLS_AES_128_GCM_SHA256", NULL},
    {"TLS_AES_256_GCM_SHA384", NULL},
    {"TLS_CHACHA20_POLY1305_SHA256", NULL},
};

int tlsca_cipher_lookup(const char *iana, const char **openssl)
{
    *openssl = NULL;
    for (size_t i = 0; i < sizeof(tlsca_ciphers) / sizeof(tlsca_ciphers[0]); i++) {
        if (strcmp(iana, tlsca_ciphers[i].iana))
            continue;
        *openssl = tlsca_ciphers[i].openssl;
        return *openssl ? 1 : 0;
    }
    return -1;
}

void tlsca_profile_free(struct tlsca_profile *p)
{
    free(p->cipher_list);
    p->cipher_list = NULL;
}

/* Appends one OpenSSL suite name to a ':'-separated list unless already there. */
static int tlsca_list_add(char **list, size_t *len, const char *name)
{
    size_t nl = strlen(name);
    if (*list) {
        for (const char *s = *list; *s;) {
            const char *e = strchr(s, ':');
            size_t l = e ? (size_t)(e - s) : strlen(s);
            if (l == nl && !memcmp(s, name, nl))
                return 0;
            s += l + (e ? 1 : 0);
        }
    }
    char *n = realloc(*list, *len + nl + 2);
    if (!n)
        return -1;
    if (*len)
        n[(*len)++] = ':';
    memcpy(n + *len, name, nl + 1);
    *len += nl;
    *list = n;
    return 0;
}

int tlsca_profile_parse(struct tlsca_profile *p, const char *min_version, const char *cipher_suites, char *err,
                        size_t errlen)
{
    p->min_version = TLS1_2_VERSION;
    p->cipher_list = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (tlsca_str_set(min_version)) {
        if (!strcmp(min_version, "VersionTLS13")) {
            p->min_version = TLS1_3_VERSION;
        } else if (strcmp(min_version, "VersionTLS12")) {
            tlsca_err_set(err, errlen, "invalid TLS profile: TLS_MIN_VERSION \"%.64s\" is not VersionTLS12 or "
                          "VersionTLS13", min_version);
            return -1;
        }
    }
    if (!tlsca_str_set(cipher_suites))
        return 0;
    if (p->min_version == TLS1_3_VERSION) {
        tlsca_err_set(err, errlen, "invalid TLS profile: TLS_CIPHER_SUITES cannot be configured with "
                      "TLS_MIN_VERSION VersionTLS13 (TLS 1.3 suites are not configurable)");
        return -1;
    }
    /* Availability is probed on a throw-away context: OpenSSL drops names it lacks without
     * complaint, so a list of only missing suites would otherwise surface at the first dial. */
    SSL_CTX *probe = SSL_CTX_new(TLS_client_method());
    if (!probe) {
        tlsca_err_set(err, errlen, "invalid TLS profile: cannot create a TLS context: %s", tlsca_ssl_reason());
        return -1;
    }
    char *list = NULL;
    size_t len = 0;
    bool tls13 = false;
    int rc = -1;
    for (const char *s = cipher_suites;;) {
        const char *e = strchr(s, ',');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        char name[128];
        if (l >= sizeof(name)) {
            tlsca_err_set(err, errlen, "invalid TLS profile: TLS_CIPHER_SUITES: unknown cipher suite \"%.64s...\"",
                          s);
            goto out;
        }
        memcpy(name, s, l);
        name[l] = '\0';
        const char *ossl;
        int k = tlsca_cipher_lookup(name, &ossl);
        if (k < 0) {
            bool spaced = l && (name[0] == ' ' || name[l - 1] == ' ' || name[0] == '\t' || name[l - 1] == '\t');
            tlsca_err_set(err, errlen, "invalid TLS profile: TLS_CIPHER_SUITES: unknown cipher suite \"%s\"%s",
                          name, l == 0 ? " (empty name between commas)"
                                       : spaced ? " (names are separated by ',' only, without spaces)" : "");
            goto out;
        }
        if (k == 0) {
            tls13 = true;
        } else if (SSL_CTX_set_cipher_list(probe, ossl) != 1) {
            ERR_clear_error();
            log_warn(TLSCA_LOG, "TLS_CIPHER_SUITES: %s is not available in this OpenSSL build; skipped", name);
        } else if (tlsca_list_add(&list, &len, ossl) < 0) {
            tlsca_err_set(err, errlen, "invalid TLS profile: out of memory");
            goto out;
        }
        if (!e)
            break;
        s = e + 1;
    }
    if (!list) {
        if (!tls13) {
            tlsca_err_set(err, errlen, "invalid TLS profile: none of the suites in TLS_CIPHER_SUITES is available "
                          "in this OpenSSL build");
            goto out;
        }
        /* Only TLS 1.3 names: no TLS 1.2 suite is left to agree on, so only TLS 1.3 can work. */
        log_warn(TLSCA_LOG, "TLS_CIPHER_SUITES names TLS 1.3 suites only; TLS 1.2 is effectively disabled");
        p->min_version = TLS1_3_VERSION;
    }
    p->cipher_list = list;
    list = NULL;
    rc = 0;
out:
    free(list);
    SSL_CTX_free(probe);
    return rc;
}

/* ------------------------------------------------------------------ client side */

const char *tlsca_ca_pem(const struct tlsca *ca)
{
    return ca->mode == TLSCA_DISABLED ? NULL : ca->ca_pem;
}

const char *tlsca_client_cert_pem(const struct tlsca *ca)
{
    return ca->mode == TLSCA_DISABLED ? NULL : ca->client_cert_pem;
}

int tlsca_client_key_pem(const struct tlsca *ca, char **key_pem, char *err, size_t errlen)
{
    *key_pem = NULL;
    if (ca->mode == TLSCA_DISABLED) {
        tlsca_err_set(err, errlen, "TLS is disabled: no client key");
        return -1;
    }
    *key_pem = tlsca_key_pem(ca->client_key);
    if (!*key_pem) {
        tlsca_err_set(err, errlen, "encoding the client key: %s", tlsca_ssl_reason());
        return -1;
    }
    return 0;
}

const char *tlsca_server_name(const struct tlsca *ca, const char *vm_name)
{
    switch (ca->mode) {
    case TLSCA_DISABLED:
        return NULL;
    case TLSCA_CA_FILE:
        return TLSCA_PODVM_SERVER_NAME;
    case TLSCA_AUTO:
    case TLSCA_CLIENT_FILES:
        break;
    }
    return vm_name;
}

SSL_CTX *tlsca_client_ctx_new(const struct tlsca *ca, const struct tlsca_profile *profile, bool skip_verify,
                              char *err, size_t errlen)
{
    if (ca->mode == TLSCA_DISABLED) {
        tlsca_err_set(err, errlen, "TLS is disabled: no client context");
        return NULL;
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        tlsca_err_set(err, errlen, "creating the TLS client context: %s", tlsca_ssl_reason());
        return NULL;
    }
    const char *what;
    what = "minimum TLS version";
    if (SSL_CTX_set_min_proto_version(ctx, profile ? profile->min_version : TLS1_2_VERSION) != 1)
        goto fail;
    what = "cipher suites";
    if (SSL_CTX_set_cipher_list(ctx, profile && profile->cipher_list ? profile->cipher_list
                                                                      : TLSCA_DEFAULT_CIPHERS) != 1)
        goto fail;
    /* Go clients never renegotiate; neither do we. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    what = "client certificate";
    if (SSL_CTX_use_certificate(ctx, ca->client_cert) != 1)
        goto fail;
    for (int i = 0; ca->client_chain && i < sk_X509_num(ca->client_chain); i++)
        if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(ca->client_chain, i)) != 1)
            goto fail;
    what = "client key";
    if (SSL_CTX_use_PrivateKey(ctx, ca->client_key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    what = "trust store";
    X509_STORE *st = SSL_CTX_get_cert_store(ctx);
    for (int i = 0; i < sk_X509_num(ca->trust); i++)
        if (X509_STORE_add_cert(st, sk_X509_value(ca->trust, i)) != 1)
            goto fail;
    /* Go trusts every certificate in its root pool as an anchor, intermediates included;
     * OpenSSL needs to be told. */
    if (X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN) != 1)
        goto fail;
    if (skip_verify)
        log_warn(TLSCA_LOG, "TLS_SKIP_VERIFY: pod VM certificates are not verified (mutual TLS is kept)");
    SSL_CTX_set_verify(ctx, skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    /* An agent link is idle most of its life: OpenSSL's 2 x ~17 KiB record buffers are freed
     * between bursts instead of held by each of hundreds of links (issue 9, P3). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
fail:
    tlsca_err_set(err, errlen, "TLS client context: setting the %s: %s", what, tlsca_ssl_reason());
    SSL_CTX_free(ctx);
    return NULL;
}

int tlsca_client_ssl_prepare(const struct tlsca *ca, SSL *ssl, const char *vm_name, char *err, size_t errlen)
{
    const char *name = tlsca_server_name(ca, vm_name);
    if (!name || !*name) {
        tlsca_err_set(err, errlen, "no server name to verify the pod VM against");
        return -1;
    }
    ERR_clear_error();
    if (SSL_set_tlsext_host_name(ssl, name) != 1) {
        tlsca_err_set(err, errlen, "setting the TLS server name %.64s: %s", name, tlsca_ssl_reason());
        return -1;
    }
    /* Go matches SAN DNS names only; OpenSSL would fall back to the CN without this. */
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, name) != 1) {
        tlsca_err_set(err, errlen, "setting the expected TLS host %.64s: %s", name, tlsca_ssl_reason());
        return -1;
    }
    return 0;
}
