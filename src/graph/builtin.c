/* builtin.c: the built-in networks as graph tables, with PyTorch's state_dict names and parameter order:
 *   cnn       the study's small CNN, torch.nn.Sequential(0 Conv2d(3,5,5), 1 ReLU, 2 MaxPool2d(2),
 *             3 Conv2d(5,5,5), 4 ReLU, 5 MaxPool2d(2), 6 Flatten, 7 Linear(125,30), 8 ReLU, 9 Linear(30,10))
 *   cnn_wide  the same layers wider, for exact spectra past one machine (ScaLAPACK): Conv2d(3,8,5), Conv2d(8,16,5),
 *             Linear(400,H), Linear(H,10); "cnn_wide" has H = 64 (d = 30,138), "cnn_wideH" any H in 1..4096
 *             (cnn_wide16: d = 10,410; cnn_wide32: d = 16,986); d = 3,824 + 411 H + 10
 *   resnet18  torchvision's ResNet-18 (BasicBlock 2-2-2-2) with a 10-way fc
 *   resnet50  torchvision's ResNet-50 (Bottleneck 3-4-6-3) with a 10-way fc
 * all on (3,32,32) images. ResNet: conv1 7x7/2 pad 3 (no bias) -> bn1 -> relu -> maxpool 3x3/2 pad 1 ->
 * layer1..layer4 -> global average pool -> fc; at 32x32 the stages run at 8x8, 4x4, 2x2 and 1x1. */
#include <stdio.h>
#include <string.h>

#include "../core/common.h"
#include "graph.h"

static int build_cnn(Graph *g) {
    int x = graph_conv(g, "0", GRAPH_INPUT, 5, 5, 1, 0, 1, TENSOR_WEIGHT);
    x = graph_maxpool(g, graph_unary(g, GOP_RELU, x), 2, 2, 0);
    x = graph_conv(g, "3", x, 5, 5, 1, 0, 1, TENSOR_WEIGHT);
    x = graph_maxpool(g, graph_unary(g, GOP_RELU, x), 2, 2, 0);
    x = graph_linear(g, "7", graph_flatten(g, x), 30, 1);
    x = graph_linear(g, "9", graph_unary(g, GOP_RELU, x), 10, 1);
    return x < 0 ? -1 : 0;
}

static int build_cnn_wide(Graph *g, int hidden) {
    int x = graph_conv(g, "0", GRAPH_INPUT, 8, 5, 1, 0, 1, TENSOR_WEIGHT);
    x = graph_maxpool(g, graph_unary(g, GOP_RELU, x), 2, 2, 0);
    x = graph_conv(g, "3", x, 16, 5, 1, 0, 1, TENSOR_WEIGHT);
    x = graph_maxpool(g, graph_unary(g, GOP_RELU, x), 2, 2, 0);
    x = graph_linear(g, "7", graph_flatten(g, x), hidden, 1);
    x = graph_linear(g, "9", graph_unary(g, GOP_RELU, x), 10, 1);
    return x < 0 ? -1 : 0;
}

/* The hidden width of "cnn_wide" (64) or "cnn_wideH"; 0 for other names. */
static int cnn_wide_hidden(const char *name) {
    if (strncmp(name, "cnn_wide", 8) != 0) return 0;
    const char *h = name + 8;
    if (!*h) return 64;
    int v = 0;
    for (; *h; h++) {
        if (*h < '0' || *h > '9' || v > 4096) return 0;
        v = v * 10 + (*h - '0');
    }
    return v >= 1 && v <= 4096 && name[8] != '0' ? v : 0;
}

int graph_builtin_exists(const char *name) {
    return strcmp(name, "cnn") == 0 || strcmp(name, "resnet18") == 0 || strcmp(name, "resnet50") == 0 ||
           cnn_wide_hidden(name) > 0;
}

/* conv (no bias) -> batch norm [-> relu]; returns the last node. */
static int conv_bn(Graph *g, const char *prefix, const char *conv, const char *bn, int in, int O, int k, int stride,
                   int pad, int relu) {
    char cn[96], bnn[96];
    snprintf(cn, sizeof cn, "%s%s", prefix, conv);
    snprintf(bnn, sizeof bnn, "%s%s", prefix, bn);
    int x = graph_conv(g, cn, in, O, k, stride, pad, 0, TENSOR_WEIGHT_KAIMING_OUT);
    if (x < 0) return -1;
    x = graph_batchnorm(g, bnn, x);
    return relu && x >= 0 ? graph_unary(g, GOP_RELU, x) : x;
}

static int build_resnet(Graph *g, int bottleneck, const int blocks[4]) {
    int expansion = bottleneck ? 4 : 1, inplanes = 64;
    int x = conv_bn(g, "", "conv1", "bn1", GRAPH_INPUT, 64, 7, 2, 3, 1);
    if (x < 0) return -1;
    x = graph_maxpool(g, x, 3, 2, 1);
    for (int stage = 0; stage < 4; stage++) {
        int planes = 64 << stage;
        for (int b = 0; b < blocks[stage] && x >= 0; b++) {
            int stride = (stage > 0 && b == 0) ? 2 : 1, out = planes * expansion;
            char p[64];
            snprintf(p, sizeof p, "layer%d.%d.", stage + 1, b);
            int y;
            if (bottleneck) {
                y = conv_bn(g, p, "conv1", "bn1", x, planes, 1, 1, 0, 1);
                if (y >= 0) y = conv_bn(g, p, "conv2", "bn2", y, planes, 3, stride, 1, 1);
                if (y >= 0) y = conv_bn(g, p, "conv3", "bn3", y, out, 1, 1, 0, 0);
            } else {
                y = conv_bn(g, p, "conv1", "bn1", x, planes, 3, stride, 1, 1);
                if (y >= 0) y = conv_bn(g, p, "conv2", "bn2", y, planes, 3, 1, 1, 0);
            }
            int identity = x;
            if (y >= 0 && (stride != 1 || inplanes != out))
                identity = conv_bn(g, p, "downsample.0", "downsample.1", x, out, 1, stride, 0, 0);
            if (y < 0 || identity < 0) return -1;
            x = graph_unary(g, GOP_RELU, graph_add(g, y, identity));
            inplanes = out;
        }
    }
    if (x < 0) return -1;
    x = graph_flatten(g, graph_unary(g, GOP_GLOBAL_AVGPOOL, x));
    x = graph_linear(g, "fc", x, 10, 1);
    return x < 0 ? -1 : 0;
}

int graph_builtin(Graph *g, const char *name) {
    static const int blocks18[4] = {2, 2, 2, 2}, blocks50[4] = {3, 4, 6, 3};
    int rc;
    graph_init(g, name, 3, (int64_t[]){3, 32, 32});
    if (strcmp(name, "cnn") == 0) rc = build_cnn(g);
    else if (cnn_wide_hidden(name) > 0) rc = build_cnn_wide(g, cnn_wide_hidden(name));
    else if (strcmp(name, "resnet18") == 0) rc = build_resnet(g, 0, blocks18);
    else if (strcmp(name, "resnet50") == 0) rc = build_resnet(g, 1, blocks50);
    else rc = hs_error("unknown model '%s' (built-in: cnn, cnn_wide[H], resnet18, resnet50; or a .onnx file)", name);
    if (rc == 0) rc = graph_check(g);
    if (rc != 0) graph_free(g);
    return rc;
}
