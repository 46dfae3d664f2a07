/* cnn.c: the study's small CNN, torch.nn.Sequential(
 *   0 Conv2d(3,5,5), 1 ReLU, 2 MaxPool2d(2), 3 Conv2d(5,5,5), 4 ReLU, 5 MaxPool2d(2), 6 Flatten,
 *   7 Linear(125,30), 8 ReLU, 9 Linear(30,10))
 * 5,100 parameters: 0.weight [5,3,5,5], 0.bias, 3.weight [5,5,5,5], 3.bias, 7.weight [30,125], 7.bias,
 * 9.weight [10,30], 9.bias. Layers for second-order work: 0 = conv 0, 1 = conv 3, 2 = linear 7, 3 = linear 9.
 *
 * Shapes for N samples:
 *   x (N,3,32,32) -> a1 (N,5,28,28) -> p1 (N,5,14,14) -> a2 (N,5,10,10) -> p2 (N,125) -> a3 (N,30) -> logits (N,10)
 * ReLU and max-pool commute (max(relu(x)) = relu(max(x))), so each ReLU runs in place on the pooled output,
 * four times fewer values. Values, gradients and tangents are identical to ReLU-then-pool: where the
 * window's maximum is positive both pick the same winner; where it is not, every derivative is zero either
 * way. a1, a2 hold the convolutions' pre-activations; p1, p2, a3 hold post-ReLU values (the ReLU masks).
 * Tangents carry K directions per sample: (N,K,...). */
#include <stdlib.h>
#include <string.h>

#include "../ops/ops.h"
#include "model.h"

typedef struct {
    int capacity_N, capacity_NK;
    real *a1, *p1, *a2, *p2, *a3;           /* activations */
    int32_t *am1, *am2;                     /* max-pool argmax */
    real *d_a1, *d_p1, *d_a2, *d_p2, *d_a3; /* activation gradients */
    real *t_a1, *t_p1, *t_a2, *t_p2, *t_a3; /* tangents (N,K,...) */
    real *td_a1, *td_p1, *td_a2, *td_p2, *td_a3;
} CnnState;

enum { A1 = 5 * 28 * 28, P1 = 5 * 14 * 14, A2 = 5 * 10 * 10, P2 = 125, A3 = 30 };

static ConvShape conv1_shape(void) { return conv2d_shape(3, 32, 32, 5, 5, 1, 0); }
static ConvShape conv2_shape(void) { return conv2d_shape(5, 14, 14, 5, 5, 1, 0); }
static PoolShape pool1_shape(void) { return maxpool_shape(5, 28, 28, 2, 2, 0); }
static PoolShape pool2_shape(void) { return maxpool_shape(5, 10, 10, 2, 2, 0); }

static int FN(cnn_init)(Model *m) {
    static const struct {
        const char *name;
        int ndim;
        int64_t shape[4];
        int layer, fan_in, kind;
    } table[] = {
        {"0.weight", 4, {5, 3, 5, 5}, 0, 75, TENSOR_WEIGHT},   {"0.bias", 1, {5}, 0, 75, TENSOR_BIAS},
        {"3.weight", 4, {5, 5, 5, 5}, 1, 125, TENSOR_WEIGHT},  {"3.bias", 1, {5}, 1, 125, TENSOR_BIAS},
        {"7.weight", 2, {30, 125}, 2, 125, TENSOR_WEIGHT},     {"7.bias", 1, {30}, 2, 125, TENSOR_BIAS},
        {"9.weight", 2, {10, 30}, 3, 30, TENSOR_WEIGHT},       {"9.bias", 1, {10}, 3, 30, TENSOR_BIAS},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        HS_TRY(FN(model_add_tensor)(m, table[i].name, table[i].ndim, table[i].shape, table[i].layer, table[i].fan_in,
                                    table[i].kind));
    m->state = hs_calloc(1, sizeof(CnnState));
    return m->state ? 0 : -1;
}

static void FN(cnn_free_tangents)(CnnState *s) {
    real **t[] = {&s->t_a1, &s->t_p1, &s->t_a2, &s->t_p2, &s->t_a3, &s->td_a1, &s->td_p1, &s->td_a2, &s->td_p2, &s->td_a3};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        free(*t[i]);
        *t[i] = NULL;
    }
    s->capacity_NK = 0;
}

static void FN(cnn_free_state)(Model *m) {
    CnnState *s = m->state;
    if (!s) return;
    real *p[] = {s->a1, s->p1, s->a2, s->p2, s->a3, s->d_a1, s->d_p1, s->d_a2, s->d_p2, s->d_a3};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
    free(s->am1);
    free(s->am2);
    FN(cnn_free_tangents)(s);
    free(s);
    m->state = NULL;
}

static int FN(cnn_reserve)(CnnState *s, int N) {
    if (N <= s->capacity_N) return 0;
    real **p[] = {&s->a1, &s->p1, &s->a2, &s->p2, &s->a3, &s->d_a1, &s->d_p1, &s->d_a2, &s->d_p2, &s->d_a3};
    const size_t sizes[] = {A1, P1, A2, P2, A3, A1, P1, A2, P2, A3};
    HS_TRY(FN(model_alloc_buffers)(p, sizes, (int)(sizeof p / sizeof p[0]), (size_t)N));
    free(s->am1);
    free(s->am2);
    s->am1 = hs_malloc(sizeof(int32_t) * P1 * (size_t)N);
    s->am2 = hs_malloc(sizeof(int32_t) * P2 * (size_t)N);
    if (!s->am1 || !s->am2) return -1;
    s->capacity_N = N;
    return 0;
}

static int FN(cnn_reserve_tangents)(CnnState *s, int NK) {
    if (NK <= s->capacity_NK) return 0;
    FN(cnn_free_tangents)(s);
    real **t[] = {&s->t_a1, &s->t_p1, &s->t_a2, &s->t_p2, &s->t_a3, &s->td_a1, &s->td_p1, &s->td_a2, &s->td_p2, &s->td_a3};
    const size_t sizes[] = {A1, P1, A2, P2, A3, A1, P1, A2, P2, A3};
    HS_TRY(FN(model_alloc_buffers)(t, sizes, (int)(sizeof t / sizeof t[0]), (size_t)NK));
    s->capacity_NK = NK;
    return 0;
}

#define P(name) (m->params + m->tensors[name].offset)
enum { W0, B0, W3, B3, W7, B7, W9, B9 };

static int FN(cnn_forward)(Model *m, const real *x, int N) {
    CnnState *s = m->state;
    HS_TRY(FN(cnn_reserve)(s, N));
    ConvShape c1 = conv1_shape(), c2 = conv2_shape();
    PoolShape q1 = pool1_shape(), q2 = pool2_shape();
    HS_TRY(FN(conv2d_forward)(s->a1, x, P(W0), P(B0), N, &c1));
    FN(maxpool_forward)(s->p1, s->am1, s->a1, N, &q1);
    FN(relu_forward)(s->p1, s->p1, (size_t)N * P1);
    HS_TRY(FN(conv2d_forward)(s->a2, s->p1, P(W3), P(B3), N, &c2));
    FN(maxpool_forward)(s->p2, s->am2, s->a2, N, &q2);
    FN(relu_forward)(s->p2, s->p2, (size_t)N * P2);
    FN(linear_forward)(s->a3, s->p2, P(W7), P(B7), N, P2, A3);
    FN(relu_forward)(s->a3, s->a3, (size_t)N * A3);
    FN(linear_forward)(m->logits, s->a3, P(W9), P(B9), N, A3, 10);
    return 0;
}

#define G(name) (grad ? grad + m->tensors[name].offset : NULL)

static int FN(cnn_backward)(Model *m, real *grad) {
    CnnState *s = m->state;
    int N = m->N;
    ConvShape c1 = conv1_shape(), c2 = conv2_shape();
    PoolShape q1 = pool1_shape(), q2 = pool2_shape();
    FN(linear_backward)(s->d_a3, G(W9), G(B9), m->d_logits, s->a3, P(W9), N, A3, 10);
    FN(relu_backward)(s->d_a3, s->d_a3, s->a3, (size_t)N * A3);
    FN(linear_backward)(s->d_p2, G(W7), G(B7), s->d_a3, s->p2, P(W7), N, P2, A3);
    FN(relu_backward)(s->d_p2, s->d_p2, s->p2, (size_t)N * P2);
    FN(maxpool_backward)(s->d_a2, s->d_p2, s->am2, N, &q2);
    HS_TRY(FN(conv2d_backward)(s->d_p1, G(W3), G(B3), s->d_a2, s->p1, P(W3), N, &c2));
    FN(relu_backward)(s->d_p1, s->d_p1, s->p1, (size_t)N * P1);
    FN(maxpool_backward)(s->d_a1, s->d_p1, s->am1, N, &q1);
    if (grad) HS_TRY(FN(conv2d_backward)(NULL, G(W0), G(B0), s->d_a1, m->x, P(W0), N, &c1));
    return 0;
}

/* Direction tangents of a tensor: rows of v (K, P) at the tensor's offset. */
#define V(name) FN(model_direction)(m, v, name)

static int FN(cnn_tangent_forward)(Model *m, const real *v, int K, int start) {
    CnnState *s = m->state;
    int N = m->N;
    HS_TRY(FN(cnn_reserve_tangents)(s, N * K));
    size_t P = m->num_params;
    ConvShape c1 = conv1_shape(), c2 = conv2_shape();
    PoolShape q1 = pool1_shape(), q2 = pool2_shape();
    if (start <= 0) {
        HS_TRY(FN(conv2d_tangent_forward)(s->t_a1, NULL, V(W0), V(B0), P, m->x, P(W0), K, N, &c1));
        FN(maxpool_tangent_forward)(s->t_p1, s->t_a1, s->am1, K, N, &q1);
        FN(relu_tangent_forward)(s->t_p1, s->t_p1, s->p1, K, N, P1);
    }
    if (start <= 1) {
        HS_TRY(FN(conv2d_tangent_forward)(s->t_a2, start < 1 ? s->t_p1 : NULL, V(W3), V(B3), P, s->p1, P(W3), K, N,
                                          &c2));
        FN(maxpool_tangent_forward)(s->t_p2, s->t_a2, s->am2, K, N, &q2);
        FN(relu_tangent_forward)(s->t_p2, s->t_p2, s->p2, K, N, P2);
    }
    if (start <= 2) {
        FN(linear_tangent_forward)(s->t_a3, start < 2 ? s->t_p2 : NULL, V(W7), V(B7), P, s->p2, P(W7), K, N, P2, A3);
        FN(relu_tangent_forward)(s->t_a3, s->t_a3, s->a3, K, N, A3);
    }
    FN(linear_tangent_forward)(m->t_logits, start < 3 ? s->t_a3 : NULL, V(W9), V(B9), P, s->a3, P(W9), K, N, A3, 10);
    return 0;
}

#define HV(name) (hv + m->tensors[name].offset)

static int FN(cnn_tangent_backward)(Model *m, const real *v, int K, int start, Curvature curvature, real *hv) {
    CnnState *s = m->state;
    int N = m->N;
    size_t P = m->num_params;
    int ggn = curvature == CURVATURE_GGN;
    ConvShape c1 = conv1_shape(), c2 = conv2_shape();
    PoolShape q1 = pool1_shape(), q2 = pool2_shape();
    /* t_in of a layer is NULL when the layer is the first one with a direction (its input has no tangent). */
    FN(linear_tangent_backward)(start < 3 ? s->td_a3 : NULL, HV(W9), HV(B9), P, m->td_logits,
                                ggn ? NULL : m->d_logits, start < 3 ? s->t_a3 : NULL, V(W9), s->a3, P(W9), K, N, A3,
                                10);
    if (start >= 3) return 0;
    FN(relu_tangent_backward)(s->td_a3, s->td_a3, s->a3, K, N, A3);
    FN(linear_tangent_backward)(start < 2 ? s->td_p2 : NULL, HV(W7), HV(B7), P, s->td_a3, ggn ? NULL : s->d_a3,
                                start < 2 ? s->t_p2 : NULL, V(W7), s->p2, P(W7), K, N, P2, A3);
    if (start >= 2) return 0;
    FN(relu_tangent_backward)(s->td_p2, s->td_p2, s->p2, K, N, P2);
    FN(maxpool_tangent_backward)(s->td_a2, s->td_p2, s->am2, K, N, &q2);
    HS_TRY(FN(conv2d_tangent_backward)(start < 1 ? s->td_p1 : NULL, HV(W3), HV(B3), P, s->td_a2,
                                       ggn ? NULL : s->d_a2, start < 1 ? s->t_p1 : NULL, V(W3), s->p1, P(W3), K, N,
                                       &c2));
    if (start >= 1) return 0;
    FN(relu_tangent_backward)(s->td_p1, s->td_p1, s->p1, K, N, P1);
    FN(maxpool_tangent_backward)(s->td_a1, s->td_p1, s->am1, K, N, &q1);
    HS_TRY(FN(conv2d_tangent_backward)(NULL, HV(W0), HV(B0), P, s->td_a1, ggn ? NULL : s->d_a1, NULL, V(W0), m->x,
                                       P(W0), K, N, &c1));
    return 0;
}

const ModelArch FN(cnn_arch) = {
    .name = "cnn",
    .init = FN(cnn_init),
    .free_state = FN(cnn_free_state),
    .forward = FN(cnn_forward),
    .backward = FN(cnn_backward),
    .grad_optional = 1,
    .tangent_forward = FN(cnn_tangent_forward),
    .tangent_backward = FN(cnn_tangent_backward),
};
