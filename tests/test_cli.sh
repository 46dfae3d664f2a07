#!/usr/bin/env bash
# test_cli.sh: the `hessian` command as a user runs it, on the tiny golden data set (tests/golden/cnn_data:
# 96 training and 16 test images): help and usage errors, clear errors and no output files on bad input,
# a short training run whose loss falls, checkpoints that load back, JSON/CSV outputs, and fixed-set power
# iteration that finds the exact top eigenvalue. Prints "test_cli: N passed, M failed".
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${HESSIAN_BIN:-bin/hessian}
data=tests/golden/cnn_data
ck=tests/golden/cnn_init.safetensors
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} HESSIAN_QUIET=1
passed=0; failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
# expect STATUS PATTERN CMD...: exit status and a pattern in stdout+stderr
expect() {
    local want=$1 pattern=$2; shift 2
    local out; out=$("$@" 2>&1); local rc=$?
    if [[ $rc -ne $want ]]; then bad "exit $rc (want $want): $*"$'\n'"$out"; return; fi
    if [[ -n $pattern ]] && ! grep -qiE -- "$pattern" <<<"$out"; then bad "no /$pattern/ in output of: $*"$'\n'"$out"; return; fi
    ok
}

expect 0 "usage: hessian COMMAND" "$bin" --help
expect 2 "unknown command" "$bin" frobnicate
for c in train eval hvp exact power study lanczos trace density; do expect 0 "usage: hessian $c" "$bin" "$c" --help; done
expect 2 "unknown option '--bogus'" "$bin" train --data "$data" --out "$tmp/x.safetensors" --bogus
expect 2 "missing required option --out" "$bin" train --data "$data"
expect 2 "--lr expects a finite number" "$bin" train --data "$data" --out "$tmp/x.safetensors" --lr abc
expect 2 "--lr must be in" "$bin" train --data "$data" --out "$tmp/x.safetensors" --lr -1
expect 2 "--precision must be f32 or f64" "$bin" hvp --data "$data" --vector v --out o --precision f16
expect 2 "--curvature must be hessian or ggn" "$bin" exact --data "$data" --curvature fisher
expect 1 "hessian data cifar10" "$bin" eval --checkpoint "$ck" --data "$tmp/nowhere"
expect 1 "--samples 1000 with --offset 0 needs 1000" "$bin" exact --checkpoint "$ck" --data "$data" --samples 1000

# Malformed checkpoints and vectors: clear errors, no output written.
head -c 100 "$ck" > "$tmp/truncated.safetensors"
expect 1 "truncated.safetensors" "$bin" eval --checkpoint "$tmp/truncated.safetensors" --data "$data"
printf 'not a npy file' > "$tmp/bad.npy"
expect 1 "bad.npy" "$bin" hvp --checkpoint "$ck" --data "$data" --samples 8 --vector "$tmp/bad.npy" --out "$tmp/hv.npy"
[[ ! -e $tmp/hv.npy ]] && ok || bad "hvp wrote output despite a bad vector"
short=tests/golden/cnn_hv.npy # a valid .npy of the right length
expect 0 "v.Hv" "$bin" hvp --checkpoint "$ck" --data "$data" --samples 8 --vector "$short" --out "$tmp/hv.npy" --json "$tmp/hv.json"
[[ -s $tmp/hv.npy && -s $tmp/hv.json ]] && ok || bad "hvp outputs missing"
# a valid float64 .npy of length 3 (header padded to 64 bytes), the wrong length for the cnn
hdr="{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }"
printf '\x93NUMPY\x01\x00\x76\x00%s%*s\n' "$hdr" $((117 - ${#hdr})) '' > "$tmp/short.npy"
head -c 24 /dev/zero >> "$tmp/short.npy"
expect 1 "holds 3 values, but model cnn has 5100" "$bin" hvp --model cnn --checkpoint "$ck" --data "$data" --samples 8 --vector "$tmp/short.npy" --out "$tmp/hv2.npy"
[[ ! -e $tmp/hv2.npy ]] && ok || bad "hvp wrote output despite a wrong-length vector"

# Training: loss falls over 3 epochs on 96 images; checkpoint loads back; JSON and CSV written.
expect 0 "Epoch 3/3" "$bin" train --data "$data" --epochs 3 --batch 16 --lr 0.05 --seed 1 --out "$tmp/cnn.safetensors" \
    --json "$tmp/train.json" --csv "$tmp/curve.csv" --log-every 2
first=$(grep -o '"train_loss": [0-9.e+-]*' "$tmp/train.json" | head -1 | awk '{print $2}')
last=$(grep -o '"train_loss": [0-9.e+-]*' "$tmp/train.json" | tail -1 | awk '{print $2}')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' && ok || bad "training loss did not fall: $first -> $last"
[[ $(wc -l < "$tmp/curve.csv") -ge 4 ]] && ok || bad "training curve CSV too short"
expect 0 "Test Acc" "$bin" eval --checkpoint "$tmp/cnn.safetensors" --data "$data" --json "$tmp/eval.json"
ls "$tmp" | grep -q '\.tmp\.' && bad "temporary files left behind" || ok

# Resuming gives the same bits as an uninterrupted run; the sharpness schedule writes its CSV and plot.
expect 0 "Sharpness at epoch 2" "$bin" train --data "$data" --epochs 2 --batch 16 --out "$tmp/r.safetensors" \
    --sharpness-at 0,2 --sharpness-iters 3 --sharpness-batch 32
expect 0 "resuming" "$bin" train --data "$data" --epochs 3 --batch 16 --out "$tmp/r.safetensors" --resume "$tmp/r.safetensors"
expect 0 "Epoch 3/3" "$bin" train --data "$data" --epochs 3 --batch 16 --out "$tmp/u.safetensors"
cmp -s "$tmp/r.safetensors" "$tmp/u.safetensors" && ok || bad "resumed training differs from uninterrupted training"
[[ $(wc -l < "$tmp/r.safetensors.sharpness.csv") -eq 3 ]] && ok || bad "sharpness CSV should have 2 rows"
grep -q "2 / lr" "$tmp/r.safetensors.sharpness.svg" && ok || bad "sharpness plot lacks the 2/lr line"
expect 1 "already trained 3 epochs" "$bin" train --data "$data" --epochs 3 --batch 16 --out "$tmp/r.safetensors" --resume "$tmp/r.safetensors"

# Exact spectrum on the golden selection: the PyTorch top eigenvalue, JSON keys.
expect 0 "4.17257" "$bin" exact --checkpoint "$ck" --data "$data" --samples 64 --json "$tmp/exact.json" --plot "$tmp/spectrum.svg"
for key in d samples loss eigenvalues_smallest eigenvalues_largest smoothness trace negative_count asymmetry seconds; do
    grep -q "\"$key\"" "$tmp/exact.json" && ok || bad "exact.json lacks $key"
done
grep -q "</svg>" "$tmp/spectrum.svg" && ok || bad "spectrum plot incomplete"

# Power iteration on the fixed set converges to the exact top eigenvalue (4.172566239769569, PyTorch f64).
expect 0 "lambda = 4.172" "$bin" power --checkpoint "$ck" --data "$data" --fixed --samples 64 --iters 500 --tol 1e-6 \
    --precision f64 --json "$tmp/power.json" --csv "$tmp/power.csv"
grep -q '"hvps"' "$tmp/power.json" && ok || bad "power.json lacks hvps"
expect 0 "lambda_1 = " "$bin" power --checkpoint "$ck" --data "$data" --batch 32 --iters 3 --beta 0.9

# Matrix-free methods against the exact spectrum (PyTorch f64: smallest -2.40838015898016, largest
# 4.17256623976957, trace 13.321121571939148), on the golden selection in f64.
num() { grep -o "\"$2\": \[\?[-0-9.e+]*" "$1" | head -1 | sed 's/.*[[ ]//'; }
close() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; s = b < 0 ? -b : b; exit !(d <= t * s) }'; }
common=(--checkpoint "$ck" --data "$data" --samples 64 --precision f64)
expect 0 "converged" "$bin" lanczos "${common[@]}" --k 3 --which both --steps 100 --tol 1e-8 --json "$tmp/lz1.json"
expect 0 "converged" "$bin" lanczos "${common[@]}" --k 3 --which both --steps 100 --tol 1e-8 --json "$tmp/lz2.json"
lo=$(grep -o '"eigenvalues": \[[^]]*' "$tmp/lz1.json" | sed 's/.*\[//' | cut -d, -f1)
hi=$(grep -o '"eigenvalues": \[[^]]*' "$tmp/lz1.json" | sed 's/.*\[//' | awk -F, '{print $NF}')
close "$lo" -2.40838015898016 1e-8 && ok || bad "lanczos smallest $lo vs PyTorch -2.40838015898016"
close "$hi" 4.17256623976957 1e-8 && ok || bad "lanczos largest $hi vs PyTorch 4.17256623976957"
hvps=$(num "$tmp/lz1.json" hvps)
[[ $hvps -le 100 ]] && ok || bad "lanczos used $hvps HVPs (> 100)"
[[ "$(grep eigenvalues "$tmp/lz1.json")" == "$(grep eigenvalues "$tmp/lz2.json")" ]] && ok || bad "two Lanczos runs differ"
expect 0 "Hutch\+\+" "$bin" trace "${common[@]}" --probes 60 --seed 3 --json "$tmp/trace.json"
tr_h=$(grep -A2 '"hutchinson"' "$tmp/trace.json" | num /dev/stdin trace)
se_h=$(grep -A3 '"hutchinson"' "$tmp/trace.json" | num /dev/stdin std_error)
awk -v t="$tr_h" -v s="$se_h" 'BEGIN { d = t - 13.321121571939148; if (d < 0) d = -d; exit !(d <= 3 * s) }' && ok ||
    bad "Hutchinson trace $tr_h +- $se_h is not within 3 standard errors of 13.3211"
expect 0 "" "$bin" exact "${common[@]}" --curvature ggn --json "$tmp/ggn.json"
ggn_min=$(grep -o '"eigenvalues_smallest": \[[^,]*' "$tmp/ggn.json" | sed 's/.*\[//')
ggn_max=$(num "$tmp/ggn.json" smoothness)
awk -v a="$ggn_min" -v m="$ggn_max" 'BEGIN { exit !(a >= -1e-6 * m) }' && ok || bad "GGN smallest eigenvalue $ggn_min < -1e-6 * $ggn_max"
expect 0 "SLQ|density" "$bin" density "${common[@]}" --runs 2 --steps 30 --csv "$tmp/density.csv" --plot "$tmp/density.svg" \
    --exact tests/golden/cnn_eigenvalues.npy
grep -q "</svg>" "$tmp/density.svg" && ok || bad "density plot incomplete"
expect 0 "Hutchinson" "$bin" trace "${common[@]}" --stochastic --batch 16 --probes 8 --json "$tmp/st.json"
grep -q '"operator": "stochastic"' "$tmp/st.json" && ok || bad "stochastic trace not recorded as such"
expect 0 "d = 310" "$bin" lanczos "${common[@]}" --params 9 --k 2
expect 2 "names no parameter" "$bin" lanczos "${common[@]}" --params nosuchlayer --k 2

echo "test_cli: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
