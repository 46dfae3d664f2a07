"""test_operator.py: the LinearOperator: products equal m.hvp, scipy's eigsh on it finds m.eigenvalues' top
eigenvalues (1e-8 relative), parameter blocks, the stochastic operator, power, trace and density."""
import numpy as np
import pytest

import hessian

scipy_linalg = pytest.importorskip("scipy.sparse.linalg")


@pytest.fixture(scope="module")
def setup(ck, arrays):
    _, X, y = arrays
    m = hessian.Model("cnn", checkpoint=ck)
    return m, X[:8], y[:8]


def test_products(setup):
    m, X, y = setup
    op = m.operator(X, y)
    assert op.shape == (5100, 5100)
    V = np.random.default_rng(1).standard_normal((5100, 3))
    np.testing.assert_array_equal(op @ V[:, 0], m.hvp(X, y, V[:, 0]))
    np.testing.assert_allclose(op.matmat(V), m.hvp(X, y, V.T).T, rtol=0, atol=1e-13 * np.abs(op @ V).max())
    assert op.products >= 4 and np.isfinite(op.last_loss)


def test_eigsh_equals_lanczos(setup):
    m, X, y = setup
    vals, res = m.eigenvalues(X, y, k=3, tol=1e-10, max_steps=200)
    op = m.operator(X, y)
    want = scipy_linalg.eigsh(op, k=3, which="LA", tol=1e-12, return_eigenvectors=False)
    np.testing.assert_allclose(np.sort(vals), np.sort(want), rtol=1e-8)
    assert np.all(res <= 1e-6 * np.abs(vals).max())
    r = m.eigenvalues(X, y, k=1, vectors=True)
    lam, _, vec = r
    assert vec.shape == (1, 5100) and r.steps > 0 and r.converged
    np.testing.assert_allclose(op @ vec[0], lam[0] * vec[0], atol=1e-4 * abs(lam[0]))
    lp, rp = m.power(X, y, iters=300, tol=1e-8)
    assert abs(lp - vals[-1]) <= 1e-5 * abs(vals[-1])


def test_block_and_stochastic(setup):
    m, X, y = setup
    sizes = {t.name: int(np.prod(t.shape)) for t in m.parameters()}
    op = m.operator(X, y, params=["9.weight", "9.bias"])
    assert op.shape[0] == sizes["9.weight"] + sizes["9.bias"]
    st = m.operator(X, y, batch=2, seed=3)
    v = np.ones(5100)
    a, b = st @ v, st @ v
    assert not np.array_equal(a, b)  # each product on a new batch


def test_trace_density(setup):
    m, X, y = setup
    t, se = m.trace(X, y, probes=10, method="hutchinson", seed=1)
    t2, se2 = m.trace(X, y, probes=12, seed=1)
    assert se > 0 and abs(t - t2) < 5 * (se + se2)
    x, dens = m.density(X, y, runs=2, steps=20, grid=200)
    assert x.shape == dens.shape == (200,)
    assert abs(np.trapz(dens, x) - 1) < 0.05


def test_diag_equals_exact_diagonal(setup):
    m, X, y = setup
    d = m.diag(X, y)
    ev, H = m.exact(X, y, matrix=True)
    # cnn is ReLU/max-pool/linear: the GGN diagonal is the Hessian's (f64; hessian diag's own test measures <= 4e-16
    # relative on this model, 1e-12 leaves room for the exact matrix's own rounding).
    assert d.shape == (5100,) and d.exact_hessian
    np.testing.assert_allclose(d, np.diag(H), rtol=0, atol=1e-12 * np.abs(np.diag(H)).max())
    assert abs(d.sum() - ev.sum()) <= 1e-10 * np.abs(ev).sum()
