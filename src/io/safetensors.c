/* safetensors.c: reader and writer for the safetensors format (see safetensors.h): an 8-byte little-endian
 * u64 header length N, N bytes of UTF-8 JSON ({"name": {"dtype": "F32", "shape": [..], "data_offsets":
 * [begin, end]}, ..., "__metadata__": {"key": "value"}}), then the data section holding the raw
 * little-endian tensor bytes at those offsets. The reader holds a small, strict, depth-limited JSON parser
 * (objects, arrays, strings with every escape incl. surrogate pairs, integers; true/false/null parse but are
 * rejected by validation) and validates everything: file size, header length (at most 100 MB, the format's
 * limit), UTF-8, JSON syntax, field names and types, dtype, shape (non-negative, at most ST_MAX_DIMS dims,
 * no overflow), data_offsets size against dtype size * numel, offsets inside the data section, overlapping
 * tensors, empty names (the writer refuses them too) and duplicate names.
 * Every message names the file and, where one is involved, the tensor. The writer emits a compact header
 * padded with spaces to a multiple of 8 bytes (as the Python library does), tensors in the given order, and
 * writes atomically through atomic_file. Byte order: the host must be little-endian (checked at compile
 * time), so tensor bytes are copied as they are. */
#define _XOPEN_SOURCE 700
#include "safetensors.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/common.h"
#include "atomic_file.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define JSON_MAX_DEPTH 32
/* The format's limit on the JSON header (MAX_HEADER_SIZE of the reference implementation). It also bounds the
 * parsed tree (a few dozen bytes per JSON value) and keeps the parser's int item counts from overflowing. */
#define ST_MAX_HEADER 100000000ull

/* ---------------------------------------------------------------- dtypes */

static const char *const dtype_names[] = {"F32", "F64", "F16", "BF16", "I64", "I32", "U8"};
static const size_t dtype_sizes[] = {4, 8, 2, 2, 8, 4, 1};
#define ST_NUM_DTYPES ((int)(sizeof dtype_sizes / sizeof dtype_sizes[0]))

const char *safetensors_dtype_name(StDtype dtype) {
    return (int)dtype >= 0 && (int)dtype < ST_NUM_DTYPES ? dtype_names[dtype] : "?";
}

size_t safetensors_dtype_size(StDtype dtype) {
    return (int)dtype >= 0 && (int)dtype < ST_NUM_DTYPES ? dtype_sizes[dtype] : 0;
}

static int dtype_from_name(const char *s, StDtype *out) {
    for (int i = 0; i < ST_NUM_DTYPES; i++)
        if (strcmp(s, dtype_names[i]) == 0) {
            *out = (StDtype)i;
            return 0;
        }
    return -1;
}

/* Formats a shape as "[5,5,3,3]" into buf (always NUL-terminated). */
static void format_shape(char *buf, size_t size, int ndim, const int64_t *shape /* (ndim) */) {
    size_t used = 0;
    int n = snprintf(buf, size, "[");
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < ndim && used < size; i++) {
        n = snprintf(buf + used, size - used, "%s%lld", i ? "," : "", (long long)shape[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* numel of a shape with overflow check against `limit` elements; -1 when a dim is negative or it overflows. */
static int64_t shape_numel(int ndim, const int64_t *shape, int64_t limit) {
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] != 0 && numel > limit / shape[i]) return -1;
        numel *= shape[i];
    }
    return numel;
}

/* ---------------------------------------------------------------- JSON parser */

typedef enum { JV_NULL, JV_BOOL, JV_INT, JV_STRING, JV_ARRAY, JV_OBJECT } JvType;

typedef struct Jv {
    JvType type;
    int64_t i;        /* JV_INT value, JV_BOOL 0/1 */
    char *s;          /* JV_STRING (NUL-terminated; embedded NULs are rejected) */
    int n;            /* JV_ARRAY / JV_OBJECT item count */
    struct Jv *items; /* (n) */
    char **keys;      /* (n) JV_OBJECT keys */
} Jv;

typedef struct {
    const char *p, *begin, *end;
    int depth;
    char err[256]; /* first error, "" while none */
    size_t err_pos;
} JsonParser;

static void jv_free(Jv *v) {
    if (!v) return;
    free(v->s);
    for (int k = 0; k < v->n; k++) {
        jv_free(&v->items[k]);
        if (v->keys) free(v->keys[k]);
    }
    free(v->items);
    free(v->keys);
    memset(v, 0, sizeof *v);
}

static int jp_fail(JsonParser *jp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int jp_fail(JsonParser *jp, const char *fmt, ...) {
    if (!jp->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(jp->err, sizeof jp->err, fmt, ap);
        va_end(ap);
        jp->err_pos = (size_t)(jp->p - jp->begin);
    }
    return -1;
}

static void jp_skip_ws(JsonParser *jp) {
    while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r')) jp->p++;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int jp_hex4(JsonParser *jp, unsigned *out) {
    if (jp->end - jp->p < 4) return jp_fail(jp, "truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int d = hex_digit(jp->p[k]);
        if (d < 0) return jp_fail(jp, "bad hex digit in \\u escape");
        v = v * 16 + (unsigned)d;
    }
    jp->p += 4;
    *out = v;
    return 0;
}

/* Parses a string (jp->p at the opening quote) into a malloc'd UTF-8 buffer. */
static int jp_string(JsonParser *jp, char **out) {
    *out = NULL;
    jp->p++; /* opening quote */
    /* The decoded string is never longer than the encoded one. */
    const char *q = jp->p;
    while (q < jp->end && *q != '"') q += (*q == '\\' && q + 1 < jp->end) ? 2 : 1;
    if (q >= jp->end) return jp_fail(jp, "unterminated string");
    char *buf = malloc((size_t)(q - jp->p) + 1);
    if (!buf) return jp_fail(jp, "out of memory");
    size_t n = 0;
    for (;;) {
        if (jp->p >= jp->end) {
            free(buf);
            return jp_fail(jp, "unterminated string");
        }
        unsigned char c = (unsigned char)*jp->p;
        if (c == '"') {
            jp->p++;
            break;
        }
        if (c < 0x20) {
            free(buf);
            return jp_fail(jp, "unescaped control character 0x%02x in string", c);
        }
        if (c != '\\') {
            buf[n++] = (char)c;
            jp->p++;
            continue;
        }
        jp->p++;
        if (jp->p >= jp->end) {
            free(buf);
            return jp_fail(jp, "unterminated string");
        }
        char e = *jp->p++;
        switch (e) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (jp_hex4(jp, &cp) != 0) {
                free(buf);
                return -1;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (jp->end - jp->p < 2 || jp->p[0] != '\\' || jp->p[1] != 'u') {
                    free(buf);
                    return jp_fail(jp, "unpaired UTF-16 surrogate in \\u escape");
                }
                jp->p += 2;
                if (jp_hex4(jp, &lo) != 0) {
                    free(buf);
                    return -1;
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    free(buf);
                    return jp_fail(jp, "unpaired UTF-16 surrogate in \\u escape");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(buf);
                return jp_fail(jp, "unpaired UTF-16 surrogate in \\u escape");
            }
            if (cp == 0) {
                free(buf);
                return jp_fail(jp, "\\u0000 (NUL) in string is not supported");
            }
            /* Encoded length <= 6 input bytes ("\uXXXX") >= UTF-8 length, so buf is large enough. */
            if (cp < 0x80) {
                buf[n++] = (char)cp;
            } else if (cp < 0x800) {
                buf[n++] = (char)(0xC0 | (cp >> 6));
                buf[n++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                buf[n++] = (char)(0xE0 | (cp >> 12));
                buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                buf[n++] = (char)(0x80 | (cp & 0x3F));
            } else {
                buf[n++] = (char)(0xF0 | (cp >> 18));
                buf[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                buf[n++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default:
            free(buf);
            jp->p--;
            return jp_fail(jp, "invalid escape '\\%c' in string", e);
        }
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static int jp_number(JsonParser *jp, int64_t *out) {
    int neg = 0;
    if (*jp->p == '-') {
        neg = 1;
        jp->p++;
    }
    if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9') return jp_fail(jp, "bad number");
    if (*jp->p == '0' && jp->p + 1 < jp->end && jp->p[1] >= '0' && jp->p[1] <= '9')
        return jp_fail(jp, "number with a leading zero");
    uint64_t v = 0;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9') {
        unsigned d = (unsigned)(*jp->p - '0');
        if (v > (limit - d) / 10) return jp_fail(jp, "integer too large");
        v = v * 10 + d;
        jp->p++;
    }
    if (jp->p < jp->end && (*jp->p == '.' || *jp->p == 'e' || *jp->p == 'E'))
        return jp_fail(jp, "non-integer number (a safetensors header holds only integers)");
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 0;
}

static int jp_value(JsonParser *jp, Jv *v);

/* Appends one slot to an array/object value; returns the new item (zeroed) or NULL. */
static Jv *jv_push(JsonParser *jp, Jv *v, int *cap, char *key) {
    if (v->n == *cap) {
        int nc = *cap ? 2 * *cap : 4;
        Jv *items = realloc(v->items, (size_t)nc * sizeof *items);
        if (!items) {
            jp_fail(jp, "out of memory");
            return NULL;
        }
        v->items = items;
        if (v->type == JV_OBJECT) {
            char **keys = realloc(v->keys, (size_t)nc * sizeof *keys);
            if (!keys) {
                jp_fail(jp, "out of memory");
                return NULL;
            }
            v->keys = keys;
        }
        *cap = nc;
    }
    Jv *item = &v->items[v->n];
    memset(item, 0, sizeof *item);
    if (v->type == JV_OBJECT) v->keys[v->n] = key;
    v->n++;
    return item;
}

static int jp_container(JsonParser *jp, Jv *v, int is_object) {
    char close = is_object ? '}' : ']';
    v->type = is_object ? JV_OBJECT : JV_ARRAY;
    if (++jp->depth > JSON_MAX_DEPTH) return jp_fail(jp, "nesting deeper than %d levels", JSON_MAX_DEPTH);
    jp->p++; /* opening bracket */
    int cap = 0;
    jp_skip_ws(jp);
    if (jp->p < jp->end && *jp->p == close) {
        jp->p++;
        jp->depth--;
        return 0;
    }
    for (;;) {
        jp_skip_ws(jp);
        char *key = NULL;
        if (is_object) {
            if (jp->p >= jp->end || *jp->p != '"') return jp_fail(jp, "expected a string key");
            if (jp_string(jp, &key) != 0) return -1;
            jp_skip_ws(jp);
            if (jp->p >= jp->end || *jp->p != ':') {
                free(key);
                return jp_fail(jp, "expected ':' after key");
            }
            jp->p++;
        }
        Jv *item = jv_push(jp, v, &cap, key);
        if (!item) {
            free(key);
            return -1;
        }
        if (jp_value(jp, item) != 0) return -1;
        jp_skip_ws(jp);
        if (jp->p >= jp->end) return jp_fail(jp, "unexpected end of header inside %s", is_object ? "an object" : "an array");
        if (*jp->p == ',') {
            jp->p++;
            continue;
        }
        if (*jp->p == close) {
            jp->p++;
            jp->depth--;
            return 0;
        }
        return jp_fail(jp, "expected ',' or '%c'", close);
    }
}

static int jp_literal(JsonParser *jp, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, word, n) != 0) return jp_fail(jp, "unexpected character");
    jp->p += n;
    return 0;
}

static int jp_value(JsonParser *jp, Jv *v) {
    memset(v, 0, sizeof *v);
    jp_skip_ws(jp);
    if (jp->p >= jp->end) return jp_fail(jp, "unexpected end of header");
    char c = *jp->p;
    switch (c) {
    case '{': return jp_container(jp, v, 1);
    case '[': return jp_container(jp, v, 0);
    case '"': v->type = JV_STRING; return jp_string(jp, &v->s);
    case 't': v->type = JV_BOOL; v->i = 1; return jp_literal(jp, "true");
    case 'f': v->type = JV_BOOL; return jp_literal(jp, "false");
    case 'n': v->type = JV_NULL; return jp_literal(jp, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            v->type = JV_INT;
            return jp_number(jp, &v->i);
        }
        if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f) return jp_fail(jp, "unexpected character '%c'", c);
        return jp_fail(jp, "unexpected byte 0x%02x", (unsigned char)c);
    }
}

/* Returns the byte offset of the first invalid UTF-8 sequence, or -1 when s[0..n) is valid UTF-8. */
static long long utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return (long long)i;
        }
        if (i + len > n) return (long long)i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return (long long)i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return (long long)i;
        i += len;
    }
    return -1;
}

/* Name of the first key that occurs twice in object v, or NULL. */
static int cmp_str_ptr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static const char *duplicate_key(const Jv *v, int *oom) {
    *oom = 0;
    if (v->n < 2) return NULL;
    char **sorted = malloc((size_t)v->n * sizeof *sorted);
    if (!sorted) {
        *oom = 1;
        return NULL;
    }
    memcpy(sorted, v->keys, (size_t)v->n * sizeof *sorted);
    qsort(sorted, (size_t)v->n, sizeof *sorted, cmp_str_ptr);
    const char *dup = NULL;
    for (int k = 1; k < v->n && !dup; k++)
        if (strcmp(sorted[k - 1], sorted[k]) == 0) dup = sorted[k];
    free(sorted);
    return dup;
}

/* ---------------------------------------------------------------- reader */

static const char *jv_type_name(JvType t) {
    switch (t) {
    case JV_NULL: return "null";
    case JV_BOOL: return "a boolean";
    case JV_INT: return "an integer";
    case JV_STRING: return "a string";
    case JV_ARRAY: return "an array";
    case JV_OBJECT: return "an object";
    }
    return "?";
}

/* Fills t from the header entry `info` of tensor `name`; messages are prefixed with the path. */
static int parse_tensor_info(const char *path, const char *name, const Jv *info, size_t data_size, StTensor *t) {
    if (info->type != JV_OBJECT)
        return hs_error("%s: tensor '%s': header entry is %s, expected an object with dtype, shape and data_offsets",
                        path, name, jv_type_name(info->type));
    int oom;
    const char *dup = duplicate_key(info, &oom);
    if (oom) return hs_error("%s: out of memory", path);
    if (dup) return hs_error("%s: tensor '%s': field '%s' appears twice", path, name, dup);
    const Jv *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (int k = 0; k < info->n; k++) {
        if (strcmp(info->keys[k], "dtype") == 0)
            dtype = &info->items[k];
        else if (strcmp(info->keys[k], "shape") == 0)
            shape = &info->items[k];
        else if (strcmp(info->keys[k], "data_offsets") == 0)
            offsets = &info->items[k];
        else
            return hs_error("%s: tensor '%s': unknown field '%s' (expected dtype, shape, data_offsets)", path, name,
                            info->keys[k]);
    }
    if (!dtype || !shape || !offsets)
        return hs_error("%s: tensor '%s': missing field '%s'", path, name,
                        !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    if (dtype->type != JV_STRING)
        return hs_error("%s: tensor '%s': dtype is %s, expected a string", path, name, jv_type_name(dtype->type));
    if (dtype_from_name(dtype->s, &t->dtype) != 0)
        return hs_error("%s: tensor '%s' has unsupported dtype '%s' (supported: F32, F64, F16, BF16, I64, I32, U8)",
                        path, name, dtype->s);
    if (shape->type != JV_ARRAY)
        return hs_error("%s: tensor '%s': shape is %s, expected an array of integers", path, name,
                        jv_type_name(shape->type));
    if (shape->n > ST_MAX_DIMS)
        return hs_error("%s: tensor '%s' has %d dimensions; at most %d are supported", path, name, shape->n,
                        ST_MAX_DIMS);
    t->ndim = shape->n;
    for (int k = 0; k < shape->n; k++) {
        if (shape->items[k].type != JV_INT)
            return hs_error("%s: tensor '%s': shape entry %d is %s, expected an integer", path, name, k,
                            jv_type_name(shape->items[k].type));
        if (shape->items[k].i < 0)
            return hs_error("%s: tensor '%s': shape entry %d is negative (%lld)", path, name, k,
                            (long long)shape->items[k].i);
        t->shape[k] = shape->items[k].i;
    }
    size_t esize = dtype_sizes[t->dtype];
    t->numel = shape_numel(t->ndim, t->shape, INT64_MAX / (int64_t)esize);
    char shape_buf[200];
    format_shape(shape_buf, sizeof shape_buf, t->ndim, t->shape);
    if (t->numel < 0) return hs_error("%s: tensor '%s': shape %s is too large", path, name, shape_buf);
    if (offsets->type != JV_ARRAY || offsets->n != 2 || offsets->items[0].type != JV_INT ||
        offsets->items[1].type != JV_INT)
        return hs_error("%s: tensor '%s': data_offsets must be an array of two integers [begin, end]", path, name);
    int64_t b = offsets->items[0].i, e = offsets->items[1].i;
    if (b < 0 || e < 0 || e < b)
        return hs_error("%s: tensor '%s': data_offsets [%lld, %lld] are invalid (need 0 <= begin <= end)", path,
                        name, (long long)b, (long long)e);
    uint64_t need = (uint64_t)t->numel * esize;
    if ((uint64_t)(e - b) != need)
        return hs_error("%s: tensor '%s': data_offsets [%lld, %lld] span %lld bytes, but dtype %s with shape %s "
                        "needs %llu bytes",
                        path, name, (long long)b, (long long)e, (long long)(e - b), dtype_names[t->dtype], shape_buf,
                        (unsigned long long)need);
    if ((uint64_t)e > data_size)
        return hs_error("%s: tensor '%s': data_offsets [%lld, %lld] run past the end of the data section (%zu bytes); "
                        "the file is truncated or corrupt",
                        path, name, (long long)b, (long long)e, data_size);
    t->begin = (size_t)b;
    t->end = (size_t)e;
    return 0;
}

static int parse_metadata(const char *path, const Jv *meta, SafeTensors *st) {
    if (meta->type != JV_OBJECT)
        return hs_error("%s: __metadata__ is %s, expected an object of strings", path, jv_type_name(meta->type));
    int oom;
    const char *dup = duplicate_key(meta, &oom);
    if (oom) return hs_error("%s: out of memory", path);
    if (dup) return hs_error("%s: __metadata__ key '%s' appears twice", path, dup);
    st->meta_keys = hs_calloc((size_t)meta->n, sizeof(char *));
    st->meta_values = hs_calloc((size_t)meta->n, sizeof(char *));
    if (!st->meta_keys || !st->meta_values) return -1;
    for (int k = 0; k < meta->n; k++) {
        if (meta->items[k].type != JV_STRING)
            return hs_error("%s: __metadata__ value of '%s' is %s, expected a string", path, meta->keys[k],
                            jv_type_name(meta->items[k].type));
        st->meta_keys[k] = strdup(meta->keys[k]);
        st->meta_values[k] = strdup(meta->items[k].s);
        st->meta_count = k + 1;
        if (!st->meta_keys[k] || !st->meta_values[k]) return hs_error("%s: out of memory", path);
    }
    return 0;
}

typedef struct {
    size_t begin, end;
    int index;
} ByteRange;

static int cmp_range(const void *a, const void *b) {
    const ByteRange *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Rejects tensors whose (non-empty) byte ranges overlap. */
static int check_overlaps(const char *path, const SafeTensors *st) {
    if (st->count < 2) return 0;
    ByteRange *r = hs_malloc((size_t)st->count * sizeof *r);
    if (!r) return -1;
    int n = 0;
    for (int k = 0; k < st->count; k++)
        if (st->tensors[k].end > st->tensors[k].begin)
            r[n++] = (ByteRange){st->tensors[k].begin, st->tensors[k].end, k};
    qsort(r, (size_t)n, sizeof *r, cmp_range);
    int rc = 0, last = 0; /* last: the range reaching furthest so far */
    for (int k = 1; k < n && rc == 0; k++) {
        if (r[k].begin < r[last].end) {
            const StTensor *a = &st->tensors[r[last].index], *b = &st->tensors[r[k].index];
            rc = hs_error("%s: tensors '%s' (bytes %zu to %zu) and '%s' (bytes %zu to %zu) overlap in the data "
                          "section",
                          path, a->name, a->begin, a->end, b->name, b->begin, b->end);
        }
        if (r[k].end > r[last].end) last = k;
    }
    free(r);
    return rc;
}

static int validate_header(const char *path, const Jv *root, SafeTensors *st) {
    if (root->type != JV_OBJECT)
        return hs_error("%s: header is %s, expected a JSON object", path, jv_type_name(root->type));
    int oom;
    const char *dup = duplicate_key(root, &oom);
    if (oom) return hs_error("%s: out of memory", path);
    if (dup) return hs_error("%s: tensor name '%s' appears twice in the header", path, dup);
    int ntensors = 0;
    for (int k = 0; k < root->n; k++)
        if (strcmp(root->keys[k], "__metadata__") != 0) ntensors++;
    st->tensors = hs_calloc((size_t)ntensors, sizeof(StTensor));
    if (!st->tensors) return -1;
    for (int k = 0; k < root->n; k++) {
        if (strcmp(root->keys[k], "__metadata__") == 0) {
            HS_TRY(parse_metadata(path, &root->items[k], st));
            continue;
        }
        if (!root->keys[k][0]) return hs_error("%s: a tensor has an empty name", path);
        StTensor *t = &st->tensors[st->count];
        t->name = strdup(root->keys[k]);
        if (!t->name) return hs_error("%s: out of memory", path);
        st->count++;
        HS_TRY(parse_tensor_info(path, root->keys[k], &root->items[k], st->data_size, t));
    }
    return check_overlaps(path, st);
}

static int read_exact(FILE *fp, void *buf, size_t n) { return fread(buf, 1, n, fp) == n ? 0 : -1; }

int safetensors_read(const char *path, SafeTensors *st) {
    memset(st, 0, sizeof *st);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        int e = errno;
        return hs_error("cannot open safetensors file '%s': %s", path, strerror(e));
    }
    char *header = NULL;
    Jv root;
    memset(&root, 0, sizeof root);
    int rc = -1;
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        hs_error("%s: not a regular file", path);
        goto done;
    }
    st->path = strdup(path);
    if (!st->path) {
        hs_error("%s: out of memory", path);
        goto done;
    }
    uint64_t file_size = (uint64_t)sb.st_size;
    if (file_size < 8) {
        hs_error("%s: file is only %llu bytes; a safetensors file starts with an 8-byte header length", path,
                 (unsigned long long)file_size);
        goto done;
    }
    unsigned char len_bytes[8];
    if (read_exact(fp, len_bytes, 8) != 0) {
        hs_error("%s: read error: %s", path, strerror(errno));
        goto done;
    }
    uint64_t header_len = 0;
    for (int k = 7; k >= 0; k--) header_len = (header_len << 8) | len_bytes[k];
    if (header_len > file_size - 8) {
        hs_error("%s: header length %llu is larger than the rest of the file (%llu bytes); the file is truncated "
                 "or not a safetensors file",
                 path, (unsigned long long)header_len, (unsigned long long)(file_size - 8));
        goto done;
    }
    if (header_len > ST_MAX_HEADER) {
        hs_error("%s: header length %llu exceeds the safetensors limit of %llu bytes", path,
                 (unsigned long long)header_len, ST_MAX_HEADER);
        goto done;
    }
    if (header_len < 2) {
        hs_error("%s: bad JSON header: header length is %llu bytes", path, (unsigned long long)header_len);
        goto done;
    }
    header = hs_malloc((size_t)header_len + 1);
    if (!header) goto done;
    if (read_exact(fp, header, (size_t)header_len) != 0) {
        hs_error("%s: read error in the header (file changed while reading?)", path);
        goto done;
    }
    header[header_len] = '\0';
    long long bad = utf8_invalid_at((const unsigned char *)header, (size_t)header_len);
    if (bad >= 0) {
        hs_error("%s: bad JSON header: invalid UTF-8 at header byte %lld", path, bad);
        goto done;
    }
    JsonParser jp = {.p = header, .begin = header, .end = header + header_len};
    jp_skip_ws(&jp);
    if (jp.p < jp.end && *jp.p != '{') {
        jp_fail(&jp, "the header must be a JSON object starting with '{'");
    } else if (jp_value(&jp, &root) == 0) {
        jp_skip_ws(&jp);
        if (jp.p != jp.end) jp_fail(&jp, "unexpected data after the JSON object");
    }
    if (jp.err[0]) {
        hs_error("%s: bad JSON header: %s at header byte %zu", path, jp.err, jp.err_pos);
        goto done;
    }
    st->data_size = (size_t)(file_size - 8 - header_len);
    st->data = hs_malloc(st->data_size);
    if (!st->data) goto done;
    if (read_exact(fp, st->data, st->data_size) != 0) {
        hs_error("%s: read error in the data section (file changed while reading?)", path);
        goto done;
    }
    rc = validate_header(path, &root, st);
done:
    jv_free(&root);
    free(header);
    fclose(fp);
    if (rc != 0) safetensors_free(st);
    return rc;
}

void safetensors_free(SafeTensors *st) {
    if (!st) return;
    for (int k = 0; k < st->count; k++) free(st->tensors[k].name);
    free(st->tensors);
    for (int k = 0; k < st->meta_count; k++) {
        free(st->meta_keys[k]);
        free(st->meta_values[k]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    free(st->data);
    free(st->path);
    memset(st, 0, sizeof *st);
}

const StTensor *safetensors_find(const SafeTensors *st, const char *name) {
    for (int k = 0; k < st->count; k++)
        if (strcmp(st->tensors[k].name, name) == 0) return &st->tensors[k];
    return NULL;
}

const char *safetensors_meta(const SafeTensors *st, const char *key) {
    for (int k = 0; k < st->meta_count; k++)
        if (strcmp(st->meta_keys[k], key) == 0) return st->meta_values[k];
    return NULL;
}

static const char *st_path(const SafeTensors *st) { return st->path ? st->path : "(safetensors)"; }

static double half_to_double(uint16_t h) {
    int sign = h >> 15, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    double v;
    if (exp == 0)
        v = ldexp((double)mant, -24);
    else if (exp == 31)
        v = mant ? NAN : INFINITY;
    else
        v = ldexp((double)(mant | 0x400), exp - 25);
    return sign ? -v : v;
}

static float bf16_to_float(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static int check_float_tensor(const SafeTensors *st, const StTensor *t) {
    if (!t) return hs_error("%s: no tensor given to convert", st_path(st));
    if (t->end > st->data_size || t->end - t->begin != (size_t)t->numel * safetensors_dtype_size(t->dtype))
        return hs_error("%s: tensor '%s' has an invalid byte range", st_path(st), t->name);
    if (t->dtype != ST_F32 && t->dtype != ST_F64 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return hs_error("%s: tensor '%s' has dtype %s; expected a floating type (F32, F64, F16 or BF16)",
                        st_path(st), t->name, safetensors_dtype_name(t->dtype));
    return 0;
}

int safetensors_to_f32(const SafeTensors *st, const StTensor *t, float *out /* (numel) */) {
    HS_TRY(check_float_tensor(st, t));
    const uint8_t *src = st->data + t->begin;
    for (int64_t k = 0; k < t->numel; k++) {
        switch (t->dtype) {
        case ST_F32: memcpy(&out[k], src + 4 * k, 4); break;
        case ST_F64: {
            double d;
            memcpy(&d, src + 8 * k, 8);
            out[k] = (float)d;
            break;
        }
        case ST_F16: {
            uint16_t h;
            memcpy(&h, src + 2 * k, 2);
            out[k] = (float)half_to_double(h);
            break;
        }
        case ST_BF16: {
            uint16_t h;
            memcpy(&h, src + 2 * k, 2);
            out[k] = bf16_to_float(h);
            break;
        }
        default: break;
        }
    }
    return 0;
}

int safetensors_to_f64(const SafeTensors *st, const StTensor *t, double *out /* (numel) */) {
    HS_TRY(check_float_tensor(st, t));
    const uint8_t *src = st->data + t->begin;
    for (int64_t k = 0; k < t->numel; k++) {
        switch (t->dtype) {
        case ST_F32: {
            float f;
            memcpy(&f, src + 4 * k, 4);
            out[k] = f;
            break;
        }
        case ST_F64: memcpy(&out[k], src + 8 * k, 8); break;
        case ST_F16: {
            uint16_t h;
            memcpy(&h, src + 2 * k, 2);
            out[k] = half_to_double(h);
            break;
        }
        case ST_BF16: {
            uint16_t h;
            memcpy(&h, src + 2 * k, 2);
            out[k] = bf16_to_float(h);
            break;
        }
        default: break;
        }
    }
    return 0;
}

int safetensors_expect_shape(const SafeTensors *st, const char *name, int ndim, const int64_t *shape /* (ndim) */,
                             const StTensor **found) {
    if (found) *found = NULL;
    const StTensor *t = safetensors_find(st, name);
    if (!t) return hs_error("checkpoint %s has no tensor '%s'", st_path(st), name);
    int same = t->ndim == ndim;
    for (int k = 0; same && k < ndim; k++) same = t->shape[k] == shape[k];
    if (!same) {
        char have[200], want[200];
        format_shape(have, sizeof have, t->ndim, t->shape);
        format_shape(want, sizeof want, ndim, shape);
        return hs_error("checkpoint %s: tensor '%s' has shape %s, expected %s", st_path(st), name, have, want);
    }
    if (found) *found = t;
    return 0;
}

/* ---------------------------------------------------------------- writer */

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} StrBuf;

static void sb_putn(StrBuf *sb, const char *s, size_t n) {
    if (sb->oom) return;
    if (sb->len + n + 1 > sb->cap) {
        size_t nc = sb->cap ? sb->cap : 256;
        while (nc < sb->len + n + 1) nc *= 2;
        char *b = realloc(sb->buf, nc);
        if (!b) {
            sb->oom = 1;
            return;
        }
        sb->buf = b;
        sb->cap = nc;
    }
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

static void sb_puts(StrBuf *sb, const char *s) { sb_putn(sb, s, strlen(s)); }

static void sb_printf(StrBuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(StrBuf *sb, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_putn(sb, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void sb_json_string(StrBuf *sb, const char *s) {
    sb_puts(sb, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': sb_puts(sb, "\\\""); break;
        case '\\': sb_puts(sb, "\\\\"); break;
        case '\n': sb_puts(sb, "\\n"); break;
        case '\r': sb_puts(sb, "\\r"); break;
        case '\t': sb_puts(sb, "\\t"); break;
        default:
            if (*p < 0x20)
                sb_printf(sb, "\\u%04x", (unsigned)*p);
            else
                sb_putn(sb, (const char *)p, 1);
        }
    }
    sb_puts(sb, "\"");
}

int safetensors_write(const char *path, const StWriteTensor *tensors /* (count) */, int count,
                      const char *const *meta_keys /* (meta_count) */, const char *const *meta_values /* (meta_count) */,
                      int meta_count) {
    if (count < 0 || meta_count < 0) return hs_error("writing %s: negative tensor or metadata count", path);
    if (meta_count > 0 && (!meta_keys || !meta_values))
        return hs_error("writing %s: metadata keys or values missing", path);
    size_t *nbytes = hs_calloc((size_t)count, sizeof *nbytes);
    if (!nbytes) return -1;
    StrBuf sb = {0};
    int rc = -1;
    sb_puts(&sb, "{");
    int first = 1;
    if (meta_count > 0) {
        sb_puts(&sb, "\"__metadata__\":{");
        for (int k = 0; k < meta_count; k++) {
            if (!meta_keys[k] || !meta_values[k]) {
                hs_error("writing %s: metadata entry %d has a NULL key or value", path, k);
                goto done;
            }
            for (int j = 0; j < k; j++)
                if (strcmp(meta_keys[j], meta_keys[k]) == 0) {
                    hs_error("writing %s: metadata key '%s' given twice", path, meta_keys[k]);
                    goto done;
                }
            if (k) sb_puts(&sb, ",");
            sb_json_string(&sb, meta_keys[k]);
            sb_puts(&sb, ":");
            sb_json_string(&sb, meta_values[k]);
        }
        sb_puts(&sb, "}");
        first = 0;
    }
    uint64_t offset = 0;
    for (int k = 0; k < count; k++) {
        const StWriteTensor *t = &tensors[k];
        if (!t->name || !*t->name) {
            hs_error("writing %s: tensor %d has no name", path, k);
            goto done;
        }
        if (strcmp(t->name, "__metadata__") == 0) {
            hs_error("writing %s: '__metadata__' is reserved and cannot name a tensor", path);
            goto done;
        }
        for (int j = 0; j < k; j++)
            if (strcmp(tensors[j].name, t->name) == 0) {
                hs_error("writing %s: tensor name '%s' given twice", path, t->name);
                goto done;
            }
        size_t esize = safetensors_dtype_size(t->dtype);
        if (esize == 0) {
            hs_error("writing %s: tensor '%s' has an invalid dtype (%d)", path, t->name, (int)t->dtype);
            goto done;
        }
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS) {
            hs_error("writing %s: tensor '%s' has %d dimensions (0 to %d supported)", path, t->name, t->ndim,
                     ST_MAX_DIMS);
            goto done;
        }
        int64_t numel = shape_numel(t->ndim, t->shape, INT64_MAX / (int64_t)esize);
        if (numel < 0) {
            hs_error("writing %s: tensor '%s' has a negative or too large shape", path, t->name);
            goto done;
        }
        if (numel > 0 && !t->data) {
            hs_error("writing %s: tensor '%s' has no data", path, t->name);
            goto done;
        }
        nbytes[k] = (size_t)numel * esize;
        if (!first) sb_puts(&sb, ",");
        first = 0;
        sb_json_string(&sb, t->name);
        sb_printf(&sb, ":{\"dtype\":\"%s\",\"shape\":[", dtype_names[t->dtype]);
        for (int d = 0; d < t->ndim; d++) sb_printf(&sb, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        sb_printf(&sb, "],\"data_offsets\":[%llu,", (unsigned long long)offset);
        offset += nbytes[k];
        sb_printf(&sb, "%llu]}", (unsigned long long)offset);
    }
    sb_puts(&sb, "}");
    while (!sb.oom && sb.len % 8 != 0) sb_puts(&sb, " ");
    if (sb.oom) {
        hs_error("writing %s: out of memory building the header", path);
        goto done;
    }
    AtomicFile af;
    if (atomic_file_open(&af, path) != 0) goto done;
    unsigned char len_bytes[8];
    for (int k = 0; k < 8; k++) len_bytes[k] = (unsigned char)((uint64_t)sb.len >> (8 * k));
    int ok = fwrite(len_bytes, 1, 8, af.fp) == 8 && fwrite(sb.buf, 1, sb.len, af.fp) == sb.len;
    for (int k = 0; ok && k < count; k++)
        if (nbytes[k] > 0) ok = fwrite(tensors[k].data, 1, nbytes[k], af.fp) == nbytes[k];
    if (!ok) {
        int e = errno;
        atomic_file_abort(&af);
        hs_error("writing %s: %s", path, strerror(e));
        goto done;
    }
    rc = atomic_file_commit(&af);
done:
    free(sb.buf);
    free(nbytes);
    return rc;
}
