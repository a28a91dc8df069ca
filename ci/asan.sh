#!/usr/bin/env bash
# Stage "sanitizers": the extension built with ASan+UBSan, and the whole
# integration suite run against it. CPython itself is not instrumented, so
# libasan is preloaded into the interpreter that runs the servers.
set -euo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}

$MAKE --no-print-directory VARIANT=asan all
libasan=$(gcc -print-file-name=libasan.so)
# Leak checking is on; ci/lsan.supp explains what of CPython it leaves out.
export LSAN_OPTIONS="suppressions=$PWD/ci/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYRUVATE_TEST_LD_PRELOAD="$libasan"
export PYTHONMALLOC=malloc
status=0
.venv/bin/python -m pytest -q -p no:cacheprovider ${INTEGRATION_TESTS-tests/integration} ${PYTEST_ARGS:-} || status=$?
# Put the normal build back in place for whatever runs next.
$MAKE --no-print-directory all >/dev/null
exit $status
