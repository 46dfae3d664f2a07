/* samples.c: sample sources (CIFAR-10 and NumPy .npy arrays) and the batch loader over any source (see
 * samples.h). A CIFAR-10 source normalises (and augments) images exactly as cifar10_image_* does; an .npy
 * source keeps both arrays as stored and converts only the requested samples, per chunk. */
#include "samples.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/common.h"
#include "../io/npy.h"

void samples_free(SampleSource *s) {
    if (!s) return;
    if (s->free) s->free(s);
    memset(s, 0, sizeof *s);
}

static void shape_text(int ndim, const int64_t *shape, long count, char *out, size_t size) {
    size_t used = 0;
    int n = snprintf(out, size, "(");
    used = n > 0 ? (size_t)n : 0;
    if (count >= 0 && used < size) {
        n = snprintf(out + used, size - used, "%ld,", count);
        used += n > 0 ? (size_t)n : 0;
    }
    for (int d = 0; d < ndim && used < size; d++) {
        n = snprintf(out + used, size - used, "%s%lld", d ? "," : "", (long long)shape[d]);
        used += n > 0 ? (size_t)n : 0;
    }
    /* a 1-tuple is written as Python writes it: (50,) */
    if (used < size) snprintf(out + used, size - used, "%s)", count < 0 && ndim == 1 ? "," : "");
}

void samples_shape_text(const SampleSource *s, long count, char *out, size_t size) {
    shape_text(s->in_ndim, s->in_shape, count, out, size);
}

void samples_target_shape_text(const SampleSource *s, char *out, size_t size) {
    shape_text(s->target_ndim, s->target_shape, s->count, out, size);
}

static int check_fill(const SampleSource *s, const int *indices, int n, size_t elem_size) {
    if (elem_size != 4 && elem_size != 8)
        return hs_error("sample fill: elem_size must be 4 (float) or 8 (double), got %zu", elem_size);
    for (int i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= s->count)
            return hs_error("sample fill: index %d is outside the %ld samples of %s", indices[i], s->count,
                            s->inputs_name);
    return 0;
}

/* ---------------------------------------------------------------------------------------------------------
 * CIFAR-10 */

typedef struct {
    Cifar10 data;
    int owned;
} CifarImpl;

static int cifar_fill(const SampleSource *s, const int *indices, const SampleAug *aug, int n, void *x,
                      size_t elem_size, void *targets) {
    HS_TRY(check_fill(s, indices, n, elem_size));
    const Cifar10 *data = &((const CifarImpl *)s->impl)->data;
    if (targets)
        for (int i = 0; i < n; i++) ((int32_t *)targets)[i] = data->labels[indices[i]];
#pragma omp parallel for schedule(static) if (n >= 16)
    for (int i = 0; i < n; i++) {
        int dy = aug ? aug[i].dy : 4, dx = aug ? aug[i].dx : 4, flip = aug ? aug[i].flip : 0;
        size_t at = (size_t)i * CIFAR10_PIXELS;
        if (elem_size == 4)
            cifar10_image_f32(data, indices[i], dy, dx, flip, (float *)x + at);
        else
            cifar10_image_f64(data, indices[i], dy, dx, flip, (double *)x + at);
    }
    return 0;
}

static void cifar_draw(Rng *rng, SampleAug *aug) { cifar10_draw_augmentation(rng, &aug->dy, &aug->dx, &aug->flip); }

static void cifar_free(SampleSource *s) {
    CifarImpl *impl = s->impl;
    if (impl && impl->owned) cifar10_free(&impl->data);
    free(impl);
}

static int cifar_source(CifarImpl *impl, const char *name, SampleSource *s) {
    memset(s, 0, sizeof *s);
    s->count = impl->data.n;
    s->in_ndim = 3;
    s->in_shape[0] = CIFAR10_CHANNELS;
    s->in_shape[1] = s->in_shape[2] = CIFAR10_SIDE;
    s->in_size = CIFAR10_PIXELS;
    s->target_kind = TARGET_LABELS;
    s->num_classes = CIFAR10_CLASSES;
    s->target_size = 1;
    snprintf(s->inputs_name, sizeof s->inputs_name, "%s", name);
    snprintf(s->targets_name, sizeof s->targets_name, "%s", name);
    s->unit = "images";
    s->fill = cifar_fill;
    s->draw_augment = cifar_draw;
    s->free = cifar_free;
    s->impl = impl;
    return 0;
}

int samples_from_cifar10(const char *dir, Cifar10Split split, SampleSource *s) {
    memset(s, 0, sizeof *s);
    CifarImpl *impl = hs_calloc(1, sizeof *impl);
    if (!impl) return -1;
    if (cifar10_load(dir, split, &impl->data) != 0) {
        free(impl);
        return -1;
    }
    impl->owned = 1;
    char name[512];
    snprintf(name, sizeof name, "the CIFAR-10 %s set in %s", split == CIFAR10_TRAIN ? "training" : "test", dir);
    return cifar_source(impl, name, s);
}

int samples_wrap_cifar10(const Cifar10 *data, const char *name, SampleSource *s) {
    memset(s, 0, sizeof *s);
    if (!data || !data->labels || !data->pixels || data->n <= 0) return hs_error("CIFAR-10 source: no data loaded");
    CifarImpl *impl = hs_calloc(1, sizeof *impl);
    if (!impl) return -1;
    impl->data = *data;
    return cifar_source(impl, name ? name : "CIFAR-10 data", s);
}

/* ---------------------------------------------------------------------------------------------------------
 * NumPy arrays */

typedef struct {
    NpyRaw x, y;
} NpyImpl;

/* Element k of a float array as double. */
static double raw_real(const NpyRaw *a, size_t k) {
    if (a->dtype == NPY_F32) {
        float f;
        memcpy(&f, (const unsigned char *)a->data + 4 * k, 4);
        return f;
    }
    double d;
    memcpy(&d, (const unsigned char *)a->data + 8 * k, 8);
    return d;
}

static int64_t raw_int(const NpyRaw *a, size_t k) {
    if (a->dtype == NPY_I32) {
        int32_t v;
        memcpy(&v, (const unsigned char *)a->data + 4 * k, 4);
        return v;
    }
    int64_t v;
    memcpy(&v, (const unsigned char *)a->data + 8 * k, 8);
    return v;
}

/* Copies n rows of `width` values (rows indices[i]) of a float array into out in elem_size. Same-type rows are
 * copied bit for bit; float64 to float32 rounds to nearest. */
static void copy_rows(const NpyRaw *a, size_t width, const int *indices, int n, void *out, size_t elem_size) {
#pragma omp parallel for schedule(static) if ((size_t)n * width >= 65536)
    for (int i = 0; i < n; i++) {
        size_t src = (size_t)indices[i] * width, dst = (size_t)i * width;
        if ((size_t)a->word_size == elem_size) {
            memcpy((unsigned char *)out + dst * elem_size, (const unsigned char *)a->data + src * elem_size,
                   width * elem_size);
        } else if (elem_size == 4) {
            float *o = (float *)out + dst;
            for (size_t j = 0; j < width; j++) o[j] = (float)raw_real(a, src + j);
        } else {
            double *o = (double *)out + dst;
            for (size_t j = 0; j < width; j++) o[j] = raw_real(a, src + j);
        }
    }
}

static int npy_fill(const SampleSource *s, const int *indices, const SampleAug *aug, int n, void *x,
                    size_t elem_size, void *targets) {
    HS_TRY(check_fill(s, indices, n, elem_size));
    if (aug) return hs_error("%s: .npy data sets are never augmented", s->inputs_name);
    const NpyImpl *impl = s->impl;
    copy_rows(&impl->x, s->in_size, indices, n, x, elem_size);
    if (!targets) return 0;
    if (s->target_kind == TARGET_LABELS)
        for (int i = 0; i < n; i++) ((int32_t *)targets)[i] = (int32_t)raw_int(&impl->y, (size_t)indices[i]);
    else
        copy_rows(&impl->y, s->target_size, indices, n, targets, elem_size);
    return 0;
}

static void npy_source_free(SampleSource *s) {
    NpyImpl *impl = s->impl;
    if (!impl) return;
    npy_raw_free(&impl->x);
    npy_raw_free(&impl->y);
    free(impl);
}

/* The first non-finite element of a float array: its sample (row of `width`) and the element within. */
static int check_finite(const NpyRaw *a, size_t width, const char *path, const char *what) {
    size_t total = (size_t)a->numel;
    for (size_t k = 0; k < total; k++) {
        double v = raw_real(a, k);
        if (!isfinite(v))
            return hs_error("%s: the %s hold %s at sample %zu (element %zu of that sample); every value must be "
                            "finite",
                            path, what, isnan(v) ? "NaN" : "an infinite value", k / width, k % width);
    }
    return 0;
}

/* The inputs' checks and the source's input shape; the message names the inputs by inputs_path. */
static int raw_inputs(SampleSource *s, const NpyRaw *x, const char *inputs_path) {
    if (x->dtype != NPY_F32 && x->dtype != NPY_F64)
        return hs_error("inputs %s are %s; they must be float32 or float64 (convert with X.astype(np.float32))",
                        inputs_path, npy_dtype_name(x->dtype));
    if (x->ndim < 2 || x->ndim > 1 + SAMPLES_MAX_DIMS)
        return hs_error("inputs %s have %d dimensions; expected (N, ...) with 1 to %d dimensions per sample (a "
                        "single feature per sample: shape (N, 1))",
                        inputs_path, x->ndim, SAMPLES_MAX_DIMS);
    if (x->shape[0] <= 0 || x->shape[0] > INT_MAX)
        return hs_error("inputs %s hold %lld samples; expected 1 to %d", inputs_path, (long long)x->shape[0], INT_MAX);
    s->count = (long)x->shape[0];
    s->in_ndim = x->ndim - 1;
    s->in_size = 1;
    for (int d = 1; d < x->ndim; d++) {
        s->in_shape[d - 1] = x->shape[d];
        s->in_size *= (size_t)x->shape[d];
    }
    if (s->in_size == 0) return hs_error("inputs %s have no values per sample", inputs_path);
    return check_finite(x, s->in_size, inputs_path, "inputs");
}

/* The targets' checks (against the inputs x) and the source's target description. */
static int raw_targets(SampleSource *s, const NpyRaw *x, const NpyRaw *y, const char *inputs_path,
                       const char *targets_path) {
    if (y->ndim < 1 || y->shape[0] != x->shape[0]) {
        char xs[160], ys[160];
        shape_text(x->ndim, x->shape, -1, xs, sizeof xs);
        shape_text(y->ndim, y->shape, -1, ys, sizeof ys);
        return hs_error("targets %s have shape %s but the inputs %s have shape %s: they must hold the same number "
                        "of samples (first dimension)",
                        targets_path, ys, inputs_path, xs);
    }
    if (y->dtype == NPY_I32 || y->dtype == NPY_I64) {
        if (y->ndim != 1) {
            char ys[160];
            shape_text(y->ndim, y->shape, -1, ys, sizeof ys);
            return hs_error("targets %s: integer class labels must have shape (N,), found %s", targets_path, ys);
        }
        s->target_kind = TARGET_LABELS;
        s->target_size = 1;
        int64_t max = -1;
        for (long i = 0; i < s->count; i++) {
            int64_t v = raw_int(y, (size_t)i);
            if (v < 0 || v >= INT32_MAX)
                return hs_error("targets %s: label %lld of sample %ld is %s; class labels must be in [0, %d)",
                                targets_path, (long long)v, i, v < 0 ? "negative" : "too large", INT32_MAX);
            if (v > max) max = v;
        }
        s->num_classes = (int)(max + 1);
        return 0;
    }
    if (y->ndim - 1 > SAMPLES_MAX_DIMS)
        return hs_error("targets %s have %d dimensions; at most %d per sample are supported", targets_path, y->ndim,
                        SAMPLES_MAX_DIMS);
    s->target_kind = TARGET_VALUES;
    s->target_ndim = y->ndim - 1;
    s->target_size = 1;
    for (int d = 1; d < y->ndim; d++) {
        s->target_shape[d - 1] = y->shape[d];
        s->target_size *= (size_t)y->shape[d];
    }
    if (s->target_size == 0) return hs_error("targets %s have no values per sample", targets_path);
    return check_finite(y, s->target_size, targets_path, "targets");
}

/* An empty source that will own an NpyImpl. */
static NpyImpl *raw_source(SampleSource *s, const char *inputs_name, const char *targets_name) {
    memset(s, 0, sizeof *s);
    NpyImpl *impl = hs_calloc(1, sizeof *impl);
    if (!impl) return NULL;
    s->impl = impl;
    s->free = npy_source_free;
    s->unit = "samples";
    s->fill = npy_fill;
    snprintf(s->inputs_name, sizeof s->inputs_name, "%s", inputs_name);
    snprintf(s->targets_name, sizeof s->targets_name, "%s", targets_name);
    return impl;
}

int samples_from_npy(const char *inputs_path, const char *targets_path, SampleSource *s) {
    NpyImpl *impl = raw_source(s, inputs_path, targets_path);
    if (!impl) return -1;
    if (npy_read_raw(inputs_path, &impl->x) != 0) {
        hs_error_context("inputs: ");
        goto fail;
    }
    if (raw_inputs(s, &impl->x, inputs_path) != 0) goto fail;
    if (npy_read_raw(targets_path, &impl->y) != 0) {
        hs_error_context("targets: ");
        goto fail;
    }
    if (raw_targets(s, &impl->x, &impl->y, inputs_path, targets_path) != 0) goto fail;
    return 0;
fail:
    samples_free(s);
    return -1;
}

/* A copy of an array in memory as an NpyRaw (ndim <= NPY_MAX_DIMS, checked by the caller). */
static int raw_copy(const void *data, NpyDtype dtype, int ndim, const int64_t *shape, const char *what, NpyRaw *out) {
    memset(out, 0, sizeof *out);
    out->ndim = ndim;
    out->dtype = dtype;
    out->word_size = dtype == NPY_F32 || dtype == NPY_I32 ? 4 : 8;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return hs_error("%s: dimension %d is negative (%lld)", what, d, (long long)shape[d]);
        if (shape[d] > 0 && numel > INT64_MAX / 8 / shape[d]) return hs_error("%s: the shape is too large", what);
        out->shape[d] = shape[d];
        numel *= shape[d];
    }
    out->numel = numel;
    if (numel > 0 && !data) return hs_error("%s: no data (NULL)", what);
    out->data = hs_malloc((size_t)numel * (size_t)out->word_size);
    if (!out->data) return -1;
    if (numel > 0) memcpy(out->data, data, (size_t)numel * (size_t)out->word_size);
    return 0;
}

int samples_from_arrays(const void *x, NpyDtype x_dtype, int x_ndim, const int64_t *x_shape, const void *y,
                        NpyDtype y_dtype, int y_ndim, const int64_t *y_shape, SampleSource *s) {
    const char *xn = "(array)", *yn = "(array)";
    NpyImpl *impl = raw_source(s, "the inputs array", "the targets array");
    if (!impl) return -1;
    if (x_ndim < 2 || x_ndim > 1 + SAMPLES_MAX_DIMS || !x_shape) {
        hs_error("inputs %s have %d dimensions; expected (N, ...) with 1 to %d dimensions per sample", xn, x_ndim,
                 SAMPLES_MAX_DIMS);
        goto fail;
    }
    if (y_ndim < 1 || y_ndim > 1 + SAMPLES_MAX_DIMS || !y_shape) {
        hs_error("targets %s have %d dimensions; expected (N,) labels or (N, ...) values with at most %d dimensions "
                 "per sample",
                 yn, y_ndim, SAMPLES_MAX_DIMS);
        goto fail;
    }
    if (raw_copy(x, x_dtype, x_ndim, x_shape, "inputs", &impl->x) != 0 || raw_inputs(s, &impl->x, xn) != 0 ||
        raw_copy(y, y_dtype, y_ndim, y_shape, "targets", &impl->y) != 0 ||
        raw_targets(s, &impl->x, &impl->y, xn, yn) != 0)
        goto fail;
    return 0;
fail:
    samples_free(s);
    return -1;
}

/* ---------------------------------------------------------------------------------------------------------
 * Loader. position == -1 means "the next call starts a new epoch". */

int sample_loader_init(SampleLoader *ld, const SampleSource *src, int offset, int count, int batch, int shuffle,
                       int augment, uint64_t seed) {
    memset(ld, 0, sizeof *ld);
    if (!src || !src->fill) return hs_error("sample loader: no data");
    if (offset < 0 || count <= 0 || (long)offset + count > src->count)
        return hs_error("sample loader: selection of %d samples at offset %d does not fit in a data set of %ld "
                        "samples",
                        count, offset, src->count);
    if (batch <= 0) return hs_error("sample loader: batch size must be positive (got %d)", batch);
    if (augment && !src->draw_augment) return hs_error("%s: this data set has no augmentation", src->inputs_name);
    ld->order = hs_malloc(sizeof(int) * (size_t)count);
    ld->indices = hs_malloc(sizeof(int) * (size_t)batch);
    ld->aug = augment ? hs_malloc(sizeof(SampleAug) * (size_t)batch) : NULL;
    if (!ld->order || !ld->indices || (augment && !ld->aug)) {
        sample_loader_free(ld);
        return -1;
    }
    ld->src = src;
    ld->offset = offset;
    ld->count = count;
    ld->batch = batch;
    ld->shuffle = shuffle != 0;
    ld->augment = augment != 0;
    rng_seed(&ld->rng, seed);
    ld->position = -1;
    return 0;
}

void sample_loader_free(SampleLoader *ld) {
    if (!ld) return;
    free(ld->order);
    free(ld->indices);
    free(ld->aug);
    ld->order = ld->indices = NULL;
    ld->aug = NULL;
}

int sample_loader_batches(const SampleLoader *ld) {
    if (ld->batch <= 0) return 0;
    return ld->drop_last ? ld->count / ld->batch : (ld->count + ld->batch - 1) / ld->batch;
}

int sample_loader_next(SampleLoader *ld, void *x, size_t elem_size, void *targets) {
    if (!ld->order || !x) return hs_error("sample loader: not initialised or no output buffer");
    if (ld->position < 0) {
        /* New epoch: the permutation depends only on the rng state, so the same seed repeats the run. */
        for (int i = 0; i < ld->count; i++) ld->order[i] = i;
        if (ld->shuffle) rng_shuffle(&ld->rng, ld->order, ld->count);
        ld->position = 0;
        ld->epoch++;
    }
    int remaining = ld->count - ld->position;
    if (remaining <= 0 || (ld->drop_last && remaining < ld->batch)) {
        ld->position = -1;
        return 0;
    }
    int b = remaining < ld->batch ? remaining : ld->batch;
    for (int i = 0; i < b; i++) ld->indices[i] = ld->offset + ld->order[ld->position + i];
    /* Augmentations are drawn serially in batch order, so the batch does not depend on the thread count. */
    if (ld->augment)
        for (int i = 0; i < b; i++) ld->src->draw_augment(&ld->rng, &ld->aug[i]);
    HS_TRY(ld->src->fill(ld->src, ld->indices, ld->augment ? ld->aug : NULL, b, x, elem_size, targets));
    ld->position += b;
    return b;
}
