/* onnx_import.c: an ONNX model (protobuf, parsed with protobuf-c from the generated onnx.pb-c.h) turned into a
 * Graph table (see onnx_import.h for what is accepted).
 *
 * Two passes over the nodes. The first gives every initializer its role from the nodes that read it (weight,
 * bias, batch-norm scale/shift, elementwise parameter, running statistic, or a plain constant such as a shape)
 * so that parameters and buffers can be declared in the file's initializer order before any node. The second
 * walks the nodes in order and keeps, for every ONNX value name, what it is: a graph value (computed from the
 * network input), an initializer, a constant known here (Constant nodes and the shape arithmetic PyTorch
 * exports: Shape -> Gather -> Unsqueeze -> Concat -> Reshape, where the batch size stays symbolic), or an
 * output that must not be read (batch norm's running-statistic outputs, Dropout's mask, MaxPool's indices).
 * ONNX tensors carry the batch dimension first; graph shapes are per sample, so ONNX axis a is graph axis a-1. */
#include "onnx_import.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/common.h"
#include "onnx.pb-c.h"

#define MAX_STATIC_DIMS 8
#define MAX_ATTR_INT (1 << 16)       /* kernel sizes, strides, pads, dilations, groups */
#define MAX_SAMPLE_SIZE ((size_t)1 << 31)
#define BATCH_MARK (-INFINITY)       /* the symbolic batch size inside an integer shape tensor */

enum { T_FLOAT = 1, T_INT32 = 6, T_INT64 = 7, T_BOOL = 9, T_DOUBLE = 11 };

static const char *S(const char *s) { return s ? s : ""; }

/* ---------------------------------------------------------------- constant tensors */

typedef struct {
    int ndim;
    int64_t dims[MAX_STATIC_DIMS];
    size_t numel;
    int is_int;     /* integer or bool element type */
    int from_float; /* float32 values: read back as the shortest decimals (Clip bounds) */
    double *v;      /* (numel) */
} Static;

static void static_free(Static *s) {
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* s with ndim dims and room for the values; 0 or -1. */
static int static_alloc(Static *s, int ndim, const int64_t *dims, int is_int) {
    memset(s, 0, sizeof *s);
    if (ndim < 0 || ndim > MAX_STATIC_DIMS) return hs_error("a constant with %d dimensions (at most %d)", ndim, MAX_STATIC_DIMS);
    s->ndim = ndim;
    s->numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (dims[d] < 0 || dims[d] > ((int64_t)1 << 40)) return hs_error("a constant with dimension %lld", (long long)dims[d]);
        s->dims[d] = dims[d];
        s->numel *= (size_t)dims[d];
        if (s->numel > ((size_t)1 << 34)) return hs_error("%s", "a constant too large");
    }
    s->is_int = is_int;
    s->v = hs_malloc(sizeof(double) * (s->numel ? s->numel : 1));
    return s->v ? 0 : -1;
}

static uint64_t le_bytes(const uint8_t *p, int n) {
    uint64_t x = 0;
    for (int k = n - 1; k >= 0; k--) x = (x << 8) | p[k];
    return x;
}

static const char *type_name(int t) {
    static const char *const names[] = {"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64",
                                        "STRING", "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64",
                                        "COMPLEX128", "BFLOAT16"};
    return t >= 0 && t < (int)(sizeof names / sizeof *names) ? names[t] : "unknown";
}

/* Decodes a TensorProto (float, double, int32, int64 or bool) into s; 0 or -1 naming `what`. */
static int tensor_decode(const Onnx__TensorProto *t, const char *what, Static *s) {
    memset(s, 0, sizeof *s);
    int type = t->has_data_type ? t->data_type : 0;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return hs_error("%s: external data is not supported (save the model with its weights inside)", what);
    if (t->segment) return hs_error("%s: segmented tensors are not supported", what);
    if (type != T_FLOAT && type != T_DOUBLE && type != T_INT64 && type != T_INT32 && type != T_BOOL)
        return hs_error("%s: element type %s is not supported (float, double, int32, int64, bool)", what,
                        type_name(type));
    if (t->n_dims > MAX_STATIC_DIMS) return hs_error("%s: %zu dimensions (at most %d)", what, t->n_dims, MAX_STATIC_DIMS);
    size_t numel = 1;
    for (size_t d = 0; d < t->n_dims; d++) {
        if (t->dims[d] < 0 || t->dims[d] > ((int64_t)1 << 40))
            return hs_error("%s: dimension %zu is %lld", what, d, (long long)t->dims[d]);
        numel *= (size_t)t->dims[d];
        if (numel > ((size_t)1 << 34)) return hs_error("%s: too large", what);
    }
    int width = type == T_FLOAT || type == T_INT32 ? 4 : type == T_BOOL ? 1 : 8;
    size_t have;
    if (t->has_raw_data) have = t->raw_data.len / (size_t)width;
    else if (type == T_FLOAT) have = t->n_float_data;
    else if (type == T_DOUBLE) have = t->n_double_data;
    else if (type == T_INT64) have = t->n_int64_data;
    else have = t->n_int32_data;
    if ((t->has_raw_data && t->raw_data.len != numel * (size_t)width) || have != numel)
        return hs_error("%s: holds %zu values (%s), its shape needs %zu", what,
                        t->has_raw_data ? t->raw_data.len / (size_t)width : have, type_name(type), numel);
    if (static_alloc(s, (int)t->n_dims, t->dims, type != T_FLOAT && type != T_DOUBLE) != 0)
        return hs_error_context("%s: ", what);
    s->from_float = type == T_FLOAT;
    for (size_t k = 0; k < numel; k++) {
        double x;
        if (t->has_raw_data) {
            uint64_t u = le_bytes(t->raw_data.data + k * (size_t)width, width);
            if (type == T_FLOAT) {
                uint32_t u32 = (uint32_t)u;
                float f;
                memcpy(&f, &u32, 4);
                x = f;
            } else if (type == T_DOUBLE) {
                memcpy(&x, &u, 8);
            } else if (type == T_INT32) {
                x = (double)(int32_t)(uint32_t)u;
            } else if (type == T_INT64) {
                x = (double)(int64_t)u;
            } else {
                x = u != 0;
            }
        } else if (type == T_FLOAT) {
            x = t->float_data[k];
        } else if (type == T_DOUBLE) {
            x = t->double_data[k];
        } else if (type == T_INT64) {
            x = (double)t->int64_data[k];
        } else if (type == T_BOOL) {
            x = t->int32_data[k] != 0;
        } else {
            x = t->int32_data[k];
        }
        s->v[k] = x;
    }
    return 0;
}

/* The shortest decimal that rounds to the float f (0.9f = 0.899999976 -> 0.9). */
static double float_decimal(float f) {
    if (!isfinite(f)) return f;
    char buf[40];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        double d = strtod(buf, NULL);
        if ((float)d == f) return d;
    }
    return f;
}

/* PyTorch's momentum 1 - m for ONNX's float m, as the shortest decimal d with (float)(1 - d) == m. */
static double torch_momentum(float m) {
    for (int p = 1; p <= 12; p++) {
        double scale = pow(10.0, p), d = round((1.0 - (double)m) * scale) / scale;
        if ((float)(1.0 - d) == m) return d;
    }
    return 1.0 - (double)m;
}

/* ---------------------------------------------------------------- import state */

typedef enum {
    REF_DYNAMIC,  /* a graph value: node id or GRAPH_INPUT */
    REF_INIT,     /* initializer init (transposed: a Transpose of it) */
    REF_STATIC,   /* a constant known here */
    REF_UNUSABLE, /* an output that must not be read */
} RefKind;

typedef struct {
    const char *name; /* the ONNX value name (owned by the parsed model) */
    RefKind kind;
    int value;        /* REF_DYNAMIC */
    int init, transposed;
    Static st;        /* REF_STATIC */
    const char *what; /* REF_UNUSABLE: the node that made it */
} Ref;

enum { ROLE_NONE, ROLE_STATIC, ROLE_MEAN, ROLE_VAR, ROLE_PARAM };

typedef struct {
    int role, rank, kind, fan_in;
    int param, buffer; /* ids, -1 none */
} InitInfo;

typedef struct {
    const char *file;
    const Onnx__GraphProto *gp;
    int64_t opset;
    Graph *g;
    InitInfo *inits; /* (n_initializer) */
    Ref *refs;
    int num_refs, cap_refs;
    int64_t batch;   /* the data input's exported batch size, -1 when symbolic */
    char nname[96];  /* the node being read, for messages */
} Ctx;

typedef const Onnx__NodeProto Node;

#define NERR(fmt, ...) hs_error("node '%s' (%s): " fmt, c->nname, S(n->op_type), __VA_ARGS__)

static int find_init(const Ctx *c, const char *name) {
    for (size_t i = 0; i < c->gp->n_initializer; i++)
        if (strcmp(S(c->gp->initializer[i]->name), name) == 0) return (int)i;
    return -1;
}

static Ref *find_ref(Ctx *c, const char *name) {
    for (int i = c->num_refs - 1; i >= 0; i--)
        if (strcmp(c->refs[i].name, name) == 0) return &c->refs[i];
    return NULL;
}

static Ref *new_ref(Ctx *c, const char *name, RefKind kind) {
    if (find_ref(c, name)) {
        hs_error("value '%s' is defined twice (node '%s')", name, c->nname);
        return NULL;
    }
    if (c->num_refs == c->cap_refs) {
        int cap = c->cap_refs ? 2 * c->cap_refs : 64;
        Ref *r = realloc(c->refs, sizeof *r * (size_t)cap);
        if (!r) {
            hs_error("%s", "out of memory");
            return NULL;
        }
        c->refs = r;
        c->cap_refs = cap;
    }
    Ref *r = &c->refs[c->num_refs++];
    memset(r, 0, sizeof *r);
    r->name = name;
    r->kind = kind;
    r->init = -1;
    return r;
}

static const char *in_name(Node *n, int j) { return j < (int)n->n_input ? S(n->input[j]) : ""; }

/* Input j (NULL when absent or ""); the names were all resolved before the node's handler runs. */
static Ref *in_ref(Ctx *c, Node *n, int j) {
    const char *name = in_name(n, j);
    return *name ? find_ref(c, name) : NULL;
}

/* The static value of a reference (a copy in *s, owned by the caller); 0 or -1. */
static int static_of(Ctx *c, Node *n, int j, Static *s) {
    Ref *r = in_ref(c, n, j);
    memset(s, 0, sizeof *s);
    if (!r) return NERR("input %d is missing", j);
    if (r->kind == REF_STATIC) {
        *s = r->st;
        s->v = hs_malloc(sizeof(double) * (r->st.numel ? r->st.numel : 1));
        if (!s->v) return -1;
        memcpy(s->v, r->st.v, sizeof(double) * r->st.numel);
        return 0;
    }
    if (r->kind == REF_INIT && !r->transposed) {
        char what[160];
        snprintf(what, sizeof what, "initializer '%.100s'", r->name);
        return tensor_decode(c->gp->initializer[r->init], what, s);
    }
    return NERR("input %d '%s' must be a constant (an initializer or a Constant node)", j, r->name);
}

/* A static integer vector (shape, axes, indices): ≤ 1 dimension, values in *v (caller frees). */
static int int_vector_of(Ctx *c, Node *n, int j, Static *s) {
    HS_TRY(static_of(c, n, j, s));
    if (!s->is_int || s->ndim > 1) {
        static_free(s);
        return NERR("input %d '%s' must be a constant integer vector", j, in_name(n, j));
    }
    return 0;
}

/* Dynamic input j: its graph value. */
static int dyn_in(Ctx *c, Node *n, int j, int *value) {
    Ref *r = in_ref(c, n, j);
    if (!r) return NERR("input %d is missing", j);
    if (r->kind != REF_DYNAMIC)
        return NERR("input %d '%s' is a constant: it must be computed from the network input", j, r->name);
    *value = r->value;
    return 0;
}

/* ---------------------------------------------------------------- attributes */

static const Onnx__AttributeProto *attr(Node *n, const char *name) {
    for (size_t k = 0; k < n->n_attribute; k++)
        if (strcmp(S(n->attribute[k]->name), name) == 0) return n->attribute[k];
    return NULL;
}

static int attr_int(Ctx *c, Node *n, const char *name, int64_t def, int64_t lo, int64_t hi, int64_t *out) {
    const Onnx__AttributeProto *a = attr(n, name);
    *out = def;
    if (!a) return 0;
    if (!(a->has_type ? a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT : a->has_i))
        return NERR("attribute '%s' should be an integer", name);
    if (a->i < lo || a->i > hi)
        return NERR("attribute '%s' is %lld (supported: %lld to %lld)", name, (long long)a->i, (long long)lo, (long long)hi);
    *out = a->i;
    return 0;
}

static int attr_float(Ctx *c, Node *n, const char *name, double def, double *out) {
    const Onnx__AttributeProto *a = attr(n, name);
    *out = def;
    if (!a) return 0;
    if (!(a->has_type ? a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT : a->has_f))
        return NERR("attribute '%s' should be a float", name);
    if (isnan(a->f)) return NERR("attribute '%s' is NaN", name);
    *out = float_decimal(a->f);
    return 0;
}

/* An INTS attribute of exactly `count` values in [lo, hi], or the default (each value def) when absent. */
static int attr_ints(Ctx *c, Node *n, const char *name, int count, int def, int lo, int hi, int *out) {
    const Onnx__AttributeProto *a = attr(n, name);
    for (int k = 0; k < count; k++) out[k] = def;
    if (!a) return 0;
    if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS)
        return NERR("attribute '%s' should be a list of integers", name);
    if ((int)a->n_ints != count || a->n_ints > 8)
        return NERR("attribute '%s' has %zu values, expected %d (2-D windows only)", name, a->n_ints, count);
    for (int k = 0; k < count; k++) {
        if (a->ints[k] < lo || a->ints[k] > hi)
            return NERR("attribute '%s' value %d is %lld (supported: %d to %d)", name, k, (long long)a->ints[k], lo, hi);
        out[k] = (int)a->ints[k];
    }
    return 0;
}

/* auto_pad: NOTSET (explicit pads) or VALID (no padding); SAME_* refused. */
static int attr_auto_pad(Ctx *c, Node *n, int *valid) {
    const Onnx__AttributeProto *a = attr(n, "auto_pad");
    *valid = 0;
    if (!a) return 0;
    size_t len = a->has_s ? a->s.len : 0;
    const char *s = len ? (const char *)a->s.data : "";
    if ((len == 6 && memcmp(s, "NOTSET", 6) == 0) || len == 0) return 0;
    if (len == 5 && memcmp(s, "VALID", 5) == 0) {
        *valid = 1;
        return 0;
    }
    return NERR("auto_pad '%.*s' is not supported (NOTSET with explicit pads, or VALID)", (int)(len > 20 ? 20 : len), s);
}

/* ---------------------------------------------------------------- node helpers */

static int out_dynamic(Ctx *c, Node *n, int value) {
    if (value < 0) return -1;
    Ref *r = new_ref(c, S(n->output[0]), REF_DYNAMIC);
    if (!r) return -1;
    r->value = value;
    return 0;
}

/* Takes ownership of s (freed on failure too). */
static int out_static(Ctx *c, Node *n, Static *s) {
    Ref *r = new_ref(c, S(n->output[0]), REF_STATIC);
    if (!r) {
        static_free(s);
        return -1;
    }
    r->st = *s;
    memset(s, 0, sizeof *s);
    return 0;
}

static GraphNode node_for(Ctx *c, GraphOp op, int in) {
    GraphNode nd = graph_node_template(op, c->nname);
    nd.num_inputs = 1;
    nd.inputs[0] = in;
    return nd;
}

/* A GOP_VIEW of `in` with per-sample shape (ndim, shape). */
static int add_view(Ctx *c, Node *n, int in, int ndim, const int64_t *shape) {
    if (ndim < 1 || ndim > GRAPH_MAX_DIMS) return NERR("a per-sample result of %d dimensions (1 to %d supported)", ndim, GRAPH_MAX_DIMS);
    GraphNode nd = node_for(c, GOP_VIEW, in);
    nd.ndim = ndim;
    memcpy(nd.shape, shape, sizeof(int64_t) * (size_t)ndim);
    return out_dynamic(c, n, graph_add_node(c->g, &nd));
}

static int param_of(Ctx *c, Node *n, int j, const char *role, int optional, int *id) {
    Ref *r = in_ref(c, n, j);
    *id = -1;
    if (!r) return optional ? 0 : NERR("no %s (input %d)", role, j);
    if (r->kind != REF_INIT || r->transposed || c->inits[r->init].param < 0)
        return NERR("the %s '%s' must be an initializer (computed weights are not supported)", role, r->name);
    *id = c->inits[r->init].param;
    return 0;
}

/* ---------------------------------------------------------------- operators */

static int op_conv(Ctx *c, Node *n) {
    int in, valid, dil[2], str[2], pads[4], ks[2];
    int64_t group;
    HS_TRY(dyn_in(c, n, 0, &in));
    GraphNode nd = node_for(c, GOP_CONV, in);
    HS_TRY(param_of(c, n, 1, "weight", 0, &nd.param[0]));
    HS_TRY(param_of(c, n, 2, "bias", 1, &nd.param[1]));
    const GraphTensor *w = &c->g->params[nd.param[0]];
    if (w->ndim != 4 || graph_value_ndim(c->g, in) != 3)
        return NERR("only 2-D convolutions are supported (input (N,C,H,W), weight (O,C,kh,kw)); weight '%s' has %d dimensions",
                    w->name, w->ndim);
    if (w->shape[2] > MAX_ATTR_INT || w->shape[3] > MAX_ATTR_INT) return NERR("kernel %lldx%lld too large", (long long)w->shape[2], (long long)w->shape[3]);
    HS_TRY(attr_auto_pad(c, n, &valid));
    HS_TRY(attr_int(c, n, "group", 1, 1, 1 << 30, &group));
    HS_TRY(attr_ints(c, n, "dilations", 2, 1, 1, MAX_ATTR_INT, dil));
    HS_TRY(attr_ints(c, n, "strides", 2, 1, 1, MAX_ATTR_INT, str));
    HS_TRY(attr_ints(c, n, "pads", 4, 0, 0, MAX_ATTR_INT, pads));
    HS_TRY(attr_ints(c, n, "kernel_shape", 2, 0, 0, MAX_ATTR_INT, ks));
    if (attr(n, "kernel_shape") && (ks[0] != w->shape[2] || ks[1] != w->shape[3]))
        return NERR("kernel_shape %dx%d differs from the weight's %lldx%lld", ks[0], ks[1], (long long)w->shape[2],
                    (long long)w->shape[3]);
    if (valid && attr(n, "pads")) return NERR("%s", "auto_pad VALID together with pads");
    nd.attrs.kh = (int)w->shape[2];
    nd.attrs.kw = (int)w->shape[3];
    nd.attrs.groups = (int)group;
    nd.attrs.dil_h = dil[0], nd.attrs.dil_w = dil[1];
    nd.attrs.stride_h = str[0], nd.attrs.stride_w = str[1];
    /* ONNX pads: x1_begin, x2_begin, x1_end, x2_end = top, left, bottom, right */
    nd.attrs.pad_t = pads[0], nd.attrs.pad_l = pads[1], nd.attrs.pad_b = pads[2], nd.attrs.pad_r = pads[3];
    return out_dynamic(c, n, graph_add_node(c->g, &nd));
}

static int op_pool(Ctx *c, Node *n, GraphOp op) {
    int in, valid, ks[2], str[2], pads[4], dil[2];
    int64_t ceil_mode, cip = 0, order;
    HS_TRY(dyn_in(c, n, 0, &in));
    if (graph_value_ndim(c->g, in) != 3) return NERR("%s", "only 2-D pooling of (N,C,H,W) is supported");
    if (!attr(n, "kernel_shape")) return NERR("%s", "no kernel_shape");
    HS_TRY(attr_auto_pad(c, n, &valid));
    HS_TRY(attr_ints(c, n, "kernel_shape", 2, 1, 1, MAX_ATTR_INT, ks));
    HS_TRY(attr_ints(c, n, "strides", 2, 1, 1, MAX_ATTR_INT, str));
    HS_TRY(attr_ints(c, n, "pads", 4, 0, 0, MAX_ATTR_INT, pads));
    HS_TRY(attr_ints(c, n, "dilations", 2, 1, 1, 1, dil));
    HS_TRY(attr_int(c, n, "ceil_mode", 0, 0, 1, &ceil_mode));
    HS_TRY(attr_int(c, n, "storage_order", 0, 0, 0, &order));
    if (op == GOP_AVGPOOL) HS_TRY(attr_int(c, n, "count_include_pad", 0, 0, 1, &cip));
    if (valid && attr(n, "pads")) return NERR("%s", "auto_pad VALID together with pads");
    GraphNode nd = node_for(c, op, in);
    nd.attrs.kh = ks[0], nd.attrs.kw = ks[1];
    nd.attrs.stride_h = str[0], nd.attrs.stride_w = str[1];
    nd.attrs.pad_t = pads[0], nd.attrs.pad_l = pads[1], nd.attrs.pad_b = pads[2], nd.attrs.pad_r = pads[3];
    nd.attrs.ceil_mode = (int)ceil_mode;
    nd.attrs.count_include_pad = (int)cip;
    return out_dynamic(c, n, graph_add_node(c->g, &nd));
}

static int op_maxpool(Ctx *c, Node *n) { return op_pool(c, n, GOP_MAXPOOL); }
static int op_avgpool(Ctx *c, Node *n) { return op_pool(c, n, GOP_AVGPOOL); }

static int op_unary(Ctx *c, Node *n, GraphOp op) {
    int in;
    HS_TRY(dyn_in(c, n, 0, &in));
    GraphNode nd = node_for(c, op, in);
    if (op == GOP_LEAKY_RELU) HS_TRY(attr_float(c, n, "alpha", 0.01, &nd.attrs.alpha));
    if (op == GOP_GLOBAL_AVGPOOL && graph_value_ndim(c->g, in) != 3)
        return NERR("%s", "only 2-D pooling of (N,C,H,W) is supported");
    return out_dynamic(c, n, graph_add_node(c->g, &nd));
}
static int op_relu(Ctx *c, Node *n) { return op_unary(c, n, GOP_RELU); }
static int op_leaky_relu(Ctx *c, Node *n) { return op_unary(c, n, GOP_LEAKY_RELU); }
static int op_sigmoid(Ctx *c, Node *n) { return op_unary(c, n, GOP_SIGMOID); }
static int op_tanh(Ctx *c, Node *n) { return op_unary(c, n, GOP_TANH); }
static int op_softplus(Ctx *c, Node *n) { return op_unary(c, n, GOP_SOFTPLUS); }
static int op_erf(Ctx *c, Node *n) { return op_unary(c, n, GOP_ERF); }
static int op_global_avgpool(Ctx *c, Node *n) { return op_unary(c, n, GOP_GLOBAL_AVGPOOL); }

/* A scalar Clip bound from input j (absent: def). */
static int clip_bound(Ctx *c, Node *n, int j, double def, double *out) {
    *out = def;
    if (!in_ref(c, n, j)) return 0;
    Static s;
    HS_TRY(static_of(c, n, j, &s));
    int ok = s.numel == 1 && !isnan(s.v[0]) && s.v[0] != BATCH_MARK;
    if (ok) *out = s.from_float ? float_decimal((float)s.v[0]) : s.v[0];
    static_free(&s);
    return ok ? 0 : NERR("bound input %d '%s' must be one number", j, in_name(n, j));
}

static int op_clip(Ctx *c, Node *n) {
    int in;
    HS_TRY(dyn_in(c, n, 0, &in));
    GraphNode nd = node_for(c, GOP_CLIP, in);
    if (c->opset < 11) {
        HS_TRY(attr_float(c, n, "min", -INFINITY, &nd.attrs.lo));
        HS_TRY(attr_float(c, n, "max", INFINITY, &nd.attrs.hi));
        /* opset 6's defaults are the float range: no bound */
        if (nd.attrs.lo <= -3.4e38) nd.attrs.lo = -INFINITY;
        if (nd.attrs.hi >= 3.4e38) nd.attrs.hi = INFINITY;
    } else {
        HS_TRY(clip_bound(c, n, 1, -INFINITY, &nd.attrs.lo));
        HS_TRY(clip_bound(c, n, 2, INFINITY, &nd.attrs.hi));
    }
    return out_dynamic(c, n, graph_add_node(c->g, &nd));
}

static int op_gemm(Ctx *c, Node *n) {
    int in;
    int64_t ta, tb;
    double alpha, beta;
    HS_TRY(dyn_in(c, n, 0, &in));
    HS_TRY(attr_int(c, n, "transA", 0, 0, 0, &ta));
    HS_TRY(attr_int(c, n, "transB", 0, 0, 1, &tb));
    HS_TRY(attr_float(c, n, "alpha", 1.0, &alpha));
    HS_TRY(attr_float(c, n, "beta", 1.0, &beta));
    if (alpha != 1.0 || beta != 1.0) return NERR("alpha %g, beta %g (only 1 supported)", alpha, beta);
    if (graph_value_ndim(c->g, in) != 1) return NERR("%s", "input A must be (N, features)");
    GraphNode nd = node_for(c, GOP_LINEAR, in);
    HS_TRY(param_of(c, n, 1, "weight", 0, &nd.param[0]));
    HS_TRY(param_of(c, n, 2, "bias", 1, &nd.param[1]));
    nd.attrs.transposed = tb == 0;
    return out_dynamic(c, n, graph_add_node(c->g, &nd));
}

static int op_matmul(Ctx *c, Node *n) {
    int in;
    HS_TRY(dyn_in(c, n, 0, &in));
    Ref *b = in_ref(c, n, 1);
    if (!b || b->kind != REF_INIT || c->inits[b->init].param < 0)
        return NERR("the second operand '%s' must be a weight initializer (or its Transpose)", in_name(n, 1));
    if (graph_value_ndim(c->g, in) != 1)
        return NERR("input '%s' has %d dimensions per sample; only (N, features) @ (features, out) is supported",
                    in_name(n, 0), graph_value_ndim(c->g, in));
    GraphNode nd = node_for(c, GOP_LINEAR, in);
    nd.param[0] = c->inits[b->init].param;
    nd.attrs.transposed = !b->transposed;
    return out_dynamic(c, n, graph_add_node(c->g, &nd));
}

static int op_batchnorm(Ctx *c, Node *n) {
    int in;
    int64_t training, spatial;
    double eps;
    HS_TRY(dyn_in(c, n, 0, &in));
    GraphNode nd = node_for(c, GOP_BATCHNORM, in);
    HS_TRY(param_of(c, n, 1, "scale", 0, &nd.param[0]));
    HS_TRY(param_of(c, n, 2, "bias", 0, &nd.param[1]));
    for (int j = 3; j < 5; j++) {
        Ref *r = in_ref(c, n, j);
        if (!r || r->kind != REF_INIT || r->transposed || c->inits[r->init].buffer < 0)
            return NERR("the running %s (input %d) must be an initializer", j == 3 ? "mean" : "variance", j);
        nd.buffer[j - 3] = c->inits[r->init].buffer;
    }
    HS_TRY(attr_float(c, n, "epsilon", 1e-5, &eps));
    nd.attrs.eps = eps;
    const Onnx__AttributeProto *m = attr(n, "momentum");
    if (m && !(m->has_type ? m->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT : m->has_f))
        return NERR("%s", "attribute 'momentum' should be a float");
    if (m && !(m->f >= 0 && m->f <= 1)) return NERR("momentum %g (must be in [0, 1])", (double)m->f);
    nd.attrs.momentum = torch_momentum(m ? m->f : 0.9f);
    HS_TRY(attr_int(c, n, "training_mode", 0, 0, 1, &training));
    HS_TRY(attr_int(c, n, "spatial", 1, 1, 1, &spatial));
    return out_dynamic(c, n, graph_add_node(c->g, &nd));
}

/* Per-sample shape of dynamic input `in` with ONNX rank (ndim + 1). */
static int op_flatten(Ctx *c, Node *n) {
    int in;
    int64_t axis;
    HS_TRY(dyn_in(c, n, 0, &in));
    int rank = graph_value_ndim(c->g, in) + 1;
    HS_TRY(attr_int(c, n, "axis", 1, -rank, rank, &axis));
    if (axis < 0) axis += rank;
    if (axis != 1) return NERR("axis %lld (only 1 supported: the batch stays first)", (long long)axis);
    int64_t size = (int64_t)graph_value_size(c->g, in);
    return add_view(c, n, in, 1, &size);
}

static int op_identity(Ctx *c, Node *n) {
    Ref *r = in_ref(c, n, 0);
    if (!r) return NERR("%s", "no input");
    if (r->kind == REF_DYNAMIC)
        return add_view(c, n, r->value, graph_value_ndim(c->g, r->value), graph_value_shape(c->g, r->value));
    if (r->kind == REF_INIT) { /* an alias of the initializer (a weight read through Identity) */
        int init = r->init, tr = r->transposed;
        if (!(r = new_ref(c, S(n->output[0]), REF_INIT))) return -1;
        r->init = init;
        r->transposed = tr;
        return 0;
    }
    Static s;
    HS_TRY(static_of(c, n, 0, &s));
    return out_static(c, n, &s);
}

static int op_dropout(Ctx *c, Node *n) {
    double ratio;
    int64_t is_test, seed;
    HS_TRY(attr_float(c, n, "ratio", 0.5, &ratio));
    HS_TRY(attr_int(c, n, "is_test", 0, 0, 1, &is_test));
    HS_TRY(attr_int(c, n, "seed", 0, INT64_MIN, INT64_MAX, &seed));
    return op_identity(c, n);
}

/* Pad: only the zero padding PyTorch emits in front of some average pools (all pads 0, mode constant): an
 * identity. Real padding is refused (Conv and the pools take their own pads). */
static int op_pad(Ctx *c, Node *n) {
    const Onnx__AttributeProto *mode = attr(n, "mode");
    if (mode && !(mode->has_s && mode->s.len == 8 && memcmp(mode->s.data, "constant", 8) == 0))
        return NERR("%s", "only mode 'constant' is supported");
    const Onnx__AttributeProto *pads_attr = attr(n, "pads"); /* opset < 11 */
    int nonzero = 0;
    if (pads_attr) {
        for (size_t k = 0; k < pads_attr->n_ints; k++) nonzero |= pads_attr->ints[k] != 0;
    } else if (n->n_input > 1 && *in_name(n, 1)) {
        Static pads;
        HS_TRY(int_vector_of(c, n, 1, &pads));
        for (size_t k = 0; k < pads.numel; k++) nonzero |= pads.v[k] != 0;
        static_free(&pads);
    }
    if (nonzero)
        return NERR("%s", "nonzero padding as a separate node is not supported (use the Conv's or the pool's pads)");
    return op_identity(c, n);
}

static int op_cast(Ctx *c, Node *n) {
    int64_t to;
    HS_TRY(attr_int(c, n, "to", 0, 0, 64, &to));
    Ref *r = in_ref(c, n, 0);
    if (!r) return NERR("%s", "no input");
    if (r->kind == REF_DYNAMIC) {
        if (to != T_FLOAT && to != T_DOUBLE) return NERR("a cast of a computed value to %s (only float)", type_name((int)to));
        return add_view(c, n, r->value, graph_value_ndim(c->g, r->value), graph_value_shape(c->g, r->value));
    }
    Static s;
    HS_TRY(static_of(c, n, 0, &s));
    for (size_t k = 0; k < s.numel; k++) {
        if (s.v[k] == BATCH_MARK) continue;
        if (to == T_FLOAT) s.v[k] = (float)s.v[k];
        else if (to == T_BOOL) s.v[k] = s.v[k] != 0;
        else if (to == T_INT64 || to == T_INT32) {
            if (!isfinite(s.v[k]) || fabs(s.v[k]) > 9e15) {
                static_free(&s);
                return NERR("%s", "cannot cast a non-finite or huge value to an integer");
            }
            s.v[k] = trunc(s.v[k]);
        } else if (to != T_DOUBLE) {
            static_free(&s);
            return NERR("cast to %s is not supported", type_name((int)to));
        }
    }
    s.from_float = to == T_FLOAT;
    s.is_int = to == T_INT64 || to == T_INT32 || to == T_BOOL;
    return out_static(c, n, &s);
}

static int op_constant(Ctx *c, Node *n) {
    Static s;
    if (n->n_attribute != 1) return NERR("%zu attributes, expected one value", n->n_attribute);
    const Onnx__AttributeProto *a = n->attribute[0];
    const char *an = S(a->name);
    char what[160];
    snprintf(what, sizeof what, "node '%.100s' (Constant)", c->nname);
    if (strcmp(an, "value") == 0 && a->t) {
        HS_TRY(tensor_decode(a->t, what, &s));
    } else if (strcmp(an, "value_float") == 0 || strcmp(an, "value_int") == 0) {
        HS_TRY(static_alloc(&s, 0, NULL, an[6] == 'i'));
        s.v[0] = an[6] == 'i' ? (double)a->i : a->f;
        s.from_float = an[6] == 'f';
    } else if (strcmp(an, "value_floats") == 0 || strcmp(an, "value_ints") == 0) {
        int is_int = an[6] == 'i';
        int64_t len = (int64_t)(is_int ? a->n_ints : a->n_floats);
        HS_TRY(static_alloc(&s, 1, &len, is_int));
        for (int64_t k = 0; k < len; k++) s.v[k] = is_int ? (double)a->ints[k] : a->floats[k];
        s.from_float = !is_int;
    } else {
        return NERR("attribute '%s' is not supported (value, value_float(s), value_int(s))", an);
    }
    return out_static(c, n, &s);
}

/* Shape of a dynamic value: (batch, per-sample dims...), the batch symbolic. */
static int op_shape(Ctx *c, Node *n) {
    Ref *r = in_ref(c, n, 0);
    int64_t start, end, full[MAX_STATIC_DIMS + 1];
    int rank;
    if (!r) return NERR("%s", "no input");
    if (r->kind == REF_DYNAMIC) {
        rank = graph_value_ndim(c->g, r->value) + 1;
        full[0] = -1;
        memcpy(full + 1, graph_value_shape(c->g, r->value), sizeof(int64_t) * (size_t)(rank - 1));
    } else {
        Static s;
        HS_TRY(static_of(c, n, 0, &s));
        rank = s.ndim;
        memcpy(full, s.dims, sizeof(int64_t) * (size_t)rank);
        static_free(&s);
    }
    HS_TRY(attr_int(c, n, "start", 0, INT64_MIN / 2, INT64_MAX / 2, &start));
    HS_TRY(attr_int(c, n, "end", rank, INT64_MIN / 2, INT64_MAX / 2, &end));
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = start < 0 ? 0 : start > rank ? rank : start;
    end = end < start ? start : end > rank ? rank : end;
    int64_t len = end - start;
    Static o;
    HS_TRY(static_alloc(&o, 1, &len, 1));
    for (int64_t k = 0; k < len; k++) {
        int64_t d = start + k;
        o.v[k] = (r->kind == REF_DYNAMIC && d == 0) ? BATCH_MARK : (double)full[d];
    }
    return out_static(c, n, &o);
}

static int op_gather(Ctx *c, Node *n) {
    int64_t axis;
    Static d, idx, o;
    HS_TRY(attr_int(c, n, "axis", 0, -1, 0, &axis));
    Ref *r = in_ref(c, n, 0);
    if (r && r->kind == REF_DYNAMIC) return NERR("%s", "Gather of a computed value is not supported (only of shapes)");
    HS_TRY(static_of(c, n, 0, &d));
    if (d.ndim != 1) {
        static_free(&d);
        return NERR("%s", "Gather of a constant with more than 1 dimension is not supported");
    }
    if (int_vector_of(c, n, 1, &idx) != 0) {
        static_free(&d);
        return -1;
    }
    int rc = static_alloc(&o, idx.ndim, idx.dims, d.is_int);
    for (size_t k = 0; rc == 0 && k < idx.numel; k++) {
        double i = idx.v[k];
        if (i < 0) i += (double)d.numel;
        if (!(i >= 0 && i < (double)d.numel)) rc = NERR("index %g out of range for %zu values", idx.v[k], d.numel);
        else o.v[k] = d.v[(size_t)i];
    }
    o.from_float = d.from_float;
    static_free(&d);
    static_free(&idx);
    if (rc != 0) {
        static_free(&o);
        return -1;
    }
    return out_static(c, n, &o);
}

/* Axes of Unsqueeze/Squeeze (attribute before opset 13, input 1 from 13 on) into ax; count in *na (-1: none). */
static int axes_of(Ctx *c, Node *n, int64_t *ax, int *na) {
    *na = -1;
    if (c->opset < 13) {
        const Onnx__AttributeProto *a = attr(n, "axes");
        if (!a) return 0;
        if (a->n_ints > MAX_STATIC_DIMS) return NERR("%zu axes", a->n_ints);
        *na = (int)a->n_ints;
        if (a->n_ints) memcpy(ax, a->ints, sizeof(int64_t) * a->n_ints);
        return 0;
    }
    if (attr(n, "axes")) return NERR("%s", "attribute 'axes' is an input from opset 13 on");
    if (!in_ref(c, n, 1)) return 0;
    Static s;
    HS_TRY(int_vector_of(c, n, 1, &s));
    int ok = s.numel <= MAX_STATIC_DIMS;
    for (size_t k = 0; ok && k < s.numel; k++) {
        ok = fabs(s.v[k]) <= MAX_STATIC_DIMS;
        if (ok) ax[k] = (int64_t)s.v[k];
    }
    *na = (int)s.numel;
    static_free(&s);
    return ok ? 0 : NERR("%s", "bad axes");
}

/* Unsqueeze (squeeze = 0) or Squeeze of a dynamic value (a view; the batch axis stays) or a constant. */
static int op_squeeze_common(Ctx *c, Node *n, int unsqueeze) {
    int64_t ax[MAX_STATIC_DIMS], dims[MAX_STATIC_DIMS + 1];
    int na, rank, in = 0;
    Static s = {0};
    Ref *r = in_ref(c, n, 0);
    if (!r) return NERR("%s", "no input");
    HS_TRY(axes_of(c, n, ax, &na));
    if (r->kind == REF_DYNAMIC) {
        in = r->value;
        rank = graph_value_ndim(c->g, in) + 1;
        dims[0] = 1; /* batch: never squeezed (checked below) */
        memcpy(dims + 1, graph_value_shape(c->g, in), sizeof(int64_t) * (size_t)(rank - 1));
    } else {
        HS_TRY(static_of(c, n, 0, &s));
        rank = s.ndim;
        memcpy(dims, s.dims, sizeof(int64_t) * (size_t)rank);
    }
    int out_rank = unsqueeze ? rank + (na > 0 ? na : 0) : rank;
    int64_t out[MAX_STATIC_DIMS + 1];
    char mark[MAX_STATIC_DIMS + 2] = {0};
    int rc = 0;
    if (unsqueeze && na < 1) rc = NERR("%s", "no axes");
    if (out_rank > MAX_STATIC_DIMS) rc = NERR("%d dimensions", out_rank);
    int marked_rank = unsqueeze ? out_rank : rank;
    for (int k = 0; rc == 0 && k < na; k++) {
        int64_t a = ax[k] < 0 ? ax[k] + marked_rank : ax[k];
        if (a < 0 || a >= marked_rank || mark[a]) rc = NERR("axis %lld out of range or repeated", (long long)ax[k]);
        else if (r->kind == REF_DYNAMIC && a == 0) rc = NERR("%s", "the batch axis cannot be squeezed or inserted");
        else if (!unsqueeze && dims[a] != 1) rc = NERR("axis %lld has size %lld, not 1", (long long)ax[k], (long long)dims[a]);
        else mark[a] = 1;
    }
    int m = 0;
    if (rc == 0 && unsqueeze) {
        for (int k = 0, src = 0; k < out_rank; k++) out[m++] = mark[k] ? 1 : dims[src++];
    } else if (rc == 0) {
        for (int k = 0; k < rank; k++)
            if (!(na < 0 ? dims[k] == 1 && !(r->kind == REF_DYNAMIC && k == 0) : mark[k])) out[m++] = dims[k];
    }
    if (rc != 0) {
        static_free(&s);
        return -1;
    }
    if (r->kind == REF_DYNAMIC) return add_view(c, n, in, m - 1, out + 1);
    s.ndim = m;
    memcpy(s.dims, out, sizeof(int64_t) * (size_t)m);
    return out_static(c, n, &s);
}
static int op_unsqueeze(Ctx *c, Node *n) { return op_squeeze_common(c, n, 1); }
static int op_squeeze(Ctx *c, Node *n) { return op_squeeze_common(c, n, 0); }

static int op_reshape(Ctx *c, Node *n) {
    int64_t allowzero;
    Static sh;
    HS_TRY(attr_int(c, n, "allowzero", 0, 0, 1, &allowzero));
    Ref *r = in_ref(c, n, 0);
    if (!r) return NERR("%s", "no input");
    HS_TRY(int_vector_of(c, n, 1, &sh));
    int k = (int)sh.numel, dynamic = r->kind == REF_DYNAMIC, in = dynamic ? r->value : 0, rc = 0;
    int64_t full[MAX_STATIC_DIMS + 1], out[MAX_STATIC_DIMS];
    int rank;
    size_t total;
    Static s = {0};
    if (dynamic) {
        rank = graph_value_ndim(c->g, in) + 1;
        full[0] = -1;
        memcpy(full + 1, graph_value_shape(c->g, in), sizeof(int64_t) * (size_t)(rank - 1));
        total = graph_value_size(c->g, in);
    } else {
        if (static_of(c, n, 0, &s) != 0) {
            static_free(&sh);
            return -1;
        }
        rank = s.ndim;
        memcpy(full, s.dims, sizeof(int64_t) * (size_t)rank);
        total = s.numel;
    }
    if (k < 1 || k > MAX_STATIC_DIMS) rc = NERR("target shape of %d dimensions", k);
    /* the batch dimension (dynamic input): the symbolic batch, 0 (copy), -1 (inferred) or the exported size */
    int first = 0, infer_at = -1;
    if (rc == 0 && dynamic) {
        double b = sh.v[0];
        if (!(b == BATCH_MARK || (b == 0 && !allowzero) || b == -1 || (c->batch > 0 && b == (double)c->batch)))
            rc = NERR("the target shape's first dimension is %g: the batch dimension must stay first", b);
        if (b == -1) infer_at = 0;
        first = 1;
    }
    size_t known = 1;
    for (int d = first; rc == 0 && d < k; d++) {
        double v = sh.v[d];
        if (v == -1) {
            if (infer_at >= 0) rc = NERR("%s", "two -1 dimensions in the target shape");
            infer_at = d;
            out[d] = -1;
        } else if (v == 0 && !allowzero) {
            if (d >= rank) rc = NERR("target dimension %d copies (0) a dimension the input lacks", d);
            else out[d] = full[d];
        } else if (v >= 1 && v <= (double)((int64_t)1 << 31)) {
            out[d] = (int64_t)v;
        } else {
            rc = NERR("target dimension %d is %g", d, v);
        }
        if (rc == 0 && out[d] > 0) {
            known *= (size_t)out[d];
            if (known > MAX_SAMPLE_SIZE * 4) rc = NERR("%s", "target shape too large");
        }
    }
    if (rc == 0 && infer_at > 0) {
        if (known == 0 || total % known) rc = NERR("cannot infer the -1 dimension: %zu values, %zu per step", total, known);
        else out[infer_at] = (int64_t)(total / known);
    } else if (rc == 0 && known != total) {
        rc = NERR("target shape holds %zu values per sample, the input %zu", known, total);
    }
    static_free(&sh);
    if (rc != 0) {
        static_free(&s);
        return -1;
    }
    if (dynamic) return add_view(c, n, in, k - 1, out + 1);
    s.ndim = k;
    memcpy(s.dims, out, sizeof(int64_t) * (size_t)k);
    return out_static(c, n, &s);
}

static int op_concat(Ctx *c, Node *n) {
    int64_t axis;
    int nin = (int)n->n_input, dyn = 0;
    if (nin < 1) return NERR("%s", "no inputs");
    for (int j = 0; j < nin; j++) {
        Ref *r = in_ref(c, n, j);
        if (!r) return NERR("input %d is missing", j);
        dyn += r->kind == REF_DYNAMIC;
    }
    if (dyn && dyn != nin) return NERR("%s", "joins computed values with constants (not supported)");
    if (dyn) {
        if (nin > GRAPH_MAX_INPUTS) return NERR("%d inputs (at most %d)", nin, GRAPH_MAX_INPUTS);
        int rank = graph_value_ndim(c->g, in_ref(c, n, 0)->value) + 1;
        HS_TRY(attr_int(c, n, "axis", 0, -rank, rank - 1, &axis));
        if (axis < 0) axis += rank;
        if (axis == 0) return NERR("%s", "concatenation along the batch dimension is not supported");
        GraphNode nd = graph_node_template(GOP_CONCAT, c->nname);
        nd.num_inputs = nin;
        for (int j = 0; j < nin; j++) nd.inputs[j] = in_ref(c, n, j)->value;
        nd.attrs.axis = (int)axis - 1;
        return out_dynamic(c, n, graph_add_node(c->g, &nd));
    }
    /* constants: 1-D vectors (shape arithmetic) */
    HS_TRY(attr_int(c, n, "axis", 0, -1, 0, &axis));
    Static parts[GRAPH_MAX_INPUTS], o;
    if (nin > GRAPH_MAX_INPUTS) return NERR("%d constant inputs (at most %d)", nin, GRAPH_MAX_INPUTS);
    int64_t len = 0, got = 0;
    int rc = 0, is_int = 1, from_float = 0;
    for (; got < nin && rc == 0; got++) {
        rc = static_of(c, n, (int)got, &parts[got]);
        if (rc == 0 && parts[got].ndim != 1) rc = NERR("%s", "only 1-D constants can be joined");
        if (rc == 0) {
            len += (int64_t)parts[got].numel;
            is_int &= parts[got].is_int;
            from_float |= parts[got].from_float;
        } else {
            got++;
            break;
        }
    }
    if (rc == 0) rc = static_alloc(&o, 1, &len, is_int);
    for (int64_t j = 0, at = 0; rc == 0 && j < nin; j++) {
        memcpy(o.v + at, parts[j].v, sizeof(double) * parts[j].numel);
        at += (int64_t)parts[j].numel;
    }
    for (int64_t j = 0; j < got; j++) static_free(&parts[j]);
    if (rc != 0) return -1;
    o.from_float = from_float;
    return out_static(c, n, &o);
}

/* Drops a leading 1 from an operand of rank `rank` + 1 (ONNX) so it broadcasts per sample (constants are stored
 * so; parameters keep their shape and are only checked here). */
static int per_sample_operand(Ctx *c, Node *n, int j, int *ndim, int64_t *shape, int sample_rank) {
    if (*ndim <= sample_rank) return 0;
    if (*ndim > sample_rank + 1 || shape[0] != 1)
        return NERR("operand %d '%s' would broadcast over the batch dimension (not supported)", j, in_name(n, j));
    (*ndim)--;
    memmove(shape, shape + 1, sizeof(int64_t) * (size_t)*ndim);
    return 0;
}

static double static_binary(GraphOp op, double a, double b, int is_int) {
    switch (op) {
    case GOP_ADD: return a + b;
    case GOP_SUB: return a - b;
    case GOP_MUL: return a * b;
    default: return is_int ? (b == 0 ? NAN : trunc(a / b)) : a / b;
    }
}

static int op_binary(Ctx *c, Node *n, GraphOp op) {
    Ref *r[2];
    int dyn_rank = -1;
    for (int j = 0; j < 2; j++) {
        if (!(r[j] = in_ref(c, n, j))) return NERR("input %d is missing", j);
        if (r[j]->kind == REF_DYNAMIC) {
            int rank = graph_value_ndim(c->g, r[j]->value);
            if (dyn_rank >= 0 && rank != dyn_rank)
                return NERR("%s", "computed operands of different ranks (not supported)");
            dyn_rank = rank;
        }
    }
    if (dyn_rank < 0) { /* constant expression (shape arithmetic): evaluated here */
        Static a, b, o;
        HS_TRY(static_of(c, n, 0, &a));
        if (static_of(c, n, 1, &b) != 0) {
            static_free(&a);
            return -1;
        }
        int rc = 0;
        if (a.numel != b.numel && a.numel != 1 && b.numel != 1)
            rc = NERR("%s", "constant operands of different sizes (only equal sizes or one number)");
        Static *big = a.numel >= b.numel ? &a : &b;
        if (rc == 0) rc = static_alloc(&o, big->ndim, big->dims, a.is_int && b.is_int);
        for (size_t k = 0; rc == 0 && k < o.numel; k++) {
            double x = a.v[a.numel == 1 ? 0 : k], y = b.v[b.numel == 1 ? 0 : k];
            if (x == BATCH_MARK || y == BATCH_MARK) rc = NERR("%s", "arithmetic on the batch size is not supported");
            else o.v[k] = static_binary(op, x, y, o.is_int);
        }
        static_free(&a);
        static_free(&b);
        if (rc != 0) return -1;
        return out_static(c, n, &o);
    }
    GraphNode nd = graph_node_template(op, c->nname);
    for (int j = 0; j < 2; j++) {
        Ref *x = r[j];
        if (x->kind == REF_DYNAMIC) {
            nd.operand[j] = (GraphOperand){OPERAND_VALUE, x->value};
        } else if (x->kind == REF_INIT && c->inits[x->init].param >= 0 && !x->transposed) {
            const GraphTensor *t = &c->g->params[c->inits[x->init].param];
            int nd_copy = t->ndim; /* checked on a copy: the parameter keeps its PyTorch shape (graph_operand_shape) */
            int64_t shape_copy[GRAPH_MAX_DIMS];
            memcpy(shape_copy, t->shape, sizeof shape_copy);
            HS_TRY(per_sample_operand(c, n, j, &nd_copy, shape_copy, dyn_rank));
            nd.operand[j] = (GraphOperand){OPERAND_PARAM, c->inits[x->init].param};
        } else {
            Static s;
            HS_TRY(static_of(c, n, j, &s));
            int rc = per_sample_operand(c, n, j, &s.ndim, s.dims, dyn_rank);
            for (size_t k = 0; rc == 0 && k < s.numel; k++)
                if (s.v[k] == BATCH_MARK) rc = NERR("%s", "arithmetic with the batch size is not supported");
            int id = rc == 0 ? graph_add_constant(c->g, x->name, s.ndim, s.dims, s.v) : -1;
            static_free(&s);
            if (id < 0) return -1;
            nd.operand[j] = (GraphOperand){OPERAND_CONST, id};
        }
    }
    return out_dynamic(c, n, graph_add_node(c->g, &nd));
}
static int op_add(Ctx *c, Node *n) { return op_binary(c, n, GOP_ADD); }
static int op_sub(Ctx *c, Node *n) { return op_binary(c, n, GOP_SUB); }
static int op_mul(Ctx *c, Node *n) { return op_binary(c, n, GOP_MUL); }
static int op_div(Ctx *c, Node *n) { return op_binary(c, n, GOP_DIV); }

/* Transpose of a 2-D weight initializer (PyTorch's F.linear as MatMul): an alias read by op_matmul. */
static int op_transpose(Ctx *c, Node *n) {
    Ref *r = in_ref(c, n, 0);
    const Onnx__AttributeProto *p = attr(n, "perm");
    if (!r || r->kind != REF_INIT || r->transposed || c->gp->initializer[r->init]->n_dims != 2 ||
        (p && !(p->n_ints == 2 && p->ints[0] == 1 && p->ints[1] == 0)))
        return NERR("%s", "only the transpose of a 2-D weight initializer (read by MatMul) is supported");
    Ref *o = new_ref(c, S(n->output[0]), REF_INIT);
    if (!o) return -1;
    o->init = r->init;
    o->transposed = 1;
    return 0;
}

typedef struct {
    const char *name;
    int (*fn)(Ctx *, Node *);
    const char *attrs; /* the attributes understood, space separated (others are refused) */
} OpDef;

static const OpDef ops[] = {
    {"Conv", op_conv, " auto_pad dilations group kernel_shape pads strides "},
    {"Gemm", op_gemm, " alpha beta transA transB "},
    {"MatMul", op_matmul, " "},
    {"Add", op_add, " "},
    {"Sub", op_sub, " "},
    {"Mul", op_mul, " "},
    {"Div", op_div, " "},
    {"Relu", op_relu, " "},
    {"LeakyRelu", op_leaky_relu, " alpha "},
    {"Clip", op_clip, " min max "},
    {"Sigmoid", op_sigmoid, " "},
    {"Tanh", op_tanh, " "},
    {"Softplus", op_softplus, " "},
    {"Erf", op_erf, " "},
    {"MaxPool", op_maxpool, " auto_pad ceil_mode dilations kernel_shape pads storage_order strides "},
    {"AveragePool", op_avgpool, " auto_pad ceil_mode count_include_pad kernel_shape pads strides "},
    {"GlobalAveragePool", op_global_avgpool, " "},
    {"BatchNormalization", op_batchnorm, " epsilon momentum training_mode spatial is_test "},
    {"Flatten", op_flatten, " axis "},
    {"Reshape", op_reshape, " allowzero "},
    {"Identity", op_identity, " "},
    {"Dropout", op_dropout, " ratio is_test seed "},
    {"Pad", op_pad, " mode pads value "},
    {"Concat", op_concat, " axis "},
    /* evaluated here (constants and shapes) */
    {"Constant", op_constant, NULL},
    {"Shape", op_shape, " start end "},
    {"Gather", op_gather, " axis "},
    {"Unsqueeze", op_unsqueeze, " axes "},
    {"Squeeze", op_squeeze, " axes "},
    {"Cast", op_cast, " to "},
    {"Transpose", op_transpose, " perm "},
};

static const char supported_list[] =
    "Conv, Gemm, MatMul, Add, Sub, Mul, Div, Relu, LeakyRelu, Clip, Sigmoid, Tanh, Softplus, Erf, MaxPool, "
    "AveragePool, GlobalAveragePool, BatchNormalization, Flatten, Reshape, Identity, Dropout, Concat, Pad (zero); "
    "and for "
    "constants and shapes Constant, Shape, Gather, Unsqueeze, Squeeze, Cast, Transpose (of a weight)";

/* ---------------------------------------------------------------- passes */

/* Initializer of a name, following Transpose/Identity of an initializer (pass 1 aliases); -1 none. */
static int alias_init(Ctx *c, const char **alias_name, const int *alias_init_ids, const int *alias_tr, int num_alias,
                      const char *name, int *transposed) {
    *transposed = 0;
    int i = find_init(c, name);
    if (i >= 0) return i;
    for (int k = 0; k < num_alias; k++)
        if (strcmp(alias_name[k], name) == 0) {
            *transposed = alias_tr[k];
            return alias_init_ids[k];
        }
    return -1;
}

/* fan_in of a weight: the product of its dimensions from `from` on; 0 when not sensible (the tensor is
 * checked when it is decoded). */
static int64_t prod_dims(const Onnx__TensorProto *t, size_t from) {
    int64_t p = 1;
    for (size_t d = from; d < t->n_dims; d++) {
        if (t->dims[d] <= 0 || t->dims[d] >= (1 << 30)) return 0;
        p *= t->dims[d];
        if (p >= (1 << 30)) return 0;
    }
    return p;
}

static int dim_or0(const Onnx__TensorProto *t, int d) {
    return t->dims[d] > 0 && t->dims[d] < (1 << 30) ? (int)t->dims[d] : 0;
}

/* Pass 1: roles of the initializers; then parameters and buffers declared in initializer order. */
static int declare_tensors(Ctx *c) {
    const Onnx__GraphProto *gp = c->gp;
    size_t nn = gp->n_node;
    const char **an = hs_calloc(nn + 1, sizeof *an);
    int *ai = hs_calloc(nn + 1, sizeof *ai), *at = hs_calloc(nn + 1, sizeof *at), na = 0, rc = 0;
    if (!an || !ai || !at) rc = -1;
    for (size_t k = 0; rc == 0 && k < nn; k++) {
        Node *n = gp->node[k];
        const char *op = S(n->op_type);
        for (size_t j = 0; j < n->n_input; j++) {
            int tr, i = alias_init(c, an, ai, at, na, S(n->input[j]), &tr);
            if (i < 0) continue;
            InitInfo *f = &c->inits[i];
            const Onnx__TensorProto *t = gp->initializer[i];
            int role = ROLE_STATIC, kind = TENSOR_OTHER, fan_in = 0;
            if ((strcmp(op, "Transpose") == 0 || strcmp(op, "Identity") == 0) && n->n_output >= 1 && j == 0) {
                an[na] = S(n->output[0]);
                ai[na] = i;
                at[na++] = tr ^ (op[0] == 'T');
                continue;
            }
            int is_float = t->has_data_type && (t->data_type == T_FLOAT || t->data_type == T_DOUBLE);
            if (strcmp(op, "Conv") == 0 && (j == 1 || j == 2)) {
                const Onnx__TensorProto *w = NULL;
                if (j == 2 && n->n_input > 1) {
                    int tw, iw = alias_init(c, an, ai, at, na, S(n->input[1]), &tw);
                    w = iw >= 0 ? gp->initializer[iw] : NULL;
                }
                role = ROLE_PARAM;
                kind = j == 1 ? TENSOR_WEIGHT : TENSOR_BIAS;
                fan_in = (int)prod_dims(j == 1 ? t : w ? w : t, 1);
            } else if (strcmp(op, "Gemm") == 0 && (j == 1 || j == 2)) {
                const Onnx__TensorProto *w = t;
                int tb = 0;
                for (size_t q = 0; q < n->n_attribute; q++)
                    if (strcmp(S(n->attribute[q]->name), "transB") == 0) tb = n->attribute[q]->i != 0;
                if (j == 2 && n->n_input > 1) {
                    int tw, iw = alias_init(c, an, ai, at, na, S(n->input[1]), &tw);
                    w = iw >= 0 ? gp->initializer[iw] : NULL;
                }
                role = ROLE_PARAM;
                kind = j == 1 ? TENSOR_WEIGHT : TENSOR_BIAS;
                fan_in = w && w->n_dims == 2 ? dim_or0(w, tb ? 1 : 0) : 0;
            } else if (strcmp(op, "MatMul") == 0 && j == 1) {
                role = ROLE_PARAM;
                kind = TENSOR_WEIGHT;
                fan_in = t->n_dims == 2 ? dim_or0(t, tr ? 1 : 0) : 0;
            } else if (strcmp(op, "BatchNormalization") == 0 && j >= 1 && j <= 4) {
                role = j <= 2 ? ROLE_PARAM : j == 3 ? ROLE_MEAN : ROLE_VAR;
                kind = j == 1 ? TENSOR_BN_WEIGHT : j == 2 ? TENSOR_BN_BIAS : j == 3 ? TENSOR_RUNNING_MEAN : TENSOR_RUNNING_VAR;
            } else if ((strcmp(op, "Add") == 0 || strcmp(op, "Sub") == 0 || strcmp(op, "Mul") == 0 ||
                        strcmp(op, "Div") == 0 || strcmp(op, "MatMul") == 0 || strcmp(op, "Gemm") == 0) &&
                       is_float) {
                role = ROLE_PARAM;
            }
            /* the most specific use wins: weight/bias/BN kinds > elementwise parameter > buffer > constant */
            int rank = role == ROLE_PARAM ? (kind == TENSOR_OTHER ? 3 : 4) : role == ROLE_STATIC ? 1 : role ? 2 : 0;
            if (rank > f->rank) {
                f->rank = rank;
                f->role = role;
                f->kind = kind;
                f->fan_in = fan_in;
            }
        }
    }
    free(an);
    free(ai);
    free(at);
    for (size_t i = 0; rc == 0 && i < gp->n_initializer; i++) {
        InitInfo *f = &c->inits[i];
        const Onnx__TensorProto *t = gp->initializer[i];
        const char *name = S(t->name);
        if (f->role != ROLE_PARAM && f->role != ROLE_MEAN && f->role != ROLE_VAR) continue;
        char what[160];
        snprintf(what, sizeof what, "initializer '%.100s'", name);
        if (t->has_data_type && t->data_type != T_FLOAT && t->data_type != T_DOUBLE) {
            rc = hs_error("%s: element type %s; a %s must be float or double", what, type_name(t->data_type),
                          f->role == ROLE_PARAM ? "parameter" : "running statistic");
            break;
        }
        Static s;
        if ((rc = tensor_decode(t, what, &s)) != 0) break;
        for (size_t k = 0; k < s.numel && rc == 0; k++)
            if (!isfinite(s.v[k])) rc = hs_error("%s: value %zu is not finite", what, k);
        if (rc == 0 && s.ndim > GRAPH_MAX_DIMS)
            rc = hs_error("%s: %d dimensions (at most %d)", what, s.ndim, GRAPH_MAX_DIMS);
        if (rc == 0 && f->role == ROLE_PARAM) {
            f->param = graph_add_param(c->g, name, s.ndim, s.dims, f->kind, f->fan_in, s.v);
            rc = f->param < 0 ? -1 : 0;
        } else if (rc == 0) {
            f->buffer = graph_add_buffer(c->g, name, s.ndim, s.dims, f->kind, s.v);
            rc = f->buffer < 0 ? -1 : 0;
        }
        static_free(&s);
    }
    return rc;
}

/* The data input: the one graph input that is not an initializer, (N, ...) with concrete dims after N. */
static int read_input(Ctx *c, const Onnx__ValueInfoProto **out) {
    const Onnx__GraphProto *gp = c->gp;
    const Onnx__ValueInfoProto *in = NULL;
    int count = 0;
    for (size_t k = 0; k < gp->n_input; k++)
        if (find_init(c, S(gp->input[k]->name)) < 0) {
            count++;
            in = gp->input[k];
        }
    if (count != 1) return hs_error("the graph has %d data inputs (not initializers); exactly one is supported", count);
    const char *name = S(in->name);
    const Onnx__TypeProto *tp = in->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return hs_error("input '%s' is not a tensor", name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->has_elem_type && tt->elem_type != T_FLOAT && tt->elem_type != T_DOUBLE)
        return hs_error("input '%s' has element type %s (float supported)", name, type_name(tt->elem_type));
    if (!tt->shape) return hs_error("input '%s' has no shape: dynamic shapes not supported", name);
    size_t rank = tt->shape->n_dim;
    if (rank < 2 || rank > GRAPH_MAX_DIMS + 1)
        return hs_error("input '%s' has %zu dimensions; 2 to %d supported (batch first)", name, rank, GRAPH_MAX_DIMS + 1);
    int64_t shape[GRAPH_MAX_DIMS];
    size_t size = 1;
    for (size_t d = 0; d < rank; d++) {
        const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[d];
        int concrete = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && dim->dim_value > 0;
        if (d == 0) {
            c->batch = concrete ? dim->dim_value : -1;
            continue;
        }
        if (!concrete)
            return hs_error("input '%s' dimension %zu is %s%s%s: dynamic shapes not supported (only the batch dimension may "
                            "be symbolic)", name, d,
                            dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ? "'" : "",
                            dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ? S(dim->dim_param)
                            : dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ? "not positive"
                                                                                                   : "unknown",
                            dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ? "'" : "");
        if (dim->dim_value > (int64_t)MAX_SAMPLE_SIZE || (size *= (size_t)dim->dim_value) > MAX_SAMPLE_SIZE)
            return hs_error("input '%s': a sample of more than %zu values", name, MAX_SAMPLE_SIZE);
        shape[d - 1] = dim->dim_value;
    }
    *out = in;
    char gname[sizeof c->g->name];
    memcpy(gname, c->g->name, sizeof gname);
    graph_init(c->g, gname, (int)rank - 1, shape);
    return 0;
}

/* The node's message name: its own, else "<op>_<index>". */
static void set_node_name(Ctx *c, Node *n, size_t k) {
    if (n->name && *n->name) snprintf(c->nname, sizeof c->nname, "%s", n->name);
    else snprintf(c->nname, sizeof c->nname, "%.60s_%zu", S(n->op_type), k);
}

static int attrs_allowed(Ctx *c, Node *n, const OpDef *def) {
    if (!def->attrs) return 0;
    for (size_t k = 0; k < n->n_attribute; k++) {
        const char *a = S(n->attribute[k]->name);
        char key[80];
        if (snprintf(key, sizeof key, " %s ", a) >= (int)sizeof key || !strstr(def->attrs, key))
            return NERR("attribute '%.60s' is not supported (supported:%s)", a, def->attrs);
    }
    return 0;
}

/* Pass 2: the nodes in order. */
static int read_nodes(Ctx *c) {
    const Onnx__GraphProto *gp = c->gp;
    for (size_t k = 0; k < gp->n_node; k++) {
        Node *n = gp->node[k];
        const char *op = S(n->op_type);
        set_node_name(c, n, k);
        if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx") != 0)
            return NERR("operator domain '%s' is not supported (only the default ONNX domain)", n->domain);
        /* inputs: defined earlier, or missing / out of order */
        for (size_t j = 0; j < n->n_input; j++) {
            const char *name = S(n->input[j]);
            if (!*name) continue;
            Ref *r = find_ref(c, name);
            if (r && r->kind == REF_UNUSABLE)
                return NERR("reads '%s', %s (only the first output is supported)", name, r->what);
            if (r) continue;
            for (size_t q = k + 1; q < gp->n_node; q++)
                for (size_t o = 0; o < gp->node[q]->n_output; o++)
                    if (strcmp(S(gp->node[q]->output[o]), name) == 0)
                        return NERR("reads '%s' before node %zu produces it: the nodes are not in topological order",
                                    name, q);
            return NERR("input '%s' is not the graph input, an initializer or an earlier node's output (missing "
                        "initializer '%s')", name, name);
        }
        if (n->n_output < 1 || !*S(n->output[0])) return NERR("%s", "no output");
        const OpDef *def = NULL;
        for (size_t q = 0; q < sizeof ops / sizeof *ops; q++)
            if (strcmp(ops[q].name, op) == 0) def = &ops[q];
        if (!def && (strcmp(op, "Softmax") == 0 || strcmp(op, "LogSoftmax") == 0) && k + 1 == gp->n_node)
            return NERR("the graph ends in %s: export the logits (the loss applies log-softmax itself)", op);
        if (!def) return NERR("operator '%.60s' is not supported (supported: %s)", op, supported_list);
        HS_TRY(attrs_allowed(c, n, def));
        HS_TRY(def->fn(c, n));
        for (size_t o = 1; o < n->n_output; o++) {
            const char *name = S(n->output[o]);
            if (!*name) continue;
            Ref *r = new_ref(c, name, REF_UNUSABLE);
            if (!r) return -1;
            r->what = "an extra output of an earlier node";
        }
    }
    return 0;
}

static int check_output(Ctx *c) {
    const Onnx__GraphProto *gp = c->gp;
    if (gp->n_output != 1) return hs_error("the graph has %zu outputs; exactly one is supported", gp->n_output);
    const char *name = S(gp->output[0]->name);
    Ref *r = find_ref(c, name);
    if (!r) return hs_error("output '%s' is not produced by any node", name);
    if (r->kind != REF_DYNAMIC || r->value == GRAPH_INPUT)
        return hs_error("output '%s' is not computed by a node from the network input", name);
    if (r->value != c->g->num_nodes - 1)
        return hs_error("output '%s' is not the last node's result (node '%s' comes after it)", name,
                        c->g->nodes[c->g->num_nodes - 1].name);
    return 0;
}

static int import_model(Ctx *c, const Onnx__ModelProto *m) {
    if (!m->has_ir_version || m->ir_version < 3 || m->ir_version > 10)
        return hs_error("IR version %lld is not supported (3 to 10)", m->has_ir_version ? (long long)m->ir_version : 0LL);
    c->opset = -1;
    for (size_t k = 0; k < m->n_opset_import; k++) {
        const char *d = S(m->opset_import[k]->domain);
        if (!*d || strcmp(d, "ai.onnx") == 0) c->opset = m->opset_import[k]->has_version ? m->opset_import[k]->version : -1;
    }
    if (c->opset < 7 || c->opset > 20)
        return c->opset < 0 ? hs_error("%s", "no opset for the default ONNX domain")
                            : hs_error("opset %lld is not supported (7 to 20)", (long long)c->opset);
    if (!m->graph) return hs_error("%s", "no graph");
    c->gp = m->graph;
    if (c->gp->n_sparse_initializer) return hs_error("%s", "sparse initializers are not supported");
    if (c->gp->n_node < 1) return hs_error("%s", "the graph has no nodes");
    const Onnx__ValueInfoProto *in = NULL;
    HS_TRY(read_input(c, &in));
    c->inits = hs_calloc(c->gp->n_initializer + 1, sizeof *c->inits);
    if (!c->inits) return -1;
    for (size_t i = 0; i < c->gp->n_initializer; i++) {
        c->inits[i].param = c->inits[i].buffer = -1;
        const char *name = S(c->gp->initializer[i]->name);
        if (!*name) return hs_error("initializer %zu has no name", i);
        for (size_t q = 0; q < i; q++)
            if (strcmp(S(c->gp->initializer[q]->name), name) == 0) return hs_error("two initializers named '%s'", name);
    }
    HS_TRY(declare_tensors(c));
    snprintf(c->nname, sizeof c->nname, "(inputs)");
    Ref *r = new_ref(c, S(in->name), REF_DYNAMIC);
    if (!r) return -1;
    r->value = GRAPH_INPUT;
    for (size_t i = 0; i < c->gp->n_initializer; i++) {
        if (strcmp(S(c->gp->initializer[i]->name), S(in->name)) == 0) continue;
        if (!(r = new_ref(c, S(c->gp->initializer[i]->name), REF_INIT))) return -1;
        r->init = (int)i;
    }
    HS_TRY(read_nodes(c));
    HS_TRY(check_output(c));
    return graph_check(c->g);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int onnx_import_buffer(const void *data, size_t size, const char *name, Graph *g) {
    memset(g, 0, sizeof *g);
    if (size == 0) return hs_error("%s: empty file (not an ONNX model)", name);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, data);
    if (!m) return hs_error("%s: not an ONNX model (the protobuf does not parse: the file is truncated or not ONNX)", name);
    Ctx c;
    memset(&c, 0, sizeof c);
    c.file = name;
    c.g = g;
    graph_init(g, base_name(name), 0, NULL);
    int rc = import_model(&c, m);
    for (int i = 0; i < c.num_refs; i++)
        if (c.refs[i].kind == REF_STATIC) static_free(&c.refs[i].st);
    free(c.refs);
    free(c.inits);
    onnx__model_proto__free_unpacked(m, NULL);
    if (rc != 0) {
        graph_free(g);
        return hs_error_context("%s: ", name);
    }
    return 0;
}

int onnx_import(const char *path, Graph *g) {
    memset(g, 0, sizeof *g);
    FILE *fp = fopen(path, "rb");
    if (!fp) return hs_error("%s: cannot open: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 1 << 16;
            uint8_t *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(fp);
                return hs_error("%s: out of memory reading the file", path);
            }
            buf = p;
        }
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0) break;
    }
    int err = ferror(fp);
    fclose(fp);
    if (err) {
        free(buf);
        return hs_error("%s: read error", path);
    }
    int rc = onnx_import_buffer(buf, len, path, g);
    free(buf);
    return rc;
}
