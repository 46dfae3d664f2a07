/* fuzz_common.h: helpers shared by the libFuzzer harnesses in tests/fuzz/: a private temporary folder (under
 * $TMPDIR, else the RAM-backed /dev/shm where fsync costs nothing, else /tmp; removed at exit) to hand inputs
 * to the file readers, and FUZZ_ASSERT, which reports a broken invariant and aborts so that libFuzzer saves
 * the input as a crash reproducer. */
#ifndef HS_FUZZ_COMMON_H
#define HS_FUZZ_COMMON_H

#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_ASSERT(cond, ...)                                                      \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "fuzz invariant failed at %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                           \
            fprintf(stderr, "\n");                                                  \
            abort();                                                                \
        }                                                                           \
    } while (0)

static char fuzz_dir[512];

static int fuzz_remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb, (void)type, (void)ftw;
    remove(path);
    return 0;
}

static void fuzz_remove_dir(void) {
    if (fuzz_dir[0]) nftw(fuzz_dir, fuzz_remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* fuzz_dir/name (name may hold '/'), in one of a few rotating buffers; creates the folder on first use. */
static inline const char *fuzz_path(const char *name) {
    static char bufs[8][700];
    static int next;
    if (!fuzz_dir[0]) {
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !*tmp) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/hs_fuzz.XXXXXX", tmp);
        if (!mkdtemp(fuzz_dir)) {
            perror("mkdtemp");
            abort();
        }
        atexit(fuzz_remove_dir);
    }
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", fuzz_dir, name);
    return b;
}

/* Writes the bytes to fuzz_dir/name and returns the path. */
static inline const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
    const char *path = fuzz_path(name);
    FILE *fp = fopen(path, "wb");
    if (!fp || (size && fwrite(data, 1, size, fp) != size) || fclose(fp) != 0) {
        perror(path);
        abort();
    }
    return path;
}

#endif
