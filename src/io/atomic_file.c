/* atomic_file.c: writes a file through a temporary name in the same folder (path + ".tmp.PID.XXXXXX",
 * created with mkstemp) and renames it over `path` only after every write, the flush, the fsync and the
 * close have succeeded, then fsyncs the folder so the rename itself survives a crash. A reader never sees a
 * half-written file and a failed write leaves any old file untouched. Open temporaries are listed for a
 * SIGINT/SIGTERM handler that removes them; a temporary left by a killed process (kill -9, power loss) is
 * removed by the next open of the same output once its PID no longer runs. Every error goes through
 * hs_error() and removes the temporary file (see atomic_file.h). In a data-parallel run only rank 0 writes: the
 * other ranks' files go to /dev/null (parallel/dist.h). */
#define _XOPEN_SOURCE 700
#include "atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/common.h"
#include "../parallel/dist.h"

static const char TMP_TAG[] = ".tmp.";

/* The list of open temporaries, read by the signal handler. Nodes are linked and unlinked with atomic
 * stores; once a handler has started (`cleaning`), unlinked nodes are no longer freed, so a handler running
 * on another thread never follows a freed node (the process is about to die anyway). */
struct AtomicTemp {
    _Atomic(struct AtomicTemp *) next;
    char path[];
};
static _Atomic(struct AtomicTemp *) temporaries;
static atomic_int cleaning;

static void remove_temporaries_and_die(int sig) {
    atomic_store(&cleaning, 1);
    for (struct AtomicTemp *t = atomic_load(&temporaries); t; t = atomic_load(&t->next)) unlink(t->path);
    signal(sig, SIG_DFL);
    raise(sig); /* delivered with the default action when the handler returns */
}

static void install_handlers(void) {
    static const int sigs[] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) != 0 || (old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
            continue; /* the program handles (or ignores) it */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = remove_temporaries_and_die;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

static void unregister(struct AtomicTemp *node) {
    _Atomic(struct AtomicTemp *) *link = &temporaries;
    for (struct AtomicTemp *t; (t = atomic_load(link)) != NULL; link = &t->next)
        if (t == node) {
            atomic_store(link, atomic_load(&t->next));
            break;
        }
    if (!atomic_load(&cleaning)) free(node);
}

static void atomic_file_release(AtomicFile *af) {
    free(af->path);
    if (af->temp) unregister(af->temp);
    af->fp = NULL;
    af->path = NULL;
    af->tmp_path = NULL;
    af->temp = NULL;
}

/* The folder of path (malloc'd): "." without a slash, "/" for "/name". */
static char *folder_of(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *dir = hs_malloc(n + 1);
    if (!dir) return NULL;
    memcpy(dir, !slash ? "." : path, n);
    dir[n] = 0;
    return dir;
}

static const char *name_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* name == base + ".tmp." + PID + "." + six of [A-Za-z0-9]: a temporary of base; *pid receives PID. */
static int temporary_of(const char *name, const char *base, long *pid) {
    size_t n = strlen(base);
    if (strncmp(name, base, n) != 0 || strncmp(name + n, TMP_TAG, sizeof TMP_TAG - 1) != 0) return 0;
    const char *p = name + n + sizeof TMP_TAG - 1;
    long v = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 10; p++, digits++) v = v * 10 + (*p - '0');
    if (digits == 0 || *p++ != '.') return 0;
    for (int i = 0; i < 6; i++, p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) return 0;
    *pid = v;
    return *p == 0;
}

/* Removes temporaries of path whose process no longer runs (best effort: errors are ignored). */
static void remove_stale_temporaries(const char *path) {
    char *dir = folder_of(path);
    DIR *d = dir ? opendir(dir) : NULL;
    free(dir);
    if (!d) return;
    const char *base = name_of(path);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        long pid;
        if (temporary_of(e->d_name, base, &pid) && pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

int atomic_file_open(AtomicFile *af, const char *path) {
    af->fp = NULL;
    af->path = NULL;
    af->tmp_path = NULL;
    af->temp = NULL;
    if (!path || !*path) return hs_error("cannot write a file with an empty name");
    if (!*name_of(path)) return hs_error("cannot write '%s': the name ends with '/' (a folder)", path);
    size_t n = strlen(path);
    char pid[24];
    int pn = snprintf(pid, sizeof pid, "%ld.XXXXXX", (long)getpid());
    if (pn < 0 || (size_t)pn >= sizeof pid) return hs_error("cannot name a temporary file for '%s'", path);
    size_t tmp_len = n + sizeof TMP_TAG - 1 + (size_t)pn;
    af->path = hs_malloc(n + 1);
    af->temp = hs_malloc(sizeof *af->temp + tmp_len + 1);
    if (!af->path || !af->temp) {
        free(af->temp);
        af->temp = NULL;
        atomic_file_release(af);
        return -1;
    }
    memcpy(af->path, path, n + 1);
    if (!dist_is_root()) {
        /* Only rank 0 of a data-parallel run writes files: the others write into /dev/null (no temporary). */
        free(af->temp);
        af->temp = NULL;
        af->fp = fopen("/dev/null", "wb");
        if (!af->fp) {
            atomic_file_release(af);
            return hs_error("cannot open /dev/null for '%s'", path);
        }
        return 0;
    }
    af->tmp_path = af->temp->path;
    memcpy(af->tmp_path, path, n);
    memcpy(af->tmp_path + n, TMP_TAG, sizeof TMP_TAG - 1);
    memcpy(af->tmp_path + n + sizeof TMP_TAG - 1, pid, (size_t)pn + 1);
    remove_stale_temporaries(path);
    install_handlers();
    /* Listed before it exists, so no moment has a file the handler does not know of. */
    atomic_store(&af->temp->next, atomic_load(&temporaries));
    atomic_store(&temporaries, af->temp);
    int fd = mkstemp(af->tmp_path);
    if (fd < 0) {
        int e = errno;
        hs_error("cannot create a temporary file beside '%s' (does its folder exist and is it writable?): %s", path,
                 strerror(e));
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

/* fsync of the folder holding path, so that a rename in it is durable; 0 where the folder cannot be opened
 * for reading or the file system does not support it (nothing more can be done there). */
static int sync_folder(const char *path, int *err) {
    char *dir = folder_of(path);
    if (!dir) {
        *err = ENOMEM;
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    free(dir);
    if (fd < 0) return 0;
    int rc = 0;
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
        *err = errno;
        rc = -1;
    }
    close(fd);
    return rc;
}

int atomic_file_commit(AtomicFile *af) {
    if (af->fp && !af->tmp_path && !dist_is_root()) { /* a rank other than 0: nothing was written */
        int bad = ferror(af->fp);
        fclose(af->fp);
        af->fp = NULL;
        atomic_file_release(af);
        return bad ? hs_error("writing /dev/null failed") : 0;
    }
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
    int rc = sync_folder(af->path, &e);
    if (rc != 0) hs_error("writing '%s': fsync of its folder failed: %s", af->path, strerror(e));
    atomic_file_release(af);
    return rc;
}

void atomic_file_abort(AtomicFile *af) {
    if (af->fp) fclose(af->fp);
    if (af->tmp_path) unlink(af->tmp_path);
    atomic_file_release(af);
}

int atomic_file_probe(const char *path, char **canonical) {
    if (canonical) *canonical = NULL;
    struct stat sb;
    if (path && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return hs_error("cannot write '%s': it is a folder", path);
    AtomicFile af;
    if (atomic_file_open(&af, path) != 0) return -1;
    atomic_file_abort(&af);
    if (!canonical) return 0;
    char *dir = folder_of(path);
    char *real = dir ? realpath(dir, NULL) : NULL;
    int e = errno;
    free(dir);
    if (!real && !dist_is_root()) real = strdup("."); /* rank 0 alone writes; its folder may not exist here */
    if (!real) return hs_error("cannot resolve the folder of '%s': %s", path, strerror(e));
    const char *base = name_of(path);
    size_t a = strlen(real), b = strlen(base);
    int root = a == 1 && real[0] == '/';
    *canonical = hs_malloc(a + b + 2);
    if (*canonical) {
        memcpy(*canonical, real, a);
        (*canonical)[root ? 0 : a] = '/';
        memcpy(*canonical + (root ? 1 : a + 1), base, b + 1);
    }
    free(real);
    return *canonical ? 0 : -1;
}
