/* shapes.c: the precision-independent setup of the ops (shapes.h): output sizes of convolution and pooling
 * windows (PyTorch's rules) and the broadcasting plan of the binary ops. Compiled once (the Makefile keeps it
 * out of the per-precision builds of src/ops). */
#include "shapes.h"

#include <stdio.h>
#include <string.h>

#include "../core/common.h"

/* ---------------------------------------------------------------- conv2d */

/* floor((in + pads - extent) / stride) + 1 output positions, 0 when the window does not fit. */
static int conv_out_size(int in, int extent, int stride, int pads) {
    int span = in + pads - extent;
    return span < 0 || stride < 1 ? 0 : span / stride + 1;
}

ConvShape conv2d_shape_general(int C, int H, int W, int O, int kh, int kw, int groups, int stride_h, int stride_w,
                               int dil_h, int dil_w, int pad_t, int pad_l, int pad_b, int pad_r) {
    ConvShape s;
    memset(&s, 0, sizeof s);
    s.C = C, s.H = H, s.W = W, s.O = O;
    s.kh = kh, s.kw = kw, s.groups = groups;
    s.stride_h = stride_h, s.stride_w = stride_w, s.dil_h = dil_h, s.dil_w = dil_w;
    s.pad_t = pad_t, s.pad_l = pad_l, s.pad_b = pad_b, s.pad_r = pad_r;
    s.k = kh, s.stride = stride_h, s.pad = pad_t;
    s.Ho = conv_out_size(H, dil_h * (kh - 1) + 1, stride_h, pad_t + pad_b);
    s.Wo = conv_out_size(W, dil_w * (kw - 1) + 1, stride_w, pad_l + pad_r);
    return s;
}

ConvShape conv2d_shape(int C, int H, int W, int O, int k, int stride, int pad) {
    return conv2d_shape_general(C, H, W, O, k, k, 1, stride, stride, 1, 1, pad, pad, pad, pad);
}

/* ---------------------------------------------------------------- pooling */

/* Output positions along one axis, PyTorch's pooling_output_shape_pad_lr (dilation 1); 0 when none fits. */
static int pool_out_size(int in, int k, int stride, int pad_lo, int pad_hi, int ceil_mode) {
    int span = in + pad_lo + pad_hi - k;
    if (span < 0 || stride < 1) return 0;
    int out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad_lo) out--; /* the last window starts inside input or pad_lo */
    return out;
}

PoolShape pool_shape_general(int C, int H, int W, int kh, int kw, int stride_h, int stride_w, int pad_t, int pad_l,
                             int pad_b, int pad_r, int ceil_mode, int count_include_pad) {
    PoolShape s;
    memset(&s, 0, sizeof s);
    s.C = C, s.H = H, s.W = W;
    s.kh = kh, s.kw = kw, s.stride_h = stride_h, s.stride_w = stride_w;
    s.pad_t = pad_t, s.pad_l = pad_l, s.pad_b = pad_b, s.pad_r = pad_r;
    s.ceil_mode = ceil_mode, s.count_include_pad = count_include_pad;
    s.k = kh, s.stride = stride_h, s.pad = pad_t;
    s.Ho = pool_out_size(H, kh, stride_h, pad_t, pad_b, ceil_mode);
    s.Wo = pool_out_size(W, kw, stride_w, pad_l, pad_r, ceil_mode);
    return s;
}

PoolShape maxpool_shape(int C, int H, int W, int k, int stride, int pad) {
    return pool_shape_general(C, H, W, k, k, stride, stride, pad, pad, pad, pad, 0, 1);
}

/* ---------------------------------------------------------------- binary ops */

static void shape_str(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t len = 0;
    buf[0] = 0;
    len += (size_t)snprintf(buf + len, size - len, "(");
    for (int d = 0; d < ndim && len < size; d++)
        len += (size_t)snprintf(buf + len, size - len, d ? ",%lld" : "%lld", (long long)shape[d]);
    if (len < size) snprintf(buf + len, size - len, ")");
}

int binary_setup(Binary *op, BinaryKind kind, int a_ndim, const int64_t *a_shape, int a_batched, int b_ndim,
                 const int64_t *b_shape, int b_batched) {
    if (kind < BIN_ADD || kind > BIN_DIV) return hs_error("binary op: unknown kind %d", (int)kind);
    if (a_ndim < 0 || a_ndim > 4 || b_ndim < 0 || b_ndim > 4)
        return hs_error("binary op: operands of %d and %d dimensions per sample (at most 4 supported)", a_ndim,
                        b_ndim);
    memset(op, 0, sizeof *op);
    op->kind = kind, op->a_batched = a_batched != 0, op->b_batched = b_batched != 0;
    int nd = a_ndim > b_ndim ? a_ndim : b_ndim;
    int64_t sa[4], sb[4];
    for (int d = 0; d < nd; d++) {
        int ia = d - (nd - a_ndim), ib = d - (nd - b_ndim);
        sa[d] = ia >= 0 ? a_shape[ia] : 1, sb[d] = ib >= 0 ? b_shape[ib] : 1;
        if (sa[d] < 1 || sb[d] < 1 || (sa[d] != sb[d] && sa[d] != 1 && sb[d] != 1)) {
            char as[96], bs[96];
            shape_str(as, sizeof as, a_ndim, a_shape), shape_str(bs, sizeof bs, b_ndim, b_shape);
            return hs_error("binary op: per-sample shapes %s and %s do not broadcast", as, bs);
        }
        op->out_shape[d] = sa[d] > sb[d] ? sa[d] : sb[d];
    }
    op->ndim = nd;
    size_t na = 1, nb = 1, no = 1;
    for (int d = nd - 1; d >= 0; d--) {
        op->a_stride[d] = sa[d] == 1 ? 0 : (int64_t)na;
        op->b_stride[d] = sb[d] == 1 ? 0 : (int64_t)nb;
        na *= (size_t)sa[d], nb *= (size_t)sb[d], no *= (size_t)op->out_shape[d];
    }
    op->a_size = na, op->b_size = nb, op->out_size = no;
    return 0;
}
