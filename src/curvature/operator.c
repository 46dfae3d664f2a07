/* operator.c: the Hessian (or GGN) operator over a fixed or stochastic sample set, and parameter blocks (see
 * operator.h). */
#include "operator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/progress.h"

int FN(hessian_operator_init)(HessianOperator *op, Model *m, const SampleSource *source, const int *pool, int pool_count,
                              int stochastic, int batch, int chunk, uint64_t seed, Curvature curvature) {
    memset(op, 0, sizeof *op);
    if (stochastic && (batch <= 0 || batch > pool_count))
        return hs_error("--batch must be in [1, %d] (got %d)", pool_count, batch);
    op->pool = hs_malloc(sizeof(int) * (size_t)pool_count);
    if (!op->pool) return -1;
    memcpy(op->pool, pool, sizeof(int) * (size_t)pool_count);
    op->model = m;
    op->source = source;
    op->curvature = curvature;
    op->stochastic = stochastic;
    op->pool_count = pool_count;
    op->batch = stochastic ? batch : pool_count;
    op->chunk = chunk;
    rng_seed(&op->rng, seed);
    if (stochastic) rng_shuffle(&op->rng, op->pool, pool_count);
    return 0;
}

void FN(hessian_operator_free)(HessianOperator *op) {
    FN(hvp_cache_free)(&op->cache);
    free(op->pool);
    free(op->block);
    free(op->full_v);
    free(op->full_hv);
}

static int name_matches(const char *name, const char *entry, size_t len) {
    return strncmp(name, entry, len) == 0 && (name[len] == 0 || name[len] == '.');
}

int FN(param_block)(const Model *m, const char *params, const char *what, int64_t **indices, int64_t *count) {
    *indices = NULL;
    *count = 0;
    unsigned char *chosen = hs_calloc((size_t)m->num_tensors, 1);
    if (!chosen) return -1;
    int all = !params || strcmp(params, "all") == 0;
    for (const char *p = params; !all && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int found = 0;
        for (int t = 0; t < m->num_tensors; t++)
            if (len && name_matches(m->tensors[t].name, p, len)) chosen[t] = 1, found = 1;
        if (!found) {
            char list[1024] = "";
            size_t used = 0;
            for (int t = 0; t < m->num_tensors && used + 100 < sizeof list; t++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", t ? ", " : "", m->tensors[t].name);
            free(chosen);
            return hs_error("%s: '%.*s' names no parameter of model %s (its tensors: %s%s)", what, (int)len, p,
                            m->name, list, used + 100 >= sizeof list ? ", ..." : "");
        }
        p += len + (end ? 1 : 0);
    }
    int64_t n = 0;
    for (int t = 0; t < m->num_tensors; t++)
        if (all || chosen[t]) n += (int64_t)m->tensors[t].numel;
    *indices = hs_malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    if (!*indices) {
        free(chosen);
        return -1;
    }
    int64_t j = 0;
    for (int t = 0; t < m->num_tensors; t++)
        if (all || chosen[t])
            for (size_t i = 0; i < m->tensors[t].numel; i++) (*indices)[j++] = (int64_t)(m->tensors[t].offset + i);
    *count = n;
    free(chosen);
    return 0;
}

int FN(hessian_operator_set_block)(HessianOperator *op, const char *params, const char *what) {
    free(op->block);
    op->block = NULL;
    op->block_size = 0;
    if (!params || strcmp(params, "all") == 0) return 0;
    return FN(param_block)(op->model, params, what, &op->block, &op->block_size);
}

static int FN(hessian_operator_apply)(void *ctx, const double *v, double *out, int count) {
    HessianOperator *op = ctx;
    SampleSet set = {op->source, op->pool, op->pool_count, op->chunk, 0};
    if (op->stochastic) {
        if (op->position + op->batch > op->pool_count) {
            rng_shuffle(&op->rng, op->pool, op->pool_count);
            op->position = 0;
        }
        set.indices = op->pool + op->position;
        set.count = op->batch;
        op->position += op->batch;
    }
    op->samples_seen += set.count;
    op->products += count;
    if (op->progress) {
        char msg[64];
        snprintf(msg, sizeof msg, "batch loss %.4f", op->last_loss);
        progress_update(op->progress, op->products, op->products > 1 ? msg : NULL);
    }
    HvpCache *cache = op->stochastic ? NULL : &op->cache; /* a fixed set: keep its primal passes */
    if (!op->block) return FN(curv_hvp_cached)(op->model, &set, v, count, op->curvature, out, &op->last_loss, cache);
    size_t P = op->model->num_params;
    int64_t n = op->block_size;
    if (count > op->capacity) {
        free(op->full_v);
        free(op->full_hv);
        op->full_v = hs_malloc(sizeof(double) * P * (size_t)count);
        op->full_hv = hs_malloc(sizeof(double) * P * (size_t)count);
        op->capacity = (op->full_v && op->full_hv) ? count : 0;
        if (!op->capacity) return -1;
    }
    memset(op->full_v, 0, sizeof(double) * P * (size_t)count);
    for (int k = 0; k < count; k++)
        for (int64_t i = 0; i < n; i++) op->full_v[(size_t)k * P + (size_t)op->block[i]] = v[(size_t)k * n + i];
    HS_TRY(FN(curv_hvp_cached)(op->model, &set, op->full_v, count, op->curvature, op->full_hv, &op->last_loss, cache));
    for (int k = 0; k < count; k++)
        for (int64_t i = 0; i < n; i++) out[(size_t)k * n + i] = op->full_hv[(size_t)k * P + (size_t)op->block[i]];
    return 0;
}

LinOp FN(hessian_operator_linop)(HessianOperator *op) {
    LinOp l = {op->block ? op->block_size : (int64_t)op->model->num_params, FN(hessian_operator_apply), op, 0};
    return l;
}
