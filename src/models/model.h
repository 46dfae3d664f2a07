/* model.h: a network with all its parameters in one contiguous buffer in PyTorch's model.parameters()
 * order, and the four passes over the whole network (precision-generic: Model holds `real`). Every network
 * is a node table (src/graph/graph.h: the built-in cnn, resnet18, resnet50, or an ONNX file) run by the one
 * executor (executor.c).
 *
 * Every vector that lives in parameter space (gradient, momentum, v, Hv) uses the same layout, so index i
 * names the same parameter everywhere, also in PyTorch's torch.cat([p.reshape(-1) for p in parameters()]).
 *
 * Usage (one chunk of N samples; the loss is scale * sum of per-sample losses, scale = 1/total samples;
 * targets y are int32 labels (N) for LOSS_CROSS_ENTROPY, reals (N, classes) for LOSS_MSE):
 *   model_forward(m, x, N); model_loss(m, y, scale, &loss, &correct);
 *   model_backward(m, y, scale, grad);                        grad += dL/dtheta (NULL if arch->grad_optional)
 *   model_hvp_chunk(m, v, K, start_layer, curvature, hv);     hv (K,P) += H v  (needs the two calls above)
 *   model_diag_chunk(m, scale, diag);                         diag (P) += GGN diagonal (after model_loss)
 * The executor provides the ModelArch table (the four passes over the model's graph). */
#ifndef HS_MODEL_H
#define HS_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "../core/common.h"
#include "../graph/graph.h"

#define MODEL_MAX_DIMS 4

typedef struct {
    char name[96];       /* PyTorch state_dict name, e.g. "0.weight", "layer1.0.conv1.weight" */
    int ndim;
    int64_t shape[MODEL_MAX_DIMS];
    size_t offset, numel; /* position in the parameter (or buffer) vector */
    int layer;           /* index of the layer that owns it, in forward order */
    int fan_in;          /* for default initialisation; 0 = not a weight/bias */
    int kind;            /* TENSOR_WEIGHT, TENSOR_BIAS, TENSOR_BN_WEIGHT, ... */
} TensorInfo;

/* Tensor kinds (TENSOR_WEIGHT, TENSOR_BIAS, ..., how model_init_default initialises each) are in graph.h. */

typedef enum { CURVATURE_HESSIAN, CURVATURE_GGN } Curvature;
/* The loss on the network's output z (N, classes): cross-entropy from logits with int32 labels (N), or the
 * squared error sum_n sum_j (z_nj - y_nj)^2 with real targets y (N, classes); both times `scale`. */
typedef enum { LOSS_CROSS_ENTROPY, LOSS_MSE } LossKind;
typedef enum { BN_EVAL, BN_BATCH } BatchNormMode;

typedef struct Model Model;

typedef struct {
    const char *name;
    int (*init)(Model *m);                   /* fills the tensor tables; called once by model_create */
    void (*free_state)(Model *m);
    /* logits (N,C) = f(x (N,3,32,32)); activations kept for the passes below. */
    int (*forward)(Model *m, const real *x, int N);
    /* Given m->d_logits, keeps activation gradients and accumulates grad (P) +=; with grad_optional, grad may
     * be NULL (activation gradients only, all a Hessian-vector product needs). */
    int (*backward)(Model *m, real *grad);
    int grad_optional;
    /* t_logits (N,K,C) for parameter directions v (K,P), layers >= start_layer. */
    int (*tangent_forward)(Model *m, const real *v, int K, int start_layer);
    /* Given m->td_logits, hv (K,P) += curvature products for tensors of layers >= start_layer. */
    int (*tangent_backward)(Model *m, const real *v, int K, int start_layer, Curvature curvature, real *hv);
    /* Given m->td_logits (N,K,C), K vectors per sample: diag (P) += sum_n sum_k (J_n^T td_logits[n,k])^2, J_n the
     * Jacobian of sample n's outputs (the Gauss-Newton diagonal's per-sample squares). */
    int (*diag_backward)(Model *m, int K, double *diag);
    /* 1 when that diagonal is the Hessian's, 0 (reason in why) when not, -1 (hs_error) when it cannot be
     * computed (batch statistics). */
    int (*diag_exact)(const Model *m, char *why, size_t size);
    /* Bytes per sample that a forward and backward pass keep (activations, their gradients, pooling indices):
     * what keeping a chunk's primal passes between products costs (curvature's HvpCache). */
    size_t (*primal_bytes)(const Model *m);
} ModelArch;

struct Model {
    const ModelArch *arch;
    char name[96];         /* "cnn", "resnet18", "resnet50", or the ONNX file's path */
    Graph *graph;        /* the node table run by the executor (src/graph/graph.h); NULL for hand-written archs */
    int graph_borrowed;    /* a replica: the graph belongs to another model */
    int classes;           /* per-sample output count (logits, or regression outputs) */
    int in_ndim;           /* per-sample input shape, e.g. (3,32,32) or (F) */
    int64_t in_shape[MODEL_MAX_DIMS];
    size_t in_size;        /* per-sample input count */
    LossKind loss;
    int num_tensors;
    TensorInfo *tensors;   /* trainable parameters, PyTorch order */
    size_t num_params;
    real *params;          /* (num_params) */
    int params_borrowed;   /* a replica: params belong to another model */
    int num_buffers;
    TensorInfo *buffers;   /* non-trainable state (batch-norm running statistics) */
    size_t num_buffer_values;
    real *buffer_values;   /* (num_buffer_values) */
    int64_t batches_tracked; /* batch norm's num_batches_tracked (same for every layer) */
    int num_layers;
    int training;          /* batch norm uses batch statistics and updates running ones */
    /* training over a group of processes with synchronised batch norm (the statistics of the whole batch, whose
     * slices the processes hold: ops.h); NULL: the statistics of the model's own samples */
    const struct BatchStatsGroup *bn_group;
    BatchNormMode bn_mode; /* for second-order passes */
    /* per-chunk state, grown on demand */
    int N, K, capacity_N, capacity_NK;
    double scale;          /* loss scale of the last model_backward (1/total samples) */
    real *x;               /* (N,in_size) borrowed input of the last forward */
    real *logits, *probs, *d_logits;      /* (N,C) */
    real *t_logits, *td_logits;           /* (N,K,C) */
    unsigned char *direction_active; /* (num_tensors): some direction of the current product touches it */
    void *state;           /* architecture-specific activations */
};

/* Creates "cnn", "resnet18", "resnet50" with default (PyTorch) initialisation from `seed`, or the network of
 * an ONNX file ("path/net.onnx", any name ending in .onnx) with the file's weights. */
int FN(model_create)(const char *arch, uint64_t seed, Model **out);
/* A model run by the executor over graph g (checked with graph_check), which it takes over (freed by
 * model_free, also on failure; g must come from malloc). Tensors with values in the graph start from them,
 * the others from the default initialisation with `seed`. */
int FN(model_create_graph)(Graph *g, uint64_t seed, Model **out);
void FN(model_free)(Model *m);
/* Re-initialises parameters as PyTorch does by default (Kaiming-uniform a=sqrt(5) weights, uniform
 * +-1/sqrt(fan_in) biases; batch norm weight 1, bias 0, running mean 0, var 1; TENSOR_WEIGHT_KAIMING_OUT
 * weights normal with std sqrt(2/fan_out)). One random stream in tensor order. */
void FN(model_init_default)(Model *m, uint64_t seed);
/* Index of a tensor by name, or -1. */
int FN(model_find_tensor)(const Model *m, const char *name);

/* Checkpoints (safetensors, state_dict names and layouts). Loading checks every name, shape, dtype and that
 * every value is finite. With allow_classifier_swap, a classifier (the last layer) whose number of outputs
 * differs, and only that, keeps its fresh initialisation (message in *note); its values are still checked. */
int FN(model_save)(const Model *m, const char *path, const char *const *meta_keys, const char *const *meta_values,
                   int meta_count);
int FN(model_load)(Model *m, const char *path, int allow_classifier_swap, char *note, size_t note_size);

/* Passes over one chunk (see the usage comment above). targets: int32 labels (N) for cross-entropy, reals
 * (N, classes) for squared error (m->loss). correct (may be NULL): samples whose largest output is their
 * label; 0 for squared error. The tangent pass needs no targets (the backward pass keeps what it needs). */
int FN(model_forward)(Model *m, const real *x /* (N, in_size) */, int N);
int FN(model_loss)(Model *m, const void *targets, double scale, double *loss, int *correct);
int FN(model_backward)(Model *m, const void *targets, double scale, real *grad);
int FN(model_hvp_chunk)(Model *m, const real *v, int K, int start_layer, Curvature curvature, real *hv);
/* The generalised Gauss-Newton diagonal of the chunk (after model_forward and model_loss): with the loss Hessian
 * of sample n's outputs S_n = sum_c s_nc s_nc^T (cross-entropy: s_nc = sqrt(scale p_c) (e_c - p), squared
 * error: s_nc = sqrt(2 scale) e_c), diag (P) += sum_n sum_c (J_n^T s_nc)^2: `classes` vectors per sample
 * carried back through the linearised network. Equals the Hessian's diagonal when model_diag_exact says so. */
int FN(model_diag_chunk)(Model *m, double scale, double *diag /* (P) += */);
/* 1: the Gauss-Newton diagonal is the Hessian's (every output piecewise linear in each single parameter); 0:
 * not, why (may be NULL) names the first node that curves; -1 (hs_error): no diagonal (batch statistics). */
int FN(model_diag_exact)(const Model *m, char *why, size_t size);

/* Data parallelism over threads: `count` replicas share m's parameters (not copied) and each keeps its own
 * activations, so a thread can run whole passes on a replica's share of a batch. Models with batch norm in
 * training mode must not be split this way (batch statistics would change). */
int FN(model_create_replicas)(Model *m, int count, Model ***replicas);
void FN(model_free_replicas)(Model **replicas, int count);
/* Bytes of one sample's targets: 4 (an int32 label) or sizeof(real) * classes. */
size_t FN(model_target_bytes)(const Model *m);
/* Shares [first, last) of `count` of one batch (the samples [N*r/count, N*(r+1)/count) of share r), run in
 * parallel by the threads on replicas[0 .. last-first): grads (last-first, P) = each share's gradient (zero for
 * an empty share), losses and rights (last-first) its loss (scaled by `scale` per sample) and correct count. */
int FN(model_gradient_shares)(Model **replicas, int count, int first, int last, const real *x, const void *targets,
                              int N, double scale, real *grads, double *losses, int *rights);
/* Loss and gradient of one batch split into `count` shares, one per replica, run in parallel by the threads:
 * grad (P) = the sum of the parts in share order, the loss scaled by `scale` per sample. grads: (count, P)
 * scratch. The same bits for a given count, whatever the number of threads. */
int FN(model_parallel_gradient)(Model **replicas, int count, const real *x, const void *targets, int N,
                                double scale, real *grads, real *grad, double *loss, int *correct);

/* Appends a tensor to the parameter table (weights, biases) or the buffer table (running statistics);
 * used by architectures' init. shape has ndim entries. */
int FN(model_add_tensor)(Model *m, const char *name, int ndim, const int64_t *shape, int layer, int fan_in, int kind);

/* Rows of v (K,P) for tensor t, or NULL when no direction touches it (its tangent is zero and skipped). */
static inline const real *FN(model_direction)(const Model *m, const real *v, int t) {
    return m->direction_active[t] ? v + m->tensors[t].offset : NULL;
}

/* Architectures' activation arenas: frees *ptrs[i] and allocates sizes[i] * n reals for each of count buffers. */
int FN(model_alloc_buffers)(real **const *ptrs, const size_t *sizes, int count, size_t n);

/* Grows the shared chunk buffers for N samples and K directions (architectures call it). */
int FN(model_reserve)(Model *m, int N, int K);

/* The executor (executor.c): the four passes over any Graph. */
extern const ModelArch FN(executor_arch);

#endif
