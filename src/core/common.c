/* common.c: per-thread error messages, checked allocation, the monotonic clock and the CPU's name (see
 * common.h). */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char error_message[2048];

int hs_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    return -1;
}

int hs_error_context(const char *fmt, ...) {
    char old[sizeof error_message];
    memcpy(old, error_message, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof error_message)
        snprintf(error_message + n, sizeof error_message - (size_t)n, "%s", old);
    return -1;
}

const char *hs_last_error(void) { return error_message; }

void *hs_malloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) hs_error("out of memory allocating %zu bytes", bytes);
    return p;
}

void *hs_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) hs_error("out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

double hs_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void hs_cpu_model(char *out, size_t size) {
    snprintf(out, size, "unknown");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp) return;
    char line[512];
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *colon = strchr(line, ':');
        if (!colon) break;
        colon++;
        while (*colon == ' ' || *colon == '\t') colon++;
        size_t len = strcspn(colon, "\n");
        if (len) snprintf(out, size, "%.*s", (int)len, colon);
        break;
    }
    fclose(fp);
}
