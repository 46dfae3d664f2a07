/* graph.c: building and checking graph tables (see graph.h): tensor declarations, per-op shape inference and
 * validation with messages that name the node, and the builders the built-in tables use. */
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/common.h"

static const char *const op_names[GOP_COUNT] = {
    [GOP_CONV] = "Conv",
    [GOP_LINEAR] = "Gemm",
    [GOP_BATCHNORM] = "BatchNormalization",
    [GOP_RELU] = "Relu",
    [GOP_LEAKY_RELU] = "LeakyRelu",
    [GOP_CLIP] = "Clip",
    [GOP_SIGMOID] = "Sigmoid",
    [GOP_TANH] = "Tanh",
    [GOP_SOFTPLUS] = "Softplus",
    [GOP_ERF] = "Erf",
    [GOP_MAXPOOL] = "MaxPool",
    [GOP_AVGPOOL] = "AveragePool",
    [GOP_GLOBAL_AVGPOOL] = "GlobalAveragePool",
    [GOP_ADD] = "Add",
    [GOP_SUB] = "Sub",
    [GOP_MUL] = "Mul",
    [GOP_DIV] = "Div",
    [GOP_CONCAT] = "Concat",
    [GOP_VIEW] = "Reshape",
};

const char *graph_op_name(GraphOp op) { return op >= 0 && op < GOP_COUNT ? op_names[op] : "?"; }

void graph_init(Graph *g, const char *name, int in_ndim, const int64_t *in_shape) {
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    g->in_ndim = in_ndim;
    g->in_size = 1;
    for (int d = 0; d < in_ndim && d < GRAPH_MAX_DIMS; d++) {
        g->in_shape[d] = in_shape[d];
        g->in_size *= (size_t)in_shape[d];
    }
}

static void free_tensors(GraphTensor *t, int n) {
    for (int i = 0; i < n; i++) free(t[i].values);
    free(t);
}

void graph_free(Graph *g) {
    if (!g) return;
    free(g->nodes);
    free_tensors(g->params, g->num_params);
    free_tensors(g->buffers, g->num_buffers);
    free_tensors(g->constants, g->num_constants);
    memset(g, 0, sizeof *g);
}

/* Grows an array of `size`-byte items to hold one more; 0 or -1. */
static int grow(void **items, int *cap, int count, size_t size) {
    if (count < *cap) return 0;
    int n = *cap ? 2 * *cap : 16;
    void *p = realloc(*items, (size_t)n * size);
    if (!p) return hs_error("out of memory building the graph");
    *items = p;
    *cap = n;
    return 0;
}

static int add_tensor(GraphTensor **table, int *count, int *cap, const char *what, const char *name, int ndim,
                      const int64_t *shape, int kind, int fan_in, const double *values) {
    if (ndim < 0 || ndim > GRAPH_MAX_DIMS)
        return hs_error("%s '%s': %d dimensions (at most %d supported)", what, name, ndim, GRAPH_MAX_DIMS);
    if (strlen(name) >= sizeof((GraphTensor *)0)->name)
        return hs_error("%s name too long (%zu characters): '%.40s...'", what, strlen(name), name);
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0 || shape[d] > ((int64_t)1 << 31))
            return hs_error("%s '%s': dimension %d is %lld", what, name, d, (long long)shape[d]);
        numel *= (size_t)shape[d];
        if (numel > ((size_t)1 << 34)) return hs_error("%s '%s' is too large", what, name);
    }
    if (grow((void **)table, cap, *count, sizeof **table) != 0) return -1;
    GraphTensor *t = &(*table)[*count];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    t->numel = numel;
    t->kind = kind;
    t->fan_in = fan_in;
    if (values) {
        t->values = malloc(sizeof(double) * numel);
        if (!t->values) return hs_error("out of memory for %s '%s'", what, name);
        memcpy(t->values, values, sizeof(double) * numel);
    }
    return (*count)++;
}

static int name_taken(const Graph *g, const char *name) {
    for (int i = 0; i < g->num_params; i++)
        if (strcmp(g->params[i].name, name) == 0) return 1;
    for (int i = 0; i < g->num_buffers; i++)
        if (strcmp(g->buffers[i].name, name) == 0) return 1;
    return 0;
}

int graph_add_param(Graph *g, const char *name, int ndim, const int64_t *shape, int kind, int fan_in,
                    const double *values) {
    if (name_taken(g, name)) return hs_error("two tensors named '%s'", name);
    return add_tensor(&g->params, &g->num_params, &g->cap_params, "parameter", name, ndim, shape, kind, fan_in,
                      values);
}

int graph_add_buffer(Graph *g, const char *name, int ndim, const int64_t *shape, int kind, const double *values) {
    if (name_taken(g, name)) return hs_error("two tensors named '%s'", name);
    return add_tensor(&g->buffers, &g->num_buffers, &g->cap_buffers, "buffer", name, ndim, shape, kind, 0, values);
}

int graph_add_constant(Graph *g, const char *name, int ndim, const int64_t *shape, const double *values) {
    if (!values) return hs_error("constant '%s' has no values", name);
    return add_tensor(&g->constants, &g->num_constants, &g->cap_constants, "constant", name, ndim, shape,
                      TENSOR_OTHER, 0, values);
}

GraphNode graph_node_template(GraphOp op, const char *name) {
    GraphNode n;
    memset(&n, 0, sizeof n);
    n.op = op;
    snprintf(n.name, sizeof n.name, "%s", name ? name : "");
    n.param[0] = n.param[1] = n.buffer[0] = n.buffer[1] = n.constant = -1;
    n.attrs.stride_h = n.attrs.stride_w = n.attrs.dil_h = n.attrs.dil_w = n.attrs.groups = 1;
    return n;
}

int graph_value_ndim(const Graph *g, int value) { return value == GRAPH_INPUT ? g->in_ndim : g->nodes[value].ndim; }
const int64_t *graph_value_shape(const Graph *g, int value) {
    return value == GRAPH_INPUT ? g->in_shape : g->nodes[value].shape;
}
size_t graph_value_size(const Graph *g, int value) { return value == GRAPH_INPUT ? g->in_size : g->nodes[value].size; }

/* ---------------------------------------------------------------- shape inference */

static void shape_text(char *out, size_t size, int ndim, const int64_t *shape) {
    int n = snprintf(out, size, "(");
    for (int d = 0; d < ndim && n < (int)size; d++) n += snprintf(out + n, size - (size_t)n, d ? ",%lld" : "%lld", (long long)shape[d]);
    if (n < (int)size) snprintf(out + n, size - (size_t)n, ")");
}

#define NODE_ERROR(fmt, ...) hs_error("node '%s' (%s): " fmt, nd->name, graph_op_name(nd->op), __VA_ARGS__)

static int check_tensor(const Graph *g, const GraphNode *nd, int id, const char *role, int ndim, const int64_t *shape) {
    if (id < 0 || id >= g->num_params) return NODE_ERROR("no %s parameter", role);
    const GraphTensor *t = &g->params[id];
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
    if (!ok) {
        char have[96], want[96];
        shape_text(have, sizeof have, t->ndim, t->shape);
        shape_text(want, sizeof want, ndim, shape);
        return NODE_ERROR("%s '%s' has shape %s, expected %s", role, t->name, have, want);
    }
    return 0;
}

static int check_buffer(const Graph *g, const GraphNode *nd, int id, const char *role, int64_t C) {
    if (id < 0 || id >= g->num_buffers) return NODE_ERROR("no %s buffer", role);
    const GraphTensor *t = &g->buffers[id];
    if (t->ndim != 1 || t->shape[0] != C)
        return NODE_ERROR("%s '%s' should have shape (%lld)", role, t->name, (long long)C);
    return 0;
}

/* Output size of a window op along one axis (PyTorch's rule: with ceil_mode the last window must start inside
 * the input or its left padding). */
static int64_t window_out(int64_t in, int k, int stride, int dil, int pad0, int pad1, int ceil_mode) {
    int64_t span = in + pad0 + pad1 - (int64_t)dil * (k - 1) - 1;
    if (span < 0) return 0;
    int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad0) out--;
    return out;
}

static int check_window(const GraphNode *nd, int is_conv) {
    const GraphAttrs *a = &nd->attrs;
    if (a->kh <= 0 || a->kw <= 0 || a->stride_h <= 0 || a->stride_w <= 0 || a->dil_h <= 0 || a->dil_w <= 0)
        return NODE_ERROR("kernel %dx%d, strides %d,%d, dilations %d,%d: all must be positive", a->kh, a->kw,
                          a->stride_h, a->stride_w, a->dil_h, a->dil_w);
    if (a->pad_t < 0 || a->pad_l < 0 || a->pad_b < 0 || a->pad_r < 0)
        return NODE_ERROR("negative padding (%d,%d,%d,%d)", a->pad_t, a->pad_l, a->pad_b, a->pad_r);
    if (!is_conv && (a->dil_h != 1 || a->dil_w != 1)) return NODE_ERROR("dilations %d,%d in a pool (only 1 supported)", a->dil_h, a->dil_w);
    if (!is_conv && (a->pad_t >= a->kh || a->pad_b >= a->kh || a->pad_l >= a->kw || a->pad_r >= a->kw))
        return NODE_ERROR("padding (%d,%d,%d,%d) not smaller than the window %dx%d", a->pad_t, a->pad_l, a->pad_b,
                          a->pad_r, a->kh, a->kw);
    return 0;
}

/* Numpy broadcasting of two per-sample shapes into out; 0 or -1. */
static int broadcast(const GraphNode *nd, int na, const int64_t *a, int nb, const int64_t *b, int *n, int64_t *out) {
    *n = na > nb ? na : nb;
    if (*n > GRAPH_MAX_DIMS) return NODE_ERROR("%d dimensions", *n);
    for (int d = 0; d < *n; d++) {
        int ia = d - (*n - na), ib = d - (*n - nb);
        int64_t x = ia >= 0 ? a[ia] : 1, y = ib >= 0 ? b[ib] : 1;
        if (x != y && x != 1 && y != 1) {
            char sa[96], sb[96];
            shape_text(sa, sizeof sa, na, a);
            shape_text(sb, sizeof sb, nb, b);
            return NODE_ERROR("operand shapes %s and %s do not broadcast", sa, sb);
        }
        out[d] = x > y ? x : y;
    }
    return 0;
}

static int operand_shape(const Graph *g, const GraphNode *nd, int i, int *ndim, const int64_t **shape) {
    if (graph_operand_shape(g, nd, i, ndim, shape) != 0) return NODE_ERROR("operand %d refers to no tensor", i);
    return 0;
}

int graph_operand_shape(const Graph *g, const GraphNode *nd, int i, int *ndim, const int64_t **shape) {
    const GraphOperand *o = &nd->operand[i];
    if (o->kind == OPERAND_VALUE) {
        *ndim = graph_value_ndim(g, o->id);
        *shape = graph_value_shape(g, o->id);
        return 0;
    }
    const GraphTensor *t = NULL;
    if (o->kind == OPERAND_PARAM && o->id >= 0 && o->id < g->num_params) t = &g->params[o->id];
    if (o->kind == OPERAND_CONST && o->id >= 0 && o->id < g->num_constants) t = &g->constants[o->id];
    if (!t) return -1;
    int rank = 0; /* per-sample rank of the activation operands */
    for (int j = 0; j < 2; j++)
        if (nd->operand[j].kind == OPERAND_VALUE && graph_value_ndim(g, nd->operand[j].id) > rank)
            rank = graph_value_ndim(g, nd->operand[j].id);
    int skip = 0; /* leading 1s that stand for the batch dimension (a PyTorch (1,C,1,1) parameter) */
    while (t->ndim - skip > rank && t->shape[skip] == 1) skip++;
    *ndim = t->ndim - skip;
    *shape = t->shape + skip;
    return 0;
}

/* Fills nd->ndim/shape for the node's op, checking inputs and tensors. */
static int infer(const Graph *g, GraphNode *nd) {
    const GraphAttrs *a = &nd->attrs;
    int in = nd->num_inputs > 0 ? nd->inputs[0] : GRAPH_INPUT;
    int ndim = graph_value_ndim(g, in);
    const int64_t *s = graph_value_shape(g, in);
    switch (nd->op) {
    case GOP_CONV: {
        if (ndim != 3) return NODE_ERROR("input has %d dimensions per sample, expected (C,H,W)", ndim);
        if (nd->param[0] < 0 || nd->param[0] >= g->num_params) return NODE_ERROR("%s", "no weight");
        const GraphTensor *w = &g->params[nd->param[0]];
        if (w->ndim != 4) return NODE_ERROR("weight '%s' has %d dimensions, expected 4", w->name, w->ndim);
        if (a->groups <= 0 || s[0] % a->groups || w->shape[0] % a->groups)
            return NODE_ERROR("group %d does not divide %lld input and %lld output channels", a->groups,
                              (long long)s[0], (long long)w->shape[0]);
        int64_t want[4] = {w->shape[0], s[0] / a->groups, a->kh, a->kw};
        HS_TRY(check_window(nd, 1));
        HS_TRY(check_tensor(g, nd, nd->param[0], "weight", 4, want));
        if (nd->param[1] >= 0) HS_TRY(check_tensor(g, nd, nd->param[1], "bias", 1, want));
        nd->ndim = 3;
        nd->shape[0] = w->shape[0];
        nd->shape[1] = window_out(s[1], a->kh, a->stride_h, a->dil_h, a->pad_t, a->pad_b, 0);
        nd->shape[2] = window_out(s[2], a->kw, a->stride_w, a->dil_w, a->pad_l, a->pad_r, 0);
        break;
    }
    case GOP_LINEAR: {
        if (ndim != 1) return NODE_ERROR("input has %d dimensions per sample, expected (features) (add a Flatten)", ndim);
        if (nd->param[0] < 0 || nd->param[0] >= g->num_params) return NODE_ERROR("%s", "no weight");
        const GraphTensor *w = &g->params[nd->param[0]];
        if (w->ndim != 2) return NODE_ERROR("weight '%s' has %d dimensions, expected 2", w->name, w->ndim);
        int64_t O = a->transposed ? w->shape[1] : w->shape[0];
        int64_t want[2] = {a->transposed ? s[0] : O, a->transposed ? O : s[0]};
        HS_TRY(check_tensor(g, nd, nd->param[0], "weight", 2, want));
        if (nd->param[1] >= 0) HS_TRY(check_tensor(g, nd, nd->param[1], "bias", 1, &O));
        nd->ndim = 1;
        nd->shape[0] = O;
        break;
    }
    case GOP_BATCHNORM:
        if (ndim < 1) return NODE_ERROR("%s", "input has no channel dimension");
        HS_TRY(check_tensor(g, nd, nd->param[0], "scale", 1, s));
        HS_TRY(check_tensor(g, nd, nd->param[1], "bias", 1, s));
        HS_TRY(check_buffer(g, nd, nd->buffer[0], "running mean", s[0]));
        HS_TRY(check_buffer(g, nd, nd->buffer[1], "running variance", s[0]));
        if (!(a->eps > 0) || !(a->momentum >= 0 && a->momentum <= 1))
            return NODE_ERROR("epsilon %g, momentum %g (need epsilon > 0, momentum in [0, 1])", a->eps, a->momentum);
        nd->ndim = ndim;
        memcpy(nd->shape, s, sizeof(int64_t) * (size_t)ndim);
        break;
    case GOP_CLIP:
        if (!(a->lo <= a->hi)) return NODE_ERROR("bounds [%g, %g]", a->lo, a->hi);
        /* fall through */
    case GOP_RELU:
    case GOP_LEAKY_RELU:
    case GOP_SIGMOID:
    case GOP_TANH:
    case GOP_SOFTPLUS:
    case GOP_ERF:
        nd->ndim = ndim;
        memcpy(nd->shape, s, sizeof(int64_t) * (size_t)ndim);
        break;
    case GOP_MAXPOOL:
    case GOP_AVGPOOL:
        if (ndim != 3) return NODE_ERROR("input has %d dimensions per sample, expected (C,H,W)", ndim);
        HS_TRY(check_window(nd, 0));
        nd->ndim = 3;
        nd->shape[0] = s[0];
        nd->shape[1] = window_out(s[1], a->kh, a->stride_h, 1, a->pad_t, a->pad_b, a->ceil_mode);
        nd->shape[2] = window_out(s[2], a->kw, a->stride_w, 1, a->pad_l, a->pad_r, a->ceil_mode);
        break;
    case GOP_GLOBAL_AVGPOOL:
        if (ndim != 3) return NODE_ERROR("input has %d dimensions per sample, expected (C,H,W)", ndim);
        nd->ndim = 3;
        nd->shape[0] = s[0];
        nd->shape[1] = nd->shape[2] = 1;
        break;
    case GOP_ADD:
    case GOP_SUB:
    case GOP_MUL:
    case GOP_DIV: {
        int values = 0, nda, ndb;
        const int64_t *sa, *sb;
        for (int i = 0; i < 2; i++) values += nd->operand[i].kind == OPERAND_VALUE;
        if (values == 0) return NODE_ERROR("%s", "no operand depends on the input (constant expression)");
        HS_TRY(operand_shape(g, nd, 0, &nda, &sa));
        HS_TRY(operand_shape(g, nd, 1, &ndb, &sb));
        HS_TRY(broadcast(nd, nda, sa, ndb, sb, &nd->ndim, nd->shape));
        break;
    }
    case GOP_CONCAT: {
        if (nd->num_inputs < 1) return NODE_ERROR("%s", "no inputs");
        if (a->axis < 0 || a->axis >= ndim) return NODE_ERROR("axis %d of %d per-sample dimensions", a->axis, ndim);
        nd->ndim = ndim;
        memcpy(nd->shape, s, sizeof(int64_t) * (size_t)ndim);
        nd->shape[a->axis] = 0;
        for (int i = 0; i < nd->num_inputs; i++) {
            int nd_i = graph_value_ndim(g, nd->inputs[i]);
            const int64_t *si = graph_value_shape(g, nd->inputs[i]);
            if (nd_i != ndim) return NODE_ERROR("input %d has %d dimensions, input 0 has %d", i, nd_i, ndim);
            for (int d = 0; d < ndim; d++)
                if (d != a->axis && si[d] != s[d])
                    return NODE_ERROR("input %d differs from input 0 in dimension %d (%lld vs %lld)", i, d,
                                      (long long)si[d], (long long)s[d]);
            nd->shape[a->axis] += si[a->axis];
        }
        break;
    }
    case GOP_VIEW: {
        if (nd->ndim < 1 || nd->ndim > GRAPH_MAX_DIMS) return NODE_ERROR("target shape has %d dimensions", nd->ndim);
        size_t n = 1;
        for (int d = 0; d < nd->ndim; d++) {
            if (nd->shape[d] <= 0) return NODE_ERROR("target dimension %d is %lld", d, (long long)nd->shape[d]);
            n *= (size_t)nd->shape[d];
        }
        if (n != graph_value_size(g, in))
            return NODE_ERROR("target shape holds %zu values per sample, the input %zu", n, graph_value_size(g, in));
        break;
    }
    default:
        return hs_error("node '%s': unknown op %d", nd->name, (int)nd->op);
    }
    nd->size = 1;
    for (int d = 0; d < nd->ndim; d++) {
        if (nd->shape[d] <= 0) return NODE_ERROR("output dimension %d is %lld (input too small)", d, (long long)nd->shape[d]);
        nd->size *= (size_t)nd->shape[d];
    }
    return 0;
}

int graph_add_node(Graph *g, const GraphNode *node) {
    GraphNode n = *node;
    const GraphNode *nd = &n;
    for (int i = 0; i < 2; i++)
        if (n.op >= GOP_ADD && n.op <= GOP_DIV && n.operand[i].id == -1) return -1;
    if (n.op >= GOP_ADD && n.op <= GOP_DIV) {
        /* inputs / param / constant follow from the operands */
        n.num_inputs = 0;
        n.param[0] = n.param[1] = n.constant = -1;
        for (int i = 0; i < 2; i++) {
            const GraphOperand *o = &n.operand[i];
            if (o->kind == OPERAND_VALUE) n.inputs[n.num_inputs++] = o->id;
            else if (o->kind == OPERAND_PARAM) {
                if (n.param[0] >= 0) return NODE_ERROR("%s", "two parameter operands");
                n.param[0] = o->id;
            } else {
                if (n.constant >= 0) return NODE_ERROR("%s", "two constant operands");
                n.constant = o->id;
            }
        }
    } else if (n.op != GOP_CONCAT && n.num_inputs != 1) {
        return NODE_ERROR("%d inputs, expected 1", n.num_inputs);
    }
    if (n.num_inputs > GRAPH_MAX_INPUTS) return NODE_ERROR("%d inputs (at most %d)", n.num_inputs, GRAPH_MAX_INPUTS);
    for (int i = 0; i < n.num_inputs; i++)
        if (n.inputs[i] == -1) return -1; /* a failed builder upstream: its message stands */
    for (int i = 0; i < n.num_inputs; i++)
        if (n.inputs[i] != GRAPH_INPUT && (n.inputs[i] < 0 || n.inputs[i] >= g->num_nodes))
            return NODE_ERROR("input %d refers to value %d, not an earlier node", i, n.inputs[i]);
    for (int i = 0; i < 2; i++) {
        if (n.param[i] >= g->num_params) return NODE_ERROR("parameter id %d out of range", n.param[i]);
        if (n.buffer[i] >= g->num_buffers) return NODE_ERROR("buffer id %d out of range", n.buffer[i]);
    }
    if (n.op != GOP_VIEW) n.ndim = 0;
    HS_TRY(infer(g, &n));
    if (grow((void **)&g->nodes, &g->cap_nodes, g->num_nodes, sizeof *g->nodes) != 0) return -1;
    g->nodes[g->num_nodes] = n;
    return g->num_nodes++;
}

int graph_check(const Graph *g) {
    if (g->num_nodes < 1) return hs_error("graph '%s' has no nodes", g->name);
    int *uses = calloc((size_t)g->num_params + 1, sizeof(int));
    int *consumed = calloc((size_t)g->num_nodes + 1, sizeof(int));
    if (!uses || !consumed) {
        free(uses);
        free(consumed);
        return hs_error("out of memory checking the graph");
    }
    int rc = 0;
    for (int i = 0; i < g->num_nodes; i++) {
        const GraphNode *nd = &g->nodes[i];
        for (int j = 0; j < 2; j++)
            if (nd->param[j] >= 0) uses[nd->param[j]]++;
        for (int j = 0; j < nd->num_inputs; j++)
            if (nd->inputs[j] >= 0) consumed[nd->inputs[j]]++;
    }
    for (int p = 0; p < g->num_params && rc == 0; p++) {
        if (uses[p] == 0)
            rc = hs_error("parameter '%s' is not used by any node (its gradient would be zero)", g->params[p].name);
        else if (uses[p] > 1)
            rc = hs_error("parameter '%s' is used by %d nodes (shared weights are not supported)", g->params[p].name,
                          uses[p]);
    }
    for (int i = 0; i < g->num_nodes - 1 && rc == 0; i++)
        if (!consumed[i])
            rc = hs_error("node '%s' (%s): its output is not used and is not the network output", g->nodes[i].name,
                          graph_op_name(g->nodes[i].op));
    free(uses);
    free(consumed);
    return rc;
}

/* ---------------------------------------------------------------- builders */

static int tensor_name(char *out, size_t size, const char *prefix, const char *suffix) {
    if ((size_t)snprintf(out, size, "%s%s%s", prefix, *prefix ? "." : "", suffix) >= size)
        return hs_error("tensor name too long: %s.%s", prefix, suffix);
    return 0;
}

int graph_conv(Graph *g, const char *name, int in, int O, int k, int stride, int pad, int bias, int weight_kind) {
    char tn[128];
    if (in == -1) return -1;
    if (in != GRAPH_INPUT && (in < 0 || in >= g->num_nodes)) return hs_error("conv '%s': bad input %d", name, in);
    int C = (int)graph_value_shape(g, in)[0];
    int64_t ws[4] = {O, C, k, k}, bs[1] = {O};
    GraphNode n = graph_node_template(GOP_CONV, name);
    n.num_inputs = 1;
    n.inputs[0] = in;
    HS_TRY(tensor_name(tn, sizeof tn, name, "weight"));
    if ((n.param[0] = graph_add_param(g, tn, 4, ws, weight_kind, C * k * k, NULL)) < 0) return -1;
    if (bias) {
        HS_TRY(tensor_name(tn, sizeof tn, name, "bias"));
        if ((n.param[1] = graph_add_param(g, tn, 1, bs, TENSOR_BIAS, C * k * k, NULL)) < 0) return -1;
    }
    n.attrs.kh = n.attrs.kw = k;
    n.attrs.stride_h = n.attrs.stride_w = stride;
    n.attrs.pad_t = n.attrs.pad_l = n.attrs.pad_b = n.attrs.pad_r = pad;
    return graph_add_node(g, &n);
}

int graph_linear(Graph *g, const char *name, int in, int O, int bias) {
    char tn[128];
    if (in == -1) return -1;
    if (in != GRAPH_INPUT && (in < 0 || in >= g->num_nodes)) return hs_error("linear '%s': bad input %d", name, in);
    int F = (int)graph_value_size(g, in);
    int64_t ws[2] = {O, F}, bs[1] = {O};
    GraphNode n = graph_node_template(GOP_LINEAR, name);
    n.num_inputs = 1;
    n.inputs[0] = in;
    HS_TRY(tensor_name(tn, sizeof tn, name, "weight"));
    if ((n.param[0] = graph_add_param(g, tn, 2, ws, TENSOR_WEIGHT, F, NULL)) < 0) return -1;
    if (bias) {
        HS_TRY(tensor_name(tn, sizeof tn, name, "bias"));
        if ((n.param[1] = graph_add_param(g, tn, 1, bs, TENSOR_BIAS, F, NULL)) < 0) return -1;
    }
    return graph_add_node(g, &n);
}

int graph_batchnorm(Graph *g, const char *name, int in) {
    char tn[128];
    if (in == -1) return -1;
    if (in != GRAPH_INPUT && (in < 0 || in >= g->num_nodes)) return hs_error("batch norm '%s': bad input %d", name, in);
    int64_t cs[1] = {graph_value_shape(g, in)[0]};
    GraphNode n = graph_node_template(GOP_BATCHNORM, name);
    n.num_inputs = 1;
    n.inputs[0] = in;
    n.attrs.eps = 1e-5;
    n.attrs.momentum = 0.1;
    HS_TRY(tensor_name(tn, sizeof tn, name, "weight"));
    if ((n.param[0] = graph_add_param(g, tn, 1, cs, TENSOR_BN_WEIGHT, 0, NULL)) < 0) return -1;
    HS_TRY(tensor_name(tn, sizeof tn, name, "bias"));
    if ((n.param[1] = graph_add_param(g, tn, 1, cs, TENSOR_BN_BIAS, 0, NULL)) < 0) return -1;
    HS_TRY(tensor_name(tn, sizeof tn, name, "running_mean"));
    if ((n.buffer[0] = graph_add_buffer(g, tn, 1, cs, TENSOR_RUNNING_MEAN, NULL)) < 0) return -1;
    HS_TRY(tensor_name(tn, sizeof tn, name, "running_var"));
    if ((n.buffer[1] = graph_add_buffer(g, tn, 1, cs, TENSOR_RUNNING_VAR, NULL)) < 0) return -1;
    return graph_add_node(g, &n);
}

int graph_maxpool(Graph *g, int in, int k, int stride, int pad) {
    char name[32];
    snprintf(name, sizeof name, "maxpool%d", g->num_nodes);
    GraphNode n = graph_node_template(GOP_MAXPOOL, name);
    n.num_inputs = 1;
    n.inputs[0] = in;
    n.attrs.kh = n.attrs.kw = k;
    n.attrs.stride_h = n.attrs.stride_w = stride;
    n.attrs.pad_t = n.attrs.pad_l = n.attrs.pad_b = n.attrs.pad_r = pad;
    return graph_add_node(g, &n);
}

int graph_unary(Graph *g, GraphOp op, int in) {
    char name[32];
    snprintf(name, sizeof name, "%s%d", graph_op_name(op), g->num_nodes);
    GraphNode n = graph_node_template(op, name);
    n.num_inputs = 1;
    n.inputs[0] = in;
    return graph_add_node(g, &n);
}

int graph_add(Graph *g, int a, int b) {
    char name[32];
    snprintf(name, sizeof name, "add%d", g->num_nodes);
    GraphNode n = graph_node_template(GOP_ADD, name);
    n.operand[0] = (GraphOperand){OPERAND_VALUE, a};
    n.operand[1] = (GraphOperand){OPERAND_VALUE, b};
    return graph_add_node(g, &n);
}

int graph_flatten(Graph *g, int in) {
    char name[32];
    snprintf(name, sizeof name, "flatten%d", g->num_nodes);
    if (in == -1) return -1;
    if (in != GRAPH_INPUT && (in < 0 || in >= g->num_nodes)) return hs_error("flatten: bad input %d", in);
    GraphNode n = graph_node_template(GOP_VIEW, name);
    n.num_inputs = 1;
    n.inputs[0] = in;
    n.ndim = 1;
    n.shape[0] = (int64_t)graph_value_size(g, in);
    return graph_add_node(g, &n);
}
