"""make_resnet_golden.py: PyTorch reference values for hessian's ResNet-50 (tests/test_resnet_golden.c).

    /usr/bin/python3 tests/golden/make_resnet_golden.py      (from the repository root, ~1 minute on 2 cores)

ResNet-50 (torchvision layout, 10 classes, 23,528,522 parameters) with weights that both sides build from one
integer formula, so that no 94 MB checkpoint is committed: for tensor tag T and element i,
    h = splitmix64((T << 32) | i),  u = (h >> 11) * 2^-53 in [0, 1),  r = 2u - 1 in [-1, 1)
(exact in numpy uint64 and C uint64_t; every value below is then a few IEEE double operations, identical in
both languages), with T = 1 + (index in model.parameters() order) for parameters, 1001 + (index among the
running_mean/running_var buffers in state_dict order) for buffers and 2001 + (parameter index) for the
direction v:
    conv weight (O,C,k,k)   r * sqrt(6 / fan_out), fan_out = O*k*k   (uniform with kaiming_normal_'s std)
    bn weight               0.5 + 0.25 r, but bn3 (a block's last) 0.1 + 0.05 r      bn bias   0.1 r
    running_mean            0.1 r                 running_var    1 + 0.5 r
    fc weight, fc bias      r / sqrt(fan_in)
    v                       r * (conv: sqrt(2 / fan_out), bn weight/bias: 0.1, fc: 1/sqrt(fan_in))
Images: the first 4 training images of tests/golden/cnn_data, (x/255 - mean)/std in float64; mean
cross-entropy over the 4.
Why bn3 is small: with batch statistics every unit is renormalised, and with residual branches as large as
the identity a rounding error grows ~1.5x per block (float32 activations end 1e-4 off, and ReLUs near zero
flip), so PyTorch's own float32 gradient is ~1-8% off its float64 one; with bn3 ~0.1 (the spirit of
torchvision's zero_init_residual) it is ~1e-4 off on these inputs. Even so, with batch statistics some ReLU
input always lies within float32 rounding of zero somewhere in 900,000, and a last-bit change (another BLAS
kernel, another summation order) can flip it: the gradient and H v then move by ~1e-2. The JSON records
PyTorch's own float32 errors on the inputs and their largest values under rounding-level perturbations
(f32_errors below); test_resnet_golden.c derives its float32 tolerances from them.

Written (float64, ~100 KB in all):
    resnet50_golden.json  parameter and buffer names/shapes (torchvision order), the 2,000 sampled indices'
                          provenance, eval-mode logits and loss, train-mode logits and loss, norms and dot
                          products of the full gradient / Hv vectors, running statistics after one
                          training-mode forward pass (sampled), timing-free
    resnet50_idx.npy      2,000 parameter indices (sorted, numpy default_rng(1234)), stored as float64
    resnet50_eval_grad.npy, resnet50_eval_hv.npy     gradient and H v at those indices, BN with running stats
    resnet50_train_grad.npy, resnet50_train_hv.npy   the same with batch statistics (model.train())
    resnet50_train_running.npy  running_mean then running_var at buffer indices resnet50_buf_idx.npy after one
                          training-mode forward pass (momentum 0.1, unbiased variance)
H v is the double-backward product torch.autograd.grad(grad . v, params).
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cnn_common import load_train_selection, normalise  # noqa: E402

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
EVAL_IMAGES, TRAIN_IMAGES = 4, 4
F32_TRIALS = 8


# ---------------------------------------------------------------- torchvision's ResNet-50, written out
def conv3x3(i, o, stride=1):
    return nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False)


def conv1x1(i, o, stride=1):
    return nn.Conv2d(i, o, 1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet50(nn.Module):
    def __init__(self, num_classes=10, layers=(3, 4, 6, 3)):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], 2)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer4 = self._make_layer(512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * 4, num_classes)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * 4, stride), nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ---------------------------------------------------------------- the weight formula
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def formula_r(tag, n):
    """r = 2u - 1 for elements 0..n-1 of tensor tag (float64)."""
    with np.errstate(over="ignore"):
        z = (np.uint64(tag) << np.uint64(32)) | np.arange(n, dtype=np.uint64)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
    return 2.0 * u - 1.0


def kind_of(name, shape):
    if name.startswith("fc."):
        return "fc"
    if len(shape) == 4:
        return "conv"
    return "bn_weight" if name.endswith(".weight") else "bn_bias"


def param_values(t, name, shape):
    r = formula_r(1 + t, int(np.prod(shape)))
    k = kind_of(name, shape)
    if k == "conv":
        fan_out = shape[0] * shape[2] * shape[3]
        return r * np.sqrt(6.0 / fan_out)
    if k == "bn_weight":
        return 0.1 + 0.05 * r if name.endswith("bn3.weight") else 0.5 + 0.25 * r
    if k == "bn_bias":
        return 0.1 * r
    return r / np.sqrt(float(shape[1] if len(shape) == 2 else 2048))


def direction_values(t, name, shape):
    r = formula_r(2001 + t, int(np.prod(shape)))
    k = kind_of(name, shape)
    if k == "conv":
        return r * np.sqrt(2.0 / (shape[0] * shape[2] * shape[3]))
    if k in ("bn_weight", "bn_bias"):
        return r * 0.1
    return r / np.sqrt(2048.0)


def buffer_values(b, name, n):
    r = formula_r(1001 + b, n)
    return 0.1 * r if name.endswith("running_mean") else 1.0 + 0.5 * r


def build_model():
    model = ResNet50().double()
    params = list(model.named_parameters())
    with torch.no_grad():
        for t, (name, p) in enumerate(params):
            p.copy_(torch.from_numpy(param_values(t, name, list(p.shape)).reshape(p.shape)))
        b = 0
        for name, buf in model.named_buffers():
            if name.endswith("num_batches_tracked"):
                continue
            buf.copy_(torch.from_numpy(buffer_values(b, name, buf.numel())))
            b += 1
    return model


def grad_and_hvp(model, x, y, v):
    params = list(model.parameters())
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    g = torch.autograd.grad(loss, params, create_graph=True)
    gflat = torch.cat([t.reshape(-1) for t in g])
    hv = torch.autograd.grad(gflat @ v, params)
    hvflat = torch.cat([t.reshape(-1) for t in hv])
    return logits.detach(), loss.item(), gflat.detach(), hvflat.detach()


def f32_errors(mode, x, y, v, logits, loss, g, hv, trials=F32_TRIALS):
    """PyTorch float32 against float64: relative errors of loss, logits, gradient and H v on the inputs x, and
    their largest values over `trials` more runs whose float64 images were first multiplied by
    (1 + 2^-24 z), z standard normal (seed 7): a change of the order of float32 rounding. With batch
    statistics such a change can flip a ReLU whose input lies within rounding of zero, and the gradient and
    H v then move by far more than rounding (measured: 3e-4 -> 1e-2): the error a float32 implementation can
    show on these inputs through no fault of its own."""
    def rel(a, b):
        return float((a.double() - b).norm() / b.norm())
    m32 = build_model().float()
    m32.train(mode == "train")
    gen = torch.Generator().manual_seed(7)
    runs = []
    for t in range(trials + 1):
        xt = x if t == 0 else x * (1 + 2.0 ** -24 * torch.randn(x.shape, generator=gen, dtype=torch.float64))
        logits32, loss32, g32, hv32 = grad_and_hvp(m32, xt.float(), y, v.float())
        runs.append({"loss": abs(loss32 - loss) / abs(loss), "logits": rel(logits32, logits), "grad": rel(g32, g),
                     "hv": rel(hv32, hv)})
        print(f"{mode} f32 run {t}: " + " ".join(f"{k} {e:.3g}" for k, e in runs[-1].items()), file=sys.stderr)
    return runs[0], {k: max(r[k] for r in runs) for k in runs[0]}


def main():
    t0 = time.time()
    model = build_model()
    names = [n for n, _ in model.named_parameters()]
    shapes = [list(p.shape) for _, p in model.named_parameters()]
    buffers = [n for n, _ in model.named_buffers() if not n.endswith("num_batches_tracked")]
    try:
        import torchvision
        tv = torchvision.models.resnet50(num_classes=10)
        assert [(n, list(p.shape)) for n, p in tv.named_parameters()] == list(zip(names, shapes))
        assert list(tv.state_dict().keys()) == list(model.state_dict().keys())
        print("names and shapes identical to torchvision", torchvision.__version__, file=sys.stderr)
    except ImportError:
        print("torchvision not installed: names not cross-checked", file=sys.stderr)
    P = sum(int(np.prod(s)) for s in shapes)
    assert P == 23528522, P
    v = torch.from_numpy(np.concatenate([direction_values(t, n, s) for t, (n, s) in enumerate(zip(names, shapes))]))
    labels, pixels = load_train_selection(os.path.join(HERE, "cnn_data"), 0, TRAIN_IMAGES)
    x16 = normalise(pixels, torch.float64)
    y16 = torch.as_tensor(labels.astype(np.int64))
    rng = np.random.default_rng(1234)
    idx = np.sort(rng.choice(P, 2000, replace=False))
    nbuf = sum(p.numel() for n, p in model.named_buffers() if n.endswith("running_mean"))
    bidx = np.sort(rng.choice(nbuf, 500, replace=False))

    out = {"model": "resnet50", "num_params": P, "images": "tests/golden/cnn_data, first training images (eval_images / train_images of them)",
           "labels": [int(a) for a in labels], "eval_images": EVAL_IMAGES, "train_images": TRAIN_IMAGES, "param_names": names, "param_shapes": shapes, "buffer_names": buffers,
           "torch": torch.__version__}
    for mode in ("eval", "train"):
        m = build_model()
        m.train(mode == "train")
        n = TRAIN_IMAGES if mode == "train" else EVAL_IMAGES
        logits, loss, g, hv = grad_and_hvp(m, x16[:n], y16[:n], v)
        # PyTorch's own float32 error against its float64 values, on exactly these inputs and under
        # rounding-level perturbations of them: the f32 tolerances of test_resnet_golden.c derive from it.
        out[f"{mode}_torch_f32_rel_err"], out[f"{mode}_torch_f32_rel_err_max"] = f32_errors(mode, x16[:n], y16[:n], v, logits, loss, g, hv)
        out[f"{mode}_logits"] = [[float(a) for a in row] for row in logits.numpy()]
        out[f"{mode}_loss"] = loss
        out[f"{mode}_grad_norm"] = float(g.norm())
        out[f"{mode}_hv_norm"] = float(hv.norm())
        out[f"{mode}_g_dot_v"] = float(g @ v)
        out[f"{mode}_v_hv"] = float(v @ hv)
        np.save(os.path.join(HERE, f"resnet50_{mode}_grad.npy"), g.numpy()[idx])
        np.save(os.path.join(HERE, f"resnet50_{mode}_hv.npy"), hv.numpy()[idx])
        print(f"{mode}: loss {loss:.10f} |g| {float(g.norm()):.6g} |Hv| {float(hv.norm()):.6g} "
              f"logit range {float(logits.min()):.3f}..{float(logits.max()):.3f}", file=sys.stderr)
    # running statistics after exactly one training-mode forward pass
    m = build_model()
    m.train()
    with torch.no_grad():
        m(x16[:TRAIN_IMAGES])
    rm = torch.cat([b.reshape(-1) for n, b in m.named_buffers() if n.endswith("running_mean")]).numpy()
    rv = torch.cat([b.reshape(-1) for n, b in m.named_buffers() if n.endswith("running_var")]).numpy()
    tracked = [int(b) for n, b in m.named_buffers() if n.endswith("num_batches_tracked")]
    assert set(tracked) == {1}
    out["num_batches_tracked_after_train_forward"] = 1
    np.save(os.path.join(HERE, "resnet50_idx.npy"), idx.astype(np.float64))
    np.save(os.path.join(HERE, "resnet50_buf_idx.npy"), bidx.astype(np.float64))
    np.save(os.path.join(HERE, "resnet50_train_running.npy"), np.concatenate([rm[bidx], rv[bidx]]))
    with open(os.path.join(HERE, "resnet50_golden.json"), "w") as f:
        json.dump(out, f, indent=0)
        f.write("\n")
    print(f"done in {time.time() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
