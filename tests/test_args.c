/* test_args.c: the command line's strict pieces: number parsing (signs, spaces, trailing text, overflow,
 * non-finite values), option parsing (repeated options, values that begin with "--", --name=value, flags,
 * required options, "did you mean"), shell quoting of the recorded command line, and the JSON writer's
 * shortest exact number text over many random doubles. args.c belongs to the CLI, not the library, so it is
 * compiled into this test. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/cli/args.c"
#include "../src/io/json_writer.h"
#include "check.h"

static void test_numbers(void) {
    int i = 0;
    uint64_t u = 0;
    double d = 0;
    CHECK(args_parse_int("5", &i) == 0 && i == 5, "int 5");
    CHECK(args_parse_int("-3", &i) == 0 && i == -3, "int -3");
    CHECK(args_parse_int("-2147483648", &i) == 0 && i == INT32_MIN, "int min");
    CHECK(args_parse_int("2147483647", &i) == 0 && i == INT32_MAX, "int max");
    const char *bad_ints[] = {"", " 5", "5 ", "+5", "5x", "0x10", "2147483648", "-2147483649", "99999999999999999999",
                              "-", "1e3", "1.0", "--5"};
    for (size_t k = 0; k < sizeof bad_ints / sizeof *bad_ints; k++)
        CHECK(args_parse_int(bad_ints[k], &i) != 0, "int '%s' must be refused", bad_ints[k]);
    CHECK(args_parse_u64("18446744073709551615", &u) == 0 && u == UINT64_MAX, "u64 max");
    CHECK(args_parse_u64("0", &u) == 0 && u == 0, "u64 0");
    const char *bad_u64[] = {"", "-1", " -1", " 1", "1 ", "+1", "18446744073709551616", "1e3", "0x1", "-0"};
    for (size_t k = 0; k < sizeof bad_u64 / sizeof *bad_u64; k++)
        CHECK(args_parse_u64(bad_u64[k], &u) != 0, "u64 '%s' must be refused", bad_u64[k]);
    struct {
        const char *text;
        double value;
    } good_doubles[] = {{"1e-4", 1e-4}, {"-1", -1}, {".5", 0.5}, {"5.", 5}, {"0", 0}, {"-0.25E+2", -25},
                        {"0e-999", 0},  {"4.9e-324", 4.9e-324}, {"1.7976931348623157e308", 1.7976931348623157e308}};
    for (size_t k = 0; k < sizeof good_doubles / sizeof *good_doubles; k++)
        CHECK(args_parse_double(good_doubles[k].text, &d) == 0 && d == good_doubles[k].value, "double '%s'",
              good_doubles[k].text);
    const char *bad_doubles[] = {"", " 1", "1 ", "+1", "nan", "inf", "-inf", "1e400", "1e-400", "0x1p-3", ".", "e5",
                                 "1e", "1e+", "1.2.3", "--1"};
    for (size_t k = 0; k < sizeof bad_doubles / sizeof *bad_doubles; k++)
        CHECK(args_parse_double(bad_doubles[k], &d) != 0, "double '%s' must be refused", bad_doubles[k]);
}

typedef struct {
    int n, flag;
    double x;
    const char *s;
    uint64_t seed;
} Opts;

static int parse(Opts *o, int argc, char **argv) {
    *o = (Opts){3, 0, 0.5, NULL, 7};
    ArgSpec specs[] = {
        {"--count N", ARG_INT, &o->n, "a count", 0},      {"--flag", ARG_FLAG, &o->flag, "a flag", 0},
        {"--x", ARG_DOUBLE, &o->x, "a number", 0},        {"--json FILE", ARG_STRING, &o->s, "a file", 1},
        {"--seed", ARG_U64, &o->seed, "a seed", 0},
    };
    return args_parse(argc, argv, "usage: test", specs, (int)(sizeof specs / sizeof specs[0]));
}

#define ARGV(...) ((char *[]){__VA_ARGS__}), (int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *))
static int parse_list(Opts *o, char **argv, int argc) { return parse(o, argc, argv); }

static void test_parser(void) {
    Opts o;
    CHECK(parse_list(&o, ARGV("--json", "a.json", "--count=4", "--x", "-2.5", "--flag", "--seed", "9")) == 0 &&
              o.n == 4 && o.x == -2.5 && o.flag && strcmp(o.s, "a.json") == 0 && o.seed == 9,
          "good arguments: %s", hs_last_error());
    CHECK(parse_list(&o, ARGV("--json=b.json")) == 0 && strcmp(o.s, "b.json") == 0 && o.n == 3, "--name=value");
    CHECK(parse_list(&o, ARGV("--json", "a", "--count", "1", "--count", "2")) != 0 &&
              strstr(hs_last_error(), "--count is given twice"),
          "repeated: %s", hs_last_error());
    CHECK(parse_list(&o, ARGV("--json", "a", "--flag", "--flag")) != 0 && strstr(hs_last_error(), "--flag is given twice"),
          "repeated flag: %s", hs_last_error());
    CHECK(parse_list(&o, ARGV("--json", "--count=2")) != 0 && strstr(hs_last_error(), "--json needs a value"),
          "value beginning with --: %s", hs_last_error());
    CHECK(parse_list(&o, ARGV("--json=--x", "--count=2")) != 0 && strstr(hs_last_error(), "--json needs a value"),
          "inline value beginning with --: %s", hs_last_error());
    CHECK(parse_list(&o, ARGV("--json", "a", "--count", "--flag")) != 0 &&
              strstr(hs_last_error(), "--count needs a value, got the option '--flag'"),
          "numeric value beginning with --: %s", hs_last_error());
    CHECK(parse_list(&o, ARGV("--json", "a", "--flag=1")) != 0 && strstr(hs_last_error(), "takes no value"), "flag=1");
    CHECK(parse_list(&o, ARGV("--count", "2")) != 0 && strstr(hs_last_error(), "missing required option --json"),
          "required: %s", hs_last_error());
    CHECK(parse_list(&o, ARGV("--json", "a", "--cuont", "2")) != 0 && strstr(hs_last_error(), "did you mean --count?"),
          "suggestion: %s", hs_last_error());
    CHECK(parse_list(&o, ARGV("--json", "a", "--zzzzzzzz")) != 0 && !strstr(hs_last_error(), "did you mean"),
          "no far-fetched suggestion: %s", hs_last_error());
    CHECK(parse_list(&o, ARGV("--json", "a", "stray")) != 0 && strstr(hs_last_error(), "unexpected argument 'stray'"),
          "positional: %s", hs_last_error());
    CHECK(parse_list(&o, ARGV("--json", "a", "--seed", " -1")) != 0, "seed ' -1'");
    CHECK(parse_list(&o, ARGV("--json", "a", "--x", "nan")) != 0, "x nan");
    CHECK(parse_list(&o, ARGV("--json", "")) != 0 && strstr(hs_last_error(), "non-empty"), "empty string");
    CHECK(edit_distance("--sampels", "--samples") == 1 && edit_distance("abc", "abc") == 0 &&
              edit_distance("", "abc") == 3 && edit_distance("kitten", "sitting") == 3,
          "edit distances");
}

static void test_shell_join(void) {
    char *argv[] = {"bin/hessian", "hvp", "--json", "a b.json", "--out", "it's", "--x=1", ""};
    char *line = args_shell_join(8, argv);
    const char *want = "bin/hessian hvp --json 'a b.json' --out 'it'\\''s' --x=1 ''";
    CHECK(line && strcmp(line, want) == 0, "shell join: [%s], want [%s]", line ? line : "(null)", want);
    free(line);
}

/* Significant digits of a "%g" text ("%g" drops trailing zeros of the fraction). */
static int digits(const char *text) {
    int n = 0, leading = 1;
    for (const char *p = text; *p && *p != 'e'; p++) {
        if (*p < '0' || *p > '9' || (*p == '0' && leading)) continue;
        leading = 0;
        n++;
    }
    return n ? n : 1;
}

/* 1 when x is written as the shortest text that reads back exactly (integers below 1e15 in full); else prints
 * why and returns 0. */
static int shortest_ok(double x) {
    char text[JSON_DOUBLE_CHARS], shorter[512];
    if (json_format_double(text, x) != 0) return fprintf(stderr, "FAIL: %.17g refused\n", x), 0;
    double back = strtod(text, NULL);
    if (back != x || signbit(back) != signbit(x))
        return fprintf(stderr, "FAIL: %.17g written as %s reads back as %.17g\n", x, text, back), 0;
    if (x == floor(x) && fabs(x) < 1e15) {
        if (strchr(text, 'e') || strchr(text, '.')) return fprintf(stderr, "FAIL: integer %.17g as %s\n", x, text), 0;
        return 1;
    }
    int n = digits(text);
    snprintf(shorter, sizeof shorter, "%.*g", n - 1, x);
    if (n > 1 && strtod(shorter, NULL) == x)
        return fprintf(stderr, "FAIL: %s is not the shortest text for %.17g (%s reads back)\n", text, x, shorter), 0;
    return 1;
}

static void test_shortest_numbers(void) {
    char text[JSON_DOUBLE_CHARS];
    struct {
        double x;
        const char *want;
    } fixed[] = {{0.1, "0.1"},       {1.0 / 3, "0.3333333333333333"}, {1e21, "1e+21"}, {1500, "1500"},
                 {-0.0, "-0"},       {2.5e-300, "2.5e-300"},          {5e-324, "5e-324"}, {0.3, "0.3"},
                 {0.1 + 0.2, "0.30000000000000004"}, {1e15, "1e+15"}, {123456.5, "123456.5"},
                 {(double)0.1f, "0.10000000149011612"}, {-1e-7, "-1e-07"}};
    for (size_t k = 0; k < sizeof fixed / sizeof *fixed; k++) {
        json_format_double(text, fixed[k].x);
        CHECK(strcmp(text, fixed[k].want) == 0, "%.17g written as %s, want %s", fixed[k].x, text, fixed[k].want);
    }
    CHECK(json_format_double(text, NAN) != 0 && strcmp(text, "null") == 0, "NaN -> null, error");
    CHECK(json_format_double(text, -INFINITY) != 0 && strcmp(text, "null") == 0, "-Inf -> null, error");
    uint64_t state = 0x9E3779B97F4A7C15ull;
    int checked = 0, failures = 0;
    for (int k = 0; k < 200000; k++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17; /* xorshift64 */
        double x;
        uint64_t bits = state;
        memcpy(&x, &bits, sizeof x);
        if (!isfinite(x)) continue;
        if (k % 4 == 1) x = (double)(float)(x * 1e-300); /* values that came from float32 */
        if (k % 4 == 2) x = (double)(bits >> 11) * 0x1p-53 * 1e3 - 500; /* ordinary magnitudes */
        if (k % 4 == 3) x = floor((double)(int64_t)bits / 1e4);        /* integers */
        failures += !shortest_ok(x);
        checked++;
    }
    CHECK(checked > 190000 && failures == 0, "random doubles: %d of %d not shortest or not exact", failures, checked);
}

int main(void) {
    test_numbers();
    test_parser();
    test_shell_join();
    test_shortest_numbers();
    return check_summary("test_args");
}
