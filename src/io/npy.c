/* npy.c: NumPy .npy reader (format versions 1.0, 2.0 and 3.0) and writer (version 1.0) for little-endian
 * float32/float64 arrays in C order (see npy.h); npy_read_raw also reads int32/int64 arrays, as stored. The file is the magic "\x93NUMPY", a major and minor
 * version byte, a little-endian header length (u16 for 1.0, u32 for 2.0/3.0), an ASCII (3.0: UTF-8) Python
 * dict literal such as {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), } padded with spaces and
 * a final '\n', then the raw data. The reader parses that dict with a small strict parser (keys descr,
 * fortran_order and shape, each exactly once, nothing else), accepts only '<f4' and '<f8' with
 * fortran_order False (npy_read_raw also '<i4' and '<i8'), checks the data length exactly against the file size before allocating (truncation
 * and trailing bytes are errors; only regular files are read) and rejects NaN or infinite values, naming the
 * element. Every message names the file. The writer pads the header so the total header length is a multiple
 * of 64 bytes, as NumPy does, and writes atomically. The host must be little-endian (checked at compile
 * time). */
#define _XOPEN_SOURCE 700
#include "npy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/common.h"
#include "atomic_file.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

#define NPY_MAX_HEADER (1u << 20) /* larger headers are certainly not plain arrays */

/* ---------------------------------------------------------------- header dict parser */

/* Header fields shared by both readers. */
typedef struct {
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    int64_t numel;
    NpyDtype dtype;
    int word_size;
} NpyHeader;


typedef struct {
    const char *p, *end;
    const char *path;
} DictParser;

static void dp_ws(DictParser *d) {
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r')) d->p++;
}

static int dp_expect(DictParser *d, char c, const char *where) {
    dp_ws(d);
    if (d->p >= d->end || *d->p != c) return hs_error("%s: malformed header: expected '%c' %s", d->path, c, where);
    d->p++;
    return 0;
}

/* A quoted Python string ('...' or "...") of at most size-1 bytes, without escapes. */
static int dp_string(DictParser *d, char *out, size_t size, const char *what) {
    dp_ws(d);
    if (d->p >= d->end || (*d->p != '\'' && *d->p != '"'))
        return hs_error("%s: malformed header: expected a quoted string for %s", d->path, what);
    char q = *d->p++;
    size_t n = 0;
    while (d->p < d->end && *d->p != q) {
        if (*d->p == '\\' || n + 1 >= size)
            return hs_error("%s: malformed header: unsupported or too long string for %s", d->path, what);
        out[n++] = *d->p++;
    }
    if (d->p >= d->end) return hs_error("%s: malformed header: unterminated string", d->path);
    d->p++;
    out[n] = '\0';
    return 0;
}

static int dp_bool(DictParser *d, int *out) {
    dp_ws(d);
    if (d->end - d->p >= 4 && memcmp(d->p, "True", 4) == 0) {
        d->p += 4;
        *out = 1;
        return 0;
    }
    if (d->end - d->p >= 5 && memcmp(d->p, "False", 5) == 0) {
        d->p += 5;
        *out = 0;
        return 0;
    }
    return hs_error("%s: malformed header: fortran_order must be True or False", d->path);
}

/* A shape tuple: (), (n,), (a, b), (a, b, ) ... */
static int dp_shape(DictParser *d, NpyHeader *arr) {
    HS_TRY(dp_expect(d, '(', "to start the shape tuple"));
    arr->ndim = 0;
    for (;;) {
        dp_ws(d);
        if (d->p < d->end && *d->p == ')') {
            d->p++;
            return 0;
        }
        if (d->p < d->end && *d->p == '-') return hs_error("%s: shape has a negative dimension", d->path);
        if (d->p >= d->end || *d->p < '0' || *d->p > '9')
            return hs_error("%s: malformed header: expected an integer in the shape tuple", d->path);
        if (arr->ndim == NPY_MAX_DIMS)
            return hs_error("%s: array has more than %d dimensions", d->path, NPY_MAX_DIMS);
        int64_t v = 0;
        while (d->p < d->end && *d->p >= '0' && *d->p <= '9') {
            int digit = *d->p++ - '0';
            if (v > (INT64_MAX - digit) / 10) return hs_error("%s: shape dimension is too large", d->path);
            v = v * 10 + digit;
        }
        if (d->p < d->end && *d->p == 'L') d->p++; /* Python 2 long */
        arr->shape[arr->ndim++] = v;
        dp_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (d->p < d->end && *d->p == ')') {
            d->p++;
            return 0;
        }
        return hs_error("%s: malformed header: expected ',' or ')' in the shape tuple", d->path);
    }
}

/* allow_int: also accept '<i4' and '<i8' (npy_read_raw). */
static int parse_header_dict(const char *path, const char *text, size_t len, int allow_int, NpyHeader *arr) {
    DictParser d = {text, text + len, path};
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0;
    char descr[32] = "";
    HS_TRY(dp_expect(&d, '{', "at the start of the header dict"));
    for (;;) {
        dp_ws(&d);
        if (d.p < d.end && *d.p == '}') {
            d.p++;
            break;
        }
        char key[32];
        HS_TRY(dp_string(&d, key, sizeof key, "a header key"));
        HS_TRY(dp_expect(&d, ':', "after a header key"));
        if (strcmp(key, "descr") == 0 && !have_descr) {
            dp_ws(&d);
            if (d.p < d.end && (*d.p == '[' || *d.p == '{'))
                return hs_error("%s: structured dtypes are not supported; expected '<f4' or '<f8'", path);
            HS_TRY(dp_string(&d, descr, sizeof descr, "descr"));
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !have_order) {
            HS_TRY(dp_bool(&d, &fortran));
            have_order = 1;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            HS_TRY(dp_shape(&d, arr));
            have_shape = 1;
        } else {
            return hs_error("%s: malformed header: unexpected or repeated key '%s'", path, key);
        }
        dp_ws(&d);
        if (d.p < d.end && *d.p == ',') {
            d.p++;
            continue;
        }
        HS_TRY(dp_expect(&d, '}', "at the end of the header dict"));
        break;
    }
    dp_ws(&d);
    if (d.p != d.end) return hs_error("%s: malformed header: unexpected text after the header dict", path);
    if (!have_descr || !have_order || !have_shape)
        return hs_error("%s: malformed header: missing key '%s'", path,
                        !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    const char *supported = allow_int ? "little-endian float32 ('<f4'), float64 ('<f8'), int32 ('<i4') or int64 "
                                        "('<i8')"
                                      : "little-endian float32 ('<f4') or float64 ('<f8')";
    int is_int = descr[0] && (strcmp(descr + 1, "i4") == 0 || strcmp(descr + 1, "i8") == 0);
    int is_float = descr[0] && (strcmp(descr + 1, "f4") == 0 || strcmp(descr + 1, "f8") == 0);
    if (descr[0] == '<' && (is_float || (is_int && allow_int))) {
        arr->word_size = descr[2] - '0';
        arr->dtype = is_float ? (arr->word_size == 4 ? NPY_F32 : NPY_F64) : (arr->word_size == 4 ? NPY_I32 : NPY_I64);
    } else if (descr[0] == '>' && (is_float || (is_int && allow_int)))
        return hs_error("%s: dtype '%s' is big-endian; only %s is supported (convert with arr.astype('<%s'))", path,
                        descr, supported, descr + 1);
    else
        return hs_error("%s: unsupported dtype '%s'; only %s is supported", path, descr, supported);
    if (fortran)
        return hs_error("%s: fortran_order True is not supported; save a C-ordered array "
                        "(np.ascontiguousarray)",
                        path);
    return 0;
}

/* ---------------------------------------------------------------- reader */

void npy_free(NpyArray *arr) {
    if (!arr) return;
    free(arr->data);
    memset(arr, 0, sizeof *arr);
}

/* Formats the multi-index of flat element k, e.g. "[1, 3]". */
static void format_index(char *buf, size_t size, const NpyHeader *arr, int64_t k) {
    int64_t idx[NPY_MAX_DIMS];
    for (int d = arr->ndim - 1; d >= 0; d--) {
        idx[d] = arr->shape[d] ? k % arr->shape[d] : 0;
        k = arr->shape[d] ? k / arr->shape[d] : 0;
    }
    size_t used = 0;
    int n = snprintf(buf, size, "[");
    used = n > 0 ? (size_t)n : 0;
    for (int d = 0; d < arr->ndim && used < size; d++) {
        n = snprintf(buf + used, size - used, "%s%lld", d ? ", " : "", (long long)idx[d]);
        if (n < 0) break;
        used += (size_t)n;
    }
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* The element count of arr's shape; -1 when the product of its non-zero dimensions times 8 bytes overflows
 * int64 (so the answer does not depend on where a zero dimension sits). */
static int64_t shape_numel(const NpyHeader *arr) {
    int64_t n = 1;
    int empty = 0;
    for (int d = 0; d < arr->ndim; d++) {
        if (arr->shape[d] == 0) {
            empty = 1;
            continue;
        }
        if (n > (INT64_MAX / 8) / arr->shape[d]) return -1;
        n *= arr->shape[d];
    }
    return empty ? 0 : n;
}

/* Reads the header and the raw data bytes (malloc'd into *raw) of path; on failure *raw is NULL. */
static int read_file(const char *path, int allow_int, NpyHeader *arr, unsigned char **raw_out) {
    memset(arr, 0, sizeof *arr);
    *raw_out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        int e = errno;
        return hs_error("cannot open .npy file '%s': %s", path, strerror(e));
    }
    int rc = -1;
    char *header = NULL;
    unsigned char pre[12];
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        hs_error("%s: not a regular file", path);
        goto done;
    }
    long long size = (long long)sb.st_size;
    size_t got = fread(pre, 1, 8, fp);
    if (got < 8 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        hs_error("%s: not a .npy file (bad magic bytes)", path);
        goto done;
    }
    int major = pre[6], minor = pre[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0) {
        hs_error("%s: unsupported .npy format version %d.%d (1.0, 2.0 and 3.0 are supported)", path, major, minor);
        goto done;
    }
    size_t len_bytes = major == 1 ? 2 : 4;
    if (fread(pre + 8, 1, len_bytes, fp) != len_bytes) {
        hs_error("%s: truncated .npy header", path);
        goto done;
    }
    uint32_t header_len = major == 1 ? (uint32_t)(pre[8] | pre[9] << 8)
                                     : (uint32_t)pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)pre[10] << 16 |
                                           (uint32_t)pre[11] << 24;
    if (header_len > NPY_MAX_HEADER) {
        hs_error("%s: header length %u is implausibly large", path, header_len);
        goto done;
    }
    if ((long long)(8 + len_bytes + header_len) > size) {
        hs_error("%s: truncated .npy header (expected %u header bytes, the file has %lld bytes)", path, header_len,
                 size);
        goto done;
    }
    header = hs_malloc(header_len + 1);
    if (!header) goto done;
    if (fread(header, 1, header_len, fp) != header_len) {
        hs_error("%s: truncated .npy header (expected %u header bytes)", path, header_len);
        goto done;
    }
    header[header_len] = '\0';
    if (parse_header_dict(path, header, header_len, allow_int, arr) != 0) goto done;
    /* Compare the data size the shape implies with what the file holds before allocating anything, so a
     * hostile shape can never make the reader allocate more than the file size. */
    int64_t numel = shape_numel(arr);
    if (numel < 0) {
        hs_error("%s: shape is too large (more than 2^63 bytes of data)", path);
        goto done;
    }
    arr->numel = numel;
    size_t nbytes = (size_t)numel * (size_t)arr->word_size;
    long long pos = ftell(fp);
    unsigned long long have = pos >= 0 && size > pos ? (unsigned long long)(size - pos) : 0;
    if (have < nbytes) {
        hs_error("%s: truncated data: expected %zu bytes for %lld elements, found %llu", path, nbytes,
                 (long long)numel, have);
        goto done;
    }
    unsigned char *raw = hs_malloc(nbytes ? nbytes : 1);
    if (!raw) goto done;
    size_t n = fread(raw, 1, nbytes, fp);
    if (n != nbytes) {
        free(raw);
        hs_error("%s: truncated data: expected %zu bytes for %lld elements, found %zu", path, nbytes,
                 (long long)numel, n);
        goto done;
    }
    if (fgetc(fp) != EOF) {
        free(raw);
        hs_error("%s: unexpected data after the %lld elements the header declares", path, (long long)numel);
        goto done;
    }
    *raw_out = raw;
    rc = 0;
done:
    free(header);
    fclose(fp);
    if (rc != 0) memset(arr, 0, sizeof *arr);
    return rc;
}

int npy_read(const char *path, NpyArray *arr) {
    memset(arr, 0, sizeof *arr);
    NpyHeader h;
    unsigned char *raw;
    HS_TRY(read_file(path, 0, &h, &raw));
    int64_t numel = h.numel;
    arr->data = hs_malloc((size_t)(numel ? numel : 1) * sizeof(double));
    if (!arr->data) {
        free(raw);
        return -1;
    }
    for (int64_t k = 0; k < numel; k++) {
        if (h.word_size == 4) {
            float f;
            memcpy(&f, raw + 4 * k, 4);
            arr->data[k] = f;
        } else {
            memcpy(&arr->data[k], raw + 8 * k, 8);
        }
    }
    free(raw);
    for (int64_t k = 0; k < numel; k++) {
        if (!isfinite(arr->data[k])) {
            char idx[200];
            format_index(idx, sizeof idx, &h, k);
            hs_error("%s: element %lld (index %s) is %s; the array must hold finite values", path, (long long)k, idx,
                     isnan(arr->data[k]) ? "NaN" : "infinite");
            npy_free(arr);
            return -1;
        }
    }
    arr->ndim = h.ndim;
    memcpy(arr->shape, h.shape, sizeof h.shape);
    arr->numel = numel;
    arr->word_size = h.word_size;
    return 0;
}

int npy_read_raw(const char *path, NpyRaw *arr) {
    memset(arr, 0, sizeof *arr);
    NpyHeader h;
    unsigned char *raw;
    HS_TRY(read_file(path, 1, &h, &raw));
    arr->ndim = h.ndim;
    memcpy(arr->shape, h.shape, sizeof h.shape);
    arr->numel = h.numel;
    arr->dtype = h.dtype;
    arr->word_size = h.word_size;
    arr->data = raw;
    return 0;
}

void npy_raw_free(NpyRaw *arr) {
    if (!arr) return;
    free(arr->data);
    memset(arr, 0, sizeof *arr);
}

const char *npy_dtype_name(NpyDtype dtype) {
    switch (dtype) {
    case NPY_F32: return "float32";
    case NPY_F64: return "float64";
    case NPY_I32: return "int32";
    case NPY_I64: return "int64";
    }
    return "?";
}

/* ---------------------------------------------------------------- writer */

static int npy_write(const char *path, const void *data, int word_size, int ndim, const int64_t *shape /* (ndim) */) {
    if (ndim < 0 || ndim > NPY_MAX_DIMS)
        return hs_error("writing %s: %d dimensions (0 to %d supported)", path, ndim, NPY_MAX_DIMS);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return hs_error("writing %s: negative dimension %lld", path, (long long)shape[d]);
        if (shape[d] != 0 && numel > (INT64_MAX / 8) / shape[d]) return hs_error("writing %s: shape too large", path);
        numel *= shape[d];
    }
    if (numel > 0 && !data) return hs_error("writing %s: no data", path);
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     word_size == 4 ? "<f4" : "<f8");
    for (int d = 0; d < ndim; d++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    /* Pad with spaces and a final '\n' so 10 (magic, version, u16 length) + header is a multiple of 64. */
    size_t total = 10 + (size_t)n + 1;
    size_t padded = (total + 63) / 64 * 64;
    size_t header_len = padded - 10;
    char header[640];
    memcpy(header, dict, (size_t)n);
    memset(header + n, ' ', header_len - 1 - (size_t)n);
    header[header_len - 1] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(header_len & 0xFF),
                             (unsigned char)(header_len >> 8)};
    AtomicFile af;
    HS_TRY(atomic_file_open(&af, path));
    size_t nbytes = (size_t)numel * (size_t)word_size;
    if (fwrite(pre, 1, 10, af.fp) != 10 || fwrite(header, 1, header_len, af.fp) != header_len ||
        (nbytes && fwrite(data, 1, nbytes, af.fp) != nbytes)) {
        int e = errno;
        atomic_file_abort(&af);
        return hs_error("writing %s: %s", path, strerror(e));
    }
    return atomic_file_commit(&af);
}

int npy_write_f32(const char *path, const float *data /* (prod shape) */, int ndim, const int64_t *shape) {
    return npy_write(path, data, 4, ndim, shape);
}

int npy_write_f64(const char *path, const double *data /* (prod shape) */, int ndim, const int64_t *shape) {
    return npy_write(path, data, 8, ndim, shape);
}
