/* add.c: the residual connection out = a + b. Tangents of a sum are sums, and the gradient of a sum reaches
 * both inputs unchanged, so the same elementwise add serves the tangent forward pass and the accumulation of
 * an activation's gradients from its two consumers (see ops.h). */
#include "ops.h"

void FN(add_forward)(real *out, const real *a, const real *b, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
