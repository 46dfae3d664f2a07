#!/usr/bin/env bash
# test_cli_indices.sh: `--indices I.npy` (int32 or int64, shape (n,), distinct, each in [0, samples)) as the
# fixed sample set instead of --samples/--offset, on the tiny golden data set. hvp on 0..63 gives the same bytes
# as --samples 64 --offset 0 (same samples, same order), on 8..39 the same bytes as --samples 32 --offset 8, and on
# a shuffled 0..63 the same product up to the summation order (f64, 1e-12 relative); exact, power --fixed,
# lanczos, trace and density take it too. The JSON records the file and its MD5 in input_files and offset null.
# Refused: out of range, negative, duplicates, float dtype, 2-D, empty, missing file (exit 1, nothing written);
# --indices with --samples or --offset (exit 2). Prints "test_cli_indices: N passed, M failed".
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/cli_harness.sh
py=/usr/bin/python3
base=(--checkpoint "$ck" --data "$data" --precision f64)

"$py" - "$tmp" <<'EOF' || bad "numpy could not write the test arrays"
import sys, numpy as np
t = sys.argv[1]; rng = np.random.default_rng(0)
np.save(f"{t}/v.npy", rng.standard_normal(5100))
np.save(f"{t}/first64.npy", np.arange(64, dtype=np.int64))
np.save(f"{t}/mid.npy", np.arange(8, 40, dtype=np.int32))
np.save(f"{t}/shuffled.npy", rng.permutation(64).astype(np.int32))
np.save(f"{t}/first8.npy", np.arange(8, dtype=np.int32))
np.save(f"{t}/dup.npy", np.array([0, 5, 3, 5], dtype=np.int64))
np.save(f"{t}/neg.npy", np.array([0, -1], dtype=np.int32))
np.save(f"{t}/float.npy", np.arange(4, dtype=np.float64))
np.save(f"{t}/twod.npy", np.arange(4, dtype=np.int64).reshape(2, 2))
np.save(f"{t}/empty.npy", np.zeros(0, dtype=np.int64))
EOF
total=$("$bin" hvp "${base[@]}" --samples 100000 --vector "$tmp/v.npy" --out "$tmp/x.npy" 2>&1 | grep -oE "only [0-9]+" | grep -oE "[0-9]+")
[[ $total =~ ^[0-9]+$ ]] && ok || bad "could not read the sample count (got '$total')"
"$py" -c 'import sys, numpy as np; np.save(sys.argv[1], np.array([0, int(sys.argv[2])], dtype=np.int64))' \
    "$tmp/past.npy" "$total"

# ---- hvp: the same samples in the same order give the same bytes; shuffled, the same up to rounding ----
expect 0 "samples 64 " "$bin" hvp "${base[@]}" --samples 64 --offset 0 --vector "$tmp/v.npy" --out "$tmp/s64.npy" \
    --json "$tmp/s64.json"
expect 0 "samples 64 " "$bin" hvp "${base[@]}" --indices "$tmp/first64.npy" --vector "$tmp/v.npy" --out "$tmp/i64.npy" \
    --json "$tmp/i64.json"
cmp -s "$tmp/s64.npy" "$tmp/i64.npy" && ok || bad "--indices 0..63 differs from --samples 64 --offset 0"
expect 0 "samples 32 " "$bin" hvp "${base[@]}" --samples 32 --offset 8 --vector "$tmp/v.npy" --out "$tmp/s32.npy"
expect 0 "samples 32 " "$bin" hvp "${base[@]}" --indices "$tmp/mid.npy" --vector "$tmp/v.npy" --out "$tmp/i32.npy"
cmp -s "$tmp/s32.npy" "$tmp/i32.npy" && ok || bad "--indices 8..39 (int32) differs from --samples 32 --offset 8"
expect 0 "samples 64 " "$bin" hvp "${base[@]}" --indices "$tmp/shuffled.npy" --vector "$tmp/v.npy" --out "$tmp/p64.npy"
cmp -s "$tmp/s64.npy" "$tmp/p64.npy" && echo "note: the shuffled order gave the same bytes" >&2
"$py" -c 'import sys, numpy as np; a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
e = np.abs(a - b).max() / np.abs(a).max(); assert np.abs(a).max() > 0 and e <= 1e-12, e' "$tmp/s64.npy" "$tmp/p64.npy" &&
    ok || bad "--indices shuffled 0..63 is not H v of the same set (1e-12 relative)"
"$py" - "$tmp" "$(md5sum < "$tmp/first64.npy" | cut -d' ' -f1)" <<'EOF' && ok || bad "--indices not recorded in the JSON"
import sys, json
t, md5 = sys.argv[1], sys.argv[2]; i = json.load(open(f"{t}/i64.json")); s = json.load(open(f"{t}/s64.json"))
files = {f["option"]: f for f in i["provenance"]["input_files"]}
assert files["--indices"]["path"] == f"{t}/first64.npy" and files["--indices"]["md5"] == md5, files
assert i["offset"] is None and i["samples"] == 64 and s["offset"] == 0
assert i["vHv"] == s["vHv"] and i["loss"] == s["loss"]
EOF

# ---- the other fixed-set commands: the same numbers as the equivalent --samples/--offset ----
expect 0 "largest" "$bin" exact "${base[@]}" --params 9 --samples 8 --json "$tmp/es.json"
expect 0 "largest" "$bin" exact "${base[@]}" --params 9 --indices "$tmp/first8.npy" --json "$tmp/ei.json"
expect 0 "lambda = " "$bin" power "${base[@]}" --fixed --iters 5 --tol 0 --samples 8 --json "$tmp/ps.json"
expect 0 "lambda = " "$bin" power "${base[@]}" --fixed --iters 5 --tol 0 --indices "$tmp/first8.npy" --json "$tmp/pi.json"
"$py" - "$tmp" <<'EOF' && ok || bad "exact / power --fixed with --indices differ from --samples 8"
import sys, json
t = sys.argv[1]; L = lambda n: json.load(open(f"{t}/{n}.json"))
assert L("es")["eigenvalues_largest"] == L("ei")["eigenvalues_largest"] and L("es")["trace"] == L("ei")["trace"]
assert L("ps")["lambdas"] == L("pi")["lambdas"]
EOF
expect 0 "" "$bin" lanczos "${base[@]}" --indices "$tmp/first8.npy" --k 1 --steps 10
expect 0 "" "$bin" trace "${base[@]}" --indices "$tmp/first8.npy" --probes 4
expect 0 "" "$bin" density "${base[@]}" --indices "$tmp/first8.npy" --runs 1 --steps 5 --plot "$tmp/d.svg"

# ---- refused: bad files (exit 1, nothing written), conflicts (exit 2) ----
expect 1 "--indices .*past.npy: entry 1 is $total, outside \[0, $total\)" "$bin" hvp "${base[@]}" --indices "$tmp/past.npy" \
    --vector "$tmp/v.npy" --out "$tmp/e.npy"
expect 1 "entry 1 is -1, outside" "$bin" hvp "${base[@]}" --indices "$tmp/neg.npy" --vector "$tmp/v.npy" --out "$tmp/e.npy"
expect 1 "sample 5 appears more than once \(entry 3\)" "$bin" hvp "${base[@]}" --indices "$tmp/dup.npy" \
    --vector "$tmp/v.npy" --out "$tmp/e.npy"
expect 1 "holds float64 values: sample indices must be int32 or int64" "$bin" hvp "${base[@]}" \
    --indices "$tmp/float.npy" --vector "$tmp/v.npy" --out "$tmp/e.npy"
expect 1 "has 2 dimensions: expected shape \(n,\)" "$bin" hvp "${base[@]}" --indices "$tmp/twod.npy" \
    --vector "$tmp/v.npy" --out "$tmp/e.npy"
expect 1 "holds 0 indices" "$bin" hvp "${base[@]}" --indices "$tmp/empty.npy" --vector "$tmp/v.npy" --out "$tmp/e.npy"
expect 1 "--indices .*none.npy" "$bin" exact "${base[@]}" --indices "$tmp/none.npy"
expect 2 "--indices and --samples exclude each other" "$bin" hvp "${base[@]}" --indices "$tmp/first8.npy" --samples 8 \
    --vector "$tmp/v.npy" --out "$tmp/e.npy"
expect 2 "--indices and --offset exclude each other" "$bin" power "${base[@]}" --fixed --indices "$tmp/first8.npy" \
    --offset 0
[[ ! -e $tmp/e.npy ]] && ok || bad "hvp wrote --out despite a refused --indices"

summary test_cli_indices
