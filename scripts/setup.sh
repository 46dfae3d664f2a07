#!/usr/bin/env bash
# setup.sh: installs the Debian packages hessian needs to build (when missing) and builds bin/hessian.
# With --test also what the tests need: PyTorch 1.13 and onnx (the golden script exports torchvision's ResNet-18
# to ONNX at test time; 45 MB, not committed), and the Python package test's venv, pip, setuptools, wheel, scipy and
# pytest (tests/test_cli_python.sh). hessian itself never needs them. With --mpi also Open MPI and ScaLAPACK
# (openmpi-bin libopenmpi-dev libscalapack-openmpi-dev) for the data-parallel build (make MPI=1) and its test
# tests/test_cli_mpi.sh. Options combine: setup.sh --test --mpi.
# Used by scripts/study.sh, scripts/test.sh and CI. Run as root on a fresh Debian 12 machine, or as a user
# who already has the packages.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
packages=(gcc make libc6-dev liblapacke-dev libopenblas-openmp-dev xz-utils python3-numpy python3-pil
          libprotobuf-c-dev protobuf-c-compiler libonnx-dev)
for arg in "$@"; do
    case $arg in
        --test) packages+=(python3-torch python3-onnx python3-venv python3-pip python3-setuptools python3-wheel
                           python3-scipy python3-pytest) ;;
        --mpi) packages+=(openmpi-bin libopenmpi-dev libscalapack-openmpi-dev) ;;
        *) echo "setup: unknown option $arg (want --test, --mpi)" >&2; exit 2 ;;
    esac
done
for pkg in "${packages[@]}"; do
    have "$pkg" || need+=("$pkg")
done
if ((${#need[@]})); then
    echo "setup: installing ${need[*]}" >&2
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: missing packages and not root: sudo apt-get install ${need[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
fi
make -j2 all >&2
