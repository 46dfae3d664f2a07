#!/usr/bin/python3
"""make_test_models.py: writes the small ONNX models tests/test_onnx_import.c reads (and the fuzz seeds).

    /usr/bin/python3 tests/onnx/make_test_models.py      (Debian python3-torch 1.13, python3-onnx 1.12)

Torch exports (torch.onnx.export) of small networks whose parameters and buffers are set by a formula the C
test recomputes: tensor t (in state_dict order, buffers included) element k holds
    ((7 k + 13 t) mod 101 - 50) / 64        (running variances: 1 + (k mod 5) / 8)
so the values are exact in float. Hand-made models (onnx.helper) cover attributes torch does not emit
(asymmetric pads, dilations, groups, Gemm transB=0, old opsets) and the refusals. Deterministic: same bytes on
every run with the same torch and onnx versions."""
import io
import os
import warnings

import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
import numpy as np

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
F = TensorProto.FLOAT


def fill(model):
    """Sets every state_dict tensor by the formula in the header."""
    with torch.no_grad():
        for t, (name, v) in enumerate(model.state_dict().items()):
            if name.endswith("num_batches_tracked"):
                continue
            k = torch.arange(v.numel(), dtype=torch.float64)
            if name.endswith("running_var"):
                vals = 1 + torch.remainder(k, 5) / 8
            else:
                vals = (torch.remainder(7 * k + 13 * t, 101) - 50) / 64
            v.copy_(vals.reshape(v.shape).to(v.dtype))


def export(model, shape, name, fold=False, training=torch.onnx.TrainingMode.PRESERVE, dynamic=True, train=True):
    fill(model)
    model.train(train)
    f = io.BytesIO()
    kw = dict(input_names=["x"], output_names=["y"])
    if dynamic:
        kw["dynamic_axes"] = {"x": {0: "batch"}, "y": {0: "batch"}}
    torch.onnx.export(model, torch.zeros(*shape), f, do_constant_folding=fold, training=training, **kw)
    with open(os.path.join(HERE, name), "wb") as out:
        out.write(f.getvalue())


class Cnn(torch.nn.Sequential):
    def __init__(self):
        super().__init__(torch.nn.Conv2d(3, 5, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Conv2d(5, 5, 5),
                         torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(125, 30),
                         torch.nn.ReLU(), torch.nn.Linear(30, 10))


class Order(torch.nn.Module):
    """Modules declared in another order than used; F.linear + bias as Transpose/MatMul/Add; view(N, -1)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(5 * 4 * 4, 10)
        self.bn = torch.nn.BatchNorm2d(5, momentum=0.2)
        self.conv2 = torch.nn.Conv2d(5, 5, 3, stride=2, padding=1, bias=False)
        self.conv = torch.nn.Conv2d(3, 5, 3, padding=1)
        self.mm = torch.nn.Linear(10, 7)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = self.conv2(x)
        x = x.view(x.size(0), -1)
        x = self.fc(x)
        return torch.nn.functional.linear(x, self.mm.weight) + self.mm.bias


class Features(torch.nn.Module):
    """ReLU6 (Clip), AvgPool ceil_mode without pad counting, GELU (Div, Erf, Add, Mul), LeakyReLU, MaxPool
    ceil_mode, depthwise conv, Sigmoid, Tanh, Softplus, cat, Dropout, constants in Mul/Sub."""

    def __init__(self):
        super().__init__()
        self.c = torch.nn.Conv2d(3, 4, 3)
        self.dw = torch.nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.pool = torch.nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        self.mp = torch.nn.MaxPool2d(2, ceil_mode=True)
        self.d = torch.nn.Dropout(0.5)
        self.fc = torch.nn.Linear(128, 10)

    def forward(self, x):
        x = torch.nn.functional.relu6(self.c(x))
        x = torch.nn.functional.gelu(self.pool(x))
        x = self.mp(torch.nn.functional.leaky_relu(x, 0.2))
        x = torch.cat([torch.sigmoid(x), torch.tanh(self.dw(x))], 1)
        x = torch.nn.functional.softplus(x)
        x = x.view(x.size(0), -1)
        x = self.d(x)
        return self.fc(x) * 2.0 - 1


def save(graph, name, opset=13, ir=7):
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="make_test_models")
    m.ir_version = ir
    onnx.save(m, os.path.join(HERE, name))


def arange(name, *shape, scale=1 / 64):
    n = int(np.prod(shape))
    return numpy_helper.from_array((np.arange(n, dtype=np.float32) * scale - 0.5).reshape(shape), name)


def inp(name="x", shape=("N", 4, 9, 9)):
    return helper.make_tensor_value_info(name, F, list(shape))


def out(name="y"):
    return helper.make_tensor_value_info(name, F, None)


def hand_made():
    # attributes: asymmetric pads, dilations, groups, strides; MaxPool ceil_mode; Gemm transB=0; Concat; Clip
    # bounds as initializers (opset 13); Reshape with an int64 shape initializer and a 0 entry
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", group=2, dilations=[2, 1], strides=[1, 2],
                         pads=[1, 2, 3, 0], kernel_shape=[3, 2]),
        helper.make_node("Clip", ["c", "lo", "hi"], ["r"], name="clip"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                         ceil_mode=1),
        helper.make_node("Reshape", ["p", "shape"], ["f"], name="reshape"),
        helper.make_node("Gemm", ["f", "g", "gb"], ["y"], name="gemm", transB=0),
    ]
    inits = [arange("w", 6, 2, 3, 2), arange("b", 6), numpy_helper.from_array(np.array(-1.5, np.float32), "lo"),
             numpy_helper.from_array(np.array(0.9, np.float32), "hi"),
             numpy_helper.from_array(np.array([0, -1], np.int64), "shape"), arange("g", 6 * 5 * 3, 5), arange("gb", 5)]
    save(helper.make_graph(nodes, "attrs", [inp()], [out()], inits), "attrs.onnx")

    # opset 10: Clip with attributes, Unsqueeze with an axes attribute, BatchNormalization in eval form,
    # AveragePool count_include_pad, GlobalAveragePool, Squeeze, Sub with a parameter operand first
    nodes = [
        helper.make_node("BatchNormalization", ["x", "s", "sb", "m", "v"], ["bn"], name="bn", epsilon=1e-3,
                         momentum=0.99),
        helper.make_node("Clip", ["bn"], ["cl"], name="clip", min=0.0, max=6.0),
        helper.make_node("AveragePool", ["cl"], ["ap"], name="avg", kernel_shape=[2, 2], strides=[2, 2],
                         count_include_pad=1, pads=[1, 1, 0, 0]),
        helper.make_node("GlobalAveragePool", ["ap"], ["gp"], name="gap"),
        helper.make_node("Squeeze", ["gp"], ["sq"], name="squeeze", axes=[2, 3]),
        helper.make_node("Unsqueeze", ["sq"], ["us"], name="unsqueeze", axes=[1]),
        helper.make_node("Sub", ["off", "us"], ["y"], name="sub"),
    ]
    inits = [arange("s", 4), arange("sb", 4), arange("m", 4), numpy_helper.from_array(np.ones(4, np.float32) * 2, "v"),
             arange("off", 1, 4)]
    save(helper.make_graph(nodes, "opset10", [inp()], [out()], inits), "opset10.onnx", opset=10, ir=5)

    conv = lambda out_name="c": helper.make_node("Conv", ["x", "w"], [out_name], name="conv", kernel_shape=[3, 3])
    w = arange("w", 2, 4, 3, 3)
    # refusals
    save(helper.make_graph([conv(), helper.make_node("HardSwish", ["c"], ["y"], name="hs")], "bad_op", [inp()], [out()],
                           [w]), "unsupported_op.onnx", opset=14)
    save(helper.make_graph([conv("c0"), helper.make_node("Flatten", ["c0"], ["c"], name="flat"),
                            helper.make_node("Softmax", ["c"], ["y"], name="softmax", axis=1)], "softmax", [inp()],
                           [out()], [w]), "softmax_end.onnx")
    save(helper.make_graph([conv("y")], "dynamic", [inp(shape=("N", 4, "H", "W"))], [out()], [w]), "dynamic_dims.onnx")
    save(helper.make_graph([conv("y")], "missing", [inp()], [out()], []), "missing_init.onnx")
    save(helper.make_graph([helper.make_node("Relu", ["c"], ["y"], name="relu"), conv()], "order", [inp()], [out()],
                           [w]), "not_topological.onnx")
    save(helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3],
                                             auto_pad="SAME_UPPER")], "same", [inp()], [out()], [w]), "auto_pad_same.onnx")
    save(helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3], foo=2)],
                           "attr", [inp()], [out()], [w]), "unknown_attr.onnx")
    mp = helper.make_node("MaxPool", ["x"], ["p", "idx"], name="pool", kernel_shape=[2, 2])
    save(helper.make_graph([mp, helper.make_node("Add", ["p", "idx"], ["y"], name="add")], "indices", [inp()], [out()]),
         "extra_output_used.onnx")
    odd = helper.make_node("Relu", ["c"], ["y"], name="odd", domain="com.example")
    save(helper.make_graph([conv(), odd], "domain", [inp()], [out()], [w]), "other_domain.onnx")


def main():
    export(Cnn(), (2, 3, 32, 32), "cnn.onnx")
    export(Cnn(), (2, 3, 32, 32), "cnn_eval_folded.onnx", fold=True, training=torch.onnx.TrainingMode.EVAL,
           dynamic=False, train=False)
    export(Order(), (2, 3, 8, 8), "order.onnx")
    export(Order(), (2, 3, 8, 8), "order_folded.onnx", fold=True)
    export(Features(), (2, 3, 14, 14), "features.onnx")
    export(Features(), (2, 3, 14, 14), "features_eval_folded.onnx", fold=True, training=torch.onnx.TrainingMode.EVAL,
           dynamic=False, train=False)
    hand_made()


if __name__ == "__main__":
    main()
