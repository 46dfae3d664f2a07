#define _DEFAULT_SOURCE
/* test_resnet.c: the ResNets (built-in tables, src/graph/builtin.c, run by the executor) in float64 on 2 or 4
 * synthetic images (PyTorch comparisons: see
 * test_resnet_golden.c):
 *   parameter counts (torchvision with 10 classes: resnet18 11,181,642, resnet50 23,528,522), names, shapes and
 *   order of the first and last tensors, buffers; default initialisation (kaiming normal fan_out convs, BN 1/0,
 *   PyTorch Linear fc);
 *   resnet18: Hessian-vector products against central differences of the gradient (relative error <= 1e-6)
 *   with batch norm in eval mode (running statistics, 2 images) and in batch mode (batch statistics, 4
 *   images: see main), symmetry v.(Hw) = w.(Hv), batched directions equal single ones, Gauss-Newton products
 *   positive semi-definite; products whose directions touch only late layers (skipped tangents, start_layer)
 *   equal the full product; conv2d's batched small-plane path (every batching) equals the default path;
 *   the gradient in training mode against central differences of the loss (equal to the batch-mode
 *   gradient), num_batches_tracked and running statistics updated, untouched in batch mode; f32 agrees;
 *   checkpoints: round trip with buffers and num_batches_tracked; a checkpoint whose fc has 1000 outputs is
 *   refused with a clear message, or accepted with allow_classifier_swap (fc re-initialised, reported). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/core/rng.h"
#include "../src/curvature/curvature.h"
#include "../src/io/safetensors.h"
#include "check.h"
#include "model_check.h"

/* The float32 library (tests are compiled with HS_F64, so Model's `real` reads as double here: an f32 model's
 * params and buffer_values are really float arrays). */
int model_create_f32(const char *arch, uint64_t seed, Model **out);
void model_free_f32(Model *m);
int curv_loss_grad_f32(Model *m, const SampleSet *set, double *loss, double *accuracy, double *grad);
/* conv2d.c: im2col columns per batched GEMM (default 512), and the plane size from which convolutions use
 * conv2d.c's per-sample GEMMs instead (default 64) */
extern int conv2d_batch_columns_f64, conv2d_batch_below_f64;


/* A random direction with each tensor's entries on the scale of that tensor's values (rms; 0.1 for zero
 * tensors), so that eps * v moves every activation by a comparable, tiny relative amount. */
static void scaled_direction(const Model *m, double *v, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    for (int t = 0; t < m->num_tensors; t++) {
        const TensorInfo *ti = &m->tensors[t];
        double ss = 0;
        for (size_t j = 0; j < ti->numel; j++) ss += m->params[ti->offset + j] * m->params[ti->offset + j];
        double scale = ss > 0 ? sqrt(ss / (double)ti->numel) : 0.1;
        for (size_t j = 0; j < ti->numel; j++) v[ti->offset + j] = scale * rng_normal(&rng);
    }
}



static void check_names(const Model *m, const char *const *first, int nfirst, const char *const *last, int nlast) {
    for (int i = 0; i < nfirst; i++)
        CHECK(strcmp(m->tensors[i].name, first[i]) == 0, "%s tensor %d is '%s', expected '%s'", m->name, i,
              m->tensors[i].name, first[i]);
    for (int i = 0; i < nlast; i++) {
        int t = m->num_tensors - nlast + i;
        CHECK(strcmp(m->tensors[t].name, last[i]) == 0, "%s tensor %d is '%s', expected '%s'", m->name, t,
              m->tensors[t].name, last[i]);
    }
    size_t offset = 0;
    int ordered = 1;
    for (int t = 0; t < m->num_tensors; t++) {
        if (m->tensors[t].offset != offset) ordered = 0;
        if (t > 0 && m->tensors[t].layer < m->tensors[t - 1].layer) ordered = 0;
        offset += m->tensors[t].numel;
    }
    CHECK(ordered && offset == m->num_params, "%s: tensor offsets or layers not in parameter order", m->name);
}

/* Names, shapes, order and initialisation; m: a fresh resnet18. */
static void test_structure(Model *m) {
    {
        CHECK(m->num_params == 11181642, "resnet18 has %zu parameters, expected 11,181,642", m->num_params);
        CHECK(m->num_tensors == 62 && m->num_buffers == 40, "resnet18: %d tensors, %d buffers (expected 62, 40)",
              m->num_tensors, m->num_buffers);
        static const char *const first[] = {"conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight",
                                            "layer1.0.bn1.weight", "layer1.0.bn1.bias", "layer1.0.conv2.weight",
                                            "layer1.0.bn2.weight", "layer1.0.bn2.bias", "layer1.1.conv1.weight"};
        static const char *const last[] = {"layer4.0.downsample.0.weight", "layer4.0.downsample.1.weight",
                                           "layer4.0.downsample.1.bias", "layer4.1.conv1.weight",
                                           "layer4.1.bn1.weight", "layer4.1.bn1.bias", "layer4.1.conv2.weight",
                                           "layer4.1.bn2.weight", "layer4.1.bn2.bias", "fc.weight", "fc.bias"};
        check_names(m, first, 10, last, 11);
        int ds = model_find_tensor_f64(m, "layer2.0.downsample.0.weight");
        CHECK(ds >= 0 && m->tensors[ds].ndim == 4 && m->tensors[ds].shape[0] == 128 && m->tensors[ds].shape[1] == 64 &&
                  m->tensors[ds].shape[2] == 1 && m->tensors[ds].shape[3] == 1,
              "resnet18 layer2.0.downsample.0.weight missing or not [128,64,1,1]");
        CHECK(model_find_tensor_f64(m, "layer1.0.downsample.0.weight") < 0, "resnet18 layer1.0 has no downsample");
        CHECK(strcmp(m->buffers[0].name, "bn1.running_mean") == 0 && strcmp(m->buffers[1].name, "bn1.running_var") == 0 &&
                  strcmp(m->buffers[39].name, "layer4.1.bn2.running_var") == 0,
              "resnet18 buffer names: %s %s ... %s", m->buffers[0].name, m->buffers[1].name, m->buffers[39].name);
        int fc = model_find_tensor_f64(m, "fc.weight");
        CHECK(fc >= 0 && m->tensors[fc].shape[0] == 10 && m->tensors[fc].shape[1] == 512, "resnet18 fc.weight shape");
        /* Default initialisation: conv1 std sqrt(2 / (64*7*7)), BN 1 and 0, running 0 and 1, fc |w| <= 1/sqrt(512). */
        const TensorInfo *c1 = &m->tensors[0];
        double ss = 0, mean = 0;
        for (size_t j = 0; j < c1->numel; j++) mean += m->params[j], ss += m->params[j] * m->params[j];
        mean /= (double)c1->numel;
        double sd = sqrt(ss / (double)c1->numel), want = sqrt(2.0 / (64 * 49));
        CHECK(fabs(sd / want - 1) < 0.05 && fabs(mean) < 0.1 * want, "conv1.weight std %g mean %g, expected std %g",
              sd, mean, want);
        int bad = 0;
        for (size_t j = 0; j < m->tensors[1].numel; j++) bad += m->params[m->tensors[1].offset + j] != 1;
        for (size_t j = 0; j < m->tensors[2].numel; j++) bad += m->params[m->tensors[2].offset + j] != 0;
        for (int b = 0; b < m->num_buffers; b++) {
            double want_b = m->buffers[b].kind == TENSOR_RUNNING_VAR ? 1 : 0;
            for (size_t j = 0; j < m->buffers[b].numel; j++) bad += m->buffer_values[m->buffers[b].offset + j] != want_b;
        }
        double fmax_ = 0;
        for (size_t j = 0; j < m->tensors[fc].numel; j++) fmax_ = fmax(fmax_, fabs(m->params[m->tensors[fc].offset + j]));
        CHECK(bad == 0 && fmax_ <= 1 / sqrt(512.0) && fmax_ > 0.9 / sqrt(512.0), "BN/fc initialisation (%d bad, fc max %g)",
              bad, fmax_);
    }
    m = NULL; /* the caller's resnet18 is not freed here */
    CHECK(model_create_f64("resnet50", 1, &m) == 0, "create resnet50: %s", hs_last_error());
    if (m) {
        CHECK(m->num_params == 23528522, "resnet50 has %zu parameters, expected 23,528,522", m->num_params);
        CHECK(m->num_tensors == 161 && m->num_buffers == 106, "resnet50: %d tensors, %d buffers (expected 161, 106)",
              m->num_tensors, m->num_buffers);
        static const char *const first[] = {"conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight",
                                            "layer1.0.bn1.weight", "layer1.0.bn1.bias", "layer1.0.conv2.weight",
                                            "layer1.0.bn2.weight", "layer1.0.bn2.bias", "layer1.0.conv3.weight",
                                            "layer1.0.bn3.weight", "layer1.0.bn3.bias",
                                            "layer1.0.downsample.0.weight", "layer1.0.downsample.1.weight",
                                            "layer1.0.downsample.1.bias", "layer1.1.conv1.weight"};
        static const char *const last[] = {"layer4.2.conv3.weight", "layer4.2.bn3.weight", "layer4.2.bn3.bias",
                                           "fc.weight", "fc.bias"};
        check_names(m, first, 16, last, 5);
        int t = model_find_tensor_f64(m, "layer3.0.conv2.weight");
        CHECK(t >= 0 && m->tensors[t].shape[0] == 256 && m->tensors[t].shape[1] == 256 && m->tensors[t].shape[2] == 3,
              "resnet50 layer3.0.conv2.weight missing or not [256,256,3,3]");
        int fc = model_find_tensor_f64(m, "fc.weight");
        CHECK(fc >= 0 && m->tensors[fc].shape[1] == 2048, "resnet50 fc.weight [10,2048]");
        CHECK(m->num_layers == 107, "resnet50 has %d layers, expected 53 convs, 53 batch norms and fc", m->num_layers);
        model_free_f64(m);
    }
    m = NULL;
    CHECK(model_create_f64("resnet34", 1, &m) != 0 && strstr(hs_last_error(), "resnet50"),
          "unknown model message: %s", hs_last_error());
}

/* Hessian checks of resnet18 in one batch-norm mode; `late` picks the late-direction case checked (0: layer4.1
 * and fc, 1: a downsample branch), `batched` adds the K = 2 check. */
static void test_hvp(Model *m, const SampleSet *set, const char *mode, int late, int batched) {
    size_t P = m->num_params;
    double *theta = malloc(sizeof(double) * P), *v = malloc(sizeof(double) * P), *w = malloc(sizeof(double) * P);
    double *gp = malloc(sizeof(double) * P), *gm = malloc(sizeof(double) * P), *fd = malloc(sizeof(double) * P);
    double *hv = malloc(sizeof(double) * P), *hw = malloc(sizeof(double) * P);
    double *vw = malloc(sizeof(double) * 2 * P), *hvw = malloc(sizeof(double) * 2 * P);
    memcpy(theta, m->params, sizeof(double) * P);
    scaled_direction(m, v, 21);
    scaled_direction(m, w, 22);
    /* eps 1e-7: with v on the weights' scale, a step of 1e-6 already moves some of the ~10^5 pre-activations
     * across a ReLU kink (then the difference quotient is off by O(1)); 1e-7 leaves a rounding error ~1e-9. */
    double t0 = hs_seconds(), loss, eps = 1e-7;
    CHECK(curv_hvp_f64(m, set, v, 1, CURVATURE_HESSIAN, hv, &loss) == 0, "%s hvp: %s", mode, hs_last_error());
    double t_hvp = hs_seconds() - t0;
    for (size_t i = 0; i < P; i++) m->params[i] = theta[i] + eps * v[i];
    CHECK(curv_loss_grad_f64(m, set, NULL, NULL, gp) == 0, "%s grad+: %s", mode, hs_last_error());
    for (size_t i = 0; i < P; i++) m->params[i] = theta[i] - eps * v[i];
    CHECK(curv_loss_grad_f64(m, set, NULL, NULL, gm) == 0, "%s grad-: %s", mode, hs_last_error());
    memcpy(m->params, theta, sizeof(double) * P);
    for (size_t i = 0; i < P; i++) fd[i] = (gp[i] - gm[i]) / (2 * eps);
    double err = rel_error(hv, fd, P);
    CHECK(err <= 1e-6, "resnet18 %s: HVP vs central differences of gradients: relative error %.3g > 1e-6", mode, err);
    printf("resnet18 %s, %d images: loss %.6f, |Hv| %.4g, HVP vs central differences %.3g (hvp %.2f s)\n", mode,
           set->count, loss, sqrt(dot(hv, hv, P)), err, t_hvp);

    /* Symmetry, and K = 2 equals two single products. */
    if (batched) {
        memcpy(vw, v, sizeof(double) * P);
        memcpy(vw + P, w, sizeof(double) * P);
        CHECK(curv_hvp_f64(m, set, vw, 2, CURVATURE_HESSIAN, hvw, NULL) == 0, "%s hvp K=2: %s", mode, hs_last_error());
        memcpy(hw, hvw + P, sizeof(double) * P);
        CHECK(rel_error(hvw, hv, P) < 1e-12, "resnet18 %s: batched direction 0 differs from the single one (%.3g)",
              mode, rel_error(hvw, hv, P));
    } else {
        CHECK(curv_hvp_f64(m, set, w, 1, CURVATURE_HESSIAN, hw, NULL) == 0, "%s hvp w: %s", mode, hs_last_error());
    }
    double whv = dot(w, hv, P), vhw = dot(v, hw, P);
    CHECK(fabs(whv - vhw) <= 1e-9 * (fabs(whv) + fabs(vhw)) + 1e-14, "resnet18 %s: w.Hv = %.15g, v.Hw = %.15g", mode,
          whv, vhw);

    /* Gauss-Newton: positive semi-definite. */
    for (int s = 0; s < 1; s++) {
        scaled_direction(m, w, 40 + (uint64_t)s);
        CHECK(curv_hvp_f64(m, set, w, 1, CURVATURE_GGN, hw, NULL) == 0, "%s ggn: %s", mode, hs_last_error());
        double q = dot(w, hw, P);
        CHECK(q >= -1e-12 * dot(hw, hw, P), "resnet18 %s: GGN quadratic form negative: %g", mode, q);
    }

    /* Directions in late layers only: skipped tangents and start_layer give the rows of layers >= start of
     * the full product. (a) layer4.1 and fc; (b) layer3.0's downsample only, a branch parallel to layer3.0's
     * convs (their rows are below start, but the gradient must still pass through the block's last unit). */
    const char *starts[2] = {"layer4.1.conv1.weight", "layer3.0.downsample.0.weight"};
    for (int c = late; c == late; c++) {
        int t0i = model_find_tensor_f64(m, starts[c]);
        if (t0i < 0) {
            CHECK(0, "missing tensor %s", starts[c]);
            continue;
        }
        int layer = m->tensors[t0i].layer;
        memset(w, 0, sizeof(double) * P);
        for (int t = t0i; t < m->num_tensors; t++) {
            if (c == 1 && m->tensors[t].layer != layer) break;
            for (size_t j = 0; j < m->tensors[t].numel; j++) w[m->tensors[t].offset + j] = v[m->tensors[t].offset + j];
        }
        /* the full product through curv_hvp (start 0, every tangent propagated from the first layer) */
        CHECK(curv_hvp_f64(m, set, w, 1, CURVATURE_HESSIAN, hw, NULL) == 0, "%s hvp late: %s", mode, hs_last_error());
        /* one chunk with start_layer, as curv_exact runs it */
        int n = set->count;
        double *x = malloc(sizeof(double) * (size_t)n * m->in_size), *g = calloc(P, sizeof(double));
        double *hs_ = calloc(P, sizeof(double));
        int32_t *y = malloc(sizeof(int32_t) * (size_t)n);
        CHECK(samples_fill_f64(set->source, set->indices, n, x, y) == 0, "fill: %s", hs_last_error());
        double part;
        int rc = model_forward_f64(m, x, n);
        if (rc == 0) rc = model_loss_f64(m, y, 1.0 / n, &part, NULL);
        if (rc == 0) rc = model_backward_f64(m, y, 1.0 / n, g);
        if (rc == 0) rc = model_hvp_chunk_f64(m, w, 1, layer, CURVATURE_HESSIAN, hs_);
        CHECK(rc == 0, "%s hvp chunk with start layer: %s", mode, hs_last_error());
        size_t from = m->tensors[t0i].offset;
        double e = rel_error(hs_ + from, hw + from, P - from);
        CHECK(e < 1e-12, "resnet18 %s: product from %s (start layer %d) differs from the full one by %.3g", mode,
              starts[c], layer, e);
        free(x), free(g), free(hs_), free(y);
    }
    free(theta), free(v), free(w), free(gp), free(gm), free(fd), free(hv), free(hw), free(vw), free(hvw);
}

static void test_training_mode(Model *m, const SampleSet *set) {
    size_t P = m->num_params;
    double *theta = malloc(sizeof(double) * P), *v = malloc(sizeof(double) * P), *g = malloc(sizeof(double) * P);
    double *gb = malloc(sizeof(double) * P);
    memcpy(theta, m->params, sizeof(double) * P);
    double *rb = malloc(sizeof(double) * (m->num_buffer_values + 1));
    memcpy(rb, m->buffer_values, sizeof(double) * m->num_buffer_values);
    int64_t tracked0 = m->batches_tracked;
    /* training mode: batch statistics, running statistics updated */
    m->training = 1;
    double loss, lp, lm, eps = 1e-7;
    CHECK(curv_loss_grad_f64(m, set, &loss, NULL, g) == 0, "train grad: %s", hs_last_error());
    CHECK(m->batches_tracked == tracked0 + 1, "num_batches_tracked %lld after one training forward (was %lld)",
          (long long)m->batches_tracked, (long long)tracked0);
    double moved = 0;
    for (size_t i = 0; i < m->num_buffer_values; i++) moved = fmax(moved, fabs(m->buffer_values[i] - rb[i]));
    CHECK(moved > 1e-3, "training forward did not update the running statistics");
    scaled_direction(m, v, 31);
    for (size_t i = 0; i < P; i++) m->params[i] = theta[i] + eps * v[i];
    CHECK(curv_loss_grad_f64(m, set, &lp, NULL, NULL) == 0, "train loss+: %s", hs_last_error());
    for (size_t i = 0; i < P; i++) m->params[i] = theta[i] - eps * v[i];
    CHECK(curv_loss_grad_f64(m, set, &lm, NULL, NULL) == 0, "train loss-: %s", hs_last_error());
    memcpy(m->params, theta, sizeof(double) * P);
    double dd = (lp - lm) / (2 * eps), gv = dot(g, v, P);
    CHECK(fabs(gv - dd) <= 1e-6 * fabs(dd) + 1e-12, "train-mode gradient: g.v = %.12g, central difference %.12g", gv,
          dd);
    printf("resnet18 train mode: loss %.6f, g.v %.10g vs central difference %.10g\n", loss, gv, dd);
    /* batch mode (no update) differentiates the same function */
    m->training = 0;
    m->bn_mode = BN_BATCH;
    memcpy(rb, m->buffer_values, sizeof(double) * m->num_buffer_values);
    int64_t tracked1 = m->batches_tracked;
    CHECK(curv_loss_grad_f64(m, set, NULL, NULL, gb) == 0, "batch grad: %s", hs_last_error());
    CHECK(memcmp(g, gb, sizeof(double) * P) == 0, "train-mode and batch-mode gradients differ");
    CHECK(memcmp(rb, m->buffer_values, sizeof(double) * m->num_buffer_values) == 0 && m->batches_tracked == tracked1,
          "batch mode changed the running statistics");
    m->bn_mode = BN_EVAL;
    free(theta), free(v), free(g), free(gb), free(rb);
}

static void test_checkpoints(Model *m) {
    char dir[] = "/tmp/hessian_test_resnet_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256], bad_path[256];
    snprintf(path, sizeof path, "%s/resnet18.safetensors", dir);
    snprintf(bad_path, sizeof bad_path, "%s/fc1000.safetensors", dir);
    CHECK(m->batches_tracked > 0, "the model should have trained batches here");
    CHECK(model_save_f64(m, path, NULL, NULL, 0) == 0, "save: %s", hs_last_error());
    Model *m2 = NULL;
    CHECK(model_create_f64("resnet18", 77, &m2) == 0, "create: %s", hs_last_error());
    if (!m2) return;
    CHECK(model_load_f64(m2, path, 0, NULL, 0) == 0, "load: %s", hs_last_error());
    CHECK(memcmp(m2->params, m->params, sizeof(double) * m->num_params) == 0, "round trip changed parameters");
    CHECK(memcmp(m2->buffer_values, m->buffer_values, sizeof(double) * m->num_buffer_values) == 0,
          "round trip changed running statistics");
    CHECK(m2->batches_tracked == m->batches_tracked, "num_batches_tracked %lld after loading, saved %lld",
          (long long)m2->batches_tracked, (long long)m->batches_tracked);
    SafeTensors st;
    if (safetensors_read(path, &st) == 0) {
        const StTensor *t = safetensors_find(&st, "layer3.1.bn2.num_batches_tracked");
        const StTensor *r = safetensors_find(&st, "layer2.0.downsample.1.running_var");
        CHECK(t && t->dtype == ST_I64 && t->ndim == 0, "num_batches_tracked saved as an int64 scalar");
        CHECK(r && r->ndim == 1 && r->shape[0] == 128, "layer2.0.downsample.1.running_var saved");
        CHECK(st.count == 122, "resnet18 checkpoint has %d tensors, torchvision's state_dict 122", st.count);
        safetensors_free(&st);
    } else {
        CHECK(0, "read back: %s", hs_last_error());
    }

    /* An ImageNet-shaped classifier: fc [1000, 512]. */
    int nt = m->num_tensors, nb = m->num_buffers;
    StWriteTensor *w = calloc((size_t)(nt + nb), sizeof *w);
    double *fc_w = calloc(1000 * 512, sizeof(double)), *fc_b = calloc(1000, sizeof(double));
    for (int i = 0; i < nt; i++) {
        const TensorInfo *ti = &m->tensors[i];
        w[i] = (StWriteTensor){ti->name, ST_F64, ti->ndim, {0}, m->params + ti->offset};
        memcpy(w[i].shape, ti->shape, sizeof(int64_t) * (size_t)ti->ndim);
    }
    for (int i = 0; i < nb; i++) {
        const TensorInfo *ti = &m->buffers[i];
        w[nt + i] = (StWriteTensor){ti->name, ST_F64, ti->ndim, {0}, m->buffer_values + ti->offset};
        memcpy(w[nt + i].shape, ti->shape, sizeof(int64_t) * (size_t)ti->ndim);
    }
    w[nt - 2].shape[0] = 1000, w[nt - 2].data = fc_w;
    w[nt - 1].shape[0] = 1000, w[nt - 1].data = fc_b;
    CHECK(safetensors_write(bad_path, w, nt + nb, NULL, NULL, 0) == 0, "write fc1000: %s", hs_last_error());
    Model *m3 = NULL;
    CHECK(model_create_f64("resnet18", 5, &m3) == 0, "create: %s", hs_last_error());
    if (m3) {
        double *fresh = malloc(sizeof(double) * m3->num_params);
        memcpy(fresh, m3->params, sizeof(double) * m3->num_params);
        CHECK(model_load_f64(m3, bad_path, 0, NULL, 0) != 0 && strstr(hs_last_error(), "fc.weight") &&
                  strstr(hs_last_error(), "1000"),
              "a 1000-class fc was accepted, or the message is unclear: %s", hs_last_error());
        printf("fc [1000,512] without classifier swap: %s\n", hs_last_error());
        CHECK(memcmp(fresh, m3->params, sizeof(double) * m3->num_params) == 0, "a failed load changed parameters");
        char note[512];
        CHECK(model_load_f64(m3, bad_path, 1, note, sizeof note) == 0, "load with classifier swap: %s",
              hs_last_error());
        CHECK(strstr(note, "classifier") && strstr(note, "'fc'") && strstr(note, "10 outputs"), "classifier swap not reported: '%s'", note);
        size_t fc_off = m->tensors[nt - 2].offset;
        CHECK(memcmp(m3->params, m->params, sizeof(double) * fc_off) == 0, "swap load: backbone not loaded");
        CHECK(memcmp(m3->params + fc_off, fresh + fc_off, sizeof(double) * (m3->num_params - fc_off)) == 0,
              "swap load: fc is not the fresh initialisation");
        CHECK(memcmp(m3->buffer_values, m->buffer_values, sizeof(double) * m->num_buffer_values) == 0,
              "swap load: running statistics not loaded");
        printf("fc [1000,512] with classifier swap: %s\n", note);
        free(fresh);
        model_free_f64(m3);
    }
    free(w), free(fc_w), free(fc_b);
    model_free_f64(m2);
    unlink(path);
    unlink(bad_path);
    rmdir(dir);
}

int main(void) {
    double t0 = hs_seconds();

    /* Eval mode on 2 images. Batch statistics on 2 images are near-singular in layer4 (1x1 planes: M = 2
     * values per channel, xhat = +-d/sqrt(d^2 + eps) with d half the difference of the two values): there the
     * Hessian reaches ~1e11 (PyTorch's double backward agrees to 2e-9) and central differences cannot resolve
     * it at any step. Batch mode and training mode therefore use 4 images. */
    Cifar10 data = synthetic_data(4, 5);
    int idx[4] = {0, 1, 2, 3};
    SampleSource src;
    CHECK(samples_wrap_cifar10(&data, "synthetic", &src) == 0, "source: %s", hs_last_error());
    SampleSet set = {&src, idx, 2, 2, 0}, set4 = {&src, idx, 4, 4, 0};
    Model *m = NULL;
    CHECK(model_create_f64("resnet18", 3, &m) == 0, "create: %s", hs_last_error());
    if (!m) return check_summary("test_resnet");
    test_structure(m);
    /* running statistics of a trained network: a few training-mode passes on the two images */
    m->training = 1;
    for (int i = 0; i < 3; i++) curv_loss_grad_f64(m, &set, NULL, NULL, NULL);
    m->training = 0;

    m->bn_mode = BN_EVAL;
    test_hvp(m, &set, "eval BN", 0, 1);
    m->bn_mode = BN_BATCH;
    test_hvp(m, &set4, "batch BN", 1, 0);
    /* conv2d.c's batched small-plane path for every layer, in batches of 3 samples where planes are 1x1 and of
     * 1 elsewhere (4 images: a batch of 3 and one of 1), gives the same gradient and product as the default
     * (per-sample GEMMs for the stem and layer1, batches of all 4 samples after), up to rounding. */
    {
        size_t P = m->num_params;
        double *v = malloc(sizeof(double) * P), *g1 = malloc(sizeof(double) * P), *g2 = malloc(sizeof(double) * P);
        double *h1 = malloc(sizeof(double) * P), *h2 = malloc(sizeof(double) * P);
        scaled_direction(m, v, 51);
        int saved = conv2d_batch_columns_f64;
        CHECK(curv_loss_grad_f64(m, &set4, NULL, NULL, g1) == 0 &&
                  curv_hvp_f64(m, &set4, v, 1, CURVATURE_HESSIAN, h1, NULL) == 0,
              "grouping reference: %s", hs_last_error());
        conv2d_batch_columns_f64 = 3;
        conv2d_batch_below_f64 = 1 << 30;
        CHECK(curv_loss_grad_f64(m, &set4, NULL, NULL, g2) == 0 &&
                  curv_hvp_f64(m, &set4, v, 1, CURVATURE_HESSIAN, h2, NULL) == 0,
              "small groups: %s", hs_last_error());
        conv2d_batch_columns_f64 = saved;
        conv2d_batch_below_f64 = 64;
        CHECK(rel_error(g2, g1, P) < 1e-11 && rel_error(h2, h1, P) < 1e-11,
              "conv grouping changes the gradient (%.3g) or the product (%.3g)", rel_error(g2, g1, P),
              rel_error(h2, h1, P));
        free(v), free(g1), free(g2), free(h1), free(h2);
    }
    m->bn_mode = BN_EVAL;
    test_training_mode(m, &set4);
    test_checkpoints(m);

    /* f32 agrees with f64 (eval mode). */
    Model *m32 = NULL;
    CHECK(model_create_f32("resnet18", 3, &m32) == 0, "create f32: %s", hs_last_error());
    if (m32) {
        float *p32 = (float *)(void *)m32->params, *b32 = (float *)(void *)m32->buffer_values;
        for (size_t i = 0; i < m->num_params; i++) p32[i] = (float)m->params[i];
        for (size_t i = 0; i < m->num_buffer_values; i++) b32[i] = (float)m->buffer_values[i];
        double l64, l32;
        CHECK(curv_loss_grad_f64(m, &set, &l64, NULL, NULL) == 0, "f64 loss: %s", hs_last_error());
        CHECK(curv_loss_grad_f32(m32, &set, &l32, NULL, NULL) == 0, "f32 loss: %s", hs_last_error());
        CHECK(fabs(l32 - l64) <= 1e-5 * fabs(l64), "f32 loss %.9g vs f64 %.9g", l32, l64);
        model_free_f32(m32);
    }
    model_free_f64(m);
    samples_free(&src);
    cifar10_free(&data);
    printf("test_resnet: %.1f s\n", hs_seconds() - t0);
    return check_summary("test_resnet");
}
