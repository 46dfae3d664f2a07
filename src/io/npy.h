/* npy.h: NumPy .npy files (format versions 1.0-3.0 read, 1.0 written) for vectors and matrices:
 * little-endian float32 ('<f4') or float64 ('<f8'), C order. Errors go through hs_error(). */
#ifndef HS_NPY_H
#define HS_NPY_H

#include <stdint.h>

#define NPY_MAX_DIMS 8

typedef struct {
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    int64_t numel;
    double *data; /* converted to double, C order */
    int word_size; /* 4 or 8: the dtype found in the file */
} NpyArray;

/* Reads a float32 or float64 array (converted to double). Rejects: missing or non-regular file, bad magic,
 * unsupported version, malformed header dict, big-endian or non-float dtype, fortran_order True, truncated
 * data (the shape is checked against the file size before anything is allocated), NaN or infinite values. */
int npy_read(const char *path, NpyArray *arr);
void npy_free(NpyArray *arr);

typedef enum { NPY_F32, NPY_F64, NPY_I32, NPY_I64 } NpyDtype;

typedef struct {
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    int64_t numel;
    NpyDtype dtype;
    int word_size;  /* 4 or 8 */
    void *data;     /* (numel) values as stored: little-endian, C order, dtype; malloc'd */
} NpyRaw;

/* Reads a float32, float64, int32 or int64 array as stored (no conversion). The same checks as npy_read,
 * except that values are not checked (the caller checks what it needs, e.g. finiteness or label ranges). */
int npy_read_raw(const char *path, NpyRaw *arr);
void npy_raw_free(NpyRaw *arr);
/* "float32", "float64", "int32", "int64". */
const char *npy_dtype_name(NpyDtype dtype);

/* Writes atomically (temporary file then rename). */
int npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape);
int npy_write_f64(const char *path, const double *data, int ndim, const int64_t *shape);

#endif
