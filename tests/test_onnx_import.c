/* test_onnx_import.c: the ONNX importer (src/graph/onnx_import.c) on the models tests/onnx/make_test_models.py
 * writes: torch exports (the study CNN against graph_builtin "cnn", modules declared out of order, the shape
 * arithmetic of view(x.size(0), -1), batch norm in training-mode exports, constant-folded eval exports) and
 * hand-made models (attributes torch does not emit, opset 10), their node tables, shapes, parameter names,
 * order and values, attributes; and the refusals, each message naming the file and the node / op at fault. */
#define _XOPEN_SOURCE 700
#include <stdlib.h>
#include <string.h>

#include "../src/core/common.h"
#include "../src/graph/onnx_import.h"
#include "check.h"
#include "temp_dir.h"

#define DIR "tests/onnx/"

/* The value make_test_models.py puts at element k of state_dict tensor t. */
static double formula(int t, size_t k, int running_var) {
    if (running_var) return 1 + (double)(k % 5) / 8;
    return (double)((7 * (long)k + 13 * t) % 101 - 50) / 64;
}

/* Every element of param / buffer `tensor` equals the formula for state_dict index t. */
static int values_match(const GraphTensor *tensor, int t, int running_var) {
    if (!tensor->values) return 0;
    for (size_t k = 0; k < tensor->numel; k++)
        if (tensor->values[k] != formula(t, k, running_var)) return 0;
    return 1;
}

static int import_ok(const char *path, Graph *g) {
    int rc = onnx_import(path, g);
    CHECK(rc == 0, "%s: %s", path, hs_last_error());
    return rc == 0;
}

/* The import fails, g is left empty and the message holds each of the (NULL-terminated) parts. */
static void expect_refusal(const char *path, const char *const *parts) {
    Graph g;
    memset(&g, 0x5a, sizeof g);
    int rc = onnx_import(path, &g);
    CHECK(rc == -1, "%s: import should fail", path);
    CHECK(g.num_nodes == 0 && g.nodes == NULL && g.params == NULL, "%s: graph not freed on failure", path);
    const char *msg = hs_last_error();
    for (int i = 0; parts[i]; i++) CHECK(strstr(msg, parts[i]) != NULL, "%s: message lacks '%s': %s", path, parts[i], msg);
    if (rc == 0) graph_free(&g);
}
#define REFUSED(path, ...) expect_refusal(path, (const char *const[]){path, __VA_ARGS__, NULL})

static void test_cnn_matches_builtin(const char *file) {
    Graph g, b;
    if (!import_ok(file, &g)) return;
    CHECK(graph_builtin(&b, "cnn") == 0, "builtin: %s", hs_last_error());
    CHECK(g.in_ndim == 3 && g.in_shape[0] == 3 && g.in_shape[1] == 32 && g.in_shape[2] == 32 && g.in_size == 3072,
          "%s: input shape", file);
    CHECK(g.num_nodes == b.num_nodes, "%s: %d nodes, builtin %d", file, g.num_nodes, b.num_nodes);
    for (int i = 0; i < g.num_nodes && i < b.num_nodes; i++) {
        const GraphNode *x = &g.nodes[i], *y = &b.nodes[i];
        int same = x->op == y->op && x->ndim == y->ndim && x->size == y->size && x->num_inputs == y->num_inputs &&
                   x->inputs[0] == y->inputs[0] && x->param[0] == y->param[0] && x->param[1] == y->param[1] &&
                   x->attrs.kh == y->attrs.kh && x->attrs.kw == y->attrs.kw && x->attrs.stride_h == y->attrs.stride_h &&
                   x->attrs.pad_t == y->attrs.pad_t && x->attrs.transposed == y->attrs.transposed;
        for (int d = 0; same && d < x->ndim; d++) same = x->shape[d] == y->shape[d];
        CHECK(same, "%s: node %d (%s '%s') differs from the builtin's", file, i, graph_op_name(x->op), x->name);
    }
    CHECK(g.num_params == b.num_params, "%s: %d params, builtin %d", file, g.num_params, b.num_params);
    for (int p = 0; p < g.num_params && p < b.num_params; p++) {
        const GraphTensor *x = &g.params[p], *y = &b.params[p];
        int same = strcmp(x->name, y->name) == 0 && x->numel == y->numel && x->ndim == y->ndim && x->kind == y->kind &&
                   x->fan_in == y->fan_in;
        CHECK(same, "%s: param %d '%s' differs from the builtin's '%s'", file, p, x->name, y->name);
        CHECK(values_match(x, p, 0), "%s: param '%s' values", file, x->name);
    }
    CHECK(g.num_buffers == 0 && g.num_constants == 0, "%s: no buffers or constants", file);
    graph_free(&b);
    graph_free(&g);
}

/* Modules declared fc, bn, conv2, conv, mm and used conv, bn, conv2, fc, mm: parameters in state_dict order. */
static void test_order(void) {
    Graph g;
    if (!import_ok(DIR "order.onnx", &g)) return;
    static const char *const names[] = {"fc.weight", "fc.bias", "bn.weight", "bn.bias", "conv2.weight",
                                        "conv.weight", "conv.bias", "mm.weight", "mm.bias"};
    static const int sd_index[] = {0, 1, 2, 3, 7, 8, 9, 10, 11}; /* in the state_dict (running stats at 4, 5, 6) */
    static const int kinds[] = {TENSOR_WEIGHT, TENSOR_BIAS, TENSOR_BN_WEIGHT, TENSOR_BN_BIAS, TENSOR_WEIGHT,
                                TENSOR_WEIGHT, TENSOR_BIAS, TENSOR_WEIGHT, TENSOR_OTHER};
    CHECK(g.num_params == 9, "order: %d params", g.num_params);
    for (int p = 0; p < g.num_params && p < 9; p++) {
        CHECK(strcmp(g.params[p].name, names[p]) == 0, "order: param %d is '%s', expected '%s'", p, g.params[p].name,
              names[p]);
        CHECK(g.params[p].kind == kinds[p], "order: param '%s' kind %d", names[p], g.params[p].kind);
        CHECK(values_match(&g.params[p], sd_index[p], 0), "order: param '%s' values", names[p]);
    }
    CHECK(g.num_buffers == 2 && strcmp(g.buffers[0].name, "bn.running_mean") == 0 &&
              strcmp(g.buffers[1].name, "bn.running_var") == 0 && g.buffers[0].kind == TENSOR_RUNNING_MEAN &&
              g.buffers[1].kind == TENSOR_RUNNING_VAR,
          "order: buffers");
    /* the export ran one training-mode forward on a zero input: the batch norm saw conv.bias (state_dict index 9)
     * with variance 0, so with momentum 0.2 the file holds 0.8 old + 0.2 batch, computed in float (terms below 1:
     * a few float ulps of 1, 2^-23 = 1.2e-7 each) */
    for (int b = 0; b < g.num_buffers && b < 2; b++)
        for (size_t k = 0; k < g.buffers[b].numel; k++)
            CHECK_CLOSE(g.buffers[b].values[k], 0.8 * formula(4 + b, k, b) + (b ? 0 : 0.2 * formula(9, k, 0)), 0, 5e-7);
    static const GraphOp ops[] = {GOP_CONV, GOP_BATCHNORM, GOP_RELU, GOP_CONV, GOP_VIEW, GOP_LINEAR, GOP_LINEAR, GOP_ADD};
    CHECK(g.num_nodes == 8, "order: %d nodes", g.num_nodes);
    for (int i = 0; i < g.num_nodes && i < 8; i++) CHECK(g.nodes[i].op == ops[i], "order: node %d is %s", i, graph_op_name(g.nodes[i].op));
    if (g.num_nodes == 8) {
        const GraphNode *bn = &g.nodes[1], *c2 = &g.nodes[3], *v = &g.nodes[4], *mm = &g.nodes[6], *add = &g.nodes[7];
        CHECK_CLOSE(bn->attrs.momentum, 0.2, 0, 0); /* ONNX 0.8f -> PyTorch 0.2 exactly */
        CHECK_CLOSE(bn->attrs.eps, 1e-5, 0, 0);
        CHECK(bn->param[0] == 2 && bn->param[1] == 3 && bn->buffer[0] == 0 && bn->buffer[1] == 1, "order: bn tensors");
        CHECK(c2->param[0] == 4 && c2->param[1] == -1 && c2->attrs.stride_h == 2 && c2->attrs.pad_t == 1 &&
                  c2->shape[0] == 5 && c2->shape[1] == 4 && c2->shape[2] == 4,
              "order: conv2");
        CHECK(g.nodes[0].param[0] == 5 && g.nodes[0].param[1] == 6, "order: conv tensors");
        CHECK(v->ndim == 1 && v->shape[0] == 80, "order: view(x.size(0), -1) gives (80)");
        CHECK(mm->param[0] == 7 && mm->attrs.transposed == 0 && mm->shape[0] == 7, "order: Transpose+MatMul -> linear (O,F)");
        CHECK(add->operand[0].kind == OPERAND_VALUE && add->operand[1].kind == OPERAND_PARAM && add->operand[1].id == 8,
              "order: bias as an Add parameter");
    }
    graph_free(&g);

    /* with constant folding the transposed weight becomes a new initializer at the end of the file */
    if (!import_ok(DIR "order_folded.onnx", &g)) return;
    CHECK(g.num_params == 9 && strcmp(g.params[7].name, "mm.bias") == 0 && strncmp(g.params[8].name, "onnx::MatMul", 12) == 0,
          "order_folded: folded weight last");
    if (g.num_nodes == 8) CHECK(g.nodes[6].attrs.transposed == 1 && g.nodes[6].param[0] == 8, "order_folded: MatMul (F,O)");
    graph_free(&g);
}

static void test_features(const char *file, int folded) {
    Graph g;
    if (!import_ok(file, &g)) return;
    static const GraphOp ops[] = {GOP_CONV,    GOP_RELU,      GOP_CLIP,   GOP_AVGPOOL, GOP_DIV,    GOP_ERF,   GOP_ADD,
                                  GOP_MUL,     GOP_MUL,       GOP_LEAKY_RELU, GOP_MAXPOOL, GOP_SIGMOID, GOP_CONV,
                                  GOP_TANH,    GOP_CONCAT,    GOP_SOFTPLUS, GOP_VIEW,  GOP_VIEW,   GOP_LINEAR, GOP_MUL, GOP_SUB};
    int n = folded ? 20 : 21; /* the eval export drops Dropout */
    CHECK(g.num_nodes == n, "%s: %d nodes, expected %d", file, g.num_nodes, n);
    for (int i = 0, j = 0; i < g.num_nodes && j < 21; i++, j++) {
        if (folded && j == 17) j++;
        CHECK(g.nodes[i].op == ops[j], "%s: node %d is %s, expected %s", file, i, graph_op_name(g.nodes[i].op),
              graph_op_name(ops[j]));
    }
    if (g.num_nodes == n) {
        const GraphNode *clip = &g.nodes[2], *avg = &g.nodes[3], *lr = &g.nodes[9], *mp = &g.nodes[10],
                        *dw = &g.nodes[12], *cat = &g.nodes[14], *last = &g.nodes[n - 1];
        CHECK(clip->attrs.lo == 0 && clip->attrs.hi == 6, "%s: ReLU6 bounds [%g, %g]", file, clip->attrs.lo, clip->attrs.hi);
        CHECK(avg->attrs.ceil_mode == 1 && avg->attrs.count_include_pad == 0 && avg->attrs.kh == 3 &&
                  avg->attrs.stride_h == 2 && avg->attrs.pad_t == 1 && avg->shape[1] == 7 && avg->shape[2] == 7,
              "%s: AveragePool", file);
        CHECK(lr->attrs.alpha == 0.2, "%s: LeakyRelu alpha %.17g", file, lr->attrs.alpha);
        CHECK(mp->attrs.ceil_mode == 1 && mp->shape[1] == 4, "%s: MaxPool ceil_mode", file);
        CHECK(dw->attrs.groups == 4 && dw->param[0] == 2 && g.params[2].fan_in == 9, "%s: depthwise conv", file);
        CHECK(cat->attrs.axis == 0 && cat->num_inputs == 2 && cat->shape[0] == 8, "%s: Concat on channels", file);
        CHECK(g.nodes[4].constant >= 0 && g.constants[g.nodes[4].constant].values[0] == (double)1.41421353816986083984375,
              "%s: GELU's sqrt(2) constant", file);
        CHECK(last->op == GOP_SUB && last->operand[1].kind == OPERAND_CONST && last->shape[0] == 10, "%s: output", file);
    }
    CHECK(g.num_params == 6, "%s: %d params", file, g.num_params);
    for (int p = 0; p < g.num_params; p++) CHECK(values_match(&g.params[p], p, 0), "%s: param %d values", file, p);
    graph_free(&g);
}

static void test_hand_made(void) {
    Graph g;
    if (import_ok(DIR "attrs.onnx", &g)) {
        CHECK(g.in_ndim == 3 && g.in_shape[0] == 4 && g.num_nodes == 5 && g.num_params == 4, "attrs: table");
        if (g.num_nodes == 5) {
            const GraphAttrs *a = &g.nodes[0].attrs;
            CHECK(a->pad_t == 1 && a->pad_l == 2 && a->pad_b == 3 && a->pad_r == 0, "attrs: pads t,l,b,r = %d,%d,%d,%d",
                  a->pad_t, a->pad_l, a->pad_b, a->pad_r);
            CHECK(a->groups == 2 && a->dil_h == 2 && a->dil_w == 1 && a->stride_h == 1 && a->stride_w == 2 && a->kh == 3 &&
                      a->kw == 2,
                  "attrs: conv group, dilations, strides, kernel");
            CHECK(g.nodes[0].shape[0] == 6 && g.nodes[0].shape[1] == 9 && g.nodes[0].shape[2] == 5, "attrs: conv shape");
            CHECK(g.params[0].fan_in == 12 && g.params[1].fan_in == 12 && g.params[1].kind == TENSOR_BIAS, "attrs: fan_in");
            CHECK(g.nodes[1].attrs.lo == -1.5 && g.nodes[1].attrs.hi == 0.9, "attrs: Clip from initializers [%g, %.17g]",
                  g.nodes[1].attrs.lo, g.nodes[1].attrs.hi);
            CHECK(g.nodes[2].attrs.ceil_mode == 1 && g.nodes[2].shape[1] == 5 && g.nodes[2].shape[2] == 3, "attrs: MaxPool");
            CHECK(g.nodes[3].op == GOP_VIEW && g.nodes[3].ndim == 1 && g.nodes[3].shape[0] == 90, "attrs: Reshape [0, -1]");
            CHECK(g.nodes[4].attrs.transposed == 1 && g.params[2].fan_in == 90 && g.nodes[4].shape[0] == 5,
                  "attrs: Gemm transB=0");
            CHECK(g.params[2].values[3] == 3.0 / 64 - 0.5, "attrs: Gemm weight values");
        }
        CHECK(g.num_buffers == 0 && g.num_constants == 0, "attrs: shape and bounds are not parameters");
        graph_free(&g);
    }
    if (import_ok(DIR "opset10.onnx", &g)) {
        CHECK(g.num_nodes == 7 && g.num_params == 3 && g.num_buffers == 2, "opset10: table");
        if (g.num_nodes == 7) {
            CHECK(g.nodes[0].attrs.eps == 1e-3 && g.nodes[0].attrs.momentum == 0.01, "opset10: bn eps %.17g momentum %.17g",
                  g.nodes[0].attrs.eps, g.nodes[0].attrs.momentum);
            CHECK(g.nodes[1].attrs.lo == 0 && g.nodes[1].attrs.hi == 6, "opset10: Clip attributes");
            CHECK(g.nodes[2].attrs.count_include_pad == 1 && g.nodes[2].attrs.pad_t == 1 && g.nodes[2].attrs.pad_b == 0 &&
                      g.nodes[2].shape[1] == 5,
                  "opset10: AveragePool");
            CHECK(g.nodes[4].op == GOP_VIEW && g.nodes[4].ndim == 1 && g.nodes[5].ndim == 2 && g.nodes[5].shape[0] == 1,
                  "opset10: Squeeze / Unsqueeze as views");
            CHECK(g.nodes[6].operand[0].kind == OPERAND_PARAM && g.nodes[6].operand[1].kind == OPERAND_VALUE,
                  "opset10: Sub keeps its operand order");
            CHECK(g.params[0].kind == TENSOR_BN_WEIGHT && g.params[1].kind == TENSOR_BN_BIAS &&
                      strcmp(g.params[2].name, "off") == 0,
                  "opset10: params");
            CHECK(g.buffers[1].values[2] == 2.0, "opset10: running var values");
        }
        graph_free(&g);
    }
}

static void test_refusals(void) {
    REFUSED(DIR "unsupported_op.onnx", "node 'hs'", "operator 'HardSwish' is not supported", "supported: Conv");
    REFUSED(DIR "softmax_end.onnx", "node 'softmax'", "the graph ends in Softmax: export the logits");
    REFUSED(DIR "dynamic_dims.onnx", "dimension 2 is 'H'", "dynamic shapes not supported");
    REFUSED(DIR "missing_init.onnx", "node 'conv'", "missing initializer 'w'");
    REFUSED(DIR "not_topological.onnx", "node 'relu'", "not in topological order");
    REFUSED(DIR "auto_pad_same.onnx", "node 'conv'", "auto_pad 'SAME_UPPER' is not supported");
    REFUSED(DIR "other_domain.onnx", "node 'odd'", "domain 'com.example' is not supported");
    REFUSED(DIR "unknown_attr.onnx", "node 'conv'", "attribute 'foo' is not supported");
    REFUSED(DIR "extra_output_used.onnx", "node 'add'", "reads 'idx'", "only the first output is supported");
    REFUSED(DIR "no_such_file.onnx", "cannot open");

    if (temp_dir_create("hs_test_onnx") != 0) {
        CHECK(0, "%s", "temp dir");
        return;
    }
    /* a valid file cut in half; an empty file; random bytes */
    FILE *in = fopen(DIR "cnn.onnx", "rb");
    static unsigned char buf[1 << 16];
    size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;
    if (in) fclose(in);
    CHECK(n > 1000, "read cnn.onnx (%zu bytes)", n);
    const char *half = temp_path("half.onnx"), *empty = temp_path("empty.onnx"), *noise = temp_path("noise.onnx");
    FILE *fp = fopen(half, "wb");
    if (fp) fwrite(buf, 1, n / 2, fp), fclose(fp);
    fp = fopen(empty, "wb");
    if (fp) fclose(fp);
    uint64_t s = 0x9e3779b97f4a7c15u;
    for (size_t k = 0; k < 4096; k++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        buf[k] = (unsigned char)s;
    }
    fp = fopen(noise, "wb");
    if (fp) fwrite(buf, 1, 4096, fp), fclose(fp);
    expect_refusal(half, (const char *const[]){half, "not an ONNX model", NULL});
    expect_refusal(empty, (const char *const[]){empty, "empty file", NULL});
    Graph g;
    int rc = onnx_import(noise, &g);
    CHECK(rc == -1 && strstr(hs_last_error(), noise) && g.num_nodes == 0, "random bytes refused: %s", hs_last_error());
    if (rc == 0) graph_free(&g);
    /* the buffer entry point names what it is given */
    rc = onnx_import_buffer("\x08\x07", 2, "mem.onnx", &g);
    CHECK(rc == -1 && strstr(hs_last_error(), "mem.onnx: ") == hs_last_error(), "buffer: %s", hs_last_error());
    temp_dir_remove();
}

int main(void) {
    test_cnn_matches_builtin(DIR "cnn.onnx");
    test_cnn_matches_builtin(DIR "cnn_eval_folded.onnx");
    test_order();
    test_features(DIR "features.onnx", 0);
    test_features(DIR "features_eval_folded.onnx", 1);
    test_hand_made();
    test_refusals();
    return check_summary("test_onnx_import");
}
