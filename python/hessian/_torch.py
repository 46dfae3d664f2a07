"""_torch.py: hessian.from_torch: a PyTorch module as a hessian.Model, through ONNX (torch is imported only
when called; the package itself never needs it)."""
import io
import os
import tempfile

import numpy as np

from ._core import HessianError, Model


def from_torch(module, example_input, precision="f64", checkpoint=None, **kwargs):
    """A hessian.Model computing what `module` computes in eval mode (batch norm with running statistics).

    module: a torch.nn.Module mapping inputs (N, ...) to outputs (N, K); example_input: one batch (any N) of
    such inputs. The module is exported to ONNX in memory (opset 13, no constant folding, an eval() copy) and read
    back by libhessian; the parameter vector then holds module's parameters exactly (float64 values, also for
    a float64 module) in module.parameters() order, with the same names as module.named_parameters().
    Batch-norm running statistics pass through the float32 export. Other keyword arguments (threads, seed)
    go to hessian.Model. Raises HessianError if the order or names cannot be matched.
    """
    import copy

    import torch

    names = [n for n, _ in module.named_parameters()]
    values = [p.detach().to(torch.float64).reshape(-1).cpu() for p in module.parameters()]
    shapes = [tuple(p.shape) for p in module.parameters()]
    m32 = copy.deepcopy(module).float().cpu().eval()
    # PRESERVE on an eval() copy: TrainingMode.EVAL would also fold batch norm into the convolutions (torch 1.13's
    # eval peephole), which changes the parameters. torch's exporter merges initializers of equal values (e.g. two BN weights of ones) in eval mode, which
    # would lose parameters: export distinct values, then set the true ones (exactly) through the parameter
    # vector.
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in m32.parameters():
            p.copy_(torch.rand(p.shape, generator=g) + 0.5)
    x = torch.as_tensor(np.asarray(example_input) if not torch.is_tensor(example_input) else example_input)
    buf = io.BytesIO()
    torch.onnx.export(m32, x.float().cpu(), buf, do_constant_folding=False,
                      training=torch.onnx.TrainingMode.PRESERVE, keep_initializers_as_inputs=False,
                      input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, opset_version=13)
    fd, path = tempfile.mkstemp(suffix=".onnx", prefix="hessian_from_torch_")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        model = Model(path, checkpoint=checkpoint, precision=precision, **kwargs)
    finally:
        os.unlink(path)
    model.name = f"from_torch({type(module).__name__})"
    got = model.parameters()
    if [t.name for t in got] != names or [t.shape for t in got] != shapes:
        raise HessianError("from_torch: the ONNX model's parameters do not match module.named_parameters(): "
                           f"got {[(t.name, t.shape) for t in got][:6]}..., expected "
                           f"{list(zip(names, shapes))[:6]}...")
    if checkpoint is None and values:
        model.params = torch.cat(values).numpy()
    return model
