#!/usr/bin/env bash
# test_cli_npy.sh: your own data as .npy arrays (--inputs X.npy --targets Y.npy), on the tiny golden data set
# (tests/golden/cnn_data) written out as arrays by numpy (/usr/bin/python3): the images normalised exactly as
# hessian normalises CIFAR-10 (float32 arithmetic for --precision f32, float64 for f64) and the labels as int64
# or int32. hvp, power, lanczos, trace, exact, eval and train (without augmentation) on --data and on the
# equivalent arrays give IDENTICAL results (same bytes for written arrays and checkpoints, same numbers in the
# JSON). Errors: wrong input shape (naming both shapes), NaN, sample-count mismatch, Fortran order, targets
# that do not suit --loss, conflicting or missing options (exit 2 before any work). The squared-error loss end
# to end (--loss mse with float targets): hvp, lanczos, train, eval. And `hessian info`.
# Prints "test_cli_npy: N passed, M failed".
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/cli_harness.sh
py=/usr/bin/python3
if ! "$py" -c 'import numpy' 2>/dev/null; then
    echo "test_cli_npy: numpy missing (/usr/bin/python3); skipped"
    summary test_cli_npy
    exit
fi
# jnum FILE KEY: the first number after "KEY": (an array's first element).
jnum() { grep -o "\"$2\": \[\?[-0-9.eE+]*" "$1" 2>/dev/null | head -1 | sed 's/.*[[ ]//'; }
# same MESSAGE FILE_A FILE_B: the two JSON results are identical, except for provenance and timings.
same() {
    local d
    d=$("$py" - "$2" "$3" <<'EOF'
import json, sys
def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k != "provenance" and "seconds" not in k}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x
a, b = (strip(json.load(open(f))) for f in sys.argv[1:3])
if a != b:
    print({k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)})
EOF
    ) && [[ -z $d ]] && ok || bad "$1: the results differ: $d"
}

"$py" - "$data/cifar-10-batches-bin" "$tmp" <<'EOF' || { bad "writing the arrays failed"; summary test_cli_npy; exit; }
import sys, numpy as np
src, out = sys.argv[1], sys.argv[2]
def load(names):
    raw = np.concatenate([np.fromfile(f"{src}/{n}", dtype=np.uint8) for n in names]).reshape(-1, 3073)
    return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0].astype(np.int64)
def norm32(px):
    mean = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.2023, 0.1994, 0.2010], dtype=np.float32).reshape(1, 3, 1, 1)
    return ((px.astype(np.float32) / np.float32(255)) - mean) / std
def norm64(px):
    mean = np.array([0.4914, 0.4822, 0.4465]).reshape(1, 3, 1, 1)
    std = np.array([0.2023, 0.1994, 0.2010]).reshape(1, 3, 1, 1)
    return (px.astype(np.float64) / 255.0 - mean) / std
px, y = load([f"data_batch_{i}.bin" for i in range(1, 6)])
tpx, ty = load(["test_batch.bin"])
assert norm32(px).dtype == np.float32
np.save(f"{out}/x32.npy", norm32(px)); np.save(f"{out}/x64.npy", norm64(px))
np.save(f"{out}/y.npy", y); np.save(f"{out}/y32.npy", y.astype(np.int32))
np.save(f"{out}/xt32.npy", norm32(tpx)); np.save(f"{out}/yt.npy", ty)
# regression targets (one-hot-ish values) for the squared error
rng = np.random.default_rng(0)
np.save(f"{out}/yreal.npy", (np.eye(10)[y] + 0.1 * rng.standard_normal((len(y), 10))).astype(np.float32))
np.save(f"{out}/ytreal.npy", np.eye(10)[ty].astype(np.float64))
# error cases
np.save(f"{out}/mnist.npy", np.zeros((len(y), 1, 28, 28), dtype=np.float32))
bad = norm32(px); bad[3, 1, 2, 3] = np.nan; np.save(f"{out}/nan.npy", bad)
np.save(f"{out}/short.npy", y[:50])
np.save(f"{out}/fortran.npy", np.asfortranarray(norm32(px)))
np.save(f"{out}/xint.npy", px.astype(np.int32))
np.save(f"{out}/v.npy", rng.standard_normal(5100))
EOF
X=$tmp/x32.npy Y=$tmp/y.npy
ckf=(--checkpoint "$ck")

# ---- identical results: --data vs --inputs/--targets
for prec in f32 f64; do
    x=$tmp/x32.npy; [[ $prec == f64 ]] && x=$tmp/x64.npy
    y=$Y; [[ $prec == f64 ]] && y=$tmp/y32.npy
    sel=(--samples 40 --offset 8 --precision $prec)
    expect 0 "v.Hv" "$bin" hvp "${ckf[@]}" --data "$data" "${sel[@]}" --vector "$tmp/v.npy" --out "$tmp/hv_d.npy" --json "$tmp/hv_d.json"
    expect 0 "v.Hv" "$bin" hvp "${ckf[@]}" --inputs "$x" --targets "$y" "${sel[@]}" --vector "$tmp/v.npy" --out "$tmp/hv_n.npy" --json "$tmp/hv_n.json"
    cmp -s "$tmp/hv_d.npy" "$tmp/hv_n.npy" && ok || bad "hvp $prec: Hv differs between --data and --inputs"
    same "hvp $prec" "$tmp/hv_d.json" "$tmp/hv_n.json"
    expect 0 "converged" "$bin" lanczos "${ckf[@]}" --data "$data" "${sel[@]}" --k 2 --which both --steps 60 --json "$tmp/lz_d.json"
    expect 0 "converged" "$bin" lanczos "${ckf[@]}" --inputs "$x" --targets "$y" "${sel[@]}" --k 2 --which both --steps 60 --json "$tmp/lz_n.json"
    same "lanczos $prec" "$tmp/lz_d.json" "$tmp/lz_n.json"
done
sel=(--samples 48 --offset 16)
expect 0 "" "$bin" trace "${ckf[@]}" --data "$data" "${sel[@]}" --probes 6 --seed 3 --json "$tmp/tr_d.json"
expect 0 "" "$bin" trace "${ckf[@]}" --inputs "$X" --targets "$Y" "${sel[@]}" --probes 6 --seed 3 --json "$tmp/tr_n.json"
same "trace" "$tmp/tr_d.json" "$tmp/tr_n.json"
expect 0 "lambda" "$bin" power "${ckf[@]}" --data "$data" "${sel[@]}" --batch 16 --iters 5 --seed 4 --json "$tmp/pw_d.json"
expect 0 "lambda" "$bin" power "${ckf[@]}" --inputs "$X" --targets "$Y" "${sel[@]}" --batch 16 --iters 5 --seed 4 --json "$tmp/pw_n.json"
same "stochastic power" "$tmp/pw_d.json" "$tmp/pw_n.json"
expect 0 "" "$bin" exact "${ckf[@]}" --data "$data" --samples 8 --params 9 --save-matrix "$tmp/H_d.npy"
expect 0 "" "$bin" exact "${ckf[@]}" --inputs "$X" --targets "$Y" --samples 8 --params 9 --save-matrix "$tmp/H_n.npy"
cmp -s "$tmp/H_d.npy" "$tmp/H_n.npy" && ok || bad "exact: the matrices differ between --data and --inputs"
expect 0 "Test Loss" "$bin" eval "${ckf[@]}" --data "$data"; ev_d=$out
expect 0 "Test Loss" "$bin" eval "${ckf[@]}" --inputs "$tmp/xt32.npy" --targets "$tmp/yt.npy"; ev_n=$out
[[ ${ev_d%|*} == "${ev_n%|*}" ]] && ok || bad "eval differs: $ev_d vs $ev_n"
# training without augmentation: the same checkpoint, byte for byte, and the same history
tr=(--epochs 2 --batch 16 --train-samples 64 --lr 0.05 --seed 5 --log-every 2)
expect 0 "Epoch 2/2" "$bin" train --data "$data" --no-augment "${tr[@]}" --out "$tmp/t_d.safetensors" --json "$tmp/t_d.json" --csv "$tmp/t_d.csv"
expect 0 "Epoch 2/2" "$bin" train --inputs "$X" --targets "$Y" --test-inputs "$tmp/xt32.npy" --test-targets "$tmp/yt.npy" \
    "${tr[@]}" --out "$tmp/t_n.safetensors" --json "$tmp/t_n.json" --csv "$tmp/t_n.csv"
cmp -s "$tmp/t_d.safetensors" "$tmp/t_n.safetensors" && ok || bad "train: the checkpoints differ between --data --no-augment and --inputs"
cmp -s "$tmp/t_d.csv" "$tmp/t_n.csv" && ok || bad "train: the loss curves differ"
same "train history" "$tmp/t_d.json" "$tmp/t_n.json"
grep -q '"--inputs"' "$tmp/t_n.json" && ok || bad "train JSON: the input arrays are not in the provenance"
# augmentation changes the run (the flag matters)
expect 0 "Epoch 2/2" "$bin" train --data "$data" "${tr[@]}" --out "$tmp/t_a.safetensors"
cmp -s "$tmp/t_d.safetensors" "$tmp/t_a.safetensors" && bad "--no-augment made no difference" || ok
# npy training without a test set
expect 0 "Epoch 1/1 \| Train Loss: [0-9.]+ \| Train Acc: [0-9.]+% \| [0-9.]+ s" "$bin" train --inputs "$X" --targets "$Y" \
    --epochs 1 --batch 32 --out "$tmp/t_nt.safetensors" --json "$tmp/t_nt.json"
grep -q '"test_loss": null' "$tmp/t_nt.json" && ok || bad "train without a test set: test_loss is not null"

# ---- errors: clear messages, before any work
expect 1 "inputs .*mnist.npy have shape \(96,1,28,28\) but the model cnn takes \(3,32,32\)" \
    "$bin" hvp "${ckf[@]}" --inputs "$tmp/mnist.npy" --targets "$Y" --samples 8 --vector "$tmp/v.npy" --out "$tmp/e1.npy"
[[ ! -e $tmp/e1.npy ]] && ok || bad "hvp wrote output despite the shape mismatch"
expect 1 "nan.npy: the inputs hold NaN at sample 3" "$bin" lanczos "${ckf[@]}" --inputs "$tmp/nan.npy" --targets "$Y"
expect 1 "short.npy have shape \(50,\) but the inputs .* have shape \(96,3,32,32\)" "$bin" trace "${ckf[@]}" --inputs "$X" --targets "$tmp/short.npy"
expect 1 "fortran_order True is not supported" "$bin" power "${ckf[@]}" --inputs "$tmp/fortran.npy" --targets "$Y" --iters 1
expect 1 "inputs .*xint.npy are int32; they must be float32 or float64" "$bin" density "${ckf[@]}" --inputs "$tmp/xint.npy" --targets "$Y"
expect 1 "the mse loss needs real targets" "$bin" lanczos "${ckf[@]}" --inputs "$X" --targets "$Y" --loss mse
expect 1 "the cross-entropy loss needs integer class labels" "$bin" exact "${ckf[@]}" --inputs "$X" --targets "$tmp/yreal.npy" --samples 8
expect 1 "cross-entropy loss needs integer class labels" "$bin" train --inputs "$X" --targets "$tmp/yreal.npy" --out "$tmp/e.safetensors"
expect 2 "--data and --inputs exclude each other" "$bin" hvp "${ckf[@]}" --data "$data" --inputs "$X" --targets "$Y" --vector "$tmp/v.npy" --out "$tmp/e.npy"
expect 2 "--data and --inputs exclude each other" "$bin" train --data "$data" --inputs "$X" --targets "$Y" --out "$tmp/e.safetensors"
expect 2 "--inputs needs --targets" "$bin" lanczos "${ckf[@]}" --inputs "$X"
expect 2 "--targets needs --inputs" "$bin" eval "${ckf[@]}" --data "$data" --targets "$Y"
expect 2 "needs --data DIR \(CIFAR-10\), or --inputs FILE --targets FILE" "$bin" trace "${ckf[@]}"
expect 2 "--loss must be cross-entropy or mse \(got 'l1'\)" "$bin" trace "${ckf[@]}" --inputs "$X" --targets "$Y" --loss l1
expect 2 "--loss mse needs real-valued targets" "$bin" power "${ckf[@]}" --data "$data" --loss mse
expect 2 "--test-inputs goes with --inputs" "$bin" train --data "$data" --test-inputs "$X" --test-targets "$Y" --out "$tmp/e.safetensors"
expect 2 "--test-inputs needs --test-targets" "$bin" train --inputs "$X" --targets "$Y" --test-inputs "$X" --out "$tmp/e.safetensors"
expect 1 "--inputs .*none.npy" "$bin" hvp "${ckf[@]}" --inputs "$tmp/none.npy" --targets "$Y" --vector "$tmp/v.npy" --out "$tmp/e.npy"
expect 1 "--samples 200 with --offset 0 needs 200 samples, only 96 exist" "$bin" lanczos "${ckf[@]}" --inputs "$X" --targets "$Y" --samples 200
[[ ! -e $tmp/e.safetensors && ! -e $tmp/e.npy ]] && ok || bad "an output was written despite an error"

# ---- the squared error end to end (float targets)
expect 0 "v.Hv" "$bin" hvp "${ckf[@]}" --inputs "$X" --targets "$tmp/yreal.npy" --loss mse --samples 32 --vector "$tmp/v.npy" \
    --out "$tmp/hv_mse.npy" --json "$tmp/hv_mse.json"
grep -q '"loss_function": "mse"' "$tmp/hv_mse.json" && ok || bad "hvp JSON does not name the mse loss"
cmp -s "$tmp/hv_mse.npy" "$tmp/hv_d.npy" && bad "mse and cross-entropy give the same Hv" || ok
expect 0 "converged" "$bin" lanczos "${ckf[@]}" --inputs "$X" --targets "$tmp/yreal.npy" --loss mse --samples 32 --k 1 --steps 60 --curvature ggn --json "$tmp/lz_mse.json"
lmin=$(jnum "$tmp/lz_mse.json" eigenvalues)
awk -v l="$lmin" 'BEGIN { exit !(l > 0) }' && ok || bad "mse GGN top eigenvalue not positive: $lmin"
expect 0 "Epoch 3/3 \| Train Loss: [0-9.]+ \| Test Loss: [0-9.]+ \| [0-9.]+ s" "$bin" train --inputs "$X" --targets "$tmp/yreal.npy" \
    --test-inputs "$tmp/xt32.npy" --test-targets "$tmp/ytreal.npy" --loss mse --epochs 3 --batch 16 --lr 0.01 --out "$tmp/mse.safetensors" --json "$tmp/mse.json"
first=$(grep -o '"train_loss": [0-9.e+-]*' "$tmp/mse.json" | head -1 | awk '{print $2}')
last=$(grep -o '"train_loss": [0-9.e+-]*' "$tmp/mse.json" | tail -1 | awk '{print $2}')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' && ok || bad "mse training loss did not fall: $first -> $last"
grep -q '"train_acc": null' "$tmp/mse.json" && ok || bad "mse history reports an accuracy"
expect 0 "Test Loss: [0-9.]+ \| 16 samples" "$bin" eval --checkpoint "$tmp/mse.safetensors" --inputs "$tmp/xt32.npy" --targets "$tmp/ytreal.npy" --loss mse

# ---- hessian info
expect 0 "5100 parameters" "$bin" info --model cnn --json "$tmp/info.json"
grep -q '"name": "9.bias"' "$tmp/info.json" && grep -q '"num_params": 5100' "$tmp/info.json" && grep -q '"outputs": 10' "$tmp/info.json" &&
    ok || bad "info JSON incomplete"
expect 0 "running_var .* no" "$bin" info --model resnet18
expect 2 "missing required option --model" "$bin" info
expect 1 "unknown model 'vgg'" "$bin" info --model vgg

summary test_cli_npy
