/* fuzz_args.c: libFuzzer harness for the command-line option parser (args_parse in src/cli/args.c). The input
 * is a NUL-separated argv (at most 64 arguments) parsed against a table holding every option type, one of them
 * required. Invariants: a success leaves the required option set to a non-empty string and every other target
 * either at its default or at a value of the right kind; a failure has a message. args_find_value and
 * args_precision_bytes run on the same argv. --help output goes to stdout (run.sh passes -close_fd_mask=1). */
#include "fuzz_common.h"

#include <math.h>

#include "../../src/cli/args.h"
#include "../../src/core/common.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    FUZZ_ASSERT(buf, "out of memory");
    if (size) memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    for (size_t at = 0; at < size && argc < MAX_ARGS;) { /* a trailing NUL ends the last argument */
        argv[argc++] = buf + at;
        at += strlen(buf + at) + 1;
    }
    argv[argc] = NULL;

    int epochs = 10, verbose = 0;
    double lr = 0.1;
    const char *out = NULL, *data_dir = NULL;
    uint64_t seed = 42;
    const ArgSpec specs[] = {
        {.name = "--data", .type = ARG_STRING, .target = &data_dir, .help = "data folder", .required = 1},
        {.name = "--epochs", .type = ARG_INT, .target = &epochs, .help = "epochs"},
        {.name = "--lr", .type = ARG_DOUBLE, .target = &lr, .help = "learning rate"},
        {.name = "--out", .type = ARG_STRING, .target = &out, .help = "output file"},
        {.name = "--seed", .type = ARG_U64, .target = &seed, .help = "seed"},
        {.name = "--verbose", .type = ARG_FLAG, .target = &verbose, .help = "more output"},
    };
    const char *precision = args_find_value(argc, argv, "--precision");
    int bytes = args_precision_bytes(precision);
    FUZZ_ASSERT(bytes == 4 || bytes == 8 || bytes == -1, "precision bytes %d", bytes);
    int rc = args_parse(argc, argv, "usage: fuzz_args [options]", specs, (int)(sizeof specs / sizeof specs[0]));
    if (rc == 0) {
        FUZZ_ASSERT(data_dir && data_dir[0], "required --data missing after a successful parse");
        FUZZ_ASSERT(!out || out[0], "empty --out accepted");
        FUZZ_ASSERT(isfinite(lr), "non-finite --lr accepted");
        FUZZ_ASSERT(verbose == 0 || verbose == 1, "flag value %d", verbose);
        args_check_positive_int("--epochs", epochs);
        args_check_range("--lr", lr, 0, 10);
    } else {
        FUZZ_ASSERT(rc == 1 || rc == -1, "args_parse returned %d", rc);
        if (rc == -1) FUZZ_ASSERT(hs_last_error()[0], "failure without a message");
    }
    free(buf);
    return 0;
}
