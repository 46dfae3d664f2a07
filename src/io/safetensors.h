/* safetensors.h: read and write safetensors files (the Hugging Face format PyTorch users exchange
 * checkpoints in): 8-byte little-endian header length, a JSON header mapping tensor names to
 * {"dtype", "shape", "data_offsets"} plus an optional "__metadata__" string map, then the raw
 * little-endian tensor bytes. Every header field is validated; errors go through hs_error(). */
#ifndef HS_SAFETENSORS_H
#define HS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ST_F32, ST_F64, ST_F16, ST_BF16, ST_I64, ST_I32, ST_U8 } StDtype;

#define ST_MAX_DIMS 8

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    size_t begin, end; /* byte offsets into the data section */
} StTensor;

typedef struct {
    int count;
    StTensor *tensors;
    int meta_count;
    char **meta_keys, **meta_values;
    uint8_t *data; /* the data section */
    size_t data_size;
    char *path; /* the file read, for messages (e.g. from safetensors_expect_shape) */
} SafeTensors;

/* Reads and validates a whole file. On error returns -1 with a message naming the file and the problem
 * (missing file, truncated, bad JSON, unknown dtype, offsets past the end or overlapping, shape/size
 * mismatch). */
int safetensors_read(const char *path, SafeTensors *st);
void safetensors_free(SafeTensors *st);
/* NULL when absent. */
const StTensor *safetensors_find(const SafeTensors *st, const char *name);
/* NULL when absent. */
const char *safetensors_meta(const SafeTensors *st, const char *key);
/* Converts a floating tensor (F32, F64, F16, BF16) to float or double; -1 for other dtypes. */
int safetensors_to_f32(const SafeTensors *st, const StTensor *t, float *out /* (numel) */);
int safetensors_to_f64(const SafeTensors *st, const StTensor *t, double *out /* (numel) */);
/* Checks that tensor `name` exists with exactly this shape; message names expected and found shapes. */
int safetensors_expect_shape(const SafeTensors *st, const char *name, int ndim, const int64_t *shape,
                             const StTensor **found);

typedef struct {
    const char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data; /* numel elements of dtype */
} StWriteTensor;

/* Writes tensors in the given order (offsets ascending) plus optional string metadata, atomically
 * (temporary file in the same folder, then rename), so a failed write never leaves a half file. */
int safetensors_write(const char *path, const StWriteTensor *tensors, int count, const char *const *meta_keys,
                      const char *const *meta_values, int meta_count);

const char *safetensors_dtype_name(StDtype dtype);
size_t safetensors_dtype_size(StDtype dtype);

#endif
