#!/usr/bin/env bash
# test_cli.sh: the `hessian` command as a user runs it, on the tiny golden data set (tests/golden/cnn_data:
# 96 training and 16 test images): help and usage errors, clear errors and no output files on bad input,
# a short training run whose loss falls, checkpoints that load back, and every analysis command's numbers
# against the exact spectrum (hessian exact, itself checked against PyTorch's float64 values): HVP, power
# iteration, Lanczos eigenvalues and residuals, trace estimates within 3 standard errors, the spectral density.
# Every numeric check fails on a missing or non-numeric value (CLI_VERBOSE=1 prints each one's values). Fixed
# seeds: the outcome is deterministic.
# Prints "test_cli: N passed, M failed".
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/cli_harness.sh
# JSON written by the CLI (one key per line, arrays on one line): jnum FILE KEY prints the first number after
# "KEY": (an array's first element), jarr FILE KEY an array's elements one per line; nothing when absent.
jnum() { grep -o "\"$2\": \[\?[-0-9.eE+]*" "$1" 2>/dev/null | head -1 | sed 's/.*[[ ]//'; }
jarr() { grep -o "\"$2\": \[[^]]*" "$1" 2>/dev/null | head -1 | sed 's/.*\[//' | tr -d ' ' | tr ',' '\n'; }
# npy_values FILE: the values of a float64 .npy with the CLI's 128-byte header, one per line.
npy_values() { od -An -v -j 128 -t f8 -w8 "$1"; }
# holds MESSAGE EXPR NAME=VALUE...: one check; passes when every VALUE is a number and the awk expression EXPR
# over the NAMEs (abs() available) is true. An empty or non-numeric VALUE fails it.
holds() {
    local msg=$1 expr=$2 kv vars=(); shift 2
    for kv in "$@"; do
        [[ ${kv#*=} =~ ^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$ ]] ||
            { bad "$msg: ${kv%%=*} = '${kv#*=}' is not a number"; return; }
        vars+=(-v "$kv")
    done
    [[ -n ${CLI_VERBOSE-} ]] && echo "check: $msg: $*"
    awk "${vars[@]}" "function abs(x) { return x < 0 ? -x : x } BEGIN { exit !($expr) }" && ok || bad "$msg: $* (want $expr)"
}

expect 0 "usage: hessian COMMAND" "$bin" --help
expect 2 "unknown command" "$bin" frobnicate
for c in train eval hvp exact power study lanczos trace density; do expect 0 "usage: hessian $c" "$bin" "$c" --help; done
expect 2 "unknown option '--bogus'" "$bin" train --data "$data" --out "$tmp/x.safetensors" --bogus
expect 2 "missing required option --out" "$bin" train --data "$data"
expect 2 "--lr expects a finite number" "$bin" train --data "$data" --out "$tmp/x.safetensors" --lr abc
expect 2 "--lr must be in" "$bin" train --data "$data" --out "$tmp/x.safetensors" --lr -1
expect 2 "--precision must be f32 or f64" "$bin" hvp --checkpoint "$ck" --data "$data" --vector v --out o --precision f16
expect 2 "--curvature must be hessian or ggn" "$bin" exact --checkpoint "$ck" --data "$data" --curvature fisher
expect 1 "hessian data cifar10" "$bin" eval --checkpoint "$ck" --data "$tmp/nowhere"
expect 1 "--samples 1000 with --offset 0 needs 1000" "$bin" exact --checkpoint "$ck" --data "$data" --samples 1000

# Malformed checkpoints and vectors: clear errors, no output written.
head -c 100 "$ck" > "$tmp/truncated.safetensors"
expect 1 "truncated.safetensors" "$bin" eval --checkpoint "$tmp/truncated.safetensors" --data "$data"
printf 'not a npy file' > "$tmp/bad.npy"
expect 1 "bad.npy" "$bin" hvp --checkpoint "$ck" --data "$data" --samples 8 --vector "$tmp/bad.npy" --out "$tmp/hv.npy"
[[ ! -e $tmp/hv.npy ]] && ok || bad "hvp wrote output despite a bad vector"
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
holds "training loss did not fall" 'b < a' a="$first" b="$last"
# 96 images / batch 16 = 6 steps an epoch, 18 in all, one row every 2 steps: a header and 9 rows ending at step 18
[[ $(wc -l < "$tmp/curve.csv") -eq 10 && $(tail -1 "$tmp/curve.csv" | cut -d, -f1,2) == "18,3.0000" ]] && ok ||
    bad "training curve CSV: want 9 rows ending at step 18, epoch 3: $(cat "$tmp/curve.csv")"
expect 0 "Test Acc" "$bin" eval --checkpoint "$tmp/cnn.safetensors" --data "$data" --json "$tmp/eval.json"
# the saved checkpoint evaluates to what training measured after its last epoch (the same 16 test images)
last_test=$(grep -o '"test_loss": [0-9.e+-]*' "$tmp/train.json" | tail -1 | awk '{print $2}')
holds "eval of the checkpoint vs training's last test loss" 'abs(e - t) <= 1e-12 * t && n == 16' \
    e="$(jnum "$tmp/eval.json" test_loss)" t="$last_test" n="$(jnum "$tmp/eval.json" images)"
ls "$tmp" | grep -q '\.tmp\.' && bad "temporary files left behind" || ok

# Resuming gives the same bits as an uninterrupted run; the sharpness schedule writes its CSV and plot.
expect 0 "Sharpness at epoch 2" "$bin" train --data "$data" --epochs 2 --batch 16 --out "$tmp/r.safetensors" \
    --sharpness-at 0,2 --sharpness-iters 3 --sharpness-batch 32
expect 0 "resuming" "$bin" train --data "$data" --epochs 3 --batch 16 --out "$tmp/r.safetensors" --resume "$tmp/r.safetensors"
expect 0 "Epoch 3/3" "$bin" train --data "$data" --epochs 3 --batch 16 --out "$tmp/u.safetensors"
cmp -s "$tmp/r.safetensors" "$tmp/u.safetensors" && ok || bad "resumed training differs from uninterrupted training"
# rows: epoch, lambda_max, 2/lr (default lr 0.01), HVPs (--sharpness-iters)
awk -F, 'NR == 1 { next } { ok = ok && $3 == 200 && $4 == 3 && $2 + 0 == $2; e = e $1 " " } END { exit !(ok && e == "0 2 ") }' \
    ok=1 "$tmp/r.safetensors.sharpness.csv" && ok || bad "sharpness CSV: want epochs 0 and 2, 2/lr 200, 3 HVPs: $(cat "$tmp/r.safetensors.sharpness.csv")"
grep -q "2 / lr" "$tmp/r.safetensors.sharpness.svg" && ok || bad "sharpness plot lacks the 2/lr line"
expect 1 "already trained 3 epochs" "$bin" train --data "$data" --epochs 3 --batch 16 --out "$tmp/r.safetensors" --resume "$tmp/r.safetensors"

# Everything below is on the golden selection (64 images) in float64, against PyTorch's float64 values
# (tests/golden/cnn_loss.json, cnn_hessian.json): loss 2.3226325790684226, vHv 1.668323453580815,
# |Hv| 12.623358127018188, trace 13.321121571939148, smallest eigenvalue -2.4083801589801617, largest
# 4.172566239769569, Frobenius norm 12.515589072453736.
common=(--checkpoint "$ck" --data "$data" --samples 64 --precision f64)
expect 0 "v.Hv" "$bin" hvp "${common[@]}" --vector tests/golden/cnn_v.npy --out "$tmp/hv.npy" --json "$tmp/hv.json"
holds "hvp v.Hv vs PyTorch" 'abs(x - 1.668323453580815) <= 1e-10 * 1.668' x="$(jnum "$tmp/hv.json" vHv)"
holds "hvp |Hv| vs PyTorch" 'abs(x - 12.623358127018188) <= 1e-10 * 12.62' x="$(jnum "$tmp/hv.json" hv_norm)"
holds "hvp loss vs PyTorch" 'abs(x - 2.3226325790684226) <= 1e-12 * 2.32' x="$(jnum "$tmp/hv.json" loss)"
holds "hvp output vs PyTorch's H v (relative error)" 'n == 5100 && e <= 1e-10' \
    $(paste <(npy_values "$tmp/hv.npy") <(npy_values tests/golden/cnn_hv.npy) |
      awk '{ d = $1 - $2; e += d * d; r += $2 * $2 } END { printf "n=%d e=%s", NR, NR ? sqrt(e / r) : "none" }')

# The exact spectrum, per layer block too; its numbers are the reference for the matrix-free methods below.
ex=$tmp/exact.json
expect 0 "4.17257" "$bin" exact "${common[@]}" --per-layer --json "$ex" --plot "$tmp/spectrum.svg" --save-eigenvalues "$tmp/eig.npy"
for key in d samples loss eigenvalues_smallest eigenvalues_largest smoothness trace negative_count asymmetry seconds; do
    grep -q "\"$key\"" "$ex" && ok || bad "exact.json lacks $key"
done
grep -q "</svg>" "$tmp/spectrum.svg" && ok || bad "spectrum plot incomplete"
holds "exact d" 'x == 5100' x="$(jnum "$ex" d)"
holds "exact loss vs PyTorch" 'abs(x - 2.3226325790684226) <= 1e-12 * 2.32' x="$(jnum "$ex" loss)"
holds "exact trace vs PyTorch" 'abs(x - 13.321121571939148) <= 1e-10 * 13.3' x="$(jnum "$ex" trace)"
holds "exact largest eigenvalue vs PyTorch" 'abs(x - 4.172566239769569) <= 1e-10 * 4.17' x="$(jnum "$ex" smoothness)"
holds "exact smallest eigenvalue vs PyTorch" 'abs(x + 2.4083801589801617) <= 1e-10 * 4.17' x="$(jnum "$ex" eigenvalues_smallest)"
holds "saved eigenvalues: 5100, summing to the trace" 'n == 5100 && abs(s - t) <= 1e-10 * 13.3' t="$(jnum "$ex" trace)" \
    $(npy_values "$tmp/eig.npy" | awk '{ s += $1 } END { printf "n=%d s=%.17g", NR, s }')
# the layer blocks partition the parameters, so their sizes sum to d and their traces to the trace
holds "per-layer blocks: sizes sum to d, traces to the trace" 'n == 4 && dd == 5100 && abs(s - t) <= 1e-10 * 13.3' \
    t="$(jnum "$ex" trace)" $(sed -n '/"layers"/,$p' "$ex" | awk -F': ' '/"d":/ { n++; d += $2 } /"trace":/ { s += $2 }
        END { printf "n=%d dd=%d s=%.17g", n, d, s }')
top=$(jnum "$ex" smoothness) tr=$(jnum "$ex" trace)
mapfile -t ex_lo < <(jarr "$ex" eigenvalues_smallest)
mapfile -t ex_hi < <(jarr "$ex" eigenvalues_largest)

# Power iteration on the fixed set converges to the top eigenvalue: a Ritz value with residual r lies within r
# of an eigenvalue (the top one here: r << the gap 0.84 to the next); tol 1e-6 stops at r <= 1e-6 |lambda|.
expect 0 "lambda = 4.172" "$bin" power "${common[@]}" --fixed --iters 500 --tol 1e-6 --json "$tmp/power.json" --csv "$tmp/power.csv"
holds "power --fixed vs the exact top eigenvalue" 'abs(l - e) <= r + 1e-12 * e && r <= 1e-6 * l && h > 0 && h < 500' \
    l="$(jnum "$tmp/power.json" lambda)" r="$(jnum "$tmp/power.json" residual)" e="$top" h="$(jnum "$tmp/power.json" hvps)"
holds "power CSV: a row per HVP" 'rows == h' rows=$(($(wc -l < "$tmp/power.csv") - 1)) h="$(jnum "$tmp/power.json" hvps)"
# Stochastic mode with mini-batches of the whole selection: the same operator, so the same eigenvalue.
expect 0 "lambda = 4.172" "$bin" power "${common[@]}" --batch 64 --iters 40 --seed 1 --json "$tmp/spower.json"
holds "stochastic power, batch = selection, vs the exact top eigenvalue" 'abs(l - e) <= r + 1e-12 * e && r <= 1e-3 * l' \
    l="$(jnum "$tmp/spower.json" lambda)" r="$(jnum "$tmp/spower.json" residual)" e="$top"
# Momentum on real mini-batches: one HVP a step, and the same seed gives the same steps.
expect 0 "lambda_1 = " "$bin" power "${common[@]}" --batch 32 --iters 3 --beta 0.9 --seed 2 --json "$tmp/mpower1.json"
expect 0 "lambda_1 = " "$bin" power "${common[@]}" --batch 32 --iters 3 --beta 0.9 --seed 2 --json "$tmp/mpower2.json"
holds "momentum power: 3 steps, 3 HVPs" 'n == 3 && h == 3' n="$(jarr "$tmp/mpower1.json" lambdas | wc -l)" h="$(jnum "$tmp/mpower1.json" hvps)"
l1=$(grep '"lambdas"' "$tmp/mpower1.json") l2=$(grep '"lambdas"' "$tmp/mpower2.json")
[[ -n $l1 && $l1 == "$l2" ]] && ok || bad "two momentum power runs with one seed differ: $l1 vs $l2"

# Lanczos: the 3 smallest and 3 largest Ritz values each within its residual of the exact eigenvalue, residuals
# within the requested tolerance (tol * max|lambda|), in at most 100 HVPs; two runs give the same bits.
expect 0 "converged" "$bin" lanczos "${common[@]}" --k 3 --which both --steps 100 --tol 1e-8 --json "$tmp/lz1.json"
expect 0 "converged" "$bin" lanczos "${common[@]}" --k 3 --which both --steps 100 --tol 1e-8 --json "$tmp/lz2.json"
mapfile -t lz < <(jarr "$tmp/lz1.json" eigenvalues)
mapfile -t lz_res < <(jarr "$tmp/lz1.json" residuals)
holds "lanczos: 6 eigenvalues and 6 residuals" 'n == 6 && m == 6' n=${#lz[@]} m=${#lz_res[@]}
for i in 0 1 2; do
    holds "lanczos smallest #$((i + 1)) vs exact" 'abs(l - e) <= r + 1e-12 * s && r <= 1e-8 * s' \
        l="${lz[i]-}" e="${ex_lo[i]-}" r="${lz_res[i]-}" s="$top"
    holds "lanczos largest #$((i + 1)) vs exact" 'abs(l - e) <= r + 1e-12 * s && r <= 1e-8 * s' \
        l="${lz[5 - i]-}" e="${ex_hi[4 - i]-}" r="${lz_res[5 - i]-}" s="$top"
done
holds "lanczos HVPs" 'h > 0 && h <= 100' h="$(jnum "$tmp/lz1.json" hvps)"
e1=$(grep '"eigenvalues"' "$tmp/lz1.json") e2=$(grep '"eigenvalues"' "$tmp/lz2.json")
[[ -n $e1 && $e1 == "$e2" ]] && ok || bad "two Lanczos runs differ: $e1 vs $e2"
# A parameter block: layer 9 (d = 310) against the exact block's largest eigenvalue from --per-layer.
expect 0 "d = 310" "$bin" lanczos "${common[@]}" --params 9 --k 1 --which largest --tol 1e-10 --json "$tmp/lz9.json"
holds "lanczos --params 9 vs the exact block" 'd == 310 && abs(l - e) <= r + 1e-12 * e' d="$(jnum "$tmp/lz9.json" d)" \
    l="$(jnum "$tmp/lz9.json" eigenvalues)" r="$(jnum "$tmp/lz9.json" residuals)" \
    e="$(sed -n '/"name": "9"/,/}/p' "$ex" | grep -o '"largest": [-0-9.eE+]*' | cut -d' ' -f2)"
expect 2 "names no parameter" "$bin" lanczos "${common[@]}" --params nosuchlayer --k 2
# exact --params 9 alone propagates only the block's 310 unit directions (one chunk of 64), and its extreme
# eigenvalues are those of the per-layer block.
expect 0 "d = 310" "$bin" exact "${common[@]}" --params 9 --k 1 --json "$tmp/ex9.json"
holds "exact --params 9: 310 directions, extreme eigenvalues of the exact layer block" \
    'u == 310 && abs(hi - e) <= 1e-12 * e && abs(lo - s) <= 1e-12 * e' u="$(jnum "$tmp/ex9.json" unit_directions)" \
    hi="$(jnum "$tmp/ex9.json" eigenvalues_largest)" lo="$(jnum "$tmp/ex9.json" eigenvalues_smallest)" \
    e="$(sed -n '/"name": "9"/,/}/p' "$ex" | grep -o '"largest": [-0-9.eE+]*' | cut -d' ' -f2)" \
    s="$(sed -n '/"name": "9"/,/}/p' "$ex" | grep -o '"smallest": [-0-9.eE+]*' | cut -d' ' -f2)"

# Trace estimates within 3 of their reported standard errors of the exact trace. The errors themselves are
# bounded: Hutchinson's variance with Rademacher probes is 2 (||H||_F^2 - sum H_ii^2) <= 2 ||H||_F^2 per probe,
# Hutch++'s residual estimate uses a third of the products on a deflated H (Frobenius norm <= ||H||_F), so
# SE <= sqrt(2/P) F and sqrt(6/P) F (P = 60, F = 12.5156), with a factor 1.5 for the sample deviation's scatter.
expect 0 "Hutch\+\+" "$bin" trace "${common[@]}" --probes 60 --seed 3 --json "$tmp/trace.json"
# trace_checks FILE WHAT: Hutchinson's and Hutch++'s estimates within 3 standard errors of the exact trace
trace_checks() {
    local m
    for m in hutchinson hutchpp; do
        holds "$2 $m trace within 3 standard errors of the exact trace" 'abs(t - e) <= 3 * s && s > 0' \
            t="$(grep -A2 "\"$m\"" "$1" | jnum /dev/stdin trace)" s="$(grep -A2 "\"$m\"" "$1" | jnum /dev/stdin std_error)" e="$tr"
    done
}
trace_checks "$tmp/trace.json" "fixed"
holds "Hutchinson standard error bound" 's <= 1.5 * sqrt(2 / 60) * 12.515589' s="$(grep -A2 '"hutchinson"' "$tmp/trace.json" | jnum /dev/stdin std_error)"
holds "Hutch++ standard error bound" 's <= 1.5 * sqrt(6 / 60) * 12.515589' s="$(grep -A2 '"hutchpp"' "$tmp/trace.json" | jnum /dev/stdin std_error)"
holds "trace HVPs: 60 per method" 'h == 120' h="$(jnum "$tmp/trace.json" hvps)"
# Stochastic: mini-batches of 16 cycle through the 64 images, so the estimates are unbiased for the same trace.
expect 0 "Hutchinson" "$bin" trace "${common[@]}" --stochastic --batch 16 --probes 16 --seed 1 --json "$tmp/st.json"
grep -q '"operator": "stochastic"' "$tmp/st.json" && ok || bad "stochastic trace not recorded as such"
trace_checks "$tmp/st.json" "stochastic"

# The GGN is positive semi-definite: its smallest eigenvalue is zero up to rounding.
expect 0 "" "$bin" exact "${common[@]}" --curvature ggn --json "$tmp/ggn.json"
holds "GGN smallest eigenvalue >= -1e-12 max" 'a >= -1e-12 * m && m > 0' a="$(jnum "$tmp/ggn.json" eigenvalues_smallest)" \
    m="$(jnum "$tmp/ggn.json" smoothness)"

# Spectral density (SLQ): the CSV integrates to 1 (trapezoid rule; the grid spans the Ritz values +- 5 sigma,
# leaving < 1e-6 of the mass outside, and has ~9 points per sigma), the quadrature nodes lie inside the exact
# spectrum (Ritz values interlace) with weights summing to 1, and the mean sum w_i theta_i is the average of
# runs Rayleigh quotients v'Hv/v'v: unbiased for trace/d with standard deviation <= sqrt(2/runs) F/d.
expect 0 "SLQ|density" "$bin" density "${common[@]}" --runs 4 --steps 30 --seed 5 --csv "$tmp/density.csv" \
    --plot "$tmp/density.svg" --json "$tmp/density.json" --exact "$tmp/eig.npy"
grep -q "</svg>" "$tmp/density.svg" && ok || bad "density plot incomplete"
holds "density CSV integrates to 1" 'n == 1000 && abs(s - 1) <= 1e-5' \
    $(awk -F, 'NR > 2 { s += ($1 - x) * ($2 + y) / 2 } NR > 1 { x = $1; y = $2; n++ } END { printf "n=%d s=%.17g", n, s }' "$tmp/density.csv")
mapfile -t nodes < <(jarr "$tmp/density.json" nodes)
mapfile -t weights < <(jarr "$tmp/density.json" weights)
holds "density: nodes inside the exact spectrum, weights sum to 1, mean near trace/d" \
    'n == 120 && m == n && k == n && lo >= a - 1e-10 && hi <= b + 1e-10 && abs(w - 1) <= 1e-12 && abs(mean - t / 5100) <= 3 * sqrt(2 / 4) * 12.515589 / 5100' \
    n=${#nodes[@]} m=${#weights[@]} a="${ex_lo[0]-}" b="${ex_hi[4]-}" t="$tr" $(paste <(printf '%s\n' "${nodes[@]}") <(printf '%s\n' "${weights[@]}") |
        awk 'NR == 1 { lo = hi = $1 } { lo = $1 < lo ? $1 : lo; hi = $1 > hi ? $1 : hi; w += $2; mean += $1 * $2 }
             END { printf "k=%d lo=%.17g hi=%.17g w=%.17g mean=%.17g", NR, lo, hi, w, mean }')

summary test_cli
