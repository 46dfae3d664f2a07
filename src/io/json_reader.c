/* json_reader.c: the strict JSON reader of json_reader.h: a recursive-descent parser (depth-limited) over a
 * byte buffer building a JsonValue tree, key lookup, and a whole-file helper. Every error records the first
 * problem with its byte offset; the partly built tree is freed. */
#define _POSIX_C_SOURCE 200809L
#include "json_reader.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/common.h"

/* Files json_read_file accepts (a bound on what it allocates; hessian's JSON files are kilobytes). */
#define JSON_MAX_FILE ((size_t)1 << 30)

typedef struct {
    const char *p, *begin, *end;
    int depth;
    int failed;
} Parser;

static int fail_at(Parser *ps, const char *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_at(Parser *ps, const char *at, const char *fmt, ...) {
    if (ps->failed) return -1;
    ps->failed = 1;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return hs_error("%s at byte %zu", msg, (size_t)(at - ps->begin));
}

static void skip_ws(Parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

void json_free(JsonValue *v) {
    if (!v) return;
    free(v->string);
    for (int k = 0; k < v->count; k++) {
        json_free(&v->items[k]);
        if (v->keys) free(v->keys[k]);
    }
    free(v->items);
    free(v->keys);
    memset(v, 0, sizeof *v);
}

const char *json_type_name(JsonType type) {
    switch (type) {
    case JSON_NULL: return "null";
    case JSON_BOOL: return "a boolean";
    case JSON_NUMBER: return "a number";
    case JSON_STRING: return "a string";
    case JSON_ARRAY: return "an array";
    case JSON_OBJECT: return "an object";
    }
    return "?";
}

/* ---------------------------------------------------------------- strings */

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Four hex digits at ps->p (just after "\u"). */
static int hex4(Parser *ps, unsigned *out) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        if (ps->p + k >= ps->end) return fail_at(ps, ps->p + k, "truncated \\u escape");
        int d = hex_digit(ps->p[k]);
        if (d < 0) return fail_at(ps, ps->p + k, "bad hex digit in \\u escape");
        v = v * 16 + (unsigned)d;
    }
    ps->p += 4;
    *out = v;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (s < end, *s >= 0x80), or 0 when it is not one (overlong forms,
 * surrogates and code points past U+10FFFF are invalid). */
static size_t utf8_sequence(const unsigned char *s, const unsigned char *end) {
    unsigned c = s[0], cp;
    size_t len;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
    else return 0;
    if ((size_t)(end - s) < len) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static size_t put_utf8(char *buf, unsigned cp) {
    if (cp < 0x80) {
        buf[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        buf[0] = (char)(0xC0 | (cp >> 6));
        buf[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        buf[0] = (char)(0xE0 | (cp >> 12));
        buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        buf[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    buf[0] = (char)(0xF0 | (cp >> 18));
    buf[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    buf[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    buf[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One escape (ps->p just after the backslash) decoded into buf; returns the bytes written or -1. */
static int escape(Parser *ps, char *buf) {
    const char *at = ps->p - 1;
    if (ps->p >= ps->end) return fail_at(ps, at, "unterminated string");
    char e = *ps->p++;
    switch (e) {
    case '"': *buf = '"'; return 1;
    case '\\': *buf = '\\'; return 1;
    case '/': *buf = '/'; return 1;
    case 'b': *buf = '\b'; return 1;
    case 'f': *buf = '\f'; return 1;
    case 'n': *buf = '\n'; return 1;
    case 'r': *buf = '\r'; return 1;
    case 't': *buf = '\t'; return 1;
    case 'u': break;
    default:
        if ((unsigned char)e >= 0x20 && (unsigned char)e < 0x7f)
            return fail_at(ps, at, "invalid escape '\\%c' in string", e);
        return fail_at(ps, at, "invalid escape (byte 0x%02x after '\\') in string", (unsigned char)e);
    }
    unsigned cp;
    HS_TRY(hex4(ps, &cp));
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned lo;
        if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
            return fail_at(ps, at, "unpaired UTF-16 surrogate in \\u escape");
        ps->p += 2;
        HS_TRY(hex4(ps, &lo));
        if (lo < 0xDC00 || lo > 0xDFFF) return fail_at(ps, at, "unpaired UTF-16 surrogate in \\u escape");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return fail_at(ps, at, "unpaired UTF-16 surrogate in \\u escape");
    }
    if (cp == 0) return fail_at(ps, at, "\\u0000 (NUL) in a string is not supported");
    return (int)put_utf8(buf, cp);
}

/* A string (ps->p at the opening quote) into a malloc'd NUL-terminated buffer. */
static int parse_string(Parser *ps, char **out, size_t *out_len) {
    *out = NULL;
    const char *open = ps->p++;
    /* The decoded string is never longer than the encoded one ("\uXXXX" is 6 bytes, its UTF-8 at most 3;
     * a surrogate pair is 12 bytes for 4). */
    const char *q = ps->p;
    while (q < ps->end && *q != '"') q += (*q == '\\' && q + 1 < ps->end) ? 2 : 1;
    if (q >= ps->end) return fail_at(ps, open, "unterminated string");
    char *buf = malloc((size_t)(q - ps->p) + 1);
    if (!buf) return fail_at(ps, open, "out of memory for a string of %zu bytes", (size_t)(q - ps->p));
    size_t n = 0;
    for (;;) {
        if (ps->p >= ps->end) {
            free(buf);
            return fail_at(ps, open, "unterminated string");
        }
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20) {
            free(buf);
            return fail_at(ps, ps->p, "unescaped control character 0x%02x in string", c);
        }
        if (c == '\\') {
            ps->p++;
            int w = escape(ps, buf + n);
            if (w < 0) {
                free(buf);
                return -1;
            }
            n += (size_t)w;
        } else if (c < 0x80) {
            buf[n++] = (char)c;
            ps->p++;
        } else {
            size_t len = utf8_sequence((const unsigned char *)ps->p, (const unsigned char *)ps->end);
            if (len == 0) {
                free(buf);
                return fail_at(ps, ps->p, "invalid UTF-8 in string");
            }
            memcpy(buf + n, ps->p, len);
            n += len;
            ps->p += len;
        }
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

/* ---------------------------------------------------------------- numbers */

static int is_digit(const Parser *ps, const char *q) { return q < ps->end && *q >= '0' && *q <= '9'; }

static int parse_number(Parser *ps, JsonValue *v) {
    const char *start = ps->p, *q = ps->p;
    int neg = 0;
    if (*q == '-') {
        neg = 1;
        q++;
    }
    if (!is_digit(ps, q)) return fail_at(ps, start, "bad number (expected a digit after '-')");
    if (*q == '0' && is_digit(ps, q + 1)) return fail_at(ps, start, "number with a leading zero");
    /* Integer part, accumulated exactly while it fits int64. */
    uint64_t mag = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    int fits = 1;
    for (; is_digit(ps, q); q++) {
        unsigned d = (unsigned)(*q - '0');
        if (fits && mag <= (limit - d) / 10)
            mag = mag * 10 + d;
        else
            fits = 0;
    }
    int integral = 1;
    if (q < ps->end && *q == '.') {
        integral = 0;
        q++;
        if (!is_digit(ps, q)) return fail_at(ps, start, "bad number (expected a digit after '.')");
        while (is_digit(ps, q)) q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        integral = 0;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-')) q++;
        if (!is_digit(ps, q)) return fail_at(ps, start, "bad number (expected a digit in the exponent)");
        while (is_digit(ps, q)) q++;
    }
    /* strtod needs a NUL-terminated copy (the buffer need not be terminated). */
    size_t len = (size_t)(q - start);
    char small[64], *tmp = len < sizeof small ? small : malloc(len + 1);
    if (!tmp) return fail_at(ps, start, "out of memory for a number of %zu digits", len);
    memcpy(tmp, start, len);
    tmp[len] = '\0';
    errno = 0;
    double x = strtod(tmp, NULL);
    int overflow = errno == ERANGE && isinf(x);
    if (tmp != small) free(tmp);
    if (overflow)
        return fail_at(ps, start, "number %.*s is out of the range of a double", len > 40 ? 40 : (int)len, start);
    v->type = JSON_NUMBER;
    v->number = x;
    if (integral && fits) {
        v->is_int = 1;
        v->integer = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    }
    ps->p = q;
    return 0;
}

/* ---------------------------------------------------------------- containers */

static int parse_value(Parser *ps, JsonValue *v);

/* Appends one zeroed slot to container v (growing by doubling); NULL when out of memory. */
static JsonValue *push(Parser *ps, JsonValue *v, int *cap) {
    if (v->count == *cap) {
        if (*cap > (1 << 29)) {
            fail_at(ps, ps->p, "too many items in one %s", v->type == JSON_OBJECT ? "object" : "array");
            return NULL;
        }
        int nc = *cap ? 2 * *cap : 4;
        JsonValue *items = realloc(v->items, (size_t)nc * sizeof *items);
        if (!items) {
            fail_at(ps, ps->p, "out of memory");
            return NULL;
        }
        v->items = items;
        if (v->type == JSON_OBJECT) {
            char **keys = realloc(v->keys, (size_t)nc * sizeof *keys);
            if (!keys) {
                fail_at(ps, ps->p, "out of memory");
                return NULL;
            }
            v->keys = keys;
        }
        *cap = nc;
    }
    JsonValue *item = &v->items[v->count];
    memset(item, 0, sizeof *item);
    if (v->type == JSON_OBJECT) v->keys[v->count] = NULL;
    v->count++;
    return item;
}

typedef struct {
    const char *key;
    int index;
} KeyRef;

static int cmp_key_ref(const void *a, const void *b) {
    const KeyRef *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* Rejects a key that occurs twice in object v; the message names the key and points at its second use. */
static int check_duplicates(Parser *ps, const JsonValue *v) {
    if (v->count < 2) return 0;
    KeyRef *refs = malloc((size_t)v->count * sizeof *refs);
    if (!refs) return fail_at(ps, ps->p, "out of memory");
    for (int k = 0; k < v->count; k++) refs[k] = (KeyRef){v->keys[k], k};
    qsort(refs, (size_t)v->count, sizeof *refs, cmp_key_ref);
    int dup = -1; /* the earliest second occurrence */
    for (int k = 1; k < v->count; k++)
        if (strcmp(refs[k - 1].key, refs[k].key) == 0 && (dup < 0 || refs[k].index < dup)) dup = refs[k].index;
    free(refs);
    if (dup < 0) return 0;
    /* items[dup].offset is its value; the key is just before it. */
    return fail_at(ps, ps->begin + v->items[dup].offset, "key '%.80s' appears twice in an object", v->keys[dup]);
}

static int parse_container(Parser *ps, JsonValue *v, int is_object) {
    const char close = is_object ? '}' : ']';
    v->type = is_object ? JSON_OBJECT : JSON_ARRAY;
    if (++ps->depth > JSON_MAX_DEPTH) return fail_at(ps, ps->p, "nesting deeper than %d levels", JSON_MAX_DEPTH);
    ps->p++; /* opening bracket */
    int cap = 0;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return 0;
    }
    for (;;) {
        skip_ws(ps);
        char *key = NULL;
        size_t key_len;
        if (is_object) {
            if (ps->p >= ps->end) return fail_at(ps, ps->p, "unexpected end inside an object");
            if (*ps->p != '"') return fail_at(ps, ps->p, "expected a string key");
            HS_TRY(parse_string(ps, &key, &key_len));
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(key);
                return fail_at(ps, ps->p, "expected ':' after key");
            }
            ps->p++;
        }
        JsonValue *item = push(ps, v, &cap);
        if (!item) {
            free(key);
            return -1;
        }
        if (is_object) v->keys[v->count - 1] = key;
        HS_TRY(parse_value(ps, item));
        skip_ws(ps);
        if (ps->p >= ps->end)
            return fail_at(ps, ps->p, "unexpected end inside %s", is_object ? "an object" : "an array");
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == close) {
            ps->p++;
            ps->depth--;
            return is_object ? check_duplicates(ps, v) : 0;
        }
        return fail_at(ps, ps->p, "expected ',' or '%c'", close);
    }
}

static int literal(Parser *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return fail_at(ps, ps->p, "unexpected character '%c'", *ps->p);
    ps->p += n;
    return 0;
}

static int parse_value(Parser *ps, JsonValue *v) {
    memset(v, 0, sizeof *v);
    skip_ws(ps);
    v->offset = (size_t)(ps->p - ps->begin);
    if (ps->p >= ps->end) return fail_at(ps, ps->p, "unexpected end of input (expected a value)");
    char c = *ps->p;
    switch (c) {
    case '{': return parse_container(ps, v, 1);
    case '[': return parse_container(ps, v, 0);
    case '"': v->type = JSON_STRING; return parse_string(ps, &v->string, &v->length);
    case 't': v->type = JSON_BOOL; v->boolean = 1; return literal(ps, "true");
    case 'f': v->type = JSON_BOOL; return literal(ps, "false");
    case 'n': v->type = JSON_NULL; return literal(ps, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(ps, v);
        if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f)
            return fail_at(ps, ps->p, "unexpected character '%c'", c);
        return fail_at(ps, ps->p, "unexpected byte 0x%02x", (unsigned char)c);
    }
}

int json_parse(const char *text /* (len) */, size_t len, JsonValue *out) {
    memset(out, 0, sizeof *out);
    if (!text && len) return hs_error("json_parse: NULL text");
    Parser ps = {.p = text, .begin = text, .end = text + len};
    int rc = parse_value(&ps, out);
    if (rc == 0) {
        skip_ws(&ps);
        if (ps.p != ps.end) rc = fail_at(&ps, ps.p, "unexpected data after the JSON value");
    }
    if (rc != 0) json_free(out);
    return rc;
}

int json_read_file(const char *path, JsonValue *out) {
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp) return hs_error("cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return hs_error("%s: not a regular file", path);
    }
    if ((unsigned long long)sb.st_size > JSON_MAX_FILE) {
        fclose(fp);
        return hs_error("%s: %lld bytes is too large for a JSON file (limit %zu)", path, (long long)sb.st_size,
                        JSON_MAX_FILE);
    }
    size_t size = (size_t)sb.st_size;
    char *text = hs_malloc(size + 1);
    if (!text) {
        fclose(fp);
        return hs_error_context("%s: ", path);
    }
    size_t got = fread(text, 1, size, fp);
    int read_error = ferror(fp);
    fclose(fp);
    if (read_error || got != size) {
        free(text);
        return hs_error("%s: read error (file changed while reading?)", path);
    }
    int rc = json_parse(text, size, out);
    free(text);
    if (rc != 0) return hs_error_context("%s: bad JSON: ", path);
    return 0;
}

/* ---------------------------------------------------------------- lookup */

const JsonValue *json_get(const JsonValue *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    for (int k = 0; k < obj->count; k++)
        if (strcmp(obj->keys[k], key) == 0) return &obj->items[k];
    return NULL;
}

const JsonValue *json_at(const JsonValue *v, int i) {
    if (!v || (v->type != JSON_ARRAY && v->type != JSON_OBJECT) || i < 0 || i >= v->count) return NULL;
    return &v->items[i];
}

double json_get_number(const JsonValue *obj, const char *key, double fallback) {
    const JsonValue *v = json_get(obj, key);
    return v && v->type == JSON_NUMBER ? v->number : fallback;
}

const char *json_get_string(const JsonValue *obj, const char *key) {
    const JsonValue *v = json_get(obj, key);
    return v && v->type == JSON_STRING ? v->string : NULL;
}

static int collect_numbers(const JsonValue *v, double *out, int max, int *n) {
    if (v->type == JSON_NUMBER) {
        if (*n < max) out[*n] = v->number;
        ++*n;
        return 0;
    }
    if (v->type != JSON_ARRAY) return -1;
    for (int k = 0; k < v->count; k++) HS_TRY(collect_numbers(&v->items[k], out, max, n));
    return 0;
}

int json_numbers(const JsonValue *v, double *out /* (max) */, int max) {
    int n = 0;
    if (!v || collect_numbers(v, out, max, &n) != 0) return -1;
    return n;
}
