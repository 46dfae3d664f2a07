/* graph.h: a network as data: a static, topologically ordered table of nodes (op, attributes, input values,
 * parameter / buffer / constant tensor ids, per-sample output shape) and the tensors it declares. A graph is
 * built in a few lines per built-in network (builtin.c) or read from an ONNX file (onnx_import.c), and run by
 * the one executor (src/models/executor.c). Precision-independent: initial values are doubles.
 *
 * Values: node i's output is value i; GRAPH_INPUT is the network input x. Every node reads only the input and
 * earlier nodes, and the last node's output is the network's output (logits, or predictions for MSE).
 * Shapes are per sample (the batch dimension is implicit), C order, images (C,H,W).
 * Parameters are declared in the order of the model's parameter vector (PyTorch's model.parameters()); each is
 * used by exactly one node. Buffers are batch-norm running statistics. Constants are non-trainable operands of
 * elementwise ops.
 *
 * Usage:
 *   Graph g; graph_init(&g, "net", 3, (int64_t[]){3, 32, 32});
 *   int c = graph_conv(&g, "0", GRAPH_INPUT, 5, 5, 1, 0, 1, TENSOR_WEIGHT);   (params "0.weight", "0.bias")
 *   int r = graph_unary(&g, GOP_RELU, c); ...
 *   graph_check(&g); ... graph_free(&g);
 * Every builder returns the new node's (or tensor's) id, or -1 with hs_error naming the node; a builder given
 * -1 as an input returns -1 at once (keeping the message), so calls can be chained. */
#ifndef HS_GRAPH_H
#define HS_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#define GRAPH_MAX_DIMS 4    /* per-sample dimensions */
#define GRAPH_MAX_INPUTS 16 /* activation inputs of one node (Concat) */
#define GRAPH_INPUT (-2)    /* value id of the network input (-1 is the builders' error return) */

typedef enum {
    GOP_CONV,           /* in (C,H,W) -> (O,Ho,Wo); param weight (O,C/groups,kh,kw), bias (O) or -1 */
    GOP_LINEAR,         /* in (F) -> (O): x W^T + b; weight (O,F), or (F,O) with attrs.transposed; bias (O) or -1 */
    GOP_BATCHNORM,      /* in (C,...) -> same; param gamma, beta (C); buffer running mean, running var (C) */
    GOP_RELU,           /* elementwise activations: same shape */
    GOP_LEAKY_RELU,     /* attrs.alpha: slope for x < 0 */
    GOP_CLIP,           /* attrs.lo, attrs.hi (ReLU6 = Clip(0, 6)) */
    GOP_SIGMOID,
    GOP_TANH,
    GOP_SOFTPLUS,       /* log(1 + exp(x)) */
    GOP_ERF,
    GOP_MAXPOOL,        /* (C,H,W) -> (C,Ho,Wo); attrs kh, kw, strides, pads, ceil_mode */
    GOP_AVGPOOL,        /* same, and attrs.count_include_pad */
    GOP_GLOBAL_AVGPOOL, /* (C,H,W) -> (C,1,1) */
    GOP_ADD,            /* binary elementwise a op b with numpy broadcasting; operands in node.operand */
    GOP_SUB,
    GOP_MUL,
    GOP_DIV,
    GOP_CONCAT,         /* inputs joined along the per-sample axis attrs.axis */
    GOP_VIEW,           /* the same values with a new per-sample shape (Flatten, Reshape, Identity, Dropout) */
    GOP_COUNT
} GraphOp;

/* Parameter kinds: how model_init_default initialises a tensor (PyTorch defaults). */
enum {
    TENSOR_WEIGHT,             /* kaiming_uniform_(a=sqrt(5)): uniform +-1/sqrt(fan_in) */
    TENSOR_BIAS,               /* uniform +-1/sqrt(fan_in) */
    TENSOR_BN_WEIGHT,          /* 1 */
    TENSOR_BN_BIAS,            /* 0 */
    TENSOR_RUNNING_MEAN,       /* buffer: 0 */
    TENSOR_RUNNING_VAR,        /* buffer: 1 */
    TENSOR_WEIGHT_KAIMING_OUT, /* torchvision ResNet conv: normal, std sqrt(2 / fan_out) */
    TENSOR_OTHER               /* keeps its initial values from the file (an elementwise parameter) */
};

typedef enum { OPERAND_VALUE, OPERAND_PARAM, OPERAND_CONST } OperandKind;
typedef struct {
    OperandKind kind;
    int id; /* value id (node or GRAPH_INPUT), parameter id or constant id */
} GraphOperand;

typedef struct {
    int kh, kw, stride_h, stride_w, dil_h, dil_w; /* conv and pools (conv: kh, kw from the weight) */
    int pad_t, pad_l, pad_b, pad_r;               /* zero padding: top, left, bottom, right */
    int groups;                                   /* conv: 1 dense, C depthwise */
    int ceil_mode, count_include_pad;             /* pools */
    int transposed;                               /* linear: weight stored (In,O) */
    double alpha;                                 /* leaky relu slope */
    double lo, hi;                                /* clip bounds */
    double eps, momentum;                         /* batch norm (PyTorch's momentum: new = (1-m) old + m batch) */
    int axis;                                     /* concat: per-sample axis (0 = channels) */
} GraphAttrs;

typedef struct {
    GraphOp op;
    char name[96];                 /* for messages: the ONNX node name or the module's state_dict prefix */
    int num_inputs;
    int inputs[GRAPH_MAX_INPUTS];  /* activation inputs: value ids (binary ops: their value operands, in order) */
    int param[2];                  /* conv, linear: weight, bias; batch norm: gamma, beta; binary: its parameter
                                      operand in param[0]; -1 none */
    int buffer[2];                 /* batch norm: running mean, running var; -1 none */
    int constant;                  /* binary: its constant operand, -1 none */
    GraphOperand operand[2];       /* binary ops: a and b, in order (a - b, a / b) */
    GraphAttrs attrs;
    /* filled by graph_add_node */
    int ndim;
    int64_t shape[GRAPH_MAX_DIMS]; /* per-sample output shape (GOP_VIEW: set by the caller) */
    size_t size;                   /* per-sample output count */
} GraphNode;

typedef struct {
    char name[96];                 /* PyTorch state_dict name */
    int ndim;
    int64_t shape[GRAPH_MAX_DIMS];
    size_t numel;
    int kind, fan_in;              /* TENSOR_*; fan_in for the default initialisation (0: not a weight/bias) */
    double *values;                /* (numel) initial values owned by the graph, or NULL (default initialisation) */
} GraphTensor;

typedef struct Graph {
    char name[96];                 /* "cnn", "resnet50", or the ONNX file name */
    int in_ndim;
    int64_t in_shape[GRAPH_MAX_DIMS];
    size_t in_size;
    int num_nodes, cap_nodes;
    GraphNode *nodes;              /* (num_nodes) topological order */
    int num_params, cap_params;
    GraphTensor *params;           /* (num_params) the parameter vector's order */
    int num_buffers, cap_buffers;
    GraphTensor *buffers;          /* (num_buffers) */
    int num_constants, cap_constants;
    GraphTensor *constants;        /* (num_constants) values always set */
} Graph;

void graph_init(Graph *g, const char *name, int in_ndim, const int64_t *in_shape);
void graph_free(Graph *g);

/* Tensors; values (numel) copied when not NULL (required for constants). Return the id or -1. */
int graph_add_param(Graph *g, const char *name, int ndim, const int64_t *shape, int kind, int fan_in,
                    const double *values);
int graph_add_buffer(Graph *g, const char *name, int ndim, const int64_t *shape, int kind, const double *values);
int graph_add_constant(Graph *g, const char *name, int ndim, const int64_t *shape, const double *values);

/* Appends a node: checks its inputs (earlier values), tensors and attributes, computes its output shape (for
 * GOP_VIEW checks the caller's shape holds as many values) and returns its value id, or -1 with hs_error
 * naming the node and the op. Unset fields: param/buffer/constant -1 (use graph_node_template). */
int graph_add_node(Graph *g, const GraphNode *node);
/* A node of op `op` named `name` with no inputs, tensors or attributes (strides and dilations 1). */
GraphNode graph_node_template(GraphOp op, const char *name);

/* Whole-graph checks after building: at least one node, every parameter used by exactly one node, every
 * node's output used (except the last). */
int graph_check(const Graph *g);

/* Per-sample shape of a value (GRAPH_INPUT or a node). */
int graph_value_ndim(const Graph *g, int value);
const int64_t *graph_value_shape(const Graph *g, int value);
size_t graph_value_size(const Graph *g, int value);

/* Per-sample shape of operand i (0 or 1) of a binary node: an activation's shape, or a parameter's / constant's
 * without the leading 1s that stand for the batch dimension (a PyTorch parameter (1,C,1,1) against (C,H,W)
 * activations reads as (C,1,1); the tensor keeps its own shape). 0, or -1 for a bad operand. */
int graph_operand_shape(const Graph *g, const GraphNode *nd, int i, int *ndim, const int64_t **shape);

const char *graph_op_name(GraphOp op); /* "Conv", "Relu", ... (ONNX names where there is one) */

/* Builders for the built-in tables; `name` is the module's state_dict prefix ("layer1.0.conv1"), the tensors
 * are "<name>.weight", "<name>.bias", "<name>.running_mean", "<name>.running_var". */
int graph_conv(Graph *g, const char *name, int in, int O, int k, int stride, int pad, int bias, int weight_kind);
int graph_linear(Graph *g, const char *name, int in, int O, int bias);
int graph_batchnorm(Graph *g, const char *name, int in);
int graph_maxpool(Graph *g, int in, int k, int stride, int pad);
int graph_unary(Graph *g, GraphOp op, int in);      /* relu, sigmoid, tanh, softplus, erf, global average pool */
int graph_add(Graph *g, int a, int b);              /* two values of the same shape */
int graph_flatten(Graph *g, int in);                /* (C,H,W) -> (C*H*W) */

/* Built-in networks: "cnn", "cnn_wide" / "cnn_wideH", "resnet18", "resnet50" (10 classes, 3x32x32 input); -1
 * with hs_error for other names. graph_builtin_exists: 1 for those names. */
int graph_builtin(Graph *g, const char *name);
int graph_builtin_exists(const char *name);

#endif
