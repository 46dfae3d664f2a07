/* train_epoch.h: SGD training over a sample source, one epoch per call, as `hessian train` and the public API
 * (hs_train) both run it (precision-generic): shuffled (optionally augmented) batches from a SampleLoader
 * seeded once, the mean loss of each batch, its gradient and one sgd_step (PyTorch's torch.optim.SGD).
 *
 * Models without batch norm split each batch into TRAIN_SHARES shares (fewer for smaller batches), run by the
 * threads as whole passes on model replicas and summed in share order: a number fixed here, not the thread
 * count, keeps training bit-identical for any thread count. With batch norm the batch stays whole (its
 * statistics), and a last batch of one sample is dropped (batch norm cannot normalise it; PyTorch refuses too).
 *
 * Usage:
 *   Trainer t;  trainer_init(&t, m, &src, n_train, batch, augment, seed, lr, momentum, wd);
 *   for (epoch ...) trainer_epoch(&t, on_step, user, &stats);
 *   trainer_free(&t); */
#ifndef HS_TRAIN_EPOCH_H
#define HS_TRAIN_EPOCH_H

#include <stdint.h>

#include "../data/samples.h"
#include "../models/model.h"
#include "sgd.h"

#define TRAIN_SHARES 8

typedef struct {
    Model *model;
    SampleLoader loader;  /* samples 0..count-1 of the source, shuffled with the seed */
    Sgd opt;
    int batches;          /* per epoch (sample_loader_batches) */
    real *x;              /* (batch, in_size) */
    void *y;              /* (batch) labels or (batch, classes) values */
    real *grad;           /* (P) */
    real *buf;            /* (P) momentum buffer */
    real *grads;          /* (replica_count, P) scratch of the shares */
    Model **replicas;
    int replica_count;
} Trainer;

typedef struct {
    int batches;          /* batches run this epoch */
    long seen;            /* samples seen */
    double loss_sum;      /* sum over batches of mean batch loss * batch size */
    long correct;         /* samples classified right (cross-entropy) */
    int stopped;          /* on_step asked to stop before the epoch's end */
} TrainEpochStats;

/* Called after every step with its batch index (from 0), size, mean loss and correct count; non-zero stops
 * the epoch after this step. */
typedef int (*TrainStepFn)(void *user, int batch_index, int n, double loss, int correct);

/* The loader over samples 0..count-1 of src (batch <= count; augment needs a source with augmentation), the
 * buffers and the replicas. m->loss must suit the source (curv_check_source). */
int FN(trainer_init)(Trainer *t, Model *m, const SampleSource *src, int count, int batch, int augment, uint64_t seed,
                     double lr, double momentum, double weight_decay);
/* One epoch with batch norm in training mode (m->training is 1 during the epoch and 0 after). on_step may be
 * NULL. On failure the message names the batch. */
int FN(trainer_epoch)(Trainer *t, TrainStepFn on_step, void *user, TrainEpochStats *stats);
void FN(trainer_free)(Trainer *t);

#endif
