/* train.c: `hessian train` and `hessian eval`: SGD training (CIFAR-10 with the study's augmentation, or the
 * user's .npy arrays in shuffled batches, never augmented), a checkpoint after every epoch (and on Ctrl-C or
 * SIGTERM), one result line per epoch, JSON history and CSV loss curve; evaluation of a checkpoint on a test
 * set.
 *
 * Beside the checkpoint OUT, the training state OUT.optimizer.safetensors holds what --resume needs to go on
 * exactly as an uninterrupted run would: the momentum buffer, the finished epochs' history, the loss curve,
 * the sharpness log, the run's settings, and the MD5 of the checkpoint it was saved with. The two files are
 * renamed one after the other, so a pair from different saves (a kill between the renames, a file copied
 * from another run) can exist: it is refused. Every number read back is range-checked.
 *
 * Under mpirun with R > 1 ranks every rank trains its replica on its part of each batch (optim/train_epoch.h);
 * only rank 0 prints and writes; the state does not depend on R, so a run may resume with another R. Ctrl-C
 * or SIGTERM is agreed over the ranks at every step (dist_any), so all of them stop after the same batch. */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/progress.h"
#include "../data/md5.h"
#include "../io/atomic_file.h"
#include "../io/safetensors.h"
#include "../optim/sgd.h"
#include "../optim/train_epoch.h"
#include "../parallel/dist.h"
#include "../report/svg_plot.h"
#include "../spectral/spectral.h"
#include "command_common.h"
#include "commands.h"

#define STATE_FORMAT "hessian train state 2"
#define STATE_SUFFIX ".optimizer.safetensors"

static volatile sig_atomic_t FN(interrupted); /* the signal (SIGINT or SIGTERM) that asked to stop, or 0 */
static void FN(on_signal)(int sig) { FN(interrupted) = sig; }
/* Whether any rank was asked to stop (a collective under R > 1: every rank calls it at the same points); a
 * rank that got no signal itself takes SIGTERM (mpirun's). */
static int FN(stop_asked)(void) {
    if (dist_size() > 1 && dist_any(FN(interrupted)) == 1 && !FN(interrupted)) FN(interrupted) = SIGTERM;
    return FN(interrupted) != 0;
}

/* Text of a number: every format used here fits (%.17g takes at most 24 characters, a 64-bit integer 20). */
typedef char NumText[32];
static int FN(num_text)(NumText out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int FN(num_text)(NumText out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, sizeof(NumText), fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= sizeof(NumText) ? hs_error("number text too long for format '%s'", fmt) : 0;
}

/* The shortest text that reads back as exactly x (15 to 17 significant digits). */
static int FN(double_text)(NumText out, double x) {
    for (int digits = 15; digits < 17; digits++) {
        HS_TRY(FN(num_text)(out, "%.*g", digits, x));
        if (strtod(out, NULL) == x) return 0;
    }
    return FN(num_text)(out, "%.17g", x);
}

/* base + suffix, malloc'd: no fixed buffer, so no path is ever cut short. */
static char *FN(path_with)(const char *base, const char *suffix) {
    size_t a = strlen(base), b = strlen(suffix);
    char *p = hs_malloc(a + b + 1);
    if (p) {
        memcpy(p, base, a);
        memcpy(p + a, suffix, b + 1);
    }
    return p;
}

/* A growing table of doubles, `cols` per row: the epoch history, the loss curve, the sharpness log. */
typedef struct {
    double *v;
    int64_t rows, capacity;
    int cols;
} Table;

enum { H_EPOCH, H_TRAIN_LOSS, H_TRAIN_ACC, H_TEST_LOSS, H_TEST_ACC, H_SECONDS, H_EVAL_SECONDS, H_COLS };
/* the loss curve: step, epoch (fractional), mean loss of the last --log-every batches */
enum { C_STEP, C_EPOCH, C_LOSS, C_COLS };
/* the sharpness log: epoch, top Hessian eigenvalue, Hessian-vector products */
enum { S_EPOCH, S_LAMBDA, S_HVPS, S_COLS };

static int FN(table_add)(Table *t, const double *row) {
    if (t->rows == t->capacity) {
        int64_t capacity = t->capacity ? 2 * t->capacity : 16;
        double *v = realloc(t->v, sizeof(double) * (size_t)(capacity * t->cols));
        if (!v) return hs_error("out of memory");
        t->v = v;
        t->capacity = capacity;
    }
    memcpy(t->v + t->rows * t->cols, row, sizeof(double) * (size_t)t->cols);
    t->rows++;
    return 0;
}

/* The settings a resumed run must share with the run it continues (else its history would mix two runs). */
enum { SETTINGS = 10 };
typedef struct {
    const char *key[SETTINGS], *label[SETTINGS], *value[SETTINGS];
    NumText text[SETTINGS];
} RunSettings;

/* Where a run stood at the end of its last finished epoch: what the training state saves. */
typedef struct {
    int epoch;          /* finished epochs */
    int64_t step;       /* SGD steps so far */
    int window;         /* steps since the last point of the loss curve */
    double window_loss; /* their summed loss */
    int64_t curve_rows; /* points of the loss curve so far */
    int interrupted;    /* saved on a signal: the checkpoint holds parameters from within epoch + 1 */
} RunPoint;

typedef struct {
    const char *arch, *out, *state_path;
    int log_every;
    RunSettings settings;
    Table history, curve, sharpness;
    RunPoint done;
} Run;

static int FN(run_settings)(RunSettings *s, const char *arch, double lr, double momentum, double wd, uint64_t seed,
                            int batch, int n_train, int test_samples, int log_every) {
    static const char *const keys[SETTINGS] = {"model", "lr",            "momentum",     "weight_decay", "seed",
                                               "batch", "train_samples", "test_samples", "log_every",    "precision"};
    static const char *const labels[SETTINGS] = {"--model", "--lr", "--momentum", "--weight-decay", "--seed", "--batch",
                                                 "the number of training images (--train-samples)", "--test-samples",
                                                 "--log-every", "--precision"};
    for (int i = 0; i < SETTINGS; i++) {
        s->key[i] = keys[i];
        s->label[i] = labels[i];
        s->value[i] = s->text[i];
    }
    s->value[0] = arch;
    s->value[9] = HS_PRECISION_NAME;
    HS_TRY(FN(double_text)(s->text[1], lr));
    HS_TRY(FN(double_text)(s->text[2], momentum));
    HS_TRY(FN(double_text)(s->text[3], wd));
    HS_TRY(FN(num_text)(s->text[4], "%llu", (unsigned long long)seed));
    HS_TRY(FN(num_text)(s->text[5], "%d", batch));
    HS_TRY(FN(num_text)(s->text[6], "%d", n_train));
    HS_TRY(FN(num_text)(s->text[7], "%d", test_samples));
    return FN(num_text)(s->text[8], "%d", log_every);
}

/* Test-set loss and accuracy (NaN for squared error) in chunks of 500. */
static int FN(evaluate)(Model *m, const SampleSource *test, int limit, double *loss, double *acc) {
    int n = limit > 0 && limit < test->count ? limit : (int)test->count;
    int *idx = hs_malloc(sizeof(int) * (size_t)n);
    if (!idx) return -1;
    for (int i = 0; i < n; i++) idx[i] = i;
    SampleSet set = {test, idx, n, 500, 0};
    int rc = FN(curv_loss_grad)(m, &set, loss, acc, NULL);
    free(idx);
    return rc;
}

/* has_acc: accuracies are meaningful (cross-entropy); has_test: a test set was evaluated. Else null. */
static int FN(write_history)(const char *path, const Table *history, const char *arch, const char *init, int batch,
                             double lr, double momentum, double wd, uint64_t seed, int has_acc, int has_test) {
    static const char *const keys[H_COLS] = {"epoch",    "train_loss", "train_acc",   "test_loss",
                                             "test_acc", "seconds",    "eval_seconds"};
    AtomicFile af;
    HS_TRY(atomic_file_open(&af, path));
    JsonWriter w;
    json_begin(&w, af.fp);
    json_object_begin(&w);
    FN(command_write_provenance)(&w, "train", arch, init);
    json_key(&w, "settings");
    json_object_begin(&w);
    json_key(&w, "batch");
    json_int(&w, batch);
    json_key(&w, "lr");
    json_double(&w, lr);
    json_key(&w, "momentum");
    json_double(&w, momentum);
    json_key(&w, "weight_decay");
    json_double(&w, wd);
    json_key(&w, "seed");
    json_int(&w, (int64_t)seed);
    json_key(&w, "loss_function");
    json_string(&w, has_acc ? "cross-entropy" : "mse");
    json_object_end(&w);
    json_key(&w, "epochs");
    json_array_begin(&w);
    for (int64_t i = 0; i < history->rows; i++) {
        const double *r = history->v + i * H_COLS;
        json_object_begin(&w);
        json_key(&w, keys[H_EPOCH]);
        json_int(&w, (int64_t)r[H_EPOCH]);
        for (int c = H_EPOCH + 1; c < H_COLS; c++) {
            json_key(&w, keys[c]);
            int known = (has_acc || (c != H_TRAIN_ACC && c != H_TEST_ACC)) &&
                        (has_test || (c != H_TEST_LOSS && c != H_TEST_ACC && c != H_EVAL_SECONDS));
            if (known) json_double(&w, r[c]);
            else json_null(&w);
        }
        json_object_end(&w);
    }
    json_array_end(&w);
    json_object_end(&w);
    json_end(&w);
    return atomic_file_commit(&af);
}

static int FN(write_curve)(const char *path, const Table *curve) {
    AtomicFile af;
    HS_TRY(atomic_file_open(&af, path));
    fprintf(af.fp, "step,epoch,train_loss\n");
    for (int64_t i = 0; i < curve->rows; i++) {
        const double *r = curve->v + i * C_COLS;
        fprintf(af.fp, "%lld,%.4f,%.6f\n", (long long)r[C_STEP], r[C_EPOCH], r[C_LOSS]);
    }
    return atomic_file_commit(&af);
}

/* "0,10,100" -> epochs (later ones than --epochs are allowed: a --resume with more epochs reaches them). */
static int FN(parse_epoch_list)(const char *text, int *epochs, int *count, int max) {
    *count = 0;
    for (const char *p = text; *p;) {
        char *end;
        long e = *p >= '0' && *p <= '9' ? strtol(p, &end, 10) : -1;
        if (e < 0 || e > 1000000 || (*end && *end != ',') || (*end == ',' && !end[1]))
            return hs_error("--sharpness-at expects epochs like 0,10,100 (got '%s')", text);
        if (*count >= max) return hs_error("--sharpness-at lists more than %d epochs", max);
        epochs[(*count)++] = (int)e;
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* Sharpness over training: the top Hessian eigenvalue by power iteration with the study's momentum, a new
 * mini-batch (unaugmented) per product, batch norm in eval mode; at the epochs listed and every `every`
 * epochs (and before training). */
typedef struct {
    int epochs[256], count, every, iters, batch;
    double beta, lr;
    uint64_t seed;
    const char *csv, *plot;
} SharpnessPlan;

static int FN(sharpness_due)(const SharpnessPlan *sp, int epoch) {
    if (sp->every > 0 && epoch % sp->every == 0) return 1;
    for (int i = 0; i < sp->count; i++)
        if (sp->epochs[i] == epoch) return 1;
    return 0;
}

static int FN(write_sharpness)(const Table *log, const SharpnessPlan *sp) {
    AtomicFile af;
    HS_TRY(atomic_file_open(&af, sp->csv));
    fprintf(af.fp, "epoch,lambda_max,two_over_lr,hvps\n");
    for (int64_t i = 0; i < log->rows; i++) {
        const double *r = log->v + i * S_COLS;
        fprintf(af.fp, "%.0f,%.8g,%.8g,%lld\n", r[S_EPOCH], r[S_LAMBDA], 2 / sp->lr, (long long)r[S_HVPS]);
    }
    HS_TRY(atomic_file_commit(&af));
    double *xy = hs_malloc(sizeof(double) * 2 * (size_t)log->rows);
    if (!xy) return -1;
    for (int64_t i = 0; i < log->rows; i++) {
        xy[i] = log->v[i * S_COLS + S_EPOCH];
        xy[log->rows + i] = log->v[i * S_COLS + S_LAMBDA];
    }
    PlotSeries series = {"top Hessian eigenvalue", xy, xy + log->rows, (int)log->rows, NULL, 0};
    PlotHLine line = {"2 / lr", 2 / sp->lr, "#d62728"};
    PlotFrame frame = {"Sharpness over training", "epoch", "lambda_max", 0, 0, 0};
    int rc = svg_line_chart(sp->plot, &frame, &series, 1, &line, 1);
    free(xy);
    return rc;
}

static int FN(record_sharpness)(Table *log, const SharpnessPlan *sp, Model *m, const SampleSource *train,
                                int n_train, int epoch) {
    int *pool = hs_malloc(sizeof(int) * (size_t)n_train);
    if (!pool) return -1;
    for (int i = 0; i < n_train; i++) pool[i] = i;
    HessianOperator hop;
    int saved_training = m->training;
    BatchNormMode saved_bn = m->bn_mode;
    m->training = 0;
    m->bn_mode = BN_EVAL;
    int batch = sp->batch > n_train ? n_train : sp->batch;
    uint64_t seed = sp->seed + (uint64_t)epoch;
    PowerResult res = {0};
    double t0 = hs_seconds();
    int rc = FN(hessian_operator_init)(&hop, m, train, pool, n_train, 1, batch, 250, seed, CURVATURE_HESSIAN);
    free(pool);
    if (rc == 0) {
        LinOp op = FN(hessian_operator_linop)(&hop);
        PowerOptions popt = {sp->iters, sp->beta, POWER_STUDY_MOMENTUM, 0, seed, NULL, NULL, NULL};
        rc = power_iteration(&op, &popt, &res);
        FN(hessian_operator_free)(&hop);
    }
    m->training = saved_training;
    m->bn_mode = saved_bn;
    if (rc != 0) return hs_error_context("sharpness at epoch %d: ", epoch);
    double row[S_COLS] = {epoch, res.lambda, (double)res.products};
    power_result_free(&res);
    HS_TRY(FN(table_add)(log, row));
    printf("Sharpness at epoch %d: lambda_max = %.4f (power iteration, %d steps of %d %s, beta %g; 2/lr = %g) "
           "| %.1f s\n", epoch, row[S_LAMBDA], sp->iters, batch, train->unit, sp->beta, 2 / sp->lr, hs_seconds() - t0);
    fflush(stdout);
    return FN(write_sharpness)(log, sp);
}

/* ---------------------------------------------------------------- the training state */

static int FN(save_state)(const Run *run, const real *buf, size_t P, const RunPoint *at) {
    if (!dist_is_root()) return 0; /* rank 0 alone writes (the checkpoint to hash exists only there) */
    char md5[33];
    NumText epoch, step, window, window_loss;
    HS_TRY(md5_file_hex(run->out, md5));
    HS_TRY(FN(num_text)(epoch, "%d", at->epoch));
    HS_TRY(FN(num_text)(step, "%lld", (long long)at->step));
    HS_TRY(FN(num_text)(window, "%d", at->window));
    HS_TRY(FN(double_text)(window_loss, at->window_loss));
    enum { FIXED = 7 };
    const char *keys[FIXED + SETTINGS] = {"format", "checkpoint_md5", "epoch", "interrupted", "step", "window",
                                          "window_loss"};
    const char *vals[FIXED + SETTINGS] = {STATE_FORMAT, md5, epoch, at->interrupted ? "true" : "false", step, window,
                                          window_loss};
    for (int i = 0; i < SETTINGS; i++) {
        keys[FIXED + i] = run->settings.key[i];
        vals[FIXED + i] = run->settings.value[i];
    }
    StWriteTensor t[4] = {
        {"momentum_buffer", sizeof(real) == 8 ? ST_F64 : ST_F32, 1, {(int64_t)P}, buf},
        {"history", ST_F64, 2, {at->epoch, H_COLS}, run->history.v},
        {"curve", ST_F64, 2, {at->curve_rows, C_COLS}, run->curve.v},
        {"sharpness", ST_F64, 2, {run->sharpness.rows, S_COLS}, run->sharpness.v},
    };
    return safetensors_write(run->state_path, t, 4, keys, vals, FIXED + SETTINGS);
}

/* The checkpoint, then the training state that names the checkpoint's MD5. */
static int FN(save_pair)(const Run *run, const Model *m, const real *buf, size_t P, const RunPoint *at) {
    NumText epoch;
    HS_TRY(FN(num_text)(epoch, "%d", at->epoch));
    const char *keys[] = {"model", "epoch", "interrupted"};
    const char *vals[] = {run->arch, epoch, "true"};
    HS_TRY(FN(model_save)(m, run->out, keys, vals, at->interrupted ? 3 : 2));
    return FN(save_state)(run, buf, P, at);
}

/* Metadata `key` as a decimal integer (no sign, space or other character) in [lo, hi]. */
static int FN(meta_int)(const SafeTensors *st, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    const char *s = safetensors_meta(st, key);
    int64_t v = 0;
    int ok = s && *s && strlen(s) <= 18;
    for (const char *p = s; ok && *p; p++) {
        ok = *p >= '0' && *p <= '9';
        v = v * 10 + (*p - '0');
    }
    if (!ok || v < lo || v > hi)
        return hs_error("%s: corrupt training state: metadata '%s' is %s%s%s, expected an integer in [%lld, %lld]",
                        st->path, key, s ? "'" : "", s ? s : "missing", s ? "'" : "", (long long)lo, (long long)hi);
    *out = v;
    return 0;
}

/* Metadata `key` as a finite number in [lo, hi], the whole text. */
static int FN(meta_double)(const SafeTensors *st, const char *key, double lo, double hi, double *out) {
    const char *s = safetensors_meta(st, key);
    char *end = NULL;
    double v = s && ((*s >= '0' && *s <= '9') || *s == '-') ? strtod(s, &end) : NAN;
    if (!end || *end || !isfinite(v) || v < lo || v > hi)
        return hs_error("%s: corrupt training state: metadata '%s' is %s%s%s, expected a number in [%g, %g]", st->path,
                        key, s ? "'" : "", s ? s : "missing", s ? "'" : "", lo, hi);
    *out = v;
    return 0;
}

/* Tensor `name`: F64 of shape (rows, cols), every value finite and within its column's [lo, hi]. */
static int FN(read_table)(const SafeTensors *st, const char *name, const double *lo, const double *hi, Table *t) {
    const StTensor *f = safetensors_find(st, name);
    if (!f || f->dtype != ST_F64 || f->ndim != 2 || f->shape[1] != t->cols)
        return hs_error("%s: corrupt training state: no F64 tensor '%s' of shape (rows, %d)", st->path, name, t->cols);
    double row[H_COLS];
    for (int64_t i = 0; i < f->shape[0]; i++) {
        memcpy(row, st->data + f->begin + sizeof(double) * (size_t)(i * t->cols), sizeof(double) * (size_t)t->cols);
        for (int c = 0; c < t->cols; c++)
            if (!(row[c] >= lo[c] && row[c] <= hi[c]))
                return hs_error("%s: corrupt training state: '%s' row %lld column %d is %g, expected [%g, %g]", st->path,
                                name, (long long)i, c, row[c], lo[c], hi[c]);
        HS_TRY(FN(table_add)(t, row));
    }
    return 0;
}

/* Checks everything a resume relies on and fills buf (P), run->done, run->history, run->curve and
 * run->sharpness (empty on entry). nb: batches per epoch. */
static int FN(check_state)(Run *run, const SafeTensors *st, const char *checkpoint, int64_t nb, real *buf, size_t P) {
    const char *path = st->path;
    const char *format = safetensors_meta(st, "format");
    if (!format || strcmp(format, STATE_FORMAT) != 0)
        return hs_error("%s: not a training state this version of hessian can resume (format '%s', expected '%s'); "
                        "--init %s starts a new run from its weights",
                        path, format ? format : "none", STATE_FORMAT, checkpoint);
    const RunSettings *rs = &run->settings;
    for (int i = 0; i < SETTINGS; i++) {
        const char *v = safetensors_meta(st, rs->key[i]);
        if (!v || strcmp(v, rs->value[i]) != 0)
            return hs_error("%s: %s is %s here but %s in the run it continues (--resume goes on with the same settings)",
                            path, rs->label[i], rs->value[i], v ? v : "missing");
    }
    char md5[33];
    HS_TRY(md5_file_hex(checkpoint, md5));
    const char *saved = safetensors_meta(st, "checkpoint_md5");
    if (!saved || strcmp(saved, md5) != 0)
        return hs_error("%s was not saved together with the checkpoint %s (MD5 %s, the state names %s): they come from "
                        "different saves (a run killed between the two writes, or a file of another run), so momentum "
                        "and weights do not match; resume refused (--init %s starts a new run from these weights)",
                        path, checkpoint, md5, saved ? saved : "none", checkpoint);
    int64_t epoch, step, window;
    double window_loss = 0;
    const char *interrupted = safetensors_meta(st, "interrupted");
    HS_TRY(FN(meta_int)(st, "epoch", 0, INT_MAX - 1, &epoch));
    HS_TRY(FN(meta_int)(st, "step", 0, INT64_MAX / 2, &step));
    HS_TRY(FN(meta_int)(st, "window", 0, run->log_every - 1, &window));
    HS_TRY(FN(meta_double)(st, "window_loss", 0, DBL_MAX, &window_loss));
    if (!interrupted || (strcmp(interrupted, "true") != 0 && strcmp(interrupted, "false") != 0))
        return hs_error("%s: corrupt training state: metadata 'interrupted' is not true or false", path);
    if (step != epoch * nb || window != step % run->log_every || (window == 0 && window_loss != 0))
        return hs_error("%s: corrupt training state: %lld steps with %lld in the last curve window do not fit %lld "
                        "epochs of %lld batches (--log-every %d)",
                        path, (long long)step, (long long)window, (long long)epoch, (long long)nb, run->log_every);
    int64_t shape[1] = {(int64_t)P};
    const StTensor *t;
    HS_TRY(safetensors_expect_shape(st, "momentum_buffer", 1, shape, &t));
    HS_TRY(FN(safetensors_to)(st, t, buf));
    for (size_t i = 0; i < P; i++)
        if (!isfinite((double)buf[i]))
            return hs_error("%s: corrupt training state: momentum_buffer holds a non-finite value at index %zu", path, i);
    static const double h_lo[H_COLS] = {1, 0, 0, 0, 0, 0, 0};
    static const double h_hi[H_COLS] = {INT_MAX, DBL_MAX, 1, DBL_MAX, 1, DBL_MAX, DBL_MAX};
    HS_TRY(FN(read_table)(st, "history", h_lo, h_hi, &run->history));
    if (run->history.rows != epoch)
        return hs_error("%s: corrupt training state: its metadata says %lld epochs were trained, its history holds %lld",
                        path, (long long)epoch, (long long)run->history.rows);
    for (int64_t i = 0; i < epoch; i++)
        if (run->history.v[i * H_COLS + H_EPOCH] != (double)(i + 1))
            return hs_error("%s: corrupt training state: history row %lld is not epoch %lld", path, (long long)i,
                            (long long)(i + 1));
    const double c_lo[C_COLS] = {1, 0, 0}, c_hi[C_COLS] = {(double)step, (double)epoch, DBL_MAX};
    HS_TRY(FN(read_table)(st, "curve", c_lo, c_hi, &run->curve));
    if (run->curve.rows != step / run->log_every)
        return hs_error("%s: corrupt training state: %lld points in the loss curve, %lld steps make %lld", path,
                        (long long)run->curve.rows, (long long)step, (long long)(step / run->log_every));
    for (int64_t i = 0; i < run->curve.rows; i++)
        if (run->curve.v[i * C_COLS + C_STEP] != (double)((i + 1) * run->log_every))
            return hs_error("%s: corrupt training state: loss curve point %lld is not at step %lld", path, (long long)i,
                            (long long)((i + 1) * run->log_every));
    const double s_lo[S_COLS] = {0, -DBL_MAX, 0}, s_hi[S_COLS] = {(double)epoch, DBL_MAX, 1e15};
    HS_TRY(FN(read_table)(st, "sharpness", s_lo, s_hi, &run->sharpness));
    for (int64_t i = 0; i < run->sharpness.rows; i++) {
        const double *r = run->sharpness.v + i * S_COLS;
        if (r[S_EPOCH] != floor(r[S_EPOCH]) || r[S_HVPS] != floor(r[S_HVPS]) || (i > 0 && r[S_EPOCH] <= r[S_EPOCH - S_COLS]))
            return hs_error("%s: corrupt training state: sharpness row %lld (epochs must be whole and increasing)", path,
                            (long long)i);
    }
    run->done = (RunPoint){(int)epoch, step, (int)window, window_loss, run->curve.rows, strcmp(interrupted, "true") == 0};
    return 0;
}

static int FN(load_state)(Run *run, const char *checkpoint, int64_t nb, real *buf, size_t P) {
    char *path = FN(path_with)(checkpoint, STATE_SUFFIX);
    if (!path) return -1;
    SafeTensors st;
    int rc = safetensors_read(path, &st);
    free(path);
    if (rc != 0) return hs_error_context("--resume needs the training state written beside the checkpoint: ");
    rc = FN(check_state)(run, &st, checkpoint, nb, buf, P);
    safetensors_free(&st);
    return rc;
}

/* Every output can be written (its folder exists and takes a temporary file) and no two are the same file;
 * checked before any work. EXIT_OK, EXIT_ERROR (cannot write) or EXIT_USAGE (two outputs, one file). */
static int FN(check_outputs)(const char *const *labels, const char *const *paths, int count) {
    char *canonical[8] = {0};
    int status = count <= 8 ? EXIT_OK : (hs_error("too many outputs"), EXIT_ERROR);
    for (int i = 0; i < count && status == EXIT_OK; i++)
        if (paths[i] && atomic_file_probe(paths[i], &canonical[i]) != 0) {
            hs_error_context("%s: ", labels[i]);
            status = EXIT_ERROR;
        }
    for (int i = 0; i < count && status == EXIT_OK; i++)
        for (int j = i + 1; j < count && status == EXIT_OK; j++)
            if (canonical[i] && canonical[j] && strcmp(canonical[i], canonical[j]) == 0) {
                hs_error("%s and %s name the same file (%s): one would replace the other", labels[i], labels[j],
                         canonical[j]);
                status = EXIT_USAGE;
            }
    for (int i = 0; i < count && i < 8; i++) free(canonical[i]);
    return status;
}

/* What the per-step callback of an epoch updates: the --csv curve's window and the progress bar. */
typedef struct {
    Run *run;
    int epoch, nb, has_acc;
    int64_t *step;
    int *window;
    double *window_loss;
    long seen, right;
    double loss_sum;
    int failed;
    Progress progress;
} StepLog;

static int FN(on_train_step)(void *user, int b, int n, double loss, int correct) {
    StepLog *sl = user;
    (*sl->step)++;
    *sl->window_loss += loss;
    if (++*sl->window == sl->run->log_every) {
        double point[C_COLS] = {(double)*sl->step, sl->epoch - 1 + (double)(b + 1) / sl->nb,
                                *sl->window_loss / *sl->window};
        *sl->window = 0;
        *sl->window_loss = 0;
        if (FN(table_add)(&sl->run->curve, point) != 0) {
            sl->failed = 1;
            return 1;
        }
    }
    sl->seen += n;
    sl->right += correct;
    sl->loss_sum += loss * n;
    char msg[400]; /* "loss %.4f" of any finite double takes at most 316 characters */
    if (sl->has_acc)
        snprintf(msg, sizeof msg, "loss %.4f, acc %.1f%%", sl->loss_sum / sl->seen, 100.0 * sl->right / sl->seen);
    else snprintf(msg, sizeof msg, "loss %.4f", sl->loss_sum / sl->seen);
    progress_update(&sl->progress, b + 1, msg);
    return FN(stop_asked)();
}

int FN(cmd_train)(int argc, char **argv) {
    const char *arch = "cnn", *data_dir = NULL, *out = NULL, *init = NULL, *json = NULL, *precision = "f32";
    const char *csv = NULL, *resume = NULL, *sharp_at = NULL;
    const char *inputs = NULL, *targets = NULL, *test_inputs = NULL, *test_targets = NULL, *loss_name = NULL;
    int no_augment = 0, sync_bn = 0;
    LossKind loss_kind = LOSS_CROSS_ENTROPY;
    SharpnessPlan sp = {.every = 0, .iters = 100, .batch = 1000, .beta = 0.7};
    int log_every = 50;
    int epochs = 2, batch = 100, threads = 0, train_samples = 0, test_samples = 0, quiet = 0;
    double lr = 0.01, momentum = 0.9, wd = 0;
    uint64_t seed = 50;
    ArgSpec specs[] = {
        {"--model", ARG_STRING, &arch, "cnn, resnet18, resnet50 or an ONNX file NAME.onnx", 0},
        {"--data", ARG_STRING, &data_dir, "folder with cifar-10-batches-bin/ (or --inputs/--targets)", 0},
        {"--inputs", ARG_STRING, &inputs, ".npy training inputs X (N, ...) float32/float64, instead of --data", 0},
        {"--targets", ARG_STRING, &targets, ".npy training targets: int labels (N,) or float values (N, outputs)", 0},
        {"--test-inputs", ARG_STRING, &test_inputs, ".npy test inputs evaluated after every epoch (with --inputs)", 0},
        {"--test-targets", ARG_STRING, &test_targets, ".npy test targets (with --test-inputs)", 0},
        {"--loss cross-entropy|mse", ARG_STRING, &loss_name,
         "cross-entropy (int labels) or mse (float targets) (default cross-entropy)", 0},
        {"--no-augment", ARG_FLAG, &no_augment, "CIFAR-10 without random crop and flip (.npy data never is)", 0},
        {"--sync-bn", ARG_FLAG, &sync_bn,
         "under mpirun, batch norm with the statistics of the whole batch (PyTorch's SyncBatchNorm), "
         "not of each rank's slice", 0},
        {"--epochs", ARG_INT, &epochs, "training epochs (in all, also with --resume)", 0},
        {"--batch", ARG_INT, &batch, "mini-batch size", 0},
        {"--lr", ARG_DOUBLE, &lr, "learning rate", 0},
        {"--momentum", ARG_DOUBLE, &momentum, "SGD momentum", 0},
        {"--weight-decay", ARG_DOUBLE, &wd, "L2 weight decay (added to the gradient, PyTorch SGD)", 0},
        {"--seed", ARG_U64, &seed, "seed for initialisation, shuffling and augmentation", 0},
        {"--out", ARG_STRING, &out, "checkpoint to write (safetensors), after every epoch", 1},
        {"--init", ARG_STRING, &init,
         "start from these weights (e.g. ImageNet weights; a classifier with another number of outputs is replaced)",
         0},
        {"--train-samples", ARG_INT, &train_samples, "use only the first N training samples (0: all)", 0},
        {"--test-samples", ARG_INT, &test_samples, "evaluate on the first N test samples (0: all)", 0},
        {"--threads", ARG_INT, &threads, "OpenMP threads (0: OMP_NUM_THREADS or all cores)", 0},
        {"--json", ARG_STRING, &json, "write the per-epoch history as JSON", 0},
        {"--csv", ARG_STRING, &csv, "write the training curve (step, epoch, mean loss of the last --log-every batches)", 0},
        {"--log-every", ARG_INT, &log_every, "batches per point of the --csv curve", 0},
        {"--resume", ARG_STRING, &resume,
         "continue from this checkpoint and its .optimizer.safetensors (same settings; history, curve kept)", 0},
        {"--sharpness-at", ARG_STRING, &sharp_at, "top Hessian eigenvalue at these epochs, e.g. 0,10,100 (0: before)", 0},
        {"--sharpness-every", ARG_INT, &sp.every, "top Hessian eigenvalue every N epochs (and before training)", 0},
        {"--sharpness-iters", ARG_INT, &sp.iters, "power-iteration steps per measurement", 0},
        {"--sharpness-batch", ARG_INT, &sp.batch, "fresh mini-batch size for each Hessian-vector product", 0},
        {"--beta", ARG_DOUBLE, &sp.beta, "power-iteration momentum for sharpness (study: 0.9 cnn, 0.7 resnet50)", 0},
        {"--sharpness-csv", ARG_STRING, &sp.csv, "sharpness CSV (default: OUT with .sharpness.csv)", 0},
        {"--sharpness-plot", ARG_STRING, &sp.plot, "sharpness SVG (default: OUT with .sharpness.svg)", 0},
        {"--precision", ARG_STRING, &precision, "f32 or f64", 0},
        {"--quiet", ARG_FLAG, &quiet, "no progress bar", 0},
    };
    int parsed = args_parse(argc, argv,
                            "usage: hessian train --model cnn|resnet18|resnet50|NET.onnx --data DIR|--inputs X --targets Y "
                            "--out CKPT [options]\n"
                            "Trains with SGD (PyTorch semantics); on CIFAR-10 with random crop (padding 4) and "
                            "horizontal flip.\n"
                            "Under mpirun -np R (make MPI=1) the ranks split every batch: without batch norm the "
                            "checkpoint has\nthe same bits for every R; with batch norm (by default, as PyTorch DDP) "
                            "each rank normalises its slice\nof the batch with its own statistics and rank 0's "
                            "running statistics are kept, so the result depends on R;\nwith --sync-bn every slice is "
                            "normalised with the whole batch's statistics (equal to one process up to rounding).\n"
                            "example: hessian train --model cnn --data data --epochs 2 --batch 100 --lr 0.01 "
                            "--momentum 0.9 --out cnn.safetensors --json train.json",
                            specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    if (parsed < 0 || args_check_positive_int("--epochs", epochs) || args_check_positive_int("--batch", batch) ||
        args_check_range("--lr", lr, 1e-12, 1e3) || args_check_range("--momentum", momentum, 0, 0.999999) ||
        args_check_range("--weight-decay", wd, 0, 1) || args_check_range("--train-samples", train_samples, 0, 1e9) ||
        args_check_range("--test-samples", test_samples, 0, 1e9) || args_check_positive_int("--log-every", log_every) ||
        args_check_range("--sharpness-every", sp.every, 0, 1e9) ||
        args_check_positive_int("--sharpness-iters", sp.iters) ||
        args_check_positive_int("--sharpness-batch", sp.batch) || args_check_range("--beta", sp.beta, 0, 0.999999) ||
        (init && resume && hs_error("--init and --resume exclude each other")) ||
        (!sharp_at && !args_given(argc, argv, "--sharpness-every") &&
         (args_check_unused(argc, argv, "--sharpness-iters", "without --sharpness-at or --sharpness-every") ||
          args_check_unused(argc, argv, "--sharpness-batch", "without --sharpness-at or --sharpness-every") ||
          args_check_unused(argc, argv, "--beta", "without --sharpness-at or --sharpness-every") ||
          args_check_unused(argc, argv, "--sharpness-csv", "without --sharpness-at or --sharpness-every") ||
          args_check_unused(argc, argv, "--sharpness-plot", "without --sharpness-at or --sharpness-every"))) ||
        (sharp_at && FN(parse_epoch_list)(sharp_at, sp.epochs, &sp.count, 256) != 0) ||
        FN(command_data_options)(argc, argv, data_dir, inputs, targets, loss_name, &loss_kind) ||
        (test_inputs && !inputs && hs_error("--test-inputs goes with --inputs (--data evaluates on CIFAR-10's test set)")) ||
        (test_targets && !test_inputs && hs_error("--test-targets needs --test-inputs FILE")) ||
        (test_inputs && !test_targets && hs_error("--test-inputs needs --test-targets FILE")) ||
        FN(command_set_threads)(threads)) {
        fprintf(stderr, "hessian train: %s\n", hs_last_error());
        return EXIT_USAGE;
    }
    if (quiet) progress_set_quiet(1);
    sp.lr = lr;
    sp.seed = seed;
    int sharpness = sp.count > 0 || sp.every > 0;
    Run run = {.arch = arch, .out = out, .log_every = log_every, .history = {.cols = H_COLS}, .curve = {.cols = C_COLS},
               .sharpness = {.cols = S_COLS}};
    char *state_path = FN(path_with)(out, STATE_SUFFIX);
    char *sharp_csv = FN(path_with)(out, ".sharpness.csv"), *sharp_plot = FN(path_with)(out, ".sharpness.svg");
    run.state_path = state_path;
    if (!sp.csv) sp.csv = sharp_csv;
    if (!sp.plot) sp.plot = sharp_plot;

    SampleSource train = {0}, test = {0};
    int has_test = data_dir || test_inputs;
    Model *m = NULL;
    Trainer trainer = {0};
    int status = EXIT_ERROR, handlers_set = 0;
    struct sigaction old_int, old_term;
    FN(interrupted) = 0;
    if (!state_path || !sharp_csv || !sharp_plot) goto fail;
    const char *labels[] = {"--out", "the training state beside --out", "--json", "--csv", "--sharpness-csv",
                            "--sharpness-plot"};
    const char *paths[] = {out, state_path, json, csv, sharpness ? sp.csv : NULL, sharpness ? sp.plot : NULL};
    status = FN(check_outputs)(labels, paths, 6);
    if (status != EXIT_OK) {
        if (status == EXIT_USAGE) fprintf(stderr, "hessian train: %s\n", hs_last_error());
        goto fail;
    }
    status = EXIT_ERROR;
    const CommandFile data_files[] = {{"--inputs", inputs}, {"--targets", targets}, {"--test-inputs", test_inputs},
                                      {"--test-targets", test_targets}};
    status = FN(command_check_files)(NULL, 0, data_files, 4);
    if (status != EXIT_OK) goto fail;
    status = EXIT_ERROR;
    if (FN(command_open_model)(arch, resume ? resume : init, seed, resume ? 0 : 1, &m) != 0 ||
        FN(command_open_source)(data_dir, CIFAR10_TRAIN, inputs, targets, &train) != 0 ||
        FN(command_check_source)(m, loss_kind, &train, data_dir ? "--data" : "--inputs/--targets") != 0 ||
        (has_test && (FN(command_open_source)(data_dir, CIFAR10_TEST, test_inputs, test_targets, &test) != 0 ||
                      FN(command_check_source)(m, loss_kind, &test, data_dir ? "--data (test set)"
                                                                             : "--test-inputs/--test-targets") != 0)))
        goto fail;
    int n_train = train_samples > 0 && train_samples < train.count ? train_samples : (int)train.count;
    if (batch > n_train) {
        hs_error("--batch %d is larger than the %d training %s", batch, n_train, train.unit);
        goto fail;
    }
    int augment = data_dir && !no_augment, has_acc = loss_kind == LOSS_CROSS_ENTROPY;
    if (FN(run_settings)(&run.settings, arch, lr, momentum, wd, seed, batch, n_train, test_samples, log_every) != 0)
        goto fail;
    size_t P = m->num_params;
    /* The seed draws the initialisation (command_open_model above) and the loader's shuffles/augmentation. */
    if (FN(trainer_init)(&trainer, m, &train, n_train, batch, augment, seed, lr, momentum, wd, sync_bn) != 0)
        goto fail;
    int nb = trainer.batches;
    real *buf = trainer.buf;
    if (resume) {
        if (FN(load_state)(&run, resume, nb, buf, P) != 0) goto fail;
        if (run.done.epoch >= epochs) {
            hs_error("%s has already trained %d epochs (--epochs %d)", resume, run.done.epoch, epochs);
            goto fail;
        }
        trainer.opt.started = 1;
        /* Replay the loader's shuffles and augmentation draws of the finished epochs, so the run continues
         * exactly as an uninterrupted one would. */
        for (int e = 1; e <= run.done.epoch; e++)
            while (sample_loader_next(&trainer.loader, trainer.x, sizeof(real), trainer.y) > 0) {
            }
        if (run.done.interrupted)
            fprintf(stderr, "resuming %s: epoch %d again, from the parameters saved when it was interrupted\n", resume,
                    run.done.epoch + 1);
        else
            fprintf(stderr, "resuming %s after epoch %d\n", resume, run.done.epoch);
    }
    int first_epoch = run.done.epoch + 1;
    int64_t step = run.done.step;
    int window = run.done.window;
    double window_loss = run.done.window_loss;
    /* A measurement due at the start that the state lacks (the run stopped before its state was saved again). */
    const Table *log = &run.sharpness;
    if (sharpness && FN(sharpness_due)(&sp, first_epoch - 1) &&
        !(log->rows > 0 && log->v[(log->rows - 1) * S_COLS + S_EPOCH] == first_epoch - 1) &&
        FN(record_sharpness)(&run.sharpness, &sp, m, &train, n_train, first_epoch - 1) != 0)
        goto fail;
    fprintf(stderr, "training %s (%zu parameters) on %d %s, %d epochs, batch %d, lr %g, momentum %g, wd %g\n",
            arch, P, n_train, train.unit, epochs, batch, lr, momentum, wd);
    if (dist_size() > 1)
        fprintf(stderr, "data-parallel over %d ranks%s\n", dist_size(),
                m->num_buffers == 0 ? ""
                : sync_bn ? " (batch norm: the whole batch's statistics, summed over the ranks: --sync-bn)"
                          : " (batch norm: each rank normalises its slice of the batch; rank 0's running "
                            "statistics are kept)");
    struct sigaction on;
    memset(&on, 0, sizeof on);
    on.sa_handler = FN(on_signal);
    sigemptyset(&on.sa_mask);
    sigaction(SIGINT, &on, &old_int);
    sigaction(SIGTERM, &on, &old_term);
    handlers_set = 1;
    for (int epoch = first_epoch; epoch <= epochs; epoch++) {
        double t0 = hs_seconds();
        char label[64];
        snprintf(label, sizeof label, "Epoch %d/%d", epoch, epochs);
        StepLog sl = {.run = &run, .epoch = epoch, .nb = nb, .has_acc = has_acc, .step = &step, .window = &window,
                      .window_loss = &window_loss};
        progress_begin(&sl.progress, label, "batch", nb);
        TrainEpochStats st = {0};
        int rc = FN(stop_asked)() ? 0 : FN(trainer_epoch)(&trainer, FN(on_train_step), &sl, &st);
        progress_end(&sl.progress);
        if (rc != 0) {
            hs_error_context("epoch %d, ", epoch);
            goto fail;
        }
        if (sl.failed) goto fail;
        long seen = st.seen, right = st.correct;
        double loss_sum = st.loss_sum;
        if (FN(stop_asked)()) {
            RunPoint at = run.done;
            at.interrupted = 1;
            if (FN(save_pair)(&run, m, buf, P, &at) != 0) goto fail;
            /* The other ranks wait for rank 0's save: their exit must not end the job (MPI_Abort) before it. */
            if (dist_any(0) < 0) goto fail;
            fprintf(stderr, "interrupted (%s) during epoch %d: saved the current parameters to %s (--resume %s "
                            "restarts epoch %d from them)\n",
                    FN(interrupted) == SIGTERM ? "SIGTERM" : "SIGINT", epoch, out, out, epoch);
            status = 128 + FN(interrupted);
            goto fail;
        }
        double t1 = hs_seconds(), record[H_COLS] = {epoch, loss_sum / seen, (double)right / seen, 0, 0, t1 - t0, 0};
        m->training = 0;
        if (has_test && FN(evaluate)(m, &test, test_samples, &record[H_TEST_LOSS], &record[H_TEST_ACC]) != 0) goto fail;
        if (!has_acc) record[H_TEST_ACC] = 0; /* NaN from evaluate: no accuracy for squared error */
        record[H_EVAL_SECONDS] = has_test ? hs_seconds() - t1 : 0;
        if (FN(table_add)(&run.history, record) != 0) goto fail;
        char line[512];
        size_t used = (size_t)snprintf(line, sizeof line, "Epoch %d/%d | Train Loss: %.4f", epoch, epochs,
                                       record[H_TRAIN_LOSS]);
        if (has_acc && used < sizeof line)
            used += (size_t)snprintf(line + used, sizeof line - used, " | Train Acc: %.1f%%", 100 * record[H_TRAIN_ACC]);
        if (has_test && used < sizeof line)
            used += (size_t)snprintf(line + used, sizeof line - used, " | Test Loss: %.4f", record[H_TEST_LOSS]);
        if (has_test && has_acc && used < sizeof line)
            used += (size_t)snprintf(line + used, sizeof line - used, " | Test Acc: %.1f%%", 100 * record[H_TEST_ACC]);
        printf("%s | %.1f s\n", line, record[H_SECONDS]);
        fflush(stdout);
        run.done = (RunPoint){epoch, step, window, window_loss, run.curve.rows, 0};
        /* A measurement after the save is saved with the state again, so a resume does not repeat it. */
        if (FN(save_pair)(&run, m, buf, P, &run.done) != 0 ||
            (sharpness && FN(sharpness_due)(&sp, epoch) &&
             (FN(record_sharpness)(&run.sharpness, &sp, m, &train, n_train, epoch) != 0 ||
              FN(save_state)(&run, buf, P, &run.done) != 0)) ||
            (json && FN(write_history)(json, &run.history, arch, resume ? resume : init, batch, lr, momentum, wd,
                                       seed, has_acc, has_test) != 0) ||
            (csv && FN(write_curve)(csv, &run.curve) != 0))
            goto fail;
    }
    status = EXIT_OK;
fail:
    if (status == EXIT_ERROR) FN(command_fail)("train");
    if (handlers_set) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
    }
    FN(trainer_free)(&trainer);
    samples_free(&train);
    samples_free(&test);
    FN(model_free)(m);
    free(run.history.v);
    free(run.curve.v);
    free(run.sharpness.v);
    free(state_path);
    free(sharp_csv);
    free(sharp_plot);
    return status;
}

int FN(cmd_eval)(int argc, char **argv) {
    const char *arch = "cnn", *data_dir = NULL, *ckpt = NULL, *json = NULL, *precision = "f32";
    const char *inputs = NULL, *targets = NULL, *loss_name = NULL;
    int threads = 0;
    LossKind loss_kind = LOSS_CROSS_ENTROPY;
    ArgSpec specs[] = {
        {"--model", ARG_STRING, &arch, "architecture: cnn", 0},
        {"--checkpoint", ARG_STRING, &ckpt, "safetensors checkpoint", 1},
        {"--data", ARG_STRING, &data_dir, "folder with cifar-10-batches-bin/ (its test set; or --inputs/--targets)", 0},
        {"--inputs", ARG_STRING, &inputs, ".npy inputs X (N, ...) float32/float64, instead of --data", 0},
        {"--targets", ARG_STRING, &targets, ".npy targets: int labels (N,) or float values (N, outputs)", 0},
        {"--loss cross-entropy|mse", ARG_STRING, &loss_name,
         "cross-entropy (int labels) or mse (float targets) (default cross-entropy)", 0},
        {"--threads", ARG_INT, &threads, "OpenMP threads (0: default)", 0},
        {"--json", ARG_STRING, &json, "write the result as JSON", 0},
        {"--precision", ARG_STRING, &precision, "f32 or f64", 0},
    };
    int parsed = args_parse(argc, argv,
                            "usage: hessian eval --model cnn --checkpoint CKPT --data DIR|--inputs X --targets Y "
                            "[--json FILE]",
                            specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    if (parsed < 0 || FN(command_data_options)(argc, argv, data_dir, inputs, targets, loss_name, &loss_kind) ||
        FN(command_set_threads)(threads)) {
        fprintf(stderr, "hessian eval: %s\n", hs_last_error());
        return EXIT_USAGE;
    }
    SampleSource test = {0};
    Model *m = NULL;
    double loss, acc;
    int status = EXIT_ERROR;
    if (FN(command_open_model)(arch, ckpt, 0, 0, &m) != 0 ||
        FN(command_open_source)(data_dir, CIFAR10_TEST, inputs, targets, &test) != 0 ||
        FN(command_check_source)(m, loss_kind, &test, data_dir ? "--data" : "--inputs/--targets") != 0 ||
        FN(evaluate)(m, &test, 0, &loss, &acc) != 0)
        goto done;
    int has_acc = loss_kind == LOSS_CROSS_ENTROPY;
    if (has_acc) printf("Test Loss: %.4f | Test Acc: %.2f%% | %ld %s\n", loss, 100 * acc, test.count, test.unit);
    else printf("Test Loss: %.6g | %ld %s\n", loss, test.count, test.unit);
    if (json) {
        AtomicFile af;
        if (atomic_file_open(&af, json) != 0) goto done;
        JsonWriter w;
        json_begin(&w, af.fp);
        json_object_begin(&w);
        FN(command_write_provenance)(&w, "eval", arch, ckpt);
        json_key(&w, "loss_function");
        json_string(&w, has_acc ? "cross-entropy" : "mse");
        json_key(&w, "test_loss");
        json_double(&w, loss);
        json_key(&w, "test_acc");
        if (has_acc) json_double(&w, acc);
        else json_null(&w);
        json_key(&w, data_dir ? "images" : "samples");
        json_int(&w, test.count);
        json_object_end(&w);
        json_end(&w);
        if (atomic_file_commit(&af) != 0) goto done;
    }
    status = EXIT_OK;
done:
    if (status != EXIT_OK) FN(command_fail)("eval");
    samples_free(&test);
    FN(model_free)(m);
    return status;
}
