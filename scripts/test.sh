#!/usr/bin/env bash
# test.sh: installs what is missing, builds, and runs the test suite (synthetic data, fixed seeds) three
# times: the native build (-march=native) at 2 threads and at 1 thread, and a portable build
# (-march=x86-64-v2, in build_portable/) at 2 threads. Results must not depend on either. Ends with
# "tests: N passed, M failed" summed over the three runs, and a non-zero exit on any failure. The MPI build
# (make MPI=1, build_mpi/) and its test (tests/test_cli_mpi.sh under mpirun -np 1/2/3) run in the first run only
# (HESSIAN_MPI_TESTS=0 skips them in the others).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh --test --mpi || exit 1
make -s -j2 BUILD=build_portable OPT='-O2 -march=x86-64-v2' all >&2 || exit 1
passed=0; failed=0
log=$(mktemp); trap 'rm -f "$log"' EXIT
run() { # NAME MAKE-ARGS...: one run of the suite; adds its counts
    local name=$1 line; shift
    echo "== $name" >&2
    make -s -j2 "$@" test 2>&1 | tee "$log" >&2 # (tee to /dev/stderr would reopen, and truncate, a log file)
    line=$(grep -E '^tests: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [[ -z $line ]]; then echo "test.sh: $name printed no summary" >&2; failed=$((failed + 1)); return; fi
    passed=$((passed + $(sed -E 's/^tests: ([0-9]+) passed.*/\1/' <<<"$line")))
    failed=$((failed + $(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")))
}
start=$SECONDS
run "native build, 2 threads" THREADS=2
HESSIAN_MPI_TESTS=0 run "native build, 1 thread" THREADS=1
HESSIAN_MPI_TESTS=0 run "portable build (x86-64-v2), 2 threads" THREADS=2 BUILD=build_portable OPT='-O2 -march=x86-64-v2'
echo "test.sh: three runs in $((SECONDS - start)) s" >&2
echo "tests: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
