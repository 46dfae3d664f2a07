/* train_epoch.c: one epoch of SGD over a sample source (see train_epoch.h). */
#include "train_epoch.h"

#include <stdlib.h>
#include <string.h>

int FN(trainer_init)(Trainer *t, Model *m, const SampleSource *src, int count, int batch, int augment, uint64_t seed,
                     double lr, double momentum, double weight_decay) {
    memset(t, 0, sizeof *t);
    t->model = m;
    if (batch <= 0 || batch > count)
        return hs_error("the batch size must be in [1, %d] (the training samples), got %d", count, batch);
    size_t P = m->num_params;
    t->x = hs_malloc(sizeof(real) * (size_t)batch * m->in_size);
    t->y = hs_malloc(FN(model_target_bytes)(m) * (size_t)batch);
    t->grad = hs_malloc(sizeof(real) * P);
    t->buf = hs_calloc(P, sizeof(real));
    if (!t->x || !t->y || !t->grad || !t->buf) goto fail;
    if (sample_loader_init(&t->loader, src, 0, count, batch, 1, augment, seed) != 0) goto fail;
    /* Batch norm cannot normalise a batch of one image (PyTorch refuses it too): drop such a last batch. */
    if (m->num_buffers > 0 && count % batch == 1) t->loader.drop_last = 1;
    t->batches = sample_loader_batches(&t->loader);
    /* Without batch norm, the threads run whole passes on shares of the batch (one parallel region per step
     * instead of one per op); with batch norm the batch must stay whole for its statistics. */
    int split = TRAIN_SHARES; /* fixed, not the thread count: the same bits for any thread count */
    if (split > batch) split = batch;
    if (split > 1 && m->num_buffers == 0) {
        if (FN(model_create_replicas)(m, split, &t->replicas) != 0) goto fail;
        t->replica_count = split;
        t->grads = hs_malloc(sizeof(real) * P * (size_t)split);
        if (!t->grads) goto fail;
    }
    t->opt = (Sgd){lr, momentum, weight_decay, 0};
    return 0;
fail:
    FN(trainer_free)(t);
    return -1;
}

int FN(trainer_epoch)(Trainer *t, TrainStepFn on_step, void *user, TrainEpochStats *stats) {
    Model *m = t->model;
    size_t P = m->num_params;
    memset(stats, 0, sizeof *stats);
    m->training = 1;
    int n, rc = 0;
    while ((n = sample_loader_next(&t->loader, t->x, sizeof(real), t->y)) > 0) {
        double loss;
        int correct;
        memset(t->grad, 0, sizeof(real) * P);
        rc = t->replicas ? FN(model_parallel_gradient)(t->replicas, t->replica_count, t->x, t->y, n, 1.0 / n, t->grads,
                                                       t->grad, &loss, &correct)
                         : (FN(model_forward)(m, t->x, n) || FN(model_loss)(m, t->y, 1.0 / n, &loss, &correct) ||
                            FN(model_backward)(m, t->y, 1.0 / n, t->grad));
        if (rc != 0) {
            hs_error_context("batch %d: ", stats->batches + 1);
            break;
        }
        FN(sgd_step)(&t->opt, m->params, t->grad, t->buf, P);
        stats->loss_sum += loss * n;
        stats->correct += correct;
        stats->seen += n;
        stats->batches++;
        if (on_step && on_step(user, stats->batches - 1, n, loss, correct) != 0) {
            stats->stopped = 1;
            break;
        }
    }
    m->training = 0;
    return rc != 0 || n < 0 ? -1 : 0;
}

void FN(trainer_free)(Trainer *t) {
    sample_loader_free(&t->loader);
    FN(model_free_replicas)(t->replicas, t->replica_count);
    free(t->grads);
    free(t->x);
    free(t->y);
    free(t->grad);
    free(t->buf);
    memset(t, 0, sizeof *t);
}
