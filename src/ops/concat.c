/* concat.c: concatenation along a per-sample axis (ONNX Concat) and its four passes (see ops.h). Each sample
 * is viewed as (outer, inner) blocks; output block o of a sample is the inputs' blocks o side by side. The op
 * is linear and moves entries only, so the tangent passes are the forward and backward passes on the N*K
 * samples of (N,K,...) tangents, with a NULL input tangent copied as zeros. */
#include <string.h>

#include "ops.h"

/* out (S, outer, total) from ins (S, outer, inner[i]), S samples; NULL entries of ins give zeros. */
static void FN(concat_copy)(real *out, const real *const *ins, const size_t *inner, int n_in, size_t outer,
                            size_t S) {
    size_t total = 0;
    for (int i = 0; i < n_in; i++) total += inner[i];
    const size_t jobs = S * outer;
#pragma omp parallel for schedule(static) if (S * outer * total > 65536)
    for (size_t job = 0; job < jobs; job++) {
        real *dst = out + job * total;
        for (int i = 0; i < n_in; i++) {
            if (ins[i])
                memcpy(dst, ins[i] + job * inner[i], sizeof(real) * inner[i]);
            else
                memset(dst, 0, sizeof(real) * inner[i]);
            dst += inner[i];
        }
    }
}

/* outs[i] (S, outer, inner[i]) = the matching blocks of in (S, outer, total); NULL entries skipped. */
static void FN(concat_split)(real *const *outs, const real *in, const size_t *inner, int n_in, size_t outer,
                             size_t S) {
    size_t total = 0;
    for (int i = 0; i < n_in; i++) total += inner[i];
    const size_t jobs = S * outer;
#pragma omp parallel for schedule(static) if (S * outer * total > 65536)
    for (size_t job = 0; job < jobs; job++) {
        const real *src = in + job * total;
        for (int i = 0; i < n_in; i++) {
            if (outs[i]) memcpy(outs[i] + job * inner[i], src, sizeof(real) * inner[i]);
            src += inner[i];
        }
    }
}

void FN(concat_forward)(real *out, const real *const *ins, const size_t *inner, int n_in, size_t outer, int N) {
    FN(concat_copy)(out, ins, inner, n_in, outer, (size_t)N);
}

void FN(concat_backward)(real *const *d_ins, const real *d_out, const size_t *inner, int n_in, size_t outer, int N) {
    FN(concat_split)(d_ins, d_out, inner, n_in, outer, (size_t)N);
}

void FN(concat_tangent_forward)(real *t_out, const real *const *t_ins, const size_t *inner, int n_in, size_t outer,
                                int K, int N) {
    FN(concat_copy)(t_out, t_ins, inner, n_in, outer, (size_t)N * K);
}

void FN(concat_tangent_backward)(real *const *td_ins, const real *td_out, const size_t *inner, int n_in,
                                 size_t outer, int K, int N) {
    FN(concat_split)(td_ins, td_out, inner, n_in, outer, (size_t)N * K);
}
