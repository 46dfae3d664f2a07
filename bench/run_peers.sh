#!/usr/bin/env bash
# run_peers.sh: hessian side by side with PyTorch 2.x and the peer tools (curvlinops, PyHessian,
# hessian-eigenthings, BackPACK) on the cnn, the same 1,000 CIFAR-10 training images, checkpoint and threads;
# prints one table (best peer per row against hessian, ratio = peer seconds / hessian seconds) and every row.
#   bash bench/run_peers.sh DATA_DIR [--out FILE]     (--out: all rows as one JSON file)
# Environment: THREADS (default 2), SAMPLES (default 1000), QUICK=1 (200 samples, no full-Hessian
# extrapolation for PyTorch: a smoke run), CKPT (reuse this checkpoint instead of training one),
# TORCH2_VENV (the venv with torch and the peers, default $HOME/.venv-torch2; made by
# bench/torch2_peer.sh --install when missing). Progress goes to stderr, the tables to stdout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
usage() { echo "usage: bash bench/run_peers.sh DATA_DIR [--out FILE]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
data=$1; shift
out_json=
while [[ $# -gt 0 ]]; do
    case $1 in
    --out) [[ $# -ge 2 ]] || usage; out_json=$2; shift 2 ;;
    *) usage ;;
    esac
done
threads=${THREADS:-2}
quick=${QUICK:-0}
if [[ $quick == 1 ]]; then samples=${SAMPLES:-200}; else samples=${SAMPLES:-1000}; fi
venv=${TORCH2_VENV:-$HOME/.venv-torch2}
py=$venv/bin/python
export OMP_NUM_THREADS=$threads

scripts/get-data.sh "$data"
make -s all build/bench/bench_cnn_f32
[[ -x $py ]] || sh bench/torch2_peer.sh --install >&2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

echo "peers: $(lscpu | sed -n 's/^Model name: *//p'), $threads threads, $samples samples" >&2
if [[ -n ${CKPT:-} ]]; then
    ckpt=$CKPT
else
    echo "peers: hessian train (1 epoch)" >&2
    ckpt=$tmp/cnn.safetensors
    bin/hessian train --model cnn --data "$data" --epochs 1 --out "$ckpt" --json "$tmp/train.json" --quiet >&2
fi
h() { local cmd=$1; shift; bin/hessian "$cmd" --model cnn --checkpoint "$ckpt" --data "$data" --samples "$samples" \
    --offset 0 --threads "$threads" --quiet "$@" > /dev/null; }

echo "peers: float64 reference (hessian exact, diag)" >&2
h exact --precision f64 --k 5 --json "$tmp/ref_exact.json"
h diag --precision f64 --out "$tmp/ref_diag.npy" --json "$tmp/h_diag_f64.json"

echo "peers: hessian rows (f32)" >&2
build/bench/bench_cnn_f32 "$data" --samples "$samples" --checkpoint "$ckpt" --no-exact > "$tmp/h_bench.json"
h lanczos --precision f32 --k 5 --which largest --tol 1e-6 --json "$tmp/h_top5.json"
h lanczos --precision f32 --k 5 --which smallest --tol 1e-6 --json "$tmp/h_bottom5.json"
h trace --precision f32 --method hutchinson --probes 99 --json "$tmp/h_hutchinson.json"
h trace --precision f32 --method hutchpp --probes 99 --json "$tmp/h_hutchpp.json"
h diag --precision f32 --out "$tmp/h_diag_f32.npy" --json "$tmp/h_diag_f32.json"
h exact --precision f32 --k 5 --json "$tmp/h_exact_f32.json"
h density --precision f32 --json "$tmp/h_density.json"

echo "peers: PyTorch 2.x and the peer tools ($py)" >&2
quick_flag=(); [[ $quick == 1 ]] && quick_flag=(--quick)
# a fresh inductor cache, so that compile_seconds is a cold compile (a warm cache cuts it about tenfold)
export TORCHINDUCTOR_CACHE_DIR=$tmp/inductor
"$py" bench/peers.py --data "$data" --checkpoint "$ckpt" --samples "$samples" --threads "$threads" \
    --reference "$tmp/ref_exact.json" --reference-diag "$tmp/ref_diag.npy" "${quick_flag[@]}" > "$tmp/peers.jsonl"

"$py" - "$tmp" "$threads" "$samples" "$(lscpu | sed -n 's/^Model name: *//p')" "$out_json" <<'PY'
import json, os, sys
import numpy as np
d, threads, samples, cpu, out_json = sys.argv[1:6]
j = lambda n: json.load(open(os.path.join(d, n)))
ref = j("ref_exact.json")
scale = max(abs(x) for x in ref["eigenvalues_largest"] + ref["eigenvalues_smallest"])
def eig_err(vals, which):
    v = np.sort(vals)
    r = np.sort(ref["eigenvalues_largest" if which == "largest" else "eigenvalues_smallest"])
    if which == "largest":
        v, r = v[::-1], r[::-1]
    n = min(len(v), len(r))
    return float(np.max(np.abs(v[:n] - r[:n])) / scale)
trace_err = lambda t: abs(t - ref["trace"]) / abs(ref["trace"])
ref_diag = np.load(os.path.join(d, "ref_diag.npy"))

# hessian's rows, in the peers' schema (the first of a row is the one the table compares)
hs = []
def add(row, method, seconds, hvps, error=None, notes=""):
    hs.append({"row": row, "tool": "hessian", "method": method, "seconds": seconds, "hvps": hvps, "error": error,
               "notes": notes, "status": "ok", "threads": int(threads), "samples": int(samples), "dtype": "f32"})
b = j("h_bench.json")
add("gradient", "bench_cnn_f32 gradient", b["grad_seconds"], 0, notes="median of 5")
add("hvp", "bench_cnn_f32 HVP", b["hvp_seconds"], 1, notes="median of 5, from scratch")
e = j("h_exact_f32.json")
add("hessian-eig", "exact f32", e["seconds"], e["hvps"],
    max(eig_err(e["eigenvalues_largest"], "largest"), eig_err(e["eigenvalues_smallest"], "smallest")),
    f"matrix {e['seconds_matrix']:.2f} s + eigenvalues {e['seconds_eigenvalues']:.2f} s ({e['eigensolver']}); "
    "error over both ends' 5")
for which, row in (("largest", "top5"), ("smallest", "bottom5")):
    l = j(f"h_{row}.json")
    add(row, f"lanczos {which} tol 1e-6 f32", l["seconds"], l["hvps"], eig_err(l["eigenvalues"], which),
        f"{l['steps']} steps, converged {l['converged']}")
for m in ("hutchinson", "hutchpp"):
    t = j(f"h_{m}.json")
    add(f"trace-{m}", f"trace {m} 99", t["seconds"], t["hvps"], trace_err(t[m]["trace"]),
        f"trace {t[m]['trace']:.6g} +- {t[m]['std_error']:.2g} (standard error)")
for p in ("f32", "f64"):
    g = j(f"h_diag_{p}.json")
    md = float(np.max(np.abs(np.load(os.path.join(d, f"h_diag_{p}.npy")) - ref_diag))) if p == "f32" else 0.0
    add("trace-exact", f"diag {p}", g["seconds"], g["hvps"], trace_err(g["trace"]),
        f"exact diagonal, trace = sum; max diagonal error {md:.2g}" if p == "f32" else "the reference diagonal")
s = j("h_density.json")
add("density", "density f32 (defaults)", s["seconds"], s["hvps"], notes=f"SLQ {s['runs']} runs x {s['steps']} steps; time only")

peers = [json.loads(line) for line in open(os.path.join(d, "peers.jsonl")) if line.strip()]
torch_version = next((p["torch"] for p in peers if "torch" in p), "?")
# "best peer": the fastest row that converged; in the eigenvalue rows it must reach ACCURATE (error relative
# to |lambda_max|), in the trace estimator rows use as many HVPs as hessian (estimates at equal cost)
ACCURATE = 1e-4
LABEL = {"gradient": "gradient", "hvp": "HVP", "hessian-eig": "full Hessian + all eigenvalues",
         "top5": "top-5 eigenvalues, tol 1e-6", "bottom5": "bottom-5 eigenvalues, tol 1e-6",
         "trace-hutchinson": "trace, Hutchinson (99 HVPs)", "trace-hutchpp": "trace, Hutch++/XTrace (99 HVPs)",
         "trace-exact": "trace, exact diagonal", "density": "spectral density (SLQ)"}
def fs(x, f):
    """x formatted by f, or a dash as wide as f asks"""
    return format(x, f) if x is not None else "-".rjust(int("".join(c for c in f.split(".")[0] if c.isdigit()) or 0))
print(f"cnn, {samples} CIFAR-10 training images (offset 0), f32, {threads} threads, CPU: {cpu}; "
      f"PyTorch {torch_version}; ratio = peer seconds / hessian seconds (> 1: hessian faster)")
print(f"errors against hessian's float64 exact reference: eigenvalues max |error| / |lambda_max|, "
      f"trace |error| / |trace| (reference trace {ref['trace']:.9g}, lambda_max {ref['eigenvalues_largest'][-1]:.9g})")
hdr = f"{'row':34s} | {'best peer (tool/method)':48s} {'seconds':>9s} {'HVPs':>6s} {'error':>8s} | " \
      f"{'hessian':>9s} {'HVPs':>6s} {'error':>8s} | {'ratio':>7s}"
print(hdr)
print("-" * len(hdr))
flagged = False
for row, label in LABEL.items():
    hr = next(r for r in hs if r["row"] == row)
    ok = [p for p in peers if p["row"] == row and p["status"] == "ok" and p["seconds"] is not None]
    good = [p for p in ok if p.get("converged", True) is not False
            and (row not in ("top5", "bottom5") or (p["error"] is not None and p["error"] <= ACCURATE))
            and (row not in ("trace-hutchinson", "trace-hutchpp") or p["hvps"] >= 0.95 * hr["hvps"])]
    best = min(good or ok, key=lambda p: p["seconds"], default=None)
    star = "*" if best is not None and not good else ""
    flagged |= bool(star)
    if row == "hessian-eig" and best is None:
        name = "(skipped: QUICK)" if not any(p["row"] == row for p in peers) else "(no successful peer row)"
    else:
        name = f"{best['tool']}/{best['method']}{star}" if best else "(no successful peer row)"
    ps, ph, pe = (best["seconds"], best["hvps"], best["error"]) if best else (None, None, None)
    ratio = f"{ps / hr['seconds']:6.1f}x" if ps is not None and hr["seconds"] else "-"
    if best and best.get("extrapolated"):
        name += " (extrap.)"
    print(f"{label:34s} | {name[:48]:48s} {fs(ps, '9.3f')} {fs(ph, '6d')} {fs(pe, '8.1e')} | "
          f"{hr['seconds']:9.3f} {hr['hvps']:6d} {fs(hr['error'], '8.1e')} | {ratio:>7s}")
if flagged:
    print(f"* no peer row qualified (converged; eigenvalue rows: error <= {ACCURATE:g}; estimator rows: "
          f"as many HVPs as hessian): the fastest is shown")
print()
print("every row:")
print(f"{'row':17s} {'tool':20s} {'method':34s} {'seconds':>9s} {'HVPs':>6s} {'error':>8s}  status / notes")
for r in hs + peers:
    extra = r.get("failure") or r.get("notes", "")
    if r.get("compile_seconds") is not None:
        extra = f"compile {r['compile_seconds']:.1f} s; " + extra
    if r.get("converged") is False:
        extra = "NOT converged; " + extra
    st = "" if r["status"] == "ok" else r["status"].upper() + ": "
    print(f"{r['row']:17s} {r['tool']:20s} {r['method'][:34]:34s} {fs(r['seconds'], '9.3f')} "
          f"{fs(r['hvps'], '6d')} {fs(r['error'], '8.1e')}  {st}{extra}")
if out_json:
    meta = {"cpu": cpu, "threads": int(threads), "samples": int(samples), "torch": torch_version,
            "reference": {k: ref[k] for k in ("eigenvalues_largest", "eigenvalues_smallest", "trace")}}
    with open(out_json, "w") as f:
        json.dump({"meta": meta, "rows": hs + peers}, f, indent=1)
    print(f"peers: wrote {out_json}", file=sys.stderr)
PY
