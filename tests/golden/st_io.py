"""st_io.py: a tiny safetensors reader/writer (no dependency on the `safetensors` pip package).

Format: 8-byte little-endian u64 header length N, then N bytes of JSON
  {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
padded with spaces to a multiple of 8, then the raw little-endian tensor bytes (offsets relative to the
start of the data section).

    load_safetensors(path) -> dict name -> torch.Tensor   (metadata via load_safetensors_meta)
    save_safetensors(path, tensors, metadata=None)
"""
import json
import os
import struct

import numpy as np
import torch

_NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
       "U8": "u1", "BOOL": "?"}
_FROM_TORCH = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
               torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
               torch.bool: "BOOL"}
_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _read(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: truncated (no header length)")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} past end of file ({len(raw)} bytes)")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    return header, memoryview(raw)[8 + n:]


def load_safetensors_meta(path):
    header, _ = _read(path)
    return dict(header.get("__metadata__", {}) or {})


def load_safetensors(path):
    """Returns {name: torch.Tensor} in header order (copies; tensors are writable)."""
    header, data = _read(path)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt, shape, (b, e) = info["dtype"], list(info["shape"]), info["data_offsets"]
        if dt not in _SIZE:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dt}")
        numel = int(np.prod(shape)) if shape else 1
        if not (0 <= b <= e <= len(data)) or e - b != numel * _SIZE[dt]:
            raise ValueError(f"{path}: tensor {name}: bad data_offsets {b},{e} for {dt}{shape}")
        buf = bytes(data[b:e])
        if dt == "BF16":
            u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            t = torch.from_numpy(u.view(np.float32).copy()).to(torch.bfloat16)
        else:
            t = torch.from_numpy(np.frombuffer(buf, dtype=_NP[dt]).copy())
        out[name] = t.reshape(shape)
    return out


def save_safetensors(path, tensors, metadata=None):
    """Writes tensors (dict name -> torch.Tensor or np.ndarray) in the dict's order, plus optional string
    metadata. Written to a temporary file, then renamed."""
    header, chunks, pos = {}, [], 0
    for name, t in tensors.items():
        if isinstance(t, np.ndarray):
            t = torch.from_numpy(t)
        t = t.detach().cpu().contiguous()
        dt = _FROM_TORCH[t.dtype]
        if dt == "BF16":
            b = (t.to(torch.float32).numpy().view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            b = t.numpy().astype(_NP[dt], copy=False).tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [pos, pos + len(b)]}
        chunks.append(b)
        pos += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((-len(hb)) % 8)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)
