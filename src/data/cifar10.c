/* cifar10.c: reads CIFAR-10 in the official binary layout, normalises images as torchvision does
 * (ToTensor + Normalize), applies torchvision-style RandomCrop(32, padding=4) + RandomHorizontalFlip(0.5)
 * augmentation (see cifar10.h; batches are served by samples.c's SampleLoader). */
#define _POSIX_C_SOURCE 200809L
#include "cifar10.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/common.h"

const float cifar10_mean[3] = {0.4914f, 0.4822f, 0.4465f};
const float cifar10_std[3] = {0.2023f, 0.1994f, 0.2010f};
/* The same constants in double precision for the f64 images (not the float values widened). */
static const double cifar10_mean_f64[3] = {0.4914, 0.4822, 0.4465};
static const double cifar10_std_f64[3] = {0.2023, 0.1994, 0.2010};

#define CIFAR10_BATCHES_DIR "cifar-10-batches-bin"
#define CIFAR10_PATH_MAX 4096

/* ---------------------------------------------------------------------------------------------------------
 * Reading */

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int join_path(char *out, size_t cap, const char *a, const char *b) {
    int n = snprintf(out, cap, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= cap) return hs_error("path too long: %s/%s", a, b);
    return 0;
}

/* Opens a record file and returns its record count after checking its size. */
static int open_records(const char *path, FILE **fp_out, int *n_out) {
    *fp_out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return hs_error("cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0) {
        int err = errno;
        fclose(fp);
        return hs_error("cannot stat %s: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(fp);
        return hs_error("%s is not a regular file", path);
    }
    long long size = (long long)st.st_size;
    if (size % CIFAR10_RECORD != 0) {
        fclose(fp);
        return hs_error("%s: size %lld bytes is not a multiple of the CIFAR-10 record size %d (1 label byte + "
                        "%d pixel bytes); the file is truncated or not in the CIFAR-10 binary format",
                        path, size, CIFAR10_RECORD, CIFAR10_PIXELS);
    }
    if (size == 0) {
        fclose(fp);
        return hs_error("%s is empty (no CIFAR-10 records)", path);
    }
    if (size / CIFAR10_RECORD > 100000000LL) {
        fclose(fp);
        return hs_error("%s: %lld bytes is too large for a CIFAR-10 file", path, size);
    }
    *fp_out = fp;
    *n_out = (int)(size / CIFAR10_RECORD);
    return 0;
}

/* Reads n records from fp into labels[0..n) and pixels[0..n*3072), checking every label. */
static int read_records(FILE *fp, const char *path, int n, uint8_t *labels, uint8_t *pixels) {
    enum { CHUNK = 1024 };
    int chunk_records = n < CHUNK ? n : CHUNK;
    uint8_t *buf = hs_malloc((size_t)chunk_records * CIFAR10_RECORD);
    if (!buf) return -1;
    for (int start = 0; start < n; start += chunk_records) {
        int m = n - start < chunk_records ? n - start : chunk_records;
        size_t want = (size_t)m * CIFAR10_RECORD;
        size_t got = fread(buf, 1, want, fp);
        if (got != want) {
            int err = ferror(fp) ? errno : 0;
            free(buf);
            if (err) return hs_error("error reading %s: %s", path, strerror(err));
            return hs_error("%s: unexpected end of file at record %d (file changed while reading?)", path,
                            start + (int)(got / CIFAR10_RECORD));
        }
        for (int i = 0; i < m; i++) {
            const uint8_t *rec = buf + (size_t)i * CIFAR10_RECORD;
            if (rec[0] >= CIFAR10_CLASSES) {
                int label = rec[0];
                free(buf);
                return hs_error("%s: record %d has label %d, expected 0..%d (not a CIFAR-10 file, or "
                                "CIFAR-100?)",
                                path, start + i, label, CIFAR10_CLASSES - 1);
            }
            labels[start + i] = rec[0];
            memcpy(pixels + (size_t)(start + i) * CIFAR10_PIXELS, rec + 1, CIFAR10_PIXELS);
        }
    }
    free(buf);
    return 0;
}

static void clear_data(Cifar10 *data) {
    data->n = 0;
    data->labels = NULL;
    data->pixels = NULL;
}

/* Loads the given files, in order, into one data set. */
static int load_files(const char *const *paths, int count, Cifar10 *data) {
    FILE *fps[8] = {0};
    int ns[8] = {0};
    long long total = 0;
    int rc = -1;
    if (count > 8) return hs_error("internal error: too many CIFAR-10 files");
    for (int f = 0; f < count; f++) {
        if (open_records(paths[f], &fps[f], &ns[f]) != 0) goto done;
        total += ns[f];
    }
    if (total > 100000000LL) {
        hs_error("too many CIFAR-10 records (%lld)", total);
        goto done;
    }
    data->labels = hs_malloc((size_t)total);
    data->pixels = hs_malloc((size_t)total * CIFAR10_PIXELS);
    if (!data->labels || !data->pixels) goto done;
    long long at = 0;
    for (int f = 0; f < count; f++) {
        if (read_records(fps[f], paths[f], ns[f], data->labels + at, data->pixels + at * CIFAR10_PIXELS) != 0)
            goto done;
        at += ns[f];
    }
    data->n = (int)total;
    rc = 0;
done:
    for (int f = 0; f < count; f++)
        if (fps[f]) fclose(fps[f]);
    if (rc != 0) {
        free(data->labels);
        free(data->pixels);
        clear_data(data);
    }
    return rc;
}

int cifar10_load_file(const char *path, Cifar10 *data) {
    clear_data(data);
    if (!path || !*path) return hs_error("cifar10_load_file: empty path");
    const char *paths[1] = {path};
    return load_files(paths, 1, data);
}

static int missing_data_error(const char *dir, const char *path) {
    return hs_error("CIFAR-10 file %s not found. Get the data with `hessian data cifar10 %s`, or, without network "
                    "access, place the official cifar-10-batches-bin files (data_batch_1.bin .. data_batch_5.bin, "
                    "test_batch.bin, from cifar-10-binary.tar.gz) by hand in %s/" CIFAR10_BATCHES_DIR "/",
                    path, dir, dir);
}

int cifar10_load(const char *dir, Cifar10Split split, Cifar10 *data) {
    clear_data(data);
    if (!dir || !*dir) return hs_error("cifar10_load: empty data folder name");
    if (split != CIFAR10_TRAIN && split != CIFAR10_TEST) return hs_error("cifar10_load: unknown split %d", (int)split);
    /* dir may hold cifar-10-batches-bin/ or be that folder itself. */
    char folder[CIFAR10_PATH_MAX];
    HS_TRY(join_path(folder, sizeof folder, dir, CIFAR10_BATCHES_DIR));
    int in_subfolder = is_dir(folder);
    if (!in_subfolder) {
        if (strlen(dir) >= sizeof folder) return hs_error("path too long: %s", dir);
        strcpy(folder, dir);
    }
    static const char *const train_names[5] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                               "data_batch_4.bin", "data_batch_5.bin"};
    static const char *const test_names[1] = {"test_batch.bin"};
    const char *const *names = split == CIFAR10_TRAIN ? train_names : test_names;
    int count = split == CIFAR10_TRAIN ? 5 : 1;
    char storage[5][CIFAR10_PATH_MAX];
    const char *paths[5];
    for (int f = 0; f < count; f++) {
        HS_TRY(join_path(storage[f], sizeof storage[f], folder, names[f]));
        paths[f] = storage[f];
        struct stat st;
        if (stat(paths[f], &st) != 0) {
            if (errno == ENOENT || errno == ENOTDIR) {
                if (in_subfolder) return missing_data_error(dir, paths[f]);
                char expected[CIFAR10_PATH_MAX];
                int n = snprintf(expected, sizeof expected, "%s/" CIFAR10_BATCHES_DIR "/%s (nor %s)", dir,
                                 names[f], paths[f]);
                if (n < 0 || (size_t)n >= sizeof expected) return hs_error("path too long: %s", dir);
                return missing_data_error(dir, expected);
            }
            return hs_error("cannot access %s: %s", paths[f], strerror(errno));
        }
    }
    return load_files(paths, count, data);
}

void cifar10_free(Cifar10 *data) {
    if (!data) return;
    free(data->labels);
    free(data->pixels);
    clear_data(data);
}

/* ---------------------------------------------------------------------------------------------------------
 * Images: crop (on the zero-padded raw image), flip, then normalise, in float or double. */

/* Normalised value of every byte per channel, computed once with exactly the formula of the doc comment:
 * float: ((float)b / 255 - mean) / std in float arithmetic (torchvision's ToTensor + Normalize on float32),
 * double: the same in double with the double constants. */
static float norm_f32[CIFAR10_CHANNELS][256];
static double norm_f64[CIFAR10_CHANNELS][256];
static pthread_once_t norm_once = PTHREAD_ONCE_INIT;

static void build_norm_tables(void) {
    for (int c = 0; c < CIFAR10_CHANNELS; c++)
        for (int b = 0; b < 256; b++) {
            norm_f32[c][b] = ((float)b / 255.0f - cifar10_mean[c]) / cifar10_std[c];
            norm_f64[c][b] = ((double)b / 255.0 - cifar10_mean_f64[c]) / cifar10_std_f64[c];
        }
}

/* Output pixel (y, x) comes from padded pixel (y + dy, x' + dx), x' = 31 - x if flipped else x, i.e. raw pixel
 * (y + dy - 4, x' + dx - 4); outside the raw image it is a zero byte. One implementation for both precisions:
 * it copies entries of the precision's table (float or double, esize bytes each) into out, so each output value
 * is exactly a table entry whatever the element type. Inlined into both callers, where esize is a constant and
 * each memcpy becomes one load and store. */
static inline __attribute__((always_inline)) void image_into(const Cifar10 *data, int index, int dy, int dx,
                                                            int flip, const void *tables /* (C,256) */,
                                                            size_t esize, void *out /* (C,32,32) */) {
    pthread_once(&norm_once, build_norm_tables);
    const uint8_t *src = data->pixels + (size_t)index * CIFAR10_PIXELS;
    const int pad = 4;
    const int x_base = flip ? CIFAR10_SIDE - 1 + dx - pad : dx - pad, x_step = flip ? -1 : 1;
    for (int c = 0; c < CIFAR10_CHANNELS; c++) {
        const unsigned char *table = (const unsigned char *)tables + (size_t)c * 256 * esize;
        const unsigned char *padded = table; /* the value of byte 0 */
        const uint8_t *plane = src + c * CIFAR10_SIDE * CIFAR10_SIDE;
        unsigned char *dst = (unsigned char *)out + (size_t)c * CIFAR10_SIDE * CIFAR10_SIDE * esize;
        for (int y = 0; y < CIFAR10_SIDE; y++) {
            unsigned char *row_out = dst + (size_t)y * CIFAR10_SIDE * esize;
            int sy = y + dy - pad;
            if (sy < 0 || sy >= CIFAR10_SIDE) {
                for (int x = 0; x < CIFAR10_SIDE; x++) memcpy(row_out + x * esize, padded, esize);
                continue;
            }
            const uint8_t *row = plane + sy * CIFAR10_SIDE;
            for (int x = 0; x < CIFAR10_SIDE; x++) {
                int sx = x_base + x_step * x;
                memcpy(row_out + x * esize, (sx < 0 || sx >= CIFAR10_SIDE) ? padded : table + row[sx] * esize, esize);
            }
        }
    }
}

void cifar10_image_f32(const Cifar10 *data, int index, int dy, int dx, int flip, float *out /* (C,32,32) */) {
    image_into(data, index, dy, dx, flip, norm_f32, sizeof *out, out);
}

void cifar10_image_f64(const Cifar10 *data, int index, int dy, int dx, int flip, double *out /* (C,32,32) */) {
    image_into(data, index, dy, dx, flip, norm_f64, sizeof *out, out);
}

void cifar10_draw_augmentation(Rng *rng, int *dy, int *dx, int *flip) {
    /* torchvision RandomCrop draws the row offset, then the column offset, each in [0, 8]; then
     * RandomHorizontalFlip flips when a uniform draw is < 0.5. */
    *dy = (int)rng_below(rng, 9);
    *dx = (int)rng_below(rng, 9);
    *flip = rng_uniform(rng) < 0.5;
}
