#!/usr/bin/env bash
# Runs CUnit test programs one after the other, each from the source root,
# and prints one closing line with the test counts of all of them:
#   tests: N passed, N failed
# TAILOR_VALGRIND=1 runs each under valgrind memcheck (leaks are errors).
set -u
counts=$(mktemp)
trap 'rm -f "$counts"' EXIT
export TAILOR_TEST_COUNTS=$counts
failed_progs=()
for t in "$@"; do
  echo "=== $t"
  if [ "${TAILOR_VALGRIND:-}" = 1 ]; then
    valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
      --show-leak-kinds=definite,indirect "$t"
  else
    "$t"
  fi
  rc=$?
  [ $rc -eq 0 ] || failed_progs+=("$t (exit $rc)")
done
passed=0; failed=0
while read -r p f; do passed=$((passed + p)); failed=$((failed + f)); done < "$counts"
if [ ${#failed_progs[@]} -gt 0 ]; then
  echo "failing programs: ${failed_progs[*]}"
  [ "$failed" -gt 0 ] || failed=${#failed_progs[@]}
fi
echo "tests: $passed passed, $failed failed"
[ ${#failed_progs[@]} -eq 0 ]
