#!/usr/bin/python3
"""make_onnx_golden.py: test networks exported to ONNX, with PyTorch float64 reference values for hessian's
ONNX path (loss, logits, gradient, H v, full-Hessian spectrum of the small ones).

    /usr/bin/python3 tests/golden/make_onnx_golden.py tests/golden/onnx     (~10 minutes, 2 shared cores)
    /usr/bin/python3 tests/golden/make_onnx_golden.py OUTDIR --only NAME            (one network)
    /usr/bin/python3 tests/golden/make_onnx_golden.py OUTDIR --large                (resnet18.onnx + its v)

Networks: tiny, mlp (MSE), lenet5, vgg, vgg_train (batch statistics), mobilenet, densenet, cnn (the study
CNN, full Hessian) and resnet18 (torchvision layout; only its sampled goldens are committed, --large writes the
45 MB .onnx and the full v, checking that the weights hash to the committed json's weights_sha256).

Per network NAME (all .npy float64 unless said):
  NAME.onnx          float32 export, opset 13, input "x" (N,...), output "logits" (N,K), dynamic batch axis,
                     do_constant_folding=False, TrainingMode.PRESERVE (eval() for all but vgg_train)
  NAME_x.npy         inputs (N,...), NAME_y.npy labels int32 (N,) (cross-entropy) or targets (N,K) (mse)
  NAME_v.npy         direction (P,), NAME_grad.npy, NAME_hv.npy gradient and H v (P,), NAME_logits.npy (N,K)
  NAME_hessian_eigenvalues.npy   all eigenvalues of the full Hessian, ascending (P <= 3000, and cnn)
  NAME_running.npy   vgg_train: running_mean / running_var after one training-mode forward pass, buffers in
                     state_dict order (json "buffers" gives names and offsets)
  NAME.json          loss value, parameter table (names = ONNX initializer names, model.parameters() order,
                     offsets into the flat vectors), torch_f32_rel_err, onnx_ops, checks, eigenvalues
                     (inline for P <= 600, else the .npy name)
Every random value (weights, BN affine and running statistics, x, y, v) is exactly representable in float32,
so the float32 .onnx and the float64 goldens describe the same function at the same point: the weights are
PyTorch's default init in float32 (torch.manual_seed), BN gamma/beta and all data come from numpy
default_rng(seed) in float32, and running statistics are float64 training-mode forward passes rounded to
float32. Loss: mean cross-entropy over the N samples, or mse = (1/N) sum_n sum_j (z_nj - y_nj)^2.
"""
import argparse
import copy
import hashlib
import io
import json
import os
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 13
HESSIAN_MAX_P = 3000
RESNET_SAMPLES = 2000
EIGENVALUES_INLINE_MAX_P = 600
MSE_CONVENTION = "loss = (1/N) * sum_n sum_j (z_nj - y_nj)^2 = MSELoss(reduction='mean') * output width"
F32_EPS = float(np.float32(1e-5))  # BatchNormalization's epsilon attribute is a float32
SQRT2_F32 = float(np.float32(np.sqrt(2.0)))  # the constant of GELU's exported Div
log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731


# ---------------------------------------------------------------- networks
class VGG(nn.Module):
    """3x16x16: 16 -conv p1-> 16 -conv p0-> 14 -avgpool-> 7 -conv p1-> 7 -maxpool ceil-> 4 (a partial window)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(16, 10)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class InvertedResidual(nn.Module):
    def __init__(self, inp, out, stride, expand):
        super().__init__()
        hidden = inp * expand
        self.use_res = stride == 1 and inp == out
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, out, 1, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNet(nn.Module):
    """3x32x32 -stem s2-> 8x16x16 -block s1 (residual)-> 8x16x16 -block s2-> 16x8x8 -head 1x1-> 24x8x8."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.block1 = InvertedResidual(8, 8, 1, 2)
        self.block2 = InvertedResidual(8, 16, 2, 3)
        self.head = nn.Conv2d(16, 24, 1)
        self.act = nn.LeakyReLU(0.1)  # ONNX stores 0.1f; hessian reads float attributes back as the shortest decimal
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        h = self.block2(self.block1(self.stem(x)))
        h = self.act(self.head(h))
        h = h * torch.sigmoid(h)  # SiLU written out: Sigmoid and Mul
        h = torch.flatten(self.pool(h), 1) / 2.0  # Div by a constant
        return self.fc(h)


class DenseLayer(nn.Module):
    def __init__(self, inp, growth):
        super().__init__()
        self.bn = nn.BatchNorm2d(inp)
        self.conv = nn.Conv2d(inp, growth, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv(F.relu(self.bn(x)))], 1)


class DenseNet(nn.Module):
    """3x16x16 -dilated stem-> 8x16x16 -3 dense layers-> 20x16x16 -transition-> 12x8x8 -(1,3) conv, Softplus->
    pool -> 10."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=2, dilation=2)
        self.block = nn.Sequential(DenseLayer(8, 4), DenseLayer(12, 4), DenseLayer(16, 4))
        self.trans = nn.Sequential(nn.BatchNorm2d(20), nn.ReLU(), nn.Conv2d(20, 12, 1, bias=False), nn.AvgPool2d(2))
        self.rect = nn.Conv2d(12, 12, (1, 3), padding=(0, 1))
        self.act = nn.Softplus()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        h = self.act(self.rect(self.trans(self.block(self.stem(x)))))
        return self.fc(torch.flatten(self.pool(h), 1))


class BasicBlock(nn.Module):
    def __init__(self, inp, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inp != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inp, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    """torchvision.models.resnet18(num_classes=10), written out (torchvision is not installed here): the same
    module tree, so the same state_dict names and order."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inp = 64
        for i, planes in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(inp, planes, stride), BasicBlock(planes, planes, 1)))
            inp = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def make_cnn():
    return nn.Sequential(nn.Conv2d(3, 5, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(5, 5, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(125, 30), nn.ReLU(), nn.Linear(30, 10))


class GeluOnnx(nn.Module):
    """What nn.GELU() exports as (opset 13): Mul(Mul(x, Add(Erf(Div(x, c)), 1)), 0.5) with c = sqrt(2) rounded to
    float32 (a Constant in the file). The float64 goldens use this, not torch's exact-GELU kernel (which differs by
    ~4e-9 relative), so that they are what the .onnx file means."""

    def forward(self, x):
        return x * (torch.erf(x / SQRT2_F32) + 1.0) * 0.5


def onnx_semantics(model):
    """Replaces the nn.GELU modules by GeluOnnx (in place; parameter names are unchanged)."""
    for name, mod in list(model.named_modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, nn.GELU):
                setattr(mod, cname, GeluOnnx())
    return model


# name: (builder, per-sample input shape, outputs K, loss, N, seed, mode)
NETS = {
    "tiny": (lambda: nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), (4,), 2, "cross-entropy", 8, 101, "eval"),
    "mlp": (lambda: nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 16), nn.GELU(), nn.Linear(16, 3)),
            (12,), 3, "mse", 16, 102, "eval"),
    "lenet5": (lambda: nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)),
        (1, 28, 28), 10, "cross-entropy", 8, 103, "eval"),
    "vgg": (VGG, (3, 16, 16), 10, "cross-entropy", 8, 104, "eval"),
    "vgg_train": (VGG, (3, 16, 16), 10, "cross-entropy", 8, 104, "train"),  # same seed: same weights as vgg
    "mobilenet": (MobileNet, (3, 32, 32), 10, "cross-entropy", 8, 105, "eval"),
    "densenet": (DenseNet, (3, 16, 16), 10, "cross-entropy", 8, 106, "eval"),
    "cnn": (make_cnn, (3, 32, 32), 10, "cross-entropy", 8, 107, "eval"),
    "resnet18": (ResNet18, (3, 32, 32), 10, "cross-entropy", 4, 108, "eval"),
}
LARGE = {"resnet18"}  # .onnx and v only with --large; goldens sampled at RESNET_SAMPLES indices
FULL_HESSIAN = {"cnn"}  # besides every network with P <= HESSIAN_MAX_P


# ---------------------------------------------------------------- building one network deterministically
def bn_modules(m):
    return [mod for mod in m.modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)]


def build(name):
    """-> (float32 model, float64 model, x, y, v), all float32-representable; mode set (eval/train)."""
    builder, shape, k, loss, n, seed, mode = NETS[name]
    torch.manual_seed(seed)  # default init: uniform_, the same on every CPU
    m32 = builder().float()
    rng = np.random.default_rng(seed)
    f32 = lambda *s: torch.from_numpy(rng.standard_normal(s, dtype=np.float32))  # noqa: E731
    bns = bn_modules(m32)
    with torch.no_grad():
        for bn in bns:
            bn.eps = F32_EPS
        for bn in bns:  # non-trivial affine (also keeps equal-valued initializers from being merged on export)
            bn.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, bn.num_features).astype(np.float32)))
            bn.bias.copy_(0.1 * f32(bn.num_features))
        if bns:  # running statistics: 3 training-mode passes in float64 on other N(0,1) data, rounded to float32
            w = copy.deepcopy(m32).double().train()
            for _ in range(3):
                w(f32(16, *shape).double())
            sd32, sdw = m32.state_dict(), w.state_dict()
            for key in sd32:
                if "running_" in key or key.endswith("num_batches_tracked"):
                    sd32[key].copy_(sdw[key].to(sd32[key].dtype))
    m32.train(mode == "train")
    m64 = onnx_semantics(copy.deepcopy(m32).double())
    x = f32(n, *shape).double()
    if loss == "mse":
        y = f32(n, k).double()
    else:
        y = torch.from_numpy(rng.integers(0, k, n).astype(np.int64))
    p = sum(q.numel() for q in m32.parameters())
    v = f32(p).double()
    return m32, m64, x, y, v


def loss_fn(kind, z, y):
    if kind == "mse":
        return ((z - y) ** 2).sum() / z.shape[0]
    return F.cross_entropy(z, y)


def flat(ts):
    return torch.cat([t.reshape(-1) for t in ts])


def grad_hv(model, kind, x, y, v):
    """Fresh copy each call (training-mode BN updates running stats on every forward)."""
    m = copy.deepcopy(model)
    params = list(m.parameters())
    z = m(x.to(v.dtype))
    loss = loss_fn(kind, z, y.to(v.dtype) if kind == "mse" else y)
    g = flat(torch.autograd.grad(loss, params, create_graph=True))
    hv = flat(torch.autograd.grad(g @ v, params))
    return z.detach(), loss.item(), g.detach(), hv.detach()


def full_hessian(model, kind, x, y, chunk=64):
    """Rows H e_i of the retained gradient graph, `chunk` at a time (is_grads_batched: vmap over the backward),
    falling back to one backward per row where an op has no batching rule."""
    m = copy.deepcopy(model)
    params = list(m.parameters())
    loss = loss_fn(kind, m(x), y)
    g = flat(torch.autograd.grad(loss, params, create_graph=True))
    d = g.numel()
    H = torch.empty(d, d, dtype=g.dtype)
    for s in range(0, d, chunk):
        e = min(d, s + chunk)
        try:
            E = torch.zeros(e - s, d, dtype=g.dtype)
            E[torch.arange(e - s), torch.arange(s, e)] = 1
            rows = torch.autograd.grad(g, params, grad_outputs=E, retain_graph=True, is_grads_batched=True)
            H[s:e] = torch.cat([r.reshape(e - s, -1) for r in rows], dim=1)
        except RuntimeError:
            for i in range(s, e):
                H[i] = flat(torch.autograd.grad(g[i], params, retain_graph=True))
    return H.numpy()


def sha256_f32(tensors):
    h = hashlib.sha256()
    for t in tensors:
        h.update(np.ascontiguousarray(t.detach().cpu().numpy().astype("<f4")).tobytes())
    return h.hexdigest()


def table(named):
    out, off = [], 0
    for n, t in named:
        out.append({"name": n, "shape": list(t.shape), "offset": off, "numel": t.numel()})
        off += t.numel()
    return out


def float_buffers(model):
    return [(n, b) for n, b in model.named_buffers() if b.is_floating_point()]


# ---------------------------------------------------------------- ONNX export and an independent evaluator
def export(m32, x):
    buf = io.BytesIO()
    torch.onnx.export(m32, x.float(), buf, do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE,
                      input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}},
                      opset_version=OPSET)
    return buf.getvalue()


def run_onnx(mp, x, dtype):
    """Evaluates the ONNX graph node by node from its attributes (torch.nn.functional in `dtype`): checks that
    the file means what the PyTorch module computes, independently of the exporter (onnxruntime is not
    installed here). Training-mode BatchNormalization (5 outputs) normalises with batch statistics."""
    env = {}

    def tensor(tp):
        a = numpy_helper.to_array(tp).copy()
        t = torch.from_numpy(a)
        return t.to(dtype) if t.is_floating_point() else t
    for t in mp.graph.initializer:
        env[t.name] = tensor(t)
    env[mp.graph.input[0].name] = x.to(dtype)
    for nd in mp.graph.node:
        # float attributes (stored as float32) read back as the shortest decimal, as hessian's importer does
        a = {at.name: float(repr(np.float32(helper.get_attribute_value(at))))
             if at.type == onnx.AttributeProto.FLOAT else helper.get_attribute_value(at) for at in nd.attribute}
        i = [env[s] if s else None for s in nd.input]
        op = nd.op_type
        if op == "Constant":
            r = tensor(a["value"])
        elif op == "Identity":
            r = i[0]
        elif op == "Cast":
            r = i[0].to(dtype) if a["to"] in (1, 11) else i[0].to(torch.int64)
        elif op == "Conv":
            pads = list(a.get("pads", [0, 0, 0, 0]))
            assert pads[:2] == pads[2:], pads
            r = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None, a.get("strides", 1), pads[:2],
                         a.get("dilations", 1), a.get("group", 1))
        elif op == "BatchNormalization":
            xx, gamma, beta, mean, var = i
            if len(nd.output) > 1 or a.get("training_mode", 0):
                mean, var = xx.mean((0, 2, 3)), xx.var((0, 2, 3), unbiased=False)
            r = F.batch_norm(xx, mean, var, gamma, beta, False, 0.0, a.get("epsilon", 1e-5))
        elif op == "Relu":
            r = F.relu(i[0])
        elif op == "LeakyRelu":
            r = F.leaky_relu(i[0], a.get("alpha", 0.01))
        elif op == "Clip":
            r = torch.clamp(i[0], None if len(i) < 2 or i[1] is None else i[1].item(),
                            None if len(i) < 3 or i[2] is None else i[2].item())
        elif op == "Sigmoid":
            r = torch.sigmoid(i[0])
        elif op == "Tanh":
            r = torch.tanh(i[0])
        elif op == "Softplus":
            r = torch.logaddexp(i[0], torch.zeros_like(i[0]))  # no threshold, as in the ONNX spec
        elif op == "Erf":
            r = torch.erf(i[0])
        elif op in ("Add", "Sub", "Mul", "Div"):
            r = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}[op](i[0], i[1])
        elif op in ("MaxPool", "AveragePool"):
            pads = list(a.get("pads", [0, 0, 0, 0]))
            assert pads[:2] == pads[2:], pads
            assert list(a.get("dilations", [1, 1])) == [1, 1]
            k, s, c = a["kernel_shape"], a.get("strides", [1, 1]), bool(a.get("ceil_mode", 0))
            if op == "MaxPool":
                r = F.max_pool2d(i[0], k, s, pads[:2], ceil_mode=c)
            else:
                r = F.avg_pool2d(i[0], k, s, pads[:2], ceil_mode=c, count_include_pad=bool(a.get("count_include_pad", 0)))
        elif op == "GlobalAveragePool":
            r = i[0].mean((2, 3), keepdim=True)
        elif op == "ReduceMean":
            r = i[0].mean(tuple(a["axes"]), keepdim=bool(a.get("keepdims", 1)))
        elif op == "Flatten":
            ax = a.get("axis", 1)
            r = i[0].reshape(int(np.prod(i[0].shape[:ax])), -1)
        elif op == "Reshape":
            shp = [i[0].shape[d] if s == 0 else s for d, s in enumerate(i[1].tolist())]
            r = i[0].reshape(shp)
        elif op == "Concat":
            r = torch.cat(i, a["axis"])
        elif op == "Gemm":
            A = i[0].T if a.get("transA", 0) else i[0]
            B = i[1].T if a.get("transB", 0) else i[1]
            r = a.get("alpha", 1.0) * (A @ B)
            if len(i) > 2 and i[2] is not None:
                r = r + a.get("beta", 1.0) * i[2]
        elif op == "Pad":
            assert a.get("mode", b"constant") == b"constant"
            pads = i[1].tolist()
            h = len(pads) // 2
            tp = []
            for d in reversed(range(h)):  # F.pad wants the last axis first
                tp += [pads[d], pads[d + h]]
            r = F.pad(i[0], tp, value=0.0 if len(i) < 3 or i[2] is None else i[2].item())
        elif op == "MatMul":
            r = i[0] @ i[1]
        else:
            raise NotImplementedError(f"run_onnx: op {op}")
        env[nd.output[0]] = r
    return env[mp.graph.output[0].name]


def check_onnx(data, m64, name):
    """checker, parameter names = initializer names with identical values, buffers; -> (model proto, ops)."""
    mp = onnx.load_from_string(data)
    onnx.checker.check_model(mp, full_check=True)
    inits = {t.name: numpy_helper.to_array(t) for t in mp.graph.initializer}
    for n, p in list(m64.named_parameters()) + float_buffers(m64):
        if n not in inits:  # torch 1.13 merges equal-valued initializers in eval mode (Identity nodes)
            raise AssertionError(f"{name}: {n} is not an ONNX initializer (initializers: {sorted(inits)[:8]}...)")
        got = inits[n]
        assert got.dtype == np.float32 and list(got.shape) == list(p.shape), (n, got.dtype, got.shape)
        assert np.array_equal(got.astype(np.float64), p.detach().numpy()), f"{name}: {n} differs from the f64 model"
    return mp, sorted({nd.op_type for nd in mp.graph.node})


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)) / np.linalg.norm(b))


# ---------------------------------------------------------------- one network
def make(name, outdir):
    t0 = time.time()
    builder, shape, k, kind, n, seed, mode = NETS[name]
    m32, m64, x, y, v = build(name)
    params = list(m64.named_parameters())
    P = sum(p.numel() for _, p in params)
    large = name in LARGE
    data = export(copy.deepcopy(m32), x)
    if mode == "train":  # tracing ran one training-mode forward: the file holds the running stats after it
        inits = {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(data).graph.initializer}
        with torch.no_grad():
            for mm in (m32, m64):
                for n, b in float_buffers(mm):
                    b.copy_(torch.from_numpy(inits[n].copy()).to(b.dtype))
    mp, ops = check_onnx(data, m64, name)
    # the ONNX graph itself, evaluated in float64 and float32, against the modules
    with torch.no_grad():
        z64, z32 = copy.deepcopy(m64)(x), copy.deepcopy(m32)(x.float())
    onnx_rel64 = rel(run_onnx(mp, x, torch.float64).numpy(), z64.numpy())
    onnx_rel32 = rel(run_onnx(mp, x, torch.float32).numpy(), z32.double().numpy())
    assert onnx_rel64 < 1e-12, (name, onnx_rel64)
    assert onnx_rel32 < 1e-5, (name, onnx_rel32)

    logits, loss, g, hv = grad_hv(m64, kind, x, y, v)
    assert rel(logits.numpy(), z64.numpy()) == 0
    assert hv.abs().max() > 0
    l32, loss32, g32, hv32 = grad_hv(m32, kind, x.float(), y.float() if kind == "mse" else y, v.float())
    f32err = {"loss": abs(loss32 - loss) / abs(loss), "logits": rel(l32.double(), logits), "grad": rel(g32.double(), g),
              "hv": rel(hv32.double(), hv)}

    info = {"name": name, "loss": kind, "loss_value": loss, "mode": mode, "samples": n, "input_shape": list(shape),
            "outputs": k, "num_params": P, "params": table(params),
            "buffers": table(float_buffers(m64)),
            "torch_f32_rel_err": f32err,
            "onnx_ops": ops, "opset": OPSET, "seed": seed,
            "grad_norm": float(g.norm()), "hv_norm": float(hv.norm()), "g_dot_v": float(g @ v), "v_hv": float(v @ hv),
            "weights_sha256": sha256_f32([p for _, p in params] + [b for _, b in float_buffers(m64)]),
            "v_sha256": sha256_f32([v]), "x_sha256": sha256_f32([x]),
            "checks": {"onnx_graph_f64_vs_torch_f64_logits_rel": onnx_rel64,
                       "onnx_graph_f32_vs_torch_f32_logits_rel": onnx_rel32},
            "torch": torch.__version__, "onnx": onnx.__version__}
    if kind == "mse":
        info["mse_convention"] = MSE_CONVENTION
    if mode == "train":
        info["batchnorm"] = ("training mode: batch mean and biased batch variance normalise; running stats updated "
                             "as r = 0.9 r + 0.1 s with s the batch mean / unbiased variance (PyTorch momentum 0.1 = "
                             "ONNX momentum 0.9), eps 1e-5")
    out = lambda suffix: os.path.join(outdir, name + suffix)  # noqa: E731
    save = lambda suffix, a: np.save(out(suffix), a)  # noqa: E731
    save("_x.npy", x.numpy())
    save("_y.npy", y.numpy() if kind == "mse" else y.numpy().astype(np.int32))
    save("_logits.npy", logits.numpy())
    if large:
        rng = np.random.default_rng(1234)
        idx = np.sort(rng.choice(P, RESNET_SAMPLES, replace=False)).astype(np.int64)
        save("_idx.npy", idx)
        save("_grad.npy", g.numpy()[idx])
        save("_hv.npy", hv.numpy()[idx])
        info["sampled"] = (f"{name}_grad.npy and {name}_hv.npy hold the gradient and H v at the {RESNET_SAMPLES} "
                           f"parameter indices {name}_idx.npy (numpy default_rng(1234), sorted); grad_norm and "
                           f"hv_norm are of the full vectors; {name}.onnx and {name}_v.npy are written only with "
                           f"--large (their sha256 checked against weights_sha256 / v_sha256)")
        info["onnx_file_bytes"] = len(data)
    else:
        with open(out(".onnx"), "wb") as f:
            f.write(data)
        save("_v.npy", v.numpy())
        save("_grad.npy", g.numpy())
        save("_hv.npy", hv.numpy())
    if mode == "train":
        mr = copy.deepcopy(m64)
        with torch.no_grad():
            mr(x)
        save("_running.npy", flat([b for _, b in float_buffers(mr)]).numpy())
        info["running"] = (f"{name}_running.npy: the float buffers (running_mean, running_var of each BN, state_dict "
                           f"order, offsets in 'buffers') after one training-mode forward pass on x in float64, "
                           f"starting from the .onnx's values")
    if P <= HESSIAN_MAX_P or name in FULL_HESSIAN:
        th = time.time()
        H = full_hessian(m64, kind, x, y)
        asym = float(np.abs(H - H.T).max() / np.abs(H).max())
        ev = np.linalg.eigvalsh(0.5 * (H + H.T))
        save("_hessian_eigenvalues.npy", ev)
        # inline only for small P (the committed files stay ~3 MB); the .npy holds them all in every case
        info["eigenvalues"] = ev.tolist() if P <= EIGENVALUES_INLINE_MAX_P else f"{name}_hessian_eigenvalues.npy"
        info["hessian"] = {"trace": float(np.trace(H)), "frobenius": float(np.linalg.norm(H)),
                           "symmetry_rel": asym, "num_negative": int((ev < 0).sum()),
                           "num_abs_below_1e-10": int((np.abs(ev) < 1e-10).sum()),
                           "smallest5": ev[:5].tolist(), "largest5": ev[-5:].tolist()}
        info["checks"]["hv_full_hessian_vs_double_backward_rel"] = rel(H @ v.numpy(), hv.numpy())
        assert info["checks"]["hv_full_hessian_vs_double_backward_rel"] < 1e-12
        log(f"  {name}: hessian {P}x{P} in {time.time() - th:.1f} s, eigenvalues {ev[0]:.6g} .. {ev[-1]:.6g}")
    with open(out(".json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    log(f"{name}: P {P}, loss {loss:.12g}, ops {ops}, f32 rel err grad {f32err['grad']:.2e} hv {f32err['hv']:.2e}, "
        f"onnx graph vs torch f64 {onnx_rel64:.1e} f32 {onnx_rel32:.1e} ({time.time() - t0:.1f} s)")


def make_large(name, outdir, ref_json):
    """--large: the .onnx and full v of a LARGE network, checked against the committed json."""
    t0 = time.time()
    m32, m64, x, y, v = build(name)
    params = list(m64.named_parameters())
    with open(ref_json) as f:
        ref = json.load(f)
    sha = sha256_f32([p for _, p in params] + [b for _, b in float_buffers(m64)])
    if sha != ref["weights_sha256"] or sha256_f32([v]) != ref["v_sha256"] or sha256_f32([x]) != ref["x_sha256"]:
        raise SystemExit(f"{name}: weights / v / x differ from {ref_json} (sha256 {sha} vs {ref['weights_sha256']})")
    data = export(copy.deepcopy(m32), x)
    mp, ops = check_onnx(data, m64, name)
    zr = np.load(os.path.join(os.path.dirname(ref_json), f"{name}_logits.npy"))
    e = rel(run_onnx(mp, x, torch.float64).numpy(), zr)
    if e > 1e-12 or ops != ref["onnx_ops"]:
        raise SystemExit(f"{name}: ONNX graph logits off the committed ones by {e:.2e} (ops {ops})")
    with open(os.path.join(outdir, name + ".onnx"), "wb") as f:
        f.write(data)
    np.save(os.path.join(outdir, name + "_v.npy"), v.numpy())
    np.save(os.path.join(outdir, name + "_x.npy"), x.numpy())
    np.save(os.path.join(outdir, name + "_y.npy"), y.numpy().astype(np.int32))
    log(f"{name}: wrote {name}.onnx ({len(data)} bytes), {name}_v.npy; weights sha256 ok, ONNX logits vs committed "
        f"{e:.1e} ({time.time() - t0:.1f} s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--only", choices=sorted(NETS), help="one network")
    ap.add_argument("--large", action="store_true",
                    help=f"write only the large networks' .onnx and v ({', '.join(sorted(LARGE))}), checked against "
                         f"the committed json in --ref-dir")
    ap.add_argument("--ref-dir", default=os.path.join(HERE, "onnx"), help="committed goldens (for --large)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared 2-core machine 2 threads were 10x slower)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.outdir, exist_ok=True)
    names = [args.only] if args.only else list(NETS)
    for name in names:
        if args.large:
            if name in LARGE:
                make_large(name, args.outdir, os.path.join(args.ref_dir, name + ".json"))
        else:
            make(name, args.outdir)


if __name__ == "__main__":
    main()
