/* hvp.c: loss, gradient and Hessian/GGN-vector products over a sample set, chunk by chunk, accumulated in
 * double (see curvature.h); in a data-parallel run each rank computes its range of chunks and the ordered
 * chain (parallel/dist.h) adds them in chunk order. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/scratch.h"
#include "../parallel/dist.h"
#include "curvature.h"

int FN(samples_fill)(const SampleSource *s, const int *indices, int count, real *x, void *targets) {
    return s->fill(s, indices, NULL, count, x, sizeof(real), targets);
}

size_t FN(curv_target_bytes)(const SampleSource *s) {
    return s->target_kind == TARGET_LABELS ? sizeof(int32_t) : sizeof(real) * s->target_size;
}

static void FN(model_shape_text)(const Model *m, char *out, size_t size) {
    size_t used = 0;
    int n = snprintf(out, size, "(");
    used = n > 0 ? (size_t)n : 0;
    for (int d = 0; d < m->in_ndim && used < size; d++) {
        n = snprintf(out + used, size - used, "%s%lld", d ? "," : "", (long long)m->in_shape[d]);
        used += n > 0 ? (size_t)n : 0;
    }
    if (used < size) snprintf(out + used, size - used, ")");
}

int FN(curv_check_source)(const Model *m, const SampleSource *s) {
    int same = s->in_ndim == m->in_ndim && s->in_size == m->in_size;
    for (int d = 0; same && d < s->in_ndim; d++) same = s->in_shape[d] == m->in_shape[d];
    if (!same) {
        char have[160], want[160];
        samples_shape_text(s, s->count, have, sizeof have);
        FN(model_shape_text)(m, want, sizeof want);
        return hs_error("inputs %s have shape %s but the model %s takes %s per sample", s->inputs_name, have,
                        m->name, want);
    }
    char ts[160];
    samples_target_shape_text(s, ts, sizeof ts);
    if (m->loss == LOSS_CROSS_ENTROPY) {
        if (s->target_kind != TARGET_LABELS)
            return hs_error("the cross-entropy loss needs integer class labels (int32 or int64, shape (N,)), but the "
                            "targets %s are real values of shape %s (for regression targets use the mse loss)",
                            s->targets_name, ts);
        if (s->num_classes > m->classes)
            return hs_error("the targets %s hold class labels up to %d, but the model %s has %d outputs (classes "
                            "0 to %d)",
                            s->targets_name, s->num_classes - 1, m->name, m->classes, m->classes - 1);
    } else {
        if (s->target_kind != TARGET_VALUES)
            return hs_error("the mse loss needs real targets (float32 or float64, shape (N,%d)), but the targets %s "
                            "are integer class labels (for class labels use the cross-entropy loss)",
                            m->classes, s->targets_name);
        if (s->target_size != (size_t)m->classes)
            return hs_error("the targets %s have shape %s: %zu values per sample, but the model %s has %d outputs",
                            s->targets_name, ts, s->target_size, m->name, m->classes);
    }
    return 0;
}

/* acc (n) = or += part (n): the first chunk assigns, so the double buffer is written once, not cleared first.
 * Returns the sum of |acc| after the update, in the same pass (a NaN or infinity anywhere makes it non-finite):
 * the last chunk's is the finiteness check of the whole result, without another pass over it (a ResNet-50
 * gradient is 188 MB of doubles). */
static double FN(accumulate_chunk)(double *acc, const real *part, size_t n, int first) {
    double norm = 0;
    if (first) {
#pragma omp parallel for schedule(static) reduction(+ : norm) if (n > 100000)
        for (size_t i = 0; i < n; i++) {
            acc[i] = (double)part[i];
            norm += fabs(acc[i]);
        }
    } else {
#pragma omp parallel for schedule(static) reduction(+ : norm) if (n > 100000)
        for (size_t i = 0; i < n; i++) {
            acc[i] += (double)part[i];
            norm += fabs(acc[i]);
        }
    }
    return norm;
}

/* The sum of |x| over n values (non-finite when any is). */
static double abs_sum(const double *x, size_t n) {
    double sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum) if (n > 100000)
    for (size_t i = 0; i < n; i++) sum += fabs(x[i]);
    return sum;
}

/* The automatic chunk (set->chunk <= 0): 128 samples for models without buffers (batch-norm statistics, whose batch
 * mode depends on the chunk) whose primal passes keep at most SMALL_MODEL_VALUES values per sample (whatever the
 * precision), 250 for the others, so the chunk changes roundings only. Small models are bound by streaming their
 * activations between ops, which smaller chunks keep closer in cache; large ones by GEMMs, which larger chunks
 * feed better (measured on a 2-core Xeon @ 2.80GHz with AVX-512, f32, 2 threads, 1,000 images: cnn, 12,200
 * values per sample, HVP 0.040 -> 0.035 s at 128; cnn_wide, 21,800, 0.110 s either way; ResNet-50, 697,000, 500
 * images: 7.8-8.0 s at 250 against 8.6 s at 125). */
#define SMALL_MODEL_VALUES ((size_t)16384)
static int FN(chunk_size)(const Model *m, const SampleSet *set) {
    int c = set->chunk;
    if (c <= 0) {
        size_t per_sample = m->arch->primal_bytes ? m->arch->primal_bytes(m) / sizeof(real) : SIZE_MAX;
        c = per_sample <= SMALL_MODEL_VALUES && m->num_buffer_values == 0 ? 128 : 250;
    }
    return c < set->count ? c : set->count;
}

/* The chunks [lo, hi) of the set's nchunks this process computes, and whether it keeps their partial results
 * for the ordered chain (ranks > 0 of a split set; rank 0 accumulates directly, its chunks come first). */
typedef struct {
    int nchunks, lo, hi, split, keep;
} ChunkPlan;

static ChunkPlan plan_chunks(const SampleSet *set, int chunk) {
    ChunkPlan p = {(set->count + chunk - 1) / chunk, 0, 0, 0, 0};
    p.hi = p.nchunks;
    p.split = !set->local && dist_size() > 1;
    if (p.split) dist_chunk_range(p.nchunks, &p.lo, &p.hi);
    p.keep = p.split && dist_rank() > 0;
    return p;
}

static int fault_hook(void) {
    return dist_fault_injected() ? hs_error("fault injected on rank %d of %d (HESSIAN_TEST_FAIL_RANK, a test hook)",
                                            dist_rank(), dist_size())
                                 : 0;
}

/* Buffers for one chunk of samples. They live in the calling thread's scratch slots (grow-only), so repeated
 * products (power iteration, Lanczos, training-time sharpness) allocate nothing after the first. */
typedef struct {
    real *x;        /* (chunk, in_size) */
    void *y;        /* (chunk) int32 labels or (chunk, target_size) reals */
    real *grad;     /* (P) */
    real *vr;       /* (K,P) directions in working precision */
    real *hv;       /* (K,P) */
    double *norms;  /* (2K) the sums of |v_k|, then of |Hv_k|: after vr in its slot */
} ChunkBuffers;

enum { SLOT_X = 8, SLOT_Y, SLOT_GRAD, SLOT_V, SLOT_HV };

static int FN(chunk_alloc)(ChunkBuffers *b, const SampleSource *s, int chunk, size_t P, int K) {
    memset(b, 0, sizeof *b);
    b->x = scratch_get(SLOT_X, sizeof(real) * (size_t)chunk * s->in_size);
    b->y = scratch_get(SLOT_Y, FN(curv_target_bytes)(s) * (size_t)chunk);
    b->grad = scratch_get(SLOT_GRAD, sizeof(real) * P);
    if (K > 0) {
        size_t v_bytes = (sizeof(real) * P * (size_t)K + 63) & ~(size_t)63; /* the norms 64-byte aligned after */
        b->vr = scratch_get(SLOT_V, v_bytes + sizeof(double) * 2 * (size_t)K);
        b->hv = scratch_get(SLOT_HV, sizeof(real) * P * (size_t)K);
        if (b->vr) b->norms = (double *)((char *)b->vr + v_bytes);
    }
    if (!b->x || !b->y || !b->grad || (K > 0 && (!b->vr || !b->hv))) return -1;
    return 0;
}

int FN(curv_loss_grad)(Model *m, const SampleSet *set, double *loss, double *accuracy, double *grad) {
    if (set->count <= 0) return hs_error("no samples selected");
    HS_TRY(FN(curv_check_source)(m, set->source));
    size_t P = m->num_params;
    int chunk = FN(chunk_size)(m, set);
    ChunkPlan plan = plan_chunks(set, chunk);
    int mine = plan.hi - plan.lo;
    ChunkBuffers b;
    HS_TRY(FN(chunk_alloc)(&b, set->source, chunk, P, 0));
    /* Kept partials (ranks > 0 of a split set): gradients (mine, P) when asked for, losses and counts (mine). */
    real *kept = plan.keep && grad && mine > 0 ? hs_malloc(sizeof(real) * P * (size_t)mine) : NULL;
    double *kept_loss = plan.keep && mine > 0 ? hs_malloc(sizeof(double) * (size_t)mine) : NULL;
    if ((plan.keep && grad && mine > 0 && !kept) || (plan.keep && mine > 0 && !kept_loss)) {
        free(kept);
        free(kept_loss);
        return -1;
    }
    double total = 0, scale = 1.0 / set->count, grad_norm = 0;
    long right = 0;
    int rc = 0;
    for (int c = plan.lo; c < plan.hi && rc == 0; c++) {
        int start = c * chunk;
        int n = set->count - start < chunk ? set->count - start : chunk;
        double part;
        int correct = 0;
        rc = FN(samples_fill)(set->source, set->indices + start, n, b.x, b.y);
        if (rc == 0) rc = FN(model_forward)(m, b.x, n);
        if (rc == 0) rc = FN(model_loss)(m, b.y, scale, &part, &correct);
        if (rc != 0) break;
        right += correct;
        if (plan.keep) kept_loss[c - plan.lo] = part;
        else total += part;
        if (!grad) continue;
        real *g = plan.keep ? kept + (size_t)(c - plan.lo) * P : b.grad;
        memset(g, 0, sizeof(real) * P);
        rc = FN(model_backward)(m, b.y, scale, g);
        if (!plan.keep) grad_norm = FN(accumulate_chunk)(grad, g, P, c == 0);
    }
    if (rc == 0 && plan.split) rc = fault_hook();
    if (rc == 0 && plan.split) {
        /* The ordered chain: the running loss, correct count (an exact integer in a double) and gradient. */
        double sc[2] = {total, 0};
        rc = dist_chain_recv(grad, grad ? P : 0, sc, 2);
        total = sc[0];
        for (int c = plan.lo; rc == 0 && plan.keep && c < plan.hi; c++) {
            total += kept_loss[c - plan.lo];
            if (grad) FN(accumulate_chunk)(grad, kept + (size_t)(c - plan.lo) * P, P, c == 0);
        }
        sc[0] = total;
        sc[1] += (double)right;
        if (rc == 0) rc = dist_chain_send(grad, grad ? P : 0, sc, 2);
        total = sc[0];
        right = (long)sc[1];
    }
    free(kept);
    free(kept_loss);
    if (rc != 0) return -1;
    if (loss) *loss = total;
    if (accuracy) *accuracy = m->loss == LOSS_CROSS_ENTROPY ? (double)right / set->count : NAN;
    if (grad) {
        double sum = plan.split ? abs_sum(grad, P) : grad_norm; /* (the chain's last step is not ours to measure) */
        if (!isfinite(sum))
            for (size_t i = 0; i < P; i++)
                if (!isfinite(grad[i])) return hs_error("the gradient is not finite at parameter %zu", i);
    }
    return 0;
}

void FN(hvp_cache_free)(HvpCache *c) {
    if (!c) return;
    FN(model_free_replicas)(c->replicas, c->count);
    for (int i = 0; c->x && i < c->count; i++) free(c->x[i]);
    free(c->x);
    free(c->loss);
    free(c->indices);
    free(c->params);
    free(c->buffers);
    memset(c, 0, sizeof *c);
}

/* Whether the cache's replicas can serve this call as they are (every input compared). */
static int FN(cache_matches)(const HvpCache *c, const Model *m, const SampleSet *set, int chunk, const ChunkPlan *plan) {
    return c->valid && c->replicas[0]->params == m->params && c->source == set->source &&
           c->set_count == set->count && c->chunk == chunk &&
           c->lo == plan->lo && c->count == plan->hi - plan->lo && c->training == m->training &&
           c->bn_mode == (int)m->bn_mode &&
           memcmp(c->indices, set->indices, sizeof(int) * (size_t)set->count) == 0 &&
           memcmp(c->params, m->params, sizeof(real) * m->num_params) == 0 &&
           (m->num_buffer_values == 0 ||
            memcmp(c->buffers, m->buffer_values, sizeof(real) * m->num_buffer_values) == 0);
}

/* Sets the cache up for this model, set and plan (once per model and set; 1 when it is on, 0 when not, -1 on
 * error), leaving it invalid: the caller's passes fill the replicas. */
static int FN(cache_setup)(HvpCache *c, Model *m, const SampleSet *set, int chunk, const ChunkPlan *plan) {
    int mine = plan->hi - plan->lo;
    if (c->decided && c->enabled && c->source == set->source && c->set_count == set->count && c->chunk == chunk &&
        c->lo == plan->lo && c->count == mine && c->replicas[0]->params == m->params) {
        memcpy(c->indices, set->indices, sizeof(int) * (size_t)set->count); /* same size: refill in place */
        for (int i = 0; i < mine; i++) { /* the replicas copied these from m when made */
            Model *r = c->replicas[i];
            if (m->num_buffer_values) memcpy(r->buffer_values, m->buffer_values, sizeof(real) * m->num_buffer_values);
            r->training = m->training;
            r->bn_mode = m->bn_mode;
        }
        c->valid = 0;
        return 1;
    }
    FN(hvp_cache_free)(c);
    c->decided = 1;
    size_t per_sample = m->arch->primal_bytes ? m->arch->primal_bytes(m) + sizeof(real) * m->in_size : 0;
    if (!per_sample || m->training || mine <= 0 || (size_t)mine * (size_t)chunk * per_sample > HVP_CACHE_BYTES)
        return 0;
    c->count = mine, c->lo = plan->lo, c->chunk = chunk, c->source = set->source, c->set_count = set->count;
    c->x = hs_calloc((size_t)mine, sizeof *c->x);
    c->loss = hs_calloc((size_t)mine, sizeof *c->loss);
    c->indices = hs_malloc(sizeof(int) * (size_t)set->count);
    c->params = hs_malloc(sizeof(real) * m->num_params);
    c->buffers = hs_malloc(sizeof(real) * (m->num_buffer_values + 1));
    if (!c->x || !c->loss || !c->indices || !c->params || !c->buffers) goto fail;
    for (int i = 0; i < mine; i++)
        if (!(c->x[i] = hs_malloc(sizeof(real) * (size_t)chunk * m->in_size))) goto fail;
    if (FN(model_create_replicas)(m, mine, &c->replicas) != 0) goto fail;
    memcpy(c->indices, set->indices, sizeof(int) * (size_t)set->count);
    c->enabled = 1;
    return 1;
fail:
    FN(hvp_cache_free)(c);
    return -1;
}

/* Records what the replicas were just computed with. */
static void FN(cache_seal)(HvpCache *c, const Model *m) {
    memcpy(c->params, m->params, sizeof(real) * m->num_params);
    if (m->num_buffer_values) memcpy(c->buffers, m->buffer_values, sizeof(real) * m->num_buffer_values);
    c->training = m->training;
    c->bn_mode = (int)m->bn_mode;
    c->valid = 1;
}

int FN(curv_hvp)(Model *m, const SampleSet *set, const double *v, int K, Curvature curvature, double *hv,
                 double *loss) {
    return FN(curv_hvp_cached)(m, set, v, K, curvature, hv, loss, NULL);
}

int FN(curv_hvp_cached)(Model *m, const SampleSet *set, const double *v, int K, Curvature curvature, double *hv,
                        double *loss, HvpCache *cache) {
    if (set->count <= 0) return hs_error("no samples selected");
    if (K <= 0) return hs_error("no directions given");
    size_t P = m->num_params;
    HS_TRY(FN(curv_check_source)(m, set->source));
    int chunk = FN(chunk_size)(m, set);
    ChunkPlan plan = plan_chunks(set, chunk);
    int mine = plan.hi - plan.lo;
    size_t PK = P * (size_t)K;
    ChunkBuffers b;
    HS_TRY(FN(chunk_alloc)(&b, set->source, chunk, P, K));
    /* The directions in the model's precision and their norms, in one parallel pass. A sum of |v| that is not
     * finite is the sign of a NaN or infinity (or of an overflowing sum: then the search finds none and v is
     * used): refused here, before any pass, with no separate check on the calling thread (188 MB for ResNet-50). */
    double *norms = b.norms;
    for (int k = 0; k < K; k++) {
        const double *vk = v + (size_t)k * P;
        real *vr = b.vr + (size_t)k * P;
        double vnorm = 0;
#pragma omp parallel for schedule(static) reduction(+ : vnorm) if (P > 100000)
        for (size_t i = 0; i < P; i++) {
            vr[i] = (real)vk[i];
            vnorm += fabs(vk[i]);
        }
        if (!isfinite(vnorm))
            for (size_t i = 0; i < P; i++)
                if (!isfinite(vk[i])) return hs_error("direction %d is not finite at index %zu", k, i);
        norms[k] = vnorm, norms[K + k] = 0;
    }
    /* Primal passes from the cache (reuse: its replicas hold them), into it (fill), or as usual (neither). */
    int reuse = 0, fill = 0;
    if (cache) {
        if (FN(cache_matches)(cache, m, set, chunk, &plan)) {
            reuse = 1;
            cache->reused++;
        } else {
            int on = FN(cache_setup)(cache, m, set, chunk, &plan);
            if (on < 0) return -1;
            fill = on;
        }
    }
    /* Kept partials (ranks > 0 of a split set): products (mine, K, P) and losses (mine). */
    real *kept = plan.keep && mine > 0 ? hs_malloc(sizeof(real) * PK * (size_t)mine) : NULL;
    double *kept_loss = plan.keep && mine > 0 ? hs_malloc(sizeof(double) * (size_t)mine) : NULL;
    if (plan.keep && mine > 0 && (!kept || !kept_loss)) {
        free(kept);
        free(kept_loss);
        return -1;
    }
    double total = 0, scale = 1.0 / set->count;
    int rc = 0;
    for (int c = plan.lo; c < plan.hi && rc == 0; c++) {
        int start = c * chunk;
        int n = set->count - start < chunk ? set->count - start : chunk;
        double part;
        Model *mc = reuse || fill ? cache->replicas[c - plan.lo] : m;
        if (reuse) {
            part = cache->loss[c - plan.lo];
        } else {
            real *x = fill ? cache->x[c - plan.lo] : b.x;
            rc = FN(samples_fill)(set->source, set->indices + start, n, x, b.y);
            if (rc == 0) rc = FN(model_forward)(mc, x, n);
            if (rc == 0) rc = FN(model_loss)(mc, b.y, scale, &part, NULL);
            if (rc == 0) rc = FN(model_backward)(mc, b.y, scale, mc->arch->grad_optional ? NULL : b.grad);
            if (rc != 0) break;
            if (fill) cache->loss[c - plan.lo] = part;
        }
        real *h = plan.keep ? kept + (size_t)(c - plan.lo) * PK : b.hv;
        memset(h, 0, sizeof(real) * PK);
        rc = FN(model_hvp_chunk)(mc, b.vr, K, 0, curvature, h);
        if (plan.keep) {
            kept_loss[c - plan.lo] = part;
        } else {
            total += part;
            for (int k = 0; k < K; k++)
                norms[K + k] = FN(accumulate_chunk)(hv + (size_t)k * P, h + (size_t)k * P, P, c == 0);
        }
    }
    if (fill) {
        if (rc == 0) FN(cache_seal)(cache, m);
        else cache->valid = 0;
    }
    if (rc == 0 && plan.split) rc = fault_hook();
    if (rc == 0 && plan.split) {
        double sc[1] = {total};
        rc = dist_chain_recv(hv, PK, sc, 1);
        total = sc[0];
        for (int c = plan.lo; rc == 0 && plan.keep && c < plan.hi; c++) {
            total += kept_loss[c - plan.lo];
            FN(accumulate_chunk)(hv, kept + (size_t)(c - plan.lo) * PK, PK, c == 0); /* (norms: after the chain) */
        }
        sc[0] = total;
        if (rc == 0) rc = dist_chain_send(hv, PK, sc, 1);
        total = sc[0];
    }
    free(kept);
    free(kept_loss);
    if (rc != 0) return -1;
    if (loss) *loss = total;
    for (int k = 0; k < K; k++) {
        const double *h = hv + (size_t)k * P;
        double vnorm = norms[k], hnorm = plan.split ? abs_sum(h, P) : norms[K + k]; /* (see curv_loss_grad) */
        if (!isfinite(hnorm))
            for (size_t i = 0; i < P; i++)
                if (!isfinite(h[i])) return hs_error("the Hessian-vector product is not finite at index %zu", i);
        if (vnorm > 0 && hnorm == 0)
            return hs_error("the Hessian-vector product is exactly zero for a non-zero direction: the loss does not "
                            "depend on these parameters (or every unit is inactive); refusing to return a silent "
                            "zero");
    }
    return 0;
}
