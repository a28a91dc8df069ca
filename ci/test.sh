#!/usr/bin/env bash
# The whole pipeline (`make test`): deps, lint, build with gcc and clang,
# the README's `make run` in a clean clone, unit, integration, fuzz replay,
# coverage. Each stage is also a make target; the last
# line names the stage that failed.
set -uo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}

run_stage() {
    local name=$1
    shift
    echo "==> stage $name"
    if ! "$@"; then
        echo "CI FAILED at stage: $name"
        exit 1
    fi
}

run_stage deps bash ci/install-deps.sh
run_stage lint $MAKE --no-print-directory lint
run_stage build-gcc $MAKE --no-print-directory build-gcc
run_stage build-clang $MAKE --no-print-directory build-clang
run_stage build $MAKE --no-print-directory all
run_stage fresh-run bash ci/fresh-run.sh
run_stage unit $MAKE --no-print-directory unit
run_stage integration $MAKE --no-print-directory integration
run_stage fuzz-replay $MAKE --no-print-directory fuzz-replay
run_stage coverage $MAKE --no-print-directory coverage
echo "==> coverage summary"
cat coverage/summary.txt
echo "all stages passed"
