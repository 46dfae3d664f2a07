#!/usr/bin/env bash
# test_cli_options.sh: the command line's rules, on the tiny golden data set: strict option parsing (repeated,
# unknown, malformed and "--"-looking values), input vectors of the wrong shape, bounded --threads, no
# silent zero Hessian blocks, every argument, input and output checked before any work, --checkpoint or
# --random-init required, conflicting and ignored options refused, --help contents, and result files that
# record how to reproduce them (command line, commit, CPU, data and input hashes, product counts, exact
# numbers). Prints "test_cli_options: N passed, M failed".
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/cli_harness.sh
root=$(pwd)
case $bin in /*) abs_bin=$bin ;; *) abs_bin=$root/$bin ;; esac
# expect_not PATTERN: the last expect's output lacks PATTERN (no work was done)
expect_not() { grep -qiE -- "$1" <<<"$out" && bad "/$1/ in output (work was done before the error):"$'\n'"$out" || ok; }
# npy FILE SHAPE [DATA_FILE]: a float64 .npy with that shape (header padded to 128 bytes) and the data's bytes
npy() {
    local hdr="{'descr': '<f8', 'fortran_order': False, 'shape': $2, }"
    printf '\x93NUMPY\x01\x00\x76\x00%s%*s\n' "$hdr" $((117 - ${#hdr})) '' > "$1"
    [[ $# -gt 2 ]] && cat "$3" >> "$1"
    return 0
}
# shortest FILE...: every non-integer JSON/CSV number has the fewest significant digits that read back exactly
shortest() {
    cat "$@" | grep -oE '(^|: |\[|, |,)-?[0-9][0-9.eE+-]*' | sed -E 's/^(: |\[|, |,)//' | grep -E '[.eE]' | awk '
        { x = $1 + 0; m = $1; sub(/[eE].*/, "", m); gsub(/[-.]/, "", m); sub(/^0+/, "", m)
          for (p = 1; p < 17; p++) if (sprintf("%." p "g", x) + 0 == x) break
          if (p != length(m)) { print "not the shortest exact text: " $1 " (" p " digits read back)"; bad = 1 } }
        END { exit bad }'
}
json_num() { grep -o "\"$2\": [-0-9.e+]*" "$1" | head -1 | awk '{print $2}'; }
tail -c 40800 tests/golden/cnn_hv.npy > "$tmp/v.bin" # 5,100 float64 values, non-zero
common=(--checkpoint "$ck" --data "$data" --samples 8)

# ---- A. defects ----
# Input vectors: the full shape is checked, not only the last dimension or the element count.
npy "$tmp/empty.npy" "(0, 5100)"
expect 1 "--start .*shape \(0, 5100\)" "$bin" lanczos "${common[@]}" --k 2 --steps 5 --start "$tmp/empty.npy"
expect 1 "--vector .*shape \(0, 5100\)" "$bin" hvp "${common[@]}" --vector "$tmp/empty.npy" --out "$tmp/hv.npy"
npy "$tmp/wide.npy" "(2, 2550)" "$tmp/v.bin"
expect 1 "shape \(2, 2550\): expected \(5100,\) or \(K, 5100\) with 1 <= K <= 1024" "$bin" hvp "${common[@]}" --vector "$tmp/wide.npy" --out "$tmp/hv.npy"
[[ ! -e $tmp/hv.npy ]] && ok || bad "hvp wrote output for a vector of the wrong shape"
npy "$tmp/two.npy" "(2, 5100)" <(cat "$tmp/v.bin" "$tmp/v.bin")
expect 0 "converged|steps" "$bin" lanczos "${common[@]}" --k 1 --steps 20 --start "$tmp/two.npy" # (K, d): first row
npy "$tmp/e3.npy" "(3,)" <(head -c 24 "$tmp/v.bin")
expect 1 "--exact .*holds 3 values, but model cnn has 5100" "$bin" density "${common[@]}" --runs 1 --steps 5 \
    --plot "$tmp/d.svg" --exact "$tmp/e3.npy"
expect 1 "holds 5100 values, but the --params block 9 of model cnn has 310" "$bin" hvp "${common[@]}" --params 9 \
    --vector tests/golden/cnn_hv.npy --out "$tmp/hv.npy"
npy "$tmp/nan.npy" "(5100,)" <(printf '\x00\x00\x00\x00\x00\x00\xf8\x7f'; tail -c 40792 "$tmp/v.bin")
expect 1 "NaN" "$bin" hvp "${common[@]}" --vector "$tmp/nan.npy" --out "$tmp/hv.npy"

# --threads is bounded (100000 used to overflow the OpenMP runtime's stack).
expect 2 "--threads must be in \[1, 1024\]" "$bin" power "${common[@]}" --threads 100000 --iters 1 --batch 8
expect 2 "--threads must be in" "$bin" exact "${common[@]}" --threads 1025
expect 2 "--threads must be in" "$bin" train --data "$data" --out "$tmp/t.safetensors" --threads -1

# A value that begins with "--" is the next option, never a value.
mkdir "$tmp/cwd"
expect 2 "--json needs a value, got the option '--params=x'" \
    bash -c 'cd "$1" && "$2" exact --checkpoint "$3" --data "$4" --samples 8 --json --params=x' _ "$tmp/cwd" "$abs_bin" \
    "$root/$ck" "$root/$data"
[[ -z $(ls -A "$tmp/cwd") ]] && ok || bad "a file named after an option was written: $(ls -A "$tmp/cwd")"
expect 2 "--out needs a value, got the option '--json'" "$bin" train --data "$data" --out --json x
expect 2 "--lr must be in" "$bin" train --data "$data" --out "$tmp/t.safetensors" --lr -1 # numbers may be negative
expect 2 "--iters must be a positive integer \(got -3\)" "$bin" power "${common[@]}" --iters -3
expect 2 "--iters needs a value, got the option '--fixed'" "$bin" power "${common[@]}" --iters --fixed
expect 0 "lambda = " "$bin" power --checkpoint="$ck" --data="$data" --samples=8 --batch=8 --iters=2 # --name=value
expect 2 "--fixed takes no value" "$bin" power "${common[@]}" --fixed=1

# A repeated option is a usage error naming it.
expect 2 "--precision is given twice" "$bin" power "${common[@]}" --precision f32 --precision f64 --iters 1 --batch 8
expect 2 "--iters is given twice" "$bin" power "${common[@]}" --iters 2 --iters=3 --batch 8
expect 2 "--lr is given twice" "$bin" train --data "$data" --out "$tmp/t.safetensors" --lr 0.1 --lr 0.2

# Strict numbers: no sign for unsigned values, no spaces, no trailing text, no overflow, finite.
expect 2 "--seed expects a non-negative integer" "$bin" power "${common[@]}" --seed " -1" --iters 1 --batch 8
expect 2 "--seed expects a non-negative integer" "$bin" power "${common[@]}" --seed 18446744073709551616
expect 2 "--seed expects a non-negative integer" "$bin" power "${common[@]}" --seed +5
expect 2 "--k expects an integer, got ' 5'" "$bin" exact "${common[@]}" --k " 5"
expect 2 "--k expects an integer" "$bin" exact "${common[@]}" --k 2147483648
expect 2 "--samples must be a positive integer or 'all' \(got ' 8'\)" "$bin" exact --checkpoint "$ck" --data "$data" --samples " 8"
expect 2 "--tol expects a finite number, got ' 1e-3'" "$bin" power "${common[@]}" --fixed --tol " 1e-3"
expect 2 "--tol expects a finite number" "$bin" power "${common[@]}" --fixed --tol 0x1p-3
expect 2 "--tol expects a finite number" "$bin" power "${common[@]}" --fixed --tol 1e-400
expect 2 "--lr expects a finite number" "$bin" train --data "$data" --out "$tmp/t.safetensors" --lr inf

# No silent zeros: with the last layer's weights zeroed, the first layer's Hessian block is exactly zero.
n=$(od -An -tu8 -N8 "$ck" | tr -d ' ')
range=$(head -c $((8 + n)) "$ck" | tail -c "$n" | grep -o '"9.weight":{[^}]*' | grep -o 'offsets":\[[0-9]*,[0-9]*' | grep -o '[0-9].*')
cp "$ck" "$tmp/zero9.safetensors"
dd if=/dev/zero of="$tmp/zero9.safetensors" bs=1 seek=$((8 + n + ${range%,*})) count=$((${range#*,} - ${range%,*})) \
    conv=notrunc 2>/dev/null
expect 1 "params 0: the Hessian block .*exactly zero" "$bin" exact --checkpoint "$tmp/zero9.safetensors" --data "$data" \
    --samples 8 --params 0 --json "$tmp/zero.json"
[[ ! -e $tmp/zero.json ]] && ok || bad "exact wrote a result for an all-zero block"

# ---- B. fail fast ----
# Checked before the data are read (this data folder does not exist) or anything is computed.
expect 2 "'nope' names no parameter of model cnn" "$bin" exact --checkpoint "$ck" --data "$tmp/nodata" --params nope
expect 1 "--json .*the folder .*does not exist" "$bin" exact --checkpoint "$ck" --data "$tmp/nodata" --json "$tmp/no/dir/e.json"
mkdir "$tmp/ro"; chmod 555 "$tmp/ro"
if [[ ! -w $tmp/ro ]]; then # (root can write anywhere)
    expect 1 "--plot .*cannot write in the folder" "$bin" exact "${common[@]}" --plot "$tmp/ro/s.svg"
    expect_not "exact Hessian of"
fi
expect 1 "--json .* names a folder" "$bin" exact --checkpoint "$ck" --data "$tmp/nodata" --json "$tmp"
expect 2 "--json and --save-eigenvalues both name the file" "$bin" exact "${common[@]}" --json "$tmp/same" \
    --save-eigenvalues "$tmp/./same"
expect_not "exact Hessian of"
cp tests/golden/cnn_hv.npy "$tmp/v.npy"
expect 2 "--out .*would overwrite the input --vector" "$bin" hvp "${common[@]}" --vector "$tmp/v.npy" --out "$tmp/v.npy"
cmp -s "$tmp/v.npy" tests/golden/cnn_hv.npy && ok || bad "hvp overwrote its input vector"
expect 1 "--start .*No such file" "$bin" lanczos --checkpoint "$ck" --data "$tmp/nodata" --start "$tmp/none.npy"
expect 1 "--checkpoint .*No such file" "$bin" trace --checkpoint "$tmp/none.safetensors" --data "$tmp/nodata"
expect 2 "--k 2600: twice that is more than the 5100 eigenvalues" "$bin" exact --checkpoint "$ck" --data "$tmp/nodata" --k 2600
expect 2 "--k 200: twice that is more than the 310 eigenvalues \(the --params block 9" "$bin" exact "${common[@]}" \
    --params 9 --k 200
expect 2 "--k 6000 asks for 6000 eigenpairs" "$bin" lanczos --checkpoint "$ck" --data "$tmp/nodata" --k 6000
expect 2 "--batch 50 is larger than the 8 images selected" "$bin" power "${common[@]}" --batch 50 --iters 1
expect 2 "--model must be cnn, cnn_wide\[H\], resnet18, resnet50 or an ONNX file NAME.onnx \(got 'vgg'\)" "$bin" trace --checkpoint "$ck" --data "$data" --model vgg

# The weights must be named: a checkpoint, or --random-init SEED explicitly.
for c in hvp exact power lanczos trace density; do
    extra=(); [[ $c == hvp ]] && extra=(--vector "$tmp/v.npy" --out "$tmp/o.npy")
    expect 2 "needs --checkpoint FILE .*--random-init SEED" "$bin" $c --data "$data" "${extra[@]}"
done
expect 2 "--checkpoint and --random-init exclude each other" "$bin" power "${common[@]}" --random-init 1
expect 0 "lambda = " "$bin" power --random-init 0 --data "$data" --samples 8 --batch 8 --iters 2 --json "$tmp/ri.json"
grep -q '"random_init": 0,' "$tmp/ri.json" && grep -q '"checkpoint": null' "$tmp/ri.json" && ok ||
    bad "random_init not recorded in $(cat "$tmp/ri.json")"

# Conflicting or ignored options are usage errors.
expect 2 "--beta has no effect with --variant plain" "$bin" power "${common[@]}" --variant plain --beta 0.9
expect 2 "--batch has no effect with --fixed" "$bin" power "${common[@]}" --fixed --batch 500
expect 2 "--tol has no effect without --fixed" "$bin" power "${common[@]}" --tol 1e-3
expect 2 "--variant heavy-ball needs --beta" "$bin" power "${common[@]}" --variant heavy-ball
expect 2 "--batch has no effect without --stochastic" "$bin" lanczos "${common[@]}" --batch 8
expect 2 "--batch has no effect without --stochastic" "$bin" trace "${common[@]}" --batch 8
expect 2 "--batch has no effect without --stochastic" "$bin" density "${common[@]}" --batch 8
expect 2 "--exact has no effect without --plot" "$bin" density "${common[@]}" --exact tests/golden/cnn_eigenvalues.npy
expect 2 "--bn has no effect: model cnn has no batch norm" "$bin" trace "${common[@]}" --bn batch
expect 2 "--checkpoint and --epochs exclude each other" "$bin" study --data "$data" --checkpoint "$ck" --epochs 3

# Unknown options: the nearest name is suggested.
expect 2 "unknown option '--sampels': did you mean --samples\?" "$bin" exact "${common[@]}" --sampels 8
expect 2 "did you mean --checkpoint\?" "$bin" lanczos --checkpiont "$ck" --data "$data"
expect 2 "did you mean --epochs\?" "$bin" train --data "$data" --out "$tmp/t.safetensors" --epoch 2

# --help: real model names, value placeholders, true defaults, an example; exit statuses documented.
for c in hvp exact power lanczos trace density; do
    expect 0 "cnn, resnet18, resnet50 or an ONNX file NAME.onnx" "$bin" $c --help
    grep -q -- "--json FILE" <<<"$out" && grep -q -- "--data DIR" <<<"$out" && grep -q -- "--threads N" <<<"$out" &&
        grep -q -- "--random-init SEED" <<<"$out" && grep -q "^example: hessian $c " <<<"$out" && ok ||
        bad "$c --help lacks placeholders or an example:"$'\n'"$out"
    grep -q "2 usage error" <<<"$out" && ok || bad "$c --help does not document the exit statuses"
done
expect 0 "--beta X" "$bin" power --help
grep -q "default -1" <<<"$out" && bad "power --help shows a sentinel as default: $out" || ok
expect 0 "--lr X" "$bin" train --help
grep -q -- "--epochs N" <<<"$out" && grep -q -- "--json FILE" <<<"$out" && ok || bad "train --help placeholders: $out"
expect 0 "example: hessian study" "$bin" study --help
expect 0 "Exit status: 0 success; 1 failure while running .* 2 usage error" bash -c '"$1" --help | tr "\n" " "' _ "$bin"
grep -q "Exit status" README.md && grep -q -- "--random-init" README.md && ok || bad "README lacks exit statuses or --random-init"

# ---- C. result files say how to reproduce them ----
mkdir "$tmp/with space"
expect 0 "v.Hv" "$bin" hvp "${common[@]}" --vector tests/golden/cnn_hv.npy --out "$tmp/hv.npy" \
    --json "$tmp/with space/hv.json"
j="$tmp/with space/hv.json"
[[ $(json_num "$j" hvps) == 1 ]] && ok || bad "hvp reports $(json_num "$j" hvps) HVPs, made 1"
for key in git_commit cpu_model command_line version threads; do grep -q "\"$key\": " "$j" && ok || bad "hv.json lacks $key"; done
grep -q '"cpu_model": "[^"]' "$j" && ok || bad "empty cpu_model"
md5() { md5sum "$1" | cut -c1-32; }
grep -q "\"data_batch_1.bin\": \"$(md5 $data/cifar-10-batches-bin/data_batch_1.bin)\"" "$j" && ok || bad "data hash missing"
grep -A3 '"option": "--vector"' "$j" | grep -q "\"md5\": \"$(md5 tests/golden/cnn_hv.npy)\"" && ok || bad "vector hash missing"
grep -q "\"checkpoint_md5\": \"$(md5 $ck)\"" "$j" && ok || bad "checkpoint hash missing"
# The recorded command line, run again by a shell, remakes the same result.
line=$(sed -n 's/^ *"command_line": "\(.*\)",$/\1/p' "$j")
grep -q "'$tmp/with space/hv.json'" <<<"$line" && ok || bad "command line not shell-quoted: $line"
# Exact numbers, as few digits as read back exactly; no NaN or Infinity tokens.
shortest "$j" && ok || bad "hv.json numbers not in their shortest exact text"
vhv=$(json_num "$j" vHv)
rm "$j"
bash -c "$line" > /dev/null 2>&1 && [[ $(json_num "$j" vHv) == "$vhv" ]] && ok || bad "re-running '$line' differs"
expect 0 "lambda = " "$bin" power "${common[@]}" --batch 8 --iters 3 --seed 18446744073709551615 --json "$tmp/p.json" \
    --csv "$tmp/p.csv"
grep -q '"seed": 18446744073709551615,' "$tmp/p.json" && ok || bad "seed not written as unsigned: $(grep seed "$tmp/p.json")"
[[ $(json_num "$tmp/p.json" hvps) == 3 ]] && ok || bad "power hvps $(json_num "$tmp/p.json" hvps), expected 3"
grep -qiwE 'nan|inf|infinity' "$tmp/p.json" "$tmp/p.csv" && bad "NaN/Inf token written" || ok
shortest "$tmp/p.json" "$tmp/p.csv" && ok || bad "power results not in their shortest exact text"
l1=$(sed -n 2p "$tmp/p.csv" | cut -d, -f2)
grep -q "\"lambdas\": \[$l1," "$tmp/p.json" && ok || bad "CSV lambda $l1 is not the JSON's shortest exact text"
expect 0 "d = 310" "$bin" exact "${common[@]}" --params 9 --k 2 --json "$tmp/e.json"
[[ $(json_num "$tmp/e.json" hvps) == 5100 && $(json_num "$tmp/e.json" d) == 310 ]] && ok ||
    bad "exact hvps/d: $(json_num "$tmp/e.json" hvps) / $(json_num "$tmp/e.json" d), expected 5100 / 310"
expect 0 "lambda" "$bin" lanczos "${common[@]}" --k 1 --steps 20 --start "$tmp/two.npy" --json "$tmp/l.json"
grep -A3 '"option": "--start"' "$tmp/l.json" | grep -q "\"md5\": \"$(md5 "$tmp/two.npy")\"" && ok || bad "--start hash missing"

summary test_cli_options
