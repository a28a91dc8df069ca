#!/usr/bin/env bash
# Stage "lint": formatting, static analysis, banned calls, Python syntax and types.
set -euo pipefail
cd "$(dirname "$0")/.."

c_files=$(git ls-files 'src/*.c' 'include/*.h' 'tests/*.c' 'tests/*.h' 2>/dev/null ||
          find src include tests -name '*.[ch]')

echo "lint: clang-format"
clang-format --dry-run --Werror $c_files

echo "lint: cppcheck"
cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,performance,portability \
    --inline-suppr --library=python --library=posix --suppress=missingIncludeSystem -D_GNU_SOURCE -D__linux__ \
    -Iinclude -I/usr/share/include/llhttp src/

echo "lint: banned functions"
# Not reentrant or unbounded: each has a safe replacement (strerror_r,
# gmtime_r, snprintf, memcpy with a known length, strtol).
banned='\b(strerror|strtok|localtime|gmtime|asctime|ctime|sprintf|vsprintf|strcpy|strcat|atoi|atol|gets)[[:space:]]*\('
if grep -nE "$banned" src/*.c include/pyruvate/*.h; then
    echo "lint: banned function used (see above)" >&2
    exit 1
fi

echo "lint: include graph"
# No circle among the includes, and no file includes one ranked above it
# (the ranks are in the script; see CONTRIBUTING.md, Layout).
${PYTHON:-python3} ci/include_graph.py

echo "lint: python byte-compile"
${PYTHON:-python3} -m compileall -q pyruvate tests examples >/dev/null

echo "lint: mypy"
if ! ${PYTHON:-python3} -c "import mypy" 2>/dev/null; then
    echo "lint: mypy is not installed in .venv (ci/requirements-test.txt): run make deps" >&2
    exit 1
fi
# The package, and the stub _pyruvate.pyi against the built extension
# (stubtest imports it: `make` first).
${PYTHON:-python3} -m mypy pyruvate
${PYTHON:-python3} -m mypy --strict pyruvate/_pyruvate.pyi pyruvate/__init__.py
PYTHONPATH=$PWD ${PYTHON:-python3} -m mypy.stubtest pyruvate._pyruvate

echo "lint: ok"
