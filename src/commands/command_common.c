/* command_common.c: shared pieces of the commands (see command_common.h). */
#include "command_common.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/md5.h"

int FN(command_fail)(const char *command) {
    fprintf(stderr, "hessian %s: error: %s\n", command, hs_last_error());
    return EXIT_ERROR;
}

int FN(command_open_model)(const char *arch, const char *checkpoint, uint64_t seed, int allow_swap, Model **m) {
    HS_TRY(FN(model_create)(arch, seed, m));
    if (!checkpoint) return 0;
    char note[512];
    if (FN(model_load)(*m, checkpoint, allow_swap, note, sizeof note) != 0) {
        FN(model_free)(*m);
        *m = NULL;
        return -1;
    }
    if (note[0]) fprintf(stderr, "note: %s\n", note);
    return 0;
}

int FN(command_selection)(const Cifar10 *train, const char *samples, int offset, int **indices, int *count) {
    int n;
    if (offset < 0) return hs_error("--offset must be >= 0 (got %d)", offset);
    if (offset >= train->n) return hs_error("--offset %d is past the %d training images", offset, train->n);
    if (!samples || strcmp(samples, "all") == 0) {
        n = train->n - offset;
    } else {
        char *end;
        long x = strtol(samples, &end, 10);
        if (*end || x <= 0) return hs_error("--samples must be a positive integer or 'all' (got '%s')", samples);
        if (x > train->n - offset)
            return hs_error("--samples %ld with --offset %d needs %ld training images, only %d exist", x, offset,
                            x + offset, train->n);
        n = (int)x;
    }
    *indices = hs_malloc(sizeof(int) * (size_t)n);
    if (!*indices) return -1;
    for (int i = 0; i < n; i++) (*indices)[i] = offset + i;
    *count = n;
    return 0;
}

int FN(command_set_threads)(int threads) {
    if (threads < 0) return hs_error("--threads must be >= 0 (got %d)", threads);
    if (threads > 0) omp_set_num_threads(threads);
    return 0;
}

void FN(command_write_provenance)(JsonWriter *w, const char *command, const char *arch, const char *checkpoint) {
    json_key(w, "provenance");
    json_object_begin(w);
    json_key(w, "tool");
    json_string(w, "hessian");
    json_key(w, "version");
    json_string(w, HS_VERSION);
    json_key(w, "command");
    json_string(w, command);
    json_key(w, "model");
    json_string(w, arch);
    json_key(w, "checkpoint");
    if (checkpoint) json_string(w, checkpoint);
    else json_null(w);
    char hex[33];
    json_key(w, "checkpoint_md5");
    if (checkpoint && md5_file_hex(checkpoint, hex) == 0) json_string(w, hex);
    else json_null(w);
    json_key(w, "precision");
    json_string(w, HS_PRECISION_NAME);
    json_key(w, "threads");
    json_int(w, omp_get_max_threads());
    json_object_end(w);
}

int FN(command_curvature)(const char *value, Curvature *c) {
    if (!value || strcmp(value, "hessian") == 0) *c = CURVATURE_HESSIAN;
    else if (strcmp(value, "ggn") == 0) *c = CURVATURE_GGN;
    else return hs_error("--curvature must be hessian or ggn (got '%s')", value);
    return 0;
}

int FN(hessian_operator_init)(HessianOperator *op, Model *m, const Cifar10 *data, const int *pool, int pool_count,
                              int stochastic, int batch, int chunk, uint64_t seed, Curvature curvature) {
    memset(op, 0, sizeof *op);
    if (stochastic && (batch <= 0 || batch > pool_count))
        return hs_error("--batch must be in [1, %d] (got %d)", pool_count, batch);
    op->pool = hs_malloc(sizeof(int) * (size_t)pool_count);
    if (!op->pool) return -1;
    memcpy(op->pool, pool, sizeof(int) * (size_t)pool_count);
    op->model = m;
    op->data = data;
    op->curvature = curvature;
    op->stochastic = stochastic;
    op->pool_count = pool_count;
    op->batch = stochastic ? batch : pool_count;
    op->chunk = chunk;
    rng_seed(&op->rng, seed);
    if (stochastic) rng_shuffle(&op->rng, op->pool, pool_count);
    return 0;
}

void FN(hessian_operator_free)(HessianOperator *op) { free(op->pool); }

static int FN(hessian_operator_apply)(void *ctx, const double *v, double *out, int count) {
    HessianOperator *op = ctx;
    SampleSet set = {op->data, op->pool, op->pool_count, op->chunk};
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
    return FN(curv_hvp)(op->model, &set, v, count, op->curvature, out, &op->last_loss);
}

LinOp FN(hessian_operator_linop)(HessianOperator *op) {
    LinOp l = {(int64_t)op->model->num_params, FN(hessian_operator_apply), op, 0};
    return l;
}
