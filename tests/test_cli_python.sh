#!/usr/bin/env bash
# test_cli_python.sh: the Python package (python/): a virtual environment in the build folder (on
# /usr/bin/python3, with its system packages: numpy, scipy, pytest, torch), `pip install ./python` into it
# offline (--no-build-isolation: the setup.py runs `make shared` and bundles libhessian.so.0), then its pytest
# suite (python/tests: results equal the CLI's, scipy's eigsh, torch's double backward). Each pytest test
# counts as one check. Skipped (0 checks) when /usr/bin/python3 lacks numpy, pytest or venv.
# Prints "test_cli_python: N passed, M failed".
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/cli_harness.sh
py=/usr/bin/python3
repo=$PWD
# The build folder: BUILD (make test passes it), else the one bin/hessian belongs to.
build=${BUILD:-}
if [[ -z $build ]]; then [[ $bin == bin/hessian ]] && build=build || build=$(dirname "$(dirname "$bin")"); fi
if ! "$py" -c 'import numpy, pytest, venv, ensurepip' 2>/dev/null; then
    echo "test_cli_python: SKIP: /usr/bin/python3 lacks numpy, pytest or venv (scripts/setup.sh --test installs them)"
    summary test_cli_python
    exit
fi
venv=$build/pyvenv; [[ $venv == /* ]] || venv=$repo/$venv
rm -rf "$venv"
mkdir -p "$build"
if ! "$py" -m venv --system-site-packages "$venv" >"$tmp/venv.log" 2>&1; then
    bad "python3 -m venv failed: $(tail -5 "$tmp/venv.log")"; summary test_cli_python; exit
fi
if HESSIAN_BUILD=$build "$venv/bin/pip" install --no-build-isolation --no-deps --no-index ./python >"$tmp/pip.log" 2>&1; then
    ok
else
    bad "pip install ./python failed:"$'\n'"$(tail -30 "$tmp/pip.log")"; summary test_cli_python; exit
fi
# outside the checkout, so that `import hessian` is the installed package with its bundled library
abs_bin=$bin; [[ $abs_bin == /* ]] || abs_bin=$repo/$bin
out=$(cd "$tmp" && HESSIAN_BIN=$abs_bin timeout 300 "$venv/bin/python" -m pytest -q -p no:cacheprovider \
      "$repo/python/tests" 2>&1); rc=$?
line=$(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error)' <<<"$out" | tail -n 1)
echo "pytest: ${line:-no summary (exit $rc)}"
p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+'); f=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$line" | grep -oE '[0-9]+' | awk '{s += $1} END {print s + 0}')
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
if [[ $rc -ne 0 && ${f:-0} -eq 0 ]] || [[ -z $line ]]; then bad "pytest exit $rc"; fi
[[ $rc -ne 0 ]] && tail -n 60 <<<"$out" >&2
summary test_cli_python
