/* api_generic.c: the precision-generic half of the public API (see src/api/api_internal.h): models, loss,
 * gradient, Hessian-vector products, the exact Hessian, the Hessian operator and training on a Model of the
 * working precision, with every vector in float64. Arguments arrive checked by src/api/api.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../curvature/curvature.h"
#include "../../curvature/operator.h"
#include "../../models/model.h"
#include "../../optim/train_epoch.h"
#include "../api_internal.h"

int FN(api_model_create)(const char *name, uint64_t seed, void **out) {
    Model *m = NULL;
    HS_TRY(FN(model_create)(name, seed, &m));
    m->bn_mode = BN_EVAL;
    *out = m;
    return 0;
}

void FN(api_model_free)(void *m) { FN(model_free)(m); }

int FN(api_model_load)(void *m, const char *path) { return FN(model_load)(m, path, 0, NULL, 0); }

int FN(api_model_save)(const void *m, const char *path) {
    const Model *model = m;
    const char *keys[] = {"model"}, *values[] = {model->name};
    return FN(model_save)(model, path, keys, values, 1);
}

void FN(api_model_info)(const void *mv, ApiModelInfo *info) {
    const Model *m = mv;
    memset(info, 0, sizeof *info);
    info->num_params = (int64_t)m->num_params;
    info->outputs = m->classes;
    info->in_ndim = m->in_ndim;
    info->num_tensors = m->num_tensors;
    for (int d = 0; d < m->in_ndim && d < 4; d++) info->in_shape[d] = m->in_shape[d];
    info->in_size = m->in_size;
}

void FN(api_model_tensor)(const void *mv, int index, hs_tensor_info *info) {
    const Model *m = mv;
    const TensorInfo *t = &m->tensors[index];
    memset(info, 0, sizeof *info);
    info->name = t->name;
    info->ndim = t->ndim;
    for (int d = 0; d < t->ndim && d < 4; d++) info->shape[d] = t->shape[d];
    info->offset = (int64_t)t->offset;
    info->numel = (int64_t)t->numel;
}

void FN(api_model_get_params)(const void *mv, double *params) {
    const Model *m = mv;
    for (size_t i = 0; i < m->num_params; i++) params[i] = (double)m->params[i];
}

void FN(api_model_set_params)(void *mv, const double *params) {
    Model *m = mv;
    for (size_t i = 0; i < m->num_params; i++) m->params[i] = (real)params[i];
}

void FN(api_model_set_batch_stats)(void *mv, int batch_stats) {
    ((Model *)mv)->bn_mode = batch_stats ? BN_BATCH : BN_EVAL;
}

int FN(api_model_forward)(void *mv, const double *x, int64_t n, double *out) {
    Model *m = mv;
    enum { CHUNK = 250 };
    int64_t chunk = n < CHUNK ? n : CHUNK;
    real *xr = hs_malloc(sizeof(real) * (size_t)chunk * m->in_size);
    if (!xr) return -1;
    int rc = 0;
    for (int64_t at = 0; at < n && rc == 0; at += chunk) {
        int c = (int)(n - at < chunk ? n - at : chunk);
        const double *xs = x + (size_t)at * m->in_size;
        for (size_t i = 0; i < (size_t)c * m->in_size; i++) xr[i] = (real)xs[i];
        rc = FN(model_forward)(m, xr, c);
        if (rc == 0) {
            double *o = out + (size_t)at * (size_t)m->classes;
            for (size_t i = 0; i < (size_t)c * (size_t)m->classes; i++) {
                o[i] = (double)m->logits[i];
                if (!isfinite(o[i])) rc = hs_error("the model's output %zu of sample %lld is not finite",
                                                   i % (size_t)m->classes, (long long)(at + (int64_t)(i / (size_t)m->classes)));
            }
        }
    }
    free(xr);
    return rc;
}

/* The loss follows the targets: class labels give cross-entropy, real values the squared error. */
int FN(api_check_source)(void *mv, const SampleSource *src) {
    Model *m = mv;
    m->loss = src->target_kind == TARGET_LABELS ? LOSS_CROSS_ENTROPY : LOSS_MSE;
    return FN(curv_check_source)(m, src);
}

static SampleSet FN(sample_set)(const ApiSamples *s) {
    SampleSet set = {s->source, s->indices, s->count, s->chunk, 0};
    return set;
}

int FN(api_loss_grad)(void *m, const ApiSamples *s, double *loss, double *accuracy, double *grad) {
    HS_TRY(FN(api_check_source)(m, s->source));
    SampleSet set = FN(sample_set)(s);
    double l = 0, a = 0;
    HS_TRY(FN(curv_loss_grad)(m, &set, &l, &a, grad));
    if (loss) *loss = l;
    if (accuracy) *accuracy = ((Model *)m)->loss == LOSS_CROSS_ENTROPY ? a : NAN;
    return 0;
}

static Curvature curvature_of(hs_curvature c) { return c == HS_GGN ? CURVATURE_GGN : CURVATURE_HESSIAN; }

int FN(api_hvp)(void *m, const ApiSamples *s, hs_curvature c, const double *v, int K, double *hv) {
    HS_TRY(FN(api_check_source)(m, s->source));
    SampleSet set = FN(sample_set)(s);
    return FN(curv_hvp)(m, &set, v, K, curvature_of(c), hv, NULL);
}

int FN(api_exact)(void *m, const ApiSamples *s, hs_curvature c, double *H) {
    HS_TRY(FN(api_check_source)(m, s->source));
    SampleSet set = FN(sample_set)(s);
    ExactInfo info;
    return FN(curv_exact)(m, &set, curvature_of(c), H, &info, NULL, NULL);
}

int FN(api_diag)(void *m, const ApiSamples *s, double *diag, int *exact_hessian) {
    HS_TRY(FN(api_check_source)(m, s->source));
    SampleSet set = FN(sample_set)(s);
    DiagInfo info;
    HS_TRY(FN(curv_diag)(m, &set, CURVATURE_GGN, diag, &info));
    *exact_hessian = info.exact_hessian;
    return 0;
}

int FN(api_operator_create)(void *m, const ApiSamples *s, const hs_operator_options *opt, ApiOperator *out) {
    memset(out, 0, sizeof *out);
    HS_TRY(FN(api_check_source)(m, s->source));
    HessianOperator *hop = hs_calloc(1, sizeof *hop);
    if (!hop) return -1;
    if (FN(hessian_operator_init)(hop, m, s->source, s->indices, s->count, opt->batch > 0, opt->batch, s->chunk,
                                  opt->seed, curvature_of(opt->curvature)) != 0 ||
        FN(hessian_operator_set_block)(hop, opt->params, "params") != 0) {
        FN(hessian_operator_free)(hop);
        free(hop);
        return -1;
    }
    out->hop = hop;
    out->op = FN(hessian_operator_linop)(hop);
    return 0;
}

void FN(api_operator_free)(ApiOperator *op) {
    if (!op->hop) return;
    FN(hessian_operator_free)(op->hop);
    free(op->hop);
    op->hop = NULL;
}

void FN(api_operator_stats)(const ApiOperator *op, int64_t *products, double *last_loss) {
    const HessianOperator *hop = op->hop;
    *products = hop->products;
    *last_loss = hop->last_loss;
}

int FN(api_train)(void *mv, const SampleSource *src, int count, const hs_train_options *opt, hs_train_info *info) {
    Model *m = mv;
    HS_TRY(FN(api_check_source)(m, src));
    Trainer t;
    HS_TRY(FN(trainer_init)(&t, m, src, count, opt->batch, opt->augment, opt->seed, opt->lr, opt->momentum,
                            opt->weight_decay, 0));
    TrainEpochStats st = {0};
    int64_t steps = 0;
    int rc = 0;
    for (int e = 1; e <= opt->epochs && rc == 0; e++) {
        rc = FN(trainer_epoch)(&t, NULL, NULL, &st);
        if (rc != 0) hs_error_context("epoch %d, ", e);
        steps += st.batches;
    }
    FN(trainer_free)(&t);
    if (rc != 0) return -1;
    if (info) {
        info->steps = steps;
        info->loss = st.seen ? st.loss_sum / (double)st.seen : NAN;
        info->accuracy = m->loss == LOSS_CROSS_ENTROPY && st.seen ? (double)st.correct / (double)st.seen : NAN;
    }
    return 0;
}
