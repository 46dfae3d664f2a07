#!/usr/bin/env bash
# test_cli_mpi.sh: the data-parallel MPI build (make MPI=1 -> build_mpi/bin/hessian) under
# `mpirun --oversubscribe -np 1/2/3` on loopback, on the tiny golden data set and CNN: hvp (the .npy output),
# lanczos, trace, power (fixed set and stochastic), density and eval give the SAME bits for every R and the same
# bits as the single-process bin/hessian (cmp of .npy files; the JSON results identical except timings and
# provenance). Chunks of 7 samples make several chunks per rank and uneven ranges (40 samples = 6 chunks);
# --samples 10 with R = 3 leaves the last rank without a chunk. Only rank 0 writes (no stray temporaries). An error on
# rank 1 alone ends the job with a non-zero exit and the message, under `timeout` so a hang fails:
# HESSIAN_TEST_FAIL_RANK=r is a test hook (src/parallel/dist.c) that makes the sample loops fail on rank r.
# train (data parallel): the checkpoint of 2 epochs has the single-process bits for R = 1, 2, 3 (f32; f64: R = 3;
# 50 samples in batches of 16 leave a last batch of 2, i.e. empty shares; batches of 2 give fewer shares than
# ranks), --resume with another R (and from and to one process) reaches the bits of an uninterrupted run, an
# error on rank 1 while training ends the job, an ONNX model (lenet5.onnx) has the single-process bits under
# R = 3, a batch norm model (vgg_train.onnx) trains under R = 2 and 3 (per-rank statistics: its own bits; R = 1
# gives those of one process), with --sync-bn under R = 2, 3, 8 equals one process to rounding (f64), too many
# ranks for its batch are refused; study under R > 1 stays refused. Skipped (with a SKIP line) without mpicc/mpirun, or with
# HESSIAN_MPI_TESTS=0 (scripts/test.sh runs it in its native 2-thread run only).
# Prints "test_cli_mpi: N passed, M failed".
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/cli_harness.sh
py=/usr/bin/python3
if [[ ${HESSIAN_MPI_TESTS:-1} == 0 ]]; then
    echo "test_cli_mpi: SKIP (HESSIAN_MPI_TESTS=0)"; summary test_cli_mpi; exit
fi
if ! command -v mpicc >/dev/null || ! command -v mpirun >/dev/null; then
    echo "test_cli_mpi: SKIP (mpicc or mpirun missing: scripts/setup.sh --mpi installs Open MPI)"; summary test_cli_mpi; exit
fi
# The MPI build in its own folder; the parent make's variables (BUILD, OPT, THREADS) must not leak into it.
if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD -u OPT make -s -j2 MPI=1 BUILD=build_mpi build_mpi/bin/hessian >"$tmp/build.log" 2>&1; then
    bad "make MPI=1 failed: $(tail -20 "$tmp/build.log")"; summary test_cli_mpi; exit
fi
ok
mbin=build_mpi/bin/hessian
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMP_NUM_THREADS=1
EXPECT_SECONDS=120
mpi=(mpirun --oversubscribe --allow-run-as-root -np) # then R, the binary and its arguments
# same MESSAGE FILE_A FILE_B: two JSON results are identical except for provenance and timings.
same() {
    local d
    d=$("$py" - "$2" "$3" <<'PYEOF'
import json, sys
def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k != "provenance" and "seconds" not in k and k != "threads"}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x
a, b = (strip(json.load(open(p))) for p in sys.argv[1:3])
print("same" if a == b else "differ")
PYEOF
)
    [[ $d == same ]] && ok || bad "$1: $2 and $3 differ: $(diff <(tr , '\n' < "$2") <(tr , '\n' < "$3") | head -6)"
}
common=(--checkpoint "$ck" --data "$data" --samples 40 --chunk 7)
# run NAME ARGS...: the command once by bin/hessian and by mpirun -np 1, 2, 3; writes $tmp/NAME.R.json (R = s for
# the single-process binary) and compares each with the single-process result.
run() {
    local name=$1 r; shift
    expect 0 "" "$bin" "$@" --json "$tmp/$name.s.json"
    for r in 1 2 3; do
        expect 0 "" "${mpi[@]}" "$r" "$mbin" "$@" --json "$tmp/$name.$r.json"
        same "$name R=$r vs single process" "$tmp/$name.s.json" "$tmp/$name.$r.json"
    done
}
for prec in f64 f32; do
    expect 0 "v.Hv" "$bin" hvp "${common[@]}" --precision $prec --vector tests/golden/cnn_v.npy --out "$tmp/hv.$prec.s.npy"
    for r in 1 2 3; do
        expect 0 "v.Hv" "${mpi[@]}" $r "$mbin" hvp "${common[@]}" --precision $prec --vector tests/golden/cnn_v.npy --out "$tmp/hv.$prec.$r.npy"
        cmp -s "$tmp/hv.$prec.s.npy" "$tmp/hv.$prec.$r.npy" && ok || bad "hvp $prec: R=$r differs from the single process"
    done
    run lanczos.$prec lanczos "${common[@]}" --precision $prec --k 2 --which both --steps 20 --seed 5
done
run trace trace "${common[@]}" --precision f64 --probes 4 --method both --seed 3
run power_fixed power "${common[@]}" --precision f64 --fixed --iters 6 --seed 4
run power_stoch power "${common[@]}" --precision f64 --batch 16 --iters 6 --seed 4
run density density "${common[@]}" --precision f64 --runs 2 --steps 8 --seed 2
run ggn lanczos "${common[@]}" --precision f64 --curvature ggn --k 1 --steps 10 --seed 1
# fewer chunks than ranks: 10 samples in chunks of 7 over 3 ranks leave rank 2 without a chunk
run few hvp --checkpoint "$ck" --data "$data" --samples 10 --chunk 7 --precision f64 --vector tests/golden/cnn_v.npy \
    --out "$tmp/few.npy"
expect 0 "Test Acc" "$bin" eval --checkpoint "$ck" --data "$data" --json "$tmp/eval.s.json"
expect 0 "Test Acc" "${mpi[@]}" 3 "$mbin" eval --checkpoint "$ck" --data "$data" --json "$tmp/eval.3.json"
same "eval R=3 vs single process" "$tmp/eval.s.json" "$tmp/eval.3.json"
ls "$tmp" | grep -q '\.tmp\.' && bad "temporary files left behind" || ok

# an error on rank 1 alone: every rank ends, non-zero exit, the message (timeout: a hang fails)
for r in 2 3; do
    expect 1 "fault injected on rank 1 of $r" env HESSIAN_TEST_FAIL_RANK=1 mpirun --oversubscribe -np $r "$mbin" lanczos \
        "${common[@]}" --k 1 --steps 5 --json "$tmp/fail.json"
    [[ ! -e $tmp/fail.json ]] && ok || bad "a failed run wrote its JSON"
done
expect 1 "fault injected on rank 2 of 3" env HESSIAN_TEST_FAIL_RANK=2 mpirun --oversubscribe -np 3 "$mbin" power \
    "${common[@]}" --batch 16 --iters 3
# a bad file (every rank fails the same way)
expect 1 "no_such_file" "${mpi[@]}" 2 "$mbin" hvp "${common[@]}" --vector "$tmp/no_such_file.npy" --out "$tmp/x.npy"
expect 2 "not available under mpirun with more than one process" "${mpi[@]}" 2 "$mbin" study --data "$data"

# train: the same checkpoint bits as bin/hessian for every R
# trained MSG FILE_A FILE_B: the two checkpoints have the same bits.
trained() { cmp -s "$2" "$3" && ok || bad "$1: $2 and $3 differ"; }
tr=(train --data "$data" --batch 16 --train-samples 50 --quiet)
for prec in f32 f64; do
    expect 0 "Epoch 2/2" "$bin" "${tr[@]}" --precision $prec --epochs 2 --out "$tmp/tr.$prec.s.st"
    ranks="1 2 3"; [[ $prec == f64 ]] && ranks=3
    for r in $ranks; do
        expect 0 "Epoch 2/2" "${mpi[@]}" $r "$mbin" "${tr[@]}" --precision $prec --epochs 2 --out "$tmp/tr.$prec.$r.st"
        trained "train $prec R=$r vs single process" "$tmp/tr.$prec.s.st" "$tmp/tr.$prec.$r.st"
    done
done
tiny=(train --data "$data" --batch 2 --train-samples 10 --epochs 1 --quiet) # 2 shares for 3 ranks: rank 2 idle
expect 0 "Epoch 1/1" "$bin" "${tiny[@]}" --out "$tmp/tiny.s.st"
expect 0 "Epoch 1/1" "${mpi[@]}" 3 "$mbin" "${tiny[@]}" --out "$tmp/tiny.3.st"
trained "train, fewer shares than ranks" "$tmp/tiny.s.st" "$tmp/tiny.3.st"
# --resume with another R: 1 epoch, then the 2nd, equals 2 epochs straight
expect 0 "Epoch 1/1" "${mpi[@]}" 2 "$mbin" "${tr[@]}" --epochs 1 --out "$tmp/rs.a.st"
expect 0 "resuming" "${mpi[@]}" 3 "$mbin" "${tr[@]}" --epochs 2 --resume "$tmp/rs.a.st" --out "$tmp/rs.a.st"
trained "train R=2 then --resume R=3" "$tmp/tr.f32.s.st" "$tmp/rs.a.st"
expect 0 "Epoch 1/1" "${mpi[@]}" 2 "$mbin" "${tr[@]}" --epochs 1 --out "$tmp/rs.b.st"
expect 0 "resuming" "$bin" "${tr[@]}" --epochs 2 --resume "$tmp/rs.b.st" --out "$tmp/rs.b.st"
trained "train R=2 then --resume in one process" "$tmp/tr.f32.s.st" "$tmp/rs.b.st"
expect 0 "Epoch 1/1" "$bin" "${tr[@]}" --epochs 1 --out "$tmp/rs.c.st"
expect 0 "resuming" "${mpi[@]}" 2 "$mbin" "${tr[@]}" --epochs 2 --resume "$tmp/rs.c.st" --out "$tmp/rs.c.st"
trained "train in one process then --resume R=2" "$tmp/tr.f32.s.st" "$tmp/rs.c.st"
# an error on rank 1 while training: every rank ends, nothing written
for r in 2 3; do
    expect 1 "fault injected on rank 1 of $r" env HESSIAN_TEST_FAIL_RANK=1 mpirun --oversubscribe -np $r "$mbin" \
        "${tr[@]}" --epochs 1 --out "$tmp/tfail.st"
    [[ ! -e $tmp/tfail.st ]] && ok || bad "a failed training wrote its checkpoint"
done
g=tests/golden/onnx
# an ONNX model without batch norm: the single-process bits under R = 3
le=(train --model "$g/lenet5.onnx" --inputs "$g/lenet5_x.npy" --targets "$g/lenet5_y.npy" --batch 8 --epochs 2 --quiet)
expect 0 "Epoch 2/2" "$bin" "${le[@]}" --out "$tmp/le.s.st"
expect 0 "Epoch 2/2" "${mpi[@]}" 3 "$mbin" "${le[@]}" --out "$tmp/le.3.st"
trained "train lenet5.onnx R=3 vs single process" "$tmp/le.s.st" "$tmp/le.3.st"
# batch norm: per-rank statistics (R = 1: the single process's bits), refusals
bn=(train --model "$g/vgg_train.onnx" --inputs "$g/vgg_train_x.npy" --targets "$g/vgg_train_y.npy" --batch 8 --epochs 2 --quiet)
expect 0 "Epoch 2/2" "$bin" "${bn[@]}" --out "$tmp/bn.s.st"
expect 0 "Epoch 2/2" "${mpi[@]}" 1 "$mbin" "${bn[@]}" --out "$tmp/bn.1.st"
trained "batch norm R=1 vs single process" "$tmp/bn.s.st" "$tmp/bn.1.st"
for r in 2 3; do
    expect 0 "each rank normalises its slice" "${mpi[@]}" $r "$mbin" "${bn[@]}" --out "$tmp/bn.$r.st"
    [[ -s $tmp/bn.$r.st ]] && ok || bad "batch norm R=$r: no checkpoint"
done
expect 1 "needs at least 2 samples" "${mpi[@]}" 5 "$mbin" "${bn[@]}" --out "$tmp/bn.5.st"
# --sync-bn: every slice normalised with the whole batch's statistics (summed over the ranks in rank order), so
# the checkpoint equals one process's up to the order of the additions. float64, 2 epochs: measured 7.3e-16
# (R = 2, 3, 8) relative to each tensor's largest entry; the bound 1e-12 leaves 1,000x for other CPUs and BLAS
# builds, far below the 4.5e-2 of per-rank statistics (checked too, so the comparison can tell the two apart).
# --batch 4 over R = 3 gives uneven slices (1, 1, 2). float32: the same bits on a second run.
# close MSG BOUND FILE_A FILE_B: the largest |a - b| / max |a| over the tensors of two checkpoints is <= BOUND
# (or, with BOUND starting with '>', above it).
close() {
    local d
    d=$("$py" - "$3" "$4" 2>&1 <<'PYEOF'
import json, struct, sys
def load(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header, data = json.loads(raw[8:8 + n]), raw[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        f = {"F64": "d", "F32": "f", "I64": "q"}[t["dtype"]]
        out[name] = struct.unpack("<%d%s" % ((e - b) // struct.calcsize(f), f), data[b:e])
    return out
a, b = (load(p) for p in sys.argv[1:3])
worst = 0.0 if a.keys() == b.keys() else float("inf")
for name in a.keys() & b.keys():
    scale = max(abs(x) for x in a[name]) or 1.0
    worst = max([worst] + [abs(x - y) / scale for x, y in zip(a[name], b[name])])
print("%.3e" % worst)
PYEOF
)
    local bound=${2#>}
    if [[ $2 == '>'* ]]; then
        "$py" -c "import sys; sys.exit(not float(sys.argv[1]) > $bound)" "$d" 2>/dev/null && ok || bad "$1: $d, want > $bound"
    else
        "$py" -c "import sys; sys.exit(not float(sys.argv[1]) <= $bound)" "$d" 2>/dev/null && ok || bad "$1: $d, want <= $bound"
    fi
}
bn64=("${bn[@]}" --precision f64)
expect 0 "Epoch 2/2" "$bin" "${bn64[@]}" --out "$tmp/sbn.s.st"
for r in 2 3 8; do
    expect 0 "whole batch's statistics" "${mpi[@]}" $r "$mbin" "${bn64[@]}" --sync-bn --out "$tmp/sbn.$r.st"
    close "--sync-bn R=$r vs one process (f64)" 1e-12 "$tmp/sbn.s.st" "$tmp/sbn.$r.st"
done
expect 0 "Epoch 2/2" "${mpi[@]}" 2 "$mbin" "${bn64[@]}" --out "$tmp/sbn.own.st"
close "per-rank statistics R=2 vs one process (f64)" '>1e-6' "$tmp/sbn.s.st" "$tmp/sbn.own.st"
bn4=("${bn64[@]/#8/4}") # --batch 4
expect 0 "Epoch 2/2" "$bin" "${bn4[@]}" --out "$tmp/sbn4.s.st"
expect 0 "Epoch 2/2" "${mpi[@]}" 3 "$mbin" "${bn4[@]}" --sync-bn --out "$tmp/sbn4.3.st"
close "--sync-bn R=3, slices of 1, 1, 2 (f64)" 1e-12 "$tmp/sbn4.s.st" "$tmp/sbn4.3.st"
expect 0 "Epoch 2/2" "${mpi[@]}" 2 "$mbin" "${bn[@]}" --sync-bn --out "$tmp/sbn.f32.a.st"
expect 0 "Epoch 2/2" "${mpi[@]}" 2 "$mbin" "${bn[@]}" --sync-bn --out "$tmp/sbn.f32.b.st"
trained "--sync-bn R=2 (f32) run twice" "$tmp/sbn.f32.a.st" "$tmp/sbn.f32.b.st"
expect 1 "needs at least 1 sample" "${mpi[@]}" 9 "$mbin" "${bn[@]}" --sync-bn --out "$tmp/sbn.9.st"
[[ ! -e $tmp/sbn.9.st ]] && ok || bad "a refused --sync-bn run wrote its checkpoint"
summary test_cli_mpi
