/* toml: a TOML 1.0 reader, strict enough that what it accepts the pod VM's reader accepts
 * too. Written for initdata documents (spec protocols.md 4.5): basic and literal strings,
 * their multi-line forms, comments, tables, arrays of tables, dotted keys, inline tables,
 * arrays, integers, floats, booleans and date-times. Pure code: no I/O, no logging.
 *
 * Memory: toml_parse returns a tree that the caller owns and releases with toml_free, which
 * wipes every string first (initdata strings carry certificates and policies). Pointers
 * into the tree live as long as the tree. The input is borrowed for the call only.
 *
 * Errors name the line and the problem and never quote a value from the document. */
#ifndef ADAPTOR_TOML_H
#define ADAPTOR_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds for untrusted input: a document with more values, or deeper nesting of arrays and
 * inline tables, is refused. Far above anything an initdata file holds. */
#define TOML_VALUES_MAX 8192
#define TOML_DEPTH_MAX 64

enum toml_kind { TOML_TABLE, TOML_ARRAY, TOML_STRING, TOML_INTEGER, TOML_FLOAT, TOML_BOOL, TOML_DATETIME };

struct toml_value;

struct toml_pair {
    char *key; /* NUL-terminated; keys holding a NUL byte are refused */
    struct toml_value *value;
};

struct toml_value {
    enum toml_kind kind;
    unsigned line; /* where the value (or the table's header) starts */
    union {
        struct {
            char *data; /* NUL-terminated; len excludes the NUL; may hold NUL bytes */
            size_t len;
        } str;          /* TOML_STRING, and the text of a TOML_DATETIME */
        int64_t integer;
        double real;
        bool boolean;
        struct {
            struct toml_pair *pairs; /* in document order */
            size_t n, cap;
            unsigned flags; /* parser bookkeeping */
        } table;
        struct {
            struct toml_value **items;
            size_t n, cap;
            bool of_tables; /* defined with [[header]] */
        } array;
    } u;
};

struct toml_error {
    unsigned line; /* 1-based; 0 when the problem is not tied to a line */
    char msg[160];
};

/* Parses a whole document into its root table. NULL with *err filled on malformed input
 * (err->msg is "line N: problem") or on allocation failure ("out of memory"). */
struct toml_value *toml_parse(const char *text, size_t len, struct toml_error *err);
void toml_free(struct toml_value *v);

/* The value under key in a table, NULL if absent or if t is not a table. */
const struct toml_value *toml_table_get(const struct toml_value *t, const char *key);
const char *toml_kind_name(enum toml_kind k);

#endif
