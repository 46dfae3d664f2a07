/* hessian.h: the public C API of libhessian: exact Hessian-vector products, the full Hessian and its
 * eigenvalues, and matrix-free spectral estimates (Lanczos, power iteration, trace, density) of a neural
 * network's loss, and SGD training of the network. The one header a program needs; every name starts with hs_.
 *
 *   #include <hessian.h>      // cc prog.c $(pkg-config --cflags --libs hessian)
 *
 *   hs_model *m;  hs_data *d;  hs_operator *op;
 *   if (hs_model_create("cnn", HS_FLOAT64, 0, &m) ||                  // or "net.onnx", "resnet50"
 *       hs_model_load(m, "cnn.safetensors") ||                        // optional: PyTorch state_dict names
 *       hs_data_from_npy("X.npy", "y.npy", &d)) {                     // or arrays, CIFAR-10, a callback
 *       fprintf(stderr, "%s\n", hs_last_error()); return 1;
 *   }
 *   hs_samples s = {NULL, 0, 1000, 0};                                // the first 1,000 samples
 *   int64_t P = hs_model_num_params(m);
 *   double *v = calloc(P, sizeof *v), *hv = calloc(P, sizeof *hv);  v[0] = 1;
 *   hs_hvp(m, d, &s, HS_HESSIAN, v, 1, hv);                           // hv = H v, H of the mean loss
 *   hs_operator_create(m, d, &s, NULL, &op);                          // H as an operator
 *   hs_lanczos_options lo = hs_lanczos_defaults();                    // top 5, tol 1e-6
 *   double eig[5], res[5];  hs_lanczos_info info;
 *   hs_lanczos(op, &lo, eig, res, NULL, &info);
 *   hs_operator_free(op); hs_data_free(d); hs_model_free(m);
 *
 * Conventions.
 * - Every function that can fail returns 0 on success and -1 on failure; hs_last_error() then gives the
 *   message (per thread). The library never prints and never exits. Bad input (wrong shapes, NaN, unknown
 *   names, out-of-range options) is refused before any expensive work.
 * - Precision: a model computes in float32 or float64, chosen when it is created. Every vector that crosses
 *   this API (parameters, gradients, directions v, products Hv, matrices, eigenvalues) is float64 whatever
 *   the model's precision; sums over samples are always accumulated in float64.
 * - The parameter vector: every parameter of the network in one buffer, in PyTorch's model.parameters()
 *   order, each tensor flattened row-major (torch.cat([p.reshape(-1) for p in model.parameters()])). P =
 *   hs_model_num_params(); hs_model_tensor() gives each tensor's name, shape and offset.
 * - The loss is the mean over the samples of the per-sample loss, chosen by the targets: integer class labels
 *   give cross-entropy on the network's outputs (logits); real-valued targets give the squared error
 *   sum_j (z_j - y_j)^2 (PyTorch's MSELoss(reduction="mean") times the number of outputs).
 * - Results are reproducible: the same inputs, options and seeds give the same bits for any thread count.
 * - No silent wrong answers: a product that comes out non-finite, or exactly zero for a non-zero direction,
 *   is an error.
 * - Objects are opaque. A model, and the data and operators built on it, may be used by one thread at a time;
 *   the library parallelises inside each call (OpenMP). An operator borrows its model and data: free it first.
 */
#ifndef HESSIAN_H
#define HESSIAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define HS_API __attribute__((visibility("default")))
#else
#define HS_API
#endif

#define HS_VERSION_MAJOR 0
#define HS_VERSION_MINOR 2
#define HS_VERSION_PATCH 0

/* ---- library ---------------------------------------------------------------------------------------- */

/* "0.2.0" (the library's version, which may differ from the header's HS_VERSION_* if linked to another). */
HS_API const char *hs_version(void);
/* The message of the last failed call on this thread ("" when none failed). */
HS_API const char *hs_last_error(void);
/* OpenMP threads used by every later call; 0: OMP_NUM_THREADS or all cores. At most 1024. */
HS_API int hs_set_threads(int threads);
HS_API int hs_get_threads(void);

typedef enum { HS_FLOAT32 = 4, HS_FLOAT64 = 8 } hs_dtype;        /* the value is the element size */
typedef enum { HS_HESSIAN = 0, HS_GGN = 1 } hs_curvature;         /* GGN: generalised Gauss-Newton (PSD) */

/* ---- models ----------------------------------------------------------------------------------------- */

typedef struct hs_model hs_model;

/* name: a built-in network ("cnn": the study's 5,100-parameter CIFAR-10 CNN; "resnet18", "resnet50":
 * torchvision's layouts with a 10-way head for 3x32x32 inputs) or an ONNX file ("path/net.onnx": its
 * graph and its weights). Built-in networks start from PyTorch's default initialisation drawn with `seed`
 * (ignored for ONNX files, which carry their weights). */
HS_API int hs_model_create(const char *name, hs_dtype precision, uint64_t seed, hs_model **out);
HS_API void hs_model_free(hs_model *m); /* NULL is fine */

/* safetensors checkpoints with PyTorch state_dict names and shapes (also batch-norm buffers). Loading checks
 * every name, shape and value (finite) and leaves the model unchanged on failure. */
HS_API int hs_model_load(hs_model *m, const char *path);
HS_API int hs_model_save(const hs_model *m, const char *path);

HS_API hs_dtype hs_model_precision(const hs_model *m);
HS_API int64_t hs_model_num_params(const hs_model *m);  /* P */
HS_API int hs_model_num_outputs(const hs_model *m);     /* per-sample outputs (classes) */
/* The per-sample input shape (e.g. 3,32,32) into shape[0..ndim), ndim <= 4; returns ndim. */
HS_API int hs_model_input_shape(const hs_model *m, int64_t shape[4]);

typedef struct {
    const char *name;   /* PyTorch state_dict name, e.g. "0.weight"; valid while the model lives */
    int ndim;
    int64_t shape[4];
    int64_t offset;     /* position in the parameter vector */
    int64_t numel;
} hs_tensor_info;
HS_API int hs_model_num_tensors(const hs_model *m);
HS_API int hs_model_tensor(const hs_model *m, int index, hs_tensor_info *info);

/* The parameter vector (P) out of and into the model; set refuses non-finite values. */
HS_API int hs_model_get_params(const hs_model *m, double *params /* (P) */);
HS_API int hs_model_set_params(hs_model *m, const double *params /* (P) */);

/* Batch norm in second-order calls (loss, gradient, hvp, operators, exact): 0 (default) uses the running
 * statistics (PyTorch's eval mode), 1 each chunk's batch statistics. Training always uses batch statistics. */
HS_API int hs_model_set_batch_stats(hs_model *m, int batch_stats);

/* The network's outputs (n, outputs) for inputs x (n, input size), float64. */
HS_API int hs_model_forward(hs_model *m, const double *x /* (n, in_size) */, int64_t n, double *out /* (n, C) */);

/* ---- data ------------------------------------------------------------------------------------------- */

typedef struct hs_data hs_data;

typedef enum {
    HS_LABELS_INT32 = 1,   /* class labels (N,): cross-entropy */
    HS_LABELS_INT64 = 2,
    HS_VALUES_FLOAT32 = 3, /* real targets (N, ...): squared error */
    HS_VALUES_FLOAT64 = 4
} hs_target_type;

/* Arrays in memory (copied): inputs (N, d1..dk), 1 <= k <= 4, float32 or float64; targets with the same N.
 * ndim and shape describe the whole array, N included (NumPy's X.ndim and X.shape: ndim = k + 1, shape[0] = N);
 * likewise target_ndim and target_shape (labels: target_ndim 1, shape (N)).
 * Refused: N mismatch, N = 0, NaN or infinite values, negative labels. */
HS_API int hs_data_from_arrays(const void *inputs, hs_dtype input_type, int ndim, const int64_t *shape /* (ndim) */,
                               const void *targets, hs_target_type target_type, int target_ndim,
                               const int64_t *target_shape /* (target_ndim) */, hs_data **out);
/* NumPy .npy files: inputs X (N, ...) float32/float64, targets Y int32/int64 labels (N,) or float values. */
HS_API int hs_data_from_npy(const char *inputs_path, const char *targets_path, hs_data **out);
/* CIFAR-10 in the official binary layout: dir/cifar-10-batches-bin/ (train: 50,000 images; test: 10,000),
 * normalised as the study does. */
HS_API int hs_data_from_cifar10(const char *dir, int test_split, hs_data **out);

/* A callback that fills any samples on request: inputs (n, input size) float64 and targets (int32 labels (n)
 * or float64 values (n, target size)) of samples indices[0..n), each in [0, count). Returns 0, or non-zero to
 * stop the calling computation with an error. Called from one thread at a time. */
typedef int (*hs_fill_fn)(void *user, const int64_t *indices /* (n) */, int n, double *inputs, void *targets);
/* count samples of input shape input_shape (input_ndim <= 4); target_type HS_LABELS_INT32 (classes: the
 * number of classes) or HS_VALUES_FLOAT64 (target_size values per sample, classes ignored). */
HS_API int hs_data_from_callback(int64_t count, int input_ndim, const int64_t *input_shape, hs_target_type target_type,
                                 int classes, int64_t target_size, hs_fill_fn fill, void *user, hs_data **out);
HS_API int64_t hs_data_count(const hs_data *d);
HS_API void hs_data_free(hs_data *d); /* NULL is fine */

/* Which samples a computation runs on. A NULL hs_samples* means every sample, automatic chunk size. */
typedef struct {
    const int64_t *indices; /* (count) distinct sample indices, or NULL: samples offset .. offset+count-1 */
    int64_t offset;
    int64_t count;          /* 0 with indices NULL: every sample from offset on */
    int chunk;              /* samples per pass (memory against speed); 0: automatic */
} hs_samples;

/* ---- loss, gradient, Hessian-vector products, the exact Hessian ------------------------------------------ */

/* Mean loss and accuracy (fraction of samples whose largest output is their label; NaN for real targets);
 * either pointer may be NULL. */
HS_API int hs_loss(hs_model *m, const hs_data *d, const hs_samples *s, double *loss, double *accuracy);
/* grad (P) = gradient of the mean loss; loss may be NULL. */
HS_API int hs_gradient(hs_model *m, const hs_data *d, const hs_samples *s, double *grad /* (P) */, double *loss);
/* hv (K,P) = C v for K directions v (K,P) in one batched pass, C the Hessian or GGN of the mean loss. */
HS_API int hs_hvp(hs_model *m, const hs_data *d, const hs_samples *s, hs_curvature curvature,
                  const double *v /* (K,P) */, int K, double *hv /* (K,P) */);
/* The full P x P matrix (row-major, symmetric) and/or all its eigenvalues (ascending); either may be NULL.
 * Needs P*P*8 bytes (and as much again for the eigenvalues): meant for small networks. */
HS_API int hs_exact(hs_model *m, const hs_data *d, const hs_samples *s, hs_curvature curvature,
                    double *matrix /* (P,P) or NULL */, double *eigenvalues /* (P) or NULL */);

/* The exact diagonal (P) of the generalised Gauss-Newton matrix of the mean loss, in one pass over the samples
 * (each sample's output count of vectors carried back through the linearised network; per-sample gradients
 * squared and summed), and so its trace. *exact_hessian (may be NULL) is 1 when it is also the Hessian's
 * diagonal: the network is piecewise linear in each single parameter (convolutions, linear layers, ReLU,
 * LeakyRelu, Clip, pools, concat, Add/Sub, Mul by a parameter, eval-mode batch norm), so the second-derivative
 * term of every diagonal entry vanishes; 0 when an op curves (Sigmoid, Tanh, Softplus, Erf/GELU downstream of
 * a parameter, products or quotients of parameter-dependent values). Needs batch norm with running statistics
 * (hs_model_set_batch_stats 0, the default). */
HS_API int hs_diag(hs_model *m, const hs_data *d, const hs_samples *s, double *diag /* (P) */, int *exact_hessian);

/* ---- the Hessian as an operator ----------------------------------------------------------------------- */

typedef struct hs_operator hs_operator;

typedef struct {
    hs_curvature curvature; /* HS_HESSIAN (default) or HS_GGN */
    int batch;              /* 0 (default): a fixed operator on the samples; > 0: stochastic, each product on a
                               new batch of `batch` samples from a seeded shuffled pass over them */
    uint64_t seed;          /* of the stochastic batches */
    const char *params;     /* NULL (default): every parameter; else the block of these tensors, comma-separated
                               names or prefixes ("0.weight,3.weight", "layer4"): vectors then have dim entries */
} hs_operator_options;

/* The operator borrows m and d (they must outlive it); NULL options: the defaults. */
HS_API int hs_operator_create(hs_model *m, const hs_data *d, const hs_samples *s, const hs_operator_options *opt,
                              hs_operator **out);
HS_API void hs_operator_free(hs_operator *op); /* NULL is fine */
HS_API int64_t hs_operator_dim(const hs_operator *op);       /* P, or the block's size */
/* out (K, dim) = C v for v (K, dim). */
HS_API int hs_operator_apply(hs_operator *op, const double *v /* (K, dim) */, int K, double *out /* (K, dim) */);
HS_API int64_t hs_operator_products(const hs_operator *op);  /* products so far (one per direction) */
HS_API double hs_operator_last_loss(const hs_operator *op);  /* loss of the last product's samples */

/* ---- spectral methods on an operator (float64) -------------------------------------------------------- */

typedef enum { HS_LARGEST = 0, HS_SMALLEST = 1, HS_BOTH = 2 } hs_which;

typedef struct {
    int k;              /* eigenpairs wanted (at each end with HS_BOTH); default 5 */
    hs_which which;     /* default HS_LARGEST (algebraically largest) */
    int max_steps;      /* Krylov dimension limit; default 100 */
    double tol;         /* converged when every wanted residual estimate <= tol * max|lambda|; default 1e-6;
                           0: run max_steps */
    uint64_t seed;      /* start vector; default 0 */
} hs_lanczos_options;

typedef struct {
    int count;          /* eigenvalues returned: k, 2k with HS_BOTH, fewer when dim is smaller */
    int steps;          /* Lanczos steps */
    int64_t products;   /* operator products, including the final residual check */
    int converged;
} hs_lanczos_info;

HS_API hs_lanczos_options hs_lanczos_defaults(void);
/* Lanczos with full reorthogonalisation: eigenvalues (ascending) with true residuals ||Cv - lambda v||, and
 * unit eigenvectors (count, dim) if vectors is not NULL. Arrays hold up to k (2k with HS_BOTH) entries. */
HS_API int hs_lanczos(hs_operator *op, const hs_lanczos_options *opt, double *eigenvalues, double *residuals,
                      double *vectors, hs_lanczos_info *info);

typedef enum { HS_POWER_PLAIN = 0, HS_POWER_MOMENTUM = 1, HS_POWER_HEAVY_BALL = 2 } hs_power_variant;

typedef struct {
    int iters;                /* most steps; default 100 */
    double tol;               /* stop when ||Cv - lambda v|| <= tol |lambda|; default 1e-4; 0: run iters */
    hs_power_variant variant; /* PLAIN (default); MOMENTUM: v <- normalise(beta v_prev + (1-beta) normalise(Cv));
                                 HEAVY_BALL: v_{t+1} = C v_t - beta v_{t-1}, rescaled */
    double beta;              /* default 0 */
    uint64_t seed;            /* start vector; default 0 */
} hs_power_options;

HS_API hs_power_options hs_power_defaults(void);
/* The dominant eigenvalue (largest |lambda|; the momentum variants favour the largest positive one), its
 * residual, the unit vector (dim) if vector is not NULL, and the steps taken. */
HS_API int hs_power(hs_operator *op, const hs_power_options *opt, double *eigenvalue, double *residual,
                    double *vector, int *steps);

typedef enum { HS_HUTCHINSON = 0, HS_HUTCHPP = 1 } hs_trace_method;
/* Trace estimate and its standard error from `probes` products (Hutchinson: Rademacher probes, >= 2;
 * Hutch++: >= 4), batched. */
HS_API int hs_trace(hs_operator *op, hs_trace_method method, int probes, uint64_t seed, double *trace,
                    double *std_error);

typedef struct {
    int runs;           /* independent Lanczos runs (probe vectors); default 4 */
    int steps;          /* Lanczos steps per run; default 80 */
    int grid;           /* points of the curve, >= 16; default 1000 */
    double sigma;       /* Gaussian smoothing width; default 0: automatic */
    uint64_t seed;      /* default 0 */
} hs_density_options;

HS_API hs_density_options hs_density_defaults(void);
/* Spectral density by stochastic Lanczos quadrature: x (grid) eigenvalue axis and density (grid), which
 * integrates to about 1; sigma_used (may be NULL) the smoothing width. */
HS_API int hs_density(hs_operator *op, const hs_density_options *opt, double *x, double *density,
                      double *sigma_used);

/* ---- training ------------------------------------------------------------------------------------------- */

typedef struct {
    int epochs;             /* default 1 */
    int batch;              /* default 100 */
    double lr;              /* default 0.01 */
    double momentum;        /* default 0.9 */
    double weight_decay;    /* default 0 */
    int augment;            /* CIFAR-10 only: random crop (padding 4) and horizontal flip; default 0 */
    int64_t samples;        /* train on the first `samples` samples; default 0: all */
    uint64_t seed;          /* shuffling and augmentation; default 0 */
} hs_train_options;

typedef struct {
    int64_t steps;          /* SGD steps taken */
    double loss;            /* mean training loss of the last epoch */
    double accuracy;        /* its accuracy (NaN for real targets) */
} hs_train_info;

HS_API hs_train_options hs_train_defaults(void);
/* SGD with PyTorch's semantics (torch.optim.SGD, dampening 0), shuffled batches each epoch, batch norm in
 * training mode. `hessian train --seed S` draws both the initialisation and the shuffling from S: a model made by
 * hs_model_create(name, precision, S) and trained with seed S (same data, samples, batch, lr, momentum,
 * weight_decay, epochs; augment = what the CLI does, i.e. --no-augment for augment 0 on CIFAR-10) holds the same
 * parameters as that checkpoint. Each call starts a new run: a fresh momentum buffer and a loader seeded anew. */
HS_API int hs_train(hs_model *m, const hs_data *d, const hs_train_options *opt, hs_train_info *info);

#ifdef __cplusplus
}
#endif

#endif
