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

/* Writes atomically (temporary file then rename). */
int npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape);
int npy_write_f64(const char *path, const double *data, int ndim, const int64_t *shape);

#endif
