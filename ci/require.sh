#!/usr/bin/env bash
# Checks that the tools of the given stages are installed (ci/packages.txt)
# and names the Debian package of each one that is not, one line each:
#   bash ci/require.sh fuzz
# Exits 1 when anything is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LLHTTP_DIR=${LLHTTP_DIR:-/usr/share/llhttp} # a probe may name it

# Sets `what` to a readable name of the probed thing; true when present.
present() {
    local probe=$1 path
    what=${probe#*:}
    what=${what//'$LLHTTP_DIR'/$LLHTTP_DIR}
    case $probe in
    cmd:*) command -v "$what" >/dev/null || [ -x "/usr/sbin/$what" ] ;;
    file:*) [ -e "$what" ] ;;
    pkgconfig:*) pkg-config --exists "$what" 2>/dev/null ;;
    python-module:*) "$PYTHON" -c "import $what" 2>/dev/null ;;
    python-headers)
        what="Python.h of $PYTHON"
        path=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])') &&
            [ -e "$path/Python.h" ] ;;
    clang-rt:*)
        what="libclang_rt.$what-$(uname -m).a"
        # clang prints the bare name when it has no such library.
        path=$(clang -print-file-name="$what" 2>/dev/null) && [ "${path#/}" != "$path" ] ;;
    *) echo "require: unknown probe $probe in ci/packages.txt" >&2; return 1 ;;
    esac
}

missing=0
while read -r package probe stages; do
    for stage in "$@"; do
        if [[ " $stages " == *" $stage "* ]] && ! present "$probe"; then
            echo "$stage: missing $what: install Debian package $package (\`make deps\` as root)" >&2
            missing=1
            break
        fi
    done
done < <(grep -v '^#' ci/packages.txt | grep -v '^[[:space:]]*$')
exit $missing
