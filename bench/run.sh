#!/usr/bin/env bash
# run.sh: hessian against the PyTorch peer (Debian's python3-torch 1.13) on the same machine and data, in
# one run, with the same thread count; prints each pair of timings and the ratio (PyTorch / hessian).
#   bash bench/run.sh [DATA_DIR]      (default data/, made by scripts/get-data.sh)
# Environment: THREADS (default 2), ROWS (rows timed for PyTorch's row-by-row Hessian, default 40), PEER_PYTHON (the
# peer's interpreter: /usr/bin/python3, Debian's PyTorch 1.13, by default; $HOME/.venv-torch2/bin/python for 2.x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data=${1:-data}
threads=${THREADS:-2}
rows=${ROWS:-40}
scripts/get-data.sh "$data"
make -s all build/bench/bench_cnn_f32 build/bench/bench_cnn_f64
py=${PEER_PYTHON:-/usr/bin/python3}
"$py" -c 'import torch' 2>/dev/null || { echo "bench: PyTorch missing for $py: apt-get install python3-torch" >&2; exit 1; }
export OMP_NUM_THREADS=$threads
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
lscpu | grep -E 'Model name' | sed 's/  */ /g' >&2
echo "bench: hessian train (1 epoch)" >&2
bin/hessian train --model cnn --data "$data" --epochs 1 --out "$out/cnn.safetensors" --json "$out/train.json" --quiet >&2
echo "bench: hessian grad / hvp / exact (1000 images)" >&2
build/bench/bench_cnn_f32 "$data" --samples 1000 --checkpoint "$out/cnn.safetensors" > "$out/hessian.json"
build/bench/bench_cnn_f64 "$data" --samples 1000 --checkpoint "$out/cnn.safetensors" --no-exact > "$out/hessian64.json"
peer() { "$py" bench/torch_peer.py --data "$data" --threads "$threads" "$@" 2>/dev/null | tail -n 1; }
echo "bench: PyTorch train-epoch, grad, hvp, hessian-rows ($rows rows)" >&2
peer --task train-epoch > "$out/torch_train.json"
peer --task grad --samples 1000 --checkpoint "$out/cnn.safetensors" > "$out/torch_grad.json"
peer --task hvp --samples 1000 --checkpoint "$out/cnn.safetensors" > "$out/torch_hvp.json"
peer --task hvp --samples 1000 --checkpoint "$out/cnn.safetensors" --dtype f64 > "$out/torch_hvp64.json"
peer --task hessian-rows --samples 1000 --rows "$rows" --checkpoint "$out/cnn.safetensors" > "$out/torch_rows.json"
"$py" - "$out" "$threads" <<'PY'
import json, sys, os
d = sys.argv[1]
j = lambda n: json.load(open(os.path.join(d, n)))
h, h64, tr = j("hessian.json"), j("hessian64.json"), j("train.json")
t_train, t_grad, t_hvp, t_hvp64, t_rows = (j(n) for n in ("torch_train.json", "torch_grad.json", "torch_hvp.json", "torch_hvp64.json", "torch_rows.json"))
import torch
print(f"cnn benchmarks, {sys.argv[2]} threads, PyTorch {torch.__version__} (ratio = PyTorch / hessian; > 1 means hessian is faster)")
rows = [
    ("train one epoch (50,000 images)", t_train["seconds"], tr["epochs"][0]["seconds"]),
    ("gradient, 1,000 images, f32", t_grad["seconds"], h["grad_seconds"]),
    ("HVP, 1,000 images, f32 (double backward)", t_hvp["seconds"], h["hvp_seconds"]),
    ("HVP, 1,000 images, f64", t_hvp64["seconds"], h64["hvp_seconds"]),
    ("full Hessian + eigenvalues, 1,000 images (PyTorch: row by row, extrapolated)", t_rows["seconds"], h["exact_seconds"]),
]
print(f"{'task':78s} {'PyTorch s':>10s} {'hessian s':>10s} {'ratio':>8s}")
for name, a, b in rows:
    print(f"{name:78s} {a:10.3f} {b:10.3f} {a / b:8.1f}x")
print(f"hessian HVP / own gradient: {h['hvp_over_grad']:.2f} (f32), {h64['hvp_over_grad']:.2f} (f64); "
      f"exact Hessian: matrix {h['exact_matrix_seconds']:.1f} s + eigenvalues {h['exact_eigen_seconds']:.1f} s, "
      f"lambda_max {h['lambda_max']:.4f}, lambda_min {h['lambda_min']:.4f}")
PY
