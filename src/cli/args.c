/* args.c: the declarative option parser shared by all commands (see args.h). */
#include "args.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/common.h"

/* ---- strict numbers ---- */

static int all_digits(const char *p) {
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9') p++;
    return *p == 0;
}

int args_parse_int(const char *text, int *out) {
    if (!text || !all_digits(text[0] == '-' ? text + 1 : text)) return -1;
    errno = 0;
    long long x = strtoll(text, NULL, 10);
    if (errno || x < -2147483647LL - 1 || x > 2147483647LL) return -1;
    *out = (int)x;
    return 0;
}

int args_parse_u64(const char *text, uint64_t *out) {
    if (!text || !all_digits(text)) return -1;
    errno = 0;
    unsigned long long x = strtoull(text, NULL, 10);
    if (errno) return -1; /* ERANGE: above 2^64 - 1 */
    *out = (uint64_t)x;
    return 0;
}

int args_parse_double(const char *text, double *out) {
    /* Decimal only: [-]digits[.digits][e[+-]digits] or [-].digits...; no hex, inf, nan or spaces. */
    const char *p = text;
    if (!p) return -1;
    if (*p == '-') p++;
    int digits = 0;
    while (*p >= '0' && *p <= '9') p++, digits++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') p++, digits++;
    }
    if (!digits) return -1;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!all_digits(p)) return -1;
    } else if (*p) {
        return -1;
    }
    char *end;
    double x = strtod(text, &end);
    if (*end || !isfinite(x)) return -1;
    /* Underflow: a text with a non-zero digit before its exponent must not read as zero. */
    if (x == 0 && strcspn(text, "123456789") < strcspn(text, "eE")) return -1;
    *out = x;
    return 0;
}

/* ---- option names ---- */

/* Length of the option part of a spec name ("--json FILE" -> 6). */
static int opt_len(const char *spec_name) {
    const char *space = strchr(spec_name, ' ');
    return space ? (int)(space - spec_name) : (int)strlen(spec_name);
}

#define OPT(s) opt_len((s)->name), (s)->name /* for "%.*s" */

static const char *placeholder(const ArgSpec *s) {
    static const char *const known[][2] = {
        {"--data", "DIR"},      {"--model", "NAME"},      {"--precision", "f32|f64"},  {"--sharpness-at", "LIST"},
        {"--out", "FILE"},      {"--init", "FILE"},       {"--json", "FILE"},          {"--csv", "FILE"},
        {"--resume", "FILE"},   {"--checkpoint", "FILE"}, {"--sharpness-csv", "FILE"}, {"--sharpness-plot", "FILE"},
        {"--plot", "FILE"},
    };
    const char *space = strchr(s->name, ' ');
    if (space) return space + 1;
    switch (s->type) {
    case ARG_INT:
    case ARG_U64: return "N";
    case ARG_DOUBLE: return "X";
    case ARG_FLAG: return "";
    case ARG_STRING: break;
    }
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(s->name, known[i][0]) == 0) return known[i][1];
    return "VALUE";
}

static void print_help(const char *usage, const ArgSpec *specs, int count) {
    printf("%s\n\nOptions:\n", usage);
    for (int i = 0; i < count; i++) {
        const ArgSpec *s = &specs[i];
        char def[96] = "";
        if (!strstr(s->help, "(default")) {
            switch (s->type) {
            case ARG_INT: snprintf(def, sizeof def, " (default %d)", *(int *)s->target); break;
            case ARG_U64: snprintf(def, sizeof def, " (default %" PRIu64 ")", *(uint64_t *)s->target); break;
            case ARG_DOUBLE: snprintf(def, sizeof def, " (default %g)", *(double *)s->target); break;
            case ARG_STRING:
                if (*(const char **)s->target) snprintf(def, sizeof def, " (default %s)", *(const char **)s->target);
                break;
            case ARG_FLAG: break;
            }
        }
        const char *meta = placeholder(s);
        printf("  %.*s%s%s\n      %s%s%s\n", OPT(s), meta[0] ? " " : "", meta, s->help,
               s->required ? " (required)" : "", def);
    }
    printf("  --help\n      show this help\n\nOptions may be written --name VALUE or --name=VALUE, each at most once.\n"
           "Exit status: 0 success, 1 failure while running (bad input file, numerical error), 2 usage error.\n");
}

/* Optimal-string-alignment distance (edits, with adjacent transpositions), for "did you mean". */
static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 64;
    int d[64][64];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

static int unknown_option(const char *name, const ArgSpec *specs, int count) {
    int best = -1, best_d = 1 + (int)strlen(name) / 3;
    char buf[64];
    for (int j = 0; j < count; j++) {
        snprintf(buf, sizeof buf, "%.*s", OPT(&specs[j]));
        int dist = edit_distance(name, buf);
        if (dist <= best_d && (best < 0 || dist < best_d)) best = j, best_d = dist;
    }
    if (best >= 0)
        return hs_error("unknown option '%s': did you mean %.*s? (see --help)", name, OPT(&specs[best]));
    return hs_error("unknown option '%s' (see --help)", name);
}

static int parse_value(const ArgSpec *s, const char *value) {
    if (strncmp(value, "--", 2) == 0) {
        if (s->type != ARG_STRING) return hs_error("%.*s needs a value, got the option '%s'", OPT(s), value);
        return hs_error("%.*s needs a value, got the option '%s' (a value cannot begin with \"--\"; write "
                        "./%s for such a file)", OPT(s), value, value);
    }
    switch (s->type) {
    case ARG_INT:
        if (args_parse_int(value, (int *)s->target) != 0)
            return hs_error("%.*s expects an integer, got '%s'", OPT(s), value);
        return 0;
    case ARG_U64:
        if (args_parse_u64(value, (uint64_t *)s->target) != 0)
            return hs_error("%.*s expects a non-negative integer below 2^64 (digits only), got '%s'", OPT(s), value);
        return 0;
    case ARG_DOUBLE:
        if (args_parse_double(value, (double *)s->target) != 0)
            return hs_error("%.*s expects a finite number, got '%s'", OPT(s), value);
        return 0;
    case ARG_STRING:
        if (!value[0]) return hs_error("%.*s expects a non-empty value", OPT(s));
        *(const char **)s->target = value;
        return 0;
    case ARG_FLAG: return 0;
    }
    return 0;
}

int args_parse(int argc, char **argv, const char *usage, const ArgSpec *specs, int count) {
    int seen[128] = {0};
    if (count > 128) return hs_error("internal error: too many options");
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help(usage, specs, count);
            return 1;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        char name[64];
        const char *inline_value = NULL;
        const char *eq = strchr(arg, '=');
        if (eq && strncmp(arg, "--", 2) == 0) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - arg), arg);
            inline_value = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", arg);
        }
        int found = -1;
        for (int j = 0; j < count; j++)
            if ((int)strlen(name) == opt_len(specs[j].name) && strncmp(specs[j].name, name, strlen(name)) == 0)
                found = j;
        if (found < 0) {
            if (arg[0] == '-') return unknown_option(name, specs, count);
            return hs_error("unexpected argument '%s' (see --help)", arg);
        }
        const ArgSpec *s = &specs[found];
        if (seen[found]) return hs_error("%.*s is given twice: give each option at most once", OPT(s));
        seen[found] = 1;
        if (s->type == ARG_FLAG) {
            if (inline_value) return hs_error("%.*s takes no value", OPT(s));
            *(int *)s->target = 1;
            continue;
        }
        const char *value = inline_value;
        if (!value) {
            if (i + 1 >= argc) return hs_error("%.*s needs a value", OPT(s));
            value = argv[++i];
        }
        HS_TRY(parse_value(s, value));
    }
    for (int j = 0; j < count; j++)
        if (specs[j].required && !seen[j])
            return hs_error("missing required option %.*s (see --help)", OPT(&specs[j]));
    return 0;
}

int args_given(int argc, char **argv, const char *name) { return args_find_value(argc, argv, name) != NULL; }

int args_check_positive_int(const char *name, int value) {
    if (value <= 0) return hs_error("%s must be a positive integer (got %d)", name, value);
    return 0;
}

int args_check_range(const char *name, double value, double lo, double hi) {
    if (!(value >= lo && value <= hi)) return hs_error("%s must be in [%g, %g] (got %g)", name, lo, hi, value);
    return 0;
}

int args_check_exclusive(int argc, char **argv, const char *a, const char *b, const char *why) {
    if (args_given(argc, argv, a) && args_given(argc, argv, b))
        return hs_error("%s and %s exclude each other%s%s", a, b, why ? ": " : "", why ? why : "");
    return 0;
}

int args_check_unused(int argc, char **argv, const char *name, const char *reason) {
    if (args_given(argc, argv, name)) return hs_error("%s has no effect %s; leave it out", name, reason);
    return 0;
}

int args_precision_bytes(const char *value) {
    if (!value || strcmp(value, "f32") == 0) return 4;
    if (strcmp(value, "f64") == 0) return 8;
    return hs_error("--precision must be f32 or f64 (got '%s')", value);
}

const char *args_find_value(int argc, char **argv, const char *name) {
    size_t len = strlen(name);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], name) == 0) return i + 1 < argc ? argv[i + 1] : "";
        if (strncmp(argv[i], name, len) == 0 && argv[i][len] == '=') return argv[i] + len + 1;
    }
    return NULL;
}

/* ---- the command line, for provenance ---- */

static int cl_argc;
static char **cl_argv;

void args_set_command_line(int argc, char **argv) {
    cl_argc = argc;
    cl_argv = argv;
}

void args_get_command_line(int *argc, char ***argv) {
    *argc = cl_argc;
    *argv = cl_argv;
}

char *args_shell_join(int argc, char **argv) {
    size_t size = 1;
    for (int i = 0; i < argc; i++) size += 4 * strlen(argv[i]) + 3;
    char *out = hs_malloc(size), *p = out;
    if (!out) return NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int plain = a[0] != 0;
        for (const char *c = a; *c; c++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%", *c)) plain = 0;
        if (i) *p++ = ' ';
        if (plain) {
            p += sprintf(p, "%s", a);
            continue;
        }
        *p++ = '\'';
        for (const char *c = a; *c; c++) {
            if (*c == '\'') p += sprintf(p, "'\\''");
            else *p++ = *c;
        }
        *p++ = '\'';
    }
    *p = 0;
    return out;
}
