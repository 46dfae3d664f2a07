/* ops.h: the kernels every model is built from. Each op has four passes with one argument order:
 *
 *   op_forward         (out, [cache,] in, weights..., dims)
 *   op_backward        (d_in, d_weights..., d_out, in, weights..., [cache,] dims)        vector-Jacobian
 *   op_tangent_forward (t_out, t_in, t_weights..., ldw, in, weights..., [cache,] K, dims)  Jacobian-vector
 *   op_tangent_backward(td_in, td_weights..., ldw, td_out, d_out, t_in, t_weights..., in, weights..., [cache,] K, dims)
 *
 * Forward-over-reverse (Pearlmutter's R-operator): with parameters theta + eps*v, the tangent forward pass
 * gives t_x = dx/deps of every activation, and the tangent backward pass gives td_x = d(dL/dx)/deps; its
 * td_weights are the Hessian-vector product Hv. K directions are propagated at once.
 *
 * Conventions
 * - Layouts are C order, NCHW. Tangents of activations are (N, K, ...): sample-major, the K directions of a
 *   sample side by side, so the tangent passes of weight-sharing ops become wide matrix products.
 * - Tangents of weights are rows of a (K, ldw) matrix: direction k's weight tangent is t_weight + k*ldw.
 *   In hessian ldw = the model's parameter count, so v and Hv are (K, P) matrices in PyTorch order.
 * - Activation gradients are written (=), parameter gradients accumulate (+=).
 * - For linear and conv2d, any tangent input (t_in, t_weight, t_bias) may be NULL, meaning zero; td_in may
 *   be NULL when not needed (first layer). The parameter-free ops (relu, max-pool, cross-entropy) need them.
 *   d_out == NULL in a tangent backward pass drops the terms that multiply the first-order gradient: that
 *   pass then computes the generalised Gauss-Newton product instead of the Hessian product.
 * - Functions that need scratch memory return 0, or -1 with hs_error() set; the others return void.
 *
 * A fifth pass for ops with parameters, the squared per-sample gradient (the diagonal of the generalised
 * Gauss-Newton matrix, `hessian diag`):
 *
 *   op_diag(diag_weights..., td_out, in, [weights or statistics...,] K, dims)
 *
 * td_out (N,K,...) holds K output vectors per sample (the columns of a factor of the loss Hessian, carried back
 * through the linearised network by the Gauss-Newton tangent backward pass, d_out == NULL). With g_nk the
 * parameter gradient of sample n alone for vector k (what op_backward would add for that sample and vector),
 * diag_w += sum_n sum_k g_nk^2 elementwise. A separate pass, not a flag of op_tangent_backward: it needs the
 * per-sample gradients before they are summed, and its accumulators are double (P), not the (K,ldw) rows of a
 * tangent. The caller runs op_tangent_backward with td_weights NULL for td_in. Sums run in an order fixed by
 * the shapes (the same bits for any thread count).
 */
#ifndef HS_OPS_H
#define HS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/common.h"
#include "shapes.h" /* ConvShape, PoolShape, Binary and their setup: precision-independent */

/* ---- linear: out = in W^T + b ---- */
void FN(linear_forward)(real *out /* (N,O) */, const real *in /* (N,In) */, const real *weight /* (O,In) */,
                        const real *bias /* (O) or NULL */, int N, int In, int O);
void FN(linear_backward)(real *d_in /* (N,In) or NULL */, real *d_weight /* (O,In) += or NULL */, real *d_bias /* (O) += or NULL */,
                         const real *d_out /* (N,O) */, const real *in /* (N,In) */, const real *weight /* (O,In) */,
                         int N, int In, int O);
void FN(linear_tangent_forward)(real *t_out /* (N,K,O) */, const real *t_in /* (N,K,In) or NULL */,
                                const real *t_weight /* (K,ldw) rows: (O,In) or NULL */,
                                const real *t_bias /* (K,ldw) rows: (O) or NULL */, size_t ldw,
                                const real *in /* (N,In) */, const real *weight /* (O,In) */, int K, int N, int In, int O);
void FN(linear_tangent_backward)(real *td_in /* (N,K,In) or NULL */, real *td_weight /* (K,ldw) += */,
                                 real *td_bias /* (K,ldw) += or NULL */, size_t ldw,
                                 const real *td_out /* (N,K,O) */, const real *d_out /* (N,O) or NULL */,
                                 const real *t_in /* (N,K,In) or NULL */, const real *t_weight /* (K,ldw) or NULL */,
                                 const real *in /* (N,In) */, const real *weight /* (O,In) */, int K, int N, int In, int O);

/* ---- conv2d: out = conv(in, W) + b, as ONNX Conv / PyTorch Conv2d: kernel kh x kw, groups, per-axis stride and
 * dilation, zero padding per side (top, left, bottom, right). Weight layout (O, C/groups, kh, kw); output channel
 * o reads input channels of group o / (O/groups). ConvShape, conv2d_shape, conv2d_shape_general: shapes.h ---- */

int FN(conv2d_forward)(real *out /* (N,O,Ho,Wo) */, const real *in /* (N,C,H,W) */,
                       const real *weight /* (O,C/groups,kh,kw) */, const real *bias /* (O) or NULL */, int N,
                       const ConvShape *s);
int FN(conv2d_backward)(real *d_in /* (N,C,H,W) or NULL */, real *d_weight /* (O,C/groups,kh,kw) += or NULL */,
                        real *d_bias /* (O) += or NULL */, const real *d_out /* (N,O,Ho,Wo) */,
                        const real *in /* (N,C,H,W) */, const real *weight /* (O,C/groups,kh,kw) */, int N,
                        const ConvShape *s);
int FN(conv2d_tangent_forward)(real *t_out /* (N,K,O,Ho,Wo) */, const real *t_in /* (N,K,C,H,W) or NULL */,
                               const real *t_weight /* (K,ldw) rows: (O,C/groups,kh,kw) or NULL */,
                               const real *t_bias /* (K,ldw) rows: (O) or NULL */, size_t ldw,
                               const real *in /* (N,C,H,W) */, const real *weight /* (O,C/groups,kh,kw) */, int K,
                               int N, const ConvShape *s);
int FN(conv2d_tangent_backward)(real *td_in /* (N,K,C,H,W) or NULL */, real *td_weight /* (K,ldw) += */,
                                real *td_bias /* (K,ldw) += or NULL */, size_t ldw,
                                const real *td_out /* (N,K,O,Ho,Wo) */, const real *d_out /* (N,O,Ho,Wo) or NULL */,
                                const real *t_in /* (N,K,C,H,W) or NULL */, const real *t_weight /* (K,ldw) or NULL */,
                                const real *in /* (N,C,H,W) */, const real *weight /* (O,C/groups,kh,kw) */, int K,
                                int N, const ConvShape *s);

/* ---- relu: out = max(in, 0); the mask is taken from out > 0 as PyTorch does ---- */
void FN(relu_forward)(real *out /* (n) */, const real *in /* (n) */, size_t n);
void FN(relu_backward)(real *d_in /* (n) */, const real *d_out /* (n) */, const real *out /* (n) */, size_t n);
void FN(relu_tangent_forward)(real *t_out /* (N,K,m) */, const real *t_in /* (N,K,m) */, const real *out /* (N,m) */,
                              int K, int N, size_t m);
void FN(relu_tangent_backward)(real *td_in /* (N,K,m) */, const real *td_out /* (N,K,m) */,
                               const real *out /* (N,m) */, int K, int N, size_t m);

/* ---- 2-D pooling windows (max and average), as ONNX MaxPool / AveragePool and PyTorch: kernel kh x kw, per-axis
 * stride, padding per side (top, left, bottom, right). Output size per axis (PyTorch's rule):
 *   Ho = floor_or_ceil((H + pad_t + pad_b - kh) / stride_h) + 1, ceil with ceil_mode; with ceil_mode the last
 *   window must start inside the input or the top padding: Ho -= 1 when (Ho-1)*stride_h >= H + pad_t.
 * count_include_pad: average pooling's divisor (see avgpool2d below); max-pool ignores it. PoolShape,
 * maxpool_shape, pool_shape_general: shapes.h ---- */

/* ---- max-pool (padded cells never win; a window with no input cell gives 0); cache = argmax per output ---- */

void FN(maxpool_forward)(real *out /* (N,C,Ho,Wo) */, int32_t *argmax /* (N,C,Ho,Wo): index in the H*W plane */,
                         const real *in /* (N,C,H,W) */, int N, const PoolShape *s);
void FN(maxpool_backward)(real *d_in /* (N,C,H,W) */, const real *d_out /* (N,C,Ho,Wo) */,
                          const int32_t *argmax /* (N,C,Ho,Wo) */, int N, const PoolShape *s);
void FN(maxpool_tangent_forward)(real *t_out /* (N,K,C,Ho,Wo) */, const real *t_in /* (N,K,C,H,W) */,
                                 const int32_t *argmax /* (N,C,Ho,Wo) */, int K, int N, const PoolShape *s);
void FN(maxpool_tangent_backward)(real *td_in /* (N,K,C,H,W) */, const real *td_out /* (N,K,C,Ho,Wo) */,
                                  const int32_t *argmax /* (N,C,Ho,Wo) */, int K, int N, const PoolShape *s);

/* ---- average pool 2-D over the windows of a PoolShape. Divisor as PyTorch: count_include_pad = 1 divides by the
 * window clipped to the padded input (H + pad_t + pad_b by W + pad_l + pad_r; kh*kw except windows hanging past
 * it with ceil_mode), count_include_pad = 0 by the number of input cells in the window (no cell: output 0).
 * Linear: the tangent passes are the forward/backward passes on N*K samples, with no second-order term. ---- */
void FN(avgpool2d_forward)(real *out /* (N,C,Ho,Wo) */, const real *in /* (N,C,H,W) */, int N, const PoolShape *s);
void FN(avgpool2d_backward)(real *d_in /* (N,C,H,W) */, const real *d_out /* (N,C,Ho,Wo) */, int N,
                            const PoolShape *s);
void FN(avgpool2d_tangent_forward)(real *t_out /* (N,K,C,Ho,Wo) */, const real *t_in /* (N,K,C,H,W) */, int K, int N,
                                   const PoolShape *s);
void FN(avgpool2d_tangent_backward)(real *td_in /* (N,K,C,H,W) */, const real *td_out /* (N,K,C,Ho,Wo) */, int K,
                                    int N, const PoolShape *s);

/* ---- cross-entropy from logits: loss = scale * sum_n (logsumexp(z_n) - z_n[y_n]) ----
 * scale = 1/(total samples) gives the mean over a data set processed in chunks. probs is the cache. */
int FN(cross_entropy_forward)(double *loss, real *probs /* (N,C) */, int *correct /* count of argmax == y, or NULL */,
                              const real *logits /* (N,C) */, const int32_t *labels /* (N) */, double scale, int N,
                              int C);
void FN(cross_entropy_backward)(real *d_logits /* (N,C) */, const real *probs /* (N,C) */,
                                const int32_t *labels /* (N) */, double scale, int N, int C);
void FN(cross_entropy_tangent_backward)(real *td_logits /* (N,K,C) */, const real *t_logits /* (N,K,C) */,
                                        const real *probs /* (N,C) */, double scale, int K, int N, int C);

/* ---- batch norm 2-D (per channel over (N, H, W); HW = H*W; layouts (N,C,HW), tangents (N,K,C,HW)) ----
 * eval:  y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta, an affine map per channel.
 * train: y = gamma * xhat + beta, xhat = (x - mu) * invstd, mu and the biased variance var over the batch,
 *        invstd = 1/sqrt(var + eps); the cache (mean, invstd) of the forward pass feeds the other passes.
 *        The running statistics are updated as PyTorch does: r_mean = (1-momentum) r_mean + momentum mu,
 *        r_var = (1-momentum) r_var + momentum var * M/(M-1) (unbiased), M = N*HW (PyTorch: momentum 0.1,
 *        eps 1e-5). The tangent passes differentiate through mu and var (batch statistics are functions of
 *        every sample of the chunk).
 * gamma/beta tangents are rows of (K, ldw); t_in, t_gamma, t_beta may be NULL (zero); td_in may be NULL;
 * d_out == NULL in tangent backward: Gauss-Newton (terms that multiply d_out dropped). Reductions are per
 * channel in double, so results do not depend on the thread count. d_in may alias d_out. */
void FN(batchnorm_eval_forward)(real *out /* (N,C,HW) */, const real *in /* (N,C,HW) */, const real *gamma /* (C) */,
                                const real *beta /* (C) */, const real *running_mean /* (C) */,
                                const real *running_var /* (C) */, double eps, int N, int C, int HW);
void FN(batchnorm_eval_backward)(real *d_in /* (N,C,HW) or NULL */, real *d_gamma /* (C) += or NULL */,
                                 real *d_beta /* (C) += or NULL */, const real *d_out /* (N,C,HW) */, const real *in,
                                 const real *gamma, const real *running_mean, const real *running_var, double eps,
                                 int N, int C, int HW);
void FN(batchnorm_eval_tangent_forward)(real *t_out /* (N,K,C,HW) */, const real *t_in /* (N,K,C,HW) or NULL */,
                                        const real *t_gamma /* (K,ldw) rows: (C) or NULL */,
                                        const real *t_beta /* (K,ldw) rows: (C) or NULL */, size_t ldw,
                                        const real *in, const real *gamma, const real *running_mean,
                                        const real *running_var, double eps, int K, int N, int C, int HW);
void FN(batchnorm_eval_tangent_backward)(real *td_in /* (N,K,C,HW) or NULL */,
                                         real *td_gamma /* (K,ldw) += or NULL */,
                                         real *td_beta /* (K,ldw) += or NULL */, size_t ldw,
                                         const real *td_out /* (N,K,C,HW) */, const real *d_out /* (N,C,HW) or NULL */,
                                         const real *t_in /* or NULL */, const real *t_gamma /* or NULL */,
                                         const real *in, const real *gamma, const real *running_mean,
                                         const real *running_var, double eps, int K, int N, int C, int HW);
/* Synchronised batch norm (train mode over a group of processes, each holding a slice of the batch): sum
 * replaces the n doubles of values (per-channel sums over this process's slice, then its count) by their sums
 * over the group, the same bits on every process; 0, or -1 with hs_error(). The statistics (mean, variance)
 * and the backward pass's mean dy and mean dy xhat are then those of the whole batch; d_gamma and d_beta stay
 * this slice's share (the caller adds the shares). group NULL: the statistics of the N samples of the call. */
typedef struct BatchStatsGroup {
    int (*sum)(double *values, size_t n, void *user);
    void *user;
} BatchStatsGroup;
/* Fails (hs_error) when M = N*HW < 2 (over the group: the whole batch's M), as PyTorch does ("expected more
 * than 1 value per channel"). running_mean and running_var NULL: no running-statistics update. */
int FN(batchnorm_train_forward)(real *out /* (N,C,HW) */, real *mean /* (C) cache */, real *invstd /* (C) cache */,
                                const real *in /* (N,C,HW) */, const real *gamma, const real *beta,
                                real *running_mean /* (C) updated, or NULL */, real *running_var /* (C) or NULL */,
                                double momentum, double eps, int N, int C, int HW, const BatchStatsGroup *group);
/* Fails only over a group (its sum, or no memory). */
int FN(batchnorm_train_backward)(real *d_in /* (N,C,HW) or NULL */, real *d_gamma /* (C) += or NULL */,
                                 real *d_beta /* (C) += or NULL */, const real *d_out /* (N,C,HW) */, const real *in,
                                 const real *gamma, const real *mean, const real *invstd, int N, int C, int HW,
                                 const BatchStatsGroup *group);
void FN(batchnorm_train_tangent_forward)(real *t_out /* (N,K,C,HW) */, const real *t_in /* or NULL */,
                                         const real *t_gamma /* (K,ldw) or NULL */,
                                         const real *t_beta /* (K,ldw) or NULL */, size_t ldw, const real *in,
                                         const real *gamma, const real *mean, const real *invstd, int K, int N, int C,
                                         int HW);
int FN(batchnorm_train_tangent_backward)(real *td_in /* (N,K,C,HW) or NULL */, real *td_gamma /* (K,ldw) += */,
                                         real *td_beta /* (K,ldw) += */, size_t ldw,
                                         const real *td_out /* (N,K,C,HW) */, const real *d_out /* or NULL */,
                                         const real *t_in /* or NULL */, const real *t_gamma /* or NULL */,
                                         const real *in, const real *gamma, const real *mean, const real *invstd,
                                         int K, int N, int C, int HW);

/* ---- global average pool: out (N,C) = mean over the HW plane of in (N,C,HW). Linear: the tangent passes are
 * the forward/backward passes on N*K samples, and it adds no second-order term. ---- */
void FN(avgpool_forward)(real *out /* (N,C) */, const real *in /* (N,C,HW) */, int N, int C, int HW);
void FN(avgpool_backward)(real *d_in /* (N,C,HW) */, const real *d_out /* (N,C) */, int N, int C, int HW);
void FN(avgpool_tangent_forward)(real *t_out /* (N,K,C) */, const real *t_in /* (N,K,C,HW) */, int K, int N, int C,
                                 int HW);
void FN(avgpool_tangent_backward)(real *td_in /* (N,K,C,HW) */, const real *td_out /* (N,K,C) */, int K, int N, int C,
                                  int HW);

/* ---- residual add: out = a + b elementwise (out may alias a or b). Its backward passes d_out to both inputs
 * and its tangent passes are the same sum of tangents, so the one function serves all four passes (an
 * input's gradient from several consumers is summed with it too). ---- */
void FN(add_forward)(real *out /* (n) */, const real *a /* (n) */, const real *b /* (n) */, size_t n);

/* ---- pointwise activations: out = f(in) elementwise (ONNX LeakyRelu, Clip, Sigmoid, Tanh, Softplus, Erf) ----
 * Every pass takes the input `in` (never the output). f' and f'' at kinks follow PyTorch: LeakyRelu slope 1
 * where x > 0, else alpha; Clip passes the gradient where lo <= x <= hi (both inclusive; lo/hi may be
 * +-INFINITY; lo > hi gives hi everywhere, gradient 0, as torch.clamp); Softplus has beta 1 and threshold 20
 * (x > 20: f = x). tangent_backward: td_in = f'(in) td_out + f''(in) t_in d_out, the second term dropped when
 * d_out is NULL (Gauss-Newton) or t_in is NULL; t_in NULL in tangent_forward means zero.
 * out may alias in; d_in may alias d_out; t_out may alias t_in; td_in may alias td_out. */
typedef enum { PW_LEAKY_RELU, PW_CLIP, PW_SIGMOID, PW_TANH, PW_SOFTPLUS, PW_ERF } PointwiseKind;
typedef struct {
    PointwiseKind kind;
    double alpha;  /* LeakyRelu slope for x <= 0 */
    double lo, hi; /* Clip bounds, may be -INFINITY / +INFINITY */
} Pointwise;

void FN(pointwise_forward)(real *out /* (n) */, const real *in /* (n) */, size_t n, const Pointwise *f);
void FN(pointwise_backward)(real *d_in /* (n) */, const real *d_out /* (n) */, const real *in /* (n) */, size_t n,
                            const Pointwise *f);
void FN(pointwise_tangent_forward)(real *t_out /* (N,K,m) */, const real *t_in /* (N,K,m) or NULL */,
                                   const real *in /* (N,m) */, int K, int N, size_t m, const Pointwise *f);
void FN(pointwise_tangent_backward)(real *td_in /* (N,K,m) */, const real *td_out /* (N,K,m) */,
                                    const real *d_out /* (N,m) or NULL (GGN) */, const real *t_in /* (N,K,m) or NULL */,
                                    const real *in /* (N,m) */, int K, int N, size_t m, const Pointwise *f);

/* ---- binary Add/Sub/Mul/Div with numpy broadcasting of per-sample shapes (ONNX Add, Sub, Mul, Div) ----
 * Each operand is batched (a per-sample activation: values (N, size), tangents (N,K,size)) or unbatched (a
 * parameter: values (size), tangents rows of (K,ldw); or a constant: pass NULL tangents and NULL gradients).
 * Shapes are per sample (no batch dimension), right-aligned as numpy does; the output is always batched.
 * binary_setup fills op (0) or fails (-1, hs_error) when the shapes do not broadcast or exceed 4 dimensions;
 * it is precision-independent (shapes.h, shapes.c).
 * Gradients: batched operands are written (=), unbatched ones accumulate (+=), summed over broadcast
 * dimensions and over the batch in a fixed order (double accumulators; independent of the thread count).
 * Any tangent input may be NULL (zero); d_out NULL in tangent_backward: Gauss-Newton (the d_out terms of Mul
 * and Div dropped). With q = 1/b, the Div terms are:
 *   t_out = q t_a - a q^2 t_b,   d_a = q d_out,   d_b = -a q^2 d_out,
 *   td_a = q td_out - q^2 t_b d_out,   td_b = -a q^2 td_out - q^2 t_a d_out + 2 a q^3 t_b d_out. */

void FN(binary_forward)(real *out /* (N,out) */, const real *a /* (N,a) or (a) */, const real *b /* (N,b) or (b) */,
                        int N, const Binary *op);
void FN(binary_backward)(real *d_a /* (N,a) =, or (a) += when unbatched, or NULL */,
                         real *d_b /* (N,b) =, or (b) +=, or NULL */, const real *d_out /* (N,out) */,
                         const real *a /* (N,a) or (a) */, const real *b /* (N,b) or (b) */, int N, const Binary *op);
void FN(binary_tangent_forward)(real *t_out /* (N,K,out) */,
                                const real *t_a /* (N,K,a) batched, (K,ldw) rows: (a) unbatched, or NULL */,
                                const real *t_b /* (N,K,b), (K,ldw) rows: (b), or NULL */, size_t ldw,
                                const real *a /* (N,a) or (a) */, const real *b /* (N,b) or (b) */, int K, int N,
                                const Binary *op);
void FN(binary_tangent_backward)(real *td_a /* (N,K,a) = batched, (K,ldw) rows += unbatched, or NULL */,
                                 real *td_b /* (N,K,b) =, (K,ldw) rows +=, or NULL */, size_t ldw,
                                 const real *td_out /* (N,K,out) */, const real *d_out /* (N,out) or NULL (GGN) */,
                                 const real *t_a /* like t_a of tangent_forward, or NULL */,
                                 const real *t_b /* or NULL */, const real *a /* (N,a) or (a) */,
                                 const real *b /* (N,b) or (b) */, int K, int N, const Binary *op);

/* ---- concat along a per-sample axis: out (N, outer, sum inner) from n_in (<= 16) inputs (N, outer, inner[i]).
 * Axis a of per-sample shape s: outer = prod s[0..a-1], inner[i] = prod of input i's s[a..]. Linear: the
 * tangent passes are the same on N*K samples, a NULL input tangent meaning zeros; NULL d_ins/td_ins entries are
 * skipped. Gradients are written (=). ---- */
#define CONCAT_MAX_INPUTS 16
void FN(concat_forward)(real *out /* (N,outer,sum inner) */, const real *const *ins /* n_in x (N,outer,inner[i]) */,
                        const size_t *inner /* (n_in) */, int n_in, size_t outer, int N);
void FN(concat_backward)(real *const *d_ins /* n_in x (N,outer,inner[i]), entries may be NULL */,
                         const real *d_out /* (N,outer,sum inner) */, const size_t *inner /* (n_in) */, int n_in,
                         size_t outer, int N);
void FN(concat_tangent_forward)(real *t_out /* (N,K,outer,sum inner) */,
                                const real *const *t_ins /* n_in x (N,K,outer,inner[i]), entries may be NULL */,
                                const size_t *inner /* (n_in) */, int n_in, size_t outer, int K, int N);
void FN(concat_tangent_backward)(real *const *td_ins /* n_in x (N,K,outer,inner[i]), entries may be NULL */,
                                 const real *td_out /* (N,K,outer,sum inner) */, const size_t *inner /* (n_in) */,
                                 int n_in, size_t outer, int K, int N);

/* ---- matmul by a parameter stored (In,O): out = in W + b (ONNX MatMul with an initializer, PyTorch x @ W;
 * ONNX Gemm with transB = 0). Same argument order and conventions as linear. ---- */
void FN(matmul_forward)(real *out /* (N,O) */, const real *in /* (N,In) */, const real *weight /* (In,O) */,
                        const real *bias /* (O) or NULL */, int N, int In, int O);
void FN(matmul_backward)(real *d_in /* (N,In) or NULL */, real *d_weight /* (In,O) += or NULL */,
                         real *d_bias /* (O) += or NULL */, const real *d_out /* (N,O) */, const real *in /* (N,In) */,
                         const real *weight /* (In,O) */, int N, int In, int O);
void FN(matmul_tangent_forward)(real *t_out /* (N,K,O) */, const real *t_in /* (N,K,In) or NULL */,
                                const real *t_weight /* (K,ldw) rows: (In,O) or NULL */,
                                const real *t_bias /* (K,ldw) rows: (O) or NULL */, size_t ldw,
                                const real *in /* (N,In) */, const real *weight /* (In,O) */, int K, int N, int In,
                                int O);
void FN(matmul_tangent_backward)(real *td_in /* (N,K,In) or NULL */, real *td_weight /* (K,ldw) += or NULL */,
                                 real *td_bias /* (K,ldw) += or NULL */, size_t ldw,
                                 const real *td_out /* (N,K,O) */, const real *d_out /* (N,O) or NULL */,
                                 const real *t_in /* (N,K,In) or NULL */, const real *t_weight /* (K,ldw) or NULL */,
                                 const real *in /* (N,In) */, const real *weight /* (In,O) */, int K, int N, int In,
                                 int O);
/* ---- squared error: loss = scale * sum_n sum_j (z_nj - y_nj)^2 on outputs z (N,C), real targets y (N,C).
 * With scale = 1/N: PyTorch's MSELoss(reduction='mean') times C. The loss's Hessian is 2 scale I, so the
 * tangent pass is the same for the Hessian and the Gauss-Newton matrix. ---- */
void FN(mse_forward)(double *loss, const real *z /* (N,C) */, const real *y /* (N,C) */, double scale, int N, int C);
void FN(mse_backward)(real *d_z /* (N,C) */, const real *z /* (N,C) */, const real *y /* (N,C) */, double scale,
                      int N, int C);
void FN(mse_tangent_backward)(real *td_z /* (N,K,C) */, const real *t_z /* (N,K,C) */, double scale, int K, int N,
                              int C);

/* ---- the diagonal pass (see the header comment): diag_w, diag_b (double) += sum_n sum_k g_nk^2 ---- */
/* linear: g_nk = td_out[n,k]^T in[n] (no weight sharing within a sample), so the sum is the product of the
 * squares: diag_W[o,i] += sum_n (sum_k td_out[n,k,o]^2) in[n,i]^2. Scratch on the calling thread. */
int FN(linear_diag)(double *diag_w /* (O,In) += */, double *diag_b /* (O) += or NULL */,
                    const real *td_out /* (N,K,O) */, const real *in /* (N,In) */, int K, int N, int In, int O);
int FN(matmul_diag)(double *diag_w /* (In,O) += */, double *diag_b /* (O) += or NULL */,
                    const real *td_out /* (N,K,O) */, const real *in /* (N,In) */, int K, int N, int In, int O);
/* conv2d: the weight is shared by the output positions, so g_nk = td_out[n,k] (O,L) x col(in[n])^T is a GEMM
 * per sample (all K vectors in one), squared after the sum over positions. */
int FN(conv2d_diag)(double *diag_w /* (O,C/groups,kh,kw) += */, double *diag_b /* (O) += or NULL */,
                    const real *td_out /* (N,K,O,Ho,Wo) */, const real *in /* (N,C,H,W) */, int K, int N,
                    const ConvShape *s);
/* batch norm with running statistics: g_gamma = sum_hw td_out xhat, g_beta = sum_hw td_out per channel. (With
 * batch statistics the samples of a chunk are coupled and per-sample gradients do not exist.) */
void FN(batchnorm_eval_diag)(double *diag_gamma /* (C) += */, double *diag_beta /* (C) += */,
                             const real *td_out /* (N,K,C,HW) */, const real *in /* (N,C,HW) */,
                             const real *running_mean /* (C) */, const real *running_var /* (C) */, double eps, int K,
                             int N, int C, int HW);
/* binary ops: the unbatched (parameter) operands' per-sample gradients, sample by sample; diag_a / diag_b NULL
 * for an operand that is batched or not a parameter. Scratch on the calling thread. */
int FN(binary_diag)(double *diag_a /* (a) += or NULL */, double *diag_b /* (b) += or NULL */,
                    const real *td_out /* (N,K,out) */, const real *a /* (N,a) or (a) */,
                    const real *b /* (N,b) or (b) */, int K, int N, const Binary *op);

#endif
