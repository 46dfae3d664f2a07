#!/usr/bin/env bash
# test_cli_diag.sh: `hessian diag` on the golden cnn data and checkpoint and on golden ONNX networks:
#   the cnn (piecewise linear): the Hessian's diagonal; on the --params block 9 it equals the diagonal of
#   `hessian exact --params 9 --save-matrix` to 1e-12 relative (max |diff| / max |entry|; both float64 and exact
#   up to rounding, measured ~1e-16), the JSON trace is the sum of --out, and float32 agrees with float64 to 1e-4
#   of the largest entry (tests/test_diag.c derives it);
#   mlp (Tanh, GELU): a "GGN diagonal only" warning, --curvature hessian refused (exit 2), --curvature ggn silent;
#   vgg with --bn batch refused (exit 2); bad options refused (exit 2) before anything is written.
# Prints "test_cli_diag: N passed, M failed".
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/cli_harness.sh
py=/usr/bin/python3
g=tests/golden/onnx
c64=(--checkpoint "$ck" --data "$data" --samples 64 --precision f64)

# ---- cnn: the Hessian's diagonal, against the exact matrix's block ----
expect 0 "diagonal of the Hessian .*d = 310" "$bin" diag "${c64[@]}" --params 9 --out "$tmp/d9.npy" --json "$tmp/d9.json"
expect 0 "trace" "$bin" exact "${c64[@]}" --params 9 --save-matrix "$tmp/H9.npy"
"$py" - "$tmp" <<'PYEOF' && ok || bad "diag --params 9 differs from the exact matrix's diagonal"
import sys, json, numpy as np
t = sys.argv[1]; d = np.load(f"{t}/d9.npy"); H = np.load(f"{t}/H9.npy"); j = json.load(open(f"{t}/d9.json"))
assert d.shape == (310,) and d.dtype == np.float64
err = np.abs(d - np.diag(H)).max() / np.abs(np.diag(H)).max()
assert err <= 1e-12, err
assert abs(j["trace"] - d.sum()) <= 1e-12 * abs(d.sum()), (j["trace"], d.sum())
assert j["diagonal_of"] == "hessian" and j["exact_hessian"] is True and j["vectors_per_sample"] == 10
assert j["d"] == 310 and len(j["tensors"]) == 8
PYEOF
expect 0 "diagonal of the Hessian .*d = 5100" "$bin" diag "${c64[@]}" --out "$tmp/d64.npy"
expect 0 "d = 5100" "$bin" diag --checkpoint "$ck" --data "$data" --samples 64 --precision f32 --out "$tmp/d32.npy" \
    --json "$tmp/d32.json"
"$py" - "$tmp" <<'PYEOF' && ok || bad "float32 diagonal differs from float64"
import sys, numpy as np
t = sys.argv[1]; a = np.load(f"{t}/d64.npy"); b = np.load(f"{t}/d32.npy")
assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max(), np.abs(a - b).max() / np.abs(a).max()
PYEOF
expect 0 "Gauss-Newton" "$bin" diag "${c64[@]}" --curvature ggn --params 9

# ---- a network that curves: the GGN diagonal only ----
mlp=(--model "$g/mlp.onnx" --inputs "$g/mlp_x.npy" --targets "$g/mlp_y.npy" --loss mse --samples all --precision f64)
expect 0 "warning: GGN diagonal only.*(Tanh|Erf|Mul)" "$bin" diag "${mlp[@]}" --json "$tmp/mlp.json"
"$py" - "$tmp" <<'PYEOF' && ok || bad "mlp JSON: ggn, not exact, with the reason"
import sys, json
j = json.load(open(sys.argv[1] + "/mlp.json"))
assert j["diagonal_of"] == "ggn" and j["exact_hessian"] is False and j["why_not_hessian"], j
PYEOF
expect 2 "curvature hessian.*ggn" "$bin" diag "${mlp[@]}" --curvature hessian --out "$tmp/no.npy"
[[ ! -e $tmp/no.npy ]] && ok || bad "a refused run wrote --out"
expect 0 "" "$bin" diag "${mlp[@]}" --curvature ggn
grep -qi warning <<<"$out" && bad "--curvature ggn should not warn: $out" || ok

# ---- refusals ----
vgg=(--model "$g/vgg.onnx" --inputs "$g/vgg_x.npy" --targets "$g/vgg_y.npy" --samples all)
expect 0 "diagonal of the Hessian" "$bin" diag "${vgg[@]}"
expect 2 "batch statistics.*--bn eval" "$bin" diag "${vgg[@]}" --bn batch
expect 2 "unknown option" "$bin" diag "${c64[@]}" --vector x.npy
expect 2 "--params" "$bin" diag "${c64[@]}" --params nosuchlayer
expect 2 "--curvature" "$bin" diag "${c64[@]}" --curvature newton
expect 1 "" "$bin" diag "${c64[@]}" --out "$tmp/missing/d.npy"
expect 0 "usage: hessian diag" "$bin" diag --help
expect 0 "diag .*diagonal" "$bin" --help

summary test_cli_diag
