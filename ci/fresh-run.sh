#!/usr/bin/env bash
# Stage "fresh-run": the README's first command, as a new user runs it. In a
# clean clone (no .venv, no build/; the working tree's uncommitted changes
# and new files are copied in), `make run` goes to the background, the example must answer a
# real HTTP client, and SIGTERM to the server must end `make run` with
# status 0. Then, in the same clone, the ways `make run` and `make test` can
# trip over each other:
#   1. make run in the fresh clone; it must not create .venv;
#   2. make run again: deps has nothing to install, nothing is rebuilt;
#   3. after make run, the build, unit and integration targets of make test
#      work without a clean (.venv hard-linked in, as make deps would find it);
#   4. after a coverage build in place (what make test's coverage stage
#      leaves behind), make run relinks the release build and serves it.
# With CI=true as root (or FRESH_REMOVE_PACKAGE=name as root), a Debian
# package the build needs (node-llhttp) is removed first, so that step 1
# takes the apt-get path of `make deps` and the build must still find the
# sources it installs; it is put back if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
PYTHON=${PYTHON:-python3}
bash ci/require.sh fresh-run

remove=${FRESH_REMOVE_PACKAGE-}
if [ -z "${FRESH_REMOVE_PACKAGE+set}" ] && [ "${CI:-}" = true ]; then
    remove=node-llhttp
fi
if [ -n "$remove" ] && [ "$(id -u)" != 0 ]; then
    echo "fresh-run: not root, so $remove stays installed (the apt-get path is not checked)"
    remove=""
fi

work=$(mktemp -d)
clone=$work/clone
make_pid=""
cleanup() {
    if [ -n "$make_pid" ] && kill -0 "$make_pid" 2>/dev/null; then
        pkill -TERM -P "$make_pid" 2>/dev/null || true
        kill -TERM "$make_pid" 2>/dev/null || true
        wait "$make_pid" 2>/dev/null || true
    fi
    if [ -n "$remove" ] && ! dpkg-query -W -f='${Status}' "$remove" 2>/dev/null |
        grep -q "install ok installed"; then
        echo "fresh-run: putting $remove back"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "$remove" >/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "fresh-run: $*" >&2
    exit 1
}

# Runs `make run` in the clone in the background until the example answers,
# checks the body, stops the server with SIGTERM; make's output goes to
# $work/$1.log.
serve_once() {
    local label=$1 log=$work/$1.log port status body server
    port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    (cd "$clone" && exec $MAKE --no-print-directory run ADDRESS=127.0.0.1:$port ${RUN_ARGS:-}) >"$log" 2>&1 &
    make_pid=$!
    body=""
    for _ in $(seq 1 600); do # 5 minutes at most: apt-get and a build on a busy machine
        status=$(curl -s --max-time 2 -o "$work/body" -w '%{http_code}' "http://127.0.0.1:$port/") &&
            body=$(cat "$work/body") && break
        kill -0 "$make_pid" 2>/dev/null || break
        sleep 0.5
    done
    if [ -z "$body" ]; then
        tail -n 15 "$log" >&2
        fail "$label: make run did not serve on port $port"
    fi
    [ "$status" = 200 ] && [ "$body" = "Hello, World!" ] ||
        fail "$label: GET / answered $status with body '$body'"
    server=$(pgrep -P "$make_pid") || fail "$label: no server process under make run"
    grep -q 'examples/hello.py' "/proc/$server/cmdline" ||
        fail "$label: make run's child is not the example: $(tr '\0' ' ' <"/proc/$server/cmdline")"
    kill -TERM "$server"
    status=0
    wait "$make_pid" || status=$?
    make_pid=""
    if [ "$status" != 0 ]; then
        tail -n 15 "$log" >&2
        fail "$label: make run exited with status $status after SIGTERM to the server"
    fi
    echo "fresh-run: [${SECONDS}s] $label: served '$body', stopped by SIGTERM, make run exit status 0"
}

git clone -q . "$clone"
if ! git diff --quiet HEAD; then
    git diff HEAD --binary | git -C "$clone" apply
fi
git ls-files -z --others --exclude-standard | xargs -0 -r cp --parents -t "$clone"

if [ -n "$remove" ]; then
    echo "fresh-run: removing $remove, so that make run must install it"
    dpkg -r --force-depends "$remove" >/dev/null 2>&1
fi
serve_once "1 fresh clone${remove:+, $remove reinstalled}"
[ ! -e "$clone/.venv" ] || fail "make run created .venv: it should need only the build packages"

serve_once "2 again"
if grep -E '^  (CC|LINK) ' "$work/2 again.log"; then
    fail "the second make run rebuilt something"
fi

[ -d .venv ] && cp -al .venv "$clone/.venv"
(cd "$clone" && $MAKE --no-print-directory unit >"$work/unit.log" 2>&1) ||
    { tail -n 15 "$work/unit.log" >&2; fail "make unit failed after make run"; }
(cd "$clone" && $MAKE --no-print-directory integration \
    PYTEST_ARGS="-q -p no:cacheprovider -k test_basic" >"$work/integration.log" 2>&1) ||
    { tail -n 15 "$work/integration.log" >&2; fail "make integration failed after make run"; }
echo "fresh-run: [${SECONDS}s] 3 after make run: make unit and make integration (test_basic.py) pass"

(cd "$clone" && $MAKE --no-print-directory VARIANT=coverage all >/dev/null 2>&1) ||
    fail "the coverage build failed"
serve_once "4 after a coverage build in place"
grep -qE '^  LINK .*\(release\)' "$work/4 after a coverage build in place.log" ||
    fail "make run served without relinking the release build"
# A coverage build writes .gcda files when the process exits.
if [ -n "$(find "$clone/build/coverage" -name '*.gcda' -print -quit)" ]; then
    fail "make run served the coverage build"
fi
# Another Python after a build with the first: the objects that include
# Python.h must be built again for it, not linked from the first's.
first=$("$PYTHON" -c 'import sys; print(sys.version_info[:2])')
other=""
# pyenv's interpreters by path (its shims fail without a pyenv version set).
for candidate in /root/.pyenv/versions/3.1[23]*/bin/python3.1[23] /usr/bin/python3.1[23] \
    /root/.pyenv/versions/3.10*/bin/python3.10; do
    version=$("$candidate" -c 'import sys; print(sys.version_info[:2])' 2>/dev/null) || continue
    if [ "$version" != "$first" ]; then
        other=$candidate
        break
    fi
done
if [ -n "$other" ]; then
    RUN_ARGS="PYTHON=$other" serve_once "5 with $(basename "$other") after the first Python's build"
else
    echo "fresh-run: no second Python found: step 5 (another PYTHON) skipped"
fi
echo "fresh-run: ok (${SECONDS}s)"
