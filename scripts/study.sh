#!/usr/bin/env bash
# study.sh [OUT]: the main job. Installs what is missing, builds, gets CIFAR-10 into data/, then runs the
# whole study (train the cnn, exact Hessian spectrum on 1,000 images, power iterations) and writes
# OUT/report.md (default OUT = study) with its SVG plots, JSON and CSV files. A few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
scripts/get-data.sh data
bin/hessian study --data data --out "${1:-study}"
