/* test_json.c: tests for the strict JSON reader (src/io/json_reader.h): valid documents of every type and the
 * tree they give (key lookup, arrays, nested values, byte offsets), numbers (int64 exactness at the limits,
 * doubles correctly rounded, -0, exponents, integers past int64 kept as doubles), string escapes (every
 * simple escape, \u in the BMP, surrogate pairs, raw UTF-8), the nesting limit (JSON_MAX_DEPTH levels
 * accepted, one more refused), the duplicate-key policy (refused at any depth, naming the key), the
 * rejection of malformed input with the byte offset in the message, a buffer that is not NUL-terminated,
 * the writer's output read back (io/json_writer.h), and json_read_file on a missing and a valid file. */
#define _XOPEN_SOURCE 700
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/common.h"
#include "../src/io/json_reader.h"
#include "../src/io/json_writer.h"
#include "check.h"
#include "temp_dir.h"

static int parse(const char *text, JsonValue *v) { return json_parse(text, strlen(text), v); }

/* text must be rejected with a message holding `what` (and, when at >= 0, "at byte <at>"). */
static void expect_error(const char *text, const char *what, long at) {
    JsonValue v;
    int rc = parse(text, &v);
    char where[48] = "";
    if (at >= 0) snprintf(where, sizeof where, "at byte %ld", at);
    CHECK(rc == -1 && strstr(hs_last_error(), what) && strstr(hs_last_error(), where) && v.type == JSON_NULL &&
              v.items == NULL,
          "'%s': rc %d, message \"%s\", expected \"%s\" %s", text, rc, hs_last_error(), what, where);
}

static void test_document(void) {
    const char *text = " {\"name\": \"hessian\", \"n\": 3, \"x\": -2.5e-3, \"ok\": true, \"no\": false, \"none\": null,\n"
                       "  \"list\": [1, [2, 3], {\"k\": \"v\"}, []], \"empty\": {}} ";
    JsonValue root;
    int rc = parse(text, &root);
    CHECK(rc == 0, "valid document rejected: %s", hs_last_error());
    if (rc != 0) return;
    CHECK(root.type == JSON_OBJECT && root.count == 8 && root.offset == 1, "root: type %d count %d offset %zu",
          (int)root.type, root.count, root.offset);
    CHECK(json_get_string(&root, "name") && strcmp(json_get_string(&root, "name"), "hessian") == 0, "name");
    const JsonValue *n = json_get(&root, "n");
    CHECK(n && n->type == JSON_NUMBER && n->is_int && n->integer == 3 && n->number == 3.0, "n");
    CHECK(json_get_number(&root, "x", NAN) == -2.5e-3 && !json_get(&root, "x")->is_int, "x");
    CHECK(json_get(&root, "ok")->type == JSON_BOOL && json_get(&root, "ok")->boolean == 1, "true");
    CHECK(json_get(&root, "no")->type == JSON_BOOL && json_get(&root, "no")->boolean == 0, "false");
    CHECK(json_get(&root, "none")->type == JSON_NULL, "null");
    CHECK(json_get(&root, "missing") == NULL && isnan(json_get_number(&root, "missing", NAN)), "missing key");
    CHECK(isnan(json_get_number(&root, "name", NAN)) && json_get_string(&root, "n") == NULL, "wrong types");
    const JsonValue *list = json_get(&root, "list");
    CHECK(list && list->type == JSON_ARRAY && list->count == 4, "list");
    CHECK(json_at(list, 1)->type == JSON_ARRAY && json_at(json_at(list, 1), 1)->integer == 3, "nested array");
    CHECK(strcmp(json_get_string(json_at(list, 2), "k"), "v") == 0, "object in array");
    CHECK(json_at(list, 3)->type == JSON_ARRAY && json_at(list, 3)->count == 0, "empty array");
    CHECK(json_at(list, 4) == NULL && json_at(list, -1) == NULL && json_at(n, 0) == NULL, "json_at out of range");
    CHECK(json_get(list, "k") == NULL && json_get(NULL, "k") == NULL, "json_get on a non-object");
    CHECK(json_get(&root, "empty")->type == JSON_OBJECT && json_get(&root, "empty")->count == 0, "empty object");
    CHECK(json_get(&root, "list")->offset == (size_t)(strstr(text, "[1,") - text), "offset of a value");
    double nums[8];
    CHECK(json_numbers(json_get(&root, "list"), nums, 8) == -1, "json_numbers refuses an object inside");
    json_free(&root);
    CHECK(root.type == JSON_NULL && root.items == NULL && root.count == 0, "json_free clears");

    /* Scalars at the top level, and json_numbers over nested arrays (count past max, only max written). */
    CHECK(parse("42", &root) == 0 && root.type == JSON_NUMBER && root.integer == 42, "top-level number");
    json_free(&root);
    CHECK(parse("\"s\"", &root) == 0 && root.type == JSON_STRING && strcmp(root.string, "s") == 0, "top-level string");
    json_free(&root);
    CHECK(parse("[[1, 2], [3, [4.5]], []]", &root) == 0, "nested numbers");
    nums[3] = 0;
    CHECK(json_numbers(&root, nums, 3) == 4 && nums[0] == 1 && nums[2] == 3 && nums[3] == 0, "json_numbers max");
    CHECK(json_numbers(&root, nums, 8) == 4 && nums[3] == 4.5, "json_numbers flattened");
    json_free(&root);

    /* The buffer need not be NUL-terminated: only len bytes are read. */
    char buf[8] = {'[', '1', '2', ']', '9', '9', '9', '9'};
    CHECK(json_parse(buf, 4, &root) == 0 && root.count == 1 && root.items[0].integer == 12, "length-bounded buffer");
    json_free(&root);
    CHECK(json_parse(buf, 3, &root) == -1 && strstr(hs_last_error(), "at byte 3"), "truncated buffer: %s",
          hs_last_error());
    CHECK(json_parse(buf, 0, &root) == -1 && strstr(hs_last_error(), "end of input"), "empty input: %s",
          hs_last_error());
}

static void test_numbers(void) {
    JsonValue v;
    struct {
        const char *text;
        int is_int;
        int64_t integer;
        double number;
    } cases[] = {
        {"0", 1, 0, 0.0},
        {"-0", 1, 0, -0.0},
        {"9223372036854775807", 1, INT64_MAX, 9223372036854775807.0},
        {"-9223372036854775808", 1, INT64_MIN, -9223372036854775808.0},
        {"9223372036854775808", 0, 0, 9223372036854775808.0},   /* past int64: a double only */
        {"-9223372036854775809", 0, 0, -9223372036854775808.0}, /* rounds to -2^63 */
        {"9007199254740993", 1, 9007199254740993LL, 9007199254740992.0}, /* exact int, rounded double */
        {"1.0", 0, 0, 1.0},
        {"1e3", 0, 0, 1000.0},
        {"1E+3", 0, 0, 1000.0},
        {"25e-1", 0, 0, 2.5},
        {"0.1", 0, 0, 0.1},
        {"-1.7976931348623157e308", 0, 0, -1.7976931348623157e308},
        {"4.9e-324", 0, 0, 4.9e-324},
        {"1e-400", 0, 0, 0.0}, /* underflow rounds to zero */
        {"3.141592653589793238462643383279502884197", 0, 0, 3.141592653589793},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int rc = parse(cases[k].text, &v);
        CHECK(rc == 0 && v.type == JSON_NUMBER && v.is_int == cases[k].is_int &&
                  (!v.is_int || v.integer == cases[k].integer) && v.number == cases[k].number &&
                  signbit(v.number) == signbit(cases[k].number),
              "number '%s': rc %d is_int %d integer %lld number %.17g (%s)", cases[k].text, rc, v.is_int,
              (long long)v.integer, v.number, rc ? hs_last_error() : "");
        json_free(&v);
    }
    expect_error("01", "leading zero", 0);
    expect_error("-", "expected a digit", 0);
    expect_error("+1", "unexpected character '+'", 0);
    expect_error(".5", "unexpected character '.'", 0);
    expect_error("1.", "after '.'", 0);
    expect_error("1.e5", "after '.'", 0);
    expect_error("1e", "exponent", 0);
    expect_error("1e+", "exponent", 0);
    expect_error("[1e999]", "out of the range", 1);
    expect_error("NaN", "unexpected character 'N'", 0);
    expect_error("[Infinity]", "unexpected character 'I'", 1);
    expect_error("[-Infinity]", "expected a digit", 1);
    expect_error("0x10", "after the JSON value", 1);
}

static void test_strings(void) {
    JsonValue v;
    int rc = parse("\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t e\\u00e9 \\u20AC \\ud83d\\ude00 raw \xc3\xa9\xe2\x82\xac\"", &v);
    const char *want = "q\" b\\ s/ \b\f\n\r\t e\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 raw \xc3\xa9\xe2\x82\xac";
    CHECK(rc == 0 && v.type == JSON_STRING && strcmp(v.string, want) == 0 && v.length == strlen(want),
          "escapes decoded: rc %d '%s' (%s)", rc, rc ? "" : v.string, rc ? hs_last_error() : "");
    json_free(&v);
    CHECK(parse("{\"\\u006b\": 1}", &v) == 0 && json_get(&v, "k") != NULL, "escaped key");
    json_free(&v);
    CHECK(parse("\"\"", &v) == 0 && v.length == 0 && v.string && v.string[0] == 0, "empty string");
    json_free(&v);
    expect_error("\"abc", "unterminated string", 0);
    expect_error("[\"a\\", "unterminated string", 1);
    expect_error("\"a\\q\"", "invalid escape '\\q'", 2);
    expect_error("\"a\\u12\"", "bad hex digit", 6);
    expect_error("\"a\\u12", "unterminated string", 0);
    expect_error("\"\\ud83d\\u12\"", "bad hex digit", 11);
    expect_error("\"\\ud83d\"", "unpaired UTF-16 surrogate", 1);
    expect_error("\"\\ud83d\\u0041\"", "unpaired UTF-16 surrogate", 1);
    expect_error("\"\\ude00\"", "unpaired UTF-16 surrogate", 1);
    expect_error("\"a\\u0000b\"", "NUL", 2);
    expect_error("\"tab\there\"", "control character 0x09", 4);
    expect_error("\"bad \xff\"", "invalid UTF-8", 5);
    expect_error("\"overlong \xc0\xaf\"", "invalid UTF-8", 10);
    expect_error("\"surrogate \xed\xa0\x80\"", "invalid UTF-8", 11);
    expect_error("\"cut \xe2\x82\"", "invalid UTF-8", 5);
    expect_error("[1, \xff]", "unexpected byte 0xff", 4);
    expect_error("{'a': 1}", "expected a string key", 1);
}

static void test_structure(void) {
    expect_error("", "end of input", 0);
    expect_error("   ", "end of input", 3);
    expect_error("[1, 2", "end inside an array", 5);
    expect_error("[1 2]", "expected ',' or ']'", 3);
    expect_error("[1, ]", "unexpected character ']'", 4);
    expect_error("[,1]", "unexpected character ','", 1);
    expect_error("{\"a\" 1}", "expected ':'", 5);
    expect_error("{\"a\": 1,}", "expected a string key", 8);
    expect_error("{\"a\": 1", "end inside an object", 7);
    expect_error("{\"a\": }", "unexpected character '}'", 6);
    expect_error("[1] [2]", "after the JSON value", 4);
    expect_error("[tru]", "unexpected character 't'", 1);
    expect_error("nul", "unexpected character 'n'", 0);
    expect_error("// c\n1", "unexpected character '/'", 0);

    /* Nesting: JSON_MAX_DEPTH levels are accepted, one more is refused at the bracket that goes too deep. */
    char deep[2 * JSON_MAX_DEPTH + 8];
    for (int extra = 0; extra <= 1; extra++) {
        int d = JSON_MAX_DEPTH + extra, n = 0;
        for (int k = 0; k < d; k++) deep[n++] = '[';
        for (int k = 0; k < d; k++) deep[n++] = ']';
        deep[n] = 0;
        JsonValue v;
        int rc = parse(deep, &v);
        if (extra == 0)
            CHECK(rc == 0, "%d levels refused: %s", d, hs_last_error());
        else
            CHECK(rc == -1 && strstr(hs_last_error(), "nesting deeper than 32") &&
                      strstr(hs_last_error(), "at byte 32"),
                  "%d levels: %s", d, hs_last_error());
        json_free(&v);
    }
    expect_error("{\"a\": {\"b\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "nesting", -1);

    /* Duplicate keys are refused at any depth, naming the key and pointing at its second value. */
    expect_error("{\"a\": 1, \"b\": 2, \"a\": 3}", "key 'a' appears twice", 22);
    expect_error("[{\"x\": {\"k\": 1, \"k\": 1}}]", "key 'k' appears twice", 21);
    /* Many keys (the sorted check), with the duplicate far apart; distinct keys that share prefixes pass. */
    char big[4096];
    int n = snprintf(big, sizeof big, "{");
    for (int k = 0; k < 100; k++) n += snprintf(big + n, sizeof big - (size_t)n, "\"key%d\": %d, ", k, k);
    JsonValue v;
    snprintf(big + n, sizeof big - (size_t)n, "\"key\": 0}");
    CHECK(parse(big, &v) == 0 && v.count == 101 && json_get(&v, "key57")->integer == 57, "101 distinct keys: %s",
          hs_last_error());
    json_free(&v);
    snprintf(big + n, sizeof big - (size_t)n, "\"key7\": 0}");
    CHECK(parse(big, &v) == -1 && strstr(hs_last_error(), "key 'key7' appears twice"), "duplicate among 101: %s",
          hs_last_error());
}

/* What json_writer writes, json_reader reads back (every value the writer can produce). */
static void test_writer_round_trip(void) {
    const char *path = temp_path("w.json");
    FILE *fp = fopen(path, "w");
    CHECK(fp != NULL, "open %s", path);
    if (!fp) return;
    JsonWriter w;
    json_begin(&w, fp);
    json_object_begin(&w);
    json_key(&w, "s");
    json_string(&w, "a\"b\\c\n\t\x01 \xc3\xa9");
    json_key(&w, "i");
    json_int(&w, -9007199254740993LL);
    json_key(&w, "u");
    json_uint(&w, 18446744073709551615ULL);
    json_key(&w, "d");
    json_double(&w, 0.1);
    json_key(&w, "inf");
    json_double(&w, INFINITY);
    double vals[3] = {1, -2.5e-300, 1.0 / 3};
    json_key(&w, "vals");
    json_double_array(&w, vals, 3);
    json_key(&w, "nested");
    json_object_begin(&w);
    json_key(&w, "b");
    json_bool(&w, 1);
    json_object_end(&w);
    json_object_end(&w);
    json_end(&w);
    fclose(fp);
    JsonValue v;
    int rc = json_read_file(path, &v);
    CHECK(rc == 0, "writer output rejected: %s", hs_last_error());
    if (rc != 0) return;
    CHECK(strcmp(json_get_string(&v, "s"), "a\"b\\c\n\t\x01 \xc3\xa9") == 0, "string round trip");
    CHECK(json_get(&v, "i")->is_int && json_get(&v, "i")->integer == -9007199254740993LL, "int64 exact");
    CHECK(!json_get(&v, "u")->is_int && json_get(&v, "u")->number == 18446744073709551615.0, "uint64 as double");
    CHECK(json_get_number(&v, "d", 0) == 0.1 && json_get(&v, "inf")->type == JSON_NULL, "doubles");
    double got[4];
    CHECK(json_numbers(json_get(&v, "vals"), got, 4) == 3 && got[1] == -2.5e-300 && got[2] == 1.0 / 3,
          "double array exact");
    CHECK(json_get(json_get(&v, "nested"), "b")->boolean == 1, "nested");
    json_free(&v);

    const char *missing = temp_path("missing.json");
    CHECK(json_read_file(missing, &v) == -1 && strstr(hs_last_error(), missing), "missing file: %s", hs_last_error());
    fp = fopen(path, "w");
    if (fp) {
        fputs("{\"a\": [1, 2,]}", fp);
        fclose(fp);
    }
    CHECK(json_read_file(path, &v) == -1 && strstr(hs_last_error(), path) && strstr(hs_last_error(), "bad JSON") &&
              strstr(hs_last_error(), "at byte 12"),
          "bad file: %s", hs_last_error());
}

int main(void) {
    temp_dir_create("hs_test_json");
    test_document();
    test_numbers();
    test_strings();
    test_structure();
    test_writer_round_trip();
    temp_dir_remove();
    return check_summary("test_json");
}
