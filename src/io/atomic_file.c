/* atomic_file.c: writes a file through a temporary name in the same folder (path + ".tmp.XXXXXX", created
 * with mkstemp) and renames it over `path` only after every write, the flush, the fsync and the close have
 * succeeded, so a reader never sees a half-written file and a failed write leaves any old file untouched.
 * Every error goes through hs_error() and removes the temporary file (see atomic_file.h). */
#define _XOPEN_SOURCE 700
#include "atomic_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/common.h"

static void atomic_file_release(AtomicFile *af) {
    free(af->path);
    free(af->tmp_path);
    af->fp = NULL;
    af->path = NULL;
    af->tmp_path = NULL;
}

int atomic_file_open(AtomicFile *af, const char *path) {
    af->fp = NULL;
    af->path = NULL;
    af->tmp_path = NULL;
    if (!path || !*path) return hs_error("cannot write a file with an empty name");
    size_t n = strlen(path);
    static const char suffix[] = ".tmp.XXXXXX";
    af->path = hs_malloc(n + 1);
    af->tmp_path = hs_malloc(n + sizeof suffix);
    if (!af->path || !af->tmp_path) {
        atomic_file_release(af);
        return -1;
    }
    memcpy(af->path, path, n + 1);
    memcpy(af->tmp_path, path, n);
    memcpy(af->tmp_path + n, suffix, sizeof suffix);
    int fd = mkstemp(af->tmp_path);
    if (fd < 0) {
        int e = errno;
        hs_error("cannot create temporary file for '%s': %s", path, strerror(e));
        atomic_file_release(af);
        return -1;
    }
    /* mkstemp creates mode 0600; results are ordinary files others may read. */
    (void)fchmod(fd, 0644);
    af->fp = fdopen(fd, "wb");
    if (!af->fp) {
        int e = errno;
        close(fd);
        unlink(af->tmp_path);
        hs_error("cannot open temporary file '%s': %s", af->tmp_path, strerror(e));
        atomic_file_release(af);
        return -1;
    }
    return 0;
}

int atomic_file_commit(AtomicFile *af) {
    if (!af->fp || !af->tmp_path || !af->path) {
        atomic_file_release(af);
        return hs_error("atomic file commit without a successful open");
    }
    const char *what = NULL;
    int e = 0;
    if (ferror(af->fp)) {
        what = "write failed";
        e = errno ? errno : EIO;
    } else if (fflush(af->fp) != 0) {
        what = "flush failed";
        e = errno;
    } else if (fsync(fileno(af->fp)) != 0 && errno != EINVAL && errno != EROFS) {
        /* EINVAL/EROFS: the file system does not support fsync (e.g. some pipes or special mounts). */
        what = "fsync failed";
        e = errno;
    }
    int close_rc = fclose(af->fp);
    af->fp = NULL;
    if (!what && close_rc != 0) {
        what = "close failed";
        e = errno;
    }
    if (!what && rename(af->tmp_path, af->path) != 0) {
        what = "rename failed";
        e = errno;
    }
    if (what) {
        unlink(af->tmp_path);
        hs_error("writing '%s': %s: %s", af->path, what, strerror(e));
        atomic_file_release(af);
        return -1;
    }
    atomic_file_release(af);
    return 0;
}

void atomic_file_abort(AtomicFile *af) {
    if (af->fp) fclose(af->fp);
    if (af->tmp_path) unlink(af->tmp_path);
    atomic_file_release(af);
}
