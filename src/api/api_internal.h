/* api_internal.h: the precision-generic half of the public API (src/api/generic/api_generic.c, compiled as
 * *_f32 and *_f64), called by the dispatcher src/api/api.c with the model as void* (a Model of that precision).
 * Sample selections arrive resolved and checked (indices (count) in range, distinct); vectors are float64. */
#ifndef HS_API_INTERNAL_H
#define HS_API_INTERNAL_H

#include <stdint.h>

#include "../../include/hessian.h"
#include "../data/samples.h"
#include "../spectral/linop.h"

typedef struct {
    int64_t num_params;
    int outputs, in_ndim, num_tensors;
    int64_t in_shape[4];
    size_t in_size;
} ApiModelInfo;

/* The samples of a computation: source and indices (count), chunk (0: automatic). */
typedef struct {
    const SampleSource *source;
    const int *indices;
    int count, chunk;
} ApiSamples;

/* A Hessian operator (HessianOperator of the model's precision) and its LinOp. */
typedef struct {
    void *hop;
    LinOp op;
} ApiOperator;

#define HS_API_GENERIC_DECLS(S)                                                                                       \
    int api_model_create_##S(const char *name, uint64_t seed, void **out);                                          \
    void api_model_free_##S(void *m);                                                                               \
    int api_model_load_##S(void *m, const char *path);                                                              \
    int api_model_save_##S(const void *m, const char *path);                                                        \
    void api_model_info_##S(const void *m, ApiModelInfo *info);                                                     \
    void api_model_tensor_##S(const void *m, int index, hs_tensor_info *info);                                       \
    void api_model_get_params_##S(const void *m, double *params /* (P) */);                                         \
    void api_model_set_params_##S(void *m, const double *params /* (P) */);                                         \
    void api_model_set_batch_stats_##S(void *m, int batch_stats);                                                   \
    int api_model_forward_##S(void *m, const double *x /* (n, in_size) */, int64_t n, double *out /* (n, C) */);    \
    int api_check_source_##S(void *m, const SampleSource *src);                                                     \
    int api_loss_grad_##S(void *m, const ApiSamples *s, double *loss, double *accuracy, double *grad /* (P) */);    \
    int api_hvp_##S(void *m, const ApiSamples *s, hs_curvature c, const double *v /* (K,P) */, int K,               \
                    double *hv /* (K,P) */);                                                                         \
    int api_exact_##S(void *m, const ApiSamples *s, hs_curvature c, double *H /* (P,P) */);                         \
    int api_diag_##S(void *m, const ApiSamples *s, double *diag /* (P) */, int *exact_hessian);                     \
    int api_operator_create_##S(void *m, const ApiSamples *s, const hs_operator_options *opt, ApiOperator *out);    \
    void api_operator_free_##S(ApiOperator *op);                                                                    \
    void api_operator_stats_##S(const ApiOperator *op, int64_t *products, double *last_loss);                       \
    int api_train_##S(void *m, const SampleSource *src, int count, const hs_train_options *opt, hs_train_info *info);

HS_API_GENERIC_DECLS(f32)
HS_API_GENERIC_DECLS(f64)

#endif
