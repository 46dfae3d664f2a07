/* fuzz_safetensors.c: libFuzzer harness for the safetensors checkpoint reader (src/io/safetensors.c), header
 * JSON and __metadata__ included. The input is written to a file and read with safetensors_read. Invariants:
 * a failure leaves an empty struct and a message naming the file; a success has every tensor inside the data
 * section with exactly numel * dtype-size bytes, no two non-empty tensors overlapping, unique names that
 * safetensors_find and safetensors_expect_shape resolve, floating tensors that convert to f32 and f64, metadata
 * that safetensors_meta resolves, and the whole file survives a safetensors_write + safetensors_read round trip
 * (same names, dtypes, shapes, bytes and metadata). */
#include "fuzz_common.h"

#include "../../src/core/common.h"
#include "../../src/io/safetensors.h"

static void check_tensor(const SafeTensors *st, const StTensor *t) {
    size_t esize = safetensors_dtype_size(t->dtype);
    FUZZ_ASSERT(esize > 0, "tensor '%s' has dtype %d", t->name, (int)t->dtype);
    FUZZ_ASSERT(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS, "tensor '%s' ndim %d", t->name, t->ndim);
    int64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        FUZZ_ASSERT(t->shape[d] >= 0, "tensor '%s' negative dimension", t->name);
        numel *= t->shape[d];
    }
    FUZZ_ASSERT(numel == t->numel, "tensor '%s' numel %lld, shape product %lld", t->name, (long long)t->numel,
                (long long)numel);
    FUZZ_ASSERT(t->begin <= t->end && t->end <= st->data_size, "tensor '%s' bytes %zu..%zu outside %zu", t->name,
                t->begin, t->end, st->data_size);
    FUZZ_ASSERT(t->end - t->begin == (size_t)numel * esize, "tensor '%s' byte count", t->name);
    FUZZ_ASSERT(safetensors_find(st, t->name) == t, "find('%s') returns another tensor", t->name);
    const StTensor *found = NULL;
    FUZZ_ASSERT(safetensors_expect_shape(st, t->name, t->ndim, t->shape, &found) == 0 && found == t,
                "expect_shape('%s') failed: %s", t->name, hs_last_error());
    int is_float = t->dtype == ST_F32 || t->dtype == ST_F64 || t->dtype == ST_F16 || t->dtype == ST_BF16;
    float *f = malloc((size_t)numel * sizeof *f + 1);
    double *g = malloc((size_t)numel * sizeof *g + 1);
    FUZZ_ASSERT(f && g, "out of memory");
    FUZZ_ASSERT((safetensors_to_f32(st, t, f) == 0) == is_float, "to_f32('%s') on dtype %s", t->name,
                safetensors_dtype_name(t->dtype));
    FUZZ_ASSERT((safetensors_to_f64(st, t, g) == 0) == is_float, "to_f64('%s') on dtype %s", t->name,
                safetensors_dtype_name(t->dtype));
    free(f);
    free(g);
}

/* Writes st back out and checks that reading the copy gives the same tensors and metadata. */
static void check_round_trip(const SafeTensors *st) {
    StWriteTensor *w = calloc((size_t)st->count + 1, sizeof *w);
    FUZZ_ASSERT(w, "out of memory");
    for (int k = 0; k < st->count; k++) {
        const StTensor *t = &st->tensors[k];
        w[k] = (StWriteTensor){t->name, t->dtype, t->ndim, {0}, st->data + t->begin};
        memcpy(w[k].shape, t->shape, sizeof t->shape);
    }
    const char *out = fuzz_path("out.safetensors");
    FUZZ_ASSERT(safetensors_write(out, w, st->count, (const char *const *)st->meta_keys,
                                  (const char *const *)st->meta_values, st->meta_count) == 0,
                "rewrite failed: %s", hs_last_error());
    SafeTensors c;
    FUZZ_ASSERT(safetensors_read(out, &c) == 0, "re-read failed: %s", hs_last_error());
    FUZZ_ASSERT(c.count == st->count && c.meta_count == st->meta_count, "round trip changed the counts");
    for (int k = 0; k < st->count; k++) {
        const StTensor *a = &st->tensors[k], *b = &c.tensors[k];
        FUZZ_ASSERT(strcmp(a->name, b->name) == 0, "round trip renamed '%s' to '%s'", a->name, b->name);
        FUZZ_ASSERT(a->dtype == b->dtype && a->ndim == b->ndim && a->numel == b->numel &&
                        memcmp(a->shape, b->shape, sizeof a->shape) == 0,
                    "round trip changed tensor '%s'", a->name);
        FUZZ_ASSERT(memcmp(st->data + a->begin, c.data + b->begin, a->end - a->begin) == 0,
                    "round trip changed the bytes of '%s'", a->name);
    }
    for (int k = 0; k < st->meta_count; k++) {
        const char *v = safetensors_meta(&c, st->meta_keys[k]);
        FUZZ_ASSERT(v && strcmp(v, st->meta_values[k]) == 0, "round trip changed metadata '%s'", st->meta_keys[k]);
    }
    safetensors_free(&c);
    free(w);
}

/* The file for a "header NUL data" input. */
static uint8_t *compose(const uint8_t *in, size_t n, size_t *out_n) {
    const uint8_t *nul = memchr(in, 0, n);
    size_t header = nul ? (size_t)(nul - in) : n, rest = nul ? n - header - 1 : 0;
    uint8_t *f = malloc(8 + n + 1);
    FUZZ_ASSERT(f, "out of memory");
    for (int k = 0; k < 8; k++) f[k] = (uint8_t)((uint64_t)header >> (8 * k));
    memcpy(f + 8, in, header);
    memcpy(f + 8 + header, in + header + (nul ? 1 : 0), rest);
    *out_n = 8 + header + rest;
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t input_size) {
    if (input_size < 1) return 0;
    size_t size = input_size - 1;
    uint8_t *data = input[0] & 1 ? compose(input + 1, size, &size) : NULL;
    const char *path = fuzz_write("in.safetensors", data ? data : input + 1, size);
    free(data);
    SafeTensors st;
    if (safetensors_read(path, &st) != 0) {
        FUZZ_ASSERT(strstr(hs_last_error(), path), "message does not name the file: %s", hs_last_error());
        FUZZ_ASSERT(st.count == 0 && st.tensors == NULL && st.data == NULL && st.meta_count == 0,
                    "failed read left data behind");
        return 0;
    }
    FUZZ_ASSERT(st.data_size <= size, "data section larger than the input");
    for (int k = 0; k < st.count; k++) check_tensor(&st, &st.tensors[k]);
    for (int k = 0; k < st.count; k++)
        for (int j = 0; j < k; j++) {
            const StTensor *a = &st.tensors[j], *b = &st.tensors[k];
            FUZZ_ASSERT(strcmp(a->name, b->name) != 0, "duplicate tensor name '%s'", a->name);
            FUZZ_ASSERT(a->begin == a->end || b->begin == b->end || a->end <= b->begin || b->end <= a->begin,
                        "tensors '%s' and '%s' overlap", a->name, b->name);
        }
    for (int k = 0; k < st.meta_count; k++)
        FUZZ_ASSERT(safetensors_meta(&st, st.meta_keys[k]) == st.meta_values[k], "meta('%s') not found",
                    st.meta_keys[k]);
    check_round_trip(&st);
    safetensors_free(&st);
    return 0;
}
