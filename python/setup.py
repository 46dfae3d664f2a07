"""setup.py: builds libhessian with the repository's Makefile (`make -C .. shared`) when this folder sits in a
checkout (../Makefile and ../include/hessian.h exist) and bundles libhessian.so.0 in the package. Without a
checkout the package is pure Python and finds an installed libhessian at import (HESSIAN_LIBRARY, pkg-config,
the loader's path). Environment: HESSIAN_BUILD (the make build folder, default "build"), MAKE (default make),
HESSIAN_NO_BUILD=1 (skip the build; bundle nothing)."""
import glob
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
IN_CHECKOUT = os.path.exists(os.path.join(REPO, "Makefile")) and os.path.exists(
    os.path.join(REPO, "include", "hessian.h")) and not os.environ.get("HESSIAN_NO_BUILD")


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        if not IN_CHECKOUT:
            return
        build = os.environ.get("HESSIAN_BUILD", "build")
        jobs = str(min(os.cpu_count() or 1, 8))
        cmd = [os.environ.get("MAKE", "make"), "-C", REPO, f"-j{jobs}", f"BUILD={build}", "shared"]
        self.announce("building libhessian: " + " ".join(cmd), level=2)
        subprocess.run(cmd, check=True)
        libs = sorted(p for p in glob.glob(os.path.join(REPO, build, "libhessian.so.*")) if not os.path.islink(p))
        if not libs:
            raise RuntimeError(f"make shared wrote no {build}/libhessian.so.* in {REPO}")
        dest = os.path.join(self.build_lib, "hessian")
        os.makedirs(dest, exist_ok=True)
        for old in glob.glob(os.path.join(dest, "libhessian.so*")):
            os.remove(old)
        shutil.copyfile(libs[-1], os.path.join(dest, "libhessian.so.0"))  # loaded by the package by path


class BinaryDistribution(Distribution):
    def has_ext_modules(self):  # a platform wheel when it bundles the library
        return IN_CHECKOUT


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution)
