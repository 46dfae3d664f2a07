/* atomic_file.h: write a file through a temporary name in the same folder and rename it into place on
 * success, so readers never see a half-written result; open temporaries are removed on SIGINT/SIGTERM and
 * stale ones of the same output (left by a killed process) by the next open of that output. */
#ifndef HS_ATOMIC_FILE_H
#define HS_ATOMIC_FILE_H

#include <stdio.h>

struct AtomicTemp; /* the registered temporary (removed by the signal handler) */

typedef struct {
    FILE *fp;
    char *path;
    char *tmp_path; /* PATH.tmp.PID.XXXXXX */
    struct AtomicTemp *temp;
} AtomicFile;

/* Creates the temporary PATH.tmp.PID.XXXXXX beside path, after removing stale temporaries of path (names of
 * exactly that pattern whose PID no longer runs). While SIGINT or SIGTERM is at its default action, a
 * handler is installed that removes every open temporary and then dies of the signal as before. Atomic files
 * are opened and closed from one thread at a time. */
int atomic_file_open(AtomicFile *af, const char *path);
/* Flushes, fsyncs, closes, renames and fsyncs the folder; on any error removes the temporary file and
 * returns -1. */
int atomic_file_commit(AtomicFile *af);
/* Removes the temporary file without touching `path`. */
void atomic_file_abort(AtomicFile *af);
/* Checks before any work that `path` can be written: it is not a folder, its folder exists and a temporary
 * can be created there (it is removed again). With canonical != NULL, *canonical receives (malloc'd) the
 * real path of the folder + "/" + the name: two outputs replace the same file exactly when these are equal
 * (the rename replaces the name itself, also when it is a link). */
int atomic_file_probe(const char *path, char **canonical);

#endif
