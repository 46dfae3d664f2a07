#!/usr/bin/env bash
# run_resnet.sh: ResNet-50 (or MODEL=resnet18) on SAMPLES (default 100) CIFAR-10 images of 32x32: one
# training step, one gradient and one Hessian-vector product with hessian and with PyTorch (torchvision
# layout, same threads), each task in its own process so peak memory is its own; prints times, ratios and
# peak memory.   bash bench/run_resnet.sh [DATA_DIR]
# CHUNK=N runs grad and hvp in chunks of N samples on both sides (the ResNet-50 1,000-image row: SAMPLES=1000
# CHUNK=250 TASKS=hvp); REPEATS (default 3) timed runs after one warm-up; TASKS (default "step grad hvp");
# ROUNDS (default 3): hessian and PyTorch alternate this many times per task, each run reporting its median of
# REPEATS; the table gives the median of the rounds' times and ratios and the range of the ratios (this VM's
# speed drifts by 20-40% within a minute, so one round's ratio alone says little).
# PEER_PYTHON picks the peer's interpreter: Debian's PyTorch 1.13 (/usr/bin/python3, the default) or PyTorch 2.x
# from PyPI (PEER_PYTHON=$HOME/.venv-torch2/bin/python, made by `sh bench/torch2_peer.sh --install`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data=${1:-data}
model=${MODEL:-resnet50}
samples=${SAMPLES:-100}
chunk=${CHUNK:-0}
repeats=${REPEATS:-3}
rounds=${ROUNDS:-3}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench: ROUNDS must be a positive integer, not '$rounds'" >&2; exit 2; }
tasks=${TASKS:-step grad hvp}
export OMP_NUM_THREADS=${THREADS:-2}
scripts/get-data.sh "$data"
make -s all build/bench/bench_model_f32
py=${PEER_PYTHON:-/usr/bin/python3}
"$py" -c 'import torch, torchvision' 2>/dev/null || {
    echo "bench: $py needs torch and torchvision (apt-get install python3-torch python3-torchvision)" >&2; exit 1; }
echo "peer: PyTorch $("$py" -c 'import torch; print(torch.__version__)'), $OMP_NUM_THREADS threads, model $model, $samples images, chunk ${chunk:-all}" >&2
printf '%-6s %12s %12s %8s %14s %14s %14s\n' task "PyTorch s" "hessian s" ratio "ratio range" "PyTorch MB" "hessian MB"
for task in $tasks; do
    rows=()
    for ((r = 0; r < rounds; r++)); do
        h=$(build/bench/bench_model_f32 "$data" --model "$model" --task "$task" --samples "$samples" --chunk "$chunk" \
            --repeats "$repeats")
        t=$("$py" bench/torch_model_peer.py --data "$data" --model "$model" --task "$task" --samples "$samples" \
            --chunk "$chunk" --repeats "$repeats" --threads "$OMP_NUM_THREADS" 2>/dev/null)
        rows+=("$h" "$t")
    done
    /usr/bin/python3 - "$task" "${rows[@]}" <<'PY'
import json, statistics, sys
task, runs = sys.argv[1], [json.loads(a) for a in sys.argv[2:]]
h, t = runs[0::2], runs[1::2]
ratios = [b["seconds"] / a["seconds"] for a, b in zip(h, t)]
med = statistics.median
print(f"{task:6s} {med(b['seconds'] for b in t):12.3f} {med(a['seconds'] for a in h):12.3f} {med(ratios):7.2f}x "
      f"{min(ratios):8.2f}-{max(ratios):.2f}x {max(b['peak_rss_mb'] for b in t):14.0f} {max(a['peak_rss_mb'] for a in h):14.0f}")
PY
done
