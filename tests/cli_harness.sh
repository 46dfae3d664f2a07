# cli_harness.sh: what the CLI test scripts (tests/test_cli*.sh) share; sourced from the repository root.
#   bin (HESSIAN_BIN or bin/hessian), data and ck (the golden data and checkpoint), tmp (removed on exit)
#   ok / bad MESSAGE          count a passed / failed check (bad prints the message)
#   expect STATUS PATTERN CMD...   runs CMD (at most $EXPECT_SECONDS s, default 300): exit status STATUS and the extended regular
#                             expression PATTERN (case-insensitive; "" for none) in stdout+stderr, kept in $out
#   summary NAME              prints "NAME: N passed, M failed"; its status is the failure count's
set -u
bin=${HESSIAN_BIN:-bin/hessian}
data=tests/golden/cnn_data
ck=tests/golden/cnn_init.safetensors
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} HESSIAN_QUIET=1
passed=0; failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
out=
expect() {
    local want=$1 pattern=$2; shift 2
    out=$(timeout "${EXPECT_SECONDS:-300}" "$@" 2>&1); local rc=$?
    if [[ $rc -ne $want ]]; then bad "exit $rc (want $want): $*"$'\n'"$out"; return; fi
    if [[ -n $pattern ]] && ! grep -qiE -- "$pattern" <<<"$out"; then bad "no /$pattern/ in output of: $*"$'\n'"$out"; return; fi
    ok
}
summary() { echo "$1: $passed passed, $failed failed"; [[ $failed -eq 0 ]]; }
