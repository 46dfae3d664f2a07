/* json_writer.h: a small streaming JSON writer for result files (commas and nesting handled for the
 * caller; numbers in their shortest exact text; non-finite numbers are written as null). Usage:
 *   JsonWriter w; json_begin(&w, fp);
 *   json_object_begin(&w); json_key(&w, "d"); json_int(&w, 5100);
 *   json_key(&w, "eigenvalues"); json_double_array(&w, vals, 5); json_object_end(&w);
 *   json_end(&w);  // newline */
#ifndef HS_JSON_WRITER_H
#define HS_JSON_WRITER_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *fp;
    int depth;
    int need_comma[64];
    int after_key;
} JsonWriter;

void json_begin(JsonWriter *w, FILE *fp);
void json_end(JsonWriter *w);
void json_object_begin(JsonWriter *w);
void json_object_end(JsonWriter *w);
void json_array_begin(JsonWriter *w);
void json_array_end(JsonWriter *w);
void json_key(JsonWriter *w, const char *key);
void json_string(JsonWriter *w, const char *s);
void json_double(JsonWriter *w, double x);
void json_int(JsonWriter *w, int64_t x);
void json_uint(JsonWriter *w, uint64_t x);
void json_bool(JsonWriter *w, int b);
void json_null(JsonWriter *w);
void json_double_array(JsonWriter *w, const double *x, int64_t n);

/* The shortest text ("%.*g", 1 to 17 significant digits) that reads back as exactly x through strtod, as
 * json_double writes it (also for CSV files); "null" and -1 when x is NaN or infinite. */
#define JSON_DOUBLE_CHARS 32
int json_format_double(char out[JSON_DOUBLE_CHARS], double x);

#endif
