/* fuzz_json.c: libFuzzer harness for the strict JSON reader (src/io/json_reader.c), fed the raw input as a
 * buffer that is not NUL-terminated (a copy of exactly the input's bytes, so ASan catches any read past the
 * end). Invariants: a failure leaves an empty value and a message with the byte offset ("at byte N", N at most
 * the input's length); a success gives a tree whose depth is at most JSON_MAX_DEPTH, whose offsets lie inside
 * the input, whose strings and keys are valid UTF-8 without NUL bytes with the recorded length, whose object
 * keys are unique and found by json_get, whose numbers are finite with is_int only when the integer converts
 * to the number; and the tree survives a round trip through json_writer and json_parse unchanged (same types,
 * strings, keys, numbers and booleans). */
#include "fuzz_common.h"

#include <math.h>

#include "../../src/core/common.h"
#include "../../src/io/json_reader.h"
#include "../../src/io/json_writer.h"

/* 1 when s[0..n) is valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i], cp;
        size_t len;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
        else return 0;
        if (i + len > n) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

static void check_string(const char *s, size_t len, const char *what) {
    FUZZ_ASSERT(s != NULL, "%s: NULL string", what);
    FUZZ_ASSERT(strlen(s) == len, "%s: length %zu, strlen %zu (NUL inside?)", what, len, strlen(s));
    FUZZ_ASSERT(valid_utf8((const unsigned char *)s, len), "%s: invalid UTF-8", what);
}

static void check_tree(const JsonValue *v, size_t size, int depth) {
    FUZZ_ASSERT(v->offset < size, "offset %zu outside the input (%zu bytes)", v->offset, size);
    switch (v->type) {
    case JSON_NULL: break;
    case JSON_BOOL: FUZZ_ASSERT(v->boolean == 0 || v->boolean == 1, "boolean %d", v->boolean); break;
    case JSON_NUMBER:
        FUZZ_ASSERT(isfinite(v->number), "non-finite number at byte %zu", v->offset);
        FUZZ_ASSERT(!v->is_int || (double)v->integer == v->number, "integer %lld but number %.17g",
                    (long long)v->integer, v->number);
        break;
    case JSON_STRING: check_string(v->string, v->length, "string"); break;
    case JSON_ARRAY:
    case JSON_OBJECT:
        FUZZ_ASSERT(depth + 1 <= JSON_MAX_DEPTH, "depth %d past the limit", depth + 1);
        FUZZ_ASSERT(v->count >= 0 && (v->count == 0 || v->items), "container count %d", v->count);
        for (int k = 0; k < v->count; k++) {
            if (v->type == JSON_OBJECT) {
                check_string(v->keys[k], strlen(v->keys[k]), "key");
                FUZZ_ASSERT(json_get(v, v->keys[k]) == &v->items[k], "key '%s' is not unique or not found",
                            v->keys[k]);
            }
            FUZZ_ASSERT(json_at(v, k) == &v->items[k], "json_at(%d)", k);
            check_tree(&v->items[k], size, depth + 1);
        }
        break;
    default: FUZZ_ASSERT(0, "type %d", (int)v->type);
    }
}

static void write_tree(JsonWriter *w, const JsonValue *v) {
    switch (v->type) {
    case JSON_NULL: json_null(w); break;
    case JSON_BOOL: json_bool(w, v->boolean); break;
    case JSON_NUMBER:
        if (v->is_int)
            json_int(w, v->integer);
        else
            json_double(w, v->number);
        break;
    case JSON_STRING: json_string(w, v->string); break;
    case JSON_ARRAY:
        json_array_begin(w);
        for (int k = 0; k < v->count; k++) write_tree(w, &v->items[k]);
        json_array_end(w);
        break;
    case JSON_OBJECT:
        json_object_begin(w);
        for (int k = 0; k < v->count; k++) {
            json_key(w, v->keys[k]);
            write_tree(w, &v->items[k]);
        }
        json_object_end(w);
        break;
    }
}

static void check_same(const JsonValue *a, const JsonValue *b) {
    FUZZ_ASSERT(a->type == b->type, "round trip changed type %d to %d", (int)a->type, (int)b->type);
    switch (a->type) {
    case JSON_BOOL: FUZZ_ASSERT(a->boolean == b->boolean, "round trip changed a boolean"); break;
    case JSON_NUMBER:
        FUZZ_ASSERT(a->number == b->number, "round trip changed %.17g to %.17g", a->number, b->number);
        FUZZ_ASSERT(!a->is_int || (b->is_int && a->integer == b->integer), "round trip lost integer %lld",
                    (long long)a->integer);
        break;
    case JSON_STRING: FUZZ_ASSERT(strcmp(a->string, b->string) == 0, "round trip changed a string"); break;
    case JSON_ARRAY:
    case JSON_OBJECT:
        FUZZ_ASSERT(a->count == b->count, "round trip changed a count %d to %d", a->count, b->count);
        for (int k = 0; k < a->count; k++) {
            if (a->type == JSON_OBJECT) FUZZ_ASSERT(strcmp(a->keys[k], b->keys[k]) == 0, "round trip changed a key");
            check_same(&a->items[k], &b->items[k]);
        }
        break;
    default: break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size ? size : 1); /* exactly the input: no NUL after it */
    FUZZ_ASSERT(text, "out of memory");
    if (size) memcpy(text, data, size);
    JsonValue v;
    int rc = json_parse(text, size, &v);
    if (rc != 0) {
        FUZZ_ASSERT(rc == -1, "rc %d", rc);
        FUZZ_ASSERT(v.type == JSON_NULL && v.items == NULL && v.string == NULL, "failure left a value");
        const char *at = strstr(hs_last_error(), "at byte ");
        FUZZ_ASSERT(at, "message without a byte offset: %s", hs_last_error());
        FUZZ_ASSERT(strtoull(at + 8, NULL, 10) <= size, "offset past the input: %s", hs_last_error());
        free(text);
        return 0;
    }
    check_tree(&v, size, 0);

    char *out = NULL;
    size_t out_size = 0;
    FILE *fp = open_memstream(&out, &out_size);
    FUZZ_ASSERT(fp, "open_memstream");
    JsonWriter w;
    json_begin(&w, fp);
    write_tree(&w, &v);
    json_end(&w);
    FUZZ_ASSERT(fclose(fp) == 0, "writing the copy");
    JsonValue c;
    FUZZ_ASSERT(json_parse(out, out_size, &c) == 0, "re-reading the written copy failed: %s\n%s", hs_last_error(), out);
    check_same(&v, &c);
    json_free(&c);
    free(out);
    json_free(&v);
    free(text);
    return 0;
}
