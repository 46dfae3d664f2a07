"""test_cli_equal.py: the package computes what the CLI computes on the same .npy files (hvp, K directions,
GGN, f32, Lanczos), and the gradient against central differences of the loss."""
import json

import numpy as np
import pytest
from conftest import run_cli

import hessian


@pytest.fixture(scope="module")
def model(ck):
    return hessian.Model("cnn", checkpoint=ck, precision="f64")


@pytest.mark.parametrize("precision,curvature,K", [("f64", "hessian", 1), ("f64", "ggn", 1), ("f32", "hessian", 1),
                                                   ("f64", "hessian", 3)])
def test_hvp_equals_cli(cli, ck, arrays, tmp_path, precision, curvature, K):
    d, X, y = arrays
    m = hessian.Model("cnn", checkpoint=ck, precision=precision)
    P = m.num_params
    assert P == 5100
    V = np.random.default_rng(K).standard_normal((K, P) if K > 1 else P)
    np.save(tmp_path / "v.npy", V)
    run_cli(cli, "hvp", "--checkpoint", ck, "--inputs", f"{d}/X.npy", "--targets", f"{d}/y.npy", "--samples", 40,
            "--offset", 8, "--precision", precision, "--curvature", curvature, "--vector", tmp_path / "v.npy",
            "--out", tmp_path / "hv.npy")
    want = np.load(tmp_path / "hv.npy")
    got = m.hvp(X, y, V, curvature=curvature, samples=40, offset=8)
    assert got.shape == V.shape
    np.testing.assert_allclose(got, want.reshape(V.shape), rtol=0, atol=1e-12 * np.abs(want).max())
    # the same through a Data object read from the files, and through indices
    data = hessian.Data.from_npy(f"{d}/X.npy", f"{d}/y.npy")
    assert len(data) == 96
    np.testing.assert_array_equal(m.hvp(data, V=V, curvature=curvature, samples=40, offset=8), got)
    np.testing.assert_array_equal(m.hvp(X, y, V, curvature=curvature, indices=np.arange(8, 48)), got)


def test_lanczos_equals_cli(cli, ck, arrays, model, tmp_path):
    d, X, y = arrays
    run_cli(cli, "lanczos", "--checkpoint", ck, "--inputs", f"{d}/X.npy", "--targets", f"{d}/y.npy", "--samples", 16,
            "--k", 2, "--which", "both", "--steps", 40, "--precision", "f64", "--json", tmp_path / "lz.json")
    want = np.array(json.load(open(tmp_path / "lz.json"))["eigenvalues"], dtype=np.float64)
    vals, res = model.eigenvalues(X, y, k=2, which="both", max_steps=40, samples=16)
    assert vals.shape == (4,) and res.shape == (4,)
    np.testing.assert_allclose(np.sort(vals), np.sort(want), rtol=1e-10)


def test_gradient_central_differences(model, arrays):
    _, X, y = arrays
    sel = dict(samples=16)
    g = model.gradient(X, y, **sel)
    theta = model.params
    rng = np.random.default_rng(0)
    u = rng.standard_normal(g.size)
    u /= np.linalg.norm(u)
    eps = 1e-5  # central difference error O(eps^2 |L'''|) ~ 1e-10 against |g.u| ~ 1e-1
    try:
        model.params = theta + eps * u
        lp = model.loss(X, y, **sel)
        model.params = theta - eps * u
        lm = model.loss(X, y, **sel)
    finally:
        model.params = theta
    assert abs((lp - lm) / (2 * eps) - g @ u) <= 1e-6 * max(1.0, abs(g @ u))
    loss, acc = model.loss(X, y, accuracy=True, **sel)
    assert np.isfinite(loss) and 0 <= acc <= 1
