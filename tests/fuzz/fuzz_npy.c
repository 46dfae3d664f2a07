/* fuzz_npy.c: libFuzzer harness for the .npy reader (src/io/npy.c). The input is written to a file and read
 * with npy_read. Invariants: a failure leaves an empty array and a message naming the file; a success has
 * 1..NPY_MAX_DIMS-bounded shape, numel = product of the shape, only finite values, a data size that fits in
 * the input, and survives a round trip through npy_write_f64 + npy_read unchanged. */
#include "fuzz_common.h"

#include <math.h>

#include "../../src/core/common.h"
#include "../../src/io/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("in.npy", data, size);
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
