/* hvp.c: loss, gradient and Hessian/GGN-vector products over a sample set, chunk by chunk, accumulated in
 * double (see curvature.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/scratch.h"
#include "curvature.h"

void FN(samples_fill)(const Cifar10 *data, const int *indices, int count, real *x, int32_t *labels) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < count; i++) {
#if defined(HS_F64)
        cifar10_image_f64(data, indices[i], 4, 4, 0, x + (size_t)i * CIFAR10_PIXELS);
#else
        cifar10_image_f32(data, indices[i], 4, 4, 0, x + (size_t)i * CIFAR10_PIXELS);
#endif
        labels[i] = data->labels[indices[i]];
    }
}

/* acc (n) = or += part (n): the first chunk assigns, so the double buffer is written once, not cleared first. */
static void FN(accumulate_chunk)(double *acc, const real *part, size_t n, int first) {
    if (first) {
#pragma omp parallel for schedule(static) if (n > 100000)
        for (size_t i = 0; i < n; i++) acc[i] = (double)part[i];
    } else {
#pragma omp parallel for schedule(static) if (n > 100000)
        for (size_t i = 0; i < n; i++) acc[i] += (double)part[i];
    }
}

static int chunk_size(const SampleSet *set) {
    int c = set->chunk > 0 ? set->chunk : 250;
    return c < set->count ? c : set->count;
}

/* Buffers for one chunk of samples. They live in the calling thread's scratch slots (grow-only), so repeated
 * products (power iteration, Lanczos, training-time sharpness) allocate nothing after the first. */
typedef struct {
    real *x;        /* (chunk,3,32,32) */
    int32_t *y;     /* (chunk) */
    real *grad;     /* (P) */
    real *vr;       /* (K,P) directions in working precision */
    real *hv;       /* (K,P) */
} ChunkBuffers;

enum { SLOT_X = 8, SLOT_Y, SLOT_GRAD, SLOT_V, SLOT_HV };

static int FN(chunk_alloc)(ChunkBuffers *b, int chunk, size_t P, int K) {
    memset(b, 0, sizeof *b);
    b->x = scratch_get(SLOT_X, sizeof(real) * (size_t)chunk * CIFAR10_PIXELS);
    b->y = scratch_get(SLOT_Y, sizeof(int32_t) * (size_t)chunk);
    b->grad = scratch_get(SLOT_GRAD, sizeof(real) * P);
    if (K > 0) {
        b->vr = scratch_get(SLOT_V, sizeof(real) * P * (size_t)K);
        b->hv = scratch_get(SLOT_HV, sizeof(real) * P * (size_t)K);
    }
    if (!b->x || !b->y || !b->grad || (K > 0 && (!b->vr || !b->hv))) return -1;
    return 0;
}

int FN(curv_loss_grad)(Model *m, const SampleSet *set, double *loss, double *accuracy, double *grad) {
    if (set->count <= 0) return hs_error("no samples selected");
    size_t P = m->num_params;
    int chunk = chunk_size(set);
    ChunkBuffers b;
    HS_TRY(FN(chunk_alloc)(&b, chunk, P, 0));
    double total = 0, scale = 1.0 / set->count;
    long right = 0;
    int rc = 0;
    for (int start = 0; start < set->count && rc == 0; start += chunk) {
        int n = set->count - start < chunk ? set->count - start : chunk;
        FN(samples_fill)(set->data, set->indices + start, n, b.x, b.y);
        double part;
        int correct;
        rc = FN(model_forward)(m, b.x, n);
        if (rc == 0) rc = FN(model_loss)(m, b.y, scale, &part, &correct);
        if (rc != 0) break;
        total += part;
        right += correct;
        if (!grad) continue;
        memset(b.grad, 0, sizeof(real) * P);
        rc = FN(model_backward)(m, b.y, scale, b.grad);
        FN(accumulate_chunk)(grad, b.grad, P, start == 0);
    }
    if (rc != 0) return -1;
    if (loss) *loss = total;
    if (accuracy) *accuracy = (double)right / set->count;
    if (grad) {
        double sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum) if (P > 100000)
        for (size_t i = 0; i < P; i++) sum += fabs(grad[i]);
        if (!isfinite(sum))
            for (size_t i = 0; i < P; i++)
                if (!isfinite(grad[i])) return hs_error("the gradient is not finite at parameter %zu", i);
    }
    return 0;
}

int FN(curv_hvp)(Model *m, const SampleSet *set, const double *v, int K, Curvature curvature, double *hv,
                 double *loss) {
    if (set->count <= 0) return hs_error("no samples selected");
    if (K <= 0) return hs_error("no directions given");
    size_t P = m->num_params;
    for (int k = 0; k < K; k++)
        for (size_t i = 0; i < P; i++)
            if (!isfinite(v[(size_t)k * P + i])) return hs_error("direction %d is not finite at index %zu", k, i);
    int chunk = chunk_size(set);
    ChunkBuffers b;
    HS_TRY(FN(chunk_alloc)(&b, chunk, P, K));
#pragma omp parallel for schedule(static) if (P * (size_t)K > 100000)
    for (size_t i = 0; i < P * (size_t)K; i++) b.vr[i] = (real)v[i];
    double total = 0, scale = 1.0 / set->count;
    int rc = 0;
    for (int start = 0; start < set->count && rc == 0; start += chunk) {
        int n = set->count - start < chunk ? set->count - start : chunk;
        FN(samples_fill)(set->data, set->indices + start, n, b.x, b.y);
        double part;
        rc = FN(model_forward)(m, b.x, n);
        if (rc == 0) rc = FN(model_loss)(m, b.y, scale, &part, NULL);
        if (rc == 0) rc = FN(model_backward)(m, b.y, scale, m->arch->grad_optional ? NULL : b.grad);
        if (rc != 0) break;
        total += part;
        memset(b.hv, 0, sizeof(real) * P * (size_t)K);
        rc = FN(model_hvp_chunk)(m, b.vr, K, 0, curvature, b.hv);
        FN(accumulate_chunk)(hv, b.hv, P * (size_t)K, start == 0);
    }
    if (rc != 0) return -1;
    if (loss) *loss = total;
    for (int k = 0; k < K; k++) {
        const double *h = hv + (size_t)k * P, *vk = v + (size_t)k * P;
        double vnorm = 0, hnorm = 0;
#pragma omp parallel for schedule(static) reduction(+ : vnorm, hnorm) if (P > 100000)
        for (size_t i = 0; i < P; i++) {
            vnorm += fabs(vk[i]);
            hnorm += fabs(h[i]); /* a NaN or infinity anywhere makes the sum non-finite */
        }
        if (!isfinite(hnorm))
            for (size_t i = 0; i < P; i++)
                if (!isfinite(h[i])) return hs_error("the Hessian-vector product is not finite at index %zu", i);
        if (vnorm > 0 && hnorm == 0)
            return hs_error("the Hessian-vector product is exactly zero for a non-zero direction: the loss does not "
                            "depend on these parameters (or every unit is inactive); refusing to return a silent "
                            "zero");
    }
    return 0;
}
