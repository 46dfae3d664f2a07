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
#include "../optim/sgd.h"
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

int FN(cmd_train)(int argc, char **argv) {
    const char *arch = "cnn", *data_dir = NULL, *out = NULL, *init = NULL, *json = NULL, *precision = "f32";
    const char *csv = NULL;
    int log_every = 50;
    int epochs = 2, batch = 100, threads = 0, train_samples = 0, test_samples = 0, quiet = 0;
    double lr = 0.01, momentum = 0.9, wd = 0;
    uint64_t seed = 50;
    ArgSpec specs[] = {
        {"--model", ARG_STRING, &arch, "architecture: cnn", 0},
        {"--data", ARG_STRING, &data_dir, "folder with cifar-10-batches-bin/", 1},
        {"--epochs", ARG_INT, &epochs, "training epochs", 0},
        {"--batch", ARG_INT, &batch, "mini-batch size", 0},
        {"--lr", ARG_DOUBLE, &lr, "learning rate", 0},
        {"--momentum", ARG_DOUBLE, &momentum, "SGD momentum", 0},
        {"--weight-decay", ARG_DOUBLE, &wd, "L2 weight decay (added to the gradient, PyTorch SGD)", 0},
        {"--seed", ARG_U64, &seed, "seed for initialisation, shuffling and augmentation", 0},
        {"--out", ARG_STRING, &out, "checkpoint to write (safetensors), after every epoch", 1},
        {"--init", ARG_STRING, &init, "start from this checkpoint instead of a fresh initialisation", 0},
        {"--train-samples", ARG_INT, &train_samples, "use only the first N training images (0: all)", 0},
        {"--test-samples", ARG_INT, &test_samples, "evaluate on the first N test images (0: all)", 0},
        {"--threads", ARG_INT, &threads, "OpenMP threads (0: OMP_NUM_THREADS or all cores)", 0},
        {"--json", ARG_STRING, &json, "write the per-epoch history as JSON", 0},
        {"--csv", ARG_STRING, &csv, "write the training curve (step, epoch, mean loss of the last --log-every batches)", 0},
        {"--log-every", ARG_INT, &log_every, "batches per point of the --csv curve", 0},
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
        FN(command_set_threads)(threads)) {
        fprintf(stderr, "hessian train: %s\n", hs_last_error());
        return EXIT_USAGE;
    }
    if (quiet) progress_set_quiet(1);

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
        FN(command_open_model)(arch, init, seed, 1, &m) != 0)
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
    fprintf(stderr, "training %s (%zu parameters) on %d images, %d epochs, batch %d, lr %g, momentum %g, wd %g\n",
            arch, P, n_train, epochs, batch, lr, momentum, wd);
    signal(SIGINT, FN(on_sigint));
    int nb = cifar10_loader_batches(&loader);
    for (int epoch = 1; epoch <= epochs; epoch++) {
        double t0 = hs_seconds(), loss_sum = 0;
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
            if (FN(model_save)(m, out, keys, vals, 3) != 0) goto fail;
            fprintf(stderr, "interrupted during epoch %d: saved the current parameters to %s\n", epoch, out);
            status = 130;
            goto fail;
        }
        EpochRecord *r = &history[epoch - 1];
        r->epoch = epoch;
        r->train_loss = loss_sum / seen;
        r->train_acc = (double)right / seen;
        r->seconds = hs_seconds() - t0;
        if (FN(evaluate)(m, &test, test_samples, &r->test_loss, &r->test_acc) != 0) goto fail;
        r->eval_seconds = hs_seconds() - t0 - r->seconds;
        printf("Epoch %d/%d | Train Loss: %.4f | Train Acc: %.1f%% | Test Loss: %.4f | Test Acc: %.1f%% | %.1f s\n",
               epoch, epochs, r->train_loss, 100 * r->train_acc, r->test_loss, 100 * r->test_acc, r->seconds);
        fflush(stdout);
        char ep[16];
        snprintf(ep, sizeof ep, "%d", epoch);
        const char *keys[] = {"model", "epoch"};
        const char *vals[] = {arch, ep};
        if (FN(model_save)(m, out, keys, vals, 2) != 0) goto fail;
        if (json && FN(write_history)(json, history, epoch, arch, init, batch, lr, momentum, wd, seed) != 0) goto fail;
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
