#!/bin/sh
# torch2_peer.sh: notes (and an opt-in helper) for running the PyTorch peers with PyTorch 2.x from PyPI
# instead of Debian's python3-torch 1.13. Nothing here is needed by hessian, its tests or `make bench`.
#
# Usage:
#   sh bench/torch2_peer.sh                 prints these notes and whether the venv exists
#   sh bench/torch2_peer.sh --install       creates the venv in $TORCH2_VENV or ~/.venv-torch2 with torch, numpy,
#                                           scipy and the peer tools of bench/peers.py (large download)
#   sh bench/torch2_peer.sh -- ARGS...      runs bench/torch_peer.py ARGS... with the venv's python
#
# Notes:
# - Only PyPI is reachable here (no extra package index), so `pip install torch` gets the default PyPI
#   wheel for Linux x86_64: the CUDA build, which pulls the nvidia-* runtime wheels too (several GB on disk,
#   most of it unused on a CPU-only machine). PyPI carries no CPU-only torch wheel (those live on a separate index, not reachable here). Expect minutes.
# - bench/torch_peer.py needs numpy only (no torchvision: augmentation is done on tensors). bench/peers.py
#   (run by bench/run_peers.sh) also needs scipy and the peer tools, from PyPI: pyhessian (0.1),
#   curvlinops-for-pytorch (3.x), hessian-eigenthings (1.x), backpack-for-pytorch (1.7); each is optional
#   there (a missing one gives rows marked "not installed").
# - bench/torch_peer.py, bench/torch_eval.py and tests/golden/*.py use only APIs present in both 1.13 and
#   2.x (torch.autograd.grad, torch.autograd.functional.hvp, nn.Sequential, F.*). bench/peers.py is 2.x only:
#   it times torch.func (jvp(grad) HVPs, the vmap'd full Hessian) and torch.compile too.
# - Report which torch each number came from: every JSON line carries "torch": torch.__version__.
# - Threads: pass --threads 2 as for the 1.13 runs; 2.x may also honour OMP_NUM_THREADS / MKL_NUM_THREADS.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${TORCH2_VENV:-$HOME/.venv-torch2}  # outside the work tree, so git never sees it

case "${1:-}" in
--install)
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --upgrade pip
    # the peers' versions that bench/peers.py was written against (hessian-eigenthings 1.0 is a pre-release
    # with a new API; plain `pip install hessian-eigenthings` would get the old 0.x one)
    "$VENV/bin/pip" install torch numpy scipy pyhessian==0.1 curvlinops-for-pytorch==3.0.1 \
        hessian-eigenthings==1.0.0a5 backpack-for-pytorch==1.7.1
    "$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'
    ;;
--)
    shift
    [ -x "$VENV/bin/python" ] || { echo "no venv at $VENV: run 'sh bench/torch2_peer.sh --install' first" >&2; exit 1; }
    exec "$VENV/bin/python" "$ROOT/bench/torch_peer.py" "$@"
    ;;
*)
    sed -n '2,/^set -eu/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
    if [ -x "$VENV/bin/python" ]; then echo "venv: $VENV (present)"; else echo "venv: $VENV (not created)"; fi
    ;;
esac
