/* test_io.c: tests for the file-format layer (src/io): the streaming JSON writer (exact output for a nested
 * example, escaping, non-finite numbers), atomic files (no temporaries left behind, abort keeps the old
 * file), safetensors round trips (F32, F64, I64, F16, BF16, scalar and empty tensors, metadata, header
 * padding) and rejection of malformed safetensors files (missing, short, header past the end, bad JSON,
 * unknown dtype, negative shape, wrong byte count, offsets past the end, overlapping tensors, duplicate
 * names, an empty name, offsets far past the end, header lengths near 2^64 or over the 100 MB limit, wrong shape / missing
 * tensor via safetensors_expect_shape), .npy round trips (f32 and f64, 0-D, 1-D and 2-D, header layout,
 * version 2.0 input) and rejection of malformed .npy files (bad magic, bad version, fortran order,
 * big-endian, integer dtype, truncated, trailing bytes, NaN and Inf, hostile shapes far larger than the file,
 * which must fail before any allocation, and non-regular files). Every
 * rejection checks that the message names the file and the problem. Files live in a mkdtemp() folder under
 * /tmp that is removed at the end. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/core/common.h"
#include "../src/io/atomic_file.h"
#include "../src/io/json_writer.h"
#include "../src/io/npy.h"
#include "../src/io/safetensors.h"
#include "check.h"
#include "temp_dir.h"


static int err_has(const char *needle) { return strstr(hs_last_error(), needle) != NULL; }

/* The error message mentions the file and every given word. */
#define CHECK_ERR(rc, path, ...)                                                                              \
    do {                                                                                                      \
        const char *words_[] = {__VA_ARGS__};                                                                 \
        int ok_ = (rc) == -1 && err_has(path);                                                                \
        for (size_t w_ = 0; w_ < sizeof words_ / sizeof words_[0]; w_++) ok_ = ok_ && err_has(words_[w_]);    \
        CHECK(ok_, "expected failure mentioning %s and %s, got rc %d message \"%s\"", path, words_[0], (int)(rc), \
              hs_last_error());                                                                               \
    } while (0)

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return;
    fwrite(data, 1, n, fp);
    fclose(fp);
}

static long file_size(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fclose(fp);
    return n;
}

static size_t read_bytes(const char *path, unsigned char *buf, size_t cap) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    size_t n = fread(buf, 1, cap, fp);
    fclose(fp);
    return n;
}

/* ---------------------------------------------------------------- JSON writer */

static void test_json_writer(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    CHECK(fp != NULL, "open_memstream");
    if (!fp) return;
    JsonWriter w;
    json_begin(&w, fp);
    json_object_begin(&w);
    json_key(&w, "name");
    json_string(&w, "a\"b\\c\n\t\x01 \xc3\xa9");
    json_key(&w, "d");
    json_int(&w, 5100);
    json_key(&w, "neg");
    json_int(&w, -9007199254740993LL);
    json_key(&w, "x");
    json_double(&w, 0.1);
    json_key(&w, "inf");
    json_double(&w, INFINITY);
    json_key(&w, "vals");
    double vals[3] = {1.0, -2.5e-300, NAN};
    json_double_array(&w, vals, 3);
    json_key(&w, "nested");
    json_object_begin(&w);
    json_key(&w, "ok");
    json_bool(&w, 1);
    json_key(&w, "no");
    json_bool(&w, 0);
    json_key(&w, "none");
    json_null(&w);
    json_key(&w, "list");
    json_array_begin(&w);
    json_int(&w, 1);
    json_object_begin(&w);
    json_key(&w, "k");
    json_string(&w, "v");
    json_object_end(&w);
    json_array_begin(&w);
    json_array_end(&w);
    json_array_end(&w);
    json_object_end(&w);
    json_key(&w, "empty");
    json_object_begin(&w);
    json_object_end(&w);
    json_key(&w, "empty_array");
    json_double_array(&w, vals, 0);
    json_object_end(&w);
    json_end(&w);
    fclose(fp);
    const char *expected = "{\n"
                           "  \"name\": \"a\\\"b\\\\c\\n\\t\\u0001 \xc3\xa9\",\n"
                           "  \"d\": 5100,\n"
                           "  \"neg\": -9007199254740993,\n"
                           "  \"x\": 0.1,\n"
                           "  \"inf\": null,\n"
                           "  \"vals\": [1, -2.5e-300, null],\n"
                           "  \"nested\": {\n"
                           "    \"ok\": true,\n"
                           "    \"no\": false,\n"
                           "    \"none\": null,\n"
                           "    \"list\": [1, {\n"
                           "        \"k\": \"v\"\n"
                           "      }, []]\n"
                           "  },\n"
                           "  \"empty\": {},\n"
                           "  \"empty_array\": []\n"
                           "}\n";
    CHECK(buf && strcmp(buf, expected) == 0, "json output:\n%s\nexpected:\n%s", buf ? buf : "(null)", expected);
    free(buf);

    /* A top-level array of scalars. */
    buf = NULL;
    fp = open_memstream(&buf, &len);
    if (!fp) return;
    json_begin(&w, fp);
    json_array_begin(&w);
    json_double(&w, 2.0);
    json_double(&w, -INFINITY);
    json_string(&w, "");
    json_array_end(&w);
    json_end(&w);
    fclose(fp);
    CHECK(buf && strcmp(buf, "[2, null, \"\"]\n") == 0, "json array output: %s", buf ? buf : "(null)");
    free(buf);
}

/* ---------------------------------------------------------------- atomic file */

static void test_atomic_file(void) {
    const char *path = temp_path("atomic.txt");
    AtomicFile af;
    CHECK(atomic_file_open(&af, path) == 0, "atomic open: %s", hs_last_error());
    fputs("first", af.fp);
    CHECK(file_size(path) == -1, "target must not exist before commit");
    CHECK(temp_count(".tmp.") == 1, "one temporary while writing");
    CHECK(atomic_file_commit(&af) == 0, "atomic commit: %s", hs_last_error());
    CHECK(file_size(path) == 5, "committed size %ld", file_size(path));
    CHECK(temp_count(".tmp.") == 0, "no temporaries after commit");

    CHECK(atomic_file_open(&af, path) == 0, "atomic open 2");
    fputs("second, longer", af.fp);
    atomic_file_abort(&af);
    CHECK(file_size(path) == 5, "abort keeps the old file (size %ld)", file_size(path));
    CHECK(temp_count(".tmp.") == 0, "no temporaries after abort");
    atomic_file_abort(&af); /* second abort is a no-op */

    int rc = atomic_file_open(&af, "/nonexistent_dir_hs/x.txt");
    CHECK_ERR(rc, "/nonexistent_dir_hs/x.txt", "temporary");
}

/* ---------------------------------------------------------------- safetensors */

/* Writes an 8-byte length, the header text as given (no padding) and n data bytes. */
static void write_st_raw(const char *path, const char *header, const void *data, size_t n) {
    size_t hl = strlen(header);
    unsigned char *buf = malloc(8 + hl + n + 1);
    if (!buf) return;
    for (int k = 0; k < 8; k++) buf[k] = (unsigned char)((uint64_t)hl >> (8 * k));
    memcpy(buf + 8, header, hl);
    if (n) memcpy(buf + 8 + hl, data, n);
    write_bytes(path, buf, 8 + hl + n);
    free(buf);
}

static void test_safetensors_roundtrip(void) {
    const char *path = temp_path("model.safetensors");
    float w[6] = {1.5f, -2.25f, 3.0f, 1e-30f, -0.0f, 65504.0f};
    double b[3] = {0.1, -1e300, 3.141592653589793};
    int64_t idx[4] = {0, -1, INT64_MAX, INT64_MIN};
    float scalar = 42.0f;
    uint16_t half[5] = {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001}; /* 1, -2, 0.5, 65504, 2^-24 */
    uint16_t bf16[2] = {0x3F80, 0xC020};                           /* 1, -2.5 */
    StWriteTensor ts[7] = {
        {.name = "0.weight", .dtype = ST_F32, .ndim = 2, .shape = {2, 3}, .data = w},
        {.name = "0.bias", .dtype = ST_F64, .ndim = 1, .shape = {3}, .data = b},
        {.name = "index \"q\"", .dtype = ST_I64, .ndim = 1, .shape = {4}, .data = idx},
        {.name = "scalar", .dtype = ST_F32, .ndim = 0, .data = &scalar},
        {.name = "empty", .dtype = ST_F32, .ndim = 2, .shape = {0, 7}, .data = NULL},
        {.name = "half", .dtype = ST_F16, .ndim = 1, .shape = {5}, .data = half},
        {.name = "bf16", .dtype = ST_BF16, .ndim = 1, .shape = {2}, .data = bf16},
    };
    const char *keys[2] = {"format", "note"};
    const char *values[2] = {"pt", "tab\there, quote \" backslash \\ unicode \xc3\xa9"};
    int rc = safetensors_write(path, ts, 7, keys, values, 2);
    CHECK(rc == 0, "safetensors_write: %s", hs_last_error());
    CHECK(temp_count(".tmp.") == 0, "no temporaries left by safetensors_write");

    unsigned char raw[4096];
    size_t n = read_bytes(path, raw, sizeof raw);
    uint64_t hl = 0;
    for (int k = 7; k >= 0; k--) hl = (hl << 8) | raw[k];
    CHECK(n >= 8 && hl % 8 == 0 && 8 + hl <= n, "header length %llu is a multiple of 8", (unsigned long long)hl);
    CHECK(n == 8 + hl + 24 + 24 + 32 + 4 + 0 + 10 + 4, "file size %zu", n);
    CHECK(n > 8 + hl && raw[8] == '{' && (raw[8 + hl - 1] == ' ' || raw[8 + hl - 1] == '}'),
          "header starts with '{' and ends with '}' or padding");

    SafeTensors st;
    rc = safetensors_read(path, &st);
    CHECK(rc == 0, "safetensors_read: %s", hs_last_error());
    if (rc != 0) return;
    CHECK(st.count == 7, "count %d", st.count);
    CHECK(st.meta_count == 2, "meta_count %d", st.meta_count);
    CHECK(safetensors_meta(&st, "format") && strcmp(safetensors_meta(&st, "format"), "pt") == 0, "meta format");
    CHECK(safetensors_meta(&st, "note") && strcmp(safetensors_meta(&st, "note"), values[1]) == 0, "meta note: %s",
          safetensors_meta(&st, "note") ? safetensors_meta(&st, "note") : "(null)");
    CHECK(safetensors_meta(&st, "missing") == NULL, "absent meta key");
    for (int k = 0; k < 7 && k < st.count; k++) {
        const StTensor *t = &st.tensors[k];
        CHECK(strcmp(t->name, ts[k].name) == 0, "tensor %d name %s", k, t->name);
        CHECK(t->dtype == ts[k].dtype, "tensor %d dtype", k);
        CHECK(t->ndim == ts[k].ndim, "tensor %d ndim %d", k, t->ndim);
        for (int d = 0; d < t->ndim; d++) CHECK(t->shape[d] == ts[k].shape[d], "tensor %d dim %d", k, d);
        size_t bytes = t->end - t->begin;
        CHECK(bytes == (size_t)t->numel * safetensors_dtype_size(t->dtype), "tensor %d byte count", k);
        CHECK(bytes == 0 || memcmp(st.data + t->begin, ts[k].data, bytes) == 0, "tensor %d bytes equal", k);
        if (k > 0) CHECK(t->begin == st.tensors[k - 1].end, "tensor %d written in order", k);
    }
    CHECK(st.tensors[3].numel == 1 && st.tensors[4].numel == 0, "scalar / empty numel");
    CHECK(safetensors_find(&st, "0.bias") == &st.tensors[1], "find");
    CHECK(safetensors_find(&st, "nope") == NULL, "find absent");

    double wd[6];
    CHECK(safetensors_to_f64(&st, &st.tensors[0], wd) == 0, "F32 -> f64");
    for (int k = 0; k < 6; k++) CHECK(wd[k] == (double)w[k], "w[%d] = %g", k, wd[k]);
    float bf[3];
    CHECK(safetensors_to_f32(&st, &st.tensors[1], bf) == 0, "F64 -> f32");
    for (int k = 0; k < 3; k++) CHECK(bf[k] == (float)b[k], "b[%d] = %g", k, (double)bf[k]);
    double bd[3];
    CHECK(safetensors_to_f64(&st, &st.tensors[1], bd) == 0 && bd[0] == 0.1 && bd[1] == -1e300, "F64 -> f64");
    double hd[5];
    CHECK(safetensors_to_f64(&st, &st.tensors[5], hd) == 0, "F16 -> f64");
    CHECK(hd[0] == 1.0 && hd[1] == -2.0 && hd[2] == 0.5 && hd[3] == 65504.0 && hd[4] == ldexp(1.0, -24),
          "F16 values %g %g %g %g %g", hd[0], hd[1], hd[2], hd[3], hd[4]);
    float hf[5];
    CHECK(safetensors_to_f32(&st, &st.tensors[5], hf) == 0 && hf[3] == 65504.0f, "F16 -> f32");
    float bff[2];
    CHECK(safetensors_to_f32(&st, &st.tensors[6], bff) == 0 && bff[0] == 1.0f && bff[1] == -2.5f, "BF16 -> f32");
    double i64d[4];
    rc = safetensors_to_f64(&st, &st.tensors[2], i64d);
    CHECK_ERR(rc, path, "index \"q\"", "I64");

    const StTensor *found = NULL;
    int64_t good[2] = {2, 3}, bad[2] = {3, 2};
    CHECK(safetensors_expect_shape(&st, "0.weight", 2, good, &found) == 0 && found == &st.tensors[0],
          "expect_shape ok: %s", hs_last_error());
    rc = safetensors_expect_shape(&st, "0.weight", 2, bad, &found);
    CHECK_ERR(rc, path, "'0.weight' has shape [2,3], expected [3,2]");
    CHECK(found == NULL, "found cleared on failure");
    rc = safetensors_expect_shape(&st, "0.weight", 1, bad, NULL);
    CHECK_ERR(rc, path, "expected [3]");
    rc = safetensors_expect_shape(&st, "3.weight", 2, good, NULL);
    CHECK_ERR(rc, path, "has no tensor '3.weight'");
    safetensors_free(&st);
    CHECK(st.count == 0 && st.data == NULL, "free zeroes");

    /* No metadata, no tensors: "{}" padded to 8 bytes. */
    const char *empty = temp_path("empty.safetensors");
    CHECK(safetensors_write(empty, NULL, 0, NULL, NULL, 0) == 0, "write empty: %s", hs_last_error());
    CHECK(file_size(empty) == 16, "empty file size %ld", file_size(empty));
    CHECK(safetensors_read(empty, &st) == 0 && st.count == 0 && st.meta_count == 0, "read empty: %s",
          hs_last_error());
    safetensors_free(&st);

    /* Writer input validation. */
    StWriteTensor dup[2] = {ts[0], ts[0]};
    const char *dpath = temp_path("dup.safetensors");
    rc = safetensors_write(dpath, dup, 2, NULL, NULL, 0);
    CHECK_ERR(rc, dpath, "'0.weight'", "twice");
    StWriteTensor neg = ts[0];
    neg.shape[1] = -3;
    rc = safetensors_write(dpath, &neg, 1, NULL, NULL, 0);
    CHECK_ERR(rc, dpath, "'0.weight'", "negative");
    CHECK(file_size(dpath) == -1 && temp_count(".tmp.") == 0, "failed writes leave no file");

    /* Truncating the real file: the last tensor's offsets run past the end. */
    long size = file_size(path);
    CHECK(truncate(path, size - 3) == 0, "truncate");
    rc = safetensors_read(path, &st);
    CHECK_ERR(rc, path, "'bf16'", "past the end");
    CHECK(st.count == 0 && st.tensors == NULL && st.data == NULL, "struct cleared on failure");
    CHECK(truncate(path, 12) == 0, "truncate 2");
    rc = safetensors_read(path, &st);
    CHECK_ERR(rc, path, "larger than the rest of the file");
}

static void test_safetensors_malformed(void) {
    SafeTensors st;
    unsigned char data[64];
    memset(data, 0, sizeof data);
    const char *p = temp_path("bad.safetensors");
    int rc;

    const char *missing = temp_path("missing.safetensors");
    rc = safetensors_read(missing, &st);
    CHECK_ERR(rc, missing, "No such file");

    write_bytes(p, "\x10\x00\x00", 3);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "only 3 bytes");

    write_bytes(p, "\x00\x10\x00\x00\x00\x00\x00\x00{}", 10);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "header length 4096", "larger than the rest");

    write_bytes(p, "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "larger than the rest");

    write_st_raw(p, "{\"a\": {\"dtype\": \"F32\",, }}", data, 8);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "bad JSON", "expected a string key at byte 22");

    write_st_raw(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}", data, 8);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "bad JSON");

    write_st_raw(p, "[1, 2]", data, 0);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "bad JSON", "object");

    write_st_raw(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}} x", data, 8);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "bad JSON", "after the JSON value");

    write_st_raw(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 8]}}", data, 8);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "'a'", "shape entry 0", "not an integer");

    write_st_raw(p, "{\"a\xff\": {}}", data, 0);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "UTF-8");

    write_st_raw(p, "{\"a\\q\": {}}", data, 0);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "bad JSON", "escape");

    char deep[200] = "{\"a\":";
    for (int k = 0; k < 40; k++) strcat(deep, "[");
    write_st_raw(p, deep, data, 0);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "bad JSON", "nesting");

    write_st_raw(p, "{\"w\": {\"dtype\": \"F8_E4M3\", \"shape\": [2], \"data_offsets\": [0, 2]}}", data, 2);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "'w'", "unsupported dtype 'F8_E4M3'");

    write_st_raw(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", data, 8);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "'w'", "negative");

    write_st_raw(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 16]}}", data, 24);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "'w'", "needs 24 bytes", "[2,3]");

    write_st_raw(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8]}}", data, 8);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "'w'", "data_offsets");

    write_st_raw(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2]}}", data, 8);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "'w'", "missing field 'data_offsets'");

    write_st_raw(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", data, 8);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "'w'", "past the end");

    write_st_raw(p,
                 "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                 " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                 data, 12);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "'a'", "'b'", "overlap");

    write_st_raw(p,
                 "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                 " \"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}",
                 data, 16);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "bad JSON", "'a'", "twice");

    /* An empty tensor name (safetensors_write refuses to write one, so no round trip could keep it). */
    write_st_raw(p, "{\"\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1]}}", data, 1);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "empty name");

    write_st_raw(p, "{\"__metadata__\": {\"k\": 1}}", data, 0);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "__metadata__", "'k'");

    /* Offsets far past the end, and a header length just below 2^64 (so 8 + length wraps around). */
    write_st_raw(p, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4611686018427387904, "
                    "4611686018427387912]}}", data, 8);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "'w'", "past the end");
    write_bytes(p, "\xf8\xff\xff\xff\xff\xff\xff\xff{}      ", 16);
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "18446744073709551608", "larger than the rest");

    /* A header over the format's 100 MB limit is refused before it is read or parsed (sparse file). */
    unsigned char big_len[8] = {0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0}; /* 100000001 */
    write_bytes(p, big_len, 8);
    CHECK(truncate(p, 8 + 100000001) == 0, "making a sparse file");
    rc = safetensors_read(p, &st);
    CHECK_ERR(rc, p, "header length 100000001", "limit");

    /* Accepted: an empty tensor inside another's range, a \u escape with a surrogate pair, gaps. */
    write_st_raw(p,
                 "{\"a\": {\"dtype\": \"U8\", \"shape\": [8], \"data_offsets\": [0, 8]},"
                 " \"e\\u00e9\\ud83d\\ude00\": {\"dtype\": \"I32\", \"shape\": [0, 3], \"data_offsets\": [4, 4]},"
                 " \"c\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [12, 16]}}    ",
                 data, 16);
    rc = safetensors_read(p, &st);
    CHECK(rc == 0, "valid unusual file rejected: %s", hs_last_error());
    if (rc == 0) {
        CHECK(safetensors_find(&st, "e\xc3\xa9\xf0\x9f\x98\x80") != NULL, "unicode name decoded");
        safetensors_free(&st);
    }
}

/* ---------------------------------------------------------------- npy */

/* Writes a .npy file with the given version, header dict (padded like NumPy) and n data bytes. */
static void write_npy_raw(const char *path, int major, const char *dict, const void *data, size_t n) {
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t hl = (pre + dl + 1 + 63) / 64 * 64 - pre;
    unsigned char *buf = calloc(1, pre + hl + n + 1);
    if (!buf) return;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    for (size_t k = 0; k < pre - 8; k++) buf[8 + k] = (unsigned char)(hl >> (8 * k));
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', hl - dl - 1);
    buf[pre + hl - 1] = '\n';
    if (n) memcpy(buf + pre + hl, data, n);
    write_bytes(path, buf, pre + hl + n);
    free(buf);
}

static void test_npy_roundtrip(void) {
    NpyArray a;
    const char *p1 = temp_path("v.npy");
    float v[5] = {1.0f, -0.5f, 3.25e-20f, 1e30f, 0.1f};
    int64_t s1[1] = {5};
    CHECK(npy_write_f32(p1, v, 1, s1) == 0, "npy_write_f32: %s", hs_last_error());
    unsigned char raw[512];
    size_t n = read_bytes(p1, raw, sizeof raw);
    size_t hl = raw[8] | (size_t)raw[9] << 8;
    CHECK(n == 10 + hl + 20 && (10 + hl) % 64 == 0 && raw[9 + hl] == '\n', "npy layout: size %zu header %zu", n, hl);
    const char *d1 = "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }";
    CHECK(n > 10 + strlen(d1) && memcmp(raw + 10, d1, strlen(d1)) == 0, "npy 1-D header text");
    CHECK(npy_read(p1, &a) == 0, "npy_read f32: %s", hs_last_error());
    CHECK(a.ndim == 1 && a.shape[0] == 5 && a.numel == 5 && a.word_size == 4, "f32 1-D meta");
    for (int k = 0; k < 5 && a.data; k++) CHECK(a.data[k] == (double)v[k], "v[%d] = %g", k, a.data[k]);
    npy_free(&a);

    const char *p2 = temp_path("m.npy");
    double m[12];
    for (int k = 0; k < 12; k++) m[k] = (k - 5.5) / 3.0;
    int64_t s2[2] = {3, 4};
    CHECK(npy_write_f64(p2, m, 2, s2) == 0, "npy_write_f64: %s", hs_last_error());
    n = read_bytes(p2, raw, sizeof raw);
    hl = raw[8] | (size_t)raw[9] << 8;
    const char *d2 = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }";
    CHECK(n == 10 + hl + 96 && (10 + hl) % 64 == 0 && memcmp(raw + 10, d2, strlen(d2)) == 0, "npy 2-D header");
    CHECK(npy_read(p2, &a) == 0, "npy_read f64: %s", hs_last_error());
    CHECK(a.ndim == 2 && a.shape[0] == 3 && a.shape[1] == 4 && a.numel == 12 && a.word_size == 8, "f64 2-D meta");
    for (int k = 0; k < 12 && a.data; k++) CHECK(a.data[k] == m[k], "m[%d] = %.17g", k, a.data[k]);
    npy_free(&a);

    const char *p3 = temp_path("f32m.npy");
    float mf[6] = {1, 2, 3, 4, 5, 6};
    int64_t s3[2] = {2, 3};
    CHECK(npy_write_f32(p3, mf, 2, s3) == 0 && npy_read(p3, &a) == 0, "f32 2-D: %s", hs_last_error());
    CHECK(a.ndim == 2 && a.shape[1] == 3 && a.data && a.data[5] == 6.0, "f32 2-D values");
    npy_free(&a);

    const char *p4 = temp_path("s.npy");
    double sc = -7.5;
    CHECK(npy_write_f64(p4, &sc, 0, NULL) == 0 && npy_read(p4, &a) == 0, "0-D: %s", hs_last_error());
    CHECK(a.ndim == 0 && a.numel == 1 && a.data && a.data[0] == -7.5, "0-D values");
    npy_free(&a);

    const char *p5 = temp_path("z.npy");
    int64_t s5[2] = {0, 4};
    CHECK(npy_write_f64(p5, NULL, 2, s5) == 0 && npy_read(p5, &a) == 0, "empty: %s", hs_last_error());
    CHECK(a.ndim == 2 && a.numel == 0, "empty meta");
    npy_free(&a);
    CHECK(temp_count(".tmp.") == 0, "no temporaries left by npy writes");

    /* Version 2.0 and 3.0 files, double quotes and no trailing comma. */
    double two[2] = {2.5, -1};
    const char *p6 = temp_path("v2.npy");
    write_npy_raw(p6, 2, "{\"descr\": \"<f8\", \"shape\": (2, 1), \"fortran_order\": False}", two, 16);
    CHECK(npy_read(p6, &a) == 0, "npy v2.0: %s", hs_last_error());
    CHECK(a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 1 && a.data && a.data[1] == -1.0, "v2 values");
    npy_free(&a);
    write_npy_raw(p6, 3, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", two, 16);
    CHECK(npy_read(p6, &a) == 0 && a.ndim == 1 && a.shape[0] == 2, "npy v3.0: %s", hs_last_error());
    npy_free(&a);
}

static void test_npy_malformed(void) {
    NpyArray a;
    const char *p = temp_path("bad.npy");
    double d[6] = {1, 2, 3, 4, 5, 6};
    int rc;

    const char *missing = temp_path("missing.npy");
    rc = npy_read(missing, &a);
    CHECK_ERR(rc, missing, "No such file");

    write_bytes(p, "\x93NUMPZ\x01\x00\x10\x00{}", 12);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "magic");

    write_bytes(p, "\x93NU", 3);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "magic");

    write_npy_raw(p, 4, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }", d, 48);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "version 4.0");

    write_npy_raw(p, 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", d, 48);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "fortran_order");

    write_npy_raw(p, 1, "{'descr': '>f8', 'fortran_order': False, 'shape': (6,), }", d, 48);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "'>f8'", "big-endian");

    write_npy_raw(p, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (6,), }", d, 48);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "unsupported dtype '<i8'");

    write_npy_raw(p, 1, "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (6,), }", d, 48);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "structured");

    write_npy_raw(p, 1, "{'descr': '<f8', 'shape': (6,), }", d, 48);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "missing key 'fortran_order'");

    write_npy_raw(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (-6,), }", d, 48);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "negative");

    write_npy_raw(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,) ", d, 48);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "malformed header");

    write_npy_raw(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", d, 40);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "truncated", "48 bytes");

    write_bytes(p, "\x93NUMPY\x01\x00\x76\x00{'descr'", 18);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "truncated");

    unsigned char longer[56] = {0};
    memcpy(longer, d, 48);
    write_npy_raw(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", longer, 56);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "after the 6 elements");

    double withnan[6] = {1, 2, 3, 4, NAN, 6};
    write_npy_raw(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", withnan, 48);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "element 4", "[1, 1]", "NaN");
    CHECK(a.data == NULL && a.numel == 0, "array cleared on failure");

    float withinf[3] = {1, -INFINITY, 0};
    write_npy_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", withinf, 12);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "element 1", "infinite");

    int64_t bad_shape[1] = {-1};
    rc = npy_write_f64(p, d, 1, bad_shape);
    CHECK_ERR(rc, p, "negative");
}

/* A hostile shape must be compared with the file size before anything is allocated: the file is ~200 bytes,
 * the header claims 8e18 or 8.8e12 bytes of data. The reader must fail at once, naming the mismatch, not
 * report an allocation failure (or succeed in allocating and then find the data missing). */
static void test_npy_hostile_shape(void) {
    NpyArray a;
    const char *p = temp_path("hostile.npy");
    double d[4] = {1, 2, 3, 4};
    int rc;

    write_npy_raw(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 1000000000), }", d, 32);
    CHECK(file_size(p) < 200, "hostile file is small (%ld bytes)", file_size(p));
    double t0 = hs_seconds();
    rc = npy_read(p, &a);
    CHECK(hs_seconds() - t0 < 1.0, "hostile shape rejected quickly (%.3f s)", hs_seconds() - t0);
    CHECK_ERR(rc, p, "truncated", "expected 8000000000000000000 bytes", "found 32");

    write_npy_raw(p, 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }", d, 32);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "truncated", "expected 8796093022208 bytes", "found 32");

    write_npy_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", d, 32);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "shape is too large");

    /* The overflow check does not depend on where a zero dimension sits; a zero with sane dimensions is fine. */
    write_npy_raw(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4611686018427387904, 4), }", d, 0);
    rc = npy_read(p, &a);
    CHECK_ERR(rc, p, "shape is too large");
    write_npy_raw(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 0, 1099511627776), }", d, 0);
    rc = npy_read(p, &a);
    CHECK(rc == 0 && a.numel == 0 && a.ndim == 3, "empty array: %s", hs_last_error());
    npy_free(&a);

    /* 1 GiB claimed by a small file, read in a child whose address space cannot grow by 256 MiB: allocating
     * first would fail with "out of memory" there. (Skipped under AddressSanitizer, which needs a huge
     * address space.) */
#if !defined(__SANITIZE_ADDRESS__)
    write_npy_raw(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (134217728,), }", d, 32);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        long pages = 0;
        FILE *fp = fopen("/proc/self/statm", "r");
        if (!fp || fscanf(fp, "%ld", &pages) != 1) _exit(3);
        fclose(fp);
        struct rlimit lim;
        lim.rlim_cur = lim.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)256 << 20);
        if (setrlimit(RLIMIT_AS, &lim) != 0) _exit(3);
        int child_rc = npy_read(p, &a);
        _exit(child_rc == -1 && err_has("truncated") && err_has("expected 1073741824 bytes") ? 0 : 1);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "1 GiB shape in a small file rejected without allocating (child status %d)", status);
#endif

    /* A folder is not an .npy file (and a pipe could not be size-checked before reading). */
    rc = npy_read(tmp_dir, &a);
    CHECK_ERR(rc, tmp_dir, "not a regular file");
}

int main(void) {
    if (temp_dir_create("hs_test_io") != 0) return 1;
    test_json_writer();
    test_atomic_file();
    test_safetensors_roundtrip();
    test_safetensors_malformed();
    test_npy_roundtrip();
    test_npy_malformed();
    test_npy_hostile_shape();
    temp_dir_remove();
    return check_summary("test_io");
}
