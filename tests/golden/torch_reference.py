#!/usr/bin/python3
"""torch_reference.py: PyTorch reference values for hessian (loss, logits, gradient, Hessian-vector product,
full Hessian and its spectrum) of model `cnn` on a training selection, in float64 by default.

    /usr/bin/python3 tests/golden/torch_reference.py --checkpoint CKPT --data DIR --samples N --offset O \
        [--vector v.npy] [--out-dir D] [--prefix P] [--hessian] [--dtype f64|f32] [--threads 2]

Writes to D (default .), each name prefixed by P:
  loss.json         loss, samples, offset, dtype, logits of the first --logits images (default 4), ...
  logits.npy        all logits (n, 10)                                  (only with --logits-npy)
  grad.npy          gradient of the mean cross-entropy, parameter order (flat, 5,100)
  hv.npy            H v (with --vector), by double backward; checked against
                    torch.autograd.functional.hvp on a functional copy of the model
  eigenvalues.npy   all eigenvalues of the full Hessian, ascending       (with --hessian)
  hessian_diag.npy  its diagonal                                          (with --hessian)
  hessian.json      trace, 5 smallest / 5 largest eigenvalues, symmetry error, |H v - hvp| check
                    (timings go to stderr only, so reruns give identical files)
  hessian.npy       the full matrix                                       (only with --save-hessian)

The loss is built with plain autograd on the model's real parameters (never p.data = ...: that detaches
the parameters and silently gives an all-zero Hessian). Every derivative is checked to be connected
(allow_unused=False) and the HVP to be nonzero.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cnn_common import (NUM_PARAMS, cnn_functional, flat, load_checkpoint, load_train_selection,  # noqa: E402
                        make_cnn, normalise, unflat)

DTYPES = {"f64": torch.float64, "f32": torch.float32}


def setup(checkpoint, data, samples, offset, dtype=torch.float64, consts_dtype=None):
    """-> (model in dtype with the checkpoint's weights, x, y, params list)."""
    model = make_cnn()
    load_checkpoint(model, checkpoint)
    model = model.to(dtype)
    labels, pixels = load_train_selection(data, offset, samples)
    x = normalise(pixels, dtype, consts_dtype)
    y = torch.as_tensor(labels).long()
    params = list(model.parameters())
    assert sum(p.numel() for p in params) == NUM_PARAMS
    return model, x, y, params


def loss_and_grad(model, x, y, params, create_graph=False):
    logits = model(x)
    loss = F.cross_entropy(logits, y)  # mean over the selection
    grads = torch.autograd.grad(loss, params, create_graph=create_graph)  # allow_unused=False: raises if cut
    return loss, logits, grads


def hvp_double_backward(model, x, y, params, v):
    _, _, grads = loss_and_grad(model, x, y, params, create_graph=True)
    gv = sum((g * vi).sum() for g, vi in zip(grads, unflat(v, params)))
    return flat(torch.autograd.grad(gv, params))


def hvp_functional(x, y, params, v):
    def f(*ps):
        return F.cross_entropy(cnn_functional(x, *ps), y)
    inputs = tuple(p.detach() for p in params)
    _, hv = torch.autograd.functional.hvp(f, inputs, tuple(unflat(v, params)), strict=True)
    return flat(hv)


def full_hessian(model, x, y, params, chunk=0, log=None):
    """Row by row: row i = d(g_i)/dw, one backward of the retained gradient graph per row (H e_i).
    chunk > 0: rows in batches of `chunk` with torch.autograd.grad(..., is_grads_batched=True)."""
    d = NUM_PARAMS
    _, _, grads = loss_and_grad(model, x, y, params, create_graph=True)
    g = flat(grads)
    H = torch.empty(d, d, dtype=g.dtype)
    t0 = time.time()
    if chunk > 0:
        for s in range(0, d, chunk):
            e = min(d, s + chunk)
            E = torch.zeros(e - s, d, dtype=g.dtype)
            E[torch.arange(e - s), torch.arange(s, e)] = 1
            rows = torch.autograd.grad(g, params, grad_outputs=E, retain_graph=True, is_grads_batched=True)
            H[s:e] = torch.cat([r.reshape(e - s, -1) for r in rows], dim=1)
    else:
        for i in range(d):
            H[i] = flat(torch.autograd.grad(g[i], params, retain_graph=True))
            if log and (i + 1) % 1000 == 0:
                log(f"  hessian rows {i + 1}/{d}  {time.time() - t0:.1f} s")
    return H


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def run(args):
    torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    consts = torch.float32 if args.norm_consts == "f32" else None
    out = lambda name: os.path.join(args.out_dir, args.prefix + name)  # noqa: E731
    log = (lambda s: print(s, file=sys.stderr)) if not args.quiet else None
    os.makedirs(args.out_dir, exist_ok=True)
    npdt = np.float64 if dtype == torch.float64 else np.float32
    model, x, y, params = setup(args.checkpoint, args.data, args.samples, args.offset, dtype, consts)

    t = time.time()
    loss, logits, grads = loss_and_grad(model, x, y, params)
    g = flat(grads)
    info = {"loss": loss.item(), "samples": args.samples, "offset": args.offset, "dtype": args.dtype,
            "norm_consts": args.norm_consts, "num_params": NUM_PARAMS,
            "grad_norm": g.norm().item(),
            "accuracy": (logits.argmax(1) == y).double().mean().item(),
            "labels_first": y[:args.logits].tolist(),
            "logits_first": logits[:args.logits].tolist()}
    np.save(out("grad.npy"), g.detach().numpy().astype(npdt))
    if args.logits_npy:
        np.save(out("logits.npy"), logits.detach().numpy().astype(npdt))
    if log:
        log(f"loss {info['loss']:.17g}  |g| {info['grad_norm']:.6g}  ({time.time() - t:.2f} s)")

    hv = None
    if args.vector:
        v64 = np.load(args.vector)
        if v64.shape != (NUM_PARAMS,):
            raise SystemExit(f"{args.vector}: shape {v64.shape}, expected ({NUM_PARAMS},)")
        v = torch.from_numpy(np.ascontiguousarray(v64)).to(dtype)
        t = time.time()
        hv = hvp_double_backward(model, x, y, params, v)
        t_hv = time.time() - t
        hv_f = hvp_functional(x, y, params, v)
        if hv.abs().max().item() == 0:
            raise SystemExit("H v is all zeros: the loss is not connected to the parameters")
        rel = ((hv - hv_f).norm() / hv.norm()).item()
        tol = 1e-12 if dtype == torch.float64 else 1e-5
        if rel > tol:
            raise SystemExit(f"double-backward HVP and autograd.functional.hvp differ: rel {rel:.3g} > {tol}")
        np.save(out("hv.npy"), hv.detach().numpy().astype(npdt))
        info.update({"vector": os.path.basename(args.vector), "hv_norm": hv.norm().item(),
                     "vHv": float(np.dot(v64, hv.double().numpy())),
                     "hv_double_backward_vs_functional_rel": rel})
        if log:
            log(f"|Hv| {info['hv_norm']:.6g}  v.Hv {info['vHv']:.10g}  functional-hvp rel diff {rel:.2e}  "
                f"({t_hv:.2f} s)")
    write_json(out("loss.json"), info)

    if args.hessian:
        t = time.time()
        H = full_hessian(model, x, y, params, args.batched_rows, log).double()
        t_rows = time.time() - t
        Hn = H.numpy()
        asym = float(np.abs(Hn - Hn.T).max())
        hmax = float(np.abs(Hn).max())
        Hs = 0.5 * (Hn + Hn.T)
        summary = {"samples": args.samples, "offset": args.offset, "dtype": args.dtype, "n": NUM_PARAMS,
                   "trace": float(np.trace(Hn)), "frobenius": float(np.linalg.norm(Hn)),
                   "max_abs_entry": hmax, "symmetry_max_abs": asym, "symmetry_rel": asym / hmax,
                   "rows_method": (f"is_grads_batched chunks of {args.batched_rows}" if args.batched_rows
                                   else "one backward per row")}
        if hv is not None:
            Hv = Hn @ v64
            summary["hv_full_vs_hvp_rel"] = float(np.linalg.norm(Hv - hv.double().numpy()) / np.linalg.norm(Hv))
        t = time.time()
        ev = np.linalg.eigvalsh(Hs)  # ascending
        t_eig = time.time() - t
        summary.update({"smallest5": ev[:5].tolist(), "largest5": ev[-5:].tolist(),
                        "sum_eigenvalues": float(ev.sum()), "num_negative": int((ev < 0).sum()),
                        "num_abs_below_1e-10": int((np.abs(ev) < 1e-10).sum())})
        np.save(out("eigenvalues.npy"), ev.astype(np.float64))
        np.save(out("hessian_diag.npy"), np.diag(Hn).astype(np.float64))
        if args.save_hessian:
            np.save(out("hessian.npy"), Hn)
        write_json(out("hessian.json"), summary)
        if log:
            log(f"hessian: rows {t_rows:.1f} s, eigvalsh {t_eig:.1f} s, trace "
                f"{summary['trace']:.10g}, symmetry rel {summary['symmetry_rel']:.2e}, "
                f"Hv check {summary.get('hv_full_vs_hvp_rel', float('nan')):.2e}")
            log(f"  smallest5 {summary['smallest5']}\n  largest5 {summary['largest5']}")
    return info


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True, help="folder holding cifar-10-batches-bin/ (or that folder)")
    ap.add_argument("--samples", type=int, required=True)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--vector", help=".npy vector (5,100) in parameter order for H v")
    ap.add_argument("--out-dir", default=".")
    ap.add_argument("--prefix", default="", help="prefix of every output file name")
    ap.add_argument("--hessian", action="store_true", help="full Hessian, its eigenvalues and trace")
    ap.add_argument("--save-hessian", action="store_true", help="also write the full matrix (208 MB)")
    ap.add_argument("--batched-rows", type=int, default=0,
                    help="Hessian rows in chunks with is_grads_batched=True (0: one backward per row, faster "
                         "on CPU with torch 1.13)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f64")
    ap.add_argument("--norm-consts", choices=["exact", "f32"], default="exact",
                    help="mean/std constants: decimal values in --dtype (exact) or rounded to float32 first")
    ap.add_argument("--logits", type=int, default=4, help="logits of the first K images into loss.json")
    ap.add_argument("--logits-npy", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quiet", action="store_true")
    return ap.parse_args(argv)


if __name__ == "__main__":
    run(parse())
