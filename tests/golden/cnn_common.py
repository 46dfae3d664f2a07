"""cnn_common.py: the PyTorch side of hessian's conventions, shared by tests/golden/*.py and bench/torch_*.py.

- model `cnn` (5,100 parameters), parameter order = model.parameters() order;
- CIFAR-10 binary files read with numpy (dir = the folder holding cifar-10-batches-bin/, or that folder);
- normalisation (x/255 - mean)/std, computed in the dtype asked for;
- safetensors checkpoints through st_io (strict names and shapes).
"""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from st_io import load_safetensors, save_safetensors

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
RECORD = 3073
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST_FILE = "test_batch.bin"
PARAM_NAMES = ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias", "9.weight", "9.bias"]
NUM_PARAMS = 5100


def make_cnn():
    return nn.Sequential(nn.Conv2d(3, 5, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(5, 5, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(125, 30), nn.ReLU(), nn.Linear(30, 10))


def cnn_functional(x, w0, b0, w3, b3, w7, b7, w9, b9):
    """The same network as make_cnn(), written with explicit parameter tensors (for
    torch.autograd.functional.hvp, which differentiates with respect to function inputs)."""
    h = F.max_pool2d(F.relu(F.conv2d(x, w0, b0)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, w3, b3)), 2)
    h = F.relu(F.linear(h.flatten(1), w7, b7))
    return F.linear(h, w9, b9)


def batches_dir(d):
    sub = os.path.join(d, "cifar-10-batches-bin")
    if os.path.isdir(sub):
        return sub
    if os.path.exists(os.path.join(d, TRAIN_FILES[0])) or os.path.exists(os.path.join(d, TEST_FILE)):
        return d
    raise FileNotFoundError(f"{d}: no cifar-10-batches-bin/ folder (make one with "
                            f"scripts/get-data.sh DEST from the repository root)")


def read_records(path, start=0, count=None):
    """Records start..start+count-1 of one file -> (labels uint8 (n,), pixels uint8 (n,3,32,32))."""
    size = os.path.getsize(path)
    if size % RECORD:
        raise ValueError(f"{path}: size {size} is not a multiple of {RECORD}")
    total = size // RECORD
    if count is None:
        count = total - start
    if start < 0 or count < 0 or start + count > total:
        raise ValueError(f"{path}: records {start}..{start + count - 1} out of range ({total} records)")
    with open(path, "rb") as f:
        f.seek(start * RECORD)
        raw = np.frombuffer(f.read(count * RECORD), dtype=np.uint8).reshape(count, RECORD)
    labels = raw[:, 0].copy()
    if labels.size and labels.max() >= 10:
        raise ValueError(f"{path}: label {labels.max()} >= 10")
    return labels, raw[:, 1:].reshape(count, 3, 32, 32).copy()


def load_split(data_dir, split="train"):
    d = batches_dir(data_dir)
    files = TRAIN_FILES if split == "train" else [TEST_FILE]
    parts = [read_records(os.path.join(d, f)) for f in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_train_selection(data_dir, offset, n):
    """Training images offset..offset+n-1 in file order (data_batch_1 first), reading only what is needed."""
    d = batches_dir(data_dir)
    labels, pixels, pos, need, start = [], [], 0, n, offset
    for fname in TRAIN_FILES:
        if need == 0:
            break
        path = os.path.join(d, fname)
        total = os.path.getsize(path) // RECORD
        if start < pos + total:
            k = min(need, pos + total - start)
            lab, pix = read_records(path, start - pos, k)
            labels.append(lab)
            pixels.append(pix)
            need -= k
            start += k
        pos += total
    if need:
        raise ValueError(f"{data_dir}: selection offset {offset} samples {n} past the {pos} training images")
    return np.concatenate(labels), np.concatenate(pixels)


def normalise(pixels, dtype=torch.float64, consts_dtype=None):
    """uint8 (n,3,32,32) -> (x/255 - mean)/std in `dtype` (torchvision ToTensor + Normalize arithmetic:
    divide by 255, subtract, divide). consts_dtype: dtype the mean/std constants are rounded to first
    (default: `dtype`; torch.float32 gives float32-rounded constants promoted to `dtype`)."""
    x = torch.as_tensor(pixels).to(dtype).div(255)
    cd = consts_dtype or dtype
    mean = torch.tensor(MEAN, dtype=cd).to(dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=cd).to(dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def unflat(vec, like):
    out, i = [], 0
    for p in like:
        out.append(vec[i:i + p.numel()].view_as(p))
        i += p.numel()
    assert i == vec.numel(), (i, vec.numel())
    return out


def load_checkpoint(model, path):
    """Loads a safetensors checkpoint with exactly the model's names and shapes (strict=True)."""
    sd = load_safetensors(path)
    ref = model.state_dict()
    sd = {k: v.to(ref[k].dtype) if k in ref else v for k, v in sd.items()}
    model.load_state_dict(sd, strict=True)
    return model


def save_checkpoint(model, path, metadata=None):
    sd = model.state_dict()
    save_safetensors(path, {k: sd[k].detach().to(torch.float32) for k in PARAM_NAMES}, metadata)
