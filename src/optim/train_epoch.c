/* train_epoch.c: one epoch of SGD over a sample source, in one process or spread over the ranks of an MPI
 * group (see train_epoch.h). */
#include "train_epoch.h"

#include <stdlib.h>
#include <string.h>

#include "../parallel/dist.h"

/* The group's sums for synchronised batch norm: over the MPI ranks, in rank order. */
static int FN(ranks_sum)(double *values, size_t n, void *user) {
    (void)user;
    return dist_sum_ordered(values, n);
}

int FN(trainer_init)(Trainer *t, Model *m, const SampleSource *src, int count, int batch, int augment, uint64_t seed,
                     double lr, double momentum, double weight_decay, int sync_bn) {
    memset(t, 0, sizeof *t);
    t->model = m;
    if (batch <= 0 || batch > count)
        return hs_error("the batch size must be in [1, %d] (the training samples), got %d", count, batch);
    int R = dist_size(), bn = m->num_buffers > 0;
    t->sync_bn = bn && R > 1 && sync_bn;
    int min_slice = t->sync_bn ? 1 : 2; /* samples per rank: a slice normalised alone needs 2 */
    if (bn && R > 1 && batch / R < min_slice)
        return hs_error("batch norm over %d ranks: each rank %s its own slice of the batch, which needs at "
                        "least %d sample%s (--batch %d gives %d); use --batch %d or more, or fewer ranks",
                        R, t->sync_bn ? "holds" : "normalises", min_slice, min_slice > 1 ? "s" : "", batch,
                        batch / R, min_slice * R);
    size_t P = m->num_params;
    t->x = hs_malloc(sizeof(real) * (size_t)batch * m->in_size);
    t->y = hs_malloc(FN(model_target_bytes)(m) * (size_t)batch);
    t->grad = hs_malloc(sizeof(real) * P);
    t->buf = hs_calloc(P, sizeof(real));
    if (!t->x || !t->y || !t->grad || !t->buf) goto fail;
    if (R > 1 && !(t->acc = hs_malloc(sizeof(double) * P))) goto fail;
    if (sample_loader_init(&t->loader, src, 0, count, batch, 1, augment, seed) != 0) goto fail;
    /* Batch norm cannot normalise a batch of one image (PyTorch refuses it too): drop such a last batch; over R
     * ranks, drop a last batch that leaves a rank's slice under 2 samples. */
    int rest = count % batch;
    if (bn && rest > 0 && (R > 1 ? rest / R < min_slice : rest == 1)) t->loader.drop_last = 1;
    t->batches = sample_loader_batches(&t->loader);
    t->bn_split = bn && R > 1;
    /* Without batch norm, the threads run whole passes on shares of the batch (one parallel region per step
     * instead of one per op); with batch norm the batch must stay whole for its statistics. The ranks of a
     * group each take a contiguous range of the shares. */
    int split = TRAIN_SHARES; /* fixed, not the thread or rank count: the same bits for any of them */
    if (split > batch) split = batch;
    if (!bn && (split > 1 || R > 1)) {
        t->shares = split;
        t->share_lo = 0;
        t->share_hi = split;
        if (R > 1) dist_chunk_range(split, &t->share_lo, &t->share_hi);
        t->replica_count = t->share_hi - t->share_lo;
        if (t->replica_count > 0) {
            if (FN(model_create_replicas)(m, t->replica_count, &t->replicas) != 0) goto fail;
            t->grads = hs_malloc(sizeof(real) * P * (size_t)t->replica_count);
            if (!t->grads) goto fail;
        }
    } else if (t->bn_split && !(t->grads = hs_malloc(sizeof(real) * P))) goto fail;
    t->opt = (Sgd){lr, momentum, weight_decay, 0};
    t->bn_group = (BatchStatsGroup){FN(ranks_sum), NULL};
    return 0;
fail:
    FN(trainer_free)(t);
    return -1;
}

/* Over a group of ranks: adds this rank's parts (k, P) of the batch's gradient, their losses and correct counts
 * to the running sum of the earlier ranks' parts, in rank order, exactly as one process adds all the parts in
 * order (the first part assigns, each other adds, in real), and leaves the whole sum in t->grad, *loss and
 * *correct on every rank. The running sum travels as doubles (exact copies of reals). */
static int FN(combine)(Trainer *t, const real *parts, int k, const double *losses, const int *rights, double *loss,
                       int *correct) {
    size_t P = t->model->num_params;
    double sc[3] = {0, 0, 0}; /* the loss, the correct count and the parts summed so far */
    if (dist_chain_recv(t->acc, P, sc, 3) != 0) return -1;
    real *g = t->grad;
    if (sc[2] > 0)
        for (size_t i = 0; i < P; i++) g[i] = (real)t->acc[i];
    for (int j = 0; j < k; j++) {
        const real *p = parts + (size_t)j * P;
        if (sc[2] == 0) memcpy(g, p, sizeof(real) * P);
        else
            for (size_t i = 0; i < P; i++) g[i] += p[i];
        sc[0] += losses[j];
        sc[1] += rights[j];
        sc[2] += 1;
    }
    for (size_t i = 0; i < P; i++) t->acc[i] = (double)g[i];
    if (dist_chain_send(t->acc, P, sc, 3) != 0) return -1;
    for (size_t i = 0; i < P; i++) g[i] = (real)t->acc[i];
    *loss = sc[0];
    *correct = (int)sc[1];
    return 0;
}

/* The mean loss of the batch x, y (n samples), its correct count and its gradient in t->grad. */
static int FN(batch_gradient)(Trainer *t, int n, double *loss, int *correct) {
    Model *m = t->model;
    size_t P = m->num_params;
    double scale = 1.0 / n;
    if (dist_size() == 1 && t->replicas)
        return FN(model_parallel_gradient)(t->replicas, t->shares, t->x, t->y, n, scale, t->grads, t->grad, loss,
                                           correct);
    int fault = dist_size() > 1 && dist_fault_injected();
    if (fault) return hs_error("fault injected on rank %d of %d (HESSIAN_TEST_FAIL_RANK, a test hook)", dist_rank(),
                               dist_size());
    if (t->shares > 0) { /* the ranks' ranges of shares */
        double losses[TRAIN_SHARES];
        int rights[TRAIN_SHARES];
        if (t->replica_count > 0 &&
            FN(model_gradient_shares)(t->replicas, t->shares, t->share_lo, t->share_hi, t->x, t->y, n, scale, t->grads,
                                      losses, rights) != 0)
            return -1;
        return FN(combine)(t, t->grads, t->replica_count, losses, rights, loss, correct);
    }
    if (t->bn_split) { /* batch norm over the ranks: each normalises its own slice with its own statistics, or
                        * (sync_bn: m->bn_group) with the whole batch's */
        int R = dist_size(), r = dist_rank();
        int lo = (int)((long)n * r / R), hi = (int)((long)n * (r + 1) / R);
        const void *y = (const char *)t->y + (size_t)lo * FN(model_target_bytes)(m);
        double part = 0;
        int right = 0;
        memset(t->grads, 0, sizeof(real) * P);
        if (FN(model_forward)(m, t->x + (size_t)lo * m->in_size, hi - lo) != 0 ||
            FN(model_loss)(m, y, scale, &part, &right) != 0 || FN(model_backward)(m, y, scale, t->grads) != 0)
            return -1;
        return FN(combine)(t, t->grads, 1, &part, &right, loss, correct);
    }
    /* One process: the whole batch on the model (batch norm, or a batch of one sample). */
    memset(t->grad, 0, sizeof(real) * P);
    return FN(model_forward)(m, t->x, n) || FN(model_loss)(m, t->y, scale, loss, correct) ||
                   FN(model_backward)(m, t->y, scale, t->grad)
               ? -1
               : 0;
}

int FN(trainer_epoch)(Trainer *t, TrainStepFn on_step, void *user, TrainEpochStats *stats) {
    Model *m = t->model;
    size_t P = m->num_params;
    memset(stats, 0, sizeof *stats);
    m->training = 1;
    m->bn_group = t->sync_bn ? &t->bn_group : NULL;
    int n, rc = 0;
    while ((n = sample_loader_next(&t->loader, t->x, sizeof(real), t->y)) > 0) {
        double loss;
        int correct;
        rc = FN(batch_gradient)(t, n, &loss, &correct);
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
    m->bn_group = NULL;
    /* With sync_bn every rank already holds the same running statistics (the same sums, the same bits). */
    if (rc == 0 && n >= 0 && t->bn_split && !t->sync_bn) rc = FN(trainer_share_buffers)(t);
    return rc != 0 || n < 0 ? -1 : 0;
}

int FN(trainer_share_buffers)(Trainer *t) {
    Model *m = t->model;
    size_t nb = m->num_buffer_values;
    if (dist_size() == 1 || nb == 0) return 0;
    double *v = hs_malloc(sizeof(double) * nb);
    if (!v) return -1;
    for (size_t i = 0; i < nb; i++) v[i] = (double)m->buffer_values[i];
    int rc = dist_broadcast(v, nb, 0);
    for (size_t i = 0; rc == 0 && i < nb; i++) m->buffer_values[i] = (real)v[i];
    free(v);
    return rc;
}

void FN(trainer_free)(Trainer *t) {
    sample_loader_free(&t->loader);
    FN(model_free_replicas)(t->replicas, t->replica_count);
    free(t->grads);
    free(t->acc);
    free(t->x);
    free(t->y);
    free(t->grad);
    free(t->buf);
    memset(t, 0, sizeof *t);
}
