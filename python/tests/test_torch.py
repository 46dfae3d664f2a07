"""test_torch.py: from_torch against PyTorch itself: parameter names and order, forward, and H v and the GGN v
against torch.autograd double backward in float64 (1e-10), cross-entropy and squared error; the full Hessian
of a tiny network against torch.autograd.functional.hessian."""
import numpy as np
import pytest

import hessian

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
nn = torch.nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.bn2 = nn.BatchNorm2d(2)  # equal-valued initializers: from_torch must keep them apart
        self.fc = nn.Linear(2 * 2 * 2, 5)

    def forward(self, x):
        x = torch.relu(self.bn2(self.bn(self.conv(x))))
        return self.fc(torch.flatten(nn.functional.max_pool2d(x, 2), 1))


def make():
    torch.manual_seed(0)
    net = Net().double().eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-trivial running statistics, exact in float32 (the export's precision)
        for bn in (net.bn, net.bn2):
            bn.running_mean.copy_(torch.randn(2, generator=g).float().double())
            bn.running_var.copy_((torch.rand(2, generator=g) + 0.5).float().double())
    X = torch.randn(12, 3, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (12,), generator=g)
    return net, X, y


def flat_hvp(net, loss_fn, v):
    params = list(net.parameters())
    g = torch.autograd.grad(loss_fn(), params, create_graph=True)
    gv = sum((a.reshape(-1) * b).sum() for a, b in zip(g, torch.split(v, [p.numel() for p in params])))
    return torch.cat([h.reshape(-1) for h in torch.autograd.grad(gv, params)])


def test_from_torch_hvp_ce():
    net, X, y = make()
    m = hessian.from_torch(net, X[:2])
    assert [(t.name, t.shape) for t in m.parameters()] == [(n, tuple(p.shape)) for n, p in net.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()]).numpy()
    np.testing.assert_array_equal(m.params, flat)
    with torch.no_grad():
        z = net(X).numpy()
    np.testing.assert_allclose(m.forward(X.numpy()), z, rtol=1e-12, atol=1e-12)
    Xn, yn = X.numpy(), y.numpy()
    ce = lambda: nn.functional.cross_entropy(net(X), y)  # noqa: E731
    assert abs(m.loss(Xn, yn) - ce().item()) <= 1e-12
    np.testing.assert_allclose(m.gradient(Xn, yn),
                               torch.cat([g.reshape(-1) for g in torch.autograd.grad(ce(), net.parameters())]),
                               rtol=0, atol=1e-12)
    V = torch.randn(2, m.num_params, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    want = torch.stack([flat_hvp(net, ce, v) for v in V]).numpy()
    got = m.hvp(Xn, yn, V.numpy())
    assert np.linalg.norm(got - want) <= 1e-10 * np.linalg.norm(want)
    # the exact Hessian: its eigenvalues against PyTorch's full Hessian (column by column)
    H = np.stack([flat_hvp(net, ce, e) for e in torch.eye(m.num_params, dtype=torch.float64)])
    ev, mat = m.exact(Xn, yn, matrix=True)
    assert np.abs(mat - H).max() <= 1e-10 * np.abs(H).max()
    np.testing.assert_allclose(ev, np.linalg.eigvalsh((H + H.T) / 2), rtol=0, atol=1e-10 * np.abs(ev).max())
    t, se = m.trace(Xn, yn, probes=60, method="hutch++")
    assert abs(t - np.trace(H)) <= 5 * se + 1e-8 * np.abs(ev).sum()


def test_from_torch_mse_ggn_f32():
    net, X, _ = make()
    T = torch.randn(12, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    m = hessian.from_torch(net, X[:1])
    mse = lambda: ((net(X) - T) ** 2).sum(1).mean()  # noqa: E731
    v = torch.randn(m.num_params, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    want = flat_hvp(net, mse, v).numpy()
    got = m.hvp(X.numpy(), T.numpy(), v.numpy())
    assert np.linalg.norm(got - want) <= 1e-10 * np.linalg.norm(want)
    # GGN of the squared error: J^T (2/N) J v
    from torch.nn.utils import stateless
    names = [n for n, _ in net.named_parameters()]
    outputs = lambda *ps: stateless.functional_call(net, dict(zip(names, ps)), (X,))  # noqa: E731
    primals = tuple(p.detach() for p in net.parameters())
    _, jv = torch.autograd.functional.jvp(outputs, primals, tuple(
        t.reshape(p.shape) for t, p in zip(torch.split(v, [p.numel() for p in primals]), primals)))
    _, jtjv = torch.autograd.functional.vjp(outputs, primals, 2 * jv / X.shape[0])
    want_ggn = torch.cat([t.reshape(-1) for t in jtjv]).numpy()
    got_ggn = m.hvp(X.numpy(), T.numpy(), v.numpy(), curvature="ggn")
    assert np.linalg.norm(got_ggn - want_ggn) <= 1e-10 * np.linalg.norm(want_ggn)
    # f32: the same product within float32 accuracy
    m32 = hessian.from_torch(net, X[:1], precision="f32")
    got32 = m32.hvp(X.numpy(), T.numpy(), v.numpy())
    assert np.linalg.norm(got32 - want) <= 1e-4 * np.linalg.norm(want)

