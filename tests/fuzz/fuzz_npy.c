/* fuzz_npy.c: libFuzzer harness for the .npy reader (src/io/npy.c). Byte 0 of the input chooses how the rest
 * becomes the file read with npy_read: bit 0 clear, the rest is the file as it is; bit 0 set, the rest is a
 * header dict, a NUL and the data, and the harness writes magic, version (1 + bits 1-2, so 1.0 to 4.0) and the
 * dict's true length before them, so mutations of the dict are not all stopped by a wrong length. Invariants: a failure leaves an empty array and a message naming the file; a success has
 * 1..NPY_MAX_DIMS-bounded shape, numel = product of the shape, only finite values, a data size that fits in
 * the input, and survives a round trip through npy_write_f64 + npy_read unchanged. */
#include "fuzz_common.h"

#include <math.h>

#include "../../src/core/common.h"
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

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t input_size) {
    if (input_size < 1) return 0;
    size_t size = input_size - 1;
    uint8_t *data = input[0] & 1 ? compose(input + 1, size, 1 + ((input[0] >> 1) & 3), &size) : NULL;
    const char *path = fuzz_write("in.npy", data ? data : input + 1, size);
    free(data);
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
