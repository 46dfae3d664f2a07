"""_lib.py: finds and loads libhessian (ctypes) and declares the C API of include/hessian.h.

Search order: a libhessian.so* bundled in this package (pip install from a checkout builds and copies it),
then the environment variable HESSIAN_LIBRARY (a path to the .so), then `pkg-config --variable=libdir hessian`,
then ctypes.util.find_library("hessian").
"""
import ctypes
import ctypes.util
import glob
import os
import subprocess

c_int, c_int64, c_uint64, c_double, c_char_p, c_void_p = (ctypes.c_int, ctypes.c_int64, ctypes.c_uint64,
                                                         ctypes.c_double, ctypes.c_char_p, ctypes.c_void_p)
P_double = ctypes.POINTER(c_double)
P_int64 = ctypes.POINTER(c_int64)

HS_FLOAT32, HS_FLOAT64 = 4, 8
HS_HESSIAN, HS_GGN = 0, 1
HS_LABELS_INT32, HS_LABELS_INT64, HS_VALUES_FLOAT32, HS_VALUES_FLOAT64 = 1, 2, 3, 4
HS_LARGEST, HS_SMALLEST, HS_BOTH = 0, 1, 2
HS_POWER_PLAIN, HS_POWER_MOMENTUM, HS_POWER_HEAVY_BALL = 0, 1, 2
HS_HUTCHINSON, HS_HUTCHPP = 0, 1


class hs_tensor_info(ctypes.Structure):
    _fields_ = [("name", c_char_p), ("ndim", c_int), ("shape", c_int64 * 4), ("offset", c_int64),
                ("numel", c_int64)]


class hs_samples(ctypes.Structure):
    _fields_ = [("indices", P_int64), ("offset", c_int64), ("count", c_int64), ("chunk", c_int)]


class hs_operator_options(ctypes.Structure):
    _fields_ = [("curvature", c_int), ("batch", c_int), ("seed", c_uint64), ("params", c_char_p)]


class hs_lanczos_options(ctypes.Structure):
    _fields_ = [("k", c_int), ("which", c_int), ("max_steps", c_int), ("tol", c_double), ("seed", c_uint64)]


class hs_lanczos_info(ctypes.Structure):
    _fields_ = [("count", c_int), ("steps", c_int), ("products", c_int64), ("converged", c_int)]


class hs_power_options(ctypes.Structure):
    _fields_ = [("iters", c_int), ("tol", c_double), ("variant", c_int), ("beta", c_double), ("seed", c_uint64)]


class hs_density_options(ctypes.Structure):
    _fields_ = [("runs", c_int), ("steps", c_int), ("grid", c_int), ("sigma", c_double), ("seed", c_uint64)]


class hs_train_options(ctypes.Structure):
    _fields_ = [("epochs", c_int), ("batch", c_int), ("lr", c_double), ("momentum", c_double),
                ("weight_decay", c_double), ("augment", c_int), ("samples", c_int64), ("seed", c_uint64)]


class hs_train_info(ctypes.Structure):
    _fields_ = [("steps", c_int64), ("loss", c_double), ("accuracy", c_double)]


# hs_fill_fn: int (*)(void *user, const int64_t *indices, int n, double *inputs, void *targets)
FILL_FN = ctypes.CFUNCTYPE(c_int, c_void_p, P_int64, c_int, P_double, c_void_p)

P = ctypes.POINTER
# name: (restype, argtypes)
_PROTOTYPES = {
    "hs_version": (c_char_p, []),
    "hs_last_error": (c_char_p, []),
    "hs_set_threads": (c_int, [c_int]),
    "hs_get_threads": (c_int, []),
    "hs_model_create": (c_int, [c_char_p, c_int, c_uint64, P(c_void_p)]),
    "hs_model_free": (None, [c_void_p]),
    "hs_model_load": (c_int, [c_void_p, c_char_p]),
    "hs_model_save": (c_int, [c_void_p, c_char_p]),
    "hs_model_precision": (c_int, [c_void_p]),
    "hs_model_num_params": (c_int64, [c_void_p]),
    "hs_model_num_outputs": (c_int, [c_void_p]),
    "hs_model_input_shape": (c_int, [c_void_p, c_int64 * 4]),
    "hs_model_num_tensors": (c_int, [c_void_p]),
    "hs_model_tensor": (c_int, [c_void_p, c_int, P(hs_tensor_info)]),
    "hs_model_get_params": (c_int, [c_void_p, P_double]),
    "hs_model_set_params": (c_int, [c_void_p, P_double]),
    "hs_model_set_batch_stats": (c_int, [c_void_p, c_int]),
    "hs_model_forward": (c_int, [c_void_p, P_double, c_int64, P_double]),
    "hs_data_from_arrays": (c_int, [c_void_p, c_int, c_int, P_int64, c_void_p, c_int, c_int, P_int64,
                                    P(c_void_p)]),
    "hs_data_from_npy": (c_int, [c_char_p, c_char_p, P(c_void_p)]),
    "hs_data_from_cifar10": (c_int, [c_char_p, c_int, P(c_void_p)]),
    "hs_data_from_callback": (c_int, [c_int64, c_int, P_int64, c_int, c_int, c_int64, FILL_FN, c_void_p,
                                      P(c_void_p)]),
    "hs_data_count": (c_int64, [c_void_p]),
    "hs_data_free": (None, [c_void_p]),
    "hs_loss": (c_int, [c_void_p, c_void_p, P(hs_samples), P_double, P_double]),
    "hs_gradient": (c_int, [c_void_p, c_void_p, P(hs_samples), P_double, P_double]),
    "hs_hvp": (c_int, [c_void_p, c_void_p, P(hs_samples), c_int, P_double, c_int, P_double]),
    "hs_exact": (c_int, [c_void_p, c_void_p, P(hs_samples), c_int, P_double, P_double]),
    "hs_diag": (c_int, [c_void_p, c_void_p, P(hs_samples), P_double, P(c_int)]),
    "hs_operator_create": (c_int, [c_void_p, c_void_p, P(hs_samples), P(hs_operator_options), P(c_void_p)]),
    "hs_operator_free": (None, [c_void_p]),
    "hs_operator_dim": (c_int64, [c_void_p]),
    "hs_operator_apply": (c_int, [c_void_p, P_double, c_int, P_double]),
    "hs_operator_products": (c_int64, [c_void_p]),
    "hs_operator_last_loss": (c_double, [c_void_p]),
    "hs_lanczos_defaults": (hs_lanczos_options, []),
    "hs_lanczos": (c_int, [c_void_p, P(hs_lanczos_options), P_double, P_double, P_double, P(hs_lanczos_info)]),
    "hs_power_defaults": (hs_power_options, []),
    "hs_power": (c_int, [c_void_p, P(hs_power_options), P_double, P_double, P_double, P(c_int)]),
    "hs_trace": (c_int, [c_void_p, c_int, c_int, c_uint64, P_double, P_double]),
    "hs_density_defaults": (hs_density_options, []),
    "hs_density": (c_int, [c_void_p, P(hs_density_options), P_double, P_double, P_double]),
    "hs_train_defaults": (hs_train_options, []),
    "hs_train": (c_int, [c_void_p, c_void_p, P(hs_train_options), P(hs_train_info)]),
}


def _candidates():
    here = os.path.dirname(os.path.abspath(__file__))
    bundled = sorted(glob.glob(os.path.join(here, "libhessian.so*")))
    for path in bundled:
        yield path, "bundled with the package"
    env = os.environ.get("HESSIAN_LIBRARY")
    if env:
        yield env, "HESSIAN_LIBRARY"
    try:
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "hessian"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        libdir = ""
    if libdir:
        for name in ("libhessian.so.0", "libhessian.so"):
            if os.path.exists(os.path.join(libdir, name)):
                yield os.path.join(libdir, name), "pkg-config"
    found = ctypes.util.find_library("hessian")
    if found:
        yield found, "ctypes.util.find_library"


def load():
    """Loads libhessian and declares its functions; raises OSError naming every place that was tried."""
    tried = []
    for path, how in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({how}): {e}")
            continue
        missing = [name for name in _PROTOTYPES if not hasattr(lib, name)]
        if missing:
            tried.append(f"{path} ({how}): lacks {', '.join(missing[:5])}")
            continue
        for name, (restype, argtypes) in _PROTOTYPES.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        lib.path = path
        return lib
    raise OSError("libhessian not found: install the package from a checkout (pip install ./python), set "
                  "HESSIAN_LIBRARY to libhessian.so, or install the library where pkg-config or the loader finds "
                  "it" + ("; tried: " + "; ".join(tried) if tried else ""))
