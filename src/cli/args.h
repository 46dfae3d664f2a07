/* args.h: declarative command-line options for hessian's commands. Each command lists its options in a
 * table; args_parse fills the targets and refuses, as usage errors: unknown options (suggesting the nearest
 * name), an option given twice, a missing value, a value that begins with "--" (the next option, not a value),
 * and numbers that are not strictly well formed. It prints --help from the same table. Range checks and
 * conflicts between options stay with the command (args_check_* helpers, args_given).
 *
 * Syntax: "--name value" or "--name=value"; flags take no value. A spec's name may carry its value's
 * placeholder after a space ("--json FILE"); without one, --help shows N for integers, X for numbers and a
 * placeholder for the usual string options (DIR for --data, FILE for files, ...). A help text that contains
 * "(default" states its own default; otherwise the target's initial value is shown. */
#ifndef HS_ARGS_H
#define HS_ARGS_H

#include <stdint.h>

typedef enum { ARG_INT, ARG_DOUBLE, ARG_STRING, ARG_FLAG, ARG_U64 } ArgType;

typedef struct {
    const char *name; /* "--epochs", or "--json FILE" with the value's placeholder */
    ArgType type;
    void *target;     /* int*, double*, const char**, int* (flag set to 1), uint64_t* */
    const char *help; /* one line; default values are shown from the target's initial value */
    int required;
} ArgSpec;

/* Returns 0 on success, 1 when --help was printed (caller exits 0), -1 on error (message set). */
int args_parse(int argc, char **argv, const char *usage, const ArgSpec *specs, int count);
/* Whether option `name` ("--batch") appears in argv (either syntax). Meaningful after args_parse succeeded
 * (values never begin with "--", so every match is an option). */
int args_given(int argc, char **argv, const char *name);
/* Errors name the option: "--lr must be > 0 (got -1)". */
int args_check_positive_int(const char *name, int value);
int args_check_range(const char *name, double value, double lo, double hi);
/* Usage error when both options were given: "--a and --b exclude each other" + why. */
int args_check_exclusive(int argc, char **argv, const char *a, const char *b, const char *why);
/* Usage error when `name` was given although `reason` makes the command ignore it. */
int args_check_unused(int argc, char **argv, const char *name, const char *reason);
/* Parses "f32"/"f64" into 4/8 bytes; also picks the precision from argv before full parsing. */
int args_precision_bytes(const char *value);
const char *args_find_value(int argc, char **argv, const char *name);

/* Strict numbers: optional '-' (not for unsigned), decimal digits (and for doubles the usual fraction and
 * exponent), no whitespace, the whole text consumed, no overflow; doubles finite. 0, or -1 (no message). */
int args_parse_int(const char *text, int *out);
int args_parse_u64(const char *text, uint64_t *out);
int args_parse_double(const char *text, double *out);

/* The process's command line, for provenance: main() records it; commands read it. study replaces it while
 * a step runs with the step's equivalent command line, so the step's files say how to remake them alone. */
void args_set_command_line(int argc, char **argv);
void args_get_command_line(int *argc, char ***argv);
/* argv joined with spaces, each word quoted for a POSIX shell when needed ('it'\''s'); malloc'd. */
char *args_shell_join(int argc, char **argv);

#endif
