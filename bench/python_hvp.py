#!/usr/bin/python3
"""python_hvp.py: the cost of H v from Python (hessian.Model.hvp, ctypes over libhessian) against the CLI
(`bin/hessian hvp` on the same .npy files) and PyTorch double backward, for the study CNN (5,100 parameters,
random init, seed 0) on N synthetic 3x32x32 samples (default 1,000), float32 and float64.

    /usr/bin/python3 bench/python_hvp.py [--n 1000] [--reps 5] [--threads T]    (package installed, or
    PYTHONPATH=python HESSIAN_LIBRARY=build/libhessian.so.0.2.0)

Python and torch: the median of --reps timed calls after one warm-up (the data is copied into libhessian on
every Model.hvp(X, y, v) call with arrays, so a Data object made once is timed too). CLI: the wall time of the
whole process (start, reading the .npy files, one product) and the product time its JSON reports.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def median_time(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="0: OMP_NUM_THREADS or all cores")
    ap.add_argument("--bin", default=os.path.join(REPO, "bin", "hessian"))
    a = ap.parse_args()
    import hessian
    if a.threads:
        hessian.set_threads(a.threads)
    threads = hessian.get_threads()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((a.n, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, a.n).astype(np.int64)
    v = rng.standard_normal(5100)
    rows = []
    tmp = tempfile.mkdtemp(prefix="python_hvp_")
    np.save(f"{tmp}/X.npy", X)
    np.save(f"{tmp}/y.npy", y)
    np.save(f"{tmp}/v.npy", v)
    ref = {}
    for prec in ("f32", "f64"):
        m = hessian.Model("cnn", precision=prec, seed=0)
        m.save(f"{tmp}/init.safetensors")
        data = hessian.Data(X, y)
        hv = m.hvp(data, V=v)
        ref[prec] = hv
        rows.append((prec, "python Model.hvp(X, y, v)", median_time(lambda: m.hvp(X, y, v), a.reps)))
        rows.append((prec, "python Model.hvp(Data, v)", median_time(lambda: m.hvp(data, V=v), a.reps)))
        if os.path.exists(a.bin):
            env = dict(os.environ, HESSIAN_QUIET="1", OMP_NUM_THREADS=str(threads))
            cmd = [a.bin, "hvp", "--checkpoint", f"{tmp}/init.safetensors", "--inputs", f"{tmp}/X.npy",
                   "--targets", f"{tmp}/y.npy", "--samples", str(a.n), "--precision", prec, "--vector",
                   f"{tmp}/v.npy", "--out", f"{tmp}/hv.npy", "--json", f"{tmp}/hv.json"]
            walls = []
            for _ in range(a.reps):
                t = time.perf_counter()
                subprocess.run(cmd, check=True, env=env, capture_output=True)
                walls.append(time.perf_counter() - t)
            j = json.load(open(f"{tmp}/hv.json"))
            secs = {k: v_ for k, v_ in j.items() if "seconds" in k and isinstance(v_, (int, float))}
            rows.append((prec, "CLI bin/hessian hvp (process wall)", float(np.median(walls))))
            for k, s in secs.items():
                rows.append((prec, f"CLI JSON {k}", float(s)))
            d = np.abs(np.load(f"{tmp}/hv.npy") - hv).max() / np.abs(hv).max()
            rows.append((prec, "  (python vs CLI max rel diff)", d))
    try:
        import torch
        sys.path.insert(0, os.path.join(REPO, "tests", "golden"))
        from cnn_common import make_cnn
        torch.set_num_threads(threads)
        for prec, dt in (("f32", torch.float32), ("f64", torch.float64)):
            m = hessian.Model("cnn", precision=prec, seed=0)
            net = make_cnn().to(dt)
            with torch.no_grad():
                off = 0
                p = m.params
                for q in net.parameters():
                    q.copy_(torch.from_numpy(p[off:off + q.numel()].reshape(q.shape)))
                    off += q.numel()
            Xt, yt, vt = torch.from_numpy(X).to(dt), torch.from_numpy(y), torch.from_numpy(v).to(dt)
            params = list(net.parameters())
            vs = [t.reshape(q.shape) for t, q in zip(torch.split(vt, [q.numel() for q in params]), params)]

            def torch_hvp():
                g = torch.autograd.grad(torch.nn.functional.cross_entropy(net(Xt), yt), params, create_graph=True)
                return torch.cat([h.reshape(-1) for h in torch.autograd.grad(g, params, vs)])
            hv = torch_hvp().double().numpy()
            rows.append((prec, f"torch {torch.__version__} double backward", median_time(torch_hvp, a.reps)))
            rows.append((prec, "  (python vs torch max rel diff)", np.abs(hv - ref[prec]).max() / np.abs(hv).max()))
    except ImportError as e:
        print(f"torch comparison skipped: {e}", file=sys.stderr)
    print(f"H v, study CNN (5,100 parameters), {a.n} samples 3x32x32, {threads} threads, median of {a.reps}")
    for prec, what, t in rows:
        print(f"{prec}  {what:40s} {t:.3g}" + ("" if "diff" in what else " s"))


if __name__ == "__main__":
    main()
