/* dist.c: the process group of a data-parallel run: MPI_COMM_WORLD with HS_MPI, one process otherwise, and
 * the ordered chain that combines per-chunk sums with the single-process bits (see dist.h). */
#define _POSIX_C_SOURCE 200809L
#include "dist.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/common.h"

#ifdef HS_MPI
#include <mpi.h>
#endif

static int rank_, size_ = 1, initialized_;
static FILE *real_stderr_;
/* Chain statistics (HESSIAN_DIST_STATS): combinations, seconds inside recv/send (waiting included), bytes sent. */
static long combines_;
static double comm_seconds_, bytes_sent_;
#ifdef HS_MPI
/* dist_sum_ordered's (R, n) buffer of every rank's values: grow-only, so steady-state training allocates nothing. */
static double *gathered_;
static size_t gathered_count_;
#endif

int dist_rank(void) { return rank_; }
int dist_size(void) { return size_; }
int dist_is_root(void) { return rank_ == 0; }
FILE *dist_stderr(void) { return real_stderr_ ? real_stderr_ : stderr; }

int dist_with_mpi(void) {
#ifdef HS_MPI
    return 1;
#else
    return 0;
#endif
}

void dist_chunk_range(int nchunks, int *lo, int *hi) {
    int base = nchunks / size_, extra = nchunks % size_;
    *lo = rank_ * base + (rank_ < extra ? rank_ : extra);
    *hi = *lo + base + (rank_ < extra ? 1 : 0);
}

int dist_fault_injected(void) {
    const char *s = getenv("HESSIAN_TEST_FAIL_RANK");
    return s && *s && atoi(s) == rank_;
}

#ifdef HS_MPI
/* Messages in pieces of at most 2^27 doubles (1 GiB): MPI counts are int. */
#define PIECE ((size_t)1 << 27)

static int mpi_failed(int rc, const char *what) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    return hs_error("MPI %s failed: %.*s", what, len, text);
}

int dist_init(int *argc, char ***argv) {
    int provided = 0;
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return hs_error("MPI_Init_thread failed (code %d)", rc);
    initialized_ = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    /* Errors come back as codes (reported through hs_error) rather than aborting inside MPI. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (rank_ != 0) {
        int fd = dup(2);
        if (fd >= 0) real_stderr_ = fdopen(fd, "w");
        fflush(stdout);
        fflush(stderr);
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            return hs_error("rank %d: cannot silence its output (/dev/null)", rank_);
    }
    return 0;
}

void dist_finalize(void) {
    if (!initialized_) return;
    const char *s = getenv("HESSIAN_DIST_STATS");
    if (s && s[0] == '1') {
        double mine[3] = {(double)combines_, comm_seconds_, bytes_sent_}, *all = NULL;
        if (rank_ == 0) all = malloc(sizeof(double) * 3 * (size_t)size_);
        MPI_Gather(mine, 3, MPI_DOUBLE, all, 3, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        for (int r = 0; all && r < size_; r++)
            fprintf(stderr, "dist: rank %d of %d: %.0f combinations, %.4f s combining (%.2f ms each), %.1f MB sent\n", r,
                    size_, all[3 * r], all[3 * r + 1], all[3 * r] > 0 ? 1e3 * all[3 * r + 1] / all[3 * r] : 0.0,
                    all[3 * r + 2] / 1e6);
        free(all);
    }
    free(gathered_);
    gathered_ = NULL;
    gathered_count_ = 0;
    fflush(stdout);
    fflush(stderr);
    MPI_Finalize();
    initialized_ = 0;
}

_Noreturn void dist_abort(int code) {
    fflush(stdout);
    fflush(stderr);
    if (real_stderr_) fflush(real_stderr_);
    if (initialized_ && size_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

static int transfer(double *buf, size_t n, int peer, int send) {
    for (size_t at = 0; at < n; at += PIECE) {
        int count = (int)(n - at < PIECE ? n - at : PIECE);
        int rc = send ? MPI_Send(buf + at, count, MPI_DOUBLE, peer, 11, MPI_COMM_WORLD)
                      : MPI_Recv(buf + at, count, MPI_DOUBLE, peer, 11, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_failed(rc, send ? "send" : "receive");
        if (send) bytes_sent_ += 8.0 * count;
    }
    return 0;
}

int dist_chain_recv(double *acc, size_t n, double *scalars, int ns) {
    if (size_ == 1 || rank_ == 0) return 0;
    double t0 = hs_seconds();
    int rc = transfer(scalars, (size_t)ns, rank_ - 1, 0);
    if (rc == 0) rc = transfer(acc, n, rank_ - 1, 0);
    comm_seconds_ += hs_seconds() - t0;
    return rc;
}

int dist_chain_send(double *acc, size_t n, double *scalars, int ns) {
    if (size_ == 1) return 0;
    double t0 = hs_seconds();
    int rc = 0;
    if (rank_ + 1 < size_) {
        rc = transfer(scalars, (size_t)ns, rank_ + 1, 1);
        if (rc == 0) rc = transfer(acc, n, rank_ + 1, 1);
    }
    int last = size_ - 1;
    if (rc == 0 && ns > 0) {
        int e = MPI_Bcast(scalars, ns, MPI_DOUBLE, last, MPI_COMM_WORLD);
        if (e != MPI_SUCCESS) rc = mpi_failed(e, "broadcast");
    }
    for (size_t at = 0; rc == 0 && at < n; at += PIECE) {
        int count = (int)(n - at < PIECE ? n - at : PIECE);
        int e = MPI_Bcast(acc + at, count, MPI_DOUBLE, last, MPI_COMM_WORLD);
        if (e != MPI_SUCCESS) rc = mpi_failed(e, "broadcast");
        else if (rank_ == last) bytes_sent_ += 8.0 * count * (size_ - 1);
    }
    comm_seconds_ += hs_seconds() - t0;
    combines_++;
    return rc;
}

int dist_broadcast(double *buf, size_t n, int root) {
    if (size_ == 1) return 0;
    for (size_t at = 0; at < n; at += PIECE) {
        int count = (int)(n - at < PIECE ? n - at : PIECE);
        int e = MPI_Bcast(buf + at, count, MPI_DOUBLE, root, MPI_COMM_WORLD);
        if (e != MPI_SUCCESS) return mpi_failed(e, "broadcast");
    }
    return 0;
}

int dist_sum_ordered(double *v, size_t n) {
    if (size_ == 1 || n == 0) return 0;
    if (n > (size_t)(INT_MAX / size_)) return hs_error("dist_sum_ordered: %zu values over %d ranks is too many", n, size_);
    double *all = gathered_;
    if (n * (size_t)size_ > gathered_count_) {
        free(gathered_);
        gathered_count_ = 0;
        if (!(all = gathered_ = hs_malloc(sizeof(double) * n * (size_t)size_))) return -1;
        gathered_count_ = n * (size_t)size_;
    }
    double t0 = hs_seconds();
    int e = MPI_Allgather(v, (int)n, MPI_DOUBLE, all, (int)n, MPI_DOUBLE, MPI_COMM_WORLD);
    comm_seconds_ += hs_seconds() - t0;
    if (e != MPI_SUCCESS) return mpi_failed(e, "allgather");
    bytes_sent_ += 8.0 * (double)n * (size_ - 1);
    for (size_t i = 0; i < n; i++) {
        double sum = all[i];
        for (int r = 1; r < size_; r++) sum += all[(size_t)r * n + i];
        v[i] = sum;
    }
    return 0;
}

int dist_any(int flag) {
    if (size_ == 1) return flag != 0;
    int mine = flag != 0, any = 0;
    int e = MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
    return e != MPI_SUCCESS ? mpi_failed(e, "allreduce") : any;
}

#else /* one process */

int dist_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    initialized_ = 1;
    return 0;
}

void dist_finalize(void) { initialized_ = 0; }

_Noreturn void dist_abort(int code) {
    fflush(stdout);
    fflush(stderr);
    exit(code);
}

int dist_chain_recv(double *acc, size_t n, double *scalars, int ns) {
    (void)acc, (void)n, (void)scalars, (void)ns;
    return 0;
}

int dist_chain_send(double *acc, size_t n, double *scalars, int ns) {
    (void)acc, (void)n, (void)scalars, (void)ns;
    combines_++;
    (void)comm_seconds_, (void)bytes_sent_, (void)real_stderr_;
    return 0;
}

int dist_broadcast(double *buf, size_t n, int root) {
    (void)buf, (void)n, (void)root;
    return 0;
}

int dist_sum_ordered(double *v, size_t n) {
    (void)v, (void)n;
    return 0;
}

int dist_any(int flag) { return flag != 0; }

#endif
