/* temp_dir.h: a mkdtemp() folder under /tmp for the tests that write files (test_io.c, test_train_state.c):
 *   temp_dir_create("hs_test_io") at the start (0, or -1 after perror), temp_path("x.npy") for a file in it
 *   (one of 8 rotating static buffers), temp_count(".tmp.") entries whose name contains a text,
 *   temp_dir_remove() at the end (its files, then the folder). */
#ifndef HS_TEMP_DIR_H
#define HS_TEMP_DIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp_dir[256];

static inline int temp_dir_create(const char *name) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/%s.XXXXXX", name);
    if (mkdtemp(tmp_dir)) return 0;
    perror("mkdtemp");
    return -1;
}

static inline const char *temp_path(const char *name) {
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", tmp_dir, name);
    return b;
}

/* Entries of tmp_dir whose name contains `part` (-1 when the folder cannot be read). */
static inline int temp_count(const char *part) {
    DIR *d = opendir(tmp_dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) n += strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

static inline void temp_dir_remove(void) {
    DIR *d = opendir(tmp_dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(temp_path(e->d_name));
    closedir(d);
    rmdir(tmp_dir);
}

#endif
