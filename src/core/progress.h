/* progress.h: progress reports for long work on stderr: "label step/total, rate, ETA" plus a caller
 * message (e.g. the running loss). On a terminal the line is redrawn in place at most 10 times a second;
 * otherwise a line is printed at most every 5 seconds, so logs stay short. */
#ifndef HS_PROGRESS_H
#define HS_PROGRESS_H

#include <stdint.h>

typedef struct Progress {
    const char *label;
    const char *unit;   /* "img", "batch", "HVP" */
    int64_t total;
    double start, last_print;
    int tty, quiet, printed;
} Progress;

void progress_begin(Progress *p, const char *label, const char *unit, int64_t total);
/* done = units finished so far; message may be NULL. */
void progress_update(Progress *p, int64_t done, const char *message);
/* Clears the in-place line (terminal) so the caller's result line stands alone. */
void progress_end(Progress *p);
/* HESSIAN_QUIET=1 or --quiet sets this for every Progress. */
void progress_set_quiet(int quiet);

#endif
