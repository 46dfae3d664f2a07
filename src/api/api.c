/* api.c: the public C API (include/hessian.h): checks every argument, resolves sample selections and data
 * sources, runs the spectral methods on operators, and calls the precision-generic half
 * (src/api/generic/api_generic.c) as *_f32 or *_f64 by the model's precision. Compiled once. */
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../include/hessian.h"
#include "../core/common.h"
#include "../data/samples.h"
#include "../spectral/spectral.h"
#include "api_internal.h"

#define HS_MAX_THREADS 1024

struct hs_model {
    hs_dtype dtype;
    void *impl; /* Model of that precision (Model_f32 / Model_f64 storage) */
    ApiModelInfo info;
};

struct hs_data {
    SampleSource src;
};

struct hs_operator {
    hs_model *model;
    const hs_data *data;
    int *indices; /* (count) the selection (the operator keeps its own copy) */
    ApiOperator op;
};

/* fn_f32(args) or fn_f64(args) by the model's precision. */
#define DISPATCH(m, fn, ...) ((m)->dtype == HS_FLOAT32 ? fn##_f32(__VA_ARGS__) : fn##_f64(__VA_ARGS__))

/* ---- library ---------------------------------------------------------------------------------------- */

const char *hs_version(void) { return HS_VERSION; }

int hs_set_threads(int threads) {
    if (threads < 0 || threads > HS_MAX_THREADS)
        return hs_error("hs_set_threads: threads must be in [1, %d], or 0 for the default (got %d)", HS_MAX_THREADS,
                        threads);
    if (threads > 0) omp_set_num_threads(threads);
    else {
        const char *env = getenv("OMP_NUM_THREADS");
        int n = env ? atoi(env) : 0;
        omp_set_num_threads(n > 0 ? n : omp_get_num_procs());
    }
    return 0;
}

int hs_get_threads(void) { return omp_get_max_threads(); }

/* ---- models ----------------------------------------------------------------------------------------- */

static int check_model(const hs_model *m, const char *fn) {
    if (!m || !m->impl) return hs_error("%s: the model is NULL", fn);
    return 0;
}

int hs_model_create(const char *name, hs_dtype precision, uint64_t seed, hs_model **out) {
    if (!out) return hs_error("hs_model_create: out is NULL");
    *out = NULL;
    if (!name || !*name) return hs_error("hs_model_create: no model name");
    if (precision != HS_FLOAT32 && precision != HS_FLOAT64)
        return hs_error("hs_model_create: precision must be HS_FLOAT32 or HS_FLOAT64 (got %d)", (int)precision);
    hs_model *m = hs_calloc(1, sizeof *m);
    if (!m) return -1;
    m->dtype = precision;
    if (DISPATCH(m, api_model_create, name, seed, &m->impl) != 0) {
        free(m);
        return -1;
    }
    DISPATCH(m, api_model_info, m->impl, &m->info);
    *out = m;
    return 0;
}

void hs_model_free(hs_model *m) {
    if (!m) return;
    if (m->impl) DISPATCH(m, api_model_free, m->impl);
    free(m);
}

int hs_model_load(hs_model *m, const char *path) {
    HS_TRY(check_model(m, "hs_model_load"));
    if (!path) return hs_error("hs_model_load: path is NULL");
    return DISPATCH(m, api_model_load, m->impl, path);
}

int hs_model_save(const hs_model *m, const char *path) {
    HS_TRY(check_model(m, "hs_model_save"));
    if (!path) return hs_error("hs_model_save: path is NULL");
    return DISPATCH(m, api_model_save, m->impl, path);
}

hs_dtype hs_model_precision(const hs_model *m) { return m ? m->dtype : (hs_dtype)0; }

int64_t hs_model_num_params(const hs_model *m) {
    if (check_model(m, "hs_model_num_params")) return -1;
    return m->info.num_params;
}

int hs_model_num_outputs(const hs_model *m) {
    if (check_model(m, "hs_model_num_outputs")) return -1;
    return m->info.outputs;
}

int hs_model_input_shape(const hs_model *m, int64_t shape[4]) {
    HS_TRY(check_model(m, "hs_model_input_shape"));
    if (!shape) return hs_error("hs_model_input_shape: shape is NULL");
    for (int d = 0; d < 4; d++) shape[d] = d < m->info.in_ndim ? m->info.in_shape[d] : 0;
    return m->info.in_ndim;
}

int hs_model_num_tensors(const hs_model *m) {
    if (check_model(m, "hs_model_num_tensors")) return -1;
    return m->info.num_tensors;
}

int hs_model_tensor(const hs_model *m, int index, hs_tensor_info *info) {
    HS_TRY(check_model(m, "hs_model_tensor"));
    if (!info) return hs_error("hs_model_tensor: info is NULL");
    if (index < 0 || index >= m->info.num_tensors)
        return hs_error("hs_model_tensor: index %d is outside [0, %d)", index, m->info.num_tensors);
    DISPATCH(m, api_model_tensor, m->impl, index, info);
    return 0;
}

int hs_model_get_params(const hs_model *m, double *params) {
    HS_TRY(check_model(m, "hs_model_get_params"));
    if (!params) return hs_error("hs_model_get_params: params is NULL");
    DISPATCH(m, api_model_get_params, m->impl, params);
    return 0;
}

/* The first non-finite entry of x (n), or -1. */
static int64_t first_nonfinite(const double *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}

int hs_model_set_params(hs_model *m, const double *params) {
    HS_TRY(check_model(m, "hs_model_set_params"));
    if (!params) return hs_error("hs_model_set_params: params is NULL");
    int64_t bad = first_nonfinite(params, m->info.num_params);
    if (bad >= 0) return hs_error("hs_model_set_params: params[%lld] is not finite", (long long)bad);
    if (m->dtype == HS_FLOAT32)
        for (int64_t i = 0; i < m->info.num_params; i++)
            if (!isfinite((float)params[i]))
                return hs_error("hs_model_set_params: params[%lld] = %g overflows float32", (long long)i, params[i]);
    DISPATCH(m, api_model_set_params, m->impl, params);
    return 0;
}

int hs_model_set_batch_stats(hs_model *m, int batch_stats) {
    HS_TRY(check_model(m, "hs_model_set_batch_stats"));
    if (batch_stats != 0 && batch_stats != 1)
        return hs_error("hs_model_set_batch_stats: batch_stats must be 0 or 1 (got %d)", batch_stats);
    DISPATCH(m, api_model_set_batch_stats, m->impl, batch_stats);
    return 0;
}

int hs_model_forward(hs_model *m, const double *x, int64_t n, double *out) {
    HS_TRY(check_model(m, "hs_model_forward"));
    if (!x || !out) return hs_error("hs_model_forward: x or out is NULL");
    if (n < 1 || n > INT_MAX) return hs_error("hs_model_forward: n must be in [1, %d] (got %lld)", INT_MAX, (long long)n);
    int64_t bad = first_nonfinite(x, n * (int64_t)m->info.in_size);
    if (bad >= 0)
        return hs_error("hs_model_forward: x holds a non-finite value at sample %lld (element %lld)",
                        (long long)(bad / (int64_t)m->info.in_size), (long long)(bad % (int64_t)m->info.in_size));
    return DISPATCH(m, api_model_forward, m->impl, x, n, out);
}

/* ---- data ------------------------------------------------------------------------------------------- */

static int npy_type_of_input(hs_dtype t, NpyDtype *out) {
    if (t == HS_FLOAT32) *out = NPY_F32;
    else if (t == HS_FLOAT64) *out = NPY_F64;
    else return hs_error("hs_data_from_arrays: input_type must be HS_FLOAT32 or HS_FLOAT64 (got %d)", (int)t);
    return 0;
}

static int npy_type_of_target(hs_target_type t, NpyDtype *out) {
    switch (t) {
    case HS_LABELS_INT32: *out = NPY_I32; return 0;
    case HS_LABELS_INT64: *out = NPY_I64; return 0;
    case HS_VALUES_FLOAT32: *out = NPY_F32; return 0;
    case HS_VALUES_FLOAT64: *out = NPY_F64; return 0;
    }
    return hs_error("target_type must be one of HS_LABELS_INT32/INT64, HS_VALUES_FLOAT32/FLOAT64 (got %d)", (int)t);
}

int hs_data_from_arrays(const void *inputs, hs_dtype input_type, int ndim, const int64_t *shape, const void *targets,
                        hs_target_type target_type, int target_ndim, const int64_t *target_shape, hs_data **out) {
    if (!out) return hs_error("hs_data_from_arrays: out is NULL");
    *out = NULL;
    if (!inputs || !targets || !shape || !target_shape)
        return hs_error("hs_data_from_arrays: inputs, targets and both shapes must not be NULL");
    NpyDtype xt = NPY_F64, yt = NPY_F64;
    HS_TRY(npy_type_of_input(input_type, &xt));
    if (npy_type_of_target(target_type, &yt)) return hs_error_context("hs_data_from_arrays: ");
    /* ndim and target_ndim count every dimension of the arrays, N included (NumPy's X.ndim, X.shape). */
    if (ndim < 2 || ndim > 5)
        return hs_error("hs_data_from_arrays: inputs must have 2 to 5 dimensions (N, d1..dk), got ndim %d", ndim);
    if (target_ndim < 1 || target_ndim > 5)
        return hs_error("hs_data_from_arrays: targets must have 1 to 5 dimensions (N, ...), got target_ndim %d",
                        target_ndim);
    hs_data *d = hs_calloc(1, sizeof *d);
    if (!d) return -1;
    if (samples_from_arrays(inputs, xt, ndim, shape, targets, yt, target_ndim, target_shape, &d->src) != 0) {
        free(d);
        return hs_error_context("hs_data_from_arrays: ");
    }
    *out = d;
    return 0;
}

int hs_data_from_npy(const char *inputs_path, const char *targets_path, hs_data **out) {
    if (!out) return hs_error("hs_data_from_npy: out is NULL");
    *out = NULL;
    if (!inputs_path || !targets_path) return hs_error("hs_data_from_npy: a path is NULL");
    hs_data *d = hs_calloc(1, sizeof *d);
    if (!d) return -1;
    if (samples_from_npy(inputs_path, targets_path, &d->src) != 0) {
        free(d);
        return -1;
    }
    *out = d;
    return 0;
}

int hs_data_from_cifar10(const char *dir, int test_split, hs_data **out) {
    if (!out) return hs_error("hs_data_from_cifar10: out is NULL");
    *out = NULL;
    if (!dir) return hs_error("hs_data_from_cifar10: dir is NULL");
    if (test_split != 0 && test_split != 1)
        return hs_error("hs_data_from_cifar10: test_split must be 0 (training set) or 1 (test set), got %d", test_split);
    hs_data *d = hs_calloc(1, sizeof *d);
    if (!d) return -1;
    if (samples_from_cifar10(dir, test_split ? CIFAR10_TEST : CIFAR10_TRAIN, &d->src) != 0) {
        free(d);
        return -1;
    }
    *out = d;
    return 0;
}

/* A source whose samples come from the user's callback, in float64, converted to the requested precision. */
typedef struct {
    hs_fill_fn fill;
    void *user;
    int classes;
} CallbackImpl;

static int callback_fill(const SampleSource *s, const int *indices, const SampleAug *aug, int n, void *x,
                         size_t elem_size, void *targets) {
    const CallbackImpl *impl = s->impl;
    if (elem_size != 4 && elem_size != 8) return hs_error("sample fill: elem_size must be 4 or 8 (got %zu)", elem_size);
    if (aug) return hs_error("data from a callback are never augmented");
    if (n <= 0) return 0;
    int labels = s->target_kind == TARGET_LABELS;
    size_t in = s->in_size, ts = s->target_size;
    int64_t *idx = hs_malloc(sizeof(int64_t) * (size_t)n);
    double *xd = hs_malloc(sizeof(double) * (size_t)n * in);
    void *yd = hs_malloc(labels ? sizeof(int32_t) * (size_t)n : sizeof(double) * (size_t)n * ts);
    int rc = !idx || !xd || !yd ? -1 : 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        if (indices[i] < 0 || indices[i] >= s->count)
            rc = hs_error("sample fill: index %d is outside the %ld samples of %s", indices[i], s->count,
                          s->inputs_name);
        else idx[i] = indices[i];
    }
    if (rc == 0) {
        int user_rc;
        /* "Called from one thread at a time" (hessian.h). A mutex, not a named omp critical: that is a global
         * symbol (.gomp_critical_user_NAME) which libhessian.so would export. */
        static pthread_mutex_t fill_lock = PTHREAD_MUTEX_INITIALIZER;
        pthread_mutex_lock(&fill_lock);
        user_rc = impl->fill(impl->user, idx, n, xd, yd);
        pthread_mutex_unlock(&fill_lock);
        if (user_rc != 0) rc = hs_error("the data callback returned %d (asked for %d samples from index %lld on)",
                                        user_rc, n, (long long)idx[0]);
    }
    for (size_t k = 0; rc == 0 && k < (size_t)n * in; k++)
        if (!isfinite(xd[k]))
            rc = hs_error("the data callback gave a non-finite input for sample %lld (element %zu)",
                          (long long)idx[k / in], k % in);
    for (int i = 0; rc == 0 && labels && i < n; i++) {
        int32_t l = ((const int32_t *)yd)[i];
        if (l < 0 || l >= impl->classes)
            rc = hs_error("the data callback gave label %d for sample %lld; labels must be in [0, %d)", (int)l,
                          (long long)idx[i], impl->classes);
    }
    for (size_t k = 0; rc == 0 && !labels && k < (size_t)n * ts; k++)
        if (!isfinite(((const double *)yd)[k]))
            rc = hs_error("the data callback gave a non-finite target for sample %lld (element %zu)",
                          (long long)idx[k / ts], k % ts);
    if (rc == 0) {
        size_t nx = (size_t)n * in;
        if (elem_size == 8) memcpy(x, xd, sizeof(double) * nx);
        else
            for (size_t k = 0; k < nx; k++) ((float *)x)[k] = (float)xd[k];
        if (targets && labels) memcpy(targets, yd, sizeof(int32_t) * (size_t)n);
        else if (targets && elem_size == 8) memcpy(targets, yd, sizeof(double) * (size_t)n * ts);
        else if (targets)
            for (size_t k = 0; k < (size_t)n * ts; k++) ((float *)targets)[k] = (float)((const double *)yd)[k];
    }
    free(idx);
    free(xd);
    free(yd);
    return rc;
}

static void callback_free(SampleSource *s) { free(s->impl); }

int hs_data_from_callback(int64_t count, int input_ndim, const int64_t *input_shape, hs_target_type target_type,
                          int classes, int64_t target_size, hs_fill_fn fill, void *user, hs_data **out) {
    if (!out) return hs_error("hs_data_from_callback: out is NULL");
    *out = NULL;
    if (!fill) return hs_error("hs_data_from_callback: fill is NULL");
    if (count < 1 || count > INT_MAX)
        return hs_error("hs_data_from_callback: count must be in [1, %d] (got %lld)", INT_MAX, (long long)count);
    if (input_ndim < 1 || input_ndim > 4 || !input_shape)
        return hs_error("hs_data_from_callback: input_ndim must be in [1, 4] with input_shape given (got %d)",
                        input_ndim);
    size_t in = 1;
    for (int d = 0; d < input_ndim; d++) {
        if (input_shape[d] < 1 || input_shape[d] > INT_MAX)
            return hs_error("hs_data_from_callback: input_shape[%d] = %lld must be positive", d,
                            (long long)input_shape[d]);
        in *= (size_t)input_shape[d];
        if (in > (size_t)INT_MAX) return hs_error("hs_data_from_callback: the input shape is too large");
    }
    if (target_type == HS_LABELS_INT32) {
        if (classes < 1) return hs_error("hs_data_from_callback: classes must be >= 1 for labels (got %d)", classes);
    } else if (target_type == HS_VALUES_FLOAT64) {
        if (target_size < 1 || target_size > INT_MAX)
            return hs_error("hs_data_from_callback: target_size must be >= 1 for values (got %lld)",
                            (long long)target_size);
    } else {
        return hs_error("hs_data_from_callback: target_type must be HS_LABELS_INT32 or HS_VALUES_FLOAT64 (got %d)",
                        (int)target_type);
    }
    hs_data *d = hs_calloc(1, sizeof *d);
    CallbackImpl *impl = hs_calloc(1, sizeof *impl);
    if (!d || !impl) {
        free(d);
        free(impl);
        return -1;
    }
    impl->fill = fill;
    impl->user = user;
    impl->classes = classes;
    SampleSource *s = &d->src;
    s->count = (long)count;
    s->in_ndim = input_ndim;
    for (int k = 0; k < input_ndim; k++) s->in_shape[k] = input_shape[k];
    s->in_size = in;
    if (target_type == HS_LABELS_INT32) {
        s->target_kind = TARGET_LABELS;
        s->num_classes = classes;
        s->target_size = 1;
    } else {
        s->target_kind = TARGET_VALUES;
        s->target_size = (size_t)target_size;
        s->target_ndim = 1;
        s->target_shape[0] = target_size;
    }
    snprintf(s->inputs_name, sizeof s->inputs_name, "the data callback");
    snprintf(s->targets_name, sizeof s->targets_name, "the data callback's targets");
    s->unit = "samples";
    s->fill = callback_fill;
    s->free = callback_free;
    s->impl = impl;
    *out = d;
    return 0;
}

int64_t hs_data_count(const hs_data *d) {
    if (!d) return hs_error("hs_data_count: the data is NULL");
    return (int64_t)d->src.count;
}

void hs_data_free(hs_data *d) {
    if (!d) return;
    samples_free(&d->src);
    free(d);
}

/* ---- sample selections ------------------------------------------------------------------------------ */

/* The selection s over d as int indices (malloc'd) and a chunk; checks range, distinctness and counts. */
static int resolve_samples(const hs_data *d, const hs_samples *s, const char *fn, int **indices, int *count,
                           int *chunk) {
    *indices = NULL;
    *count = 0;
    *chunk = 0;
    long N = d->src.count;
    int64_t offset = s ? s->offset : 0, n = s ? s->count : 0;
    if (s && (s->chunk < 0)) return hs_error("%s: samples->chunk must be >= 0 (got %d)", fn, s->chunk);
    if (s) *chunk = s->chunk;
    if (s && s->indices) {
        if (n < 1 || n > N)
            return hs_error("%s: samples->count must be in [1, %ld] with indices (got %lld)", fn, N, (long long)n);
        unsigned char *seen = hs_calloc((size_t)N, 1);
        int *idx = hs_malloc(sizeof(int) * (size_t)n);
        if (!seen || !idx) {
            free(seen);
            free(idx);
            return -1;
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t v = s->indices[i];
            if (v < 0 || v >= N || seen[v]) {
                free(seen);
                free(idx);
                if (v < 0 || v >= N)
                    return hs_error("%s: samples->indices[%lld] = %lld is outside [0, %ld)", fn, (long long)i,
                                    (long long)v, N);
                return hs_error("%s: samples->indices[%lld] = %lld appears twice; indices must be distinct", fn,
                                (long long)i, (long long)v);
            }
            seen[v] = 1;
            idx[i] = (int)v;
        }
        free(seen);
        *indices = idx;
        *count = (int)n;
        return 0;
    }
    if (offset < 0 || offset >= N)
        return hs_error("%s: samples->offset %lld is outside [0, %ld)", fn, (long long)offset, N);
    if (n < 0 || n > N - offset)
        return hs_error("%s: samples->count %lld at offset %lld does not fit in the %ld samples", fn, (long long)n,
                        (long long)offset, N);
    if (n == 0) n = N - offset;
    int *idx = hs_malloc(sizeof(int) * (size_t)n);
    if (!idx) return -1;
    for (int64_t i = 0; i < n; i++) idx[i] = (int)(offset + i);
    *indices = idx;
    *count = (int)n;
    return 0;
}

/* The common start of a computation: model, data and selection checked; the loss chosen and checked. */
static int begin(hs_model *m, const hs_data *d, const hs_samples *s, const char *fn, int **idx, ApiSamples *as) {
    *idx = NULL;
    HS_TRY(check_model(m, fn));
    if (!d) return hs_error("%s: the data is NULL", fn);
    int count, chunk;
    HS_TRY(resolve_samples(d, s, fn, idx, &count, &chunk));
    *as = (ApiSamples){&d->src, *idx, count, chunk};
    if (DISPATCH(m, api_check_source, m->impl, &d->src) != 0) {
        free(*idx);
        *idx = NULL;
        return hs_error_context("%s: ", fn);
    }
    return 0;
}

static int check_curvature(hs_curvature c, const char *fn) {
    if (c != HS_HESSIAN && c != HS_GGN)
        return hs_error("%s: curvature must be HS_HESSIAN or HS_GGN (got %d)", fn, (int)c);
    return 0;
}

/* ---- loss, gradient, products, the exact Hessian ---------------------------------------------------- */

int hs_loss(hs_model *m, const hs_data *d, const hs_samples *s, double *loss, double *accuracy) {
    int *idx;
    ApiSamples as;
    HS_TRY(begin(m, d, s, "hs_loss", &idx, &as));
    int rc = DISPATCH(m, api_loss_grad, m->impl, &as, loss, accuracy, NULL);
    free(idx);
    return rc;
}

int hs_gradient(hs_model *m, const hs_data *d, const hs_samples *s, double *grad, double *loss) {
    if (!grad) return hs_error("hs_gradient: grad is NULL");
    int *idx;
    ApiSamples as;
    HS_TRY(begin(m, d, s, "hs_gradient", &idx, &as));
    int rc = DISPATCH(m, api_loss_grad, m->impl, &as, loss, NULL, grad);
    free(idx);
    return rc;
}

int hs_hvp(hs_model *m, const hs_data *d, const hs_samples *s, hs_curvature curvature, const double *v, int K,
           double *hv) {
    HS_TRY(check_curvature(curvature, "hs_hvp"));
    if (K < 1) return hs_error("hs_hvp: K must be >= 1 (got %d)", K);
    if (!v || !hv) return hs_error("hs_hvp: v or hv is NULL");
    HS_TRY(check_model(m, "hs_hvp"));
    int64_t bad = first_nonfinite(v, (int64_t)K * m->info.num_params);
    if (bad >= 0)
        return hs_error("hs_hvp: v[%lld][%lld] is not finite", (long long)(bad / m->info.num_params),
                        (long long)(bad % m->info.num_params));
    int *idx;
    ApiSamples as;
    HS_TRY(begin(m, d, s, "hs_hvp", &idx, &as));
    int rc = DISPATCH(m, api_hvp, m->impl, &as, curvature, v, K, hv);
    free(idx);
    return rc;
}

int hs_exact(hs_model *m, const hs_data *d, const hs_samples *s, hs_curvature curvature, double *matrix,
             double *eigenvalues) {
    HS_TRY(check_curvature(curvature, "hs_exact"));
    HS_TRY(check_model(m, "hs_exact"));
    if (!matrix && !eigenvalues) return hs_error("hs_exact: matrix and eigenvalues are both NULL");
    int64_t P = m->info.num_params;
    if (P > 1000000) return hs_error("hs_exact: the model has %lld parameters; a P x P matrix is too large", (long long)P);
    int *idx;
    ApiSamples as;
    HS_TRY(begin(m, d, s, "hs_exact", &idx, &as));
    size_t PP = (size_t)P * (size_t)P;
    double *H = matrix ? matrix : hs_malloc(sizeof(double) * PP);
    int rc = H ? DISPATCH(m, api_exact, m->impl, &as, curvature, H) : -1;
    free(idx);
    if (rc == 0 && eigenvalues) {
        double *a = matrix ? hs_malloc(sizeof(double) * PP) : H;
        if (!a) rc = -1;
        else {
            if (matrix) memcpy(a, matrix, sizeof(double) * PP);
            rc = eigen_symmetric_f64(a, P, eigenvalues, 0);
            if (a != H) free(a);
        }
    }
    if (H != matrix) free(H);
    return rc;
}

int hs_diag(hs_model *m, const hs_data *d, const hs_samples *s, double *diag, int *exact_hessian) {
    HS_TRY(check_model(m, "hs_diag"));
    if (!diag) return hs_error("hs_diag: diag is NULL");
    int *idx;
    ApiSamples as;
    HS_TRY(begin(m, d, s, "hs_diag", &idx, &as));
    int exact = 0;
    int rc = DISPATCH(m, api_diag, m->impl, &as, diag, &exact);
    free(idx);
    if (rc != 0) return hs_error_context("hs_diag: ");
    if (exact_hessian) *exact_hessian = exact;
    return 0;
}

/* ---- the Hessian as an operator --------------------------------------------------------------------- */

int hs_operator_create(hs_model *m, const hs_data *d, const hs_samples *s, const hs_operator_options *opt,
                       hs_operator **out) {
    if (!out) return hs_error("hs_operator_create: out is NULL");
    *out = NULL;
    hs_operator_options o = {HS_HESSIAN, 0, 0, NULL};
    if (opt) o = *opt;
    HS_TRY(check_curvature(o.curvature, "hs_operator_create"));
    if (o.batch < 0) return hs_error("hs_operator_create: batch must be >= 0 (got %d)", o.batch);
    hs_operator *op = hs_calloc(1, sizeof *op);
    if (!op) return -1;
    ApiSamples as;
    if (begin(m, d, s, "hs_operator_create", &op->indices, &as) != 0) {
        free(op);
        return -1;
    }
    if (o.batch > as.count) {
        free(op->indices);
        free(op);
        return hs_error("hs_operator_create: batch %d is larger than the %d samples selected", o.batch, as.count);
    }
    if (DISPATCH(m, api_operator_create, m->impl, &as, &o, &op->op) != 0) {
        free(op->indices);
        free(op);
        return hs_error_context("hs_operator_create: ");
    }
    op->model = m;
    op->data = d;
    *out = op;
    return 0;
}

void hs_operator_free(hs_operator *op) {
    if (!op) return;
    DISPATCH(op->model, api_operator_free, &op->op);
    free(op->indices);
    free(op);
}

int64_t hs_operator_dim(const hs_operator *op) {
    if (!op) return hs_error("hs_operator_dim: the operator is NULL");
    return op->op.op.n;
}

int hs_operator_apply(hs_operator *op, const double *v, int K, double *out) {
    if (!op) return hs_error("hs_operator_apply: the operator is NULL");
    if (K < 1) return hs_error("hs_operator_apply: K must be >= 1 (got %d)", K);
    if (!v || !out) return hs_error("hs_operator_apply: v or out is NULL");
    int64_t n = op->op.op.n, bad = first_nonfinite(v, (int64_t)K * n);
    if (bad >= 0)
        return hs_error("hs_operator_apply: v[%lld][%lld] is not finite", (long long)(bad / n), (long long)(bad % n));
    return linop_apply(&op->op.op, v, out, K);
}

int64_t hs_operator_products(const hs_operator *op) {
    if (!op) return hs_error("hs_operator_products: the operator is NULL");
    int64_t products;
    double loss;
    DISPATCH(op->model, api_operator_stats, &op->op, &products, &loss);
    return products;
}

double hs_operator_last_loss(const hs_operator *op) {
    if (!op) {
        hs_error("hs_operator_last_loss: the operator is NULL");
        return NAN;
    }
    int64_t products;
    double loss;
    DISPATCH(op->model, api_operator_stats, &op->op, &products, &loss);
    return products > 0 ? loss : NAN;
}

/* ---- spectral methods ------------------------------------------------------------------------------- */

hs_lanczos_options hs_lanczos_defaults(void) {
    hs_lanczos_options o = {5, HS_LARGEST, 100, 1e-6, 0};
    return o;
}

int hs_lanczos(hs_operator *op, const hs_lanczos_options *opt, double *eigenvalues, double *residuals, double *vectors,
               hs_lanczos_info *info) {
    if (!op) return hs_error("hs_lanczos: the operator is NULL");
    if (!eigenvalues) return hs_error("hs_lanczos: eigenvalues is NULL");
    hs_lanczos_options o = opt ? *opt : hs_lanczos_defaults();
    if (o.k < 1) return hs_error("hs_lanczos: k must be >= 1 (got %d)", o.k);
    if (o.which != HS_LARGEST && o.which != HS_SMALLEST && o.which != HS_BOTH)
        return hs_error("hs_lanczos: which must be HS_LARGEST, HS_SMALLEST or HS_BOTH (got %d)", (int)o.which);
    int wanted = o.which == HS_BOTH ? 2 * o.k : o.k;
    if (o.max_steps < 1) return hs_error("hs_lanczos: max_steps must be >= 1 (got %d)", o.max_steps);
    if (!(o.tol >= 0) || !isfinite(o.tol)) return hs_error("hs_lanczos: tol must be finite and >= 0 (got %g)", o.tol);
    int64_t n = op->op.op.n;
    if (o.max_steps < wanted && o.max_steps < n)
        return hs_error("hs_lanczos: max_steps %d is below the %d eigenpairs wanted", o.max_steps, wanted);
    LanczosWhich which = o.which == HS_LARGEST ? LANCZOS_LARGEST : o.which == HS_SMALLEST ? LANCZOS_SMALLEST
                                                                                        : LANCZOS_BOTH;
    LanczosOptions lo = {o.k, which, o.max_steps, o.tol, o.seed, NULL, vectors != NULL, NULL, NULL};
    LanczosResult r;
    memset(&r, 0, sizeof r);
    if (lanczos(&op->op.op, &lo, &r) != 0) {
        lanczos_result_free(&r);
        return hs_error_context("hs_lanczos: ");
    }
    int count = r.count < wanted ? r.count : wanted;
    memcpy(eigenvalues, r.eigenvalues, sizeof(double) * (size_t)count);
    if (residuals) memcpy(residuals, r.residuals, sizeof(double) * (size_t)count);
    if (vectors) memcpy(vectors, r.vectors, sizeof(double) * (size_t)count * (size_t)n);
    if (info) *info = (hs_lanczos_info){count, r.steps, r.products, r.converged};
    lanczos_result_free(&r);
    return 0;
}

hs_power_options hs_power_defaults(void) {
    hs_power_options o = {100, 1e-4, HS_POWER_PLAIN, 0, 0};
    return o;
}

int hs_power(hs_operator *op, const hs_power_options *opt, double *eigenvalue, double *residual, double *vector,
             int *steps) {
    if (!op) return hs_error("hs_power: the operator is NULL");
    if (!eigenvalue) return hs_error("hs_power: eigenvalue is NULL");
    hs_power_options o = opt ? *opt : hs_power_defaults();
    if (o.iters < 1) return hs_error("hs_power: iters must be >= 1 (got %d)", o.iters);
    if (!(o.tol >= 0) || !isfinite(o.tol)) return hs_error("hs_power: tol must be finite and >= 0 (got %g)", o.tol);
    if (o.variant != HS_POWER_PLAIN && o.variant != HS_POWER_MOMENTUM && o.variant != HS_POWER_HEAVY_BALL)
        return hs_error("hs_power: variant must be HS_POWER_PLAIN, HS_POWER_MOMENTUM or HS_POWER_HEAVY_BALL (got %d)",
                        (int)o.variant);
    if (!(o.beta >= 0 && o.beta < 1)) return hs_error("hs_power: beta must be in [0, 1) (got %g)", o.beta);
    PowerVariant v = o.variant == HS_POWER_PLAIN ? POWER_PLAIN
                     : o.variant == HS_POWER_MOMENTUM ? POWER_STUDY_MOMENTUM
                                                      : POWER_HEAVY_BALL;
    PowerOptions po = {o.iters, o.beta, v, o.tol, o.seed, NULL, NULL, NULL};
    PowerResult r;
    memset(&r, 0, sizeof r);
    if (power_iteration(&op->op.op, &po, &r) != 0) {
        power_result_free(&r);
        return hs_error_context("hs_power: ");
    }
    *eigenvalue = r.lambda;
    if (residual) *residual = r.residual;
    if (vector) memcpy(vector, r.vector, sizeof(double) * (size_t)op->op.op.n);
    if (steps) *steps = r.steps;
    power_result_free(&r);
    return 0;
}

int hs_trace(hs_operator *op, hs_trace_method method, int probes, uint64_t seed, double *trace, double *std_error) {
    if (!op) return hs_error("hs_trace: the operator is NULL");
    if (!trace) return hs_error("hs_trace: trace is NULL");
    TraceResult r;
    if (method == HS_HUTCHINSON) {
        if (probes < 2) return hs_error("hs_trace: Hutchinson needs probes >= 2 (got %d)", probes);
        if (trace_hutchinson(&op->op.op, probes, seed, &r) != 0) return hs_error_context("hs_trace: ");
    } else if (method == HS_HUTCHPP) {
        if (probes < 4) return hs_error("hs_trace: Hutch++ needs probes >= 4 (got %d)", probes);
        if (trace_hutchpp(&op->op.op, probes, seed, &r) != 0) return hs_error_context("hs_trace: ");
    } else {
        return hs_error("hs_trace: method must be HS_HUTCHINSON or HS_HUTCHPP (got %d)", (int)method);
    }
    *trace = r.trace;
    if (std_error) *std_error = r.std_error;
    return 0;
}

hs_density_options hs_density_defaults(void) {
    hs_density_options o = {4, 80, 1000, 0, 0};
    return o;
}

int hs_density(hs_operator *op, const hs_density_options *opt, double *x, double *density, double *sigma_used) {
    if (!op) return hs_error("hs_density: the operator is NULL");
    if (!x || !density) return hs_error("hs_density: x or density is NULL");
    hs_density_options o = opt ? *opt : hs_density_defaults();
    if (o.runs < 1) return hs_error("hs_density: runs must be >= 1 (got %d)", o.runs);
    if (o.steps < 1) return hs_error("hs_density: steps must be >= 1 (got %d)", o.steps);
    if (o.grid < 16) return hs_error("hs_density: grid must be >= 16 (got %d)", o.grid);
    if (!(o.sigma >= 0) || !isfinite(o.sigma))
        return hs_error("hs_density: sigma must be finite and >= 0 (0: automatic; got %g)", o.sigma);
    DensityOptions dopt = {o.runs, o.steps, o.sigma, o.grid, o.seed, DENSITY_RADEMACHER};
    DensityResult r;
    memset(&r, 0, sizeof r);
    if (spectral_density(&op->op.op, &dopt, &r) != 0) {
        density_result_free(&r);
        return hs_error_context("hs_density: ");
    }
    memcpy(x, r.x, sizeof(double) * (size_t)r.grid);
    memcpy(density, r.density, sizeof(double) * (size_t)r.grid);
    if (sigma_used) *sigma_used = r.sigma;
    density_result_free(&r);
    return 0;
}

/* ---- training --------------------------------------------------------------------------------------- */

hs_train_options hs_train_defaults(void) {
    hs_train_options o = {1, 100, 0.01, 0.9, 0, 0, 0, 0};
    return o;
}

int hs_train(hs_model *m, const hs_data *d, const hs_train_options *opt, hs_train_info *info) {
    HS_TRY(check_model(m, "hs_train"));
    if (!d) return hs_error("hs_train: the data is NULL");
    hs_train_options o = opt ? *opt : hs_train_defaults();
    if (o.epochs < 1) return hs_error("hs_train: epochs must be >= 1 (got %d)", o.epochs);
    if (o.batch < 1) return hs_error("hs_train: batch must be >= 1 (got %d)", o.batch);
    if (!(o.lr > 0) || !isfinite(o.lr)) return hs_error("hs_train: lr must be positive and finite (got %g)", o.lr);
    if (!(o.momentum >= 0 && o.momentum < 1)) return hs_error("hs_train: momentum must be in [0, 1) (got %g)", o.momentum);
    if (!(o.weight_decay >= 0) || !isfinite(o.weight_decay))
        return hs_error("hs_train: weight_decay must be finite and >= 0 (got %g)", o.weight_decay);
    if (o.augment != 0 && o.augment != 1) return hs_error("hs_train: augment must be 0 or 1 (got %d)", o.augment);
    if (o.augment && !d->src.draw_augment)
        return hs_error("hs_train: augment needs CIFAR-10 data (%s has no augmentation)", d->src.inputs_name);
    if (o.samples < 0) return hs_error("hs_train: samples must be >= 0 (got %lld)", (long long)o.samples);
    long N = d->src.count;
    int count = o.samples > 0 && o.samples < N ? (int)o.samples : (int)N;
    if (o.batch > count)
        return hs_error("hs_train: batch %d is larger than the %d training %s", o.batch, count, d->src.unit);
    if (DISPATCH(m, api_train, m->impl, &d->src, count, &o, info) != 0) return hs_error_context("hs_train: ");
    return 0;
}
