"""hessian: exact Hessian-vector products, full Hessians and spectral estimates (Lanczos, power iteration,
trace, density) of a neural network's loss, from numpy, over libhessian (a C library; ctypes binding).

    import hessian
    m = hessian.Model("cnn", checkpoint="cnn.safetensors")           # or "net.onnx", "resnet50"
    hv = m.hvp(X, y, v)                                               # H v, H of the mean loss on X, y
    values, residuals = m.eigenvalues(X, y, k=5)                      # top-5 eigenvalues by Lanczos
    op = m.operator(X, y)                                             # a scipy LinearOperator
    m = hessian.from_torch(torch_module, example_input)              # any ONNX-exportable PyTorch network

Every vector is float64 (whatever the model's precision) in PyTorch's model.parameters() order. Failures raise
hessian.HessianError with libhessian's message. See help(hessian.Model).
"""
from ._core import (Data, HessianError, Model, Operator, Result, Tensor, TrainInfo, get_threads,  # noqa: F401
                    library_version, set_threads)
from ._torch import from_torch  # noqa: F401  (imports torch only when called)

__version__ = "0.2.0"
__all__ = ["Model", "Data", "Operator", "HessianError", "from_torch", "library_version", "set_threads",
           "get_threads", "Tensor", "TrainInfo", "Result"]
