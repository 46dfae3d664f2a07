/* safetensors.c: reader and writer for the safetensors format (see safetensors.h): an 8-byte little-endian
 * u64 header length N, N bytes of UTF-8 JSON ({"name": {"dtype": "F32", "shape": [..], "data_offsets":
 * [begin, end]}, ..., "__metadata__": {"key": "value"}}), then the data section holding the raw
 * little-endian tensor bytes at those offsets. The header is parsed by the library's strict JSON reader
 * (io/json_reader.h: UTF-8, syntax, nesting depth, duplicate keys at any level) and validated here: file
 * size, header length (at most 100 MB, the format's limit), field names and types (integers must be written
 * as int64 integers), dtype, shape (non-negative, at most ST_MAX_DIMS dims, no overflow), data_offsets size
 * against dtype size * numel, offsets inside the data section, overlapping tensors, empty names (the writer
 * refuses them too).
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
#include "json_reader.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

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

/* ---------------------------------------------------------------- reader */

/* What a header value is, for messages: json_type_name, but a number that is not an int64 integer says so. */
static const char *kind_of(const JsonValue *v) {
    if (v->type == JSON_NUMBER && !v->is_int) return "a number that is not an integer in the int64 range";
    if (v->type == JSON_NUMBER) return "an integer";
    return json_type_name(v->type);
}

static int is_integer(const JsonValue *v) { return v->type == JSON_NUMBER && v->is_int; }

/* Fills t from the header entry `info` of tensor `name`; messages are prefixed with the path. */
static int parse_tensor_info(const char *path, const char *name, const JsonValue *info, size_t data_size, StTensor *t) {
    if (info->type != JSON_OBJECT)
        return hs_error("%s: tensor '%s': header entry is %s, expected an object with dtype, shape and data_offsets",
                        path, name, kind_of(info));
    const JsonValue *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (int k = 0; k < info->count; k++) {
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
    if (dtype->type != JSON_STRING)
        return hs_error("%s: tensor '%s': dtype is %s, expected a string", path, name, kind_of(dtype));
    if (dtype_from_name(dtype->string, &t->dtype) != 0)
        return hs_error("%s: tensor '%s' has unsupported dtype '%s' (supported: F32, F64, F16, BF16, I64, I32, U8)",
                        path, name, dtype->string);
    if (shape->type != JSON_ARRAY)
        return hs_error("%s: tensor '%s': shape is %s, expected an array of integers", path, name,
                        kind_of(shape));
    if (shape->count > ST_MAX_DIMS)
        return hs_error("%s: tensor '%s' has %d dimensions; at most %d are supported", path, name, shape->count,
                        ST_MAX_DIMS);
    t->ndim = shape->count;
    for (int k = 0; k < shape->count; k++) {
        if (!is_integer(&shape->items[k]))
            return hs_error("%s: tensor '%s': shape entry %d is %s, expected an integer", path, name, k,
                            kind_of(&shape->items[k]));
        if (shape->items[k].integer < 0)
            return hs_error("%s: tensor '%s': shape entry %d is negative (%lld)", path, name, k,
                            (long long)shape->items[k].integer);
        t->shape[k] = shape->items[k].integer;
    }
    size_t esize = dtype_sizes[t->dtype];
    t->numel = shape_numel(t->ndim, t->shape, INT64_MAX / (int64_t)esize);
    char shape_buf[200];
    format_shape(shape_buf, sizeof shape_buf, t->ndim, t->shape);
    if (t->numel < 0) return hs_error("%s: tensor '%s': shape %s is too large", path, name, shape_buf);
    if (offsets->type != JSON_ARRAY || offsets->count != 2 || !is_integer(&offsets->items[0]) ||
        !is_integer(&offsets->items[1]))
        return hs_error("%s: tensor '%s': data_offsets must be an array of two integers [begin, end]", path, name);
    int64_t b = offsets->items[0].integer, e = offsets->items[1].integer;
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

static int parse_metadata(const char *path, const JsonValue *meta, SafeTensors *st) {
    if (meta->type != JSON_OBJECT)
        return hs_error("%s: __metadata__ is %s, expected an object of strings", path, kind_of(meta));
    st->meta_keys = hs_calloc((size_t)meta->count, sizeof(char *));
    st->meta_values = hs_calloc((size_t)meta->count, sizeof(char *));
    if (!st->meta_keys || !st->meta_values) return -1;
    for (int k = 0; k < meta->count; k++) {
        if (meta->items[k].type != JSON_STRING)
            return hs_error("%s: __metadata__ value of '%s' is %s, expected a string", path, meta->keys[k],
                            kind_of(&meta->items[k]));
        st->meta_keys[k] = strdup(meta->keys[k]);
        st->meta_values[k] = strdup(meta->items[k].string);
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

/* The reader has rejected duplicate keys at every level (tensor names, fields, metadata keys). */
static int validate_header(const char *path, const JsonValue *root, SafeTensors *st) {
    if (root->type != JSON_OBJECT)
        return hs_error("%s: header is %s, expected a JSON object", path, kind_of(root));
    int ntensors = 0;
    for (int k = 0; k < root->count; k++)
        if (strcmp(root->keys[k], "__metadata__") != 0) ntensors++;
    st->tensors = hs_calloc((size_t)ntensors, sizeof(StTensor));
    if (!st->tensors) return -1;
    for (int k = 0; k < root->count; k++) {
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
    JsonValue root;
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
    size_t first = strspn(header, " \t\r\n");
    if (first < header_len && header[first] != '{') {
        hs_error("%s: bad JSON header: the header must be a JSON object starting with '{' at byte %zu", path, first);
        goto done;
    }
    if (json_parse(header, (size_t)header_len, &root) != 0) {
        hs_error_context("%s: bad JSON header: ", path);
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
    json_free(&root);
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

/* Element k of a floating tensor's bytes as a double: exact for every source dtype (F32, F16 and BF16 widen
 * exactly), so rounding the result to float is the same as converting the source to float directly: one
 * conversion serves both safetensors_to_f32 and safetensors_to_f64. */
static double float_element(StDtype dtype, const uint8_t *src, int64_t k) {
    switch (dtype) {
    case ST_F32: {
        float f;
        memcpy(&f, src + 4 * k, 4);
        return f;
    }
    case ST_F64: {
        double d;
        memcpy(&d, src + 8 * k, 8);
        return d;
    }
    case ST_F16: {
        uint16_t h;
        memcpy(&h, src + 2 * k, 2);
        return half_to_double(h);
    }
    case ST_BF16: {
        uint16_t h;
        memcpy(&h, src + 2 * k, 2);
        return bf16_to_float(h);
    }
    default: return 0;
    }
}

int safetensors_to_f32(const SafeTensors *st, const StTensor *t, float *out /* (numel) */) {
    HS_TRY(check_float_tensor(st, t));
    const uint8_t *src = st->data + t->begin;
    if (t->dtype == ST_F32) { /* the bytes as they are (NaN payloads included) */
        memcpy(out, src, (size_t)t->numel * sizeof *out);
        return 0;
    }
    for (int64_t k = 0; k < t->numel; k++) out[k] = (float)float_element(t->dtype, src, k);
    return 0;
}

int safetensors_to_f64(const SafeTensors *st, const StTensor *t, double *out /* (numel) */) {
    HS_TRY(check_float_tensor(st, t));
    const uint8_t *src = st->data + t->begin;
    if (t->dtype == ST_F64) {
        memcpy(out, src, (size_t)t->numel * sizeof *out);
        return 0;
    }
    for (int64_t k = 0; k < t->numel; k++) out[k] = float_element(t->dtype, src, k);
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
