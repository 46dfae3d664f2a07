#!/usr/bin/env bash
# test_cli_onnx.sh: networks given as ONNX files (--model NET.onnx) through the CLI, on the PyTorch exports and
# float64 goldens of tests/golden/onnx/ (tests/golden/make_onnx_golden.py), with their .npy data:
#   info: the parameter table (names, shapes, offsets, counts) equals the golden's, i.e. model.parameters();
#   hvp in float64: H v of the mlp (squared error, --loss mse) and of LeNet-5 (cross-entropy) equal PyTorch's to
#   1e-10 relative (PyTorch float64 and hessian differ by rounding only: measured about 1e-16);
#   lanczos: the mlp's largest eigenvalue equals the golden full spectrum's to 1e-8 relative;
#   train: the checkpoint of an ONNX model (safetensors with the ONNX initializer names, i.e. state_dict names)
#   loads into the PyTorch module with load_state_dict(strict=True) and holds the trained values;
#   errors, before any work and with messages that name the problem: a missing file, a truncated file, a file that
#   is not ONNX, an unsupported operator (named with its node), a graph that ends in Softmax, data whose shape is
#   not the model's input.
# Prints "test_cli_onnx: N passed, M failed".
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/cli_harness.sh
py=/usr/bin/python3
g=tests/golden/onnx
# jnum FILE KEY: the first number after "KEY": (an array's first element).
jnum() { grep -o "\"$2\": \[\?[-0-9.eE+]*" "$1" 2>/dev/null | head -1 | sed 's/.*[[ ]//'; }
holds() { # MESSAGE PYTHON-EXPRESSION NAME=VALUE...
    local msg=$1 cond=$2; shift 2
    if "$py" -c "import sys; ${*:+$(printf '%s;' "$@")} sys.exit(0 if ($cond) else 1)" 2>/dev/null; then ok; else bad "$msg: $cond with $*"; fi
}

# info: the table equals the golden's
expect 0 "61706 parameters" "$bin" info --model "$g/lenet5.onnx" --json "$tmp/info.json"
if "$py" - "$tmp/info.json" "$g/lenet5.json" <<'EOF'; then ok; else bad "info --json table differs from the golden's"; fi
import json, sys
mine, gold = (json.load(open(p)) for p in sys.argv[1:3])
rows = mine["params"] if "params" in mine else mine["parameters"]
want = [(p["name"], list(p["shape"]), p["offset"], p["numel"]) for p in gold["params"]]
have = [(p["name"], list(p["shape"]), p["offset"], p.get("numel", p.get("count"))) for p in rows]
sys.exit(0 if have == want else 1)
EOF

# hvp against PyTorch, float64
rel() { "$py" -c "import numpy as np, sys; a, b = np.load(sys.argv[1]), np.load(sys.argv[2]); print(np.linalg.norm(a - b) / np.linalg.norm(b))" "$1" "$2"; }
expect 0 "v.Hv" "$bin" hvp --model "$g/mlp.onnx" --inputs "$g/mlp_x.npy" --targets "$g/mlp_y.npy" --loss mse \
    --samples all --vector "$g/mlp_v.npy" --out "$tmp/mlp_hv.npy" --precision f64
holds "mlp (MSE) Hv vs PyTorch" 'float(e) <= 1e-10' e="$(rel "$tmp/mlp_hv.npy" "$g/mlp_hv.npy")"
expect 0 "v.Hv" "$bin" hvp --model "$g/lenet5.onnx" --inputs "$g/lenet5_x.npy" --targets "$g/lenet5_y.npy" \
    --samples all --vector "$g/lenet5_v.npy" --out "$tmp/lenet_hv.npy" --precision f64
holds "lenet5 Hv vs PyTorch" 'float(e) <= 1e-10' e="$(rel "$tmp/lenet_hv.npy" "$g/lenet5_hv.npy")"

# lanczos: the largest eigenvalue of the mlp's Hessian
expect 0 "converged" "$bin" lanczos --model "$g/mlp.onnx" --inputs "$g/mlp_x.npy" --targets "$g/mlp_y.npy" \
    --loss mse --samples all --k 1 --tol 1e-10 --precision f64 --json "$tmp/lanczos.json"
top=$("$py" -c "import numpy as np; print(np.load('$g/mlp_hessian_eigenvalues.npy').max())")
lam=$("$py" -c "import json; d = json.load(open('$tmp/lanczos.json')); e = d['eigenvalues']; print(max(x['value'] if isinstance(x, dict) else x for x in e))" 2>/dev/null)
holds "mlp largest eigenvalue vs the golden spectrum" 'abs(float(a) - float(b)) <= 1e-8 * abs(float(b))' a="${lam:-nan}" b="$top"

# train: the checkpoint goes back into the PyTorch module
expect 0 "epoch 1/1" "$bin" train --model "$g/lenet5.onnx" --inputs "$g/lenet5_x.npy" --targets "$g/lenet5_y.npy" \
    --epochs 1 --batch 4 --lr 0.1 --out "$tmp/lenet.safetensors"
if "$py" - "$tmp/lenet.safetensors" <<'EOF'; then ok; else bad "the ONNX model's checkpoint does not load into PyTorch"; fi
import sys
sys.path.insert(0, "tests/golden")
import torch
from st_io import load_safetensors
import make_onnx_golden as golden
m32 = golden.build("lenet5")[0]
before = {k: v.clone() for k, v in m32.state_dict().items()}
state = {k: torch.as_tensor(v).to(torch.float32) for k, v in load_safetensors(sys.argv[1]).items()}
m32.load_state_dict(state, strict=True)
changed = any(not torch.equal(before[k], v) for k, v in m32.state_dict().items())
sys.exit(0 if changed else 1)
EOF

# bad files and data
expect 1 "no such file|cannot open|not found" "$bin" info --model "$tmp/missing.onnx"
head -c 2000 "$g/lenet5.onnx" > "$tmp/truncated.onnx"
expect 1 "truncated.onnx" "$bin" info --model "$tmp/truncated.onnx"
printf 'this is not a protobuf\n' > "$tmp/text.onnx"
expect 1 "text.onnx" "$bin" info --model "$tmp/text.onnx"
expect 1 "operator '[A-Za-z]+' is not supported" "$bin" info --model tests/onnx/unsupported_op.onnx
expect 1 "softmax" "$bin" info --model tests/onnx/softmax_end.onnx
expect 1 "shape|\(1, ?28, ?28\)" "$bin" hvp --model "$g/lenet5.onnx" --data "$data" --samples 8 \
    --vector "$g/lenet5_v.npy" --out "$tmp/never.npy"
[[ ! -e $tmp/never.npy ]] && ok || bad "an output was written after a data error"
summary test_cli_onnx
