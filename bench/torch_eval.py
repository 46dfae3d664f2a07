#!/usr/bin/python3
"""torch_eval.py: loads a hessian-written safetensors checkpoint into the PyTorch model `cnn` with
load_state_dict(strict=True) and prints its loss and accuracy as one JSON line (the cross-check that
PyTorch reads what hessian writes).

    /usr/bin/python3 bench/torch_eval.py --checkpoint CKPT --data DIR [--split test|train]
        [--samples N --offset O] [--dtype f32|f64] [--threads 2]

Default: the whole test set (test_batch.bin), float32, no augmentation, mean cross-entropy.
--samples/--offset select training images offset..offset+N-1 instead (the analysis selection).
"""
import argparse
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnn_common import load_checkpoint, load_split, load_train_selection, make_cnn, normalise  # noqa: E402
from st_io import load_safetensors_meta  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True, help="folder holding cifar-10-batches-bin/ (or that folder)")
    ap.add_argument("--split", choices=["test", "train"], default="test")
    ap.add_argument("--samples", type=int, help="training selection size (implies --split train)")
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--dtype", choices=["f32", "f64"], default="f32")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.float64 if args.dtype == "f64" else torch.float32

    model = make_cnn()
    load_checkpoint(model, args.checkpoint)  # strict=True: exact names and shapes, else an exception
    model = model.to(dtype).eval()
    if args.samples is not None:
        labels, pixels = load_train_selection(args.data, args.offset, args.samples)
        split = "train"
    else:
        labels, pixels = load_split(args.data, args.split)
        split = args.split
    y = torch.from_numpy(labels.astype(np.int64))
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(y), args.batch):
            logits = model(normalise(pixels[i:i + args.batch], dtype))
            loss_sum += F.cross_entropy(logits, y[i:i + args.batch], reduction="sum").item()
            correct += int((logits.argmax(1) == y[i:i + args.batch]).sum())
    res = {"checkpoint": args.checkpoint, "split": split, "images": int(len(y)), "dtype": args.dtype,
           "loss": loss_sum / len(y), "accuracy": correct / len(y),
           "metadata": load_safetensors_meta(args.checkpoint)}
    if args.samples is not None:
        res["offset"] = args.offset
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
