/* json_reader.h: the library's one JSON reader: a small, strict parser from a byte buffer into a tree
 * (JsonValue), with lookup by key, and a helper that reads a whole file. Used for the safetensors header,
 * the result files `hessian study` reads back, and the tests' golden files.
 *
 * Strict RFC 8259: one value with optional whitespace around it, no comments, no trailing commas, no NaN or
 * Infinity, numbers per the JSON grammar (no leading zeros, no '+', no bare '.'), strings in valid UTF-8 with
 * every escape (\" \\ \/ \b \f \n \r \t \uXXXX, surrogate pairs joined; a lone surrogate is an error).
 * Policies beyond the RFC:
 *   - nesting deeper than JSON_MAX_DEPTH arrays/objects is an error (bounds the recursion);
 *   - a key that occurs twice in one object is an error ("key 'k' appears twice");
 *   - \u0000 is an error: decoded strings are NUL-terminated C strings with no NUL inside;
 *   - a number that overflows a double (1e999) is an error; underflow rounds to 0 or a subnormal.
 * Numbers: `number` is the correctly rounded double (strtod); a number written as an integer (no fraction,
 * no exponent) that fits int64 also has is_int = 1 and its exact value in `integer`.
 * Errors: hs_error() with the problem and the byte offset of it in the buffer ("... at byte 17"). */
#ifndef HS_JSON_READER_H
#define HS_JSON_READER_H

#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 32

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } JsonType;

typedef struct JsonValue {
    JsonType type;
    size_t offset;           /* byte offset of the value's first character in the parsed buffer */
    int boolean;             /* JSON_BOOL: 0 or 1 */
    double number;           /* JSON_NUMBER */
    int is_int;              /* JSON_NUMBER written as an integer that fits int64 */
    int64_t integer;         /* exact value when is_int */
    char *string;            /* JSON_STRING: decoded UTF-8, NUL-terminated */
    size_t length;           /* JSON_STRING: bytes before the NUL */
    int count;               /* JSON_ARRAY / JSON_OBJECT: number of items */
    struct JsonValue *items; /* (count) array items or object values, in document order */
    char **keys;             /* (count) JSON_OBJECT keys (decoded, unique) */
} JsonValue;

/* Parses text[0..len) (need not be NUL-terminated) into *out. On error returns -1 with a message naming the
 * problem and its byte offset, and leaves *out empty (safe to json_free). */
int json_parse(const char *text /* (len) */, size_t len, JsonValue *out);
/* Reads and parses a whole file; messages name the file. */
int json_read_file(const char *path, JsonValue *out);
/* Frees the tree below v and clears v. */
void json_free(JsonValue *v);

/* The value at key in object obj; NULL when obj is NULL, not an object, or has no such key. */
const JsonValue *json_get(const JsonValue *obj, const char *key);
/* Item i of array (or value i of object) v; NULL when out of range or v is not a container. */
const JsonValue *json_at(const JsonValue *v, int i);
/* The number at key in obj, or fallback when absent or not a number. */
double json_get_number(const JsonValue *obj, const char *key, double fallback);
/* The string at key in obj, or NULL when absent or not a string. */
const char *json_get_string(const JsonValue *obj, const char *key);
/* Every number in v (an array, possibly nested, or a single number) in document order, flattened into
 * out (at most max written); returns how many there are, or -1 when v holds anything but arrays and numbers. */
int json_numbers(const JsonValue *v, double *out /* (max) */, int max);
/* "null", "a boolean", "a number", "a string", "an array", "an object": for messages. */
const char *json_type_name(JsonType type);

#endif
