"""test_errors.py: failures raise hessian.HessianError carrying libhessian's message; save/load, train,
forward and parameters() on the built-in CNN."""
import numpy as np
import pytest

import hessian


@pytest.fixture(scope="module")
def m(ck):
    return hessian.Model("cnn", checkpoint=ck)


def test_nan_input(m, arrays):
    _, X, y = arrays
    Xb = X[:8].copy()
    Xb[3, 1, 2, 3] = np.nan
    with pytest.raises(hessian.HessianError, match="(?i)nan"):
        m.loss(Xb, y[:8])


def test_wrong_shapes(m, arrays):
    _, X, y = arrays
    with pytest.raises(hessian.HessianError, match="(?i)shape"):
        m.hvp(np.zeros((4, 1, 28, 28)), y[:4], np.zeros(m.num_params))
    with pytest.raises(hessian.HessianError, match="5100"):
        m.hvp(X[:4], y[:4], np.ones(7))
    with pytest.raises(hessian.HessianError):
        hessian.Data(X[:4], y[:5])
    with pytest.raises(hessian.HessianError, match="5100"):
        m.params = np.zeros(3)


def test_bad_names(ck):
    with pytest.raises(hessian.HessianError, match="vgg"):
        hessian.Model("vgg")
    with pytest.raises(hessian.HessianError, match="precision"):
        hessian.Model("cnn", precision="f16")
    with pytest.raises(hessian.HessianError, match="nothere"):
        hessian.Model("cnn", checkpoint="/nothere.safetensors")
    m = hessian.Model("cnn")
    with pytest.raises(hessian.HessianError):
        m.params = np.full(m.num_params, np.inf)


def test_model_description(m, tmp_path, arrays):
    _, X, y = arrays
    ps = m.parameters()
    assert ps[0] == ("0.weight", (5, 3, 5, 5), 0) and ps[1] == ("0.bias", (5,), 375) and ps[-1].name == "9.bias"
    assert sum(int(np.prod(t.shape)) for t in ps) == m.num_params
    assert m.input_shape == (3, 32, 32) and m.num_outputs == 10 and m.precision == "f64"
    z = m.forward(X[:5])
    assert z.shape == (5, 10) and np.all(np.isfinite(z))
    # save, train (changes the parameters), load back
    m2 = hessian.Model("cnn", checkpoint=None, seed=3)
    m2.save(tmp_path / "a.safetensors")
    before = m2.params
    info = m2.train(X, y, epochs=2, batch=16, lr=0.05, seed=1)
    assert info.steps == 12 and np.isfinite(info.loss)
    assert not np.array_equal(m2.params, before)
    m2.load(tmp_path / "a.safetensors")
    np.testing.assert_array_equal(m2.params, before)
    assert hessian.library_version() == hessian.__version__
