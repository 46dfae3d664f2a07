#!/usr/bin/env bash
# test.sh: installs what is missing, builds, and runs the test suite (synthetic data, fixed seeds,
# 2 threads). Ends with "tests: N passed, M failed" and a non-zero exit on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
make test
