/* args.h: declarative command-line options for hessian's commands. Each command lists its options in a
 * table; args_parse fills the targets, rejects unknown flags, missing values and malformed numbers, and
 * prints --help from the same table. Range checks stay with the command (args_check_* helpers). */
#ifndef HS_ARGS_H
#define HS_ARGS_H

#include <stdint.h>

typedef enum { ARG_INT, ARG_DOUBLE, ARG_STRING, ARG_FLAG, ARG_U64 } ArgType;

typedef struct {
    const char *name; /* "--epochs" */
    ArgType type;
    void *target;     /* int*, double*, const char**, int* (flag set to 1), uint64_t* */
    const char *help; /* one line; default values are shown from the target's initial value */
    int required;
} ArgSpec;

/* Returns 0 on success, 1 when --help was printed (caller exits 0), -1 on error (message set). */
int args_parse(int argc, char **argv, const char *usage, const ArgSpec *specs, int count);
/* Errors name the option: "--lr must be > 0 (got -1)". */
int args_check_positive_int(const char *name, int value);
int args_check_range(const char *name, double value, double lo, double hi);
/* Parses "f32"/"f64" into 4/8 bytes; also picks the precision from argv before full parsing. */
int args_precision_bytes(const char *value);
const char *args_find_value(int argc, char **argv, const char *name);

#endif
