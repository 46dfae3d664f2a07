/* pointwise.c: elementwise activations out = f(in) (LeakyRelu, Clip, Sigmoid, Tanh, Softplus, Erf) and their
 * four passes (see ops.h). Every pass evaluates f, f' and f'' from the input; the smooth functions are
 * evaluated in double and rounded once, the piecewise-linear ones are exact in `real`.
 *
 *   backward          d_in  = f'(in) d_out
 *   tangent forward   t_out = f'(in) t_in
 *   tangent backward  td_in = f'(in) td_out + f''(in) t_in d_out      (d_out NULL: Gauss-Newton, first term)
 *
 * Derivatives from the input alone (no output needed):
 *   sigmoid   s = 1/(1+e^-x)     f' = s(1-s)        f'' = s(1-s)(1-2s)
 *   tanh      t = tanh x         f' = 1-t^2         f'' = -2t(1-t^2)
 *   softplus  log(1+e^x)         f' = s             f'' = s(1-s)          (x > 20: f = x, f' = 1, f'' = 0)
 *   erf                          f' = 2/sqrt(pi) e^(-x^2)                 f'' = -2x f'
 * Elementwise loops read each entry before writing it, so outputs may alias their inputs. */
#include <math.h>

#include "ops.h"

#define PW_BLOCK 256 /* entries whose derivatives are evaluated once and used for all K directions */

static double sigmoid(double x) {
    if (x >= 0) return 1 / (1 + exp(-x));
    double e = exp(x);
    return e / (1 + e);
}

static real FN(pw_value)(real x, const Pointwise *f) {
    switch (f->kind) {
    case PW_LEAKY_RELU: return x > 0 ? x : (real)f->alpha * x; /* the product in `real`, as PyTorch */
    case PW_CLIP: {
        real y = x < (real)f->lo ? (real)f->lo : x; /* NaN stays NaN, as torch.clamp */
        return y > (real)f->hi ? (real)f->hi : y;
    }
    case PW_SIGMOID: return (real)sigmoid(x);
    case PW_TANH: return (real)tanh(x);
    case PW_SOFTPLUS: return x > 20 ? x : (real)log1p(exp((double)x));
    case PW_ERF: return (real)erf(x);
    }
    return x;
}

/* f'(x) into *d1 and f''(x) into *d2. */
static void FN(pw_derivs)(double *d1, double *d2, real x, const Pointwise *f) {
    double s;
    switch (f->kind) {
    case PW_LEAKY_RELU: *d1 = x > 0 ? 1 : (double)(real)f->alpha, *d2 = 0; return;
    case PW_CLIP: *d1 = x >= (real)f->lo && x <= (real)f->hi ? 1 : 0, *d2 = 0; return;
    case PW_SIGMOID: s = sigmoid(x), *d1 = s * (1 - s), *d2 = *d1 * (1 - 2 * s); return;
    case PW_TANH: s = tanh(x), *d1 = 1 - s * s, *d2 = -2 * s * *d1; return;
    case PW_SOFTPLUS:
        if (x > 20) {
            *d1 = 1, *d2 = 0;
        } else {
            s = sigmoid(x), *d1 = s, *d2 = s * (1 - s);
        }
        return;
    case PW_ERF: *d1 = 1.1283791670955126 * exp(-(double)x * x), *d2 = -2 * (double)x * *d1; return;
    }
    *d1 = *d2 = 0;
}

void FN(pointwise_forward)(real *out, const real *in, size_t n, const Pointwise *f) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) out[i] = FN(pw_value)(in[i], f);
}

void FN(pointwise_backward)(real *d_in, const real *d_out, const real *in, size_t n, const Pointwise *f) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        double d1, d2;
        FN(pw_derivs)(&d1, &d2, in[i], f);
        d_in[i] = (real)(d1 * d_out[i]);
    }
}

/* The tangent passes: td (N,K,m) = f'(in) g + [f''(in) t d] over blocks of PW_BLOCK entries of a sample, so
 * the derivatives are evaluated once per (sample, entry). g: (N,K,m); t: (N,K,m) or NULL; d: (N,m) or NULL. */
static void FN(pw_tangent)(real *res, const real *g, const real *t, const real *d, const real *in, int K, int N,
                           size_t m, const Pointwise *f) {
    size_t blocks = (m + PW_BLOCK - 1) / PW_BLOCK, jobs = (size_t)N * blocks;
#pragma omp parallel for schedule(static) if ((size_t)K * N * m > 32768)
    for (size_t job = 0; job < jobs; job++) {
        size_t n = job / blocks, i0 = job % blocks * PW_BLOCK, len = m - i0 < PW_BLOCK ? m - i0 : PW_BLOCK;
        double d1[PW_BLOCK], c2[PW_BLOCK];
        const real *x = in + n * m + i0;
        for (size_t i = 0; i < len; i++) {
            double second;
            FN(pw_derivs)(&d1[i], &second, x[i], f);
            c2[i] = t && d ? second * d[n * m + i0 + i] : 0; /* f''(in) d_out */
        }
        for (int k = 0; k < K; k++) {
            size_t base = (n * (size_t)K + (size_t)k) * m + i0;
            if (!g) {
                for (size_t i = 0; i < len; i++) res[base + i] = 0;
            } else if (t && d) {
                for (size_t i = 0; i < len; i++) res[base + i] = (real)(d1[i] * g[base + i] + c2[i] * t[base + i]);
            } else {
                for (size_t i = 0; i < len; i++) res[base + i] = (real)(d1[i] * g[base + i]);
            }
        }
    }
}

void FN(pointwise_tangent_forward)(real *t_out, const real *t_in, const real *in, int K, int N, size_t m,
                                   const Pointwise *f) {
    FN(pw_tangent)(t_out, t_in, NULL, NULL, in, K, N, m, f);
}

void FN(pointwise_tangent_backward)(real *td_in, const real *td_out, const real *d_out, const real *t_in,
                                    const real *in, int K, int N, size_t m, const Pointwise *f) {
    FN(pw_tangent)(td_in, td_out, t_in, d_out, in, K, N, m, f);
}
