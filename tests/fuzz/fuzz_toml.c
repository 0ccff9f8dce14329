/* libFuzzer target for the TOML reader (adaptor/toml.c).
 *
 * Whatever the input: parsing never reads out of bounds or leaks. On failure the error has
 * a message of the form "line N: ..." with N within the document (or "out of memory"); on
 * success every string in the tree is NUL-terminated at its length and every table key is
 * unique within its table. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#include "toml.h"


static void walk(const struct toml_value *v, unsigned lines)
{
    CHECK(v->line >= 1 && v->line <= lines);
    switch (v->kind) {
    case TOML_STRING:
    case TOML_DATETIME:
        CHECK(v->u.str.data && v->u.str.data[v->u.str.len] == '\0');
        break;
    case TOML_TABLE:
        for (size_t i = 0; i < v->u.table.n; i++) {
            for (size_t j = 0; j < i; j++)
                CHECK(strcmp(v->u.table.pairs[i].key, v->u.table.pairs[j].key) != 0);
            CHECK(toml_table_get(v, v->u.table.pairs[i].key) == v->u.table.pairs[i].value);
            walk(v->u.table.pairs[i].value, lines);
        }
        break;
    case TOML_ARRAY:
        for (size_t i = 0; i < v->u.array.n; i++)
            walk(v->u.array.items[i], lines);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    struct toml_error err;
    struct toml_value *root = toml_parse((const char *)data, size, &err);
    if (!root) {
        CHECK(err.msg[0]);
        if (strcmp(err.msg, "out of memory") != 0) {
            CHECK(strncmp(err.msg, "line ", 5) == 0);
            CHECK(err.line >= 1 && err.line <= lines);
        }
        return 0;
    }
    CHECK(root->kind == TOML_TABLE);
    walk(root, lines);
    toml_free(root);
    return 0;
}
