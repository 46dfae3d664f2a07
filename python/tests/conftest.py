"""conftest.py: shared fixtures: the repository (python/..), its CLI (HESSIAN_BIN or bin/hessian), the golden
CIFAR-10 subset (tests/golden/cnn_data, 96 training images) written as .npy arrays normalised as hessian does,
and the golden checkpoint."""
import os
import subprocess

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def cli():
    b = os.environ.get("HESSIAN_BIN", os.path.join(REPO, "bin", "hessian"))
    b = b if os.path.isabs(b) else os.path.join(REPO, b)
    if not os.path.exists(b):
        pytest.skip(f"no CLI at {b} (make)")
    return b


@pytest.fixture(scope="session")
def ck():
    return os.path.join(REPO, "tests", "golden", "cnn_init.safetensors")


@pytest.fixture(scope="session")
def arrays(tmp_path_factory):
    """(dir, X float64 (96,3,32,32), y int64 (96,)) with X.npy / y.npy / X32.npy in dir."""
    src = os.path.join(REPO, "tests", "golden", "cnn_data", "cifar-10-batches-bin")
    raw = np.concatenate([np.fromfile(f"{src}/data_batch_{i}.bin", dtype=np.uint8) for i in range(1, 6)])
    raw = raw.reshape(-1, 3073)
    px, y = raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0].astype(np.int64)
    mean = np.array([0.4914, 0.4822, 0.4465]).reshape(1, 3, 1, 1)
    std = np.array([0.2023, 0.1994, 0.2010]).reshape(1, 3, 1, 1)
    X = (px.astype(np.float64) / 255.0 - mean) / std
    d = tmp_path_factory.mktemp("arrays")
    np.save(d / "X.npy", X)
    np.save(d / "y.npy", y)
    return str(d), X, y


def run_cli(cli, *args):
    env = dict(os.environ, HESSIAN_QUIET="1")
    r = subprocess.run([cli, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, f"{' '.join(map(str, args))}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout + r.stderr
