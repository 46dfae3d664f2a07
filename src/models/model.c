/* model.c: what every architecture shares: tensor tables, parameter and buffer storage, default
 * initialisation, safetensors checkpoints with PyTorch state_dict names, the cross-entropy head, and the
 * chunk-level passes (forward, loss, backward, Hessian- or Gauss-Newton-vector products). */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/rng.h"
#include "../graph/graph.h"
#include "../graph/onnx_import.h"
#include "../io/safetensors.h"
#include "../ops/ops.h"


int FN(model_add_tensor)(Model *m, const char *name, int ndim, const int64_t *shape, int layer, int fan_in, int kind) {
    int is_buffer = kind == TENSOR_RUNNING_MEAN || kind == TENSOR_RUNNING_VAR;
    int *count = is_buffer ? &m->num_buffers : &m->num_tensors;
    TensorInfo **table = is_buffer ? &m->buffers : &m->tensors;
    size_t *total = is_buffer ? &m->num_buffer_values : &m->num_params;
    TensorInfo *grown = realloc(*table, sizeof(TensorInfo) * (size_t)(*count + 1));
    if (!grown) return hs_error("out of memory building the tensor table");
    *table = grown;
    TensorInfo *t = &grown[*count];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        t->numel *= (size_t)shape[d];
    }
    t->offset = *total;
    t->layer = layer;
    t->fan_in = fan_in;
    t->kind = kind;
    *total += t->numel;
    (*count)++;
    if (layer + 1 > m->num_layers) m->num_layers = layer + 1;
    return 0;
}

/* Allocates the parameter and buffer storage of a model whose arch->init has filled the tables. */
static int FN(model_finish)(Model *m, uint64_t seed) {
    if (m->arch->init(m) != 0) return -1;
    m->params = hs_calloc(m->num_params + 1, sizeof(real));
    m->direction_active = hs_calloc((size_t)m->num_tensors + 1, 1);
    m->buffer_values = hs_calloc(m->num_buffer_values + 1, sizeof(real));
    if (!m->params || !m->buffer_values || !m->direction_active) return -1;
    FN(model_init_default)(m, seed);
    return 0;
}

static Model *FN(model_new)(const ModelArch *arch) {
    Model *m = hs_calloc(1, sizeof *m);
    if (!m) return NULL;
    m->arch = arch;
    m->classes = 10;
    m->in_ndim = 3;
    m->in_shape[0] = 3;
    m->in_shape[1] = 32;
    m->in_shape[2] = 32;
    m->in_size = 3 * 32 * 32;
    m->loss = LOSS_CROSS_ENTROPY;
    return m;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int FN(model_create)(const char *arch_name, uint64_t seed, Model **out) {
    *out = NULL;
    if (ends_with(arch_name, ".onnx")) {
        Graph *g = hs_malloc(sizeof *g);
        if (!g) return -1;
        if (onnx_import(arch_name, g) != 0) {
            free(g);
            return -1;
        }
        return FN(model_create_graph)(g, seed, out);
    }
    if (!graph_builtin_exists(arch_name))
        return hs_error("unknown model '%s' (available: cnn, cnn_wide[H], resnet18, resnet50, or an ONNX file NAME.onnx)",
                        arch_name);
    Graph *g = hs_malloc(sizeof *g);
    if (!g) return -1;
    if (graph_builtin(g, arch_name) != 0) {
        free(g);
        return -1;
    }
    return FN(model_create_graph)(g, seed, out);
}

int FN(model_create_graph)(Graph *g, uint64_t seed, Model **out) {
    *out = NULL;
    if (graph_check(g) != 0) {
        graph_free(g);
        free(g);
        return -1;
    }
    Model *m = FN(model_new)(&FN(executor_arch));
    if (!m) {
        graph_free(g);
        free(g);
        return -1;
    }
    m->graph = g;
    snprintf(m->name, sizeof m->name, "%s", g->name);
    if (FN(model_finish)(m, seed) != 0) {
        FN(model_free)(m);
        return -1;
    }
    *out = m;
    return 0;
}

void FN(model_free)(Model *m) {
    if (!m) return;
    if (m->arch && m->arch->free_state) m->arch->free_state(m);
    free(m->tensors);
    free(m->buffers);
    if (!m->params_borrowed) free(m->params);
    free(m->direction_active);
    free(m->buffer_values);
    free(m->logits);
    free(m->probs);
    free(m->d_logits);
    free(m->t_logits);
    free(m->td_logits);
    if (m->graph && !m->graph_borrowed) {
        graph_free(m->graph);
        free(m->graph);
    }
    free(m);
}

void FN(model_init_default)(Model *m, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < m->num_tensors; i++) {
        const TensorInfo *t = &m->tensors[i];
        real *p = m->params + t->offset;
        for (size_t j = 0; j < t->numel; j++) {
            double value;
            if (t->kind == TENSOR_BN_WEIGHT) value = 1;
            else if (t->kind == TENSOR_BN_BIAS) value = 0;
            else if (t->kind == TENSOR_WEIGHT_KAIMING_OUT) {
                /* torchvision ResNet: kaiming_normal_(mode='fan_out', nonlinearity='relu') */
                double fan_out = (double)t->shape[0];
                for (int d = 2; d < t->ndim; d++) fan_out *= (double)t->shape[d];
                value = sqrt(2.0 / fan_out) * rng_normal(&rng);
            } else {
                /* kaiming_uniform_(a=sqrt(5)) gives bound sqrt(6/((1+5) fan_in)) = 1/sqrt(fan_in); biases
                 * use the same bound. */
                double bound = t->fan_in > 0 ? 1.0 / sqrt((double)t->fan_in) : 0;
                value = (2 * rng_uniform(&rng) - 1) * bound;
            }
            p[j] = (real)value;
        }
    }
    for (int i = 0; i < m->num_buffers; i++) {
        const TensorInfo *t = &m->buffers[i];
        for (size_t j = 0; j < t->numel; j++) m->buffer_values[t->offset + j] = t->kind == TENSOR_RUNNING_VAR ? 1 : 0;
    }
    m->batches_tracked = 0;
    /* A graph's own values (an ONNX file's weights and statistics) replace the defaults. */
    const Graph *g = m->graph;
    for (int i = 0; g && i < g->num_params && i < m->num_tensors; i++)
        if (g->params[i].values)
            for (size_t j = 0; j < g->params[i].numel; j++)
                m->params[m->tensors[i].offset + j] = (real)g->params[i].values[j];
    for (int i = 0; g && i < g->num_buffers && i < m->num_buffers; i++)
        if (g->buffers[i].values)
            for (size_t j = 0; j < g->buffers[i].numel; j++)
                m->buffer_values[m->buffers[i].offset + j] = (real)g->buffers[i].values[j];
}

int FN(model_find_tensor)(const Model *m, const char *name) {
    for (int i = 0; i < m->num_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

/* "bn1.running_mean" -> "bn1.num_batches_tracked" */
static void tracked_name(char *out, size_t size, const char *running_mean_name) {
    const char *dot = strrchr(running_mean_name, '.');
    int prefix = dot ? (int)(dot - running_mean_name) : 0;
    snprintf(out, size, "%.*s%snum_batches_tracked", prefix, running_mean_name, dot ? "." : "");
}

int FN(model_save)(const Model *m, const char *path, const char *const *meta_keys, const char *const *meta_values,
                   int meta_count) {
    int count = m->num_tensors + m->num_buffers;
    int tracked = 0;
    for (int i = 0; i < m->num_buffers; i++) tracked += m->buffers[i].kind == TENSOR_RUNNING_MEAN;
    StWriteTensor *w = hs_calloc((size_t)(count + tracked), sizeof *w);
    char (*names)[96] = hs_calloc((size_t)tracked + 1, sizeof *names);
    if (!w || !names) {
        free(w);
        free(names);
        return -1;
    }
    StDtype dtype = sizeof(real) == 8 ? ST_F64 : ST_F32;
    int n = 0, nt = 0;
    /* state_dict order: each module's parameters then its buffers; writing parameters first then buffers
     * is equally valid for load_state_dict (names, not order, matter). */
    for (int i = 0; i < m->num_tensors; i++, n++) {
        const TensorInfo *t = &m->tensors[i];
        w[n] = (StWriteTensor){t->name, dtype, t->ndim, {0}, m->params + t->offset};
        memcpy(w[n].shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    }
    for (int i = 0; i < m->num_buffers; i++, n++) {
        const TensorInfo *t = &m->buffers[i];
        w[n] = (StWriteTensor){t->name, dtype, t->ndim, {0}, m->buffer_values + t->offset};
        memcpy(w[n].shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
        if (t->kind == TENSOR_RUNNING_MEAN) {
            tracked_name(names[nt], sizeof names[nt], t->name);
            w[count + nt] = (StWriteTensor){names[nt], ST_I64, 0, {0}, &m->batches_tracked};
            nt++;
        }
    }
    int rc = safetensors_write(path, w, count + tracked, meta_keys, meta_values, meta_count);
    free(w);
    free(names);
    return rc;
}

/* Converts a floating tensor of the file into dst and checks every value is finite; errors name the tensor. */
static int FN(read_values)(const SafeTensors *st, const char *path, const StTensor *found, real *dst) {
    if (FN(safetensors_to)(st, found, dst) != 0) return -1;
    for (int64_t j = 0; j < found->numel; j++)
        if (!isfinite((double)dst[j]))
            return hs_error("checkpoint %s: tensor '%s' holds a non-finite value at index %lld", path, found->name,
                            (long long)j);
    return 0;
}

static int FN(load_tensor)(const SafeTensors *st, const char *path, const TensorInfo *t, real *dst) {
    const StTensor *found;
    if (safetensors_expect_shape(st, t->name, t->ndim, t->shape, &found) != 0) return -1;
    return FN(read_values)(st, path, found, dst);
}

/* The classifier is the last layer's tensors. It is replaced (with allow_classifier_swap) only when the file
 * holds every one of them with the model's shape except the number of outputs (first dimension), one K for
 * all of them and K != the model's: the number of outputs found, else 0 (load it, or fail on its shape). */
static int64_t FN(other_classifier_outputs)(const Model *m, const SafeTensors *st) {
    int last_layer = m->tensors[m->num_tensors - 1].layer;
    int64_t k = -1, own = -1;
    for (int i = 0; i < m->num_tensors; i++) {
        const TensorInfo *t = &m->tensors[i];
        if (t->layer != last_layer) continue;
        const StTensor *f = safetensors_find(st, t->name);
        if (!f || f->ndim != t->ndim || t->ndim < 1 || f->shape[0] < 1 || (k >= 0 && f->shape[0] != k)) return 0;
        for (int d = 1; d < t->ndim; d++)
            if (f->shape[d] != t->shape[d]) return 0;
        k = f->shape[0];
        own = t->shape[0];
    }
    return k != own ? k : 0;
}

int FN(model_load)(Model *m, const char *path, int allow_classifier_swap, char *note, size_t note_size) {
    if (note && note_size) note[0] = 0;
    SafeTensors st;
    if (safetensors_read(path, &st) != 0) return -1;
    int rc = -1;
    real *params = hs_malloc(sizeof(real) * m->num_params);
    real *buffers = hs_malloc(sizeof(real) * (m->num_buffer_values + 1));
    real *discarded = NULL;
    if (!params || !buffers) goto done;
    memcpy(params, m->params, sizeof(real) * m->num_params);
    /* Every tensor in the file must be known to the model (as load_state_dict(strict=True)). */
    for (int i = 0; i < st.count; i++) {
        const char *name = st.tensors[i].name;
        int known = FN(model_find_tensor)(m, name) >= 0;
        for (int b = 0; b < m->num_buffers && !known; b++) {
            char tn[96];
            tracked_name(tn, sizeof tn, m->buffers[b].name);
            known = strcmp(m->buffers[b].name, name) == 0 || strcmp(tn, name) == 0;
        }
        if (!known) {
            hs_error("checkpoint %s: unexpected tensor '%s' for model %s (is it a checkpoint of another model?)", path,
                     name, m->name);
            goto done;
        }
    }
    int last_layer = m->tensors[m->num_tensors - 1].layer;
    int64_t outputs = allow_classifier_swap ? FN(other_classifier_outputs)(m, &st) : 0;
    for (int i = 0; i < m->num_tensors; i++) {
        const TensorInfo *t = &m->tensors[i];
        if (outputs && t->layer == last_layer) {
            /* Keep the fresh initialisation, but a corrupt classifier (dtype, NaN) is still an error. */
            const StTensor *found = safetensors_find(&st, t->name);
            free(discarded);
            discarded = hs_malloc(sizeof(real) * (size_t)found->numel + 1);
            if (!discarded || FN(read_values)(&st, path, found, discarded) != 0) goto done;
            continue;
        }
        if (FN(load_tensor)(&st, path, t, params + t->offset) != 0) goto done;
    }
    for (int i = 0; i < m->num_buffers; i++)
        if (FN(load_tensor)(&st, path, &m->buffers[i], buffers + m->buffers[i].offset) != 0) goto done;
    int64_t tracked = 0;
    for (int i = 0; i < m->num_buffers; i++) {
        char tn[96];
        tracked_name(tn, sizeof tn, m->buffers[i].name);
        const StTensor *t = safetensors_find(&st, tn);
        if (!t) continue;
        if (t->dtype != ST_I64 || t->numel != 1) {
            hs_error("checkpoint %s: tensor '%s' should be one I64 count, found %s with %lld values", path, tn,
                     safetensors_dtype_name(t->dtype), (long long)t->numel);
            goto done;
        }
        memcpy(&tracked, st.data + t->begin, sizeof tracked);
        if (tracked < 0) {
            hs_error("checkpoint %s: tensor '%s' holds a negative count (%lld)", path, tn, (long long)tracked);
            goto done;
        }
    }
    memcpy(m->params, params, sizeof(real) * m->num_params);
    memcpy(m->buffer_values, buffers, sizeof(real) * m->num_buffer_values);
    m->batches_tracked = tracked;
    if (outputs && note && note_size) {
        const TensorInfo *t = &m->tensors[m->num_tensors - 1];
        const char *dot = strrchr(t->name, '.');
        snprintf(note, note_size,
                 "the checkpoint's classifier '%.*s' has %lld outputs; replaced by a freshly initialised one with %lld "
                 "outputs",
                 dot ? (int)(dot - t->name) : (int)strlen(t->name), t->name, (long long)outputs,
                 (long long)t->shape[0]);
    }
    rc = 0;
done:
    free(params);
    free(buffers);
    free(discarded);
    safetensors_free(&st);
    return rc;
}

int FN(model_alloc_buffers)(real **const *ptrs, const size_t *sizes, int count, size_t n) {
    for (int i = 0; i < count; i++) {
        free(*ptrs[i]);
        *ptrs[i] = hs_malloc(sizeof(real) * sizes[i] * n);
        if (!*ptrs[i]) return -1;
    }
    return 0;
}

int FN(model_reserve)(Model *m, int N, int K) {
    size_t C = (size_t)m->classes;
    if (N > m->capacity_N) {
        free(m->logits);
        free(m->probs);
        free(m->d_logits);
        m->logits = hs_malloc(sizeof(real) * (size_t)N * C);
        m->probs = hs_malloc(sizeof(real) * (size_t)N * C);
        m->d_logits = hs_malloc(sizeof(real) * (size_t)N * C);
        m->capacity_N = (m->logits && m->probs && m->d_logits) ? N : 0;
        if (!m->capacity_N) return -1;
    }
    if ((long)N * K > m->capacity_NK) {
        free(m->t_logits);
        free(m->td_logits);
        m->t_logits = hs_malloc(sizeof(real) * (size_t)N * K * C);
        m->td_logits = hs_malloc(sizeof(real) * (size_t)N * K * C);
        m->capacity_NK = (m->t_logits && m->td_logits) ? N * K : 0;
        if (!m->capacity_NK) return -1;
    }
    return 0;
}

int FN(model_forward)(Model *m, const real *x, int N) {
    if (N <= 0) return hs_error("empty batch");
    HS_TRY(FN(model_reserve)(m, N, 1));
    m->N = N;
    m->x = (real *)x;
    return m->arch->forward(m, x, N);
}

size_t FN(model_target_bytes)(const Model *m) {
    return m->loss == LOSS_MSE ? sizeof(real) * (size_t)m->classes : sizeof(int32_t);
}

int FN(model_loss)(Model *m, const void *targets, double scale, double *loss, int *correct) {
    if (m->loss == LOSS_MSE) {
        FN(mse_forward)(loss, m->logits, targets, scale, m->N, m->classes);
        if (correct) *correct = 0;
    } else {
        HS_TRY(FN(cross_entropy_forward)(loss, m->probs, correct, m->logits, targets, scale, m->N, m->classes));
    }
    if (!isfinite(*loss)) return hs_error("the loss is not finite (%g): diverged or bad input", *loss);
    return 0;
}

int FN(model_backward)(Model *m, const void *targets, double scale, real *grad) {
    m->scale = scale;
    if (m->loss == LOSS_MSE) FN(mse_backward)(m->d_logits, m->logits, targets, scale, m->N, m->classes);
    else FN(cross_entropy_backward)(m->d_logits, m->probs, targets, scale, m->N, m->classes);
    return m->arch->backward(m, grad);
}

int FN(model_hvp_chunk)(Model *m, const real *v, int K, int start_layer, Curvature curvature, real *hv) {
    HS_TRY(FN(model_reserve)(m, m->N, K));
    m->K = K;
    for (int t = 0; t < m->num_tensors; t++) {
        const TensorInfo *ti = &m->tensors[t];
        int active = 0;
        for (int k = 0; k < K && !active; k++) {
            const real *row = v + (size_t)k * m->num_params + ti->offset;
            for (size_t j = 0; j < ti->numel; j++)
                if (row[j] != 0) {
                    active = 1;
                    break;
                }
        }
        m->direction_active[t] = (unsigned char)active;
    }
    HS_TRY(m->arch->tangent_forward(m, v, K, start_layer));
    if (m->loss == LOSS_MSE) FN(mse_tangent_backward)(m->td_logits, m->t_logits, m->scale, K, m->N, m->classes);
    else FN(cross_entropy_tangent_backward)(m->td_logits, m->t_logits, m->probs, m->scale, K, m->N, m->classes);
    return m->arch->tangent_backward(m, v, K, start_layer, curvature, hv);
}

int FN(model_diag_exact)(const Model *m, char *why, size_t size) {
    if (!m->arch->diag_exact) return hs_error("model %s has no diagonal pass", m->name);
    return m->arch->diag_exact(m, why, size);
}

int FN(model_diag_chunk)(Model *m, double scale, double *diag) {
    if (!m->arch->diag_backward) return hs_error("model %s has no diagonal pass", m->name);
    if (FN(model_diag_exact)(m, NULL, 0) < 0) return -1;
    int N = m->N, C = m->classes;
    HS_TRY(FN(model_reserve)(m, N, C));
    m->K = C;
    memset(m->direction_active, 0, (size_t)m->num_tensors + 1); /* no directions: every tangent is zero */
    real *td = m->td_logits; /* (N, C vectors, C) */
    if (m->loss == LOSS_MSE) {
        memset(td, 0, sizeof(real) * (size_t)N * C * C);
        real r = (real)sqrt(2 * scale);
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) td[((size_t)n * C + c) * C + c] = r;
    } else {
        for (int n = 0; n < N; n++) {
            const real *p = m->probs + (size_t)n * C;
            for (int c = 0; c < C; c++) {
                real *row = td + ((size_t)n * C + c) * C;
                double r = sqrt(scale * (double)p[c]), rest = 0; /* 1 - p_c as the sum of the others: accurate
                                                                     when p_c is close to 1 */
                for (int j = 0; j < C; j++) {
                    row[j] = (real)(-r * (double)p[j]);
                    if (j != c) rest += (double)p[j];
                }
                row[c] = (real)(r * rest);
            }
        }
    }
    return m->arch->diag_backward(m, C, diag);
}

int FN(model_create_replicas)(Model *m, int count, Model ***replicas) {
    *replicas = hs_calloc((size_t)count, sizeof(Model *));
    if (!*replicas) return -1;
    for (int r = 0; r < count; r++) {
        Model *c = FN(model_new)(m->arch);
        int rc = c ? 0 : -1;
        if (c) {
            c->graph = m->graph;
            c->graph_borrowed = 1;
            snprintf(c->name, sizeof c->name, "%s", m->name);
            c->loss = m->loss;
            rc = FN(model_finish)(c, 0);
        }
        if (rc != 0) {
            FN(model_free)(c);
            FN(model_free_replicas)(*replicas, r);
            *replicas = NULL;
            return -1;
        }
        free(c->params);
        c->params = m->params;
        c->params_borrowed = 1;
        memcpy(c->buffer_values, m->buffer_values, sizeof(real) * m->num_buffer_values);
        c->training = m->training;
        c->bn_mode = m->bn_mode;
        c->loss = m->loss;
        (*replicas)[r] = c;
    }
    return 0;
}

void FN(model_free_replicas)(Model **replicas, int count) {
    if (!replicas) return;
    for (int r = 0; r < count; r++) FN(model_free)(replicas[r]);
    free(replicas);
}

int FN(model_gradient_shares)(Model **replicas, int count, int first, int last, const real *x, const void *targets,
                              int N, double scale, real *grads, double *losses, int *rights) {
    size_t P = replicas[0]->num_params;
    int failed = 0;
    char message[512] = "";
#pragma omp parallel for schedule(dynamic, 1)
    for (int r = first; r < last; r++) {
        int lo = (int)((long)N * r / count), hi = (int)((long)N * (r + 1) / count);
        real *g = grads + (size_t)(r - first) * P;
        memset(g, 0, sizeof(real) * P);
        losses[r - first] = 0;
        rights[r - first] = 0;
        if (hi <= lo) continue;
        Model *m = replicas[r - first];
        const void *t = (const char *)targets + (size_t)lo * FN(model_target_bytes)(m);
        if (FN(model_forward)(m, x + (size_t)lo * m->in_size, hi - lo) != 0 ||
            FN(model_loss)(m, t, scale, &losses[r - first], &rights[r - first]) != 0 ||
            FN(model_backward)(m, t, scale, g) != 0) {
            /* The first failure keeps its message (errors are per thread). An atomic claim, not a named omp
             * critical: that is a global symbol (.gomp_critical_user_NAME) which libhessian.so would export. */
            int first_failure;
#pragma omp atomic capture
            { first_failure = failed; failed = 1; }
            if (!first_failure) snprintf(message, sizeof message, "%s", hs_last_error());
        }
    }
    return failed ? hs_error("%s", message) : 0;
}

int FN(model_parallel_gradient)(Model **replicas, int count, const real *x, const void *targets, int N,
                                double scale, real *grads, real *grad, double *loss, int *correct) {
    size_t P = replicas[0]->num_params;
    double losses[256];
    int rights[256];
    if (count > 256) return hs_error("too many replicas (%d)", count);
    if (FN(model_gradient_shares)(replicas, count, 0, count, x, targets, N, scale, grads, losses, rights) != 0)
        return -1;
    *loss = 0;
    *correct = 0;
    for (int r = 0; r < count; r++) {
        *loss += losses[r];
        *correct += rights[r];
    }
    memcpy(grad, grads, sizeof(real) * P);
    for (int r = 1; r < count; r++) {
        const real *g = grads + (size_t)r * P;
        for (size_t i = 0; i < P; i++) grad[i] += g[i];
    }
    return 0;
}
