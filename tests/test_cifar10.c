/* test_cifar10.c: tests the CIFAR-10 data layer on tiny synthetic files in a temporary folder: loading and its
 * errors, normalisation, torchvision-style augmentation, the seeded batch loader, MD5 (RFC 1321 vectors) and
 * the download's checks (failure without network, MD5 mismatch, unexpected members, a file:// install). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../src/core/common.h"
#include "../src/core/rng.h"
#include "../src/data/samples.h"
#include "../src/data/cifar10.h"
#include "../src/data/cifar10_download.h"
#include "../src/data/md5.h"
#include "check.h"

static char root[256]; /* mkdtemp folder holding everything this test writes */

static const double mean_d[3] = {0.4914, 0.4822, 0.4465};
static const double std_d[3] = {0.2023, 0.1994, 0.2010};

/* Synthetic image content: pixel (0,0,0) is the image's global index, so batches can be traced back. */
static uint8_t pixel_value(int image, int c, int y, int x) {
    if (c == 0 && y == 0 && x == 0) return (uint8_t)image;
    return (uint8_t)((image * 37 + c * 101 + y * 13 + x * 7 + (x * y) % 11) & 255);
}
static uint8_t label_value(int image) { return (uint8_t)((image * 3 + 1) % 10); }

static void path_in(char *out, size_t cap, const char *a, const char *b) {
    int n = snprintf(out, cap, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "path too long: %s/%s\n", a, b);
        exit(1);
    }
}

/* Writes records for images first..first+n-1; bad_label_record >= 0 gets label 10. */
static int write_records(const char *path, int first, int n, int bad_label_record) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    uint8_t rec[CIFAR10_RECORD];
    for (int i = 0; i < n; i++) {
        int img = first + i;
        rec[0] = i == bad_label_record ? 10 : label_value(img);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++) rec[1 + c * 1024 + y * 32 + x] = pixel_value(img, c, y, x);
        fwrite(rec, 1, sizeof rec, fp);
    }
    return fclose(fp);
}

static void write_bytes(const char *path, size_t n) {
    FILE *fp = fopen(path, "wb");
    for (size_t i = 0; i < n; i++) fputc((int)(i % 7), fp);
    fclose(fp);
}

static const int train_sizes[5] = {10, 12, 8, 9, 11}; /* 50 training images */
#define N_TRAIN 50
#define N_TEST 7

/* ------------------------------------------------------------------------------------------------------ */

static void test_md5(void) {
    static const char *const inputs[7] = {
        "", "a", "abc", "message digest", "abcdefghijklmnopqrstuvwxyz",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "12345678901234567890123456789012345678901234567890123456789012345678901234567890"};
    static const char *const digests[7] = {"d41d8cd98f00b204e9800998ecf8427e", "0cc175b9c0f1b6a831c399e269772661",
                                           "900150983cd24fb0d6963f7d28e17f72", "f96b697d7cb7938d525a2f31aaf161d0",
                                           "c3fcd3d76192e4007dfb496cca67e13b", "d174ab98d277d9f5a5611c2c9f419d9f",
                                           "57edf4a22be3c955ac49da2e2107b67a"};
    char hex[33];
    for (int i = 0; i < 7; i++) {
        md5_buffer_hex(inputs[i], strlen(inputs[i]), hex);
        CHECK(strcmp(hex, digests[i]) == 0, "MD5(\"%s\") = %s, expected %s", inputs[i], hex, digests[i]);
    }
    /* Incremental updates in uneven pieces equal the one-shot hash. */
    uint8_t buf[1000];
    for (int i = 0; i < 1000; i++) buf[i] = (uint8_t)(i * 31 + 7);
    char one[33], pieces[33];
    md5_buffer_hex(buf, sizeof buf, one);
    Md5 ctx;
    md5_init(&ctx);
    size_t at = 0, step = 1;
    while (at < sizeof buf) {
        size_t take = step < sizeof buf - at ? step : sizeof buf - at;
        md5_update(&ctx, buf + at, take);
        at += take;
        step = step * 3 + 1;
    }
    uint8_t digest[16];
    md5_final(&ctx, digest);
    md5_hex(digest, pieces);
    CHECK(strcmp(one, pieces) == 0, "incremental MD5 %s != one-shot %s", pieces, one);
    /* The file version. */
    char path[512];
    path_in(path, sizeof path, root, "md5.txt");
    FILE *fp = fopen(path, "wb");
    fputs(inputs[6], fp);
    fclose(fp);
    CHECK(md5_file_hex(path, hex) == 0 && strcmp(hex, digests[6]) == 0, "md5_file_hex = %s", hex);
    path_in(path, sizeof path, root, "no-such-file");
    CHECK(md5_file_hex(path, hex) == -1 && strstr(hs_last_error(), "no-such-file"), "md5 of missing file: %s",
          hs_last_error());
}

/* ------------------------------------------------------------------------------------------------------ */

static void make_dataset(const char *dir) {
    char sub[512], path[600];
    path_in(sub, sizeof sub, dir, "cifar-10-batches-bin");
    mkdir(dir, 0777);
    mkdir(sub, 0777);
    int first = 0;
    for (int b = 0; b < 5; b++) {
        char name[32];
        snprintf(name, sizeof name, "data_batch_%d.bin", b + 1);
        path_in(path, sizeof path, sub, name);
        write_records(path, first, train_sizes[b], -1);
        first += train_sizes[b];
    }
    path_in(path, sizeof path, sub, "test_batch.bin");
    write_records(path, 1000, N_TEST, -1); /* test images are numbered from 1000 (pixel 0 wraps; fine) */
}

static int data_matches(const Cifar10 *d, int first) {
    for (int i = 0; i < d->n; i++) {
        if (d->labels[i] != label_value(first + i)) return 0;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++)
                    if (d->pixels[(size_t)i * 3072 + c * 1024 + y * 32 + x] != pixel_value(first + i, c, y, x))
                        return 0;
    }
    return 1;
}

static void test_loading(const char *dir, Cifar10 *train) {
    CHECK(cifar10_load(dir, CIFAR10_TRAIN, train) == 0, "load train: %s", hs_last_error());
    CHECK(train->n == N_TRAIN, "train n = %d", train->n);
    CHECK(data_matches(train, 0), "train labels/pixels match the files, in batch order");

    /* dir may also be the cifar-10-batches-bin folder itself. */
    char sub[512];
    path_in(sub, sizeof sub, dir, "cifar-10-batches-bin");
    Cifar10 test;
    CHECK(cifar10_load(sub, CIFAR10_TEST, &test) == 0, "load test from the batches folder: %s", hs_last_error());
    CHECK(test.n == N_TEST && data_matches(&test, 1000), "test set content (n = %d)", test.n);
    cifar10_free(&test);
    CHECK(test.n == 0 && test.pixels == NULL && test.labels == NULL, "free clears the struct");

    char path[600];
    path_in(path, sizeof path, sub, "data_batch_2.bin");
    Cifar10 one;
    CHECK(cifar10_load_file(path, &one) == 0 && one.n == 12 && data_matches(&one, 10), "load one file: %s",
          hs_last_error());
    cifar10_free(&one);
}

static void test_load_errors(void) {
    Cifar10 d;
    char dir[512], sub[600], path[700];

    /* Missing folder: the message says how to get the data. */
    path_in(dir, sizeof dir, root, "nothing-here");
    CHECK(cifar10_load(dir, CIFAR10_TRAIN, &d) == -1, "loading a missing folder fails");
    const char *msg = hs_last_error();
    CHECK(strstr(msg, "hessian data cifar10") && strstr(msg, "by hand") && strstr(msg, "data_batch_1.bin") &&
              strstr(msg, "nothing-here"),
          "missing-data message: %s", msg);
    CHECK(d.n == 0 && d.pixels == NULL && d.labels == NULL, "failed load leaves an empty struct");

    /* Training files present, test file missing. */
    path_in(dir, sizeof dir, root, "partial");
    path_in(sub, sizeof sub, dir, "cifar-10-batches-bin");
    mkdir(dir, 0777);
    mkdir(sub, 0777);
    path_in(path, sizeof path, sub, "data_batch_1.bin");
    write_records(path, 0, 2, -1);
    CHECK(cifar10_load(dir, CIFAR10_TEST, &d) == -1 && strstr(hs_last_error(), "test_batch.bin") &&
              strstr(hs_last_error(), "hessian data cifar10"),
          "missing test_batch.bin: %s", hs_last_error());
    CHECK(cifar10_load(dir, CIFAR10_TRAIN, &d) == -1 && strstr(hs_last_error(), "data_batch_2.bin"),
          "missing data_batch_2.bin: %s", hs_last_error());

    /* Size not a multiple of 3073: the message names the file and its size. */
    path_in(path, sizeof path, root, "bad_size.bin");
    write_bytes(path, 3073 + 5);
    CHECK(cifar10_load_file(path, &d) == -1 && strstr(hs_last_error(), "bad_size.bin") &&
              strstr(hs_last_error(), "3078"),
          "bad size: %s", hs_last_error());
    path_in(path, sizeof path, root, "empty.bin");
    write_bytes(path, 0);
    CHECK(cifar10_load_file(path, &d) == -1 && strstr(hs_last_error(), "empty"), "empty file: %s", hs_last_error());

    /* Label 10 in record 3: the message names the file and the record. */
    path_in(path, sizeof path, root, "bad_label.bin");
    write_records(path, 0, 5, 3);
    CHECK(cifar10_load_file(path, &d) == -1 && strstr(hs_last_error(), "bad_label.bin") &&
              strstr(hs_last_error(), "record 3") && strstr(hs_last_error(), "label 10"),
          "bad label: %s", hs_last_error());
    CHECK(d.n == 0 && d.pixels == NULL, "failed load leaves an empty struct");

    /* Through cifar10_load: a training batch one byte short, then a test batch with label 255. */
    path_in(dir, sizeof dir, root, "corrupt");
    mkdir(dir, 0777);
    for (int b = 0; b < 5; b++) {
        char name[32];
        snprintf(name, sizeof name, "data_batch_%d.bin", b + 1);
        path_in(path, sizeof path, dir, name);
        write_records(path, 0, 2, -1);
    }
    path_in(path, sizeof path, dir, "data_batch_3.bin");
    CHECK(truncate(path, 2 * CIFAR10_RECORD - 1) == 0, "truncating data_batch_3.bin");
    CHECK(cifar10_load(dir, CIFAR10_TRAIN, &d) == -1 && strstr(hs_last_error(), "data_batch_3.bin") &&
              strstr(hs_last_error(), "6145") && strstr(hs_last_error(), "truncated"),
          "truncated training batch: %s", hs_last_error());
    CHECK(d.n == 0 && d.labels == NULL && d.pixels == NULL, "failed load leaves an empty struct");
    path_in(path, sizeof path, dir, "test_batch.bin");
    write_records(path, 0, 3, -1);
    FILE *fp = fopen(path, "r+b");
    CHECK(fp && fseek(fp, CIFAR10_RECORD, SEEK_SET) == 0 && fputc(255, fp) == 255 && fclose(fp) == 0,
          "writing label 255");
    CHECK(cifar10_load(dir, CIFAR10_TEST, &d) == -1 && strstr(hs_last_error(), "test_batch.bin") &&
              strstr(hs_last_error(), "record 1") && strstr(hs_last_error(), "label 255"),
          "label 255: %s", hs_last_error());
    CHECK(d.n == 0 && d.labels == NULL && d.pixels == NULL, "failed load leaves an empty struct");
}

/* ------------------------------------------------------------------------------------------------------ */

/* Independent reference for an augmented image: pad the raw bytes with zeros, crop, flip, normalise (double). */
static void reference_image(const Cifar10 *d, int index, int dy, int dx, int flip, double *out) {
    static uint8_t padded[3][40][40];
    memset(padded, 0, sizeof padded);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) padded[c][y + 4][x + 4] = d->pixels[(size_t)index * 3072 + c * 1024 + y * 32 + x];
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                int xs = flip ? 31 - x : x;
                out[c * 1024 + y * 32 + x] = (padded[c][y + dy][xs + dx] / 255.0 - mean_d[c]) / std_d[c];
            }
}

static void test_normalisation(const Cifar10 *d) {
    CHECK(cifar10_mean[0] == 0.4914f && cifar10_mean[1] == 0.4822f && cifar10_mean[2] == 0.4465f, "mean");
    CHECK(cifar10_std[0] == 0.2023f && cifar10_std[1] == 0.1994f && cifar10_std[2] == 0.2010f, "std");
    float f[3072];
    double g[3072];
    int index = 17;
    cifar10_image_f32(d, index, 4, 4, 0, f);
    cifar10_image_f64(d, index, 4, 4, 0, g);
    int exact32 = 1, exact64 = 1;
    double max_diff = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 1024; i++) {
            uint8_t b = d->pixels[(size_t)index * 3072 + c * 1024 + i];
            float e32 = ((float)b / 255.0f - cifar10_mean[c]) / cifar10_std[c]; /* torchvision, float32 */
            double e64 = ((double)b / 255.0 - mean_d[c]) / std_d[c];
            if (f[c * 1024 + i] != e32) exact32 = 0;
            if (g[c * 1024 + i] != e64) exact64 = 0;
            double diff = fabs((double)f[c * 1024 + i] - g[c * 1024 + i]);
            if (diff > max_diff) max_diff = diff;
        }
    CHECK(exact32, "f32 image = (byte/255 - mean)/std in float");
    CHECK(exact64, "f64 image = (byte/255 - mean)/std in double");
    CHECK(max_diff < 2e-6, "f32 and f64 images agree (max diff %g)", max_diff);

    /* Known pixels, values computed by hand: byte 17 (image index at (0,0,0)) in the red plane. */
    CHECK_CLOSE(g[0], (17.0 / 255.0 - 0.4914) / 0.2023, 0, 1e-15);
    CHECK_CLOSE(g[0], -2.0995221618, 0, 1e-9);
    /* A 0 byte gives -mean/std, a 255 byte (1 - mean)/std. */
    Cifar10 tiny = {1, NULL, NULL};
    uint8_t px[3072], lab[1] = {0};
    memset(px, 0, sizeof px);
    px[5] = 255;          /* red (0, 5) */
    px[1024 + 40] = 255;  /* green (1, 8) */
    px[2048 + 1023] = 128; /* blue (31, 31) */
    tiny.pixels = px;
    tiny.labels = lab;
    cifar10_image_f64(&tiny, 0, 4, 4, 0, g);
    CHECK_CLOSE(g[0], -0.4914 / 0.2023, 0, 1e-14);
    CHECK_CLOSE(g[0], -2.4290657439, 0, 1e-9);
    CHECK_CLOSE(g[5], 2.5140879881, 0, 1e-9);
    CHECK_CLOSE(g[1024 + 40], (1 - 0.4822) / 0.1994, 0, 1e-14);
    CHECK_CLOSE(g[1024], -2.4182547643, 0, 1e-9);
    CHECK_CLOSE(g[2048 + 1023], (128.0 / 255.0 - 0.4465) / 0.2010, 0, 1e-14);
    CHECK_CLOSE(g[2048], -2.2213930348, 0, 1e-9);
    cifar10_image_f32(&tiny, 0, 4, 4, 0, f);
    CHECK_CLOSE(f[5], 2.5140879881, 0, 1e-6);
    CHECK_CLOSE(f[2048], -2.2213930348, 0, 1e-6);
}

static void test_augmentation(const Cifar10 *d) {
    static double plain[3072], aug[3072], ref[3072];
    static float aug32[3072];
    int index = 23;
    cifar10_image_f64(d, index, 4, 4, 0, plain);
    reference_image(d, index, 4, 4, 0, ref);
    CHECK(memcmp(plain, ref, sizeof plain) == 0, "dy = dx = 4, no flip is the plain normalised image");

    /* Flip: a mirror of the plain image. */
    cifar10_image_f64(d, index, 4, 4, 1, aug);
    int mirror = 1;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                if (aug[c * 1024 + y * 32 + x] != plain[c * 1024 + y * 32 + 31 - x]) mirror = 0;
    CHECK(mirror, "flip mirrors the image horizontally");

    /* dy = 0: the top 4 rows are padding (-mean/std), the rest is the image shifted down by 4. */
    cifar10_image_f64(d, index, 0, 4, 0, aug);
    int top_pad = 1, shifted = 1;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                double v = aug[c * 1024 + y * 32 + x];
                if (y < 4 && v != -mean_d[c] / std_d[c]) top_pad = 0;
                if (y >= 4 && v != plain[c * 1024 + (y - 4) * 32 + x]) shifted = 0;
            }
    CHECK(top_pad, "dy = 0: the top 4 rows equal -mean/std");
    CHECK(shifted, "dy = 0: rows 4..31 are rows 0..27 of the image");
    cifar10_image_f32(d, index, 0, 4, 0, aug32);
    CHECK(aug32[0] == -cifar10_mean[0] / cifar10_std[0] && aug32[2048 + 3 * 32 + 31] == -cifar10_mean[2] / cifar10_std[2],
          "f32 padding = -mean/std");

    /* dx = 0 with flip: the crop pads the left 4 columns, the flip moves them to the right. */
    cifar10_image_f64(d, index, 4, 0, 1, aug);
    int right_pad = 1;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++)
            for (int x = 28; x < 32; x++)
                if (aug[c * 1024 + y * 32 + x] != -mean_d[c] / std_d[c]) right_pad = 0;
    CHECK(right_pad && aug[0] != -mean_d[0] / std_d[0], "dx = 0 then flip: padding on the right");

    /* Every (dy, dx, flip) against the independent reference; f32 close to f64. */
    int all_match = 1;
    double max_diff = 0;
    for (int dy = 0; dy <= 8; dy++)
        for (int dx = 0; dx <= 8; dx++)
            for (int flip = 0; flip < 2; flip++) {
                cifar10_image_f64(d, index, dy, dx, flip, aug);
                cifar10_image_f32(d, index, dy, dx, flip, aug32);
                reference_image(d, index, dy, dx, flip, ref);
                if (memcmp(aug, ref, sizeof aug) != 0) all_match = 0;
                for (int i = 0; i < 3072; i++) {
                    double diff = fabs(aug[i] - aug32[i]);
                    if (diff > max_diff) max_diff = diff;
                }
            }
    CHECK(all_match, "all 162 crops/flips match the padded-crop-flip reference");
    CHECK(max_diff < 2e-6, "augmented f32 and f64 agree (max diff %g)", max_diff);

    /* Draws: offsets cover [0, 8] uniformly, flips happen half of the time. */
    Rng rng;
    rng_seed(&rng, 12345);
    int count_dy[9] = {0}, count_dx[9] = {0}, flips = 0, out_of_range = 0;
    const int draws = 36000;
    for (int i = 0; i < draws; i++) {
        int dy, dx, flip;
        cifar10_draw_augmentation(&rng, &dy, &dx, &flip);
        if (dy < 0 || dy > 8 || dx < 0 || dx > 8 || (flip != 0 && flip != 1)) {
            out_of_range++;
            continue;
        }
        count_dy[dy]++;
        count_dx[dx]++;
        flips += flip;
    }
    CHECK(out_of_range == 0, "%d draws out of range", out_of_range);
    int uniform = 1;
    for (int k = 0; k < 9; k++)
        if (abs(count_dy[k] - draws / 9) > 300 || abs(count_dx[k] - draws / 9) > 300) uniform = 0;
    CHECK(uniform, "crop offsets cover 0..8 uniformly (dy[0] = %d, dy[8] = %d, dx[0] = %d, dx[8] = %d of %d)",
          count_dy[0], count_dy[8], count_dx[0], count_dx[8], draws);
    CHECK(fabs((double)flips / draws - 0.5) < 0.015, "flip rate %g", (double)flips / draws);
}

/* ------------------------------------------------------------------------------------------------------ */

/* Image index of a normalised un-augmented batch image, from its pixel (0,0,0). */
static int traced_index(const double *img) { return (int)lround((img[0] * std_d[0] + mean_d[0]) * 255.0); }

/* Runs one epoch; writes the image order into order[] and returns the number of images (-1 on error). */
static int run_epoch(SampleLoader *ld, int *order, int *sizes, int *n_batches) {
    static double images[64 * 3072];
    int32_t labels[64];
    int total = 0, b, nb = 0;
    while ((b = sample_loader_next(ld, images, 8, labels)) > 0) {
        if (sizes) sizes[nb] = b;
        nb++;
        for (int i = 0; i < b; i++) {
            int idx = traced_index(images + (size_t)i * 3072);
            if (labels[i] != label_value(idx)) return -1;
            order[total++] = idx;
        }
    }
    if (n_batches) *n_batches = nb;
    return b < 0 ? -1 : total;
}

static void test_loader(const Cifar10 *d) {
    SampleSource src;
    CHECK(samples_wrap_cifar10(d, "train", &src) == 0, "wrap: %s", hs_last_error());
    SampleLoader ld;
    int order1[64], order2[64], order3[64], sizes[16], nb = 0;
    const int offset = 5, count = 37, batch = 8;

    /* Shuffled, no augmentation: every selected image exactly once per epoch, labels follow the images. */
    CHECK(sample_loader_init(&ld, &src, offset, count, batch, 1, 0, 42) == 0, "init: %s", hs_last_error());
    CHECK(sample_loader_batches(&ld) == 5, "batches = %d", sample_loader_batches(&ld));
    int n1 = run_epoch(&ld, order1, sizes, &nb);
    CHECK(n1 == count && nb == 5 && sizes[4] == 5 && sizes[0] == 8, "epoch 1: %d images in %d batches", n1, nb);
    int seen[N_TRAIN] = {0}, once = 1;
    for (int i = 0; i < n1; i++) {
        if (order1[i] < offset || order1[i] >= offset + count) once = 0;
        else seen[order1[i]]++;
    }
    for (int i = offset; i < offset + count; i++)
        if (seen[i] != 1) once = 0;
    CHECK(once, "every image of the selection exactly once in epoch 1");
    int n2 = run_epoch(&ld, order2, NULL, NULL);
    CHECK(n2 == count && memcmp(order1, order2, sizeof(int) * count) != 0, "epoch 2 has a different order");
    memset(seen, 0, sizeof seen);
    once = 1;
    for (int i = 0; i < n2; i++) seen[order2[i]]++;
    for (int i = offset; i < offset + count; i++)
        if (seen[i] != 1) once = 0;
    CHECK(once, "every image exactly once in epoch 2");
    CHECK(ld.epoch == 2, "epoch counter %d", ld.epoch);
    sample_loader_free(&ld);

    /* Same seed, same order; another seed, another order. */
    CHECK(sample_loader_init(&ld, &src, offset, count, batch, 1, 0, 42) == 0, "init");
    run_epoch(&ld, order3, NULL, NULL);
    CHECK(memcmp(order1, order3, sizeof(int) * count) == 0, "same seed, same order in epoch 1");
    run_epoch(&ld, order3, NULL, NULL);
    CHECK(memcmp(order2, order3, sizeof(int) * count) == 0, "same seed, same order in epoch 2");
    sample_loader_free(&ld);
    CHECK(sample_loader_init(&ld, &src, offset, count, batch, 1, 0, 43) == 0, "init");
    run_epoch(&ld, order3, NULL, NULL);
    CHECK(memcmp(order1, order3, sizeof(int) * count) != 0, "another seed, another order");
    sample_loader_free(&ld);

    /* No shuffle: file order. */
    CHECK(sample_loader_init(&ld, &src, offset, count, batch, 0, 0, 1) == 0, "init");
    run_epoch(&ld, order3, NULL, NULL);
    int in_order = 1;
    for (int i = 0; i < count; i++)
        if (order3[i] != offset + i) in_order = 0;
    CHECK(in_order, "without shuffling the images come in file order");
    sample_loader_free(&ld);

    /* drop_last. */
    CHECK(sample_loader_init(&ld, &src, offset, count, batch, 1, 0, 42) == 0, "init");
    ld.drop_last = 1;
    CHECK(sample_loader_batches(&ld) == 4, "drop_last batches = %d", sample_loader_batches(&ld));
    int n = run_epoch(&ld, order3, sizes, &nb);
    CHECK(n == 32 && nb == 4 && sizes[3] == 8, "drop_last epoch: %d images in %d batches", n, nb);
    CHECK(memcmp(order1, order3, sizeof(int) * 32) == 0, "drop_last keeps the same permutation");
    sample_loader_free(&ld);

    /* restart: the next call starts a new (reshuffled) epoch. */
    static double img[8 * 3072];
    int32_t lab[8];
    CHECK(sample_loader_init(&ld, &src, offset, count, batch, 1, 0, 42) == 0, "init");
    CHECK(sample_loader_next(&ld, img, 8, lab) == 8, "first batch");
    ld.position = -1; /* the next call starts a new epoch */
    n = run_epoch(&ld, order3, NULL, NULL);
    CHECK(n == count && ld.epoch == 2 && memcmp(order3, order2, sizeof(int) * count) == 0,
          "restart starts epoch 2 (n = %d, epoch = %d)", n, ld.epoch);
    CHECK(sample_loader_next(&ld, img, 3, lab) == -1 && strstr(hs_last_error(), "elem_size"), "bad elem_size: %s",
          hs_last_error());
    sample_loader_free(&ld);

    /* Bad selections. */
    CHECK(sample_loader_init(&ld, &src, 45, 10, 8, 1, 0, 1) == -1 && strstr(hs_last_error(), "offset 45"),
          "selection beyond the data: %s", hs_last_error());
    CHECK(sample_loader_init(&ld, &src, 0, 10, 0, 1, 0, 1) == -1, "batch 0 refused");
    sample_loader_free(&ld);
    samples_free(&src);
}

/* Augmented loaders: reproducible, the documented draw sequence, f32 = f64, independent of thread count. */
static void test_loader_augment(const Cifar10 *d) {
    SampleSource src;
    CHECK(samples_wrap_cifar10(d, "train", &src) == 0, "wrap: %s", hs_last_error());
    enum { B = 20, COUNT = 45, OFF = 3 };
    static double a64[B * 3072], b64[B * 3072], ref[3072];
    static float a32[B * 3072];
    int32_t la[B], lb[B], l32[B];
    const uint64_t seed = 7;
    SampleLoader x, y, z;
    CHECK(sample_loader_init(&x, &src, OFF, COUNT, B, 1, 1, seed) == 0, "init");
    CHECK(sample_loader_init(&y, &src, OFF, COUNT, B, 1, 1, seed) == 0, "init");
    CHECK(sample_loader_init(&z, &src, OFF, COUNT, B, 1, 1, seed) == 0, "init");

    /* Replay of the documented stream: shuffle the identity, then per image dy, dx, flip. */
    Rng r;
    rng_seed(&r, seed);
    int perm[COUNT];
    for (int i = 0; i < COUNT; i++) perm[i] = i;
    rng_shuffle(&r, perm, COUNT);

    int same = 1, replay = 1, agree32 = 1, labels_ok = 1, pos = 0, threads_ok = 1;
    int max_threads = omp_get_max_threads();
    for (int epoch = 0; epoch < 2; epoch++) {
        int bx, by, bz;
        for (;;) {
            omp_set_num_threads(1);
            bx = sample_loader_next(&x, a64, 8, la);
            omp_set_num_threads(4);
            by = sample_loader_next(&y, b64, 8, lb);
            omp_set_num_threads(max_threads);
            bz = sample_loader_next(&z, a32, 4, l32);
            if (bx != by || bx != bz) same = 0;
            if (bx <= 0) break;
            if (memcmp(a64, b64, sizeof(double) * 3072 * bx) != 0 || memcmp(la, lb, sizeof(int32_t) * bx) != 0)
                threads_ok = 0;
            for (int i = 0; i < bx * 3072; i++)
                if (fabs(a64[i] - a32[i]) > 2e-6) agree32 = 0;
            if (memcmp(la, l32, sizeof(int32_t) * bx) != 0) labels_ok = 0;
            if (epoch == 0) {
                for (int i = 0; i < bx; i++, pos++) {
                    int dy, dx, flip;
                    cifar10_draw_augmentation(&r, &dy, &dx, &flip);
                    reference_image(d, OFF + perm[pos], dy, dx, flip, ref);
                    if (memcmp(ref, a64 + (size_t)i * 3072, sizeof ref) != 0) replay = 0;
                    if (la[i] != d->labels[OFF + perm[pos]]) labels_ok = 0;
                }
            }
        }
    }
    CHECK(same, "the three loaders return the same batch sizes");
    CHECK(threads_ok, "augmented batches identical with 1 and 4 threads");
    CHECK(replay && pos == COUNT, "augmented images follow the seeded shuffle + per-image draws (%d images)", pos);
    CHECK(agree32, "f32 and f64 batches agree");
    CHECK(labels_ok, "labels agree");
    sample_loader_free(&x);
    sample_loader_free(&y);
    sample_loader_free(&z);
    samples_free(&src);
}

/* ------------------------------------------------------------------------------------------------------ */

static int folder_is_empty(const char *dir) {
    DIR *dp = opendir(dir);
    if (!dp) return 1;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(dp)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) empty = 0;
    closedir(dp);
    return empty;
}

/* Writes SRC/cifar-10-batches-bin with six sparse zero data files of the right size (+ extras), then tars it. */
static int make_archive(const char *name, const char *extra_member, int symlink_first, char *archive, size_t cap) {
    char src[512], sub[600], path[700], cmd[2048];
    snprintf(src, sizeof src, "%s/src-%s", root, name);
    path_in(sub, sizeof sub, src, "cifar-10-batches-bin");
    mkdir(src, 0777);
    mkdir(sub, 0777);
    static const char *const names[6] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                         "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
    for (int i = 0; i < 6; i++) {
        path_in(path, sizeof path, sub, names[i]);
        if (i == 0 && symlink_first) {
            if (symlink("/etc/hostname", path) != 0) return -1;
            continue;
        }
        FILE *fp = fopen(path, "wb");
        if (!fp) return -1;
        fclose(fp);
        if (truncate(path, 30730000) != 0) return -1;
    }
    path_in(path, sizeof path, sub, "batches.meta.txt");
    FILE *fp = fopen(path, "w");
    fputs("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n", fp);
    fclose(fp);
    if (extra_member) {
        path_in(path, sizeof path, sub, extra_member);
        fp = fopen(path, "w");
        fputs("echo owned\n", fp);
        fclose(fp);
    }
    snprintf(archive, cap, "%s/%s.tar.gz", root, name);
    /* -S stores the zero files sparsely: a few hundred bytes, extracted in milliseconds. */
    snprintf(cmd, sizeof cmd, "tar -C '%s' -cSzf '%s' cifar-10-batches-bin", src, archive);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_download(void) {
    char dir[512], url[1024], md5[33], archive[600], path[800];

    /* No network: the message says so and explains how to place the files by hand. A closed local port fails
     * at once on every machine (the real address would download 170 MB where there is network). */
    path_in(dir, sizeof dir, root, "dl-fail");
    CHECK(cifar10_download_from(dir, "http://127.0.0.1:1/cifar-10-binary.tar.gz", CIFAR10_MD5) == -1,
          "download from a closed port fails");
    const char *msg = hs_last_error();
    CHECK(strstr(msg, "network") && strstr(msg, "by hand") && strstr(msg, "cifar-10-batches-bin") &&
              strstr(msg, "shared/data/cifar10-bin"),
          "no-network message: %s", msg);
    CHECK(folder_is_empty(dir), "a failed download leaves nothing behind in %s", dir);

    /* Already present with the right sizes: nothing to do, succeeds without network. */
    path_in(dir, sizeof dir, root, "dl-present");
    CHECK(make_archive("present", NULL, 0, archive, sizeof archive) == 0, "make archive");
    snprintf(path, sizeof path, "%s/src-present", root);
    CHECK(cifar10_download(path) == 0, "data already present: %s", hs_last_error());
    snprintf(path, sizeof path, "%s/src-present/cifar-10-batches-bin", root);
    CHECK(cifar10_download(path) == 0, "data already present (batches folder given): %s", hs_last_error());

    /* A file:// install of a synthetic archive with the right MD5. */
    CHECK(md5_file_hex(archive, md5) == 0, "md5 of archive");
    snprintf(url, sizeof url, "file://%s", archive);
    path_in(dir, sizeof dir, root, "dl-ok/nested");
    CHECK(cifar10_download_from(dir, url, md5) == 0, "file:// install: %s", hs_last_error());
    Cifar10 t;
    CHECK(cifar10_load(dir, CIFAR10_TEST, &t) == 0 && t.n == 10000, "installed test set loads (n = %d): %s", t.n,
          hs_last_error());
    cifar10_free(&t);
    snprintf(path, sizeof path, "%s/cifar-10-batches-bin/batches.meta.txt", dir);
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode), "batches.meta.txt installed");
    DIR *dp = opendir(dir);
    int entries = 0;
    struct dirent *e;
    while (dp && (e = readdir(dp)))
        if (e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))) entries++;
    if (dp) closedir(dp);
    CHECK(entries == 1, "only cifar-10-batches-bin remains in the target (%d entries)", entries);

    /* Wrong MD5: refused, nothing installed. */
    path_in(dir, sizeof dir, root, "dl-md5");
    CHECK(cifar10_download_from(dir, url, "00000000000000000000000000000000") == -1 &&
              strstr(hs_last_error(), "MD5") && strstr(hs_last_error(), md5),
          "MD5 mismatch: %s", hs_last_error());
    CHECK(folder_is_empty(dir), "nothing installed after an MD5 mismatch");

    /* An unexpected member: refused before extraction. */
    CHECK(make_archive("evil", "evil.sh", 0, archive, sizeof archive) == 0, "make archive");
    CHECK(md5_file_hex(archive, md5) == 0, "md5");
    snprintf(url, sizeof url, "file://%s", archive);
    path_in(dir, sizeof dir, root, "dl-evil");
    CHECK(cifar10_download_from(dir, url, md5) == -1 && strstr(hs_last_error(), "unexpected member") &&
              strstr(hs_last_error(), "evil.sh"),
          "unexpected member: %s", hs_last_error());
    CHECK(folder_is_empty(dir), "nothing installed from an archive with an unexpected member");

    /* A data member that is a symlink: refused after extraction, nothing installed. */
    CHECK(make_archive("link", NULL, 1, archive, sizeof archive) == 0, "make archive");
    CHECK(md5_file_hex(archive, md5) == 0, "md5");
    snprintf(url, sizeof url, "file://%s", archive);
    path_in(dir, sizeof dir, root, "dl-link");
    CHECK(cifar10_download_from(dir, url, md5) == -1 && strstr(hs_last_error(), "not a regular file"),
          "symlink member: %s", hs_last_error());
    CHECK(folder_is_empty(dir), "nothing installed from an archive with a symlink");
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/hs_test_cifar10_XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    test_md5();

    char dir[512];
    path_in(dir, sizeof dir, root, "data");
    make_dataset(dir);
    Cifar10 train;
    test_loading(dir, &train);
    test_load_errors();
    if (train.n == N_TRAIN) {
        test_normalisation(&train);
        test_augmentation(&train);
        test_loader(&train);
        test_loader_augment(&train);
    }
    cifar10_free(&train);
    test_download();

    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    return check_summary("test_cifar10");
}
