/* fuzz_cifar10.c: libFuzzer harness for the CIFAR-10 batch reader (cifar10_load in src/data/cifar10.c). The
 * input is laid out as a data folder: byte 0 chooses the split (bit 0: training set, else test), whether the
 * files sit in cifar-10-batches-bin/ or in the folder itself (bit 1) and whether one file is left out (bit 2,
 * file index from bits 3-5). For the training set, bytes 1-4 give the sizes of data_batch_1..4 (b % 4 records,
 * plus one stray byte when b >= 252) and data_batch_5 gets the rest; the test set gets everything after byte 0.
 * Invariants: a missing file or a size that is not a whole number of records fails; a success has n = total
 * bytes / 3073, every label < 10, the records' bytes in file order, and a batch loader runs over the data. */
#include "fuzz_common.h"

#include <sys/stat.h>

#include "../../src/core/common.h"
#include "../../src/data/cifar10.h"
#include "../../src/data/samples.h"

static const char *const names[6] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                     "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};

/* Checks the loaded set against the concatenated files. */
static void check_loaded(const Cifar10 *d, const uint8_t *bytes, size_t total) {
    FUZZ_ASSERT(total % CIFAR10_RECORD == 0 && total > 0, "accepted %zu bytes (not whole records)", total);
    FUZZ_ASSERT((size_t)d->n == total / CIFAR10_RECORD, "n = %d for %zu bytes", d->n, total);
    for (int i = 0; i < d->n; i++) {
        const uint8_t *rec = bytes + (size_t)i * CIFAR10_RECORD;
        FUZZ_ASSERT(d->labels[i] < CIFAR10_CLASSES && d->labels[i] == rec[0], "label of record %d", i);
        FUZZ_ASSERT(memcmp(d->pixels + (size_t)i * CIFAR10_PIXELS, rec + 1, CIFAR10_PIXELS) == 0,
                    "pixels of record %d", i);
    }
    SampleSource src;
    FUZZ_ASSERT(samples_wrap_cifar10(d, "fuzz", &src) == 0, "source: %s", hs_last_error());
    SampleLoader ld;
    FUZZ_ASSERT(sample_loader_init(&ld, &src, 0, d->n, 3, 1, 1, 7) == 0, "loader: %s", hs_last_error());
    static float images[3 * CIFAR10_PIXELS];
    int32_t labels[3];
    int b = sample_loader_next(&ld, images, 4, labels);
    FUZZ_ASSERT(b == (d->n < 3 ? d->n : 3), "first batch has %d images", b);
    for (int i = 0; i < b; i++) FUZZ_ASSERT(labels[i] >= 0 && labels[i] < CIFAR10_CLASSES, "batch label");
    sample_loader_free(&ld);
    samples_free(&src);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int train = data[0] & 1, in_sub = (data[0] >> 1) & 1, drop = (data[0] >> 2) & 1;
    int dropped = drop ? (train ? ((data[0] >> 3) & 7) % 5 : 5) : -1;
    const char *root = fuzz_path("data");
    const char *sub = fuzz_path("data/cifar-10-batches-bin");
    char path[800];
    mkdir(root, 0700);
    for (int f = 0; f < 6; f++) { /* clear the previous input */
        snprintf(path, sizeof path, "%s/%s", root, names[f]);
        unlink(path);
        snprintf(path, sizeof path, "%s/%s", sub, names[f]);
        unlink(path);
    }
    rmdir(sub);
    if (in_sub) mkdir(sub, 0700);
    const char *folder = in_sub ? sub : root;

    size_t header = train ? 5 : 1;
    if (size < header) return 0;
    const uint8_t *body = data + header;
    size_t rest = size - header, at = 0, written = 0;
    uint8_t *kept = malloc(rest + 1); /* the bytes of the files actually written, in load order */
    FUZZ_ASSERT(kept, "out of memory");
    int first = train ? 0 : 5, last = train ? 4 : 5;
    for (int f = first; f <= last; f++) {
        size_t n = rest - at;
        if (train && f < 4) {
            size_t want = (size_t)(data[1 + f] % 4) * CIFAR10_RECORD + (data[1 + f] >= 252);
            if (want < n) n = want;
        }
        if (f != dropped) {
            snprintf(path, sizeof path, "%s/%s", folder, names[f]);
            FILE *fp = fopen(path, "wb");
            FUZZ_ASSERT(fp && (n == 0 || fwrite(body + at, 1, n, fp) == n) && fclose(fp) == 0, "writing %s", path);
            memcpy(kept + written, body + at, n);
            written += n;
        }
        at += n;
    }

    Cifar10 d;
    int rc = cifar10_load(root, train ? CIFAR10_TRAIN : CIFAR10_TEST, &d);
    if (rc == 0) {
        FUZZ_ASSERT(dropped < 0, "loaded with %s missing", names[dropped]);
        check_loaded(&d, kept, written);
        cifar10_free(&d);
    } else {
        FUZZ_ASSERT(d.n == 0 && d.labels == NULL && d.pixels == NULL, "failed load left data behind");
        FUZZ_ASSERT(hs_last_error()[0], "failure without a message");
    }
    free(kept);
    return 0;
}
