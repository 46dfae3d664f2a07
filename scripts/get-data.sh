#!/usr/bin/env bash
# get-data.sh DIR: makes sure DIR/cifar-10-batches-bin/ holds CIFAR-10 (binary layout). Uses the project's
# shared copy (../shared/data/cifar10-bin) when present, else downloads the official archive with
# `hessian data cifar10 DIR`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir=${1:-data}
if [[ -f $dir/cifar-10-batches-bin/test_batch.bin && -f $dir/cifar-10-batches-bin/data_batch_5.bin ]]; then exit 0; fi
if [[ -x ../shared/data/cifar10-bin ]]; then
    ../shared/data/cifar10-bin "$dir" >&2
else
    bin/hessian data cifar10 "$dir"
fi
