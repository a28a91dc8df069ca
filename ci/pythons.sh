#!/usr/bin/env bash
# `make test-pythons`: the extension built, the Check suite and the whole
# integration suite run against every supported CPython (PYTHONS; default:
# the "Programming Language :: Python :: 3.X" classifiers of pyproject.toml),
# each in its own virtualenv build/pythons/X.Y/venv with the pinned test
# requirements, objects in build/pythons/X.Y/obj. An interpreter that is not
# installed is skipped with a message (pyenv's are found, then pythonX.Y on
# PATH). One summary line per version; exits 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
PYTHONS=${PYTHONS:-$(grep -oP '"Programming Language :: Python :: \K3\.[0-9]+(?=")' pyproject.toml)}
PYTEST_ARGS=${PYTEST_ARGS:-}

find_python() {
    local version=$1 candidate found=""
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/python"$version"; do
        [ -x "$candidate" ] && found=$candidate # the last is the newest patch release
    done
    [ -n "$found" ] || found=$(command -v "python$version") || return 1
    echo "$found"
}

# The last line of a log matching a pattern (empty if none).
last_line() {
    grep -E "$2" "$1" | tail -n 1 || true
}

summary=()
failed=0
for version in $PYTHONS; do
    dir=build/pythons/$version
    if ! interpreter=$(find_python "$version"); then
        summary+=("python $version: SKIPPED (no python$version: neither pyenv's nor on PATH)")
        continue
    fi
    mkdir -p "$dir"
    echo "==> python $version ($interpreter)"
    status=ok
    if ! PYTHON=$interpreter VENV=$dir/venv bash ci/install-deps.sh >"$dir/deps.log" 2>&1; then
        tail -n 20 "$dir/deps.log"
        summary+=("python $version: FAILED installing the test requirements (see $dir/deps.log)")
        failed=1
        continue
    fi
    python=$dir/venv/bin/python
    make_args=(--no-print-directory PYTHON="$python" BUILD="$dir/obj")
    if ! $MAKE "${make_args[@]}" all unit-binary >"$dir/build.log" 2>&1; then
        tail -n 30 "$dir/build.log"
        summary+=("python $version: FAILED to build (see $dir/build.log)")
        failed=1
        continue
    fi
    $MAKE "${make_args[@]}" unit 2>&1 | tee "$dir/unit.log" | tail -n 1
    [ "${PIPESTATUS[0]}" = 0 ] || status=failed
    unit=$(last_line "$dir/unit.log" '^[0-9]+%: Checks:')
    # shellcheck disable=SC2086 # PYTEST_ARGS is a list of words; INTEGRATION_TESTS
    # (from the Makefile) is empty when PYTEST_ARGS names the tests itself
    "$python" -m pytest ${INTEGRATION_TESTS-tests/integration} -q -p no:cacheprovider -rfEsx $PYTEST_ARGS \
        2>&1 | tee "$dir/integration.log" | grep -v -E '^[.sxXFE]+ +\[ *[0-9]+%\]$'
    [ "${PIPESTATUS[0]}" = 0 ] || status=failed
    integration=$(last_line "$dir/integration.log" '(passed|failed|error|skipped).* in [0-9.]+s')
    [ "$status" = ok ] || failed=1
    summary+=("python $version: $status; unit: ${unit:-?}; integration: ${integration:-?}")
done

echo "==> test-pythons summary"
printf '%s\n' "${summary[@]}"
exit $failed
