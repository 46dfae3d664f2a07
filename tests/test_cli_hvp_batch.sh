#!/usr/bin/env bash
# test_cli_hvp_batch.sh: `hessian hvp --vector V.npy` with V of shape (K, d), on the tiny golden data set: the K
# products come from one pass over the samples and equal K single-vector runs row by row; --out has V's shape
# ((d,) stays (d,), (1, d) stays (1, d)); stdout has a line per direction and the JSON arrays of K for K > 1;
# shapes that are not (d,) or (K, d) with 1 <= K <= 1024 are refused (exit 1, as every --vector shape error)
# before any work and nothing is written. Prints "test_cli_hvp_batch: N passed, M failed".
#
# Why 1e-13 relative and not bitwise: the K directions travel through the layers as one batch, so the
# tangent and second-order products are GEMMs with K times the columns of a single run; OpenBLAS picks its
# kernels and blocking by shape, which changes the order of the float64 sums inside each dot product (seen:
# about 5e-16 relative). The products themselves are the same: 1e-13 leaves rounding room and nothing else.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/cli_harness.sh
py=/usr/bin/python3
c64=(--checkpoint "$ck" --data "$data" --samples 64 --precision f64)

"$py" - "$tmp" <<'EOF' || bad "numpy could not write the test vectors"
import sys, numpy as np
t = sys.argv[1]; rng = np.random.default_rng(0)
V = rng.standard_normal((3, 5100)); np.save(f"{t}/V3.npy", V); np.save(f"{t}/V1.npy", V[:1])
for k in range(3): np.save(f"{t}/v{k}.npy", V[k])
B = rng.standard_normal((2, 310)); np.save(f"{t}/B2.npy", B)
for k in range(2): np.save(f"{t}/b{k}.npy", B[k])
np.save(f"{t}/big.npy", np.ones((1025, 5100))); np.save(f"{t}/wide.npy", V[:, :5099])
np.save(f"{t}/cube.npy", V.reshape(3, 1, 5100))
EOF

# rows_match BATCH SINGLE...: row k of BATCH equals SINGLE k to 1e-13 relative (max |diff| / max |row|)
rows_match() {
    "$py" - "$@" <<'EOF'
import sys, numpy as np
H = np.load(sys.argv[1]); singles = [np.load(p) for p in sys.argv[2:]]
assert H.shape == (len(singles), singles[0].size), f"shape {H.shape}"
for k, h in enumerate(singles):
    err = np.abs(H[k] - h).max() / np.abs(h).max()
    assert np.abs(h).max() > 0 and err <= 1e-13, f"row {k}: relative error {err:.3g}"
EOF
}

# ---- (3, 5100) in f64: three products in one pass, equal to three single runs ----
expect 0 "directions 3" "$bin" hvp "${c64[@]}" --vector "$tmp/V3.npy" --out "$tmp/H3.npy" --json "$tmp/h3.json"
[[ $(grep -c "^direction [0-2] | |v| .* v.Hv .* |Hv| " <<<"$out") == 3 ]] && ok || bad "no line per direction:"$'\n'"$out"
for k in 0 1 2; do
    expect 0 "v.Hv" "$bin" hvp "${c64[@]}" --vector "$tmp/v$k.npy" --out "$tmp/h$k.npy" --json "$tmp/h$k.json"
done
rows_match "$tmp/H3.npy" "$tmp/h0.npy" "$tmp/h1.npy" "$tmp/h2.npy" && ok || bad "(3, d) hvp differs from 3 single runs"
"$py" - "$tmp" <<'EOF' && ok || bad "hvp (3, d) JSON: arrays of 3 that match the single runs"
import sys, json
t = sys.argv[1]; b = json.load(open(f"{t}/h3.json")); s = [json.load(open(f"{t}/h{k}.json")) for k in range(3)]
assert b["directions"] == 3 and b["hvps"] == 3 and all(x["directions"] == 1 for x in s)
for key in ("vHv", "rayleigh_quotient", "hv_norm"):
    assert len(b[key]) == 3, key
    for k in range(3):
        assert isinstance(s[k][key], float), key  # one direction: a number, as before
        assert abs(b[key][k] - s[k][key]) <= 1e-12 * abs(s[k][key]), (key, k, b[key][k], s[k][key])
assert abs(b["loss"] - s[0]["loss"]) <= 1e-14 * s[0]["loss"]
EOF

# ---- shapes: (1, d) stays (1, d); a --params block (2, 310); f32 writes (3, d) float32 ----
expect 0 "v.Hv" "$bin" hvp "${c64[@]}" --vector "$tmp/V1.npy" --out "$tmp/H1.npy"
rows_match "$tmp/H1.npy" "$tmp/h0.npy" && ok || bad "(1, d) hvp: not (1, d) or not the single run"
expect 0 "directions 2" "$bin" hvp "${c64[@]}" --params 9 --vector "$tmp/B2.npy" --out "$tmp/HB.npy"
for k in 0 1; do expect 0 "v.Hv" "$bin" hvp "${c64[@]}" --params 9 --vector "$tmp/b$k.npy" --out "$tmp/hb$k.npy"; done
rows_match "$tmp/HB.npy" "$tmp/hb0.npy" "$tmp/hb1.npy" && ok || bad "--params 9 (2, 310) hvp differs from 2 single runs"
expect 0 "directions 3" "$bin" hvp --checkpoint "$ck" --data "$data" --samples 16 --vector "$tmp/V3.npy" --out "$tmp/F3.npy"
"$py" -c 'import sys, numpy as np; a = np.load(sys.argv[1]); assert a.shape == (3, 5100) and a.dtype == np.float32
assert np.isfinite(a).all() and (np.abs(a).max(axis=1) > 0).all()' "$tmp/F3.npy" && ok || bad "f32 (3, d) output"

# ---- refused before any work: K > 1024, a last dimension that is not d, three dimensions ----
expect 1 "--vector .*shape \(1025, 5100\): expected \(5100,\) or \(K, 5100\) with 1 <= K <= 1024" \
    "$bin" hvp "${c64[@]}" --vector "$tmp/big.npy" --out "$tmp/e.npy"
expect 1 "shape \(3, 5099\): expected \(5100,\) or \(K, 5100\)" "$bin" hvp "${c64[@]}" --vector "$tmp/wide.npy" --out "$tmp/e.npy"
expect 1 "shape \(3, 1, 5100\)" "$bin" hvp "${c64[@]}" --vector "$tmp/cube.npy" --out "$tmp/e.npy"
grep -qi "loss" <<<"$out" && bad "work was done before the shape error: $out" || ok
[[ ! -e $tmp/e.npy ]] && ok || bad "hvp wrote --out despite a refused --vector shape"

summary test_cli_hvp_batch
