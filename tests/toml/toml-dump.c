/* toml-dump: prints what adaptor/toml reads, for the differential test against Python's
 * tomllib (tests/toml/differential.py). Reads records "<decimal length>\n<bytes>" from stdin
 * and prints one JSON line per record: {"ok": <tree>} or {"error": "<message>"}. In the
 * tree, strings are JSON strings, tables objects, arrays arrays, and the other scalars
 * tagged objects: {"int": "<decimal>"}, {"float": "<%.17g>"}, {"bool": true},
 * {"datetime": "<text>"}. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "toml.h"

static json_t *tree(const struct toml_value *v)
{
    char num[64];
    switch (v->kind) {
    case TOML_STRING:
        return json_stringn_nocheck(v->u.str.data, v->u.str.len);
    case TOML_DATETIME:
        return json_pack("{s:s}", "datetime", v->u.str.data);
    case TOML_INTEGER:
        snprintf(num, sizeof(num), "%" PRId64, v->u.integer);
        return json_pack("{s:s}", "int", num);
    case TOML_FLOAT:
        snprintf(num, sizeof(num), "%.17g", v->u.real);
        return json_pack("{s:s}", "float", num);
    case TOML_BOOL:
        return json_pack("{s:b}", "bool", v->u.boolean);
    case TOML_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0; i < v->u.array.n; i++)
            json_array_append_new(a, tree(v->u.array.items[i]));
        return a;
    }
    case TOML_TABLE: {
        json_t *o = json_object();
        for (size_t i = 0; i < v->u.table.n; i++)
            json_object_set_new(o, v->u.table.pairs[i].key, tree(v->u.table.pairs[i].value));
        return o;
    }
    }
    return json_null();
}

int main(void)
{
    size_t len;
    while (fscanf(stdin, "%zu", &len) == 1) {
        if (fgetc(stdin) != '\n')
            return 2;
        char *buf = malloc(len + 1);
        if (!buf || fread(buf, 1, len, stdin) != len)
            return 2;
        struct toml_error err;
        struct toml_value *root = toml_parse(buf, len, &err);
        json_t *out = root ? json_pack("{s:o}", "ok", tree(root)) : json_pack("{s:s}", "error", err.msg);
        char *line = json_dumps(out, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (!line)
            return 2;
        puts(line);
        free(line);
        json_decref(out);
        toml_free(root);
        free(buf);
    }
    return 0;
}
