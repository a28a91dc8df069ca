#!/usr/bin/env bash
# Stage "deps": installs what the build and the tests need, and only what is
# missing. Debian packages (ci/packages.txt) with apt-get as root (otherwise
# the command is printed), Python packages from the pinned requirements into
# .venv (or the virtualenv VENV names, made with PYTHON: `make test-pythons`
# has one per Python version).
#   bash ci/install-deps.sh            every package of every stage, and the venv
#   bash ci/install-deps.sh build      only what building the extension needs
#                                      (`make run`), no venv
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
only_stage=${1:-}

packages=()
while read -r package probe stages; do
    if [ -z "$only_stage" ] || [[ " $stages " == *" $only_stage "* ]]; then
        packages+=("$package")
    fi
done < <(grep -v '^#' ci/packages.txt | grep -v '^[[:space:]]*$')

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "deps: installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "deps: missing Debian packages; run as root:" >&2
        echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
fi
[ -z "$only_stage" ] || exit 0

# Every ci/requirements-test*.txt goes into $VENV; the stamp holds their hash,
# so an unchanged set installs nothing.
requirements=(ci/requirements-test*.txt)
stamp=$VENV/.requirements-$(cat "${requirements[@]}" | sha256sum | cut -c1-16)
if [ ! -x "$VENV/bin/python" ]; then
    PYTHON=$PYTHON bash ci/require.sh venv
    echo "deps: creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ]; then
    for file in "${requirements[@]}"; do
        echo "deps: installing $file into $VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$file"
    done
    rm -f "$VENV"/.requirements-*
    touch "$stamp"
fi
