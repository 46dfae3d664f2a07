#!/usr/bin/env bash
# mpi_scaling.sh: strong scaling of the data-parallel MPI build on this machine: the time per HVP of ResNet-18
# (--random-init, f32) on N synthetic CIFAR-shaped samples (numpy, fixed seed; or CIFAR-10 with --data DIR), by
#   one process with 2 OpenMP threads (bin/hessian),
#   mpirun -np 1 and -np 2 with 1 thread per rank (build_mpi/bin/hessian),
# each from `hessian power --fixed` (its JSON: seconds / HVPs), and the time per HVP spent in the ordered chain
# (HESSIAN_DIST_STATS=1: per rank, the combination time including the wait for the previous rank, and the bytes
# sent). All three runs must print the same eigenvalue bits (checked). Chunks of N/4 samples, so each of 2 ranks
# gets 2 whole chunks.
#   bash bench/mpi_scaling.sh [N (default 256)] [ITERS (default 2)] [--data DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${1:-256}; ITERS=${2:-2}; DATA=
[[ ${3:-} == --data ]] && DATA=${4:?--data needs a folder}
make -s -j2 bin/hessian >&2
env -u BUILD make -s -j2 MPI=1 BUILD=build_mpi build_mpi/bin/hessian >&2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [[ -n $DATA ]]; then
    src=(--data "$DATA" --samples "$N")
else
    /usr/bin/python3 - "$tmp" "$N" <<'PY'
import sys, numpy as np
d, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
np.save(f"{d}/x.npy", rng.standard_normal((n, 3, 32, 32), dtype=np.float32))
np.save(f"{d}/y.npy", rng.integers(0, 10, n).astype(np.int64))
PY
    src=(--inputs "$tmp/x.npy" --targets "$tmp/y.npy")
fi
args=(power --model resnet18 --random-init 1 "${src[@]}" --chunk $((N / 4)) --fixed --iters "$ITERS" --seed 1 --quiet)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OPENBLAS_NUM_THREADS=1
per_hvp() { /usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%.3f %s" % (j["seconds"]/j["hvps"], repr(j["lambda"])))' "$1"; }
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); resnet18 f32, $N samples, chunks of $((N / 4)), $ITERS HVPs"
OMP_NUM_THREADS=2 bin/hessian "${args[@]}" --json "$tmp/t2.json" >/dev/null 2>&1
read -r s_t2 l_t2 < <(per_hvp "$tmp/t2.json")
echo "1 process x 2 threads:  $s_t2 s per HVP"
for R in 1 2; do
    HESSIAN_DIST_STATS=1 OMP_NUM_THREADS=1 mpirun --oversubscribe --allow-run-as-root -np $R build_mpi/bin/hessian \
        "${args[@]}" --json "$tmp/r$R.json" >/dev/null 2>"$tmp/r$R.err"
    read -r s l < <(per_hvp "$tmp/r$R.json")
    [[ $l == "$l_t2" ]] || echo "  MISMATCH: lambda $l vs $l_t2 (one process)"
    echo "mpirun -np $R x 1 thread: $s s per HVP (lambda bits equal to the 1-process run: $([[ $l == "$l_t2" ]] && echo yes || echo NO))"
    grep '^dist:' "$tmp/r$R.err" | sed 's/^/  /' || true
done
