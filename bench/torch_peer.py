#!/usr/bin/python3
"""torch_peer.py: the PyTorch peer for hessian's benchmarks (model `cnn`, CIFAR-10 binary files, CPU).

    /usr/bin/python3 bench/torch_peer.py --task train-epoch|grad|hvp|hessian-rows --data DIR --threads 2 \
        [--samples 1000] [--offset 0] [--rows 50] [--repeats 5] [--dtype f32|f64] [--checkpoint CKPT] [--seed 0]

Tasks (each prints one JSON line to stdout; progress to stderr):
  train-epoch   one epoch of the study's training: SGD lr 0.01 momentum 0.9, batch 100, shuffled, float32,
                RandomCrop(32, padding=4) + RandomHorizontalFlip done on uint8 tensors (no torchvision),
                then (x/255 - mean)/std. "seconds" = the epoch's wall time, data pipeline included.
  grad          gradient of the mean cross-entropy on training images offset..offset+samples-1:
                forward + backward, median of --repeats (after one warm-up).
  hvp           Hessian-vector product by double backward on the same images: "seconds" = forward +
                backward(create_graph) + second backward, from scratch; "seconds_reuse" = the second backward
                alone with the gradient graph kept (PyHessian-style repeated HVPs). Medians of --repeats.
  hessian-rows  the row-by-row full Hessian: one torch.autograd.grad of each gradient component g_i
                (retain_graph) per row, timed on --rows rows spread over the 5,100 and extrapolated:
                "seconds" = setup (forward + backward(create_graph)) + 5,100 * (seconds per row).
The weights are the torch.manual_seed(seed) default init, or --checkpoint (safetensors).
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnn_common import (NUM_PARAMS, flat, load_checkpoint, load_split, load_train_selection,  # noqa: E402
                        make_cnn, normalise, unflat)

DTYPES = {"f32": torch.float32, "f64": torch.float64}


def log(s):
    print(s, file=sys.stderr, flush=True)


def build_model(args, dtype):
    torch.manual_seed(args.seed)
    model = make_cnn()
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint)
    return model.to(dtype)


def augment(pixels, gen):
    """uint8 (B,3,32,32) -> uint8 (B,3,32,32): zero-pad 4, random 32x32 crop at (dy, dx) in [0, 8], then
    horizontal flip with probability 0.5 (torchvision RandomCrop(32, padding=4) + RandomHorizontalFlip)."""
    b = pixels.shape[0]
    padded = F.pad(pixels, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (b,), generator=gen)
    dx = torch.randint(0, 9, (b,), generator=gen)
    flip = torch.rand(b, generator=gen) < 0.5
    ar = torch.arange(32)
    rows = dy[:, None] + ar
    cols = dx[:, None] + ar
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    out = padded[torch.arange(b)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (B,32,32,3)
    return out.permute(0, 3, 1, 2).contiguous()


def task_train_epoch(args):
    dtype = torch.float32
    labels, pixels = load_split(args.data, "train")
    pixels, labels = torch.from_numpy(pixels), torch.from_numpy(labels.astype(np.int64))
    model = build_model(args, dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(args.seed)
    n, bs = pixels.shape[0], 100
    model.train()
    t0 = time.perf_counter()
    perm = torch.randperm(n, generator=gen)
    total, steps = 0.0, 0
    for s in range(0, n, bs):
        idx = perm[s:s + bs]
        x = normalise(augment(pixels[idx], gen), dtype)
        loss = F.cross_entropy(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item()
        steps += 1
    seconds = time.perf_counter() - t0
    res = {"seconds": seconds, "images": n, "batch": bs, "steps": steps, "train_loss_mean": total / steps,
           "dtype": "f32"}
    # Not timed: test accuracy after the epoch, as a sanity check that training did something.
    tl, tp = load_split(args.data, "test")
    with torch.no_grad():
        logits = torch.cat([model(normalise(tp[i:i + 1000], dtype)) for i in range(0, len(tl), 1000)])
        y = torch.from_numpy(tl.astype(np.int64))
        res["test_loss"] = F.cross_entropy(logits, y).item()
        res["test_accuracy"] = (logits.argmax(1) == y).double().mean().item()
    return res


def selection(args, dtype):
    labels, pixels = load_train_selection(args.data, args.offset, args.samples)
    return normalise(pixels, dtype), torch.from_numpy(labels.astype(np.int64))


def timed(fn, repeats):
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), ts


def task_grad(args):
    dtype = DTYPES[args.dtype]
    model = build_model(args, dtype)
    params = list(model.parameters())
    x, y = selection(args, dtype)

    def run():
        return torch.autograd.grad(F.cross_entropy(model(x), y), params)
    med, ts = timed(run, args.repeats)
    return {"seconds": med, "all_seconds": ts, "grad_norm": flat(run()).norm().item()}


def task_hvp(args):
    dtype = DTYPES[args.dtype]
    model = build_model(args, dtype)
    params = list(model.parameters())
    x, y = selection(args, dtype)
    if args.vector:
        v = torch.from_numpy(np.load(args.vector)).to(dtype)
    else:
        v = torch.randn(NUM_PARAMS, generator=torch.Generator().manual_seed(args.seed), dtype=torch.float64).to(dtype)
    vs = unflat(v, params)

    def full():
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), params, create_graph=True)
        gv = sum((g * vi).sum() for g, vi in zip(grads, vs))
        return torch.autograd.grad(gv, params)
    med, ts = timed(full, args.repeats)

    grads = torch.autograd.grad(F.cross_entropy(model(x), y), params, create_graph=True)
    gv = sum((g * vi).sum() for g, vi in zip(grads, vs))
    med_reuse, ts_reuse = timed(lambda: torch.autograd.grad(gv, params, retain_graph=True), args.repeats)
    return {"seconds": med, "all_seconds": ts, "seconds_reuse": med_reuse, "all_seconds_reuse": ts_reuse,
            "hv_norm": flat(full()).norm().item()}


def task_hessian_rows(args):
    dtype = DTYPES[args.dtype]
    model = build_model(args, dtype)
    params = list(model.parameters())
    x, y = selection(args, dtype)
    t = time.perf_counter()
    g = flat(torch.autograd.grad(F.cross_entropy(model(x), y), params, create_graph=True))
    setup = time.perf_counter() - t
    rows = np.linspace(0, NUM_PARAMS - 1, args.rows).round().astype(int)
    torch.autograd.grad(g[int(rows[0])], params, retain_graph=True)  # warm-up
    t = time.perf_counter()
    for i in rows:
        torch.autograd.grad(g[int(i)], params, retain_graph=True)
    per_row = (time.perf_counter() - t) / len(rows)
    return {"seconds": setup + NUM_PARAMS * per_row, "extrapolated": True, "rows_timed": int(len(rows)),
            "seconds_per_row": per_row, "setup_seconds": setup}


TASKS = {"train-epoch": task_train_epoch, "grad": task_grad, "hvp": task_hvp, "hessian-rows": task_hessian_rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True, choices=list(TASKS))
    ap.add_argument("--data", required=True, help="folder holding cifar-10-batches-bin/ (or that folder)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--rows", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32", help="grad, hvp, hessian-rows")
    ap.add_argument("--vector", help="hvp: .npy vector (default: seeded normal)")
    ap.add_argument("--checkpoint", help="safetensors weights (default: torch.manual_seed(seed) init)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = {"tool": "pytorch", "torch": torch.__version__, "task": args.task, "threads": torch.get_num_threads()}
    if args.task != "train-epoch":
        res.update({"samples": args.samples, "offset": args.offset, "dtype": args.dtype})
    res.update(TASKS[args.task](args))
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
