/* args.c: the declarative option parser shared by all commands (see args.h). */
#include "args.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/common.h"

static void print_help(const char *usage, const ArgSpec *specs, int count) {
    printf("%s\n\nOptions:\n", usage);
    for (int i = 0; i < count; i++) {
        const ArgSpec *s = &specs[i];
        char def[64] = "";
        switch (s->type) {
        case ARG_INT: snprintf(def, sizeof def, " (default %d)", *(int *)s->target); break;
        case ARG_U64: snprintf(def, sizeof def, " (default %" PRIu64 ")", *(uint64_t *)s->target); break;
        case ARG_DOUBLE: snprintf(def, sizeof def, " (default %g)", *(double *)s->target); break;
        case ARG_STRING:
            if (*(const char **)s->target) snprintf(def, sizeof def, " (default %s)", *(const char **)s->target);
            break;
        case ARG_FLAG: break;
        }
        const char *meta = s->type == ARG_FLAG ? "" : s->type == ARG_STRING ? " VALUE" : " N";
        printf("  %s%s\n      %s%s%s\n", s->name, meta, s->help, s->required ? " (required)" : "", def);
    }
    printf("  --help\n      show this help\n");
}

static int parse_value(const ArgSpec *s, const char *value) {
    char *end = NULL;
    errno = 0;
    switch (s->type) {
    case ARG_INT: {
        long x = strtol(value, &end, 10);
        if (errno || !end || *end || end == value || x < -2147483647L || x > 2147483647L)
            return hs_error("%s expects an integer, got '%s'", s->name, value);
        *(int *)s->target = (int)x;
        return 0;
    }
    case ARG_U64: {
        if (value[0] == '-') return hs_error("%s expects a non-negative integer, got '%s'", s->name, value);
        unsigned long long x = strtoull(value, &end, 10);
        if (errno || !end || *end || end == value)
            return hs_error("%s expects a non-negative integer, got '%s'", s->name, value);
        *(uint64_t *)s->target = (uint64_t)x;
        return 0;
    }
    case ARG_DOUBLE: {
        double x = strtod(value, &end);
        if (errno || !end || *end || end == value || !isfinite(x))
            return hs_error("%s expects a finite number, got '%s'", s->name, value);
        *(double *)s->target = x;
        return 0;
    }
    case ARG_STRING:
        if (!value[0]) return hs_error("%s expects a non-empty value", s->name);
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
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_help(usage, specs, count);
            return 1;
        }
        char name[64];
        const char *inline_value = NULL;
        const char *eq = strchr(arg, '=');
        if (eq && (size_t)(eq - arg) < sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - arg), arg);
            inline_value = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", arg);
        }
        int found = -1;
        for (int j = 0; j < count; j++)
            if (strcmp(specs[j].name, name) == 0) found = j;
        if (found < 0) {
            if (strncmp(arg, "-", 1) == 0) return hs_error("unknown option '%s' (see --help)", arg);
            return hs_error("unexpected argument '%s' (see --help)", arg);
        }
        const ArgSpec *s = &specs[found];
        seen[found] = 1;
        if (s->type == ARG_FLAG) {
            if (inline_value) return hs_error("%s takes no value", s->name);
            *(int *)s->target = 1;
            continue;
        }
        const char *value = inline_value;
        if (!value) {
            if (i + 1 >= argc) return hs_error("%s needs a value", s->name);
            value = argv[++i];
        }
        HS_TRY(parse_value(s, value));
    }
    for (int j = 0; j < count; j++)
        if (specs[j].required && !seen[j]) return hs_error("missing required option %s (see --help)", specs[j].name);
    return 0;
}

int args_check_positive_int(const char *name, int value) {
    if (value <= 0) return hs_error("%s must be a positive integer (got %d)", name, value);
    return 0;
}

int args_check_range(const char *name, double value, double lo, double hi) {
    if (!(value >= lo && value <= hi)) return hs_error("%s must be in [%g, %g] (got %g)", name, lo, hi, value);
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
