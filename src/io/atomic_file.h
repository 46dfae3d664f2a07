/* atomic_file.h: write a file through a temporary name in the same folder and rename it into place on
 * success, so readers never see a half-written result. */
#ifndef HS_ATOMIC_FILE_H
#define HS_ATOMIC_FILE_H

#include <stdio.h>

typedef struct {
    FILE *fp;
    char *path;
    char *tmp_path;
} AtomicFile;

int atomic_file_open(AtomicFile *af, const char *path);
/* Flushes, closes and renames; on any write error removes the temporary file and returns -1. */
int atomic_file_commit(AtomicFile *af);
/* Removes the temporary file without touching `path`. */
void atomic_file_abort(AtomicFile *af);

#endif
