#!/usr/bin/env bash
# Stage "coverage": builds with --coverage, runs the unit and integration
# tests against that build, and has gcovr write coverage/index.html and
# coverage/summary.txt. Fails under the thresholds in coverage/gcovr.cfg.
set -euo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}

find build/coverage -name '*.gcda' -delete 2>/dev/null || true
$MAKE --no-print-directory VARIANT=coverage all unit-binary
CK_FORK=yes build/coverage/check_pyruvate
.venv/bin/python -m pytest -q -p no:cacheprovider ${INTEGRATION_TESTS-tests/integration} ${PYTEST_ARGS:-}

# The gcov files live in build/coverage; sources are named relative to the root.
gcovr --config coverage/gcovr.cfg --root . --filter "src/" --exclude "tests/" \
    --html-details coverage/index.html --txt coverage/summary.txt build/coverage \
    || { cat coverage/summary.txt 2>/dev/null; echo "coverage: below the threshold" >&2; exit 1; }
