/* onnx_import.h: reads an ONNX model (a .onnx file as torch.onnx.export writes it) into a Graph (graph.h).
 *
 *   Graph g;
 *   if (onnx_import("net.onnx", &g) != 0) { fprintf(stderr, "%s\n", hs_last_error()); ... }
 *   ... graph_free(&g);
 *
 * Accepted: ir_version 3..10, default-domain opset 7..20; one float data input (N, ...) whose dimensions after
 * the batch are concrete; one output. Operators: Conv, Gemm, MatMul (with a constant 2-D weight), Add, Sub,
 * Mul, Div, Relu, LeakyRelu, Clip, Sigmoid, Tanh, Softplus, Erf, MaxPool, AveragePool, GlobalAveragePool,
 * BatchNormalization, Flatten, Reshape, Identity, Dropout, Concat, plus the shape arithmetic PyTorch emits
 * around them (Constant, Shape, Gather, Unsqueeze, Squeeze, Cast, Transpose of a weight), evaluated here.
 *
 * Tensors: every initializer a node uses as a weight, bias, scale or elementwise operand becomes a parameter
 * named like the initializer (torch's state_dict name), in the order the initializers appear in the file
 * (for torch exports with do_constant_folding=False that is state_dict order, i.e. model.parameters() order
 * with the buffers left out; with do_constant_folding=True, tensors the exporter computed, e.g. a transposed
 * weight or, in eval exports, convolutions with batch norm folded in, are renamed "onnx::..." and moved to the
 * end); batch-norm running statistics become buffers; initializers used only as shapes,
 * indices or Clip bounds are read as constants. All parameters and buffers carry the file's values. Float
 * attributes (momentum, epsilon, slopes) are read back as the shortest decimal that rounds to the stored
 * float (0.9f -> 0.9), and ONNX's batch-norm momentum m is converted to PyTorch's 1 - m. */
#ifndef HS_ONNX_IMPORT_H
#define HS_ONNX_IMPORT_H

#include <stddef.h>

#include "graph.h"

/* Reads the file at `path` into g (uninitialised on entry). 0, or -1 with hs_error naming the file (and the
 * node, its operator and what is supported, where one is at fault); g is then freed (all zero). */
int onnx_import(const char *path, Graph *g);

/* The same from `size` bytes in memory; `name` stands for the file in messages and is the graph's name. */
int onnx_import_buffer(const void *data, size_t size, const char *name, Graph *g);

#endif
