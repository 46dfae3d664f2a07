#!/bin/sh
# run_all.sh: runs each test program given as an argument, sums their "name: N passed, M failed" lines and
# prints the overall line; exits non-zero when any check failed or any program crashed.
passed=0; failed=0; crashed=0
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -E 'FAIL|passed' 
    line=$(printf '%s\n' "$out" | grep -E '^[a-z_0-9]+: [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -z "$line" ]; then
        echo "$t: crashed or printed no summary (exit $rc)"; printf '%s\n' "$out" | tail -n 20; crashed=$((crashed + 1)); continue
    fi
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/'); f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
    passed=$((passed + p)); failed=$((failed + f))
    [ $rc -ne 0 ] && [ "$f" -eq 0 ] && { echo "$t: exit $rc"; crashed=$((crashed + 1)); }
done
failed=$((failed + crashed))
echo "tests: $passed passed, $failed failed"
[ $failed -eq 0 ]
