/* fuzz_npy.c: libFuzzer harness for the .npy readers (src/io/npy.c: npy_read, npy_read_raw) and the .npy
 * sample source built on them (src/data/samples.c: samples_from_npy, the file as both inputs and targets, so
 * integer files exercise the label path and float files the value path). Byte 0 of the input chooses how the rest
 * becomes the file read with npy_read: bit 0 clear, the rest is the file as it is; bit 0 set, the rest is a
 * header dict, a NUL and the data, and the harness writes magic, version (1 + bits 1-2, so 1.0 to 4.0) and the
 * dict's true length before them, so mutations of the dict are not all stopped by a wrong length. Invariants: a failure leaves an empty array and a message naming the file; a success has
 * 1..NPY_MAX_DIMS-bounded shape, numel = product of the shape, only finite values, a data size that fits in
 * the input, and survives a round trip through npy_write_f64 + npy_read unchanged. npy_read_raw accepts
 * whatever npy_read accepts (same shape, a float dtype) and more only for integer dtypes or non-finite values;
 * a sample source that opens has count = the first dimension, in_size = the product of the others, labels in
 * [0, num_classes), and fills its first and last samples in both precisions. */
#include "fuzz_common.h"

#include <math.h>

#include "../../src/core/common.h"
#include "../../src/data/samples.h"
#include "../../src/io/npy.h"

/* The file for a "dict NUL data" input. */
static uint8_t *compose(const uint8_t *in, size_t n, int major, size_t *out_n) {
    const uint8_t *nul = memchr(in, 0, n);
    size_t dict = nul ? (size_t)(nul - in) : n, rest = nul ? n - dict - 1 : 0;
    size_t pre = major == 1 ? 10 : 12;
    uint8_t *f = malloc(pre + n + 1);
    FUZZ_ASSERT(f, "out of memory");
    memcpy(f, "\x93NUMPY", 6);
    f[6] = (uint8_t)major;
    f[7] = 0;
    for (size_t k = 0; k < pre - 8; k++) f[8 + k] = (uint8_t)(dict >> (8 * k));
    memcpy(f + pre, in, dict);
    memcpy(f + pre + dict, in + dict + (nul ? 1 : 0), rest);
    *out_n = pre + dict + rest;
    return f;
}

/* npy_read_raw against npy_read, then the file as a sample source (inputs and targets). */
static void check_raw_and_source(const char *path, size_t size) {
    NpyRaw r;
    NpyArray a;
    int raw_ok = npy_read_raw(path, &r) == 0, read_ok = npy_read(path, &a) == 0;
    if (!raw_ok) {
        FUZZ_ASSERT(strstr(hs_last_error(), path), "raw: message does not name the file: %s", hs_last_error());
        FUZZ_ASSERT(r.data == NULL && r.numel == 0, "failed raw read left data behind");
        FUZZ_ASSERT(!read_ok, "npy_read accepted a file npy_read_raw refused");
        return;
    }
    int is_float = r.dtype == NPY_F32 || r.dtype == NPY_F64;
    FUZZ_ASSERT(r.word_size == (r.dtype == NPY_F32 || r.dtype == NPY_I32 ? 4 : 8), "raw word size %d", r.word_size);
    FUZZ_ASSERT((uint64_t)r.numel * (uint64_t)r.word_size <= size, "raw: more data than the input holds");
    if (read_ok) {
        FUZZ_ASSERT(is_float && a.ndim == r.ndim && a.numel == r.numel && a.word_size == r.word_size,
                    "npy_read and npy_read_raw disagree on the header");
        for (int64_t k = 0; k < r.numel; k++) {
            double v;
            if (r.dtype == NPY_F32) {
                float f;
                memcpy(&f, (const char *)r.data + 4 * k, 4);
                v = f;
            } else {
                memcpy(&v, (const char *)r.data + 8 * k, 8);
            }
            FUZZ_ASSERT(v == a.data[k], "npy_read and npy_read_raw disagree on element %lld", (long long)k);
        }
        npy_free(&a);
    } else {
        int finite = 1;
        for (int64_t k = 0; is_float && k < r.numel; k++) {
            double v;
            if (r.dtype == NPY_F32) {
                float f;
                memcpy(&f, (const char *)r.data + 4 * k, 4);
                v = f;
            } else {
                memcpy(&v, (const char *)r.data + 8 * k, 8);
            }
            finite &= isfinite(v) != 0;
        }
        FUZZ_ASSERT(!is_float || !finite, "npy_read refused a finite float file npy_read_raw read: %s", hs_last_error());
    }
    npy_raw_free(&r);

    SampleSource s;
    if (samples_from_npy(path, path, &s) != 0) {
        FUZZ_ASSERT(strstr(hs_last_error(), path), "source: message does not name the file: %s", hs_last_error());
        FUZZ_ASSERT(s.impl == NULL && s.fill == NULL, "failed source left data behind");
        return;
    }
    FUZZ_ASSERT(s.count > 0 && s.in_size > 0 && s.in_ndim >= 1 && s.in_ndim <= SAMPLES_MAX_DIMS, "source shape");
    size_t in_size = 1;
    for (int d = 0; d < s.in_ndim; d++) in_size *= (size_t)s.in_shape[d];
    FUZZ_ASSERT(in_size == s.in_size, "in_size %zu, shape product %zu", s.in_size, in_size);
    FUZZ_ASSERT((uint64_t)s.count * s.in_size * 4 <= size, "source: more samples than the input holds");
    FUZZ_ASSERT(s.target_kind == TARGET_VALUES, "a float file read as labels");
    FUZZ_ASSERT(s.target_size == s.in_size, "the same file: target_size %zu, in_size %zu", s.target_size, s.in_size);
    int idx[2] = {0, (int)(s.count - 1)};
    double *x = malloc(sizeof(double) * 2 * s.in_size), *y = malloc(sizeof(double) * 2 * s.target_size);
    FUZZ_ASSERT(x && y, "out of memory");
    FUZZ_ASSERT(s.fill(&s, idx, NULL, 2, x, 8, y) == 0, "fill f64: %s", hs_last_error());
    for (size_t i = 0; i < 2 * s.in_size; i++) FUZZ_ASSERT(isfinite(x[i]) && x[i] == y[i], "filled value %zu", i);
    FUZZ_ASSERT(s.fill(&s, idx, NULL, 2, x, 4, NULL) == 0, "fill f32: %s", hs_last_error());
    free(x);
    free(y);
    samples_free(&s);
}

/* Integer files: the file as inputs is refused; as labels beside a float inputs file, labels are checked. */
static void check_labels(const char *path) {
    NpyRaw r;
    if (npy_read_raw(path, &r) != 0) return;
    int is_int = r.dtype == NPY_I32 || r.dtype == NPY_I64;
    int64_t n = r.ndim >= 1 ? r.shape[0] : -1;
    npy_raw_free(&r);
    if (!is_int || n <= 0 || n > 4096) return;
    float *ones = malloc(sizeof(float) * (size_t)n);
    FUZZ_ASSERT(ones, "out of memory");
    for (int64_t i = 0; i < n; i++) ones[i] = 1;
    int64_t shape[2] = {n, 1};
    const char *xp = fuzz_path("x.npy");
    FUZZ_ASSERT(npy_write_f32(xp, ones, 2, shape) == 0, "write inputs: %s", hs_last_error());
    free(ones);
    SampleSource s;
    if (samples_from_npy(xp, path, &s) != 0) {
        FUZZ_ASSERT(strstr(hs_last_error(), path), "labels: message does not name the file: %s", hs_last_error());
        return;
    }
    FUZZ_ASSERT(s.target_kind == TARGET_LABELS && s.count == n && s.num_classes >= 1, "label source");
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)n);
    int *idx = malloc(sizeof(int) * (size_t)n);
    float *x = malloc(sizeof(float) * (size_t)n);
    FUZZ_ASSERT(labels && idx && x, "out of memory");
    for (int64_t i = 0; i < n; i++) idx[i] = (int)i;
    FUZZ_ASSERT(s.fill(&s, idx, NULL, (int)n, x, 4, labels) == 0, "fill labels: %s", hs_last_error());
    int max = -1;
    for (int64_t i = 0; i < n; i++) {
        FUZZ_ASSERT(labels[i] >= 0 && labels[i] < s.num_classes, "label %d outside [0, %d)", labels[i], s.num_classes);
        if (labels[i] > max) max = labels[i];
    }
    FUZZ_ASSERT(max + 1 == s.num_classes, "num_classes %d, max label %d", s.num_classes, max);
    free(labels);
    free(idx);
    free(x);
    samples_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t input_size) {
    if (input_size < 1) return 0;
    size_t size = input_size - 1;
    uint8_t *data = input[0] & 1 ? compose(input + 1, size, 1 + ((input[0] >> 1) & 3), &size) : NULL;
    const char *path = fuzz_write("in.npy", data ? data : input + 1, size);
    free(data);
    check_raw_and_source(path, size);
    check_labels(path);
    NpyArray a;
    if (npy_read(path, &a) != 0) {
        FUZZ_ASSERT(strstr(hs_last_error(), path), "message does not name the file: %s", hs_last_error());
        FUZZ_ASSERT(a.data == NULL && a.numel == 0 && a.ndim == 0, "failed read left data behind");
        return 0;
    }
    FUZZ_ASSERT(a.ndim >= 0 && a.ndim <= NPY_MAX_DIMS, "ndim %d", a.ndim);
    FUZZ_ASSERT(a.word_size == 4 || a.word_size == 8, "word size %d", a.word_size);
    int64_t numel = 1;
    for (int d = 0; d < a.ndim; d++) {
        FUZZ_ASSERT(a.shape[d] >= 0, "negative dimension");
        numel *= a.shape[d];
    }
    FUZZ_ASSERT(numel == a.numel, "numel %lld, shape product %lld", (long long)a.numel, (long long)numel);
    FUZZ_ASSERT((uint64_t)numel * (uint64_t)a.word_size <= size, "more data than the input holds");
    for (int64_t k = 0; k < numel; k++) FUZZ_ASSERT(isfinite(a.data[k]), "element %lld not finite", (long long)k);

    const char *out = fuzz_path("out.npy");
    FUZZ_ASSERT(npy_write_f64(out, a.data, a.ndim, a.shape) == 0, "rewrite failed: %s", hs_last_error());
    NpyArray b;
    FUZZ_ASSERT(npy_read(out, &b) == 0, "re-read failed: %s", hs_last_error());
    FUZZ_ASSERT(b.ndim == a.ndim && b.numel == a.numel && b.word_size == 8, "round trip changed the header");
    for (int d = 0; d < a.ndim; d++) FUZZ_ASSERT(b.shape[d] == a.shape[d], "round trip changed dimension %d", d);
    if (numel) FUZZ_ASSERT(memcmp(a.data, b.data, (size_t)numel * sizeof(double)) == 0, "round trip changed data");
    npy_free(&b);
    npy_free(&a);
    return 0;
}
