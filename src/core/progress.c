/* progress.c: progress reports with rate and ETA on stderr (see progress.h); rank 0 alone reports in a
 * data-parallel run. */
#define _POSIX_C_SOURCE 200809L
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common.h"
#include "../parallel/dist.h"

static int global_quiet = -1;

void progress_set_quiet(int quiet) { global_quiet = quiet; }

void progress_begin(Progress *p, const char *label, const char *unit, int64_t total) {
    if (global_quiet < 0) {
        const char *q = getenv("HESSIAN_QUIET");
        global_quiet = q && q[0] == '1';
    }
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->start = hs_seconds();
    p->last_print = 0;
    p->tty = isatty(2);
    p->quiet = global_quiet || !dist_is_root(); /* rank 0 alone reports (it runs the whole job's loop too) */
    p->printed = 0;
}

static void format_duration(char *out, size_t size, double s) {
    if (s < 0 || s > 1e7) snprintf(out, size, "?");
    else if (s < 60) snprintf(out, size, "%.0fs", s);
    else if (s < 3600) snprintf(out, size, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(out, size, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

void progress_update(Progress *p, int64_t done, const char *message) {
    if (p->quiet) return;
    double now = hs_seconds();
    int last = done >= p->total;
    if (!last && now - p->last_print < (p->tty ? 0.1 : 5.0)) return;
    if (!p->tty && !last && now - p->start < 5.0) return;
    p->last_print = now;
    double elapsed = now - p->start;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    char eta[32], spent[32];
    format_duration(eta, sizeof eta, rate > 0 ? (double)(p->total - done) / rate : -1);
    format_duration(spent, sizeof spent, elapsed);
    int width = 24, filled = p->total > 0 ? (int)(width * (double)done / (double)p->total) : 0;
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "%s%s [%s] %lld/%lld %s, %.1f %s/s, %s elapsed, ETA %s%s%s%s", p->tty ? "\r\033[K" : "",
            p->label, bar, (long long)done, (long long)p->total, p->unit, rate, p->unit, spent, eta,
            message ? " | " : "", message ? message : "", p->tty ? "" : "\n");
    fflush(stderr);
    p->printed = 1;
}

void progress_end(Progress *p) {
    if (p->quiet || !p->printed) return;
    if (p->tty) fprintf(stderr, "\r\033[K");
    fflush(stderr);
}
