/* resnet.c: torchvision's ResNet-18 (BasicBlock 2-2-2-2) and ResNet-50 (Bottleneck 3-4-6-3) for 10 classes,
 * with torchvision's tensor names and parameter order, on (N,3,32,32) images:
 *   conv1 7x7/2 pad 3 (no bias) -> bn1 -> relu -> maxpool 3x3/2 pad 1 -> layer1..layer4 -> global average pool
 *   -> fc. A Bottleneck is conv1 1x1 -> bn1 -> relu -> conv2 3x3 (stride) -> bn2 -> relu -> conv3 1x1 (x4) ->
 *   bn3 -> (+ identity or downsample = conv 1x1 stride + bn) -> relu; a BasicBlock is conv1 3x3 (stride) ->
 *   bn1 -> relu -> conv2 3x3 -> bn2 -> (+ identity/downsample) -> relu.
 * At 32x32 the stages run at 8x8, 4x4, 2x2 and 1x1.
 *
 * The network is a list of units, each conv (no bias) -> batch norm [-> + residual] [-> relu], in a forward
 * order where every activation's consumers come after it (the downsample unit runs before the block's last
 * conv). Each unit is one "layer" for second-order work, numbered in parameter order (conv1, bn1 of a block's
 * first conv, ..., downsample last), and fc is the last layer.
 *
 * Batch norm: the forward pass uses batch statistics when m->training (and then updates the running
 * statistics, momentum 0.1, and num_batches_tracked) or when m->bn_mode == BN_BATCH (no update); otherwise
 * the running statistics. The backward and tangent passes differentiate the mode of the last forward pass,
 * so with batch statistics the Hessian is that of the chunk's loss as a function of the parameters through
 * the batch statistics too.
 *
 * Memory: the forward pass keeps the conv outputs z and the unit outputs a, the backward pass dy (gradient at
 * each batch norm's output; the gradient at each conv output is recomputed from dy where a tangent backward
 * pass needs it); the tangent passes keep t_z, t_a and td per unit, for K directions. ResNet-50 at 32x32 has
 * 226,816 unit outputs per sample, so a chunk of 100 needs 275 MiB (f32; 550 MiB f64) for the primal passes
 * and 275 MiB more per direction for a product, plus small per-chunk work buffers.
 * Tangents of activations that no direction reaches are skipped (NULL): a product whose directions touch
 * only late layers starts there, and with start_layer the tangent backward pass stops where no earlier
 * tensor's rows are wanted (unit.upmax: the largest layer an activation depends on). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ops/blas.h"
#include "../ops/ops.h"
#include "model.h"

#define RESNET_MAX_UNITS 128
#define BN_MOMENTUM 0.1
#define BN_EPS 1e-5
#define IMAGE (-1) /* activation id of the input image; units are 0..U-1; the max-pool output is U */

typedef struct {
    int w, g, b;      /* tensor indices: conv weight, batch-norm weight and bias */
    int rm, rv;       /* buffer indices: running mean and variance */
    int layer;
    ConvShape cs;
    int in, res;      /* activation ids of the input and of the residual added before the relu (-2: none) */
    int relu;
    int C, HW;        /* output channels and plane size */
    size_t size;      /* per-sample output size C*HW */
    size_t off;       /* offset of this unit's per-sample block in the activation arrays */
    int upmax;        /* largest layer among the units this unit's output depends on (itself included) */
} Unit;

typedef struct {
    int U;
    Unit units[RESNET_MAX_UNITS]; /* forward order */
    PoolShape ps;                 /* stem max-pool */
    size_t pool_size;             /* per sample */
    int pool_upmax;
    int fc_w, fc_b, fc_layer, F; /* fc and its input width */
    int last;                     /* unit feeding the average pool */
    size_t total;                 /* sum of unit sizes per sample */
    size_t max_size;              /* largest activation per sample (units and pool) */
    int maxC;
    int batch;                    /* the last forward pass used batch statistics */
    /* per-chunk buffers */
    int capacity_N, capacity_NK;
    real *z, *a, *dy;             /* (N * total): unit u at N*off */
    real *mean, *invstd;          /* (sum of C): batch statistics */
    size_t *coff;                 /* per unit offset into mean/invstd */
    real *p, *dp;                 /* (N * pool_size) */
    int32_t *argmax;
    real *feat, *dfeat;           /* (N, F) */
    real *tmp, *dz;               /* (N * max_size) */
    real *scratch_g;              /* (2 * maxC): throw-away gamma/beta gradients */
    real *tz, *ta, *td;           /* (N*K * total) */
    real *tp, *tdp;               /* (N*K * pool_size) */
    real *tfeat, *tdfeat;         /* (N*K, F) */
    real *ttmp, *tdz;             /* (N*K * max_size) */
    const real *tz_cur[RESNET_MAX_UNITS], *ta_cur[RESNET_MAX_UNITS], *tp_cur; /* NULL: zero tangent */
    unsigned char init[RESNET_MAX_UNITS + 1]; /* gradient accumulation started (units, then pool) */
} ResNetState;

/* ---------------------------------------------------------------- building the tables */

typedef struct {
    Model *m;
    ResNetState *s;
    int layer;
} Builder;

static int FN(add_conv_bn)(Builder *bd, const char *conv_name, const char *bn_name, int C, int H, int W, int O, int k,
                           int stride, int pad, int in, int res, int relu, int *unit_out) {
    Model *m = bd->m;
    ResNetState *s = bd->s;
    if (s->U >= RESNET_MAX_UNITS) return hs_error("resnet: too many units");
    Unit *u = &s->units[s->U];
    memset(u, 0, sizeof *u);
    char name[96];
    int64_t wshape[4] = {O, C, k, k}, cshape[1] = {O};
    snprintf(name, sizeof name, "%s.weight", conv_name);
    u->w = m->num_tensors;
    HS_TRY(FN(model_add_tensor)(m, name, 4, wshape, bd->layer, C * k * k, TENSOR_WEIGHT_KAIMING_OUT));
    snprintf(name, sizeof name, "%s.weight", bn_name);
    u->g = m->num_tensors;
    HS_TRY(FN(model_add_tensor)(m, name, 1, cshape, bd->layer, 0, TENSOR_BN_WEIGHT));
    snprintf(name, sizeof name, "%s.bias", bn_name);
    u->b = m->num_tensors;
    HS_TRY(FN(model_add_tensor)(m, name, 1, cshape, bd->layer, 0, TENSOR_BN_BIAS));
    snprintf(name, sizeof name, "%s.running_mean", bn_name);
    u->rm = m->num_buffers;
    HS_TRY(FN(model_add_tensor)(m, name, 1, cshape, bd->layer, 0, TENSOR_RUNNING_MEAN));
    snprintf(name, sizeof name, "%s.running_var", bn_name);
    u->rv = m->num_buffers;
    HS_TRY(FN(model_add_tensor)(m, name, 1, cshape, bd->layer, 0, TENSOR_RUNNING_VAR));
    u->layer = bd->layer++;
    u->cs = conv2d_shape(C, H, W, O, k, stride, pad);
    u->in = in;
    u->res = res;
    u->relu = relu;
    u->C = O;
    u->HW = u->cs.Ho * u->cs.Wo;
    u->size = (size_t)O * u->HW;
    *unit_out = s->U++;
    return 0;
}

/* Moves unit `from` to position `to` (< from) of the forward order, renumbering activation ids. */
static void FN(move_unit)(ResNetState *s, int from, int to) {
    Unit moved = s->units[from];
    for (int i = from; i > to; i--) s->units[i] = s->units[i - 1];
    s->units[to] = moved;
    for (int i = 0; i < s->U; i++) {
        int *ids[2] = {&s->units[i].in, &s->units[i].res};
        for (int j = 0; j < 2; j++) {
            int id = *ids[j];
            if (id < 0) continue;
            if (id == from) *ids[j] = to;
            else if (id >= to && id < from) *ids[j] = id + 1;
        }
    }
}

static int FN(resnet_build)(Model *m, int bottleneck, const int blocks[4]) {
    ResNetState *s = hs_calloc(1, sizeof(ResNetState));
    if (!s) return -1;
    m->state = s;
    Builder bd = {m, s, 0};
    int stem;
    HS_TRY(FN(add_conv_bn)(&bd, "conv1", "bn1", 3, 32, 32, 64, 7, 2, 3, IMAGE, -2, 1, &stem));
    s->ps = maxpool_shape(64, s->units[stem].cs.Ho, s->units[stem].cs.Wo, 3, 2, 1);
    s->pool_size = (size_t)64 * s->ps.Ho * s->ps.Wo;
    /* Blocks refer to the pool output by a placeholder id, fixed once the unit count is known. */
    const int POOL_PLACEHOLDER = 100000;
    int cur = POOL_PLACEHOLDER, H = s->ps.Ho, inplanes = 64;
    int expansion = bottleneck ? 4 : 1;
    for (int stage = 0; stage < 4; stage++) {
        int planes = 64 << stage;
        for (int j = 0; j < blocks[stage]; j++) {
            int stride = (j == 0 && stage > 0) ? 2 : 1, out = planes * expansion;
            int has_ds = stride != 1 || inplanes != out;
            char cn[64], bn[64];
            int u1, u2, u3 = -1, uds = -1, Hout = (H - 1) / stride + 1;
            /* parameter order: conv1 bn1 conv2 bn2 [conv3 bn3] [downsample] */
            snprintf(cn, sizeof cn, "layer%d.%d.conv1", stage + 1, j);
            snprintf(bn, sizeof bn, "layer%d.%d.bn1", stage + 1, j);
            if (bottleneck) {
                HS_TRY(FN(add_conv_bn)(&bd, cn, bn, inplanes, H, H, planes, 1, 1, 0, cur, -2, 1, &u1));
                snprintf(cn, sizeof cn, "layer%d.%d.conv2", stage + 1, j);
                snprintf(bn, sizeof bn, "layer%d.%d.bn2", stage + 1, j);
                HS_TRY(FN(add_conv_bn)(&bd, cn, bn, planes, H, H, planes, 3, stride, 1, u1, -2, 1, &u2));
                snprintf(cn, sizeof cn, "layer%d.%d.conv3", stage + 1, j);
                snprintf(bn, sizeof bn, "layer%d.%d.bn3", stage + 1, j);
                HS_TRY(FN(add_conv_bn)(&bd, cn, bn, planes, Hout, Hout, out, 1, 1, 0, u2, cur, 1, &u3));
            } else {
                HS_TRY(FN(add_conv_bn)(&bd, cn, bn, inplanes, H, H, planes, 3, stride, 1, cur, -2, 1, &u1));
                snprintf(cn, sizeof cn, "layer%d.%d.conv2", stage + 1, j);
                snprintf(bn, sizeof bn, "layer%d.%d.bn2", stage + 1, j);
                HS_TRY(FN(add_conv_bn)(&bd, cn, bn, planes, Hout, Hout, planes, 3, 1, 1, u1, cur, 1, &u3));
            }
            if (has_ds) {
                snprintf(cn, sizeof cn, "layer%d.%d.downsample.0", stage + 1, j);
                snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", stage + 1, j);
                HS_TRY(FN(add_conv_bn)(&bd, cn, bn, inplanes, H, H, out, 1, stride, 0, cur, -2, 0, &uds));
                /* forward order: the downsample runs before the block's last unit, which adds it */
                FN(move_unit)(s, uds, u3);
                uds = u3;
                u3 = u3 + 1;
                s->units[u3].res = uds;
            }
            cur = u3;
            H = Hout;
            inplanes = out;
        }
    }
    s->last = cur;
    s->F = inplanes;
    int64_t fw[2] = {10, inplanes}, fb[1] = {10};
    s->fc_layer = bd.layer;
    s->fc_w = m->num_tensors;
    HS_TRY(FN(model_add_tensor)(m, "fc.weight", 2, fw, bd.layer, inplanes, TENSOR_WEIGHT));
    s->fc_b = m->num_tensors;
    HS_TRY(FN(model_add_tensor)(m, "fc.bias", 1, fb, bd.layer, inplanes, TENSOR_BIAS));
    /* pool id, offsets, dependency ranges */
    size_t coff = 0;
    s->coff = hs_calloc((size_t)s->U, sizeof(size_t));
    if (!s->coff) return -1;
    s->max_size = s->pool_size;
    s->pool_upmax = s->units[stem].layer;
    for (int i = 0; i < s->U; i++) {
        Unit *u = &s->units[i];
        if (u->in == POOL_PLACEHOLDER) u->in = s->U;
        if (u->res == POOL_PLACEHOLDER) u->res = s->U;
        u->off = s->total;
        s->total += u->size;
        if (u->size > s->max_size) s->max_size = u->size;
        if (u->C > s->maxC) s->maxC = u->C;
        s->coff[i] = coff;
        coff += (size_t)u->C;
        int up = u->layer;
        int ids[2] = {u->in, u->res};
        for (int j = 0; j < 2; j++) {
            int id = ids[j];
            if (id == IMAGE || id == -2) continue;
            int v = id == s->U ? s->pool_upmax : s->units[id].upmax;
            if (v > up) up = v;
        }
        u->upmax = up;
    }
    s->mean = hs_malloc(sizeof(real) * (coff ? coff : 1));
    s->invstd = hs_malloc(sizeof(real) * (coff ? coff : 1));
    s->scratch_g = hs_malloc(sizeof(real) * 2 * (size_t)s->maxC);
    if (!s->mean || !s->invstd || !s->scratch_g) return -1;
    return 0;
}

static int FN(resnet18_init)(Model *m) {
    static const int blocks[4] = {2, 2, 2, 2};
    return FN(resnet_build)(m, 0, blocks);
}

static int FN(resnet50_init)(Model *m) {
    static const int blocks[4] = {3, 4, 6, 3};
    return FN(resnet_build)(m, 1, blocks);
}

static void FN(free_tangents)(ResNetState *s) {
    real **t[] = {&s->tz, &s->ta, &s->td, &s->tp, &s->tdp, &s->tfeat, &s->tdfeat, &s->ttmp, &s->tdz};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        free(*t[i]);
        *t[i] = NULL;
    }
    s->capacity_NK = 0;
}

static void FN(free_primal)(ResNetState *s) {
    real **p[] = {&s->z, &s->a, &s->dy, &s->p, &s->dp, &s->feat, &s->dfeat, &s->tmp, &s->dz};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
        free(*p[i]);
        *p[i] = NULL;
    }
    free(s->argmax);
    s->argmax = NULL;
    s->capacity_N = 0;
}

static void FN(resnet_free_state)(Model *m) {
    ResNetState *s = m->state;
    if (!s) return;
    FN(free_primal)(s);
    FN(free_tangents)(s);
    free(s->mean);
    free(s->invstd);
    free(s->coff);
    free(s->scratch_g);
    free(s);
    m->state = NULL;
}

static int FN(reserve)(ResNetState *s, int N) {
    if (N <= s->capacity_N) return 0;
    FN(free_primal)(s);
    size_t n = (size_t)N;
    real **p[] = {&s->z, &s->a, &s->dy, &s->p, &s->dp, &s->feat, &s->dfeat, &s->tmp, &s->dz};
    const size_t sizes[] = {s->total, s->total, s->total, s->pool_size, s->pool_size, (size_t)s->F, (size_t)s->F,
                            s->max_size, s->max_size};
    HS_TRY(FN(model_alloc_buffers)(p, sizes, (int)(sizeof p / sizeof p[0]), n));
    s->argmax = hs_malloc(sizeof(int32_t) * s->pool_size * n);
    if (!s->argmax) return -1;
    s->capacity_N = N;
    return 0;
}

static int FN(reserve_tangents)(ResNetState *s, int NK) {
    if (NK <= s->capacity_NK) return 0;
    FN(free_tangents)(s);
    size_t n = (size_t)NK;
    real **t[] = {&s->tz, &s->ta, &s->td, &s->tp, &s->tdp, &s->tfeat, &s->tdfeat, &s->ttmp, &s->tdz};
    const size_t sizes[] = {s->total, s->total, s->total, s->pool_size, s->pool_size, (size_t)s->F, (size_t)s->F,
                            s->max_size, s->max_size};
    HS_TRY(FN(model_alloc_buffers)(t, sizes, (int)(sizeof t / sizeof t[0]), n));
    s->capacity_NK = NK;
    return 0;
}

/* ---------------------------------------------------------------- helpers */

#define PRM(t) (m->params + m->tensors[t].offset)
#define BUF(b) (m->buffer_values + m->buffers[b].offset)
#define V(t) FN(model_direction)(m, v, t)
#define ACC(base, t) ((base) ? (base) + m->tensors[t].offset : NULL) /* NULL base: no parameter gradient */

/* Primal activation of id for the current chunk (N samples). */
static real *FN(act)(Model *m, ResNetState *s, int id) {
    if (id == IMAGE) return m->x;
    if (id == s->U) return s->p;
    return s->a + (size_t)m->N * s->units[id].off;
}
static size_t FN(act_size)(const ResNetState *s, int id) { return id == s->U ? s->pool_size : s->units[id].size; }
static real *FN(grad_buf)(Model *m, ResNetState *s, int id) {
    return id == s->U ? s->dp : s->dy + (size_t)m->N * s->units[id].off;
}
static real *FN(tan_buf)(Model *m, ResNetState *s, real *base, int u) {
    return base + (size_t)m->N * m->K * s->units[u].off;
}
static real *FN(td_buf)(Model *m, ResNetState *s, int id) {
    return id == s->U ? s->tdp : FN(tan_buf)(m, s, s->td, id);
}
static const real *FN(t_act)(const ResNetState *s, int id) {
    if (id == IMAGE) return NULL;
    if (id == s->U) return s->tp_cur;
    return s->ta_cur[id];
}
static int FN(upmax_of)(const ResNetState *s, int id) {
    if (id == IMAGE) return -1;
    return id == s->U ? s->pool_upmax : s->units[id].upmax;
}

/* target (n) = src, or += src when accumulation has started for activation id. */
static void FN(accumulate)(ResNetState *s, int id, real *target, const real *src, size_t n) {
    if (s->init[id]) {
        FN(add_forward)(target, target, src, n);
    } else {
        memcpy(target, src, sizeof(real) * n);
        s->init[id] = 1;
    }
}


/* ---------------------------------------------------------------- the four passes */

static int FN(resnet_forward)(Model *m, const real *x, int N) {
    (void)x;
    ResNetState *s = m->state;
    HS_TRY(FN(reserve)(s, N));
    s->batch = m->training || m->bn_mode == BN_BATCH;
    for (int i = 0; i < s->U; i++) {
        const Unit *u = &s->units[i];
        real *z = s->z + (size_t)N * u->off, *a = s->a + (size_t)N * u->off;
        HS_TRY(FN(conv2d_forward)(z, FN(act)(m, s, u->in), PRM(u->w), NULL, N, &u->cs));
        if (s->batch) {
            HS_TRY(FN(batchnorm_train_forward)(a, s->mean + s->coff[i], s->invstd + s->coff[i], z, PRM(u->g),
                                               PRM(u->b), m->training ? BUF(u->rm) : NULL,
                                               m->training ? BUF(u->rv) : NULL, BN_MOMENTUM, BN_EPS, N, u->C, u->HW));
        } else {
            FN(batchnorm_eval_forward)(a, z, PRM(u->g), PRM(u->b), BUF(u->rm), BUF(u->rv), BN_EPS, N, u->C, u->HW);
        }
        size_t n = (size_t)N * u->size;
        if (u->res != -2) FN(add_forward)(a, a, FN(act)(m, s, u->res), n);
        if (u->relu) FN(relu_forward)(a, a, n);
        if (i == 0) FN(maxpool_forward)(s->p, s->argmax, a, N, &s->ps);
    }
    const Unit *last = &s->units[s->last];
    FN(avgpool_forward)(s->feat, FN(act)(m, s, s->last), N, s->F, last->HW);
    FN(linear_forward)(m->logits, s->feat, PRM(s->fc_w), PRM(s->fc_b), N, s->F, m->classes);
    if (m->training) m->batches_tracked++;
    return 0;
}

/* dz (N, C, HW) = gradient at unit i's conv output from dy; accumulates gamma/beta gradients into gg, gb. */
static void FN(bn_backward)(Model *m, ResNetState *s, int i, real *dz, real *gg, real *gb) {
    const Unit *u = &s->units[i];
    int N = m->N;
    const real *z = s->z + (size_t)N * u->off, *dy = s->dy + (size_t)N * u->off;
    if (s->batch)
        FN(batchnorm_train_backward)(dz, gg, gb, dy, z, PRM(u->g), s->mean + s->coff[i], s->invstd + s->coff[i], N,
                                     u->C, u->HW);
    else
        FN(batchnorm_eval_backward)(dz, gg, gb, dy, z, PRM(u->g), BUF(u->rm), BUF(u->rv), BN_EPS, N, u->C, u->HW);
}

static int FN(resnet_backward)(Model *m, real *grad) {
    ResNetState *s = m->state;
    int N = m->N;
    memset(s->init, 0, sizeof s->init);
    const Unit *last = &s->units[s->last];
    FN(linear_backward)(s->dfeat, ACC(grad, s->fc_w), ACC(grad, s->fc_b), m->d_logits, s->feat, PRM(s->fc_w), N,
                        s->F, m->classes);
    FN(avgpool_backward)(FN(grad_buf)(m, s, s->last), s->dfeat, N, s->F, last->HW);
    s->init[s->last] = 1;
    for (int i = s->U - 1; i >= 0; i--) {
        const Unit *u = &s->units[i];
        size_t n = (size_t)N * u->size;
        real *dy = s->dy + (size_t)N * u->off;
        if (i == 0) FN(maxpool_backward)(dy, s->dp, s->argmax, N, &s->ps);
        if (u->relu) FN(relu_backward)(dy, dy, FN(act)(m, s, i), n);
        if (u->res != -2) FN(accumulate)(s, u->res, FN(grad_buf)(m, s, u->res), dy, n);
        FN(bn_backward)(m, s, i, s->dz, ACC(grad, u->g), ACC(grad, u->b));
        real *d_in = NULL;
        if (u->in != IMAGE) d_in = s->init[u->in] ? s->tmp : FN(grad_buf)(m, s, u->in);
        HS_TRY(FN(conv2d_backward)(d_in, ACC(grad, u->w), NULL, s->dz, FN(act)(m, s, u->in), PRM(u->w), N, &u->cs));
        if (d_in == s->tmp) {
            real *g = FN(grad_buf)(m, s, u->in);
            FN(add_forward)(g, g, s->tmp, (size_t)N * FN(act_size)(s, u->in));
        } else if (d_in) {
            s->init[u->in] = 1;
        }
    }
    return 0;
}

static int FN(resnet_tangent_forward)(Model *m, const real *v, int K, int start) {
    (void)start; /* directions below start are zero: their tangents are skipped through model_direction */
    ResNetState *s = m->state;
    int N = m->N;
    size_t P = m->num_params;
    HS_TRY(FN(reserve_tangents)(s, N * K));
    s->tp_cur = NULL;
    for (int i = 0; i < s->U; i++) {
        const Unit *u = &s->units[i];
        const real *t_in = FN(t_act)(s, u->in), *tw = V(u->w), *tg = V(u->g), *tb = V(u->b);
        const real *t_res = u->res != -2 ? FN(t_act)(s, u->res) : NULL;
        real *tz = FN(tan_buf)(m, s, s->tz, i), *ta = FN(tan_buf)(m, s, s->ta, i);
        const real *z = s->z + (size_t)N * u->off;
        size_t nt = (size_t)N * K * u->size;
        s->tz_cur[i] = NULL;
        if (t_in || tw) {
            HS_TRY(FN(conv2d_tangent_forward)(tz, t_in, tw, NULL, P, FN(act)(m, s, u->in), PRM(u->w), K, N, &u->cs));
            s->tz_cur[i] = tz;
        }
        s->ta_cur[i] = NULL;
        if (s->tz_cur[i] || tg || tb) {
            if (s->batch)
                FN(batchnorm_train_tangent_forward)(ta, s->tz_cur[i], tg, tb, P, z, PRM(u->g), s->mean + s->coff[i],
                                                    s->invstd + s->coff[i], K, N, u->C, u->HW);
            else
                FN(batchnorm_eval_tangent_forward)(ta, s->tz_cur[i], tg, tb, P, z, PRM(u->g), BUF(u->rm),
                                                   BUF(u->rv), BN_EPS, K, N, u->C, u->HW);
            if (t_res) FN(add_forward)(ta, ta, t_res, nt);
            s->ta_cur[i] = ta;
        } else if (t_res) {
            memcpy(ta, t_res, sizeof(real) * nt);
            s->ta_cur[i] = ta;
        }
        if (s->ta_cur[i] && u->relu) FN(relu_tangent_forward)(ta, ta, FN(act)(m, s, i), K, N, u->size);
        if (i == 0 && s->ta_cur[0]) {
            FN(maxpool_tangent_forward)(s->tp, s->ta_cur[0], s->argmax, K, N, &s->ps);
            s->tp_cur = s->tp;
        }
    }
    const Unit *last = &s->units[s->last];
    const real *tf = NULL;
    if (s->ta_cur[s->last]) {
        FN(avgpool_tangent_forward)(s->tfeat, s->ta_cur[s->last], K, N, s->F, last->HW);
        tf = s->tfeat;
    }
    FN(linear_tangent_forward)(m->t_logits, tf, V(s->fc_w), V(s->fc_b), P, s->feat, PRM(s->fc_w), K, N, s->F,
                               m->classes);
    return 0;
}

static int FN(resnet_tangent_backward)(Model *m, const real *v, int K, int start, Curvature curvature, real *hv) {
    ResNetState *s = m->state;
    int N = m->N, ggn = curvature == CURVATURE_GGN;
    size_t P = m->num_params;
    memset(s->init, 0, sizeof s->init);
    const Unit *last = &s->units[s->last];
    int need_feat = last->upmax >= start;
    const real *tf = s->ta_cur[s->last] ? s->tfeat : NULL;
    FN(linear_tangent_backward)(need_feat ? s->tdfeat : NULL, ACC(hv, s->fc_w), ACC(hv, s->fc_b), P, m->td_logits,
                                ggn ? NULL : m->d_logits, tf, V(s->fc_w), s->feat, PRM(s->fc_w), K, N, s->F,
                                m->classes);
    if (!need_feat) return 0;
    FN(avgpool_tangent_backward)(FN(td_buf)(m, s, s->last), s->tdfeat, K, N, s->F, last->HW);
    s->init[s->last] = 1;
    for (int i = s->U - 1; i >= 0; i--) {
        const Unit *u = &s->units[i];
        if (u->upmax < start) continue;
        size_t nt = (size_t)N * K * u->size;
        real *td = FN(td_buf)(m, s, i);
        if (i == 0) FN(maxpool_tangent_backward)(td, s->tdp, s->argmax, K, N, &s->ps);
        if (u->relu) FN(relu_tangent_backward)(td, td, FN(act)(m, s, i), K, N, u->size);
        if (u->res != -2 && FN(upmax_of)(s, u->res) >= start) FN(accumulate)(s, u->res, FN(td_buf)(m, s, u->res), td, nt);
        int need_in = u->in != IMAGE && FN(upmax_of)(s, u->in) >= start;
        if (u->layer < start && !need_in) continue;
        const real *z = s->z + (size_t)N * u->off, *dy = ggn ? NULL : s->dy + (size_t)N * u->off;
        if (s->batch) {
            HS_TRY(FN(batchnorm_train_tangent_backward)(s->tdz, ACC(hv, u->g), ACC(hv, u->b), P, td, dy,
                                                        s->tz_cur[i], V(u->g), z, PRM(u->g), s->mean + s->coff[i],
                                                        s->invstd + s->coff[i], K, N, u->C, u->HW));
        } else {
            FN(batchnorm_eval_tangent_backward)(s->tdz, ACC(hv, u->g), ACC(hv, u->b), P, td, dy, s->tz_cur[i], V(u->g),
                                                z, PRM(u->g), BUF(u->rm), BUF(u->rv), BN_EPS, K, N, u->C, u->HW);
        }
        const real *dz = NULL;
        if (!ggn) { /* the conv's first-order output gradient, recomputed from dy */
            memset(s->scratch_g, 0, sizeof(real) * 2 * (size_t)u->C);
            FN(bn_backward)(m, s, i, s->dz, s->scratch_g, s->scratch_g + u->C);
            dz = s->dz;
        }
        real *td_in = NULL;
        if (need_in) td_in = s->init[u->in] ? s->ttmp : FN(td_buf)(m, s, u->in);
        HS_TRY(FN(conv2d_tangent_backward)(td_in, ACC(hv, u->w), NULL, P, s->tdz, dz, FN(t_act)(s, u->in), V(u->w),
                                           FN(act)(m, s, u->in), PRM(u->w), K, N, &u->cs));
        if (td_in == s->ttmp) {
            real *t = FN(td_buf)(m, s, u->in);
            FN(add_forward)(t, t, s->ttmp, (size_t)N * K * FN(act_size)(s, u->in));
        } else if (td_in) {
            s->init[u->in] = 1;
        }
    }
    return 0;
}

const ModelArch FN(resnet18_arch) = {
    .name = "resnet18",
    .init = FN(resnet18_init),
    .free_state = FN(resnet_free_state),
    .forward = FN(resnet_forward),
    .backward = FN(resnet_backward),
    .grad_optional = 1,
    .tangent_forward = FN(resnet_tangent_forward),
    .tangent_backward = FN(resnet_tangent_backward),
};

const ModelArch FN(resnet50_arch) = {
    .name = "resnet50",
    .init = FN(resnet50_init),
    .free_state = FN(resnet_free_state),
    .forward = FN(resnet_forward),
    .backward = FN(resnet_backward),
    .grad_optional = 1,
    .tangent_forward = FN(resnet_tangent_forward),
    .tangent_backward = FN(resnet_tangent_backward),
};
