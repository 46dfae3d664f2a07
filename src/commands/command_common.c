/* command_common.c: shared pieces of the commands (see command_common.h). */
#include "command_common.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/progress.h"
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

void FN(hessian_operator_free)(HessianOperator *op) {
    free(op->pool);
    free(op->block);
    free(op->full_v);
    free(op->full_hv);
}

static int name_matches(const char *name, const char *entry, size_t len) {
    return strncmp(name, entry, len) == 0 && (name[len] == 0 || name[len] == '.');
}

int FN(command_param_block)(const Model *m, const char *params, int64_t **indices, int64_t *count) {
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
            return hs_error("--params: '%.*s' names no parameter of model %s (its tensors: %s%s)", (int)len, p,
                            m->arch->name, list, used + 100 >= sizeof list ? ", ..." : "");
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

int FN(hessian_operator_set_block)(HessianOperator *op, const char *params) {
    free(op->block);
    op->block = NULL;
    op->block_size = 0;
    if (!params || strcmp(params, "all") == 0) return 0;
    return FN(command_param_block)(op->model, params, &op->block, &op->block_size);
}

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
    op->products += count;
    if (op->progress) {
        char msg[64];
        snprintf(msg, sizeof msg, "batch loss %.4f", op->last_loss);
        progress_update(op->progress, op->products, op->products > 1 ? msg : NULL);
    }
    if (!op->block) return FN(curv_hvp)(op->model, &set, v, count, op->curvature, out, &op->last_loss);
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
    HS_TRY(FN(curv_hvp)(op->model, &set, op->full_v, count, op->curvature, op->full_hv, &op->last_loss));
    for (int k = 0; k < count; k++)
        for (int64_t i = 0; i < n; i++) out[(size_t)k * n + i] = op->full_hv[(size_t)k * P + (size_t)op->block[i]];
    return 0;
}

LinOp FN(hessian_operator_linop)(HessianOperator *op) {
    LinOp l = {op->block ? op->block_size : (int64_t)op->model->num_params, FN(hessian_operator_apply), op, 0};
    return l;
}

void FN(common_defaults)(CommonOptions *o, const char *samples) {
    memset(o, 0, sizeof *o);
    o->arch = "cnn";
    o->samples = samples;
    o->precision = "f32";
    o->curvature_name = "hessian";
    o->bn = "eval";
}

int FN(common_check)(const CommonOptions *o, Curvature *c) {
    if (FN(command_curvature)(o->curvature_name, c) != 0 || FN(command_set_threads)(o->threads) != 0) return -1;
    if (o->chunk < 0) return hs_error("--chunk must be >= 0 (got %d)", o->chunk);
    if (strcmp(o->bn, "eval") != 0 && strcmp(o->bn, "batch") != 0)
        return hs_error("--bn must be eval or batch (got '%s')", o->bn);
    if (o->quiet) progress_set_quiet(1);
    return 0;
}

/* Loads model, training data and selection. */
int FN(common_open)(const CommonOptions *o, Model **m, Cifar10 *train, int **idx, int *count) {
    if (cifar10_load(o->data_dir, CIFAR10_TRAIN, train) != 0) return -1;
    HS_TRY(FN(command_selection)(train, o->samples, o->offset, idx, count));
    HS_TRY(FN(command_open_model)(o->arch, o->checkpoint, 0, 0, m));
    (*m)->training = 0;
    (*m)->bn_mode = strcmp(o->bn, "batch") == 0 ? BN_BATCH : BN_EVAL;
    return 0;
}

void FN(write_common_json)(JsonWriter *w, const char *command, const CommonOptions *o, int count) {
    FN(command_write_provenance)(w, command, o->arch, o->checkpoint);
    json_key(w, "samples");
    json_int(w, count);
    json_key(w, "offset");
    json_int(w, o->offset);
    json_key(w, "curvature");
    json_string(w, o->curvature == CURVATURE_GGN ? "ggn" : "hessian");
    json_key(w, "params");
    json_string(w, o->params ? o->params : "all");
    json_key(w, "batch_norm");
    json_string(w, o->bn);
    json_key(w, "chunk");
    json_int(w, o->chunk);
}

int FN(setup_open)(CommandSetup *s, const CommonOptions *o, int with_operator, int stochastic, int batch,
                   uint64_t seed) {
    memset(s, 0, sizeof *s);
    HS_TRY(FN(common_open)(o, &s->model, &s->train, &s->idx, &s->count));
    if (!with_operator) return 0;
    HS_TRY(FN(hessian_operator_init)(&s->hop, s->model, &s->train, s->idx, s->count, stochastic, batch, o->chunk, seed,
                                     o->curvature));
    s->hop_ready = 1;
    HS_TRY(FN(hessian_operator_set_block)(&s->hop, o->params));
    s->op = FN(hessian_operator_linop)(&s->hop);
    return 0;
}

void FN(setup_close)(CommandSetup *s) {
    if (s->hop_ready) FN(hessian_operator_free)(&s->hop);
    free(s->idx);
    cifar10_free(&s->train);
    FN(model_free)(s->model);
}

int FN(setup_json_begin)(AtomicFile *af, JsonWriter *w, const char *path, const char *command, const CommonOptions *o,
                         const CommandSetup *s, uint64_t seed, double seconds) {
    HS_TRY(atomic_file_open(af, path));
    json_begin(w, af->fp);
    json_object_begin(w);
    FN(write_common_json)(w, command, o, s->count);
    json_key(w, "num_params");
    json_int(w, (int64_t)s->model->num_params);
    if (s->hop_ready) {
        json_key(w, "d"); /* the operator's dimension (a block with --params) */
        json_int(w, s->op.n);
        json_key(w, "operator");
        json_string(w, s->hop.stochastic ? "stochastic" : "fixed");
        json_key(w, "batch");
        json_int(w, s->hop.batch);
    }
    json_key(w, "seed");
    json_int(w, (int64_t)seed);
    json_key(w, "hvps");
    json_int(w, s->op.applications);
    json_key(w, "seconds");
    json_double(w, seconds);
    return 0;
}

int FN(setup_json_end)(AtomicFile *af, JsonWriter *w) {
    json_object_end(w);
    json_end(w);
    return atomic_file_commit(af);
}

