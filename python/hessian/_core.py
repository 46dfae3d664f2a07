"""_core.py: the Python face of libhessian: Model, Data, Operator and HessianError over the ctypes binding
(_lib.py). numpy arrays in and out; every vector is float64 (the C API's convention) whatever the model's
precision.
"""
import collections
import ctypes
import os

import numpy as np

from . import _lib as L

_lib = None


def lib():
    """The loaded libhessian (ctypes.CDLL), loaded on first use."""
    global _lib
    if _lib is None:
        _lib = L.load()
    return _lib


class HessianError(Exception):
    """A libhessian call failed (or its arguments were refused); the message is hs_last_error()'s."""


def _check(rc):
    if rc != 0:
        msg = lib().hs_last_error()
        raise HessianError(msg.decode("utf-8", "replace") if msg else "libhessian call failed")


def _dptr(a):
    return a.ctypes.data_as(L.P_double)


def _f64(a, name, shape=None):
    """a as a C-contiguous float64 array (a copy only when needed), checked against shape (None: any)."""
    try:
        a = np.ascontiguousarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise HessianError(f"{name}: not a float array ({e})") from None
    if shape is not None and a.shape != tuple(shape):
        raise HessianError(f"{name} has shape {a.shape}; expected {tuple(shape)}")
    return a


def library_version():
    """The version of the loaded libhessian ("0.2.0")."""
    return lib().hs_version().decode()


def set_threads(threads):
    """OpenMP threads for every later call (process-wide); 0: OMP_NUM_THREADS or all cores."""
    _check(lib().hs_set_threads(int(threads)))


def get_threads():
    """The OpenMP threads libhessian uses."""
    return lib().hs_get_threads()


# ---------------------------------------------------------------------------------------------- data

class Data:
    """A data set for a model: inputs X (N, ...) and targets y (N,) or (N, ...), copied into libhessian.

    Integer labels y give the cross-entropy loss; real-valued targets give the squared error
    sum_j (z_j - y_j)^2 per sample. X is float32 or float64 (other dtypes are converted to float64).

        Data(X, y)                       arrays in memory (copied; NaN/inf and negative labels refused)
        Data.from_npy("X.npy", "y.npy")  .npy files
        Data.cifar10(dir, test=False)    CIFAR-10 binaries in dir/cifar-10-batches-bin, normalised as the study
        Data.from_callback(...)          samples produced on request by a Python function
    """

    def __init__(self, X=None, y=None, *, _handle=None, _keep=None):
        self._h = None
        self._keep = _keep
        if _handle is not None:
            self._h = _handle
            return
        if X is None or y is None:
            raise HessianError("Data(X, y) needs both inputs and targets")
        X = np.asarray(X)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        X = np.ascontiguousarray(X)
        y = np.asarray(y)
        if y.dtype == np.int32:
            ttype = L.HS_LABELS_INT32
        elif np.issubdtype(y.dtype, np.integer):
            y, ttype = y.astype(np.int64, copy=False), L.HS_LABELS_INT64
        elif y.dtype == np.float32:
            ttype = L.HS_VALUES_FLOAT32
        elif np.issubdtype(y.dtype, np.floating):
            y, ttype = y.astype(np.float64, copy=False), L.HS_VALUES_FLOAT64
        else:
            raise HessianError(f"targets of dtype {y.dtype}: integer class labels or real values expected")
        y = np.ascontiguousarray(y)
        if X.ndim < 1 or X.ndim > 5 or y.ndim < 1:
            raise HessianError(f"inputs of shape {X.shape} and targets of shape {y.shape}: inputs (N, d1..dk) "
                               f"with 1 <= k <= 4 and targets (N, ...) expected")
        xs = (ctypes.c_int64 * X.ndim)(*X.shape)
        ys = (ctypes.c_int64 * y.ndim)(*y.shape)
        h = ctypes.c_void_p()
        _check(lib().hs_data_from_arrays(X.ctypes.data_as(ctypes.c_void_p),
                                         L.HS_FLOAT32 if X.dtype == np.float32 else L.HS_FLOAT64, X.ndim, xs,
                                         y.ctypes.data_as(ctypes.c_void_p), ttype, y.ndim, ys, ctypes.byref(h)))
        self._h = h

    @classmethod
    def from_npy(cls, inputs_path, targets_path):
        """Inputs X (N, ...) float32/float64 and targets (int labels or real values) from .npy files."""
        h = ctypes.c_void_p()
        _check(lib().hs_data_from_npy(os.fsencode(inputs_path), os.fsencode(targets_path), ctypes.byref(h)))
        return cls(_handle=h)

    @classmethod
    def cifar10(cls, directory, test=False):
        """CIFAR-10 from directory/cifar-10-batches-bin (train: 50,000 images; test=True: 10,000)."""
        h = ctypes.c_void_p()
        _check(lib().hs_data_from_cifar10(os.fsencode(directory), int(bool(test)), ctypes.byref(h)))
        return cls(_handle=h)

    @classmethod
    def from_callback(cls, count, input_shape, fill, classes=None, target_size=None):
        """count samples made on request: fill(indices) -> (inputs (n, *input_shape), targets), targets int
        labels (n,) when classes is given, else real values (n, target_size)."""
        if (classes is None) == (target_size is None):
            raise HessianError("from_callback needs exactly one of classes (labels) or target_size (values)")
        shape = (ctypes.c_int64 * len(input_shape))(*input_shape)
        in_size = int(np.prod(input_shape))
        labels = classes is not None
        state = {"error": None}

        def c_fill(user, indices, n, inputs, targets):
            try:
                idx = np.ctypeslib.as_array(indices, shape=(n,)).copy()
                x, t = fill(idx)
                np.ctypeslib.as_array(inputs, shape=(n * in_size,))[:] = np.asarray(x, np.float64).reshape(-1)
                if labels:
                    out = np.ctypeslib.as_array(ctypes.cast(targets, ctypes.POINTER(ctypes.c_int32)), shape=(n,))
                    out[:] = np.asarray(t).reshape(n)
                else:
                    out = np.ctypeslib.as_array(ctypes.cast(targets, L.P_double), shape=(n * target_size,))
                    out[:] = np.asarray(t, np.float64).reshape(-1)
                return 0
            except Exception as e:  # noqa: BLE001 -- reported through the calling computation
                state["error"] = e
                return 1

        cb = L.FILL_FN(c_fill)
        h = ctypes.c_void_p()
        _check(lib().hs_data_from_callback(int(count), len(input_shape), shape,
                                           L.HS_LABELS_INT32 if labels else L.HS_VALUES_FLOAT64,
                                           int(classes or 0), int(target_size or 0), cb, None, ctypes.byref(h)))
        return cls(_handle=h, _keep=(cb, state))

    def __len__(self):
        return int(lib().hs_data_count(self._h))

    def __del__(self):
        try:
            if self._h is not None:
                lib().hs_data_free(self._h)
                self._h = None
        except Exception:  # noqa: BLE001 -- interpreter shutdown
            pass

    def __repr__(self):
        return f"hessian.Data({len(self)} samples)"


def _as_data(X, y):
    if isinstance(X, Data):
        if y is not None:
            raise HessianError("pass either a Data object or arrays X, y, not both")
        return X
    if y is None:
        raise HessianError("targets y missing (or pass a hessian.Data)")
    return Data(X, y)


def _samples(samples=None, offset=0, indices=None, chunk=None):
    """An hs_samples struct (and the index array it points into, to keep alive), or None for defaults."""
    if samples is None and not offset and indices is None and not chunk:
        return None, None
    s = L.hs_samples()
    idx = None
    if indices is not None:
        idx = np.ascontiguousarray(indices, dtype=np.int64)
        if idx.ndim != 1:
            raise HessianError(f"indices must be one-dimensional (shape {idx.shape})")
        s.indices, s.count = idx.ctypes.data_as(L.P_int64), idx.size
        if samples is not None and samples != idx.size:
            raise HessianError(f"samples={samples} but {idx.size} indices given")
    else:
        s.offset, s.count = int(offset), int(samples or 0)
    s.chunk = int(chunk or 0)
    return s, idx


def _sp(s):
    return ctypes.byref(s) if s is not None else None


def _curv(curvature):
    c = {"hessian": L.HS_HESSIAN, "ggn": L.HS_GGN, "gauss-newton": L.HS_GGN}.get(str(curvature).lower())
    if c is None:
        raise HessianError(f"curvature must be 'hessian' or 'ggn' (got {curvature!r})")
    return c


class Result(tuple):
    """A tuple with named extras as attributes (e.g. values, residuals = m.eigenvalues(...); .steps)."""

    def __new__(cls, items, **extra):
        r = super().__new__(cls, items)
        r.__dict__.update(extra)
        return r


class _Diag(np.ndarray):
    """A diagonal (P,) with .exact_hessian: whether it is also the Hessian's diagonal (else the GGN's only)."""

    def __new__(cls, values, exact_hessian):
        r = np.asarray(values).view(cls)
        r.exact_hessian = exact_hessian
        return r

    def __array_finalize__(self, obj):
        self.exact_hessian = getattr(obj, "exact_hessian", None)


Tensor = collections.namedtuple("Tensor", "name shape offset")
Tensor.__doc__ = "One parameter tensor: PyTorch state_dict name, shape, offset in the parameter vector."
TrainInfo = collections.namedtuple("TrainInfo", "steps loss accuracy")
TrainInfo.__doc__ = "SGD steps taken, mean training loss and accuracy (NaN for real targets) of the last epoch."

# ---------------------------------------------------------------------------------------------- operator

try:
    from scipy.sparse.linalg import LinearOperator as _Base
except ImportError:  # scipy is optional: the operator then offers matvec/matmat/@ itself
    _Base = object


class Operator(_Base):
    """The curvature (Hessian or GGN) of a model's mean loss on some data, as a symmetric operator of size
    dim x dim (a scipy.sparse.linalg.LinearOperator when scipy is installed). Products run batched in
    libhessian: op @ V for V (dim,) or (dim, K); op.apply(V) for V (K, dim) row-major. Keeps its model and data
    alive. Spectral methods: eigenvalues, power, trace, density."""

    def __init__(self, model, data, s, idx, curvature="hessian", batch=None, params=None, seed=0):
        self._h = None
        self.model, self.data = model, data
        opt = L.hs_operator_options()
        opt.curvature, opt.batch, opt.seed = _curv(curvature), int(batch or 0), int(seed)
        self._params = None if params is None else (params if isinstance(params, str) else ",".join(params))
        opt.params = None if self._params is None else self._params.encode()
        self._keep = (s, idx, opt)
        h = ctypes.c_void_p()
        _check(lib().hs_operator_create(model._h, data._h, _sp(s), ctypes.byref(opt), ctypes.byref(h)))
        self._h = h
        self.dim = int(lib().hs_operator_dim(h))
        if _Base is not object:
            super().__init__(dtype=np.float64, shape=(self.dim, self.dim))
        else:
            self.shape, self.dtype = (self.dim, self.dim), np.dtype(np.float64)

    def __del__(self):
        try:
            if self._h is not None:
                lib().hs_operator_free(self._h)
                self._h = None
        except Exception:  # noqa: BLE001
            pass

    def apply(self, V):
        """C V for V (dim,) or (K, dim) (rows are directions); returns the same shape."""
        V = _f64(V, "V")
        one = V.ndim == 1
        V2 = V.reshape(1, -1) if one else V
        if V2.ndim != 2 or V2.shape[1] != self.dim:
            raise HessianError(f"V has shape {V.shape}; expected ({self.dim},) or (K, {self.dim})")
        out = np.empty_like(V2)
        _check(lib().hs_operator_apply(self._h, _dptr(V2), V2.shape[0], _dptr(out)))
        return out.reshape(V.shape)

    # scipy's LinearOperator hooks (columns are directions there)
    def _matvec(self, x):
        return self.apply(np.asarray(x).reshape(-1)).reshape(np.shape(x))

    def _matmat(self, X):
        return np.ascontiguousarray(self.apply(np.ascontiguousarray(np.asarray(X).T)).T)

    def _adjoint(self):
        return self  # symmetric

    if _Base is object:
        def matvec(self, x):
            return self._matvec(x)

        def matmat(self, X):
            return self._matmat(X)

        def __matmul__(self, x):
            x = np.asarray(x)
            return self._matvec(x) if x.ndim == 1 else self._matmat(x)

    @property
    def products(self):
        """Products computed so far (one per direction)."""
        return int(lib().hs_operator_products(self._h))

    @property
    def last_loss(self):
        """The loss of the last product's samples."""
        return float(lib().hs_operator_last_loss(self._h))

    def eigenvalues(self, k=5, which="largest", tol=1e-6, max_steps=100, seed=0, vectors=False):
        """Lanczos (full reorthogonalisation): (values ascending, residuals ||Cv - lambda v||), plus the unit
        eigenvectors (count, dim) with vectors=True. which: 'largest', 'smallest' or 'both' (k at each end).
        The result also carries .steps, .products, .converged."""
        w = {"largest": L.HS_LARGEST, "smallest": L.HS_SMALLEST, "both": L.HS_BOTH}.get(which)
        if w is None:
            raise HessianError(f"which must be 'largest', 'smallest' or 'both' (got {which!r})")
        opt = lib().hs_lanczos_defaults()
        opt.k, opt.which, opt.max_steps, opt.tol, opt.seed = int(k), w, int(max_steps), float(tol), int(seed)
        n = int(k) * (2 if w == L.HS_BOTH else 1)
        vals, res = np.zeros(max(n, 1)), np.zeros(max(n, 1))
        vec = np.zeros((max(n, 1), self.dim)) if vectors else None
        info = L.hs_lanczos_info()
        _check(lib().hs_lanczos(self._h, ctypes.byref(opt), _dptr(vals), _dptr(res),
                                _dptr(vec) if vectors else None, ctypes.byref(info)))
        c = info.count
        items = (vals[:c].copy(), res[:c].copy()) + ((vec[:c].copy(),) if vectors else ())
        return Result(items, steps=info.steps, products=int(info.products), converged=bool(info.converged))

    def power(self, iters=100, tol=1e-4, variant="plain", beta=0.0, seed=0, vector=False):
        """Power iteration: (eigenvalue of largest |lambda|, residual) (+ unit vector with vector=True); .steps.
        variant: 'plain', 'momentum' or 'heavy_ball' (with beta)."""
        var = {"plain": L.HS_POWER_PLAIN, "momentum": L.HS_POWER_MOMENTUM,
               "heavy_ball": L.HS_POWER_HEAVY_BALL}.get(variant)
        if var is None:
            raise HessianError(f"variant must be 'plain', 'momentum' or 'heavy_ball' (got {variant!r})")
        opt = lib().hs_power_defaults()
        opt.iters, opt.tol, opt.variant, opt.beta, opt.seed = int(iters), float(tol), var, float(beta), int(seed)
        lam, res, steps = ctypes.c_double(), ctypes.c_double(), ctypes.c_int()
        vec = np.zeros(self.dim) if vector else None
        _check(lib().hs_power(self._h, ctypes.byref(opt), ctypes.byref(lam), ctypes.byref(res),
                              _dptr(vec) if vector else None, ctypes.byref(steps)))
        return Result((lam.value, res.value) + ((vec,) if vector else ()), steps=steps.value)

    def trace(self, probes=100, method="hutch++", seed=0):
        """Stochastic trace estimate: (trace, standard error); method 'hutch++' (probes >= 4) or 'hutchinson'."""
        m = {"hutch++": L.HS_HUTCHPP, "hutchpp": L.HS_HUTCHPP, "hutchinson": L.HS_HUTCHINSON}.get(method)
        if m is None:
            raise HessianError(f"method must be 'hutch++' or 'hutchinson' (got {method!r})")
        t, se = ctypes.c_double(), ctypes.c_double()
        _check(lib().hs_trace(self._h, m, int(probes), int(seed), ctypes.byref(t), ctypes.byref(se)))
        return Result((t.value, se.value))

    def density(self, runs=4, steps=80, grid=1000, sigma=0.0, seed=0):
        """Spectral density by stochastic Lanczos quadrature: (x, density) on `grid` points; .sigma the width."""
        opt = lib().hs_density_defaults()
        opt.runs, opt.steps, opt.grid, opt.sigma, opt.seed = int(runs), int(steps), int(grid), float(sigma), int(seed)
        x, d, sig = np.zeros(max(int(grid), 1)), np.zeros(max(int(grid), 1)), ctypes.c_double()
        _check(lib().hs_density(self._h, ctypes.byref(opt), _dptr(x), _dptr(d), ctypes.byref(sig)))
        return Result((x, d), sigma=sig.value)

    def __repr__(self):
        return f"<hessian.Operator {self.dim}x{self.dim} on {self.model.name}>"


# ---------------------------------------------------------------------------------------------- model

_PRECISIONS = {"f32": L.HS_FLOAT32, "float32": L.HS_FLOAT32, "f64": L.HS_FLOAT64, "float64": L.HS_FLOAT64}


class Model:
    """A network whose loss libhessian differentiates twice.

        m = hessian.Model("cnn" | "resnet18" | "resnet50" | "path/net.onnx", checkpoint=None, precision="f64",
                          threads=None, seed=0)

    Built-in networks start from PyTorch's default initialisation drawn with `seed`; ONNX files carry their
    weights; checkpoint: a .safetensors file with PyTorch state_dict names. precision 'f32' or 'f64' is the
    arithmetic of the network; every vector in and out is float64. threads sets libhessian's OpenMP threads
    (process-wide). The parameter vector follows PyTorch's model.parameters() order.

    Data arguments: X, y as numpy arrays (integer labels: cross-entropy; real targets: squared error) or a
    hessian.Data as X (y omitted); samples=/offset= or indices= select samples, chunk= the samples per pass.
    """

    def __init__(self, name, checkpoint=None, precision="f64", threads=None, seed=0, batch_stats=False):
        self._h = None
        p = _PRECISIONS.get(str(precision).lower())
        if p is None:
            raise HessianError(f"precision must be 'f32' or 'f64' (got {precision!r})")
        if threads is not None:
            set_threads(threads)
        self.name = os.fspath(name)
        h = ctypes.c_void_p()
        _check(lib().hs_model_create(os.fsencode(name), p, int(seed), ctypes.byref(h)))
        self._h = h
        if checkpoint is not None:
            self.load(checkpoint)
        if batch_stats:
            self.batch_stats = True

    def __del__(self):
        try:
            if self._h is not None:
                lib().hs_model_free(self._h)
                self._h = None
        except Exception:  # noqa: BLE001
            pass

    def __repr__(self):
        return f"hessian.Model({self.name!r}, precision={self.precision!r}, {self.num_params} parameters)"

    # ---- description
    @property
    def precision(self):
        """'f32' or 'f64'."""
        return "f32" if lib().hs_model_precision(self._h) == L.HS_FLOAT32 else "f64"

    @property
    def num_params(self):
        """P, the length of the parameter vector."""
        return int(lib().hs_model_num_params(self._h))

    @property
    def num_outputs(self):
        """Outputs (classes) per sample."""
        return int(lib().hs_model_num_outputs(self._h))

    @property
    def input_shape(self):
        """The per-sample input shape, e.g. (3, 32, 32)."""
        shape = (ctypes.c_int64 * 4)()
        nd = lib().hs_model_input_shape(self._h, shape)
        if nd < 0:
            _check(nd)
        return tuple(int(shape[i]) for i in range(nd))

    def parameters(self):
        """[Tensor(name, shape, offset)] in the parameter vector's order (PyTorch's model.parameters())."""
        out = []
        for i in range(lib().hs_model_num_tensors(self._h)):
            t = L.hs_tensor_info()
            _check(lib().hs_model_tensor(self._h, i, ctypes.byref(t)))
            out.append(Tensor(t.name.decode(), tuple(int(t.shape[j]) for j in range(t.ndim)), int(t.offset)))
        return out

    @property
    def params(self):
        """The parameter vector (P,) float64 (a copy); assign a (P,) array to set it (finite values only)."""
        p = np.empty(self.num_params)
        _check(lib().hs_model_get_params(self._h, _dptr(p)))
        return p

    @params.setter
    def params(self, value):
        v = _f64(value, "params", (self.num_params,))
        _check(lib().hs_model_set_params(self._h, _dptr(v)))

    @property
    def batch_stats(self):
        """Batch norm in second-order calls: False (default) running statistics (eval mode), True batch
        statistics of each chunk."""
        return getattr(self, "_batch_stats", False)

    @batch_stats.setter
    def batch_stats(self, on):
        _check(lib().hs_model_set_batch_stats(self._h, int(bool(on))))
        self._batch_stats = bool(on)

    def load(self, path):
        """Loads a .safetensors checkpoint (PyTorch state_dict names); the model is unchanged on failure."""
        _check(lib().hs_model_load(self._h, os.fsencode(path)))
        return self

    def save(self, path):
        """Saves the parameters and buffers as .safetensors with PyTorch state_dict names."""
        _check(lib().hs_model_save(self._h, os.fsencode(path)))

    def forward(self, X):
        """The network's outputs (n, num_outputs) for inputs X (n, *input_shape), float64."""
        X = _f64(X, "X")
        size = int(np.prod(self.input_shape))
        if X.ndim < 1 or X.size != X.shape[0] * size:
            raise HessianError(f"X has shape {X.shape}; the model takes (n, {', '.join(map(str, self.input_shape))})")
        n = X.shape[0]
        out = np.empty((n, self.num_outputs))
        _check(lib().hs_model_forward(self._h, _dptr(X), n, _dptr(out)))
        return out

    # ---- first and second order
    def loss(self, X, y=None, *, samples=None, offset=0, indices=None, chunk=None, accuracy=False):
        """Mean loss over the samples (float); (loss, accuracy) with accuracy=True (NaN for real targets)."""
        d = _as_data(X, y)
        s, _idx = _samples(samples, offset, indices, chunk)
        loss, acc = ctypes.c_double(), ctypes.c_double()
        _check(lib().hs_loss(self._h, d._h, _sp(s), ctypes.byref(loss), ctypes.byref(acc)))
        return (loss.value, acc.value) if accuracy else loss.value

    def gradient(self, X, y=None, *, samples=None, offset=0, indices=None, chunk=None):
        """The gradient (P,) of the mean loss."""
        d = _as_data(X, y)
        s, _idx = _samples(samples, offset, indices, chunk)
        g = np.empty(self.num_params)
        _check(lib().hs_gradient(self._h, d._h, _sp(s), _dptr(g), None))
        return g

    def hvp(self, X, y=None, V=None, *, curvature="hessian", samples=None, offset=0, indices=None, chunk=None):
        """C V for V (P,) or (K, P) (K directions, one batched pass): the same shape. curvature: 'hessian'
        (default) or 'ggn' (generalised Gauss-Newton)."""
        if V is None:  # hvp(data, V=...) or hvp(data, None, V)
            if isinstance(X, Data) and y is not None:
                X, y, V = X, None, y
            else:
                raise HessianError("hvp needs directions V (P,) or (K, P)")
        d = _as_data(X, y)
        P = self.num_params
        V = _f64(V, "V")
        V2 = V.reshape(1, -1) if V.ndim == 1 else V
        if V2.ndim != 2 or V2.shape[1] != P or V2.shape[0] < 1:
            raise HessianError(f"V has shape {V.shape}; expected ({P},) or (K, {P})")
        s, _idx = _samples(samples, offset, indices, chunk)
        out = np.empty_like(V2)
        _check(lib().hs_hvp(self._h, d._h, _sp(s), _curv(curvature), _dptr(V2), V2.shape[0], _dptr(out)))
        return out.reshape(V.shape)

    def diag(self, X, y=None, *, samples=None, offset=0, indices=None, chunk=None):
        """The exact diagonal (P,) of the generalised Gauss-Newton matrix in one pass; .exact_hessian is True when
        it is also the Hessian's diagonal (networks piecewise linear in each parameter: ReLU, pools, conv,
        linear, eval-mode batch norm). Its sum is the exact trace."""
        d = _as_data(X, y)
        s, _idx = _samples(samples, offset, indices, chunk)
        out = np.empty(self.num_params)
        exact = ctypes.c_int()
        _check(lib().hs_diag(self._h, d._h, _sp(s), _dptr(out), ctypes.byref(exact)))
        return _Diag(out, bool(exact.value))

    def exact(self, X, y=None, *, curvature="hessian", matrix=False, samples=None, offset=0, indices=None,
              chunk=None):
        """All P eigenvalues (ascending) of the full curvature matrix; (eigenvalues, matrix (P,P)) with
        matrix=True. Needs 8 P^2 bytes twice: small networks only."""
        d = _as_data(X, y)
        s, _idx = _samples(samples, offset, indices, chunk)
        P = self.num_params
        ev = np.empty(P)
        mat = np.empty((P, P)) if matrix else None
        _check(lib().hs_exact(self._h, d._h, _sp(s), _curv(curvature), _dptr(mat) if matrix else None, _dptr(ev)))
        return (ev, mat) if matrix else ev

    def operator(self, X, y=None, *, curvature="hessian", batch=None, params=None, seed=0, samples=None,
                 offset=0, indices=None, chunk=None):
        """The curvature as an Operator (a scipy LinearOperator): batch > 0 makes it stochastic (each product on
        a new batch of that many samples; seed); params restricts it to a block of tensors (names or prefixes,
        a list or a comma-separated string). It keeps the model and the data alive."""
        d = _as_data(X, y)
        s, idx = _samples(samples, offset, indices, chunk)
        return Operator(self, d, s, idx, curvature=curvature, batch=batch, params=params, seed=seed)

    def _op(self, X, y, kw):
        okeys = ("curvature", "batch", "params", "samples", "offset", "indices", "chunk")
        return self.operator(X, y, **{k: kw.pop(k) for k in okeys if k in kw}, seed=kw.pop("batch_seed", 0))

    def eigenvalues(self, X, y=None, k=5, which="largest", tol=1e-6, **kw):
        """Top/bottom eigenvalues by Lanczos: (values ascending, residuals) (+ vectors (count, P) with
        vectors=True). Also curvature=, batch=, params=, samples=, indices=, chunk=, max_steps=, seed=."""
        op = self._op(X, y, kw)
        return op.eigenvalues(k=k, which=which, tol=tol, **kw)

    def power(self, X, y=None, iters=100, tol=1e-4, **kw):
        """Dominant eigenvalue by power iteration: (eigenvalue, residual) (+ vector with vector=True).
        Also variant=, beta=, seed=, curvature=, batch=, params=, samples=, indices=, chunk=."""
        op = self._op(X, y, kw)
        return op.power(iters=iters, tol=tol, **kw)

    def trace(self, X, y=None, probes=100, method="hutch++", **kw):
        """Trace estimate of the curvature: (trace, std_error). Also seed=, curvature=, samples=, ...."""
        op = self._op(X, y, kw)
        return op.trace(probes=probes, method=method, **kw)

    def density(self, X, y=None, **kw):
        """Spectral density (x, density) by stochastic Lanczos quadrature: runs=4, steps=80, grid=1000,
        sigma=0 (automatic), seed=0; also curvature=, batch=, samples=, ...."""
        op = self._op(X, y, kw)
        return op.density(**kw)

    def train(self, X, y=None, *, epochs=1, batch=100, lr=0.01, momentum=0.9, weight_decay=0.0, augment=False,
              samples=0, seed=0):
        """SGD (PyTorch semantics, batch norm in training mode) on the data: TrainInfo(steps, loss, accuracy)
        of the last epoch. augment: random crop and flip (CIFAR-10 data only)."""
        d = _as_data(X, y)
        opt = lib().hs_train_defaults()
        opt.epochs, opt.batch, opt.lr, opt.momentum = int(epochs), int(batch), float(lr), float(momentum)
        opt.weight_decay, opt.augment, opt.samples, opt.seed = float(weight_decay), int(bool(augment)), int(samples), int(seed)
        info = L.hs_train_info()
        _check(lib().hs_train(self._h, d._h, ctypes.byref(opt), ctypes.byref(info)))
        return TrainInfo(int(info.steps), info.loss, info.accuracy)
