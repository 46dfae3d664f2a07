/* dist.h: the process group a data-parallel run spreads over (MPI_COMM_WORLD under `make MPI=1`, which
 * defines HS_MPI; a group of one process otherwise, where every call below is a trivial stub and mpi.h is never
 * included).
 *
 * Bitwise-identical combination. A sum over samples is computed chunk by chunk and accumulated in double in
 * chunk order (the first chunk assigns, the others add). dist_chunk_range() gives each rank a contiguous range
 * of whole chunks (rank order = chunk order). The ordered chain then adds exactly as one process would: rank 0
 * accumulates its chunks directly; rank r > 0 keeps its chunks' partial sums, receives the running sum of all
 * earlier chunks from rank r-1 (dist_chain_recv), adds its partials in order and passes the sum on
 * (dist_chain_send); the last rank's sum, the whole sum, is then broadcast to every rank (inside
 * dist_chain_send). Each addition happens once, on one rank, in the single-process order, so the result has
 * the single-process bits for every group size. Scalars (loss, correct counts as exact integers) travel with
 * the vector in a small array.
 *
 * Errors: dist_abort() ends every rank (MPI_Abort); the CLI calls it when a command fails on any rank of a
 * group of more than one, so an error on one rank never leaves the others waiting in the chain.
 *
 * Output: on ranks other than 0, dist_init() points stdout and stderr at /dev/null (dist_stderr() keeps the
 * real stderr for the failure path), and io/atomic_file.c writes nothing (its files go to /dev/null), so only
 * rank 0 prints and writes files. */
#ifndef HS_DIST_H
#define HS_DIST_H

#include <stddef.h>
#include <stdio.h>

/* Joins the group (MPI_Init_thread, funneled) and silences the output of ranks other than 0. 0, or -1 with a
 * message. */
int dist_init(int *argc, char ***argv);
/* Leaves the group (MPI_Finalize). With HESSIAN_DIST_STATS=1 rank 0 first prints, per rank, the number of
 * chain combinations, the seconds spent in them (waiting included) and the bytes sent, on stderr. */
void dist_finalize(void);
int dist_rank(void);
int dist_size(void);
int dist_is_root(void);
/* Whether this binary was built with MPI (make MPI=1). */
int dist_with_mpi(void);
/* Ends every rank of the group with this exit code (MPI_Abort), or this process (exit) alone. */
_Noreturn void dist_abort(int code);
/* The process's real stderr (also on silenced ranks): for the failure path's message. */
FILE *dist_stderr(void);

/* This rank's chunks [*lo, *hi) of nchunks, contiguous and balanced (the first nchunks % size ranks get one
 * more); every rank may get none. */
void dist_chunk_range(int nchunks, int *lo, int *hi);

/* Rank r > 0: receives the running sum acc (n) and scalars (ns) of every chunk before this rank's from rank
 * r-1 (blocking). Rank 0 (or a group of one): nothing. 0, or -1 with a message. */
int dist_chain_recv(double *acc, size_t n, double *scalars, int ns);
/* Passes acc (n) and scalars (ns) on to rank r+1 (not on the last rank), then broadcasts the last rank's
 * acc and scalars to every rank: on return every rank holds the whole sum. A group of one: nothing. */
int dist_chain_send(double *acc, size_t n, double *scalars, int ns);

/* Copies root's buf (n) to every rank (MPI_Bcast). A group of one: nothing. 0, or -1 with a message. */
int dist_broadcast(double *buf, size_t n, int root);
/* Replaces v (n) on every rank by the sum over the ranks of their v, added in rank order in double (an
 * MPI_Allgather, then the same additions on every rank): every rank gets the same bits, which depend on the
 * group size only. A group of one: nothing. 0, or -1 with a message. (Synchronised batch norm's statistics.) */
int dist_sum_ordered(double *v, size_t n);
/* Whether flag is non-zero on any rank (MPI_Allreduce, a collective every rank must reach); a group of one:
 * flag itself. 1 or 0, or -1 with a message. */
int dist_any(int flag);

/* Test hook (fault injection, documented in tests/test_cli_mpi.sh): whether the environment variable
 * HESSIAN_TEST_FAIL_RANK names this rank; the split sample loops and training steps (groups of more than one)
 * then fail with an error on that rank alone. */
int dist_fault_injected(void);

#endif
