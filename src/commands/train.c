/* train.c: `hessian train` and `hessian eval`: SGD training with the study's augmentation, a checkpoint
 * after every epoch (and on Ctrl-C), one result line per epoch, JSON history; evaluation of a checkpoint
 * on the test set. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/progress.h"
#include "../io/atomic_file.h"
#include "../io/safetensors.h"
#include "../optim/sgd.h"
#include "../report/svg_plot.h"
#include "../spectral/spectral.h"
#include "command_common.h"
#include "commands.h"

static volatile sig_atomic_t FN(interrupted);
static void FN(on_sigint)(int sig) { (void)sig; FN(interrupted) = 1; }

/* Test-set loss and accuracy in chunks of 500. */
static int FN(evaluate)(Model *m, const Cifar10 *test, int limit, double *loss, double *acc) {
    int n = limit > 0 && limit < test->n ? limit : test->n;
    int *idx = hs_malloc(sizeof(int) * (size_t)n);
    if (!idx) return -1;
    for (int i = 0; i < n; i++) idx[i] = i;
    SampleSet set = {test, idx, n, 500};
    int rc = FN(curv_loss_grad)(m, &set, loss, acc, NULL);
    free(idx);
    return rc;
}

typedef struct {
    int epoch;
    double train_loss, train_acc, test_loss, test_acc;
    double seconds;      /* the training pass over the epoch's batches */
    double eval_seconds; /* the test-set evaluation after it */
} EpochRecord;

static int FN(write_history)(const char *path, const EpochRecord *rec, int count, const char *arch,
                             const char *init, int batch, double lr, double momentum, double wd, uint64_t seed) {
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
    json_object_end(&w);
    json_key(&w, "epochs");
    json_array_begin(&w);
    for (int i = 0; i < count; i++) {
        json_object_begin(&w);
        json_key(&w, "epoch");
        json_int(&w, rec[i].epoch);
        json_key(&w, "train_loss");
        json_double(&w, rec[i].train_loss);
        json_key(&w, "train_acc");
        json_double(&w, rec[i].train_acc);
        json_key(&w, "test_loss");
        json_double(&w, rec[i].test_loss);
        json_key(&w, "test_acc");
        json_double(&w, rec[i].test_acc);
        json_key(&w, "seconds");
        json_double(&w, rec[i].seconds);
        json_key(&w, "eval_seconds");
        json_double(&w, rec[i].eval_seconds);
        json_object_end(&w);
    }
    json_array_end(&w);
    json_object_end(&w);
    json_end(&w);
    return atomic_file_commit(&af);
}

/* "0,10,100" -> epochs. */
static int FN(parse_epoch_list)(const char *text, int *epochs, int *count, int max) {
    *count = 0;
    for (const char *p = text; *p;) {
        char *end;
        long e = strtol(p, &end, 10);
        if (end == p || e < 0 || e > 1000000 || (*end && *end != ','))
            return hs_error("--sharpness-at expects epochs like 0,10,100 (got '%s')", text);
        if (*count >= max) return hs_error("--sharpness-at lists more than %d epochs", max);
        epochs[(*count)++] = (int)e;
        p = *end ? end + 1 : end;
    }
    return 0;
}

static int FN(epoch_listed)(const int *epochs, int count, int epoch) {
    for (int i = 0; i < count; i++)
        if (epochs[i] == epoch) return 1;
    return 0;
}

/* The optimizer state beside a checkpoint: momentum buffer (P) and the epochs done. */
static int FN(save_optimizer_state)(const char *path, const real *buf, size_t P, int epoch, double lr, double mu,
                                    double wd, uint64_t seed) {
    char e[32], l[32], m[32], w[32], sd[32];
    snprintf(e, sizeof e, "%d", epoch);
    snprintf(l, sizeof l, "%.17g", lr);
    snprintf(m, sizeof m, "%.17g", mu);
    snprintf(w, sizeof w, "%.17g", wd);
    snprintf(sd, sizeof sd, "%llu", (unsigned long long)seed);
    const char *keys[] = {"epoch", "lr", "momentum", "weight_decay", "seed"};
    const char *vals[] = {e, l, m, w, sd};
    StWriteTensor t = {"momentum_buffer", sizeof(real) == 8 ? ST_F64 : ST_F32, 1, {(int64_t)P}, buf};
    return safetensors_write(path, &t, 1, keys, vals, 5);
}

static int FN(load_optimizer_state)(const char *checkpoint, real *buf, size_t P, int *epoch) {
    char path[1024];
    snprintf(path, sizeof path, "%s.optimizer.safetensors", checkpoint);
    SafeTensors st;
    if (safetensors_read(path, &st) != 0)
        return hs_error_context("--resume needs the optimizer state written beside the checkpoint: ");
    int64_t shape[1] = {(int64_t)P};
    const StTensor *t;
    int rc = safetensors_expect_shape(&st, "momentum_buffer", 1, shape, &t);
#if defined(HS_F64)
    if (rc == 0) rc = safetensors_to_f64(&st, t, buf);
#else
    if (rc == 0) rc = safetensors_to_f32(&st, t, buf);
#endif
    const char *e = safetensors_meta(&st, "epoch");
    if (rc == 0 && (!e || atoi(e) < 0)) rc = hs_error("%s: no epoch in its metadata", path);
    if (rc == 0) *epoch = atoi(e);
    safetensors_free(&st);
    return rc;
}

/* Sharpness over training: the top Hessian eigenvalue by power iteration with the study's momentum, a new
 * mini-batch (unaugmented) per product, batch norm in eval mode. */
typedef struct {
    int count;
    double *epochs, *lambdas;
} SharpnessLog;

static int FN(record_sharpness)(SharpnessLog *log, Model *m, const Cifar10 *train, int n_train, int epoch, int iters,
                                int batch, double beta, uint64_t seed, double lr, const char *csv, const char *plot) {
    int *pool = hs_malloc(sizeof(int) * (size_t)n_train);
    if (!pool) return -1;
    for (int i = 0; i < n_train; i++) pool[i] = i;
    HessianOperator hop;
    int saved_training = m->training;
    BatchNormMode saved_bn = m->bn_mode;
    m->training = 0;
    m->bn_mode = BN_EVAL;
    if (batch > n_train) batch = n_train;
    int rc = FN(hessian_operator_init)(&hop, m, train, pool, n_train, 1, batch, 250, seed, CURVATURE_HESSIAN);
    free(pool);
    if (rc != 0) return -1;
    LinOp op = FN(hessian_operator_linop)(&hop);
    PowerOptions popt = {iters, beta, POWER_STUDY_MOMENTUM, 0, seed, NULL, NULL, NULL};
    PowerResult res = {0};
    double t0 = hs_seconds();
    rc = power_iteration(&op, &popt, &res);
    FN(hessian_operator_free)(&hop);
    m->training = saved_training;
    m->bn_mode = saved_bn;
    if (rc != 0) return hs_error_context("sharpness at epoch %d: ", epoch);
    double lambda = res.lambda;
    int64_t hvps = res.products;
    power_result_free(&res);
    double *e = realloc(log->epochs, sizeof(double) * (size_t)(log->count + 1));
    if (e) log->epochs = e;
    double *l = realloc(log->lambdas, sizeof(double) * (size_t)(log->count + 1));
    if (l) log->lambdas = l;
    if (!e || !l) return hs_error("out of memory");
    log->epochs[log->count] = epoch;
    log->lambdas[log->count] = lambda;
    log->count++;
    printf("Sharpness at epoch %d: lambda_max = %.4f (power iteration, %d steps of %d images, beta %g; 2/lr = %g) "
           "| %.1f s\n", epoch, lambda, iters, batch, beta, 2 / lr, hs_seconds() - t0);
    fflush(stdout);
    AtomicFile af;
    HS_TRY(atomic_file_open(&af, csv));
    fprintf(af.fp, "epoch,lambda_max,two_over_lr,hvps\n");
    for (int i = 0; i < log->count; i++)
        fprintf(af.fp, "%g,%.8g,%.8g,%lld\n", log->epochs[i], log->lambdas[i], 2 / lr, (long long)hvps);
    HS_TRY(atomic_file_commit(&af));
    PlotSeries series = {"top Hessian eigenvalue", log->epochs, log->lambdas, log->count, NULL, 0};
    PlotHLine line = {"2 / lr", 2 / lr, "#d62728"};
    PlotFrame frame = {"Sharpness over training", "epoch", "lambda_max", 0, 0, 0};
    return svg_line_chart(plot, &frame, &series, 1, &line, 1);
}

int FN(cmd_train)(int argc, char **argv) {
    const char *arch = "cnn", *data_dir = NULL, *out = NULL, *init = NULL, *json = NULL, *precision = "f32";
    const char *csv = NULL, *resume = NULL, *sharp_at = NULL, *sharp_csv = NULL, *sharp_plot = NULL;
    int log_every = 50, sharp_every = 0, sharp_iters = 100, sharp_batch = 1000;
    double sharp_beta = 0.7;
    int epochs = 2, batch = 100, threads = 0, train_samples = 0, test_samples = 0, quiet = 0;
    double lr = 0.01, momentum = 0.9, wd = 0;
    uint64_t seed = 50;
    ArgSpec specs[] = {
        {"--model", ARG_STRING, &arch, "architecture: cnn, resnet18, resnet50", 0},
        {"--data", ARG_STRING, &data_dir, "folder with cifar-10-batches-bin/", 1},
        {"--epochs", ARG_INT, &epochs, "training epochs (in all, also with --resume)", 0},
        {"--batch", ARG_INT, &batch, "mini-batch size", 0},
        {"--lr", ARG_DOUBLE, &lr, "learning rate", 0},
        {"--momentum", ARG_DOUBLE, &momentum, "SGD momentum", 0},
        {"--weight-decay", ARG_DOUBLE, &wd, "L2 weight decay (added to the gradient, PyTorch SGD)", 0},
        {"--seed", ARG_U64, &seed, "seed for initialisation, shuffling and augmentation", 0},
        {"--out", ARG_STRING, &out, "checkpoint to write (safetensors), after every epoch", 1},
        {"--init", ARG_STRING, &init,
         "start from these weights (e.g. ImageNet weights; a classifier of another shape is replaced)", 0},
        {"--train-samples", ARG_INT, &train_samples, "use only the first N training images (0: all)", 0},
        {"--test-samples", ARG_INT, &test_samples, "evaluate on the first N test images (0: all)", 0},
        {"--threads", ARG_INT, &threads, "OpenMP threads (0: OMP_NUM_THREADS or all cores)", 0},
        {"--json", ARG_STRING, &json, "write the per-epoch history as JSON", 0},
        {"--csv", ARG_STRING, &csv, "write the training curve (step, epoch, mean loss of the last --log-every batches)", 0},
        {"--log-every", ARG_INT, &log_every, "batches per point of the --csv curve", 0},
        {"--resume", ARG_STRING, &resume, "continue from this checkpoint and its .optimizer.safetensors", 0},
        {"--sharpness-at", ARG_STRING, &sharp_at, "top Hessian eigenvalue at these epochs, e.g. 0,10,100 (0: before)", 0},
        {"--sharpness-every", ARG_INT, &sharp_every, "top Hessian eigenvalue every N epochs (and before training)", 0},
        {"--sharpness-iters", ARG_INT, &sharp_iters, "power-iteration steps per measurement", 0},
        {"--sharpness-batch", ARG_INT, &sharp_batch, "fresh mini-batch size for each Hessian-vector product", 0},
        {"--beta", ARG_DOUBLE, &sharp_beta, "power-iteration momentum for sharpness (study: 0.9 cnn, 0.7 resnet50)", 0},
        {"--sharpness-csv", ARG_STRING, &sharp_csv, "sharpness CSV (default: OUT with .sharpness.csv)", 0},
        {"--sharpness-plot", ARG_STRING, &sharp_plot, "sharpness SVG (default: OUT with .sharpness.svg)", 0},
        {"--precision", ARG_STRING, &precision, "f32 or f64", 0},
        {"--quiet", ARG_FLAG, &quiet, "no progress bar", 0},
    };
    int parsed = args_parse(argc, argv,
                            "usage: hessian train --model cnn --data DIR --out CKPT [options]\n"
                            "Trains with SGD (PyTorch semantics), random crop (padding 4) and horizontal flip.",
                            specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    if (parsed < 0 || args_check_positive_int("--epochs", epochs) || args_check_positive_int("--batch", batch) ||
        args_check_range("--lr", lr, 1e-12, 1e3) || args_check_range("--momentum", momentum, 0, 0.999999) ||
        args_check_range("--weight-decay", wd, 0, 1) || args_check_range("--train-samples", train_samples, 0, 1e9) ||
        args_check_range("--test-samples", test_samples, 0, 1e9) || args_check_positive_int("--log-every", log_every) ||
        args_check_range("--sharpness-every", sharp_every, 0, 1e9) ||
        args_check_positive_int("--sharpness-iters", sharp_iters) ||
        args_check_positive_int("--sharpness-batch", sharp_batch) || args_check_range("--beta", sharp_beta, 0, 0.999999) ||
        (init && resume && hs_error("--init and --resume exclude each other")) || FN(command_set_threads)(threads)) {
        fprintf(stderr, "hessian train: %s\n", hs_last_error());
        return EXIT_USAGE;
    }
    if (quiet) progress_set_quiet(1);
    int sharp_epochs[256], sharp_count = 0;
    if (sharp_at && FN(parse_epoch_list)(sharp_at, sharp_epochs, &sharp_count, 256) != 0) {
        fprintf(stderr, "hessian train: %s\n", hs_last_error());
        return EXIT_USAGE;
    }
    int sharpness = sharp_count > 0 || sharp_every > 0;
    char state_path[1024], sharp_csv_buf[1024], sharp_plot_buf[1024];
    snprintf(state_path, sizeof state_path, "%s.optimizer.safetensors", out);
    snprintf(sharp_csv_buf, sizeof sharp_csv_buf, "%s.sharpness.csv", out);
    snprintf(sharp_plot_buf, sizeof sharp_plot_buf, "%s.sharpness.svg", out);
    if (!sharp_csv) sharp_csv = sharp_csv_buf;
    if (!sharp_plot) sharp_plot = sharp_plot_buf;

    Cifar10 train = {0}, test = {0};
    Model *m = NULL;
    real *x = NULL, *grad = NULL, *buf = NULL;
    int32_t *y = NULL;
    EpochRecord *history = NULL;
    Cifar10Loader loader = {0};
    Model **replicas = NULL;
    int replica_count = 0;
    real *grads = NULL;
    AtomicFile curve = {0};
    int status = EXIT_ERROR, curve_open = 0;
    long step = 0;
    double window_loss = 0;
    int window = 0;
    if (cifar10_load(data_dir, CIFAR10_TRAIN, &train) != 0 || cifar10_load(data_dir, CIFAR10_TEST, &test) != 0 ||
        FN(command_open_model)(arch, resume ? resume : init, seed, resume ? 0 : 1, &m) != 0)
        goto fail;
    int n_train = train_samples > 0 && train_samples < train.n ? train_samples : train.n;
    if (batch > n_train) {
        hs_error("--batch %d is larger than the %d training images", batch, n_train);
        goto fail;
    }
    size_t P = m->num_params;
    x = hs_malloc(sizeof(real) * (size_t)batch * CIFAR10_PIXELS);
    y = hs_malloc(sizeof(int32_t) * (size_t)batch);
    grad = hs_malloc(sizeof(real) * P);
    buf = hs_calloc(P, sizeof(real));
    history = hs_calloc((size_t)epochs, sizeof *history);
    if (!x || !y || !grad || !buf || !history) goto fail;
    if (cifar10_loader_init(&loader, &train, 0, n_train, batch, 1, 1, seed) != 0) goto fail;
    /* Batch norm cannot normalise a batch of one image (PyTorch refuses it too): drop such a last batch. */
    if (m->num_buffers > 0 && n_train % batch == 1) loader.drop_last = 1;
    /* Without batch norm, each thread runs whole passes on its share of the batch (one parallel region per
     * step instead of one per op); with batch norm the batch must stay whole for its statistics. */
    int split = omp_get_max_threads();
    if (split > batch) split = batch;
    if (split > 1 && m->num_buffers == 0) {
        if (FN(model_create_replicas)(m, split, &replicas) != 0) goto fail;
        replica_count = split;
        grads = hs_malloc(sizeof(real) * P * (size_t)split);
        if (!grads) goto fail;
    }
    if (csv) {
        if (atomic_file_open(&curve, csv) != 0) goto fail;
        curve_open = 1;
        fprintf(curve.fp, "step,epoch,train_loss\n");
    }
    Sgd opt = {lr, momentum, wd, 0};
    int first_epoch = 1;
    if (resume) {
        int done_epochs = 0;
        if (FN(load_optimizer_state)(resume, buf, P, &done_epochs) != 0) goto fail;
        opt.started = 1;
        first_epoch = done_epochs + 1;
        if (first_epoch > epochs) {
            hs_error("%s has already trained %d epochs (--epochs %d)", resume, done_epochs, epochs);
            goto fail;
        }
        /* Replay the loader's shuffles and augmentation draws of the finished epochs, so the run continues
         * exactly as an uninterrupted one would. */
        for (int e = 1; e < first_epoch; e++)
            while (cifar10_loader_next(&loader, x, (int)sizeof(real), y) > 0) {
            }
        fprintf(stderr, "resuming %s after epoch %d\n", resume, done_epochs);
    }
    SharpnessLog sharp_log = {0};
    if (sharpness && first_epoch == 1 && (sharp_every > 0 || FN(epoch_listed)(sharp_epochs, sharp_count, 0)) &&
        FN(record_sharpness)(&sharp_log, m, &train, n_train, 0, sharp_iters, sharp_batch, sharp_beta, seed, lr,
                             sharp_csv, sharp_plot) != 0)
        goto fail;
    fprintf(stderr, "training %s (%zu parameters) on %d images, %d epochs, batch %d, lr %g, momentum %g, wd %g\n",
            arch, P, n_train, epochs, batch, lr, momentum, wd);
    signal(SIGINT, FN(on_sigint));
    int nb = cifar10_loader_batches(&loader);
    for (int epoch = first_epoch; epoch <= epochs; epoch++) {
        double t0 = hs_seconds(), loss_sum = 0;
        m->training = 1;
        long seen = 0, right = 0;
        Progress pr;
        char label[64], msg[96];
        snprintf(label, sizeof label, "Epoch %d/%d", epoch, epochs);
        progress_begin(&pr, label, "batch", nb);
        int b = 0, n;
        while ((n = cifar10_loader_next(&loader, x, (int)sizeof(real), y)) > 0) {
            double loss;
            int correct;
            memset(grad, 0, sizeof(real) * P);
            int rc = replicas ? FN(model_parallel_gradient)(replicas, replica_count, x, y, n, 1.0 / n, grads, grad,
                                                            &loss, &correct)
                              : (FN(model_forward)(m, x, n) || FN(model_loss)(m, y, 1.0 / n, &loss, &correct) ||
                                 FN(model_backward)(m, y, 1.0 / n, grad));
            if (rc != 0) {
                progress_end(&pr);
                hs_error_context("epoch %d, batch %d: ", epoch, b + 1);
                goto fail;
            }
            FN(sgd_step)(&opt, m->params, grad, buf, P);
            loss_sum += loss * n;
            right += correct;
            step++;
            window_loss += loss;
            if (++window == log_every && curve_open) {
                fprintf(curve.fp, "%ld,%.4f,%.6f\n", step, epoch - 1 + (double)(b + 1) / nb, window_loss / window);
                window = 0;
                window_loss = 0;
            }
            seen += n;
            b++;
            snprintf(msg, sizeof msg, "loss %.4f, acc %.1f%%", loss_sum / seen, 100.0 * right / seen);
            progress_update(&pr, b, msg);
            if (FN(interrupted)) break;
        }
        progress_end(&pr);
        if (FN(interrupted)) {
            const char *keys[] = {"model", "epoch", "interrupted"};
            char ep[16];
            snprintf(ep, sizeof ep, "%d", epoch - 1);
            const char *vals[] = {arch, ep, "true"};
            if (FN(model_save)(m, out, keys, vals, 3) != 0 ||
                FN(save_optimizer_state)(state_path, buf, P, epoch - 1, lr, momentum, wd, seed) != 0)
                goto fail;
            fprintf(stderr, "interrupted during epoch %d: saved the current parameters to %s (--resume %s restarts "
                            "epoch %d from them)\n", epoch, out, out, epoch);
            status = 130;
            goto fail;
        }
        EpochRecord *r = &history[epoch - first_epoch];
        r->epoch = epoch;
        r->train_loss = loss_sum / seen;
        r->train_acc = (double)right / seen;
        r->seconds = hs_seconds() - t0;
        m->training = 0;
        if (FN(evaluate)(m, &test, test_samples, &r->test_loss, &r->test_acc) != 0) goto fail;
        r->eval_seconds = hs_seconds() - t0 - r->seconds;
        printf("Epoch %d/%d | Train Loss: %.4f | Train Acc: %.1f%% | Test Loss: %.4f | Test Acc: %.1f%% | %.1f s\n",
               epoch, epochs, r->train_loss, 100 * r->train_acc, r->test_loss, 100 * r->test_acc, r->seconds);
        fflush(stdout);
        char ep[16];
        snprintf(ep, sizeof ep, "%d", epoch);
        const char *keys[] = {"model", "epoch"};
        const char *vals[] = {arch, ep};
        if (FN(model_save)(m, out, keys, vals, 2) != 0 ||
            FN(save_optimizer_state)(state_path, buf, P, epoch, lr, momentum, wd, seed) != 0)
            goto fail;
        if (sharpness && (FN(epoch_listed)(sharp_epochs, sharp_count, epoch) || (sharp_every && epoch % sharp_every == 0)) &&
            FN(record_sharpness)(&sharp_log, m, &train, n_train, epoch, sharp_iters, sharp_batch, sharp_beta, seed + epoch,
                                 lr, sharp_csv, sharp_plot) != 0)
            goto fail;
        if (json && FN(write_history)(json, history, epoch - first_epoch + 1, arch, resume ? resume : init, batch, lr,
                                      momentum, wd, seed) != 0)
            goto fail;
    }
    if (curve_open) {
        curve_open = 0;
        if (atomic_file_commit(&curve) != 0) goto fail;
    }
    status = EXIT_OK;
fail:
    if (curve_open) atomic_file_abort(&curve);
    if (status == EXIT_ERROR) FN(command_fail)("train");
    signal(SIGINT, SIG_DFL);
    cifar10_loader_free(&loader);
    FN(model_free_replicas)(replicas, replica_count);
    free(grads);
    cifar10_free(&train);
    cifar10_free(&test);
    FN(model_free)(m);
    free(x);
    free(y);
    free(grad);
    free(buf);
    free(history);
    free(sharp_log.epochs);
    free(sharp_log.lambdas);
    return status;
}

int FN(cmd_eval)(int argc, char **argv) {
    const char *arch = "cnn", *data_dir = NULL, *ckpt = NULL, *json = NULL, *precision = "f32";
    int threads = 0;
    ArgSpec specs[] = {
        {"--model", ARG_STRING, &arch, "architecture: cnn", 0},
        {"--checkpoint", ARG_STRING, &ckpt, "safetensors checkpoint", 1},
        {"--data", ARG_STRING, &data_dir, "folder with cifar-10-batches-bin/", 1},
        {"--threads", ARG_INT, &threads, "OpenMP threads (0: default)", 0},
        {"--json", ARG_STRING, &json, "write the result as JSON", 0},
        {"--precision", ARG_STRING, &precision, "f32 or f64", 0},
    };
    int parsed = args_parse(argc, argv, "usage: hessian eval --model cnn --checkpoint CKPT --data DIR [--json FILE]",
                            specs, (int)(sizeof specs / sizeof specs[0]));
    if (parsed == 1) return EXIT_OK;
    if (parsed < 0 || FN(command_set_threads)(threads)) {
        fprintf(stderr, "hessian eval: %s\n", hs_last_error());
        return EXIT_USAGE;
    }
    Cifar10 test = {0};
    Model *m = NULL;
    double loss, acc;
    int status = EXIT_ERROR;
    if (cifar10_load(data_dir, CIFAR10_TEST, &test) != 0 || FN(command_open_model)(arch, ckpt, 0, 0, &m) != 0 ||
        FN(evaluate)(m, &test, 0, &loss, &acc) != 0)
        goto done;
    printf("Test Loss: %.4f | Test Acc: %.2f%% | %d images\n", loss, 100 * acc, test.n);
    if (json) {
        AtomicFile af;
        if (atomic_file_open(&af, json) != 0) goto done;
        JsonWriter w;
        json_begin(&w, af.fp);
        json_object_begin(&w);
        FN(command_write_provenance)(&w, "eval", arch, ckpt);
        json_key(&w, "test_loss");
        json_double(&w, loss);
        json_key(&w, "test_acc");
        json_double(&w, acc);
        json_key(&w, "images");
        json_int(&w, test.n);
        json_object_end(&w);
        json_end(&w);
        if (atomic_file_commit(&af) != 0) goto done;
    }
    status = EXIT_OK;
done:
    if (status != EXIT_OK) FN(command_fail)("eval");
    cifar10_free(&test);
    FN(model_free)(m);
    return status;
}
