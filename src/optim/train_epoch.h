/* train_epoch.h: SGD training over a sample source, one epoch per call, as `hessian train` and the public API
 * (hs_train) both run it (precision-generic): shuffled (optionally augmented) batches from a SampleLoader
 * seeded once, the mean loss of each batch, its gradient and one sgd_step (PyTorch's torch.optim.SGD).
 *
 * Models without batch norm split each batch into TRAIN_SHARES shares (fewer for smaller batches), run by the
 * threads as whole passes on model replicas and summed in share order: a number fixed here, not the thread
 * count, keeps training bit-identical for any thread count. With batch norm the batch stays whole (its
 * statistics), and a last batch of one sample is dropped (batch norm cannot normalise it; PyTorch refuses too).
 *
 * Over an MPI group of R > 1 ranks (src/parallel/dist.h) every rank draws the same batches (the same seeded
 * loader) and keeps its own replica of the parameters. Without batch norm, rank r runs its contiguous range of
 * the shares (dist_chunk_range; with R > TRAIN_SHARES some ranks run none) and the ordered chain adds the
 * share gradients, losses and correct counts in share order with the single-process operations, so every rank
 * holds the single-process gradient bits and takes the same SGD step: the parameters stay identical without
 * being broadcast, and training is bit-identical for every R. With batch norm (as PyTorch's
 * DistributedDataParallel) rank r normalises its slice [n*r/R, n*(r+1)/R) of each batch with that slice's own
 * statistics; the slices' gradients (each of the loss scaled by 1/n, so their sum is the gradient of the
 * batch's mean loss) are added in rank order, and after the epoch every rank takes rank 0's running
 * statistics (DDP's broadcast_buffers). Results with batch norm then depend on R; a batch must give every rank
 * at least 2 samples (a last batch that does not is dropped). With sync_bn (PyTorch's SyncBatchNorm) the slices
 * are normalised with the statistics of the whole batch instead: each batch norm adds its per-channel sums over
 * the ranks in rank order (dist_sum_ordered, the same bits on every rank), so the forward and backward passes
 * are those of the whole batch up to the order of the additions, every rank updates the same running
 * statistics, and a rank needs only 1 sample of each batch.
 *
 * Usage:
 *   Trainer t;  trainer_init(&t, m, &src, n_train, batch, augment, seed, lr, momentum, wd, sync_bn);
 *   for (epoch ...) trainer_epoch(&t, on_step, user, &stats);
 *   trainer_free(&t); */
#ifndef HS_TRAIN_EPOCH_H
#define HS_TRAIN_EPOCH_H

#include <stdint.h>

#include "../data/samples.h"
#include "../models/model.h"
#include "../ops/ops.h" /* BatchStatsGroup */
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
    real *grads;          /* (replica_count, P) scratch of this rank's shares; (1, P) for batch norm over ranks */
    Model **replicas;     /* replica_count: one per share of this rank */
    int replica_count;    /* share_hi - share_lo */
    int shares;           /* shares per batch (0: the batch runs whole on the model) */
    int share_lo, share_hi; /* this rank's shares [share_lo, share_hi) (all of them in one process) */
    int bn_split;         /* batch norm over R > 1 ranks: each rank runs its slice of the batch */
    int sync_bn;          /* ... with the whole batch's statistics (bn_group, set on the model during an epoch) */
    BatchStatsGroup bn_group;
    double *acc;          /* (P) the running sum passed along the ranks (R > 1) */
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
                     double lr, double momentum, double weight_decay, int sync_bn);
/* One epoch with batch norm in training mode (m->training is 1 during the epoch and 0 after). on_step may be
 * NULL. On failure the message names the batch. */
int FN(trainer_epoch)(Trainer *t, TrainStepFn on_step, void *user, TrainEpochStats *stats);
/* Batch norm over R > 1 ranks: every rank takes rank 0's running statistics (trainer_epoch does it after
 * each epoch). Nothing in one process. */
int FN(trainer_share_buffers)(Trainer *t);
void FN(trainer_free)(Trainer *t);

#endif
