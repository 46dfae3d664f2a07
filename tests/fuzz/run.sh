#!/usr/bin/env bash
# run.sh: builds the libFuzzer harnesses (tests/fuzz/fuzz_*.c, via `make fuzz-build`) and runs each one for
# FUZZ_SECONDS seconds (default 60) from its seed corpus tests/fuzz/corpus/<name>/ plus the inputs earlier runs
# kept in $BUILD/fuzz/corpus/<name>/. Used by `make fuzz` and CI. Exits 1 when a harness finds a crash, leak,
# undefined behaviour, timeout or out-of-memory (the reproducer's path is printed; rerun it with
# `$BUILD/fuzz/fuzz_<name> <file>`), and ends with "fuzz: N passed, M failed". As root on a fresh Debian it
# installs clang and the libFuzzer runtime when missing; when they cannot be had it skips (exit 0) with a message.
# Environment: FUZZ_SECONDS, BUILD (default build), FUZZ_CC (default clang), FUZZ_ONLY (run only these names).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
seconds=${FUZZ_SECONDS:-60}
build=${BUILD:-build}
cc=${FUZZ_CC:-clang}

# Scratch space for the probe and the harnesses' files (RAM-backed where possible: the harnesses write and
# fsync files for every input), removed at the end even after a crash left files behind.
probe_dir=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
# A trivial harness links only when clang and the libFuzzer + sanitizer runtimes are all there.
can_fuzz() {
    printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' >"$probe_dir/p.c"
    "$cc" -fsanitize=fuzzer,address,undefined "$probe_dir/p.c" -o "$probe_dir/p" >/dev/null 2>&1
}
if ! can_fuzz; then
    pkgs="clang libclang-rt-dev"
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "fuzz: installing $pkgs" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q $pkgs >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $pkgs >/dev/null 2>&1; }
    fi
    if ! can_fuzz; then
        echo "fuzz: skipped: $cc with libFuzzer (-fsanitize=fuzzer) is not available and could not be installed" \
            "(Debian: apt-get install $pkgs)"
        exit 0
    fi
fi

make --no-print-directory BUILD="$build" FUZZ_CC="$cc" fuzz-build >&2 || { echo "fuzz: building the harnesses failed"; exit 1; }

# Longest input per format: a few records / tensors / arguments are enough to reach every check.
max_len() {
    case $1 in
    cifar10) echo 16384 ;; # 5 files of 1 record each (3,073 bytes) + 5 layout bytes
    safetensors) echo 8192 ;;
    onnx) echo 32768 ;; # the torch-exported seeds in tests/onnx are up to ~22 KB
    npy) echo 4096 ;;
    *) echo 1024 ;;
    esac
}

passed=0 failed=0
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    if [[ -n ${FUZZ_ONLY:-} && " $FUZZ_ONLY " != *" $name "* ]]; then continue; fi
    bin=$build/fuzz/fuzz_$name
    work=$build/fuzz/corpus/$name
    artifacts=$build/fuzz/artifacts/$name
    log=$build/fuzz/logs/$name.log
    mkdir -p "$work" "$artifacts" "$(dirname "$log")" "tests/fuzz/corpus/$name"
    dict=()
    [[ -f tests/fuzz/$name.dict ]] && dict=(-dict="tests/fuzz/$name.dict")
    # extra read-only seed folders: the importer's test models
    seeds=()
    [[ $name == onnx ]] && seeds=(tests/onnx)
    # Inputs are at most a few KB, so any allocation over 64 MB is a reader trusting a size field. Output of
    # the code under test (stdout) is discarded; libFuzzer's own report goes to stderr, into the log.
    TMPDIR=$probe_dir ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        timeout $((seconds + 300)) "$bin" -max_total_time="$seconds" -max_len="$(max_len "$name")" \
        -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=64 -close_fd_mask=1 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "${dict[@]}" "$work" "tests/fuzz/corpus/$name" "${seeds[@]}" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    corpus=$(find "$work" -type f | wc -l)
    if [[ $rc -eq 0 ]]; then
        passed=$((passed + 1))
        echo "fuzz_$name: clean: ${runs:-?} runs in ${seconds} s, corpus $corpus inputs"
    else
        failed=$((failed + 1))
        echo "fuzz_$name: FAILED (exit $rc); log $log"
        grep -E "^==[0-9]+==ERROR|runtime error:|fuzz invariant failed|^SUMMARY:|ERROR: libFuzzer" "$log" | head -n 5
        repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        if [[ -n $repro ]]; then
            echo "fuzz_$name: reproducer $repro (rerun: $bin $repro)"
        else
            tail -n 20 "$log"
        fi
    fi
done
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
