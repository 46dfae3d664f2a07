"""peers.py: PyTorch 2.x and the peer tools (curvlinops, PyHessian, hessian-eigenthings, BackPACK) on hessian's
benchmark problem, one JSON line per row, for bench/run_peers.sh to set beside hessian's own rows.

    $HOME/.venv-torch2/bin/python bench/peers.py --data DIR --checkpoint CKPT [--samples 1000] [--threads 2]
        [--reference EXACT.json] [--reference-diag DIAG.npy] [--only ROW,ROW] [--quick]

The problem: model `cnn` (5,100 parameters), the mean cross-entropy on CIFAR-10 training images
offset..offset+samples-1, a safetensors checkpoint written by `hessian train`, float32, CPU,
torch.set_num_threads(--threads). Every line:
    {"row", "tool", "method", "seconds", "hvps", "error", "notes", "status", "torch", "threads", "samples", ...}
status is "ok", "failed" (the exception is in "failure") or "not installed"; a peer's failure never stops the
others. "hvps" counts Hessian-vector products (columns of matrix products included); "error" is measured
against hessian's float64 exact reference (--reference, the JSON of `hessian exact --precision f64`):
    top5/bottom5   max |lambda_i - lambda_i(ref)| over the 5 eigenvalues, over |lambda_max(ref)|
    trace-*        |trace - trace(ref)| / |trace(ref)|  (BackPACK: also the max diagonal error, --reference-diag)
Rows (--only picks some): gradient, hvp, hessian-eig, top5, bottom5, trace-hutchinson, trace-hutchpp,
trace-exact, density. Progress goes to stderr.
"""
import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
import traceback

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnn_common import NUM_PARAMS, flat, load_checkpoint, load_train_selection, make_cnn, normalise, unflat  # noqa: E402

ROWS = ["gradient", "hvp", "hessian-eig", "top5", "bottom5", "trace-hutchinson", "trace-hutchpp", "trace-exact",
        "density"]


def log(s):
    print(f"peers: {s}", file=sys.stderr, flush=True)


class Problem:
    """The model, data and reference shared by every row; each row gets a fresh model (peers that extend
    models or fill .grad must not see each other's state)."""

    def __init__(self, args):
        self.args = args
        labels, pixels = load_train_selection(args.data, args.offset, args.samples)
        self.X = normalise(pixels, torch.float32)
        self.y = torch.from_numpy(labels.astype(np.int64))
        self.ref = json.load(open(args.reference)) if args.reference else None
        self.ref_diag = np.load(args.reference_diag) if args.reference_diag else None

    def model(self):
        m = make_cnn()
        load_checkpoint(m, self.args.checkpoint)
        return m.to(torch.float32).eval()

    def functional(self):
        """(loss(params dict), params dict of detached tensors) for torch.func."""
        from torch.func import functional_call
        m = self.model()
        params = {k: v.detach() for k, v in m.named_parameters()}
        X, y = self.X, self.y

        def loss(p):
            return F.cross_entropy(functional_call(m, p, (X,)), y)
        return loss, params

    # errors against the float64 reference
    def eig_error(self, values, which):
        if self.ref is None:
            return None
        v = np.sort(np.asarray(values, dtype=np.float64))
        if which == "largest":
            ref = np.sort(self.ref["eigenvalues_largest"])[::-1]
            v = v[::-1]
        else:
            ref = np.sort(self.ref["eigenvalues_smallest"])
        n = min(len(v), len(ref), self.args.k)
        scale = max(abs(x) for x in self.ref["eigenvalues_largest"] + self.ref["eigenvalues_smallest"])
        return float(np.max(np.abs(v[:n] - ref[:n])) / scale)

    def trace_error(self, t):
        if self.ref is None:
            return None
        return float(abs(float(t) - self.ref["trace"]) / abs(self.ref["trace"]))


def timed(fn, repeats):
    """Median of `repeats` calls after one warm-up call; returns (median, all times, last result)."""
    out = fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), ts, out


class Counter:
    """Counts Hessian-vector products: add(k) for a product with k columns."""

    def __init__(self):
        self.n = 0

    def add(self, k=1):
        self.n += int(k)


def ref_hvp(pb, v):
    """Double-backward HVP (the plain autograd reference for the other HVP rows)."""
    m = pb.model()
    params = list(m.parameters())
    g = torch.autograd.grad(F.cross_entropy(m(pb.X), pb.y), params, create_graph=True)
    return flat(torch.autograd.grad(g, params, grad_outputs=unflat(v, params)))


# ---------------------------------------------------------------------------------------------- PyTorch rows
def grad_autograd(pb):
    m = pb.model()
    params = list(m.parameters())
    med, ts, _ = timed(lambda: torch.autograd.grad(F.cross_entropy(m(pb.X), pb.y), params), pb.args.repeats)
    return {"seconds": med, "hvps": 0, "all_seconds": ts, "notes": "forward + backward, median"}


def grad_compiled(pb):
    from torch.func import grad
    loss, params = pb.functional()
    g = torch.compile(grad(loss))
    t = time.perf_counter()
    g(params)
    compile_s = time.perf_counter() - t
    med, ts, _ = timed(lambda: g(params), pb.args.repeats)
    return {"seconds": med, "hvps": 0, "compile_seconds": compile_s, "all_seconds": ts,
            "notes": "torch.compile(torch.func.grad(loss)); steady-state median, compile time apart"}


def hvp_vector():
    return torch.randn(NUM_PARAMS, generator=torch.Generator().manual_seed(0))


def hvp_double_backward(pb):
    m = pb.model()
    params = list(m.parameters())
    vs = unflat(hvp_vector(), params)

    def run():
        g = torch.autograd.grad(F.cross_entropy(m(pb.X), pb.y), params, create_graph=True)
        return torch.autograd.grad(g, params, grad_outputs=vs)
    med, ts, _ = timed(run, pb.args.repeats)
    return {"seconds": med, "hvps": 1, "all_seconds": ts,
            "notes": "forward + backward(create_graph) + second backward, from scratch, median"}


def func_hvp(pb):
    """hvp(v) = jvp(grad(loss), params, v): forward-over-reverse with torch.func."""
    from torch.func import grad, jvp
    loss, params = pb.functional()
    g = grad(loss)

    def hvp(v):
        return jvp(g, (params,), (v,))[1]
    names = list(params)
    return hvp, params, names


def _as_dict(vflat, params):
    return dict(zip(params, unflat(vflat, list(params.values()))))


def hvp_func(pb, compiled=False):
    hvp, params, names = func_hvp(pb)
    v = hvp_vector()
    vd = _as_dict(v, params)
    fn = torch.compile(hvp) if compiled else hvp
    res = {}
    if compiled:
        t = time.perf_counter()
        fn(vd)
        res["compile_seconds"] = time.perf_counter() - t
    med, ts, out = timed(lambda: fn(vd), pb.args.repeats)
    diff = (flat([out[k] for k in names]) - ref_hvp(pb, v)).abs().max().item()
    res.update({"seconds": med, "hvps": 1, "all_seconds": ts, "max_abs_diff_vs_double_backward": diff,
                "notes": ("torch.compile(" if compiled else "") + "torch.func jvp(grad(loss))" +
                (") steady-state median, compile time apart" if compiled else ", median")})
    return res


def hessian_eig_vmap(pb):
    """Full Hessian by vmap(jvp(grad)) over batches of unit vectors, timed on a few batches and extrapolated
    to all 5,100 columns, plus torch.linalg.eigvalsh on a 5,100 x 5,100 float32 symmetric matrix."""
    from torch.func import vmap
    hvp, params, names = func_hvp(pb)
    cols, nb = pb.args.vmap_cols, pb.args.vmap_batches

    def batch(start):
        idx = torch.arange(start, start + cols) % NUM_PARAMS
        E = torch.zeros(cols, NUM_PARAMS)
        E[torch.arange(cols), idx] = 1
        out = vmap(lambda e: hvp(_as_dict(e, params)))(E)
        return torch.cat([out[k].reshape(cols, -1) for k in names], 1)
    first = batch(0)  # warm-up, also a check against double backward
    diff = (first[0] - ref_hvp(pb, torch.eye(1, NUM_PARAMS)[0])).abs().max().item()
    starts = np.linspace(0, NUM_PARAMS - cols, nb).round().astype(int)
    t = time.perf_counter()
    for s in starts:
        batch(int(s))
    per_col = (time.perf_counter() - t) / (nb * cols)
    g = torch.Generator().manual_seed(0)
    A = torch.randn(NUM_PARAMS, NUM_PARAMS, generator=g)
    A = (A + A.T) / 2
    t = time.perf_counter()
    torch.linalg.eigvalsh(A)
    eig_s = time.perf_counter() - t
    matrix_s = per_col * NUM_PARAMS
    return {"seconds": matrix_s + eig_s, "hvps": NUM_PARAMS, "extrapolated": True, "seconds_matrix": matrix_s,
            "seconds_eigenvalues": eig_s, "columns_timed": int(nb * cols), "columns_per_vmap": cols,
            "max_abs_diff_vs_double_backward": diff,
            "notes": f"extrapolated: {nb} vmap batches of {cols} columns timed, x 5100; eigvalsh (f32) timed "
                     f"on a random symmetric 5100x5100 matrix"}


# ------------------------------------------------------------------------------------------- curvlinops rows
def curvlinops_op(pb):
    from curvlinops import HessianLinearOperator
    m = pb.model()
    params = [p for p in m.parameters() if p.requires_grad]
    bs = pb.args.curvlinops_batch
    data = [(pb.X[i:i + bs], pb.y[i:i + bs]) for i in range(0, len(pb.y), bs)]
    H = HessianLinearOperator(m, nn.CrossEntropyLoss(), params, data, check_deterministic=False)
    count = Counter()
    orig = H._matmat

    def counted(M):
        count.add(M[0].shape[-1])
        return orig(M)
    H._matmat = counted  # every product goes through _matmat (k columns per call)
    return H, count


def curvlinops_eigsh(pb, which):
    from scipy.sparse.linalg import LinearOperator, eigsh
    t = time.perf_counter()
    H, count = curvlinops_op(pb)

    def mv(x):
        v = torch.as_tensor(np.asarray(x).reshape(-1), dtype=torch.float32)
        return (H @ v).detach().numpy().astype(np.float64)
    op = LinearOperator((NUM_PARAMS, NUM_PARAMS), matvec=mv, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(NUM_PARAMS)
    vals = eigsh(op, k=pb.args.k, which="LA" if which == "largest" else "SA", tol=pb.args.tol, v0=v0,
                 return_eigenvectors=False)
    s = time.perf_counter() - t
    return {"seconds": s, "hvps": count.n, "error": pb.eig_error(vals, which), "eigenvalues": sorted(vals.tolist()),
            "notes": f"HessianLinearOperator (batches of {pb.args.curvlinops_batch}, f32) + scipy eigsh(k={pb.args.k}, "
                     f"which={'LA' if which == 'largest' else 'SA'}, tol={pb.args.tol:g}) in float64"}


def curvlinops_trace(pb, name, matvecs):
    import curvlinops
    fn = getattr(curvlinops, name)
    torch.manual_seed(pb.args.seed)
    t = time.perf_counter()
    H, count = curvlinops_op(pb)
    tr = float(fn(H, matvecs))
    s = time.perf_counter() - t
    return {"seconds": s, "hvps": count.n, "error": pb.trace_error(tr), "trace": tr,
            "notes": f"curvlinops.{name}(H, {matvecs}) on HessianLinearOperator (batches of "
                     f"{pb.args.curvlinops_batch}, f32)"}


# -------------------------------------------------------------------------------------------- PyHessian rows
def pyhessian_obj(pb):
    """A PyHessian `hessian` on the whole selection as one batch, with its HVP calls counted. Its constructor
    (forward + backward with create_graph) is part of every timed PyHessian row."""
    import pyhessian  # noqa: F401  (the package's __init__ shadows the module pyhessian.hessian by the class)
    ph = sys.modules["pyhessian.hessian"]
    count = Counter()
    if not getattr(ph, "_peers_counted", False):
        orig = ph.hessian_vector_product

        def counted(gradsH, params, v):
            ph._peers_counter.add(1)
            return orig(gradsH, params, v)
        ph.hessian_vector_product = counted
        ph._peers_counted = True
    ph._peers_counter = count
    torch.manual_seed(pb.args.seed)
    return ph.hessian(pb.model(), nn.CrossEntropyLoss(), data=(pb.X, pb.y), cuda=False), count


def pyhessian_top(pb):
    t = time.perf_counter()
    h, count = pyhessian_obj(pb)
    vals, _ = h.eigenvalues(top_n=pb.args.k)
    s = time.perf_counter() - t
    return {"seconds": s, "hvps": count.n, "error": pb.eig_error(vals, "largest"), "eigenvalues": sorted(vals),
            "notes": f"hessian(...).eigenvalues(top_n={pb.args.k}): deflated power iteration, its defaults "
                     f"(maxIter 100, tol 1e-3 relative change)"}


def pyhessian_trace(pb):
    t = time.perf_counter()
    h, count = pyhessian_obj(pb)
    vhv = h.trace()
    s = time.perf_counter() - t
    tr = float(np.mean(vhv))
    return {"seconds": s, "hvps": count.n, "error": pb.trace_error(tr), "trace": tr,
            "notes": "hessian(...).trace(): Hutchinson, its defaults (maxIter 100, tol 1e-3 on the running mean)"}


def _torch_eig_shim():
    """torch.eig was removed in PyTorch 2.x; PyHessian's density() calls torch.eig(T, eigenvectors=True) on its
    symmetric tridiagonal T. This gives the same (values as (n, 2) real/imaginary, vectors) with eigh."""
    def eig(A, eigenvectors=False):
        w, V = torch.linalg.eigh(A)
        return torch.stack([w, torch.zeros_like(w)], 1), V
    return eig


def pyhessian_density(pb):
    notes = "hessian(...).density(): SLQ, its defaults (iter 100, n_v 1); time only"
    saved = torch.eig
    try:
        torch.eig(torch.eye(2), eigenvectors=True)
    except Exception:  # removed in 2.x: shim it for this row only
        torch.eig = _torch_eig_shim()
        notes += "; torch.eig (removed in torch 2) shimmed with torch.linalg.eigh for its tridiagonal matrix"
    try:
        t = time.perf_counter()
        h, count = pyhessian_obj(pb)
        h.density()
        s = time.perf_counter() - t
    finally:
        torch.eig = saved
    return {"seconds": s, "hvps": count.n, "notes": notes}


# ----------------------------------------------------------------------------------- hessian-eigenthings rows
def eigenthings_op(pb):
    from hessian_eigenthings import HessianOperator, supervised_loss
    m = pb.model()
    op = HessianOperator(m, [(pb.X, pb.y)], supervised_loss(F.cross_entropy), full_dataset=True)
    count = Counter()
    orig = op.matvec

    def counted(v):
        count.add(1)
        return orig(v)
    op.matvec = counted
    return op, count


def eigenthings_lanczos(pb, which):
    from hessian_eigenthings import lanczos
    t = time.perf_counter()
    op, count = eigenthings_op(pb)
    r = lanczos(op, k=pb.args.k, max_iter=pb.args.eigenthings_steps, tol=pb.args.tol, reorthogonalize=True,
                which="LA" if which == "largest" else "SA", seed=pb.args.seed)
    s = time.perf_counter() - t
    vals = r.eigenvalues.tolist()
    return {"seconds": s, "hvps": count.n, "error": pb.eig_error(vals, which), "eigenvalues": sorted(vals),
            "converged": bool(r.converged.all()),
            "notes": f"HessianOperator (one batch) + lanczos(k={pb.args.k}, max_iter={pb.args.eigenthings_steps}, "
                     f"tol={pb.args.tol:g}, which={'LA' if which == 'largest' else 'SA'}): fixed Krylov dimension, "
                     f"reorthogonalize=True (its default turns it off above 50 steps); 1.0 API (no compute_hessian_eigenthings)"}


def eigenthings_power(pb):
    from hessian_eigenthings import deflated_power_iteration
    t = time.perf_counter()
    op, count = eigenthings_op(pb)
    r = deflated_power_iteration(op, k=pb.args.k, max_iter=100, tol=pb.args.tol, seed=pb.args.seed)
    s = time.perf_counter() - t
    vals = r.eigenvalues.tolist()
    return {"seconds": s, "hvps": count.n, "error": pb.eig_error(vals, "largest"), "eigenvalues": sorted(vals),
            "converged": bool(r.converged.all()),
            "notes": f"HessianOperator (one batch) + deflated_power_iteration(k={pb.args.k}, max_iter 100 each, "
                     f"tol={pb.args.tol:g}): largest |lambda|; 1.0 API (no compute_hessian_eigenthings)"}


# --------------------------------------------------------------------------------------------- BackPACK row
def backpack_diag(pb):
    from backpack import backpack, extend
    from backpack.extensions import DiagHessian
    m = extend(pb.model())
    lossf = extend(nn.CrossEntropyLoss())

    def run():
        m.zero_grad()
        with backpack(DiagHessian()):
            lossf(m(pb.X), pb.y).backward()
        return flat([p.diag_h for p in m.parameters()]).double()
    med, ts, d = timed(run, min(pb.args.repeats, 3))
    res = {"seconds": med, "hvps": 0, "all_seconds": ts, "trace": float(d.sum()), "error": pb.trace_error(d.sum()),
           "notes": "extend(model), extend(CrossEntropyLoss), DiagHessian: exact diagonal, trace = its sum; "
                    "forward + backward, median"}
    if pb.ref_diag is not None:
        dr = torch.from_numpy(pb.ref_diag)
        res["max_diag_abs_error"] = float((d - dr).abs().max())
        res["max_diag_rel_error"] = float((d - dr).abs().max() / dr.abs().max())
    return res


# ------------------------------------------------------------------------------------------------ the table
def tasks(args):
    """(row, tool, method, module needed or None, function) in the order run."""
    pr = args.probes
    t = [
        ("gradient", "pytorch", "autograd", None, grad_autograd),
        ("gradient", "pytorch", "torch.compile(func.grad)", None, grad_compiled),
        ("hvp", "pytorch", "double backward", None, hvp_double_backward),
        ("hvp", "pytorch", "func jvp(grad)", None, hvp_func),
        ("hvp", "pytorch", "torch.compile(func jvp(grad))", None, lambda pb: hvp_func(pb, compiled=True)),
        ("hessian-eig", "pytorch", "vmap(jvp(grad)) + eigvalsh", None, hessian_eig_vmap),
        ("top5", "curvlinops", "eigsh LA", "curvlinops", lambda pb: curvlinops_eigsh(pb, "largest")),
        ("top5", "pyhessian", "power iteration", "pyhessian", pyhessian_top),
        ("top5", "hessian-eigenthings", "lanczos LA", "hessian_eigenthings", lambda pb: eigenthings_lanczos(pb, "largest")),
        ("top5", "hessian-eigenthings", "power_iter", "hessian_eigenthings", eigenthings_power),
        ("bottom5", "curvlinops", "eigsh SA", "curvlinops", lambda pb: curvlinops_eigsh(pb, "smallest")),
        ("bottom5", "hessian-eigenthings", "lanczos SA", "hessian_eigenthings",
         lambda pb: eigenthings_lanczos(pb, "smallest")),
        ("trace-hutchinson", "pyhessian", "trace (defaults)", "pyhessian", pyhessian_trace),
        ("trace-hutchinson", "curvlinops", f"hutchinson_trace {pr}", "curvlinops",
         lambda pb: curvlinops_trace(pb, "hutchinson_trace", pr)),
        ("trace-hutchpp", "curvlinops", f"hutchpp_trace {pr // 3 * 3}", "curvlinops",
         lambda pb: curvlinops_trace(pb, "hutchpp_trace", pr // 3 * 3)),
        ("trace-hutchpp", "curvlinops", f"xtrace {pr // 2 * 2}", "curvlinops",
         lambda pb: curvlinops_trace(pb, "xtrace", pr // 2 * 2)),
        ("trace-exact", "backpack", "DiagHessian", "backpack", backpack_diag),
        ("density", "pyhessian", "density (SLQ defaults)", "pyhessian", pyhessian_density),
    ]
    if args.no_compile:
        t = [x for x in t if "compile" not in x[2]]
    if args.quick:
        t = [x for x in t if x[0] != "hessian-eig"]
    if args.only:
        keep = set(args.only.split(","))
        bad = keep - set(ROWS)
        if bad:
            raise SystemExit(f"peers: unknown rows {sorted(bad)} (rows: {','.join(ROWS)})")
        t = [x for x in t if x[0] in keep]
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="folder holding cifar-10-batches-bin/ (or that folder)")
    ap.add_argument("--checkpoint", required=True, help="safetensors weights written by `hessian train`")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats of the short rows (median)")
    ap.add_argument("--reference", help="JSON of `hessian exact --precision f64` (eigenvalues, trace)")
    ap.add_argument("--reference-diag", help=".npy of `hessian diag --precision f64 --out` (exact diagonal)")
    ap.add_argument("--k", type=int, default=5, help="eigenvalues at each end")
    ap.add_argument("--tol", type=float, default=1e-6, help="eigensolver tolerance (eigsh, eigenthings)")
    ap.add_argument("--probes", type=int, default=99, help="HVPs of the curvlinops trace estimators")
    ap.add_argument("--vmap-cols", type=int, default=32, help="unit vectors per vmap call (full Hessian)")
    ap.add_argument("--vmap-batches", type=int, default=3, help="vmap calls timed (full Hessian)")
    ap.add_argument("--curvlinops-batch", type=int, default=500, help="samples per curvlinops data batch")
    ap.add_argument("--eigenthings-steps", type=int, default=100, help="hessian-eigenthings Lanczos steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", help="comma-separated rows: " + ",".join(ROWS))
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--quick", action="store_true", help="skip the full-Hessian extrapolation")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pb = Problem(args)
    base = {"torch": torch.__version__, "threads": torch.get_num_threads(), "samples": args.samples,
            "offset": args.offset, "dtype": "f32"}
    for row, tool, method, module, fn in tasks(args):
        rec = {"row": row, "tool": tool, "method": method, "seconds": None, "hvps": None, "error": None,
               "notes": "", "status": "ok"}
        if module and importlib.util.find_spec(module) is None:
            rec.update(status="not installed", notes=f"python module {module} not installed")
        else:
            log(f"{row}: {tool} {method}")
            try:
                rec.update(fn(pb))
            except Exception as e:  # a peer's failure is a row, never a crash
                traceback.print_exc(file=sys.stderr)
                rec.update(status="failed", failure=f"{type(e).__name__}: {e}"[:500])
        rec.update(base)
        if module and rec["status"] != "not installed":
            try:
                from importlib.metadata import version
                rec["version"] = version({"curvlinops": "curvlinops-for-pytorch", "pyhessian": "PyHessian",
                                          "hessian_eigenthings": "hessian-eigenthings",
                                          "backpack": "backpack-for-pytorch"}[module])
            except Exception:
                pass
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
