/* common.h: shared definitions for every hessian source file: the scalar type `real`, the precision
 * suffix macro FN(), error reporting for library code, and checked allocation.
 *
 * Precision: files listed as GENERIC in the Makefile are compiled twice, once with HS_F32 (real = float,
 * FN(x) = x_f32) and once with HS_F64 (real = double, FN(x) = x_f64). Precision-independent code (I/O, data,
 * CLI) is compiled once and calls the suffixed functions explicitly.
 *
 * Errors: library functions return 0 on success and -1 on failure after calling hs_error(...) with a message;
 * they never exit. The CLI prints hs_last_error() and exits non-zero. */
#ifndef HS_COMMON_H
#define HS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "../../include/hessian.h" /* the public API: hs_last_error (declared there, exported) and its types */

#if defined(HS_F64)
typedef double real;
#define FN(name) name##_f64
#define HS_PRECISION_NAME "f64"
#elif defined(HS_F32)
typedef float real;
#define FN(name) name##_f32
#define HS_PRECISION_NAME "f32"
#endif

#define HS_VERSION "0.2.0"
/* The source's git commit (12 hex digits, "-dirty" when built from changed files), "unknown" outside git. */
const char *hs_git_commit(void);

/* Records an error message (printf-style) for the calling thread and returns -1. */
int hs_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* hs_last_error() (include/hessian.h): the last message recorded by hs_error on this thread ("" if none). */
/* Prefixes the current error message with context ("loading X: " + old message); returns -1. */
int hs_error_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* malloc/calloc that record an error (with the size) on failure and return NULL. */
void *hs_malloc(size_t bytes);
void *hs_calloc(size_t count, size_t size);

/* Wall-clock seconds (monotonic). */
double hs_seconds(void);

/* The CPU's model name from /proc/cpuinfo ("model name"), or "unknown"; written into out (size bytes). */
void hs_cpu_model(char *out, size_t size);

/* Propagates an error: if (expr) fails (non-zero), return -1. */
#define HS_TRY(expr)              \
    do {                          \
        if ((expr) != 0) return -1; \
    } while (0)

#endif
