/* executor.c: the one executor: runs the four passes (forward, backward, tangent forward, tangent backward)
 * of any network given as a Graph (src/graph/graph.h), node after node, calling the op kernels of src/ops.
 *
 * Plan (built once per model, executor_plan): for every node its layer (the position of the node among the
 * nodes that own parameters, in parameter order; second-order work numbers tensors by it), upmax (the largest
 * layer the value depends on, -1 when no parameter is upstream: it needs no gradient), its consumers, and
 * where its values live:
 * - one activation arena per chunk: primal values (N * total), gradients (N * dtotal), tangents (N*K * total)
 *   and tangent gradients (N*K * dtotal), each value at a per-sample offset of its storage owner;
 * - a view (Flatten, Reshape, Identity, Dropout) shares its input's storage; a ReLU, and the residual Add of
 *   two same-shape activations, run in place on their (first) input when that input has no other consumer
 *   and its producer does not need its own output later (as the hand-written ResNet did);
 * - a value whose only consumer is a view, a ReLU or (as first operand) such an Add shares that consumer's
 *   gradient storage: its gradient is computed in place;
 * - a value whose only consumer is the batch norm right after it (a convolution's output) keeps no gradient:
 *   the batch norm's backward pass writes it to a scratch buffer that the producer reads next, and the tangent
 *   backward pass recomputes it there from the batch norm's output gradient (as the hand-written ResNet did).
 * Gradients of values with several consumers (residual branches, Concat inputs) accumulate: the first
 * contribution is written, later ones are added through a scratch buffer (init flags per value).
 * Tangents: a value that no direction reaches has a NULL tangent and its ops are skipped; the tangent backward
 * pass stops where no tensor of a layer >= start_layer is upstream.
 * Batch norm: batch statistics when m->training (running statistics updated, num_batches_tracked counted) or
 * m->bn_mode == BN_BATCH, else the running statistics; later passes differentiate the mode of the forward.
 * The last node's output is copied to m->logits (and its tangent to m->t_logits); the loss lives in model.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../graph/graph.h"
#include "../ops/ops.h"
#include "model.h"

typedef struct {
    int layer;         /* layer of the node's parameters, -1 none */
    int upmax;         /* largest layer upstream of this value (itself included), -1 none */
    int consumers;     /* uses as an activation input */
    int consumer;      /* the last consumer (the only one when consumers == 1) */
    int root;          /* storage owner of the primal value and its tangent (GRAPH_INPUT: the input x) */
    int droot;         /* storage owner of the gradient and tangent gradient; -1 none, TRANSIENT scratch */
    size_t off, doff;  /* per-sample offsets of owned storage */
    size_t aoff, soff; /* max-pool argmax offset; batch-norm statistics offset */
    ConvShape conv;
    PoolShape pool;
    int C, HW;         /* batch norm, global average pool: channels and plane size */
    Pointwise pw;      /* activations other than ReLU */
    Binary bin;        /* Add/Sub/Mul/Div (except the same-shape Add of two activations) */
    size_t outer, inner[GRAPH_MAX_INPUTS]; /* concat */
} NodePlan;

typedef struct {
    const Graph *g;
    NodePlan *plan;        /* (num_nodes) */
    size_t total, dtotal;  /* per-sample primal and gradient storage */
    size_t max_size;       /* largest value per sample (scratch) */
    size_t argmax_total, stats_total;
    int batch;             /* the last forward pass used batch statistics */
    int capacity_N, capacity_NK;
    real *a, *d;           /* (N * total), (N * dtotal) */
    real *t, *td;          /* (N*K * total), (N*K * dtotal) */
    real *tmp, *ttmp;      /* (N * max_size), (N*K * max_size) */
    real *dscratch, *tdscratch; /* (N * max_size), (N*K * max_size): transient gradients */
    real *scratch_g;       /* (2 * max channels): batch-norm parameter gradients thrown away */
    int max_channels;
    int32_t *argmax;       /* (N * argmax_total) */
    real *mean, *invstd;   /* (stats_total) */
    real *consts;          /* the graph's constants in the working precision, at coff[id] */
    size_t *coff;          /* (num_constants) */
    const real **t_cur;    /* (num_nodes) tangent of each value in this product, NULL: zero */
    unsigned char *init;   /* (num_nodes) gradient accumulation started */
} ExecState;

#define TRANSIENT (-3) /* droot of a gradient kept in the scratch buffers dscratch / tdscratch */

/* ---------------------------------------------------------------- the plan */

/* Ops that read their own output in later passes (so nothing may overwrite it in place). */
static int needs_own_output(GraphOp op) { return op == GOP_RELU; }

static int is_same_shape_add(const Graph *g, const GraphNode *n) {
    return n->op == GOP_ADD && n->operand[0].kind == OPERAND_VALUE && n->operand[1].kind == OPERAND_VALUE &&
           graph_value_size(g, n->operand[0].id) == n->size && graph_value_size(g, n->operand[1].id) == n->size;
}

/* Node `c` may run in place on its first input u. */
static int can_run_in_place(const Graph *g, const NodePlan *plan, int c) {
    const GraphNode *n = &g->nodes[c];
    if (n->op != GOP_RELU && !is_same_shape_add(g, n)) return 0;
    int u = n->inputs[0];
    if (u < 0 || plan[u].consumers != 1) return 0;
    if (g->nodes[u].op == GOP_VIEW || needs_own_output(g->nodes[u].op)) return 0;
    return 1;
}

/* u's gradient may live in its only consumer c's gradient storage. */
static int can_share_gradient(const Graph *g, const NodePlan *plan, int u) {
    if (plan[u].consumers != 1) return 0;
    const GraphNode *c = &g->nodes[plan[u].consumer];
    if (c->op == GOP_VIEW || c->op == GOP_RELU) return 1;
    return is_same_shape_add(g, c) && c->inputs[0] == u && c->inputs[1] != u;
}

/* Shapes and kernel parameters of node i. */
static int FN(plan_node)(const Graph *g, int i, NodePlan *p) {
    const GraphNode *n = &g->nodes[i];
    const GraphAttrs *a = &n->attrs;
    int in = n->num_inputs ? n->inputs[0] : GRAPH_INPUT;
    const int64_t *is = graph_value_shape(g, in);
    switch (n->op) {
    case GOP_CONV:
        p->conv = conv2d_shape_general((int)is[0], (int)is[1], (int)is[2], (int)n->shape[0], a->kh, a->kw, a->groups,
                                       a->stride_h, a->stride_w, a->dil_h, a->dil_w, a->pad_t, a->pad_l, a->pad_b,
                                       a->pad_r);
        return 0;
    case GOP_MAXPOOL:
    case GOP_AVGPOOL:
        p->pool = pool_shape_general((int)is[0], (int)is[1], (int)is[2], a->kh, a->kw, a->stride_h, a->stride_w,
                                     a->pad_t, a->pad_l, a->pad_b, a->pad_r, a->ceil_mode, a->count_include_pad);
        return 0;
    case GOP_BATCHNORM:
    case GOP_GLOBAL_AVGPOOL:
        p->C = (int)is[0];
        p->HW = (int)(graph_value_size(g, in) / (size_t)is[0]);
        return 0;
    case GOP_LEAKY_RELU:
    case GOP_CLIP:
    case GOP_SIGMOID:
    case GOP_TANH:
    case GOP_SOFTPLUS:
    case GOP_ERF: {
        static const PointwiseKind kinds[] = {[GOP_LEAKY_RELU] = PW_LEAKY_RELU, [GOP_CLIP] = PW_CLIP,
                                              [GOP_SIGMOID] = PW_SIGMOID,       [GOP_TANH] = PW_TANH,
                                              [GOP_SOFTPLUS] = PW_SOFTPLUS,     [GOP_ERF] = PW_ERF};
        p->pw = (Pointwise){kinds[n->op], a->alpha, a->lo, a->hi};
        return 0;
    }
    case GOP_ADD:
    case GOP_SUB:
    case GOP_MUL:
    case GOP_DIV: {
        if (is_same_shape_add(g, n)) return 0;
        static const BinaryKind kinds[] = {[GOP_ADD] = BIN_ADD, [GOP_SUB] = BIN_SUB, [GOP_MUL] = BIN_MUL,
                                           [GOP_DIV] = BIN_DIV};
        int na, nb;
        const int64_t *sa, *sb;
        HS_TRY(graph_operand_shape(g, n, 0, &na, &sa));
        HS_TRY(graph_operand_shape(g, n, 1, &nb, &sb));
        if (binary_setup(&p->bin, kinds[n->op], na, sa, n->operand[0].kind == OPERAND_VALUE, nb, sb,
                         n->operand[1].kind == OPERAND_VALUE) != 0)
            return hs_error_context("node '%s' (%s)", n->name, graph_op_name(n->op));
        return 0;
    }
    case GOP_CONCAT:
        p->outer = 1;
        for (int d = 0; d < n->attrs.axis; d++) p->outer *= (size_t)n->shape[d];
        for (int j = 0; j < n->num_inputs; j++) p->inner[j] = graph_value_size(g, n->inputs[j]) / p->outer;
        return 0;
    case GOP_LINEAR:
    case GOP_RELU:
    case GOP_VIEW:
        return 0;
    default:
        return hs_error("node '%s': operator %s is not supported by the executor", n->name, graph_op_name(n->op));
    }
}

/* Fills the plan and the tensor layers; called once. */
static int FN(executor_plan)(Model *m, ExecState *s) {
    const Graph *g = s->g;
    int n = g->num_nodes;
    NodePlan *plan = s->plan;
    /* Layers: nodes with parameters, numbered in the order of their first parameter. Tensors inherit them;
     * second-order code needs them non-decreasing in parameter order, so a node's parameters must be
     * consecutive (else every tensor is layer 0 and products are not pruned). */
    int *owner = hs_malloc(sizeof(int) * (size_t)(g->num_params + 1));
    if (!owner) return -1;
    for (int t = 0; t < g->num_params; t++) owner[t] = -1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 2; j++)
            if (g->nodes[i].param[j] >= 0) owner[g->nodes[i].param[j]] = i;
    int layers = 0, monotone = 1;
    for (int i = 0; i < n; i++) plan[i].layer = -1;
    for (int t = 0; t < g->num_params; t++) {
        int i = owner[t];
        if (i < 0) {
            free(owner);
            return hs_error("parameter '%s' is used by no node", g->params[t].name);
        }
        if (plan[i].layer < 0) plan[i].layer = layers++;
        else if (owner[t - 1] != i) monotone = 0;
    }
    for (int t = 0; t < g->num_params; t++) m->tensors[t].layer = monotone ? plan[owner[t]].layer : 0;
    m->num_layers = monotone ? layers : (g->num_params ? 1 : 0);
    if (!monotone)
        for (int i = 0; i < n; i++) plan[i].layer = plan[i].layer >= 0 ? 0 : -1;
    free(owner);

    for (int i = 0; i < n; i++) {
        const GraphNode *node = &g->nodes[i];
        HS_TRY(FN(plan_node)(g, i, &plan[i]));
        int up = plan[i].layer;
        for (int j = 0; j < node->num_inputs; j++) {
            int u = node->inputs[j];
            if (u < 0) continue;
            plan[u].consumers++;
            plan[u].consumer = i;
            if (plan[u].upmax > up) up = plan[u].upmax;
        }
        plan[i].upmax = up;
    }
    /* Primal storage, forward order. */
    s->total = 0;
    s->max_size = 0;
    for (int i = 0; i < n; i++) {
        const GraphNode *node = &g->nodes[i];
        NodePlan *p = &plan[i];
        if (node->size > s->max_size) s->max_size = node->size;
        if (node->op == GOP_VIEW) {
            p->root = node->inputs[0] < 0 ? GRAPH_INPUT : plan[node->inputs[0]].root;
        } else if (can_run_in_place(g, plan, i)) {
            p->root = plan[node->inputs[0]].root;
        } else {
            p->root = i;
            p->off = s->total;
            s->total += node->size;
        }
        if (node->op == GOP_MAXPOOL) {
            p->aoff = s->argmax_total;
            s->argmax_total += node->size;
        }
        if (node->op == GOP_BATCHNORM) {
            p->soff = s->stats_total;
            s->stats_total += (size_t)p->C;
            if (p->C > s->max_channels) s->max_channels = p->C;
        }
    }
    /* Gradient storage, backward order (a consumer's owner is known before its input's). */
    s->dtotal = 0;
    for (int i = n - 1; i >= 0; i--) {
        NodePlan *p = &plan[i];
        if (p->upmax < 0) {
            p->droot = -1; /* no parameter upstream: no gradient */
        } else if (i < n - 1 && p->consumers == 1 && p->consumer == i + 1 && g->nodes[i + 1].op == GOP_BATCHNORM &&
                   plan[i + 1].droot != TRANSIENT) {
            p->droot = TRANSIENT;
        } else if (i < n - 1 && can_share_gradient(g, plan, i)) {
            p->droot = plan[p->consumer].droot;
        } else {
            p->droot = i;
            p->doff = s->dtotal;
            s->dtotal += g->nodes[i].size;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- storage */

static void FN(exec_free_tangents)(ExecState *s) {
    free(s->t);
    free(s->td);
    free(s->ttmp);
    free(s->tdscratch);
    s->t = s->td = s->ttmp = s->tdscratch = NULL;
    s->capacity_NK = 0;
}

static int FN(exec_reserve)(ExecState *s, int N) {
    if (N <= s->capacity_N) return 0;
    free(s->a);
    free(s->d);
    free(s->tmp);
    free(s->argmax);
    free(s->dscratch);
    s->capacity_N = 0;
    s->a = hs_malloc(sizeof(real) * (s->total + 1) * (size_t)N);
    s->d = hs_malloc(sizeof(real) * (s->dtotal + 1) * (size_t)N);
    s->tmp = hs_malloc(sizeof(real) * s->max_size * (size_t)N);
    s->dscratch = hs_malloc(sizeof(real) * s->max_size * (size_t)N);
    s->argmax = hs_malloc(sizeof(int32_t) * (s->argmax_total + 1) * (size_t)N);
    if (!s->a || !s->d || !s->tmp || !s->dscratch || !s->argmax) return -1;
    s->capacity_N = N;
    return 0;
}

static int FN(exec_reserve_tangents)(ExecState *s, int NK) {
    if (NK <= s->capacity_NK) return 0;
    FN(exec_free_tangents)(s);
    s->t = hs_malloc(sizeof(real) * (s->total + 1) * (size_t)NK);
    s->td = hs_malloc(sizeof(real) * (s->dtotal + 1) * (size_t)NK);
    s->ttmp = hs_malloc(sizeof(real) * s->max_size * (size_t)NK);
    s->tdscratch = hs_malloc(sizeof(real) * s->max_size * (size_t)NK);
    if (!s->t || !s->td || !s->ttmp || !s->tdscratch) return -1;
    s->capacity_NK = NK;
    return 0;
}

#define PRM(t) (m->params + m->tensors[t].offset)
#define BUF(b) (m->buffer_values + m->buffers[b].offset)
#define DIR(t) ((t) >= 0 ? FN(model_direction)(m, v, t) : NULL)
#define ACC(base, t) ((base) && (t) >= 0 ? (base) + m->tensors[t].offset : NULL)

/* Primal values (N, size) of value u. */
static real *FN(val)(const Model *m, const ExecState *s, int u) {
    int r = u < 0 ? GRAPH_INPUT : s->plan[u].root;
    return r < 0 ? m->x : s->a + (size_t)m->N * s->plan[r].off;
}
/* Tangent storage (N, K, size) of value u (its current tangent is s->t_cur[u]). */
static real *FN(tan)(const Model *m, const ExecState *s, int u) {
    return s->t + (size_t)m->N * m->K * s->plan[s->plan[u].root].off;
}
static const real *FN(tan_cur)(const ExecState *s, int u) { return u < 0 ? NULL : s->t_cur[u]; }
static real *FN(grad)(const Model *m, const ExecState *s, int u) {
    int r = s->plan[u].droot;
    return r == TRANSIENT ? s->dscratch : s->d + (size_t)m->N * s->plan[r].doff;
}
static real *FN(tgrad)(const Model *m, const ExecState *s, int u) {
    int r = s->plan[u].droot;
    return r == TRANSIENT ? s->tdscratch : s->td + (size_t)m->N * m->K * s->plan[r].doff;
}

/* Where a gradient contribution of node c to input u goes: u's gradient (first contribution, or shared
 * storage) or the scratch `tmp` (added by finish_contribution). NULL: u needs no gradient. */
static real *FN(contribution_target)(ExecState *s, real *own, real *tmp, int u, int c, int needed) {
    if (u < 0 || !needed) return NULL;
    if (s->plan[u].droot == s->plan[c].droot || !s->init[u]) return own;
    return tmp;
}
static void FN(finish_contribution)(ExecState *s, real *target, real *own, int u, size_t n) {
    if (!target) return;
    if (target != own) FN(add_forward)(own, own, target, n);
    s->init[u] = 1;
}

/* Adds src (n) to u's gradient `own` as an unchanged contribution (Add, view): nothing when they share
 * storage, a copy for the first contribution, a sum after. */
static void FN(pass_contribution)(ExecState *s, real *own, const real *src, int u, size_t n) {
    if (own != src) {
        if (s->init[u]) FN(add_forward)(own, own, src, n);
        else memcpy(own, src, sizeof(real) * n);
    }
    s->init[u] = 1;
}

/* Values of a binary op's operand: an activation (N, size), a parameter or a constant (size). */
static const real *FN(operand_values)(const Model *m, const ExecState *s, GraphOperand o) {
    if (o.kind == OPERAND_VALUE) return FN(val)(m, s, o.id);
    if (o.kind == OPERAND_PARAM) return PRM(o.id);
    return s->consts + s->coff[o.id];
}

static int is_binary(GraphOp op) { return op == GOP_ADD || op == GOP_SUB || op == GOP_MUL || op == GOP_DIV; }

/* Backward pass of a binary node (tangent = 0) or its tangent backward pass (tangent = 1), one operand at a
 * time so that each may use the scratch buffer: activation operands get their (tangent) gradient, parameter
 * operands accumulate into acc (grad or hv; NULL: none). */
static void FN(binary_node_backward)(Model *m, ExecState *s, int i, real *acc, int tangent, const real *v, int start,
                                     int ggn) {
    const GraphNode *n = &s->g->nodes[i];
    const NodePlan *p = &s->plan[i];
    int N = m->N, K = tangent ? m->K : 1;
    size_t P = m->num_params;
    const real *A = FN(operand_values)(m, s, n->operand[0]), *B = FN(operand_values)(m, s, n->operand[1]);
    const real *t[2] = {NULL, NULL};
    for (int j = 0; tangent && j < 2; j++) {
        GraphOperand o = n->operand[j];
        t[j] = o.kind == OPERAND_VALUE ? FN(tan_cur)(s, o.id) : o.kind == OPERAND_PARAM ? DIR(o.id) : NULL;
    }
    for (int j = 0; j < 2; j++) {
        GraphOperand o = n->operand[j];
        real *target = NULL, *own = NULL;
        if (o.kind == OPERAND_VALUE) {
            if (o.id < 0 || s->plan[o.id].upmax < (tangent ? start : 0)) continue;
            own = tangent ? FN(tgrad)(m, s, o.id) : FN(grad)(m, s, o.id);
            target = FN(contribution_target)(s, own, tangent ? s->ttmp : s->tmp, o.id, i, 1);
        } else if (o.kind == OPERAND_PARAM && acc) {
            target = acc + m->tensors[o.id].offset;
        } else {
            continue;
        }
        real *ta = j == 0 ? target : NULL, *tb = j == 1 ? target : NULL;
        if (tangent)
            FN(binary_tangent_backward)(ta, tb, P, FN(tgrad)(m, s, i), ggn ? NULL : FN(grad)(m, s, i), t[0], t[1], A,
                                        B, K, N, &p->bin);
        else
            FN(binary_backward)(ta, tb, FN(grad)(m, s, i), A, B, N, &p->bin);
        if (own) FN(finish_contribution)(s, target, own, o.id, (size_t)N * K * graph_value_size(s->g, o.id));
    }
}

/* Backward (tangent = 0) or tangent backward (tangent = 1) pass of a concat node, one input at a time. */
static void FN(concat_node_backward)(Model *m, ExecState *s, int i, int tangent, int start) {
    const GraphNode *n = &s->g->nodes[i];
    const NodePlan *p = &s->plan[i];
    int N = m->N, K = tangent ? m->K : 1;
    for (int j = 0; j < n->num_inputs; j++) {
        int w = n->inputs[j];
        if (w < 0 || s->plan[w].upmax < (tangent ? start : 0)) continue;
        real *own = tangent ? FN(tgrad)(m, s, w) : FN(grad)(m, s, w);
        real *parts[GRAPH_MAX_INPUTS] = {NULL};
        parts[j] = FN(contribution_target)(s, own, tangent ? s->ttmp : s->tmp, w, i, 1);
        if (tangent) FN(concat_tangent_backward)(parts, FN(tgrad)(m, s, i), p->inner, n->num_inputs, p->outer, K, N);
        else FN(concat_backward)(parts, FN(grad)(m, s, i), p->inner, n->num_inputs, p->outer, N);
        FN(finish_contribution)(s, parts[j], own, w, (size_t)N * K * graph_value_size(s->g, w));
    }
}

/* ---------------------------------------------------------------- the four passes */

static int FN(exec_forward)(Model *m, const real *x, int N) {
    (void)x;
    ExecState *s = m->state;
    const Graph *g = s->g;
    HS_TRY(FN(exec_reserve)(s, N));
    s->batch = m->training || m->bn_mode == BN_BATCH;
    for (int i = 0; i < g->num_nodes; i++) {
        const GraphNode *n = &g->nodes[i];
        const NodePlan *p = &s->plan[i];
        const real *in = n->num_inputs ? FN(val)(m, s, n->inputs[0]) : NULL;
        real *out = FN(val)(m, s, i);
        size_t count = (size_t)N * n->size;
        switch (n->op) {
        case GOP_CONV:
            HS_TRY(FN(conv2d_forward)(out, in, PRM(n->param[0]), n->param[1] >= 0 ? PRM(n->param[1]) : NULL, N,
                                      &p->conv));
            break;
        case GOP_LINEAR:
            (n->attrs.transposed ? FN(matmul_forward) : FN(linear_forward))(
                out, in, PRM(n->param[0]), n->param[1] >= 0 ? PRM(n->param[1]) : NULL, N,
                (int)graph_value_size(g, n->inputs[0]), (int)n->size);
            break;
        case GOP_BATCHNORM: {
            real *rm = BUF(n->buffer[0]), *rv = BUF(n->buffer[1]);
            if (s->batch) {
                HS_TRY(FN(batchnorm_train_forward)(out, s->mean + p->soff, s->invstd + p->soff, in,
                                                   PRM(n->param[0]), PRM(n->param[1]), m->training ? rm : NULL,
                                                   m->training ? rv : NULL, n->attrs.momentum, n->attrs.eps, N, p->C,
                                                   p->HW, m->training ? m->bn_group : NULL));
            } else {
                FN(batchnorm_eval_forward)(out, in, PRM(n->param[0]), PRM(n->param[1]), rm, rv, n->attrs.eps, N,
                                           p->C, p->HW);
            }
            break;
        }
        case GOP_RELU:
            FN(relu_forward)(out, in, count);
            break;
        case GOP_MAXPOOL:
            FN(maxpool_forward)(out, s->argmax + (size_t)N * p->aoff, in, N, &p->pool);
            break;
        case GOP_AVGPOOL:
            FN(avgpool2d_forward)(out, in, N, &p->pool);
            break;
        case GOP_GLOBAL_AVGPOOL:
            FN(avgpool_forward)(out, in, N, p->C, p->HW);
            break;
        case GOP_LEAKY_RELU:
        case GOP_CLIP:
        case GOP_SIGMOID:
        case GOP_TANH:
        case GOP_SOFTPLUS:
        case GOP_ERF:
            FN(pointwise_forward)(out, in, count, &p->pw);
            break;
        case GOP_ADD:
        case GOP_SUB:
        case GOP_MUL:
        case GOP_DIV:
            if (is_same_shape_add(g, n))
                FN(add_forward)(out, in, FN(val)(m, s, n->inputs[1]), count);
            else
                FN(binary_forward)(out, FN(operand_values)(m, s, n->operand[0]),
                                   FN(operand_values)(m, s, n->operand[1]), N, &p->bin);
            break;
        case GOP_CONCAT: {
            const real *ins[GRAPH_MAX_INPUTS];
            for (int j = 0; j < n->num_inputs; j++) ins[j] = FN(val)(m, s, n->inputs[j]);
            FN(concat_forward)(out, ins, p->inner, n->num_inputs, p->outer, N);
            break;
        }
        case GOP_VIEW:
            break;
        default:
            return hs_error("node '%s': operator %s is not supported", n->name, graph_op_name(n->op));
        }
    }
    memcpy(m->logits, FN(val)(m, s, g->num_nodes - 1), sizeof(real) * (size_t)N * (size_t)m->classes);
    if (m->training && m->num_buffers) m->batches_tracked++;
    return 0;
}

static int FN(exec_backward)(Model *m, real *grad) {
    ExecState *s = m->state;
    const Graph *g = s->g;
    int N = m->N, last = g->num_nodes - 1;
    memset(s->init, 0, (size_t)g->num_nodes);
    if (s->plan[last].upmax < 0) return 0;
    memcpy(FN(grad)(m, s, last), m->d_logits, sizeof(real) * (size_t)N * (size_t)m->classes);
    s->init[last] = 1;
    for (int i = last; i >= 0; i--) {
        const GraphNode *n = &g->nodes[i];
        const NodePlan *p = &s->plan[i];
        if (p->upmax < 0 || !s->init[i]) continue;
        int u = n->num_inputs ? n->inputs[0] : GRAPH_INPUT;
        int need = u >= 0 && s->plan[u].upmax >= 0;
        const real *d_out = FN(grad)(m, s, i);
        if (is_binary(n->op) && !is_same_shape_add(g, n)) {
            FN(binary_node_backward)(m, s, i, grad, 0, NULL, 0, 0);
            continue;
        }
        if (n->op == GOP_CONCAT) {
            FN(concat_node_backward)(m, s, i, 0, 0);
            continue;
        }
        if (n->op == GOP_ADD || n->op == GOP_VIEW) { /* d_out passes unchanged to each input */
            for (int j = 0; j < n->num_inputs; j++) {
                int w = n->inputs[j];
                if (w >= 0 && s->plan[w].upmax >= 0)
                    FN(pass_contribution)(s, FN(grad)(m, s, w), d_out, w, (size_t)N * graph_value_size(g, w));
            }
            continue;
        }
        const real *in = FN(val)(m, s, u);
        real *own = need ? FN(grad)(m, s, u) : NULL;
        real *d_in = FN(contribution_target)(s, own, s->tmp, u, i, need);
        size_t in_count = (size_t)N * graph_value_size(g, u);
        switch (n->op) {
        case GOP_CONV:
            HS_TRY(FN(conv2d_backward)(d_in, ACC(grad, n->param[0]), ACC(grad, n->param[1]), d_out, in,
                                       PRM(n->param[0]), N, &p->conv));
            break;
        case GOP_LINEAR:
            (n->attrs.transposed ? FN(matmul_backward) : FN(linear_backward))(
                d_in, ACC(grad, n->param[0]), ACC(grad, n->param[1]), d_out, in, PRM(n->param[0]), N,
                (int)graph_value_size(g, u), (int)n->size);
            break;
        case GOP_BATCHNORM:
            if (s->batch)
                HS_TRY(FN(batchnorm_train_backward)(d_in, ACC(grad, n->param[0]), ACC(grad, n->param[1]), d_out,
                                                    in, PRM(n->param[0]), s->mean + p->soff, s->invstd + p->soff, N,
                                                    p->C, p->HW, m->training ? m->bn_group : NULL));
            else
                FN(batchnorm_eval_backward)(d_in, ACC(grad, n->param[0]), ACC(grad, n->param[1]), d_out, in,
                                            PRM(n->param[0]), BUF(n->buffer[0]), BUF(n->buffer[1]), n->attrs.eps, N,
                                            p->C, p->HW);
            break;
        case GOP_RELU:
            if (d_in) FN(relu_backward)(d_in, d_out, FN(val)(m, s, i), in_count);
            break;
        case GOP_MAXPOOL:
            if (d_in) FN(maxpool_backward)(d_in, d_out, s->argmax + (size_t)N * p->aoff, N, &p->pool);
            break;
        case GOP_AVGPOOL:
            if (d_in) FN(avgpool2d_backward)(d_in, d_out, N, &p->pool);
            break;
        case GOP_GLOBAL_AVGPOOL:
            if (d_in) FN(avgpool_backward)(d_in, d_out, N, p->C, p->HW);
            break;
        case GOP_LEAKY_RELU:
        case GOP_CLIP:
        case GOP_SIGMOID:
        case GOP_TANH:
        case GOP_SOFTPLUS:
        case GOP_ERF:
            if (d_in) FN(pointwise_backward)(d_in, d_out, in, in_count, &p->pw);
            break;
        default:
            return hs_error("node '%s': operator %s is not supported", n->name, graph_op_name(n->op));
        }
        FN(finish_contribution)(s, d_in, own, u, in_count);
    }
    return 0;
}

static int FN(exec_tangent_forward)(Model *m, const real *v, int K, int start) {
    (void)start; /* directions below start are zero: their tangents are skipped through model_direction */
    ExecState *s = m->state;
    const Graph *g = s->g;
    int N = m->N;
    size_t P = m->num_params;
    HS_TRY(FN(exec_reserve_tangents)(s, N * K));
    for (int i = 0; i < g->num_nodes; i++) {
        const GraphNode *n = &g->nodes[i];
        const NodePlan *p = &s->plan[i];
        int u = n->num_inputs ? n->inputs[0] : GRAPH_INPUT;
        const real *t_in = FN(tan_cur)(s, u), *in = FN(val)(m, s, u);
        const real *tw = n->param[0] >= 0 ? DIR(n->param[0]) : NULL, *tb = n->param[1] >= 0 ? DIR(n->param[1]) : NULL;
        real *t_out = FN(tan)(m, s, i);
        size_t count = n->size;
        s->t_cur[i] = NULL;
        if (n->op == GOP_VIEW) {
            s->t_cur[i] = t_in;
            continue;
        }
        if (is_binary(n->op) && !is_same_shape_add(g, n)) {
            const real *t[2];
            for (int j = 0; j < 2; j++) {
                GraphOperand o = n->operand[j];
                t[j] = o.kind == OPERAND_VALUE ? FN(tan_cur)(s, o.id) : o.kind == OPERAND_PARAM ? DIR(o.id) : NULL;
            }
            if (t[0] || t[1]) {
                FN(binary_tangent_forward)(t_out, t[0], t[1], P, FN(operand_values)(m, s, n->operand[0]),
                                           FN(operand_values)(m, s, n->operand[1]), K, N, &p->bin);
                s->t_cur[i] = t_out;
            }
            continue;
        }
        if (n->op == GOP_CONCAT) {
            const real *t_ins[GRAPH_MAX_INPUTS];
            int any = 0;
            for (int j = 0; j < n->num_inputs; j++) any |= (t_ins[j] = FN(tan_cur)(s, n->inputs[j])) != NULL;
            if (any) {
                FN(concat_tangent_forward)(t_out, t_ins, p->inner, n->num_inputs, p->outer, K, N);
                s->t_cur[i] = t_out;
            }
            continue;
        }
        if (n->op == GOP_ADD) {
            const real *tb2 = FN(tan_cur)(s, n->inputs[1]);
            size_t nt = (size_t)N * K * count;
            if (t_in && tb2) FN(add_forward)(t_out, t_in, tb2, nt);
            else if (t_in && t_out != t_in) memcpy(t_out, t_in, sizeof(real) * nt);
            else if (tb2) memcpy(t_out, tb2, sizeof(real) * nt);
            if (t_in || tb2) s->t_cur[i] = t_out;
            continue;
        }
        if (!t_in && !tw && !tb) continue;
        switch (n->op) {
        case GOP_CONV:
            HS_TRY(FN(conv2d_tangent_forward)(t_out, t_in, tw, tb, P, in, PRM(n->param[0]), K, N, &p->conv));
            break;
        case GOP_LINEAR:
            (n->attrs.transposed ? FN(matmul_tangent_forward) : FN(linear_tangent_forward))(
                t_out, t_in, tw, tb, P, in, PRM(n->param[0]), K, N, (int)graph_value_size(g, u), (int)count);
            break;
        case GOP_BATCHNORM:
            if (s->batch)
                FN(batchnorm_train_tangent_forward)(t_out, t_in, tw, tb, P, in, PRM(n->param[0]), s->mean + p->soff,
                                                    s->invstd + p->soff, K, N, p->C, p->HW);
            else
                FN(batchnorm_eval_tangent_forward)(t_out, t_in, tw, tb, P, in, PRM(n->param[0]), BUF(n->buffer[0]),
                                                   BUF(n->buffer[1]), n->attrs.eps, K, N, p->C, p->HW);
            break;
        case GOP_RELU:
            FN(relu_tangent_forward)(t_out, t_in, FN(val)(m, s, i), K, N, count);
            break;
        case GOP_MAXPOOL:
            FN(maxpool_tangent_forward)(t_out, t_in, s->argmax + (size_t)N * p->aoff, K, N, &p->pool);
            break;
        case GOP_AVGPOOL:
            FN(avgpool2d_tangent_forward)(t_out, t_in, K, N, &p->pool);
            break;
        case GOP_GLOBAL_AVGPOOL:
            FN(avgpool_tangent_forward)(t_out, t_in, K, N, p->C, p->HW);
            break;
        case GOP_LEAKY_RELU:
        case GOP_CLIP:
        case GOP_SIGMOID:
        case GOP_TANH:
        case GOP_SOFTPLUS:
        case GOP_ERF:
            FN(pointwise_tangent_forward)(t_out, t_in, in, K, N, count, &p->pw);
            break;
        default:
            return hs_error("node '%s': operator %s is not supported", n->name, graph_op_name(n->op));
        }
        s->t_cur[i] = t_out;
    }
    int last = g->num_nodes - 1;
    size_t nt = (size_t)N * K * (size_t)m->classes;
    if (s->t_cur[last]) memcpy(m->t_logits, s->t_cur[last], sizeof(real) * nt);
    else memset(m->t_logits, 0, sizeof(real) * nt);
    return 0;
}

/* The transient gradient of value i (the input of the batch norm i + 1), recomputed into dscratch from the batch
 * norm's output gradient for node i's tangent backward pass; the parameter gradients are thrown away. */
static void FN(recompute_gradient)(Model *m, ExecState *s, int i) {
    const GraphNode *bn = &s->g->nodes[i + 1];
    const NodePlan *p = &s->plan[i + 1];
    int N = m->N;
    real *gg = s->scratch_g, *gb = s->scratch_g + p->C;
    memset(s->scratch_g, 0, sizeof(real) * 2 * (size_t)p->C);
    const real *in = FN(val)(m, s, i), *d_out = FN(grad)(m, s, i + 1);
    if (s->batch)
        FN(batchnorm_train_backward)(s->dscratch, gg, gb, d_out, in, PRM(bn->param[0]), s->mean + p->soff,
                                     s->invstd + p->soff, N, p->C, p->HW, NULL); /* no group: cannot fail */
    else /* (dx = a dy: the parameter sums are not needed, so not formed) */
        FN(batchnorm_eval_backward)(s->dscratch, NULL, NULL, d_out, in, PRM(bn->param[0]), BUF(bn->buffer[0]),
                                    BUF(bn->buffer[1]), bn->attrs.eps, N, p->C, p->HW);
}

/* Parameter gradients of node i's tensor j go to hv (K,P) rows, or (diagonal pass) nowhere: NULL. */
#define DACC(base, t) ((base) && (t) >= 0 ? (base) + m->tensors[t].offset : NULL)

/* The tangent backward pass; with diag != NULL the diagonal pass instead (v, hv NULL, start 0, GGN, no
 * tangents): td_out carries K vectors per sample back and each op with parameters adds its squared per-sample
 * gradients to diag (P) (the op_diag passes of ops.h). */
static int FN(tangent_backward_pass)(Model *m, const real *v, int K, int start, Curvature curvature, real *hv,
                                     double *diag) {
    ExecState *s = m->state;
    const Graph *g = s->g;
    int N = m->N, ggn = curvature == CURVATURE_GGN || diag, last = g->num_nodes - 1;
    size_t P = m->num_params;
    memset(s->init, 0, (size_t)g->num_nodes);
    if (s->plan[last].upmax < start) return 0;
    memcpy(FN(tgrad)(m, s, last), m->td_logits, sizeof(real) * (size_t)N * K * (size_t)m->classes);
    s->init[last] = 1;
    for (int i = last; i >= 0; i--) {
        const GraphNode *n = &g->nodes[i];
        const NodePlan *p = &s->plan[i];
        if (p->upmax < start || !s->init[i]) continue;
        if (p->droot == TRANSIENT && !ggn) FN(recompute_gradient)(m, s, i);
        int u = n->num_inputs ? n->inputs[0] : GRAPH_INPUT;
        int need = u >= 0 && s->plan[u].upmax >= start;
        const real *td_out = FN(tgrad)(m, s, i);
        if (is_binary(n->op) && !is_same_shape_add(g, n)) {
            FN(binary_node_backward)(m, s, i, hv, 1, v, start, ggn);
            if (diag && n->param[0] >= 0) {
                double *dp = DACC(diag, n->param[0]);
                HS_TRY(FN(binary_diag)(n->operand[0].kind == OPERAND_PARAM ? dp : NULL,
                                       n->operand[1].kind == OPERAND_PARAM ? dp : NULL, td_out,
                                       FN(operand_values)(m, s, n->operand[0]), FN(operand_values)(m, s, n->operand[1]),
                                       K, N, &p->bin));
            }
            continue;
        }
        if (n->op == GOP_CONCAT) {
            FN(concat_node_backward)(m, s, i, 1, start);
            continue;
        }
        if (n->op == GOP_ADD || n->op == GOP_VIEW) {
            for (int j = 0; j < n->num_inputs; j++) {
                int w = n->inputs[j];
                if (w >= 0 && s->plan[w].upmax >= start)
                    FN(pass_contribution)(s, FN(tgrad)(m, s, w), td_out, w, (size_t)N * K * graph_value_size(g, w));
            }
            continue;
        }
        if (p->layer < start && !need) continue;
        const real *in = FN(val)(m, s, u), *t_in = FN(tan_cur)(s, u);
        const real *d_out = ggn ? NULL : FN(grad)(m, s, i);
        const real *tw = n->param[0] >= 0 && v ? DIR(n->param[0]) : NULL;
        real *own = need ? FN(tgrad)(m, s, u) : NULL;
        real *td_in = FN(contribution_target)(s, own, s->ttmp, u, i, need);
        size_t in_count = (size_t)N * K * graph_value_size(g, u);
        switch (n->op) {
        case GOP_CONV:
            HS_TRY(FN(conv2d_tangent_backward)(td_in, ACC(hv, n->param[0]), ACC(hv, n->param[1]), P, td_out, d_out,
                                               t_in, tw, in, PRM(n->param[0]), K, N, &p->conv));
            if (diag)
                HS_TRY(FN(conv2d_diag)(DACC(diag, n->param[0]), DACC(diag, n->param[1]), td_out, in, K, N, &p->conv));
            break;
        case GOP_LINEAR:
            (n->attrs.transposed ? FN(matmul_tangent_backward) : FN(linear_tangent_backward))(
                td_in, ACC(hv, n->param[0]), ACC(hv, n->param[1]), P, td_out, d_out, t_in, tw, in, PRM(n->param[0]), K,
                N, (int)graph_value_size(g, u), (int)n->size);
            if (diag)
                HS_TRY((n->attrs.transposed ? FN(matmul_diag) : FN(linear_diag))(
                    DACC(diag, n->param[0]), DACC(diag, n->param[1]), td_out, in, K, N, (int)graph_value_size(g, u),
                    (int)n->size));
            break;
        case GOP_BATCHNORM:
            if (diag) {
                FN(batchnorm_eval_tangent_backward)(td_in, NULL, NULL, P, td_out, NULL, NULL, NULL, in,
                                                    PRM(n->param[0]), BUF(n->buffer[0]), BUF(n->buffer[1]),
                                                    n->attrs.eps, K, N, p->C, p->HW);
                FN(batchnorm_eval_diag)(DACC(diag, n->param[0]), DACC(diag, n->param[1]), td_out, in,
                                        BUF(n->buffer[0]), BUF(n->buffer[1]), n->attrs.eps, K, N, p->C, p->HW);
            } else if (s->batch) {
                HS_TRY(FN(batchnorm_train_tangent_backward)(td_in, ACC(hv, n->param[0]), ACC(hv, n->param[1]), P,
                                                            td_out, d_out, t_in, tw, in, PRM(n->param[0]),
                                                            s->mean + p->soff, s->invstd + p->soff, K, N, p->C,
                                                            p->HW));
            } else {
                FN(batchnorm_eval_tangent_backward)(td_in, ACC(hv, n->param[0]), ACC(hv, n->param[1]), P, td_out,
                                                    d_out, t_in, tw, in, PRM(n->param[0]), BUF(n->buffer[0]),
                                                    BUF(n->buffer[1]), n->attrs.eps, K, N, p->C, p->HW);
            }
            break;
        case GOP_RELU:
            if (td_in) FN(relu_tangent_backward)(td_in, td_out, FN(val)(m, s, i), K, N, n->size);
            break;
        case GOP_MAXPOOL:
            if (td_in) FN(maxpool_tangent_backward)(td_in, td_out, s->argmax + (size_t)N * p->aoff, K, N, &p->pool);
            break;
        case GOP_AVGPOOL:
            if (td_in) FN(avgpool2d_tangent_backward)(td_in, td_out, K, N, &p->pool);
            break;
        case GOP_GLOBAL_AVGPOOL:
            if (td_in) FN(avgpool_tangent_backward)(td_in, td_out, K, N, p->C, p->HW);
            break;
        case GOP_LEAKY_RELU:
        case GOP_CLIP:
        case GOP_SIGMOID:
        case GOP_TANH:
        case GOP_SOFTPLUS:
        case GOP_ERF:
            if (td_in) FN(pointwise_tangent_backward)(td_in, td_out, d_out, t_in, in, K, N, n->size, &p->pw);
            break;
        default:
            return hs_error("node '%s': operator %s is not supported", n->name, graph_op_name(n->op));
        }
        FN(finish_contribution)(s, td_in, own, u, in_count);
    }
    return 0;
}

static int FN(exec_tangent_backward)(Model *m, const real *v, int K, int start, Curvature curvature, real *hv) {
    return FN(tangent_backward_pass)(m, v, K, start, curvature, hv, NULL);
}

/* ---------------------------------------------------------------- the diagonal */

/* Whether the diagonal of the Gauss-Newton matrix is the Hessian's: 1, or 0 with the first node that breaks
 * it named in why; -1 (hs_error) when per-sample gradients do not exist (batch statistics). The residual of
 * diagonal entry i is sum_n sum_j dL/dz_nj d^2 z_nj / dtheta_i^2; it vanishes when every output is piecewise
 * linear in each single parameter: each parameter enters one node affinely (conv, linear, batch-norm scale and
 * shift, the parameter operand of Add/Sub/Mul, a Div numerator) and every op downstream of a parameter is
 * piecewise linear in its parameter-dependent inputs (ReLU, LeakyRelu, Clip, max and average pools, views,
 * concat, Add/Sub, eval-mode batch norm). Refused, conservatively: Sigmoid, Tanh, Softplus, Erf with a
 * parameter upstream, Mul of two parameter-dependent activations, Div by a parameter or by a
 * parameter-dependent activation. (Second derivatives at the kinks of piecewise-linear ops are 0, as in every
 * other pass.) */
static int FN(exec_diag_exact)(const Model *m, char *why, size_t size) {
    const ExecState *s = m->state;
    const Graph *g = s->g;
    if (why && size) why[0] = 0;
    for (int i = 0; i < g->num_nodes; i++) {
        const GraphNode *n = &g->nodes[i];
        if (n->op == GOP_BATCHNORM && (m->training || m->bn_mode == BN_BATCH))
            return hs_error("node '%s' (BatchNormalization) uses batch statistics, which couple the samples of a "
                            "chunk: per-sample gradients, and so the diagonal, need running statistics (--bn eval)",
                            n->name);
    }
    for (int i = 0; i < g->num_nodes; i++) {
        const GraphNode *n = &g->nodes[i];
        int dep[2] = {0, 0};
        for (int j = 0; j < 2 && j < n->num_inputs; j++) dep[j] = n->inputs[j] >= 0 && s->plan[n->inputs[j]].upmax >= 0;
        const char *reason = NULL;
        switch (n->op) {
        case GOP_SIGMOID:
        case GOP_TANH:
        case GOP_SOFTPLUS:
        case GOP_ERF:
            if (dep[0]) reason = "is curved (not piecewise linear) and has parameters upstream";
            break;
        case GOP_MUL:
            if (n->operand[0].kind == OPERAND_VALUE && n->operand[1].kind == OPERAND_VALUE && dep[0] && dep[1])
                reason = "multiplies two activations that both depend on parameters";
            break;
        case GOP_DIV: {
            GraphOperand d = n->operand[1];
            if (d.kind == OPERAND_PARAM) reason = "divides by a parameter";
            else if (d.kind == OPERAND_VALUE && d.id >= 0 && s->plan[d.id].upmax >= 0)
                reason = "divides by an activation that depends on parameters";
            break;
        }
        default:
            break;
        }
        if (reason) {
            if (why) snprintf(why, size, "node '%s' (%s) %s", n->name, graph_op_name(n->op), reason);
            return 0;
        }
    }
    return 1;
}

static int FN(exec_diag_backward)(Model *m, int K, double *diag) {
    ExecState *s = m->state;
    if (s->batch) return hs_error("the diagonal needs batch norm with running statistics (--bn eval)");
    HS_TRY(FN(exec_reserve_tangents)(s, m->N * K));
    memset(s->t_cur, 0, sizeof(real *) * (size_t)s->g->num_nodes);
    return FN(tangent_backward_pass)(m, NULL, K, 0, CURVATURE_GGN, NULL, diag);
}

/* ---------------------------------------------------------------- creation */

static void FN(exec_free_state)(Model *m) {
    ExecState *s = m->state;
    if (!s) return;
    free(s->plan);
    free(s->a);
    free(s->d);
    free(s->tmp);
    free(s->argmax);
    free(s->mean);
    free(s->scratch_g);
    free(s->invstd);
    free(s->t_cur);
    free(s->init);
    free(s->consts);
    free(s->coff);
    FN(exec_free_tangents)(s);
    free(s);
    m->state = NULL;
}

/* ReLU then max-pool becomes max-pool then ReLU where the ReLU's output feeds only the pool and the pool
 * follows it: max(relu(x)) = relu(max(x)) (padded cells never win), the ReLU then touches the pooled values
 * only, and every derivative is the same (where a window's maximum is not positive, all are zero either way).
 * Idempotent, so replicas sharing the graph may run it again. */
static void FN(commute_relu_maxpool)(Graph *g) {
    for (int i = 0; i + 1 < g->num_nodes; i++) {
        GraphNode *r = &g->nodes[i], *p = &g->nodes[i + 1];
        if (r->op != GOP_RELU || p->op != GOP_MAXPOOL || p->inputs[0] != i) continue;
        int used_elsewhere = 0;
        for (int j = i + 2; j < g->num_nodes && !used_elsewhere; j++)
            for (int k = 0; k < g->nodes[j].num_inputs; k++)
                if (g->nodes[j].inputs[k] == i) used_elsewhere = 1;
        if (used_elsewhere) continue;
        GraphNode relu = *r, pool = *p;
        pool.inputs[0] = relu.inputs[0];
        relu.inputs[0] = i;
        relu.ndim = pool.ndim;
        memcpy(relu.shape, pool.shape, sizeof relu.shape);
        relu.size = pool.size;
        *r = pool;
        *p = relu;
    }
}

/* Tensor tables from the graph; the plan. */
static int FN(exec_init)(Model *m) {
    const Graph *g = m->graph;
    ExecState *s = hs_calloc(1, sizeof *s);
    if (!s) return -1;
    m->state = s;
    FN(commute_relu_maxpool)(m->graph);
    s->g = g;
    int n = g->num_nodes;
    s->plan = hs_calloc((size_t)n, sizeof(NodePlan));
    s->t_cur = hs_calloc((size_t)n, sizeof(real *));
    s->init = hs_calloc((size_t)n, 1);
    if (!s->plan || !s->t_cur || !s->init) return -1;
    for (int t = 0; t < g->num_params; t++) {
        const GraphTensor *gt = &g->params[t];
        HS_TRY(FN(model_add_tensor)(m, gt->name, gt->ndim, gt->shape, 0, gt->fan_in, gt->kind));
    }
    for (int b = 0; b < g->num_buffers; b++) {
        const GraphTensor *gt = &g->buffers[b];
        HS_TRY(FN(model_add_tensor)(m, gt->name, gt->ndim, gt->shape, 0, 0, gt->kind));
    }
    HS_TRY(FN(executor_plan)(m, s));
    size_t nc = 0;
    s->coff = hs_malloc(sizeof(size_t) * ((size_t)g->num_constants + 1));
    if (!s->coff) return -1;
    for (int c = 0; c < g->num_constants; c++) {
        s->coff[c] = nc;
        nc += g->constants[c].numel;
    }
    s->consts = hs_malloc(sizeof(real) * (nc + 1));
    if (!s->consts) return -1;
    for (int c = 0; c < g->num_constants; c++)
        for (size_t j = 0; j < g->constants[c].numel; j++) s->consts[s->coff[c] + j] = (real)g->constants[c].values[j];
    s->scratch_g = hs_malloc(sizeof(real) * (2 * (size_t)s->max_channels + 1));
    if (!s->scratch_g) return -1;
    s->mean = hs_malloc(sizeof(real) * (s->stats_total + 1));
    s->invstd = hs_malloc(sizeof(real) * (s->stats_total + 1));
    if (!s->mean || !s->invstd) return -1;
    const GraphNode *out = &g->nodes[n - 1];
    m->classes = (int)out->size;
    m->in_ndim = g->in_ndim;
    for (int d = 0; d < g->in_ndim; d++) m->in_shape[d] = g->in_shape[d];
    m->in_size = g->in_size;
    return 0;
}

static size_t FN(exec_primal_bytes)(const Model *m) {
    const ExecState *s = m->state;
    return sizeof(real) * (s->total + s->dtotal + 2) + sizeof(int32_t) * s->argmax_total;
}

const ModelArch FN(executor_arch) = {
    .name = "graph",
    .init = FN(exec_init),
    .free_state = FN(exec_free_state),
    .forward = FN(exec_forward),
    .backward = FN(exec_backward),
    .grad_optional = 1,
    .primal_bytes = FN(exec_primal_bytes),
    .tangent_forward = FN(exec_tangent_forward),
    .tangent_backward = FN(exec_tangent_backward),
    .diag_backward = FN(exec_diag_backward),
    .diag_exact = FN(exec_diag_exact),
};
