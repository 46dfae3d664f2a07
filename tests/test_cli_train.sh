#!/usr/bin/env bash
# test_cli_train.sh: `hessian train` against hostile input and interruptions, on the tiny golden data set:
# corrupt and forged training states (huge epoch, bad numbers, other settings, a checkpoint and state of
# different saves), paths longer than any fixed buffer, two outputs naming one file, unwritable outputs
# (refused before epoch 1), stale temporaries of a killed run, SIGTERM handled like Ctrl-C, corrupt --init
# classifiers, and --resume giving the same checkpoint, CSV curve, JSON epochs and sharpness log as an
# uninterrupted run, ignored options refused, and the same checkpoint at 1, 2 and 3 threads. Prints "test_cli_train: N passed, M failed".
cd "$(dirname "${BASH_SOURCE[0]}")/.."
EXPECT_SECONDS=60 # a forged state once made train loop for 2^31 epochs
source tests/cli_harness.sh
# The checks ran before any training: no epoch line in the last output.
not_trained() { grep -q "Epoch 1/" <<<"$out" && bad "$1: refused only after training" || ok; }
train=("$bin" train --data "$data" --batch 16 --quiet)
# st_set FILE OLD NEW: replaces the text OLD by NEW in a safetensors header (rewriting its length).
st_set() {
    local f=$1 n; n=$(od -An -tu8 -N8 "$f" | tr -d ' ')
    local h; h=$(head -c $((8 + n)) "$f" | tail -c "$n"); h=${h/"$2"/"$3"}
    local l=${#h}
    { printf "$(printf '\\%03o' $((l & 255)) $((l >> 8 & 255)) $((l >> 16 & 255)) $((l >> 24 & 255)) 0 0 0 0)"
      printf '%s' "$h"; tail -c +$((9 + n)) "$f"; } > "$f.new" && mv "$f.new" "$f"
}
# st_offset FILE TENSOR: byte offset of the tensor's data in the file.
st_offset() {
    local n; n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
    local begin; begin=$(head -c $((8 + n)) "$1" | grep -ao "\"$2\":{[^}]*}" | sed -E 's/.*"data_offsets":\[([0-9]+),.*/\1/')
    echo $((8 + n + begin))
}

# 1. Forged epoch counts and numbers in the training state: clear errors, no overflow, no training.
expect 0 "Epoch 1/1" "${train[@]}" --epochs 1 --out "$tmp/a.st"
cp "$tmp/a.st.optimizer.safetensors" "$tmp/a.state"
forge() { cp "$tmp/a.state" "$tmp/a.st.optimizer.safetensors"; st_set "$tmp/a.st.optimizer.safetensors" "$1" "$2"; }
forge '"epoch":"1"' '"epoch":"2147483647"'
expect 1 "epoch" "${train[@]}" --epochs 2 --out "$tmp/a.st" --resume "$tmp/a.st"
not_trained "epoch 2147483647"
for e in 2 -1 +1 " 1" 1x 01.0 ""; do
    forge '"epoch":"1"' "\"epoch\":\"$e\""
    expect 1 "corrupt training state" "${train[@]}" --epochs 3 --out "$tmp/a.st" --resume "$tmp/a.st"
done
forge '"step":"6"' '"step":"99999999999999999999"'
expect 1 "corrupt training state.*step" "${train[@]}" --epochs 3 --out "$tmp/a.st" --resume "$tmp/a.st"
forge '"window":"6"' '"window":"2"'
expect 1 "corrupt training state" "${train[@]}" --epochs 3 --out "$tmp/a.st" --resume "$tmp/a.st"
forge '"format":"' '"format":"x'
expect 1 "not a training state" "${train[@]}" --epochs 3 --out "$tmp/a.st" --resume "$tmp/a.st"
cp "$tmp/a.state" "$tmp/a.st.optimizer.safetensors"
expect 1 "--lr is 0.1 here but 0.01" "${train[@]}" --epochs 3 --out "$tmp/a.st" --resume "$tmp/a.st" --lr 0.1
expect 1 "--seed is 7 here but 50" "${train[@]}" --epochs 3 --out "$tmp/a.st" --resume "$tmp/a.st" --seed 7
expect 1 "--precision is f64 here but f32" "${train[@]}" --epochs 3 --out "$tmp/a.st" --resume "$tmp/a.st" --precision f64
# NaN in the momentum buffer
off=$(st_offset "$tmp/a.st.optimizer.safetensors" momentum_buffer)
printf '\x00\x00\xc0\x7f' | dd of="$tmp/a.st.optimizer.safetensors" bs=1 seek=$((off + 40)) conv=notrunc 2>/dev/null
expect 1 "momentum_buffer holds a non-finite" "${train[@]}" --epochs 3 --out "$tmp/a.st" --resume "$tmp/a.st"
expect 2 "--sharpness-at expects" "${train[@]}" --epochs 3 --out "$tmp/a.st" --sharpness-at "1,"
expect 2 "--sharpness-at expects" "${train[@]}" --epochs 3 --out "$tmp/a.st" --sharpness-at " 1"

# 2. A path longer than any fixed buffer: the state goes beside the checkpoint, nothing is overwritten.
long=$tmp
while (( ${#long} < 800 )); do long=$long/$(printf 'd%.0s' {1..150}); done
mkdir -p "$long"
long=$long/$(printf 'c%.0s' $(seq $((1019 - ${#long})))).st
[[ ${#long} -eq 1023 ]] && ok || bad "long path is ${#long} characters, not 1023"
expect 0 "Epoch 1/1" "${train[@]}" --epochs 1 --out "$long"
expect 0 "Test Acc" "$bin" eval --checkpoint "$long" --data "$data"
[[ -s $long.optimizer.safetensors ]] && ok || bad "no training state beside a 1023-character checkpoint path"
expect 0 "Epoch 2/2" "${train[@]}" --epochs 2 --out "$long" --resume "$long"

# 3. Checkpoint and training state from different saves (a kill between the two renames): refused.
expect 0 "Epoch 1/1" "${train[@]}" --epochs 1 --out "$tmp/p.st"
cp "$tmp/p.st.optimizer.safetensors" "$tmp/p1.state"; cp "$tmp/p.st" "$tmp/p1.st"
expect 0 "Epoch 2/2" "${train[@]}" --epochs 2 --out "$tmp/p.st" --resume "$tmp/p.st"
cp "$tmp/p.st.optimizer.safetensors" "$tmp/p2.state"
cp "$tmp/p1.state" "$tmp/p.st.optimizer.safetensors"   # epoch-2 weights, epoch-1 momentum
expect 1 "not saved together" "${train[@]}" --epochs 3 --out "$tmp/p.st" --resume "$tmp/p.st"
cp "$tmp/p1.st" "$tmp/p.st"; cp "$tmp/p2.state" "$tmp/p.st.optimizer.safetensors"   # epoch-1 weights, epoch-2 momentum
expect 1 "not saved together" "${train[@]}" --epochs 3 --out "$tmp/p.st" --resume "$tmp/p.st"
cp "$tmp/p1.state" "$tmp/p.st.optimizer.safetensors"   # the matching pair again
expect 0 "Epoch 3/3" "${train[@]}" --epochs 3 --out "$tmp/p.st" --resume "$tmp/p.st"

# 4. Two outputs naming one file: refused before any work, nothing replaced.
cp "$tmp/p.st" "$tmp/keep.st"
expect 2 "--out and --json name the same file" "${train[@]}" --epochs 1 --out "$tmp/p.st" --json "$tmp/p.st"
cmp -s "$tmp/p.st" "$tmp/keep.st" && ok || bad "--json equal to --out replaced the checkpoint"
expect 2 "same file" "${train[@]}" --epochs 1 --out "$tmp/p.st" --csv "$tmp/./p.st.optimizer.safetensors"
expect 2 "same file" "${train[@]}" --epochs 1 --out "$tmp/p.st" --json "$tmp/j" --csv "$tmp/../$(basename "$tmp")/j"
expect 2 "--json and --sharpness-csv name the same file" "${train[@]}" --epochs 1 --out "$tmp/p.st" \
    --json "$tmp/p.st.sharpness.csv" --sharpness-every 1
cmp -s "$tmp/p.st" "$tmp/keep.st" && ok || bad "a refused run changed the checkpoint"

# 5. Outputs that cannot be written: refused before epoch 1.
expect 1 "--out: cannot create a temporary file" "${train[@]}" --epochs 1 --out "$tmp/missing/x.st"
not_trained "--out in a missing folder"
expect 1 "--json: cannot create a temporary file" "${train[@]}" --epochs 1 --out "$tmp/q.st" --json "$tmp/missing/q.json"
not_trained "--json in a missing folder"
expect 1 "--csv: cannot create" "${train[@]}" --epochs 1 --out "$tmp/q.st" --csv "$tmp/missing/q.csv"
not_trained "--csv in a missing folder"
expect 1 "--sharpness-plot: cannot create" "${train[@]}" --epochs 1 --out "$tmp/q.st" --sharpness-at 1 --sharpness-plot "$tmp/missing/q.svg"
not_trained "--sharpness-plot in a missing folder"
mkdir "$tmp/folder.st"
expect 1 "is a folder" "${train[@]}" --epochs 1 --out "$tmp/folder.st"
if [[ $(id -u) -ne 0 ]]; then   # root writes into read-only folders
    mkdir "$tmp/ro"; chmod 555 "$tmp/ro"
    expect 1 "--out: cannot create" "${train[@]}" --epochs 1 --out "$tmp/ro/x.st"
    not_trained "--out in a read-only folder"
fi

# 6. Stale temporaries of a killed run are removed by the next run of the same output (and only those).
dead=$(sh -c 'echo $$')
mkdir "$tmp/s"
for f in "o.st.tmp.$dead.AbC123" "o.json.tmp.$dead.xYz789" "o.st.tmp.1.AbC123" "o.st.tmp.$dead.AbC12" \
         "o.st.tmp.keep" "x.st.tmp.$dead.AbC123"; do echo stale > "$tmp/s/$f"; done
expect 0 "Epoch 1/1" "${train[@]}" --epochs 1 --out "$tmp/s/o.st" --json "$tmp/s/o.json"
[[ ! -e $tmp/s/o.st.tmp.$dead.AbC123 && ! -e $tmp/s/o.json.tmp.$dead.xYz789 ]] && ok || bad "stale temporaries were kept"
[[ -e $tmp/s/o.st.tmp.1.AbC123 && -e $tmp/s/o.st.tmp.$dead.AbC12 && -e $tmp/s/o.st.tmp.keep && -e $tmp/s/x.st.tmp.$dead.AbC123 ]] \
    && ok || bad "a file that is no stale temporary of the outputs was removed"

# 7. SIGTERM saves a checkpoint like Ctrl-C; the pair resumes.
"${train[@]}" --epochs 100000 --out "$tmp/t.st" > "$tmp/t.log" 2>&1 &
pid=$!
for _ in $(seq 300); do [[ -e $tmp/t.st.optimizer.safetensors ]] && break; sleep 0.1; done
kill -TERM "$pid"; wait "$pid"; rc=$?
[[ $rc -eq 143 ]] && ok || bad "SIGTERM: exit $rc (want 143)"
grep -q "interrupted (SIGTERM) during epoch" "$tmp/t.log" && ok || bad "SIGTERM did not save: $(cat "$tmp/t.log")"
ls "$tmp" | grep -q '\.tmp\.' && bad "temporary files left after SIGTERM" || ok
e=$(sed -nE 's/.*restarts epoch ([0-9]+).*/\1/p' "$tmp/t.log")
expect 0 "resuming.*epoch ${e:-?} again" "${train[@]}" --epochs "${e:-1}" --out "$tmp/t.st" --resume "$tmp/t.st"

# 8. --init: a classifier with another number of outputs is replaced; a corrupt one is an error.
cp "$ck" "$tmp/nan.st"
printf '\x00\x00\xc0\x7f' | dd of="$tmp/nan.st" bs=1 seek=$(($(st_offset "$tmp/nan.st" 9.bias) + 4)) conv=notrunc 2>/dev/null
expect 1 "'9.bias' holds a non-finite" "${train[@]}" --epochs 1 --out "$tmp/i.st" --init "$tmp/nan.st"
not_trained "--init with a NaN classifier"
cp "$ck" "$tmp/i32.st"; st_set "$tmp/i32.st" '"9.bias":{"dtype":"F32"' '"9.bias":{"dtype":"I32"'
expect 1 "'9.bias' has dtype I32" "${train[@]}" --epochs 1 --out "$tmp/i.st" --init "$tmp/i32.st"
cp "$ck" "$tmp/short.st"; st_set "$tmp/short.st" '"9.weight":{"dtype":"F32","shape":[10,30]' '"9.weight":{"dtype":"F32","shape":[10,29],"x":[0]'
expect 1 "9.weight" "${train[@]}" --epochs 1 --out "$tmp/i.st" --init "$tmp/short.st"
# 5 outputs: 9.weight [5,30], 9.bias [5] over the first 4 of 10 bytes... built from the file: cut shapes and offsets
cp "$ck" "$tmp/five.st"
st_set "$tmp/five.st" '"9.weight":{"dtype":"F32","shape":[10,30],"data_offsets":[19160,20360]}' '"9.weight":{"dtype":"F32","shape":[5,30],"data_offsets":[19160,19760]}'
st_set "$tmp/five.st" '"9.bias":{"dtype":"F32","shape":[10],"data_offsets":[20360,20400]}' '"9.bias":{"dtype":"F32","shape":[5],"data_offsets":[20360,20380]}'
expect 0 "classifier '9' has 5 outputs; replaced" "${train[@]}" --epochs 1 --out "$tmp/i.st" --init "$tmp/five.st"

# 9. --resume gives what an uninterrupted run gives: checkpoint, CSV curve, JSON epochs, sharpness log.
opts=(--log-every 4 --sharpness-at 0,1,2 --sharpness-iters 3 --sharpness-batch 32)
expect 0 "Epoch 2/2" "${train[@]}" --epochs 2 --out "$tmp/u.st" --json "$tmp/u.json" --csv "$tmp/u.csv" "${opts[@]}"
expect 0 "Epoch 1/1" "${train[@]}" --epochs 1 --out "$tmp/r.st" "${opts[@]}"
expect 0 "resuming" "${train[@]}" --epochs 2 --out "$tmp/r.st" --resume "$tmp/r.st" --json "$tmp/r.json" --csv "$tmp/r.csv" "${opts[@]}"
grep -q "Sharpness at epoch 1" <<<"$out" && bad "resume measured the sharpness of epoch 1 again" || ok
cmp -s "$tmp/u.st" "$tmp/r.st" && ok || bad "resumed checkpoint differs"
cmp -s "$tmp/u.csv" "$tmp/r.csv" && ok || bad "resumed CSV curve differs: $(diff "$tmp/u.csv" "$tmp/r.csv")"
epochs_of() { sed -n '/"epochs"/,$p' "$1" | grep -v seconds; }
[[ $(epochs_of "$tmp/u.json") == "$(epochs_of "$tmp/r.json")" ]] && grep -q '"epoch": 1' "$tmp/r.json" && ok \
    || bad "resumed JSON epochs differ: $(diff <(epochs_of "$tmp/u.json") <(epochs_of "$tmp/r.json"))"
cmp -s "$tmp/u.st.sharpness.csv" "$tmp/r.st.sharpness.csv" && ok || bad "resumed sharpness log differs"
[[ $(wc -l < "$tmp/r.st.sharpness.csv") -eq 4 ]] && ok || bad "sharpness log should have 3 rows"

# Options that would be ignored are refused; training is the same bits at any thread count (the batch is
# split into a fixed number of shares, not one per thread).
expect 2 "--beta.*--sharpness-at" "${train[@]}" --epochs 1 --out "$tmp/i.st" --beta 0.9
expect 2 "--sharpness-iters.*--sharpness-at" "${train[@]}" --epochs 1 --out "$tmp/i.st" --sharpness-iters 5
for t in 1 2 3; do expect 0 "Epoch 1/1" "${train[@]}" --epochs 1 --threads $t --out "$tmp/threads$t.st"; done
cmp -s "$tmp/threads1.st" "$tmp/threads2.st" && cmp -s "$tmp/threads1.st" "$tmp/threads3.st" && ok \
    || bad "training at 1, 2 and 3 threads gives different checkpoints"

summary test_cli_train
