#!/usr/bin/env bash
# test_cli_scalapack.sh: `hessian exact` over MPI ranks with ScaLAPACK (make MPI=1 -> build_mpi/bin/hessian,
# src/commands/exact_scalapack.c): under `mpirun --oversubscribe -np 1 (--scalapack) / 2 / 3` the eigenvalues of
# the matrix spread over the ranks (1 x R grid, 64-column blocks: with R = 3 and d = 531 the ranks hold 192, 192
# and 147 columns) equal LAPACKE's from the single-process bin/hessian to 1e-10 relative to max |lambda| in
# float64 (both are backward stable: the measured difference is about 1e-15), on the golden ONNX mlp (squared
# error, chunks of 5 samples) and vgg (convolutions and batch norm); --save-matrix written by pieces (MPI-IO)
# equals the single-process matrix to 1e-12 relative (the single process averages the entries it computes twice;
# the ranks compute each column once); float32 models give float64 eigenvalues within 1e-4 of the float32
# single-process ones. Refusals (exit 2 before any work): --per-layer and --params under R > 1, --scalapack in the
# default build; a rank that would run out of memory (HESSIAN_TEST_MEM_AVAILABLE, a test hook) stops the job with
# the memory plan; an error on rank 1 alone (HESSIAN_TEST_FAIL_RANK) ends every rank, non-zero, no hang.
# HESSIAN_SCALAPACK_CNN=1 adds the study CNN (d = 5,100; minutes on two busy cores). Skipped (SKIP line) without
# mpicc/mpirun or ScaLAPACK, or with HESSIAN_MPI_TESTS=0. Prints "test_cli_scalapack: N passed, M failed".
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/cli_harness.sh
py=/usr/bin/python3
if [[ ${HESSIAN_MPI_TESTS:-1} == 0 ]]; then
    echo "test_cli_scalapack: SKIP (HESSIAN_MPI_TESTS=0)"; summary test_cli_scalapack; exit
fi
if ! command -v mpicc >/dev/null || ! command -v mpirun >/dev/null; then
    echo "test_cli_scalapack: SKIP (mpicc or mpirun missing)"; summary test_cli_scalapack; exit
fi
if ! ls /usr/lib/*/libscalapack-openmpi.so >/dev/null 2>&1; then
    echo "test_cli_scalapack: SKIP (libscalapack-openmpi-dev missing)"; summary test_cli_scalapack; exit
fi
if ! "$py" -c 'import numpy' 2>/dev/null; then
    echo "test_cli_scalapack: SKIP (numpy missing for /usr/bin/python3)"; summary test_cli_scalapack; exit
fi
# The MPI build in its own folder; the parent make's variables (BUILD, OPT, THREADS) must not leak into it.
if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD -u OPT make -s -j2 MPI=1 BUILD=build_mpi build_mpi/bin/hessian >"$tmp/build.log" 2>&1; then
    bad "make MPI=1 failed: $(tail -20 "$tmp/build.log")"; summary test_cli_scalapack; exit
fi
ok
mbin=build_mpi/bin/hessian
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMP_NUM_THREADS=1
EXPECT_SECONDS=240
mpi=(mpirun --oversubscribe --allow-run-as-root -np) # then R, the binary and its arguments
# close MESSAGE A.npy B.npy TOL: max |a - b| <= TOL * max |a| (same shape).
close() {
    local r
    r=$("$py" - "$2" "$3" "$4" <<'PYEOF'
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
if a.shape != b.shape:
    print("shapes", a.shape, b.shape); sys.exit()
e = float(np.abs(a - b).max() / np.abs(a).max())
print("ok" if e <= float(sys.argv[3]) else "relative difference %.3g" % e)
PYEOF
)
    [[ $r == ok ]] && ok || bad "$1: $2 vs $3: $r"
}
g=tests/golden/onnx
mlp=(--model "$g/mlp.onnx" --inputs "$g/mlp_x.npy" --targets "$g/mlp_y.npy" --loss mse --samples all --chunk 5)

# float64: LAPACKE (one process) against ScaLAPACK on 1, 2, 3 ranks.
expect 0 "d = 531" "$bin" exact "${mlp[@]}" --precision f64 --save-eigenvalues "$tmp/mlp.s.npy" --save-matrix "$tmp/H.s.npy"
expect 0 "1 x 1 grid" "${mpi[@]}" 1 "$mbin" exact "${mlp[@]}" --precision f64 --scalapack --save-eigenvalues "$tmp/mlp.1.npy"
close "mlp R=1 (--scalapack) vs LAPACKE" "$tmp/mlp.s.npy" "$tmp/mlp.1.npy" 1e-10
expect 0 "memory per rank" "${mpi[@]}" 2 "$mbin" exact "${mlp[@]}" --precision f64 --save-eigenvalues "$tmp/mlp.2.npy" \
    --save-matrix "$tmp/H.2.npy" --json "$tmp/mlp.2.json"
close "mlp R=2 vs LAPACKE" "$tmp/mlp.s.npy" "$tmp/mlp.2.npy" 1e-10
close "mlp R=2 --save-matrix (MPI-IO) vs the single process's" "$tmp/H.s.npy" "$tmp/H.2.npy" 1e-12
grep -q '"eigensolver": "ScaLAPACK pdsyev' "$tmp/mlp.2.json" && grep -q '"ranks": 2' "$tmp/mlp.2.json" && ok ||
    bad "mlp R=2 JSON lacks the eigensolver or ranks: $(cat "$tmp/mlp.2.json")"
expect 0 "holds 192 columns" "${mpi[@]}" 3 "$mbin" exact "${mlp[@]}" --precision f64 --save-eigenvalues "$tmp/mlp.3.npy"
close "mlp R=3 vs LAPACKE" "$tmp/mlp.s.npy" "$tmp/mlp.3.npy" 1e-10
ls "$tmp" | grep -q part && bad "a temporary .part file was left behind: $(ls "$tmp")" || ok
# float32 model: float64 eigenvalues from float32 columns, against LAPACKE's float32 ones.
expect 0 "" "$bin" exact "${mlp[@]}" --save-eigenvalues "$tmp/mlp32.s.npy"
expect 0 "" "${mpi[@]}" 2 "$mbin" exact "${mlp[@]}" --save-eigenvalues "$tmp/mlp32.2.npy"
close "mlp float32 R=2 vs LAPACKE float32" "$tmp/mlp32.s.npy" "$tmp/mlp32.2.npy" 1e-4

# A convolutional network with batch norm (eval), R = 2.
vgg=(--model "$g/vgg.onnx" --inputs "$g/vgg_x.npy" --targets "$g/vgg_y.npy" --samples all --precision f64)
expect 0 "d = 2194" "$bin" exact "${vgg[@]}" --save-eigenvalues "$tmp/vgg.s.npy"
expect 0 "d = 2194" "${mpi[@]}" 2 "$mbin" exact "${vgg[@]}" --save-eigenvalues "$tmp/vgg.2.npy"
close "vgg R=2 vs LAPACKE" "$tmp/vgg.s.npy" "$tmp/vgg.2.npy" 1e-10

if [[ ${HESSIAN_SCALAPACK_CNN:-0} == 1 ]]; then # the study CNN, d = 5,100
    cnn=(--checkpoint "$ck" --data "$data" --samples 64 --precision f64)
    expect 0 "d = 5100" "$bin" exact "${cnn[@]}" --save-eigenvalues "$tmp/cnn.s.npy"
    expect 0 "d = 5100" "${mpi[@]}" 2 "$mbin" exact "${cnn[@]}" --save-eigenvalues "$tmp/cnn.2.npy"
    close "study cnn R=2 vs LAPACKE" "$tmp/cnn.s.npy" "$tmp/cnn.2.npy" 1e-10
fi

# Refusals and failures.
expect 2 "--per-layer: not available with the ScaLAPACK matrix" "${mpi[@]}" 2 "$mbin" exact "${mlp[@]}" --per-layer
expect 2 "--params: not available with the ScaLAPACK matrix" "${mpi[@]}" 2 "$mbin" exact "${mlp[@]}" --params 0.weight
expect 2 "--scalapack needs the MPI build" "$bin" exact "${mlp[@]}" --scalapack
HESSIAN_TEST_MEM_AVAILABLE=1000000 expect 1 "a rank needs about .* GB but .* GB are available per rank" \
    "${mpi[@]}" 2 "$mbin" exact "${mlp[@]}"
HESSIAN_TEST_FAIL_RANK=1 expect 1 "fault injected on rank 1 of 2" "${mpi[@]}" 2 "$mbin" exact "${mlp[@]}"
summary test_cli_scalapack
