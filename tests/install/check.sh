# Sourced by the shell tests (tests/install/test_*.sh): check NAME COMMAND...
# runs one test and counts it; finish NAME prints the counts, appends
# "passed failed" to $TAILOR_TEST_COUNTS like the CUnit programs and returns
# the status.
passed=0
failed=0
check() {
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1)); echo "  Test: $name ...passed"
  else
    failed=$((failed + 1)); echo "  Test: $name ...FAILED"
  fi
}
finish() {
  echo "$1: $passed passed, $failed failed"
  [ -n "${TAILOR_TEST_COUNTS:-}" ] && echo "$passed $failed" >> "$TAILOR_TEST_COUNTS"
  [ "$failed" -eq 0 ]
}
