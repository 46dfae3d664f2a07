/* cifar10_download.c: downloads the official CIFAR-10 binary archive with curl or wget (spawned with an argv,
 * never through a shell), verifies its MD5, refuses archives with unexpected members, extracts the expected
 * ones into a temporary folder inside the target and renames them into DIR/cifar-10-batches-bin/. */
#define _POSIX_C_SOURCE 200809L
#include "cifar10_download.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/common.h"
#include "md5.h"

extern char **environ;

#define BATCHES_DIR "cifar-10-batches-bin"
#define DATA_FILE_BYTES 30730000LL /* 10,000 records of 3,073 bytes */
#define OTHER_FILE_MAX_BYTES (1LL << 20)
#define PATH_CAP 4096

/* Expected members; the first six are required data files. */
static const char *const member_names[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                           "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin",
                                           "batches.meta.txt", "readme.html"};
enum { N_MEMBERS = 8, N_DATA = 6 };

/* Files the download may leave in its temporary folder (removed afterwards). */
static const char *const scratch_names[] = {"cifar-10-binary.tar.gz", "download.log", "tar.log", "members.txt"};
enum { N_SCRATCH = 4 };

static int join(char *out, const char *a, const char *b) {
    int n = snprintf(out, PATH_CAP, "%s/%s", a, b);
    if (n < 0 || n >= PATH_CAP) return hs_error("path too long: %s/%s", a, b);
    return 0;
}

static int manual_instructions_error(const char *dir, const char *what) {
    return hs_error("%s. To install CIFAR-10 by hand, copy the official binary files data_batch_1.bin .. "
                    "data_batch_5.bin and test_batch.bin (from cifar-10-binary.tar.gz, "
                    "https://www.cs.toronto.edu/~kriz/cifar.html) into %s/" BATCHES_DIR "/; in this project "
                    "`../shared/data/cifar10-bin %s` writes the same layout",
                    what, dir, dir);
}

/* 1 if folder holds the six data files as regular files (symlinks followed) of the right size. */
static int data_present(const char *folder) {
    char path[PATH_CAP];
    for (int i = 0; i < N_DATA; i++) {
        struct stat st;
        if (join(path, folder, member_names[i]) != 0) return 0;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || (long long)st.st_size != DATA_FILE_BYTES) return 0;
    }
    return 1;
}

/* mkdir -p. */
static int make_dirs(const char *dir) {
    char path[PATH_CAP];
    size_t len = strlen(dir);
    if (len >= sizeof path) return hs_error("path too long: %s", dir);
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) {
            int err = errno;
            path[i] = saved;
            return hs_error("cannot create folder %s: %s", dir, strerror(err));
        }
        path[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return hs_error("%s exists and is not a folder", dir);
    return 0;
}

/* Last non-empty line of a (log) file, trimmed, or "" if none; used to quote a tool's error. */
static void last_line(const char *path, char *out, size_t cap) {
    out[0] = '\0';
    FILE *fp = fopen(path, "rb");
    if (!fp) return;
    char line[1024];
    while (fgets(line, sizeof line, fp)) {
        size_t n = strlen(line);
        while (n > 0 && isspace((unsigned char)line[n - 1])) line[--n] = '\0';
        if (n == 0) continue;
        /* Keep printable ASCII: drop the bytes of UTF-8 quotes (wget), mark control characters. */
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)line[i];
            if (ch >= 0x80) continue;
            line[k++] = isprint(ch) ? (char)ch : '?';
        }
        line[k] = '\0';
        snprintf(out, cap, "%s", line);
    }
    fclose(fp);
}

/* Runs argv[0] (looked up in PATH) with stdin from /dev/null and stdout/stderr into the given files (or
 * /dev/null). Returns 0 with *exit_code set (128 + signal if killed), or -1 with *not_found = 1 when the
 * program does not exist, or -1 with hs_error for other spawn failures. */
static int run_tool(char *const argv[], const char *stdout_path, const char *stderr_path, int *exit_code,
                    int *not_found) {
    *not_found = 0;
    *exit_code = -1;
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) return hs_error("cannot run %s: out of memory", argv[0]);
    int rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_addopen(&fa, 1, stdout_path ? stdout_path : "/dev/null",
                                              O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (rc == 0)
        rc = posix_spawn_file_actions_addopen(&fa, 2, stderr_path ? stderr_path : "/dev/null",
                                              O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid = 0;
    if (rc == 0) rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        if (rc == ENOENT) {
            *not_found = 1;
            return -1;
        }
        return hs_error("cannot run %s: %s", argv[0], strerror(rc));
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return hs_error("waiting for %s failed: %s", argv[0], strerror(errno));
    }
    if (WIFEXITED(status))
        *exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        *exit_code = 128 + WTERMSIG(status);
    return 0;
}

/* Removes what the download may have created in tmp (only the names it knows), then tmp itself. */
static void remove_scratch(const char *tmp) {
    char path[PATH_CAP], sub[PATH_CAP];
    for (int i = 0; i < N_SCRATCH; i++)
        if (join(path, tmp, scratch_names[i]) == 0) unlink(path);
    if (join(sub, tmp, BATCHES_DIR) == 0) {
        for (int i = 0; i < N_MEMBERS; i++)
            if (join(path, sub, member_names[i]) == 0) unlink(path);
        rmdir(sub);
    }
    rmdir(tmp);
}

/* curl exit codes that mean the server could not be reached at all. */
static int curl_network_failure(int code) {
    switch (code) {
    case 5:  /* could not resolve proxy */
    case 6:  /* could not resolve host */
    case 7:  /* could not connect */
    case 28: /* timeout */
    case 35: /* TLS connect error */
    case 52: /* empty reply */
    case 55: /* send error */
    case 56: /* receive error */
        return 1;
    default:
        return 0;
    }
}

static int fetch(const char *dir, const char *url, const char *archive, const char *log) {
    char what[1536], detail[512];
    int code = 0, not_found = 0;
    char *curl_argv[] = {"curl", "-fL", "-sS", "--connect-timeout", "30", "-o", (char *)archive, (char *)url, NULL};
    if (run_tool(curl_argv, NULL, log, &code, &not_found) == 0) {
        if (code == 0) return 0;
        last_line(log, detail, sizeof detail);
        if (curl_network_failure(code))
            snprintf(what, sizeof what,
                     "cannot download %s: no network access (curl exit %d: %s); this machine cannot reach the "
                     "CIFAR-10 server",
                     url, code, detail);
        else
            snprintf(what, sizeof what,
                     "downloading %s failed (curl exit %d: %s); check the network access and the address", url,
                     code, detail);
        return manual_instructions_error(dir, what);
    }
    if (!not_found) return -1;
    char *wget_argv[] = {"wget", "-nv", "--timeout=30", "-O", (char *)archive, (char *)url, NULL};
    if (run_tool(wget_argv, NULL, log, &code, &not_found) == 0) {
        if (code == 0) return 0;
        last_line(log, detail, sizeof detail);
        if (code == 4)
            snprintf(what, sizeof what,
                     "cannot download %s: no network access (wget exit 4, network failure: %s); this machine "
                     "cannot reach the CIFAR-10 server",
                     url, detail);
        else
            snprintf(what, sizeof what,
                     "downloading %s failed (wget exit %d: %s); check the network access and the address", url,
                     code, detail);
        return manual_instructions_error(dir, what);
    }
    if (!not_found) return -1;
    return manual_instructions_error(
        dir, "cannot download CIFAR-10: neither curl nor wget is installed (and without them there is no network "
             "access from this program)");
}

/* Index of an allowed member name ("cifar-10-batches-bin/NAME"), N_MEMBERS for the folder entry itself, or -1. */
static int member_index(const char *name) {
    size_t prefix = strlen(BATCHES_DIR);
    if (strncmp(name, BATCHES_DIR, prefix) != 0) return -1;
    if (name[prefix] == '\0' || (name[prefix] == '/' && name[prefix + 1] == '\0')) return N_MEMBERS;
    if (name[prefix] != '/') return -1;
    for (int i = 0; i < N_MEMBERS; i++)
        if (strcmp(name + prefix + 1, member_names[i]) == 0) return i;
    return -1;
}

/* Lists the archive and fills listed[] (1 for each allowed member present); refuses anything else. */
static int check_members(const char *archive, const char *tmp, int listed[N_MEMBERS]) {
    char list_path[PATH_CAP], log_path[PATH_CAP], detail[512];
    HS_TRY(join(list_path, tmp, "members.txt"));
    HS_TRY(join(log_path, tmp, "tar.log"));
    char *argv[] = {"tar", "-tzf", (char *)archive, NULL};
    int code = 0, not_found = 0;
    if (run_tool(argv, list_path, log_path, &code, &not_found) != 0) {
        if (not_found) return hs_error("cannot unpack the CIFAR-10 archive: tar is not installed");
        return -1;
    }
    if (code != 0) {
        last_line(log_path, detail, sizeof detail);
        return hs_error("cannot list the downloaded archive %s (tar exit %d: %s)", archive, code, detail);
    }
    FILE *fp = fopen(list_path, "rb");
    if (!fp) return hs_error("cannot read %s: %s", list_path, strerror(errno));
    for (int i = 0; i < N_MEMBERS; i++) listed[i] = 0;
    int dir_entries = 0, rc = 0;
    char line[512];
    while (rc == 0 && fgets(line, sizeof line, fp)) {
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
        else if (!feof(fp)) {
            rc = hs_error("the archive %s has a member with a very long name; refusing to extract it", archive);
            break;
        }
        int k = member_index(line);
        if (k < 0) {
            for (size_t i = 0; i < n; i++)
                if (!isprint((unsigned char)line[i])) line[i] = '?';
            rc = hs_error("the archive %s contains an unexpected member '%.200s'; refusing to extract it (expected "
                          "only " BATCHES_DIR "/ with data_batch_1..5.bin, test_batch.bin, batches.meta.txt, "
                          "readme.html)",
                          archive, line);
        } else if (k == N_MEMBERS ? dir_entries++ > 0 : listed[k]++ > 0) {
            rc = hs_error("the archive %s lists member '%s' twice; refusing to extract it", archive, line);
        }
    }
    fclose(fp);
    HS_TRY(rc);
    for (int i = 0; i < N_DATA; i++)
        if (!listed[i])
            return hs_error("the archive %s lacks " BATCHES_DIR "/%s; it is not the CIFAR-10 binary release", archive,
                            member_names[i]);
    return 0;
}

static int extract_members(const char *archive, const char *tmp, const int listed[N_MEMBERS]) {
    /* Only the fixed names from member_names are passed to tar, never names read from the archive. */
    char names[N_MEMBERS][64];
    char *argv[8 + N_MEMBERS] = {"tar", "--no-same-owner", "--no-same-permissions", "-xzf", (char *)archive,
                                 "-C", (char *)tmp};
    int argc = 7;
    for (int i = 0; i < N_MEMBERS; i++) {
        if (!listed[i]) continue;
        snprintf(names[i], sizeof names[i], BATCHES_DIR "/%s", member_names[i]);
        argv[argc++] = names[i];
    }
    argv[argc] = NULL;
    char log_path[PATH_CAP], detail[512];
    HS_TRY(join(log_path, tmp, "tar.log"));
    int code = 0, not_found = 0;
    if (run_tool(argv, NULL, log_path, &code, &not_found) != 0) {
        if (not_found) return hs_error("cannot unpack the CIFAR-10 archive: tar is not installed");
        return -1;
    }
    if (code != 0) {
        last_line(log_path, detail, sizeof detail);
        return hs_error("extracting %s failed (tar exit %d: %s)", archive, code, detail);
    }
    /* Each extracted member must be a plain regular file (no symlink, no hard link) of the expected size. */
    char sub[PATH_CAP], path[PATH_CAP];
    HS_TRY(join(sub, tmp, BATCHES_DIR));
    for (int i = 0; i < N_MEMBERS; i++) {
        if (!listed[i]) continue;
        HS_TRY(join(path, sub, member_names[i]));
        struct stat st;
        if (lstat(path, &st) != 0) return hs_error("extracting %s: %s is missing (%s)", archive, path, strerror(errno));
        if (!S_ISREG(st.st_mode) || st.st_nlink != 1)
            return hs_error("the archive %s: member %s is not a regular file (link or special file); refusing it",
                            archive, member_names[i]);
        long long size = (long long)st.st_size;
        if (i < N_DATA && size != DATA_FILE_BYTES)
            return hs_error("the archive %s: %s has %lld bytes, expected %lld", archive, member_names[i], size,
                            DATA_FILE_BYTES);
        if (i >= N_DATA && size > OTHER_FILE_MAX_BYTES)
            return hs_error("the archive %s: %s has %lld bytes, more than expected", archive, member_names[i], size);
    }
    return 0;
}

static int install_members(const char *dir, const char *tmp, const int listed[N_MEMBERS]) {
    char dest_dir[PATH_CAP], sub[PATH_CAP], from[PATH_CAP], to[PATH_CAP];
    HS_TRY(join(dest_dir, dir, BATCHES_DIR));
    HS_TRY(join(sub, tmp, BATCHES_DIR));
    if (mkdir(dest_dir, 0777) != 0 && errno != EEXIST)
        return hs_error("cannot create folder %s: %s", dest_dir, strerror(errno));
    struct stat st;
    if (stat(dest_dir, &st) != 0 || !S_ISDIR(st.st_mode)) return hs_error("%s exists and is not a folder", dest_dir);
    for (int i = 0; i < N_MEMBERS; i++) {
        if (!listed[i]) continue;
        HS_TRY(join(from, sub, member_names[i]));
        HS_TRY(join(to, dest_dir, member_names[i]));
        if (rename(from, to) != 0) return hs_error("cannot move %s to %s: %s", from, to, strerror(errno));
    }
    return 0;
}

int cifar10_download_from(const char *dir, const char *url, const char *md5_hex) {
    if (!dir || !*dir) return hs_error("cifar10 download: empty folder name");
    if (!url || !*url || url[0] == '-') return hs_error("cifar10 download: invalid address '%s'", url ? url : "");
    if (!md5_hex || strlen(md5_hex) != 32) return hs_error("cifar10 download: the expected MD5 must have 32 hex digits");

    char dest_dir[PATH_CAP];
    HS_TRY(join(dest_dir, dir, BATCHES_DIR));
    if (data_present(dest_dir) || data_present(dir)) return 0;

    HS_TRY(make_dirs(dir));
    char tmp[PATH_CAP];
    HS_TRY(join(tmp, dir, ".cifar10-download-XXXXXX"));
    if (!mkdtemp(tmp)) return hs_error("cannot create a temporary folder in %s: %s", dir, strerror(errno));

    char archive[PATH_CAP], log[PATH_CAP], actual[33];
    int listed[N_MEMBERS] = {0};
    int rc = -1;
    if (join(archive, tmp, "cifar-10-binary.tar.gz") != 0 || join(log, tmp, "download.log") != 0) goto done;
    if (fetch(dir, url, archive, log) != 0) goto done;
    if (md5_file_hex(archive, actual) != 0) goto done;
    if (strcasecmp(actual, md5_hex) != 0) {
        hs_error("the archive downloaded from %s has MD5 %s, expected %s (corrupt or incomplete download); nothing "
                 "was installed",
                 url, actual, md5_hex);
        goto done;
    }
    if (check_members(archive, tmp, listed) != 0) goto done;
    if (extract_members(archive, tmp, listed) != 0) goto done;
    if (install_members(dir, tmp, listed) != 0) goto done;
    rc = 0;
done:
    remove_scratch(tmp);
    return rc;
}

int cifar10_download(const char *dir) { return cifar10_download_from(dir, CIFAR10_URL, CIFAR10_MD5); }
