#!/usr/bin/python3
"""make_golden.py: makes the small committed golden files in tests/golden/ with PyTorch (Debian python3-torch 1.13).

Made with (from the repository root; about 2-3 minutes on 2 cores):

    /usr/bin/python3 tests/golden/make_golden.py

Writes (all under tests/golden/):
  cnn_data/cifar-10-batches-bin/data_batch_1.bin   64 synthetic records (the analysis selection, "cnn_images")
  cnn_data/cifar-10-batches-bin/data_batch_2..5.bin, test_batch.bin   8, 8, 8, 8 and 16 records
  cnn_init.safetensors      torch.manual_seed(0) default init of model cnn, float32
  cnn_v.npy                 fixed vector, float64 standard normal (numpy default_rng(SEED_V))
  cnn_loss.json, cnn_grad.npy, cnn_hv.npy            float64 (model.double()), samples=64 offset=0
  cnn_eigenvalues.npy, cnn_hessian_diag.npy, cnn_hessian.json   full float64 Hessian: all 5,100 eigenvalues
                                                      ascending, its diagonal, trace, 5 smallest/largest, checks
  cnn_f32_loss.json, cnn_f32_grad.npy, cnn_f32_hv.npy  the same in float32 (model.float(), float32 images)
The equivalent torch_reference.py commands are printed and listed in tests/golden/README.md.
"""
import json
import os
import shlex
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cnn_common import NUM_PARAMS, RECORD, flat, make_cnn, save_checkpoint, unflat  # noqa: E402
import torch_reference  # noqa: E402

SEED_DATA = 20240611
SEED_V = 7
SAMPLES, OFFSET = 64, 0
FILES = [("data_batch_1.bin", 64), ("data_batch_2.bin", 8), ("data_batch_3.bin", 8), ("data_batch_4.bin", 8),
         ("data_batch_5.bin", 8), ("test_batch.bin", 16)]


def rel(p):
    return os.path.relpath(os.path.join(HERE, p))


def make_data():
    rng = np.random.default_rng(SEED_DATA)
    d = os.path.join(HERE, "cnn_data", "cifar-10-batches-bin")
    os.makedirs(d, exist_ok=True)
    for name, n in FILES:
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        pixels = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        rec = np.concatenate([labels[:, None], pixels], axis=1)
        assert rec.shape == (n, RECORD)
        with open(os.path.join(d, name), "wb") as f:
            f.write(rec.tobytes())


def make_checkpoint():
    torch.manual_seed(0)
    model = make_cnn()
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS
    save_checkpoint(model, os.path.join(HERE, "cnn_init.safetensors"),
                    {"model": "cnn", "init": "torch.manual_seed(0); default PyTorch init",
                     "made_by": "tests/golden/make_golden.py", "torch": torch.__version__})


def make_vector():
    v = np.random.default_rng(SEED_V).standard_normal(NUM_PARAMS).astype(np.float64)
    np.save(os.path.join(HERE, "cnn_v.npy"), v)


def reference(extra, out_dir=None):
    argv = ["--checkpoint", rel("cnn_init.safetensors"), "--data", rel("cnn_data"), "--samples", str(SAMPLES),
            "--offset", str(OFFSET), "--vector", rel("cnn_v.npy"), "--out-dir", out_dir or rel(".")] + extra
    print("/usr/bin/python3", rel("torch_reference.py"), " ".join(shlex.quote(a) for a in argv), flush=True)
    return torch_reference.run(torch_reference.parse(argv))


def fd_and_margins(eps=1e-7):
    model, x, y, params = torch_reference.setup(rel("cnn_init.safetensors"), rel("cnn_data"), SAMPLES, OFFSET)
    v = torch.from_numpy(np.load(rel("cnn_v.npy")))
    w0 = flat([p.detach().clone() for p in params])

    def grad_at(w):
        with torch.no_grad():
            for p, t in zip(params, unflat(w, params)):
                p.copy_(t)
        return flat(torch_reference.loss_and_grad(model, x, y, params)[2]).numpy()

    fd = (grad_at(w0 + eps * v) - grad_at(w0 - eps * v)) / (2 * eps)
    grad_at(w0)
    hv = np.load(rel("cnn_hv.npy"))

    def pool_gap(z):  # smallest gap between the two largest ReLU outputs of a 2x2 window with a positive max
        n, c, h, w = z.shape
        s = F.relu(z).reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(-1, 4)
        s = s.sort(-1, descending=True)[0]
        return (s[:, 0] - s[:, 1])[s[:, 0] > 0].min().item()

    with torch.no_grad():
        z1 = model[0](x)
        z2 = model[3](model[2](model[1](z1)))
        z3 = model[7](model[6](model[5](model[4](z2))))
    return {"fd_eps": eps, "fd_hv_rel_diff": float(np.linalg.norm(fd - hv) / np.linalg.norm(hv)),
            "min_abs_preact": [z1.abs().min().item(), z2.abs().min().item(), z3.abs().min().item()],
            "min_pool_gap": [pool_gap(z1), pool_gap(z2)],
            "note": "pre-activations of layers 0, 3, 7 and max-pool gaps: no ReLU/argmax decision is closer "
                    "than these to flipping, so f32 and f64 paths take the same branches"}


def main():
    make_data()
    make_checkpoint()
    make_vector()
    reference(["--prefix", "cnn_", "--hessian", "--dtype", "f64"])
    reference(["--prefix", "cnn_f32_", "--dtype", "f32"])

    # How much the float64 values move when mean/std are first rounded to float32 (as a C `const float`
    # table promoted to double would give): recorded so tests can pick tolerances knowingly.
    ref_loss = os.path.join(HERE, "cnn_loss.json")
    with tempfile.TemporaryDirectory() as tmp:
        alt = reference(["--dtype", "f64", "--norm-consts", "f32", "--quiet"], tmp)
        g0, g1 = np.load(os.path.join(HERE, "cnn_grad.npy")), np.load(os.path.join(tmp, "grad.npy"))
        h0, h1 = np.load(os.path.join(HERE, "cnn_hv.npy")), np.load(os.path.join(tmp, "hv.npy"))
    with open(ref_loss) as f:
        info = json.load(f)
    info["alt_norm_consts_f32"] = {
        "note": "float64 run with mean/std rounded to float32 first; differences relative to this file",
        "loss": alt["loss"], "loss_rel_diff": abs(alt["loss"] - info["loss"]) / abs(info["loss"]),
        "grad_rel_diff": float(np.linalg.norm(g1 - g0) / np.linalg.norm(g0)),
        "hv_rel_diff": float(np.linalg.norm(h1 - h0) / np.linalg.norm(h0))}

    # Independent check of H v: central differences of the gradient (eps = 1e-7; larger steps cross ReLU
    # kinks / max-pool switches: some pre-activations are within ~3e-6 of zero or of a tie), and those margins.
    info["checks"] = fd_and_margins()
    torch_reference.write_json(ref_loss, info)
    assert info["checks"]["fd_hv_rel_diff"] < 1e-8, info["checks"]

    # Checks on the golden set itself.
    with open(os.path.join(HERE, "cnn_hessian.json")) as f:
        hs = json.load(f)
    ev = np.load(os.path.join(HERE, "cnn_eigenvalues.npy"))
    assert ev.shape == (NUM_PARAMS,) and np.all(np.diff(ev) >= 0)
    assert hs["symmetry_rel"] < 1e-12, hs["symmetry_rel"]
    assert hs["hv_full_vs_hvp_rel"] < 1e-12, hs["hv_full_vs_hvp_rel"]
    assert abs(ev.sum() - hs["trace"]) <= 1e-10 * np.abs(ev).sum()
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(HERE) for f in fs
                if not f.endswith(".pyc"))
    print(f"golden files total {total} bytes", flush=True)


if __name__ == "__main__":
    main()
