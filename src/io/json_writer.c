/* json_writer.c: a streaming JSON writer for result files (see json_writer.h). It inserts commas and
 * indentation for the caller: object members go one per line, indented two spaces per level, arrays are
 * written inline ("[1, 2, 3]"). Strings are escaped per RFC 8259 (quote, backslash and control characters;
 * UTF-8 bytes pass through), doubles are printed with the fewest significant digits (1 to 17, "%.*g";
 * integers below 1e15 in full) that read back bit-exact through strtod, and NaN or infinite values become
 * null (never a bare token). The functions return nothing: write errors are left in the stream's error flag,
 * which atomic_file_commit() (or the caller's fclose/ferror) reports.
 *
 * State: need_comma[d] for nesting level d holds bit 0 = "a value was already written at this level" and
 * bit 1 = "this level is an array"; level 0 is the top level. */
#include "json_writer.h"

#include <math.h>
#include <stdlib.h>

#define JW_HAS_ITEMS 1
#define JW_IS_ARRAY 2
#define JW_MAX_LEVEL 63

static int level_index(const JsonWriter *w) { return w->depth < JW_MAX_LEVEL ? w->depth : JW_MAX_LEVEL; }

static void newline_indent(JsonWriter *w, int depth) {
    fputc('\n', w->fp);
    for (int i = 0; i < depth; i++) fputs("  ", w->fp);
}

/* Called before every value or key: writes the separator the current position needs. */
static void before_item(JsonWriter *w, int is_key) {
    if (w->after_key && !is_key) {
        w->after_key = 0;
        return; /* the value of a key: "key": value */
    }
    int *state = &w->need_comma[level_index(w)];
    if (*state & JW_HAS_ITEMS) fputc(',', w->fp);
    if (w->depth > 0) {
        if (*state & JW_IS_ARRAY) {
            if (*state & JW_HAS_ITEMS) fputc(' ', w->fp);
        } else {
            newline_indent(w, w->depth);
        }
    }
    *state |= JW_HAS_ITEMS;
}

static void write_escaped(FILE *fp, const char *s) {
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        unsigned char c = *p;
        switch (c) {
        case '"': fputs("\\\"", fp); break;
        case '\\': fputs("\\\\", fp); break;
        case '\b': fputs("\\b", fp); break;
        case '\f': fputs("\\f", fp); break;
        case '\n': fputs("\\n", fp); break;
        case '\r': fputs("\\r", fp); break;
        case '\t': fputs("\\t", fp); break;
        default:
            if (c < 0x20)
                fprintf(fp, "\\u%04x", (unsigned)c);
            else
                fputc(c, fp);
        }
    }
    fputc('"', fp);
}

void json_begin(JsonWriter *w, FILE *fp) {
    w->fp = fp;
    w->depth = 0;
    w->after_key = 0;
    for (int i = 0; i < 64; i++) w->need_comma[i] = 0;
}

void json_end(JsonWriter *w) { fputc('\n', w->fp); }

static void container_begin(JsonWriter *w, char open, int is_array) {
    before_item(w, 0);
    fputc(open, w->fp);
    w->depth++;
    w->need_comma[level_index(w)] = is_array ? JW_IS_ARRAY : 0;
}

static void container_end(JsonWriter *w, char close) {
    int state = w->need_comma[level_index(w)];
    if (w->depth > 0) w->depth--;
    if ((state & JW_HAS_ITEMS) && !(state & JW_IS_ARRAY)) newline_indent(w, w->depth);
    fputc(close, w->fp);
}

void json_object_begin(JsonWriter *w) { container_begin(w, '{', 0); }
void json_object_end(JsonWriter *w) { container_end(w, '}'); }
void json_array_begin(JsonWriter *w) { container_begin(w, '[', 1); }
void json_array_end(JsonWriter *w) { container_end(w, ']'); }

void json_key(JsonWriter *w, const char *key) {
    before_item(w, 1);
    write_escaped(w->fp, key);
    fputs(": ", w->fp);
    w->after_key = 1;
}

void json_string(JsonWriter *w, const char *s) {
    before_item(w, 0);
    write_escaped(w->fp, s);
}

int json_format_double(char out[JSON_DOUBLE_CHARS], double x) {
    if (!isfinite(x)) {
        snprintf(out, JSON_DOUBLE_CHARS, "null");
        return -1;
    }
    if (x == floor(x) && fabs(x) < 1e15) { /* an integer: all its digits, "1500" rather than "1.5e+03" */
        snprintf(out, JSON_DOUBLE_CHARS, "%.0f", x);
        return 0;
    }
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(out, JSON_DOUBLE_CHARS, "%.*g", digits, x);
        if (strtod(out, NULL) == x) break;
    }
    return 0;
}

static void write_double(FILE *fp, double x) {
    char text[JSON_DOUBLE_CHARS];
    json_format_double(text, x);
    fputs(text, fp);
}

void json_double(JsonWriter *w, double x) {
    before_item(w, 0);
    write_double(w->fp, x);
}

void json_int(JsonWriter *w, int64_t x) {
    before_item(w, 0);
    fprintf(w->fp, "%lld", (long long)x);
}

void json_uint(JsonWriter *w, uint64_t x) {
    before_item(w, 0);
    fprintf(w->fp, "%llu", (unsigned long long)x);
}

void json_bool(JsonWriter *w, int b) {
    before_item(w, 0);
    fputs(b ? "true" : "false", w->fp);
}

void json_null(JsonWriter *w) {
    before_item(w, 0);
    fputs("null", w->fp);
}

void json_double_array(JsonWriter *w, const double *x /* (n) */, int64_t n) {
    json_array_begin(w);
    for (int64_t i = 0; i < n; i++) json_double(w, x[i]);
    json_array_end(w);
}
