/* test_samples.c: sample sources (src/data/samples.c) and their checks against a model:
 *   an .npy source holding CIFAR-10 images normalised as cifar10_image_* does (float32 and float64 files,
 *   int32 and int64 labels) fills the same bits as the CIFAR-10 source, in both precisions;
 *   the loader refuses a selection past the end (its batches are tested in test_cifar10.c);
 *   .npy sources refuse fortran order, integer inputs, a sample-count mismatch, NaN/Inf (naming the sample),
 *   negative labels, labels of more than one dimension; shapes and class counts are read right;
 *   curv_check_source names both shapes on a mismatch and refuses targets that do not suit the loss. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/curvature/curvature.h"
#include "../src/data/samples.h"
#include "../src/io/npy.h"
#include "check.h"
#include "model_check.h"
#include "temp_dir.h"

/* A version 1.0 .npy file with this header dict and data. */
static void write_npy(const char *path, const char *dict, const void *data, size_t n) {
    size_t dl = strlen(dict), hl = (10 + dl + 1 + 63) / 64 * 64 - 10;
    FILE *f = fopen(path, "wb");
    if (!f) return;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xFF), (unsigned char)(hl >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(dict, 1, dl, f);
    for (size_t i = dl; i + 1 < hl; i++) fputc(' ', f);
    fputc('\n', f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void write_dict(const char *path, const char *descr, const char *shape, const void *data, size_t n) {
    char dict[256];
    snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    write_npy(path, dict, data, n);
}

enum { N = 20 };

static void test_cifar_equivalence(const Cifar10 *data) {
    SampleSource cif;
    CHECK(samples_wrap_cifar10(data, "synthetic", &cif) == 0, "wrap: %s", hs_last_error());
    float *x32 = malloc(sizeof(float) * N * CIFAR10_PIXELS);
    double *x64 = malloc(sizeof(double) * N * CIFAR10_PIXELS);
    int32_t l32[N];
    int64_t l64[N];
    for (int i = 0; i < N; i++) {
        cifar10_image_f32(data, i, 4, 4, 0, x32 + (size_t)i * CIFAR10_PIXELS);
        cifar10_image_f64(data, i, 4, 4, 0, x64 + (size_t)i * CIFAR10_PIXELS);
        l32[i] = data->labels[i];
        l64[i] = data->labels[i];
    }
    char shape[64];
    snprintf(shape, sizeof shape, "(%d, 3, 32, 32)", N);
    write_dict(temp_path("x32.npy"), "<f4", shape, x32, sizeof(float) * N * CIFAR10_PIXELS);
    write_dict(temp_path("x64.npy"), "<f8", shape, x64, sizeof(double) * N * CIFAR10_PIXELS);
    snprintf(shape, sizeof shape, "(%d,)", N);
    write_dict(temp_path("l32.npy"), "<i4", shape, l32, sizeof l32);
    write_dict(temp_path("l64.npy"), "<i8", shape, l64, sizeof l64);

    int idx[7] = {3, 0, 19, 7, 7, 12, 1};
    float *a32 = malloc(sizeof(float) * 7 * CIFAR10_PIXELS), *b32 = malloc(sizeof(float) * 7 * CIFAR10_PIXELS);
    double *a64 = malloc(sizeof(double) * 7 * CIFAR10_PIXELS), *b64 = malloc(sizeof(double) * 7 * CIFAR10_PIXELS);
    int32_t ya[7], yb[7];
    CHECK(cif.fill(&cif, idx, NULL, 7, a32, 4, ya) == 0, "cifar fill f32");
    CHECK(cif.fill(&cif, idx, NULL, 7, a64, 8, ya) == 0, "cifar fill f64");

    SampleSource s;
    CHECK(samples_from_npy(temp_path("x32.npy"), temp_path("l64.npy"), &s) == 0, "npy f32/i64: %s", hs_last_error());
    CHECK(s.count == N && s.in_ndim == 3 && s.in_shape[0] == 3 && s.in_shape[2] == 32 && s.in_size == 3072 &&
              s.target_kind == TARGET_LABELS && s.target_size == 1 && !s.draw_augment,
          "npy source shape");
    int max = 0;
    for (int i = 0; i < N; i++) max = l32[i] > max ? l32[i] : max;
    CHECK(s.num_classes == max + 1, "num_classes %d, max label %d", s.num_classes, max);
    CHECK(s.fill(&s, idx, NULL, 7, b32, 4, yb) == 0, "npy fill f32: %s", hs_last_error());
    CHECK(memcmp(a32, b32, sizeof(float) * 7 * CIFAR10_PIXELS) == 0 && memcmp(ya, yb, sizeof ya) == 0,
          "float32 .npy images and int64 labels fill the CIFAR-10 source's bits");
    SampleAug aug[7] = {{4, 4, 0}};
    CHECK(s.fill(&s, idx, aug, 7, b32, 4, yb) != 0 && strstr(hs_last_error(), "never augmented"),
          "augmentation refused: %s", hs_last_error());
    int bad_idx[1] = {N};
    CHECK(s.fill(&s, bad_idx, NULL, 1, b32, 4, yb) != 0, "index out of range refused");
    CHECK(s.fill(&s, idx, NULL, 7, b32, 2, yb) != 0 && strstr(hs_last_error(), "elem_size"), "bad elem_size");
    samples_free(&s);

    CHECK(samples_from_npy(temp_path("x64.npy"), temp_path("l32.npy"), &s) == 0, "npy f64/i32: %s", hs_last_error());
    memset(yb, 0, sizeof yb);
    CHECK(s.fill(&s, idx, NULL, 7, b64, 8, yb) == 0, "npy fill f64");
    CHECK(memcmp(a64, b64, sizeof(double) * 7 * CIFAR10_PIXELS) == 0 && memcmp(ya, yb, sizeof ya) == 0,
          "float64 .npy images and int32 labels fill the CIFAR-10 source's bits");
    /* float64 file into float: rounded to nearest */
    CHECK(s.fill(&s, idx, NULL, 7, b32, 4, NULL) == 0, "npy fill f64 -> f32 without targets");
    int same = 1;
    for (size_t i = 0; i < 7 * CIFAR10_PIXELS; i++) same &= b32[i] == (float)a64[i];
    CHECK(same, "float64 data filled as float32 is rounded to nearest");
    samples_free(&s);
    samples_free(&cif);
    free(x32);
    free(x64);
    free(a32);
    free(b32);
    free(a64);
    free(b64);
}

/* The loader refuses a selection past the end of its source (its batches: test_cifar10.c). */
static void test_loader(const Cifar10 *data) {
    SampleSource cif;
    CHECK(samples_wrap_cifar10(data, "synthetic", &cif) == 0, "wrap");
    SampleLoader ld;
    CHECK(sample_loader_init(&ld, &cif, 15, 10, 4, 1, 0, 1) != 0 && strstr(hs_last_error(), "does not fit"),
          "selection past the end refused");
    samples_free(&cif);
}

static void test_npy_source(void) {
    SampleSource s;
    /* a small regression set: X (5, 2) float64, Y (5, 2, 3) float32 */
    double x[10];
    float y[30];
    for (int i = 0; i < 10; i++) x[i] = 0.5 * i - 1;
    for (int i = 0; i < 30; i++) y[i] = (float)i / 7;
    write_dict(temp_path("rx.npy"), "<f8", "(5, 2)", x, sizeof x);
    write_dict(temp_path("ry.npy"), "<f4", "(5, 2, 3)", y, sizeof y);
    CHECK(samples_from_npy(temp_path("rx.npy"), temp_path("ry.npy"), &s) == 0, "regression set: %s", hs_last_error());
    CHECK(s.in_ndim == 1 && s.in_size == 2 && s.target_kind == TARGET_VALUES && s.target_size == 6 &&
              s.target_ndim == 2 && s.num_classes == 0,
          "regression shapes");
    char text[64];
    samples_shape_text(&s, s.count, text, sizeof text);
    CHECK(strcmp(text, "(5,2)") == 0, "shape text %s", text);
    samples_target_shape_text(&s, text, sizeof text);
    CHECK(strcmp(text, "(5,2,3)") == 0, "target shape text %s", text);
    int idx[2] = {4, 1};
    double xo[4], yo[12];
    CHECK(s.fill(&s, idx, NULL, 2, xo, 8, yo) == 0, "fill");
    CHECK(xo[0] == x[8] && xo[3] == x[3] && yo[0] == (double)y[24] && yo[11] == (double)y[11], "values in order");
    /* a loader over it: shuffled, never augmented, every sample once per epoch */
    SampleLoader ld;
    CHECK(sample_loader_init(&ld, &s, 0, 5, 2, 1, 1, 3) != 0 && strstr(hs_last_error(), "no augmentation"),
          "augmentation refused for .npy data");
    CHECK(sample_loader_init(&ld, &s, 0, 5, 2, 1, 0, 3) == 0, "loader");
    double seen = 0;
    int n, total = 0;
    while ((n = sample_loader_next(&ld, xo, 8, yo)) > 0) {
        for (int i = 0; i < n; i++) seen += xo[2 * i] + xo[2 * i + 1];
        total += n;
    }
    double want = 0;
    for (int i = 0; i < 10; i++) want += x[i];
    CHECK(total == 5 && seen == want, "one epoch covers every sample once (%d samples)", total);
    sample_loader_free(&ld);
    samples_free(&s);

    /* refusals */
    char X[512]; /* temp_path's buffers rotate */
    snprintf(X, sizeof X, "%s", temp_path("rx.npy"));
    write_npy(temp_path("fo.npy"), "{'descr': '<f8', 'fortran_order': True, 'shape': (5, 2), }", x, sizeof x);
    CHECK(samples_from_npy(temp_path("fo.npy"), temp_path("ry.npy"), &s) != 0 &&
              strstr(hs_last_error(), "fortran_order") && strstr(hs_last_error(), "fo.npy"),
          "fortran order: %s", hs_last_error());
    int32_t xi[10] = {0};
    write_dict(temp_path("xi.npy"), "<i4", "(5, 2)", xi, sizeof xi);
    CHECK(samples_from_npy(temp_path("xi.npy"), temp_path("ry.npy"), &s) != 0 && strstr(hs_last_error(), "int32") &&
              strstr(hs_last_error(), "float32 or float64"),
          "integer inputs: %s", hs_last_error());
    write_dict(temp_path("x1.npy"), "<f8", "(10,)", x, sizeof x);
    CHECK(samples_from_npy(temp_path("x1.npy"), temp_path("ry.npy"), &s) != 0 && strstr(hs_last_error(), "(N, 1)"),
          "1-D inputs: %s", hs_last_error());
    write_dict(temp_path("y4.npy"), "<f4", "(4, 6)", y, sizeof(float) * 24);
    CHECK(samples_from_npy(X, temp_path("y4.npy"), &s) != 0 && strstr(hs_last_error(), "same number of samples") &&
              strstr(hs_last_error(), "(4,6)") && strstr(hs_last_error(), "(5,2)"),
          "N mismatch: %s", hs_last_error());
    double xn[10];
    memcpy(xn, x, sizeof x);
    xn[7] = NAN;
    write_dict(temp_path("xn.npy"), "<f8", "(5, 2)", xn, sizeof xn);
    CHECK(samples_from_npy(temp_path("xn.npy"), temp_path("ry.npy"), &s) != 0 && strstr(hs_last_error(), "NaN") &&
              strstr(hs_last_error(), "sample 3 (element 1"),
          "NaN in X names the sample: %s", hs_last_error());
    float yn[30];
    memcpy(yn, y, sizeof y);
    yn[13] = INFINITY;
    write_dict(temp_path("yn.npy"), "<f4", "(5, 6)", yn, sizeof yn);
    CHECK(samples_from_npy(X, temp_path("yn.npy"), &s) != 0 && strstr(hs_last_error(), "infinite") &&
              strstr(hs_last_error(), "sample 2 (element 1"),
          "Inf in Y names the sample: %s", hs_last_error());
    int64_t lab[5] = {0, 3, -1, 2, 1};
    write_dict(temp_path("neg.npy"), "<i8", "(5,)", lab, sizeof lab);
    CHECK(samples_from_npy(X, temp_path("neg.npy"), &s) != 0 && strstr(hs_last_error(), "sample 2 is negative"),
          "negative label: %s", hs_last_error());
    int32_t lab2[10] = {0};
    write_dict(temp_path("l2.npy"), "<i4", "(5, 2)", lab2, sizeof lab2);
    CHECK(samples_from_npy(X, temp_path("l2.npy"), &s) != 0 && strstr(hs_last_error(), "shape (N,)"),
          "2-D labels: %s", hs_last_error());
    write_dict(temp_path("u8.npy"), "|u1", "(5,)", lab2, 5);
    CHECK(samples_from_npy(X, temp_path("u8.npy"), &s) != 0 && strstr(hs_last_error(), "unsupported dtype '|u1'") &&
              strstr(hs_last_error(), "targets"),
          "uint8 labels: %s", hs_last_error());
    CHECK(samples_from_npy(X, temp_path("missing.npy"), &s) != 0 && strstr(hs_last_error(), "missing.npy"),
          "missing targets file: %s", hs_last_error());
}

/* A source of n samples of shape `shape` and the given targets, written to files. */
static int make_source(const char *shape, size_t in_size, int n, const char *ydescr, const char *yshape,
                       const void *ydata, size_t ybytes, SampleSource *s) {
    double *x = calloc((size_t)n * in_size, sizeof(double));
    write_dict(temp_path("cx.npy"), "<f8", shape, x, sizeof(double) * (size_t)n * in_size);
    write_dict(temp_path("cy.npy"), ydescr, yshape, ydata, ybytes);
    free(x);
    return samples_from_npy(temp_path("cx.npy"), temp_path("cy.npy"), s);
}

static void test_check_source(void) {
    Model *m;
    if (model_create_f64("cnn", 1, &m) != 0) {
        CHECK(0, "create: %s", hs_last_error());
        return;
    }
    SampleSource s;
    int32_t labels[4] = {0, 9, 3, 1};
    CHECK(make_source("(4, 1, 28, 28)", 784, 4, "<i4", "(4,)", labels, sizeof labels, &s) == 0, "mnist-like source");
    CHECK(curv_check_source_f64(m, &s) != 0 && strstr(hs_last_error(), "have shape (4,1,28,28) but the model cnn takes "
                                                                       "(3,32,32)"),
          "shape mismatch: %s", hs_last_error());
    int idx[1] = {0};
    SampleSet set = {&s, idx, 1, 0, 0};
    double loss;
    CHECK(curv_loss_grad_f64(m, &set, &loss, NULL, NULL) != 0 && strstr(hs_last_error(), "(3,32,32)"),
          "curv_loss_grad checks first: %s", hs_last_error());
    samples_free(&s);

    CHECK(make_source("(4, 3, 32, 32)", 3072, 4, "<i4", "(4,)", labels, sizeof labels, &s) == 0, "cifar-like source");
    CHECK(curv_check_source_f64(m, &s) == 0, "labels 0..9 fit the cnn: %s", hs_last_error());
    m->loss = LOSS_MSE;
    CHECK(curv_check_source_f64(m, &s) != 0 && strstr(hs_last_error(), "mse loss needs real targets"),
          "mse with labels: %s", hs_last_error());
    m->loss = LOSS_CROSS_ENTROPY;
    samples_free(&s);
    int32_t big[4] = {0, 11, 3, 1};
    CHECK(make_source("(4, 3, 32, 32)", 3072, 4, "<i4", "(4,)", big, sizeof big, &s) == 0, "source");
    CHECK(curv_check_source_f64(m, &s) != 0 && strstr(hs_last_error(), "labels up to 11") &&
              strstr(hs_last_error(), "10 outputs"),
          "labels beyond the outputs: %s", hs_last_error());
    samples_free(&s);
    double t[40] = {0};
    CHECK(make_source("(4, 3, 32, 32)", 3072, 4, "<f8", "(4, 10)", t, sizeof t, &s) == 0, "value source");
    CHECK(curv_check_source_f64(m, &s) != 0 && strstr(hs_last_error(), "cross-entropy loss needs integer class labels"),
          "cross-entropy with real targets: %s", hs_last_error());
    m->loss = LOSS_MSE;
    CHECK(curv_check_source_f64(m, &s) == 0, "mse with (N,10) targets: %s", hs_last_error());
    samples_free(&s);
    CHECK(make_source("(4, 3, 32, 32)", 3072, 4, "<f8", "(4, 5)", t, sizeof(double) * 20, &s) == 0, "source");
    CHECK(curv_check_source_f64(m, &s) != 0 && strstr(hs_last_error(), "5 values per sample") &&
              strstr(hs_last_error(), "10 outputs"),
          "mse with the wrong target width: %s", hs_last_error());
    samples_free(&s);
    model_free_f64(m);
}

int main(void) {
    if (temp_dir_create("hs_test_samples") != 0) return 1;
    Cifar10 data = synthetic_data(N, 3);
    test_cifar_equivalence(&data);
    test_loader(&data);
    test_npy_source();
    test_check_source();
    cifar10_free(&data);
    temp_dir_remove();
    return check_summary("test_samples");
}
