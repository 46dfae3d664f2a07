#!/usr/bin/env python3
"""torch_model_peer.py: the PyTorch peer of bench/bench_model.c for torchvision models (resnet18, resnet50,
classifier with 10 outputs): one task per process, median of --repeats after a warm-up, peak RSS.
  step: one SGD step (lr 0.1, momentum 0.9, weight decay 5e-4), model.train()
  grad: loss and gradient, model.eval()
  hvp:  double-backward Hessian-vector product, model.eval()
grad and hvp run the samples in chunks of --chunk (default: all in one batch), each chunk's mean loss weighted by
its share of the samples and the chunks' products added, as hessian and PyHessian's data-loader mode do.
usage: /usr/bin/python3 bench/torch_model_peer.py --data DIR --model resnet50 --task step [--samples 100] [--chunk N]"""
import argparse, json, os, resource, sys, time

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "golden"))
from cnn_common import load_train_selection, normalise  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="resnet50", choices=["resnet18", "resnet50"])
    ap.add_argument("--task", default="step", choices=["step", "grad", "hvp"])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=0)
    a = ap.parse_args()
    chunk = a.chunk if 0 < a.chunk < a.samples else a.samples
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, a.model)(num_classes=10)
    labels, pixels = load_train_selection(a.data, 0, a.samples)
    x = normalise(pixels, dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
    v = [torch.sin(0.1 * torch.arange(p.numel(), dtype=torch.float32)).reshape(p.shape) for p in params]
    lossf = torch.nn.CrossEntropyLoss()
    times = []
    for r in range(a.repeats + 1):
        t0 = time.perf_counter()
        if a.task == "step":
            model.train()
            opt.zero_grad()
            lossf(model(x), y).backward()
            opt.step()
        else:
            model.eval()
            total = [torch.zeros_like(p) for p in params]
            for lo in range(0, a.samples, chunk):
                xs, ys = x[lo:lo + chunk], y[lo:lo + chunk]
                loss = lossf(model(xs), ys) * (len(ys) / a.samples)
                if a.task == "grad":
                    parts = torch.autograd.grad(loss, params)
                else:
                    g = torch.autograd.grad(loss, params, create_graph=True)
                    parts = torch.autograd.grad(sum((gi * vi).sum() for gi, vi in zip(g, v)), params)
                    del g
                for t, p in zip(total, parts):
                    t += p
        if r:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"tool": "pytorch", "torch": torch.__version__, "model": a.model, "task": a.task,
                      "samples": a.samples, "chunk": chunk, "seconds": float(np.median(times)),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))


if __name__ == "__main__":
    main()
