"""The benchmark scripts time only a release build of pyruvate.

`make test` leaves a coverage build (-O0, instrumented) in place. Timing it by
running tests/bench/bench.py directly once reported a third less throughput
than the release build had. The extension names its variant
(_pyruvate.BUILD_VARIANT) and the scripts refuse any other than release.
"""
import os
import pathlib
import subprocess
import sys

import support

BENCH = pathlib.Path(support.REPO_ROOT) / "tests" / "bench"
sys.path.insert(0, str(BENCH))
import bench  # noqa: E402


def _fake_root(tmp_path, variant=None, text=""):
    """A checkout whose extension is a Python module: with BUILD_VARIANT, or
    (variant None) without, as built before the variant was named."""
    package = tmp_path / "pyruvate"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "9.9"\n')
    assigned = "" if variant is None else "BUILD_VARIANT = %r\n" % variant
    (package / "_pyruvate.py").write_text(assigned + text)
    return str(tmp_path)


def test_the_extension_names_the_variant_make_built():
    # In a subprocess: an ASan build (make test-asan) loads only with its
    # runtime preloaded, which this test process does not have.
    result = subprocess.run([sys.executable, "-c", "import pyruvate._pyruvate as c; "
                             "print(c.BUILD_VARIANT); print(c.__file__)"],
                            capture_output=True, text=True, timeout=60, env=support.repo_env())
    assert result.returncode == 0, result.stderr[-2000:]
    variant, path = result.stdout.split()
    stamps = [p.parent.name for p in pathlib.Path(support.REPO_ROOT, "build").glob("*/.variant")]
    if pathlib.Path(path).parent == pathlib.Path(support.REPO_ROOT, "pyruvate") and len(stamps) == 1:
        assert variant == stamps[0]
    assert variant in {"release", "debug", "asan", "coverage", "tsan", "gcc-check", "clang-check"}


def test_a_release_build_may_be_timed(tmp_path):
    assert bench.pyruvate_build(_fake_root(tmp_path, "release")) == (0, "9.9", "")


def test_a_coverage_build_is_refused_with_the_fix(tmp_path):
    rc, version, problem = bench.pyruvate_build(_fake_root(tmp_path, "coverage"))
    assert (rc, version) == (0, "9.9")
    assert "'coverage' build, not release" in problem and "run `make`" in problem


def test_an_older_build_is_judged_by_its_symbols(tmp_path):
    assert bench.pyruvate_build(_fake_root(tmp_path / "a")) == (0, "9.9", "")
    problem = bench.pyruvate_build(_fake_root(tmp_path / "b", text="# __gcov_merge_add\n"))[2]
    assert "'coverage' build, not release" in problem
    problem = bench.pyruvate_build(_fake_root(tmp_path / "c", text="# __asan_init\n"))[2]
    assert "'asan' build, not release" in problem


def test_an_asan_build_that_does_not_import_is_named(tmp_path):
    # Without its runtime preloaded an ASan build fails to import: the
    # scripts still say what it is and how to fix it.
    package = tmp_path / "pyruvate"
    package.mkdir()
    (package / "__init__.py").write_text("from ._pyruvate import serve\n__version__ = '9.9'\n")
    (package / "_pyruvate.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF __asan_init")
    rc, version, problem = bench.pyruvate_build(str(tmp_path))
    assert rc == 0 and "'asan' build, not release" in problem and "run `make`" in problem


def test_a_preloaded_library_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libasan.so.8")
    problem = bench.pyruvate_build(_fake_root(tmp_path, "release"))[2]
    assert problem.startswith("LD_PRELOAD is set (/usr/lib/libasan.so.8)")


def test_per_request_only_checks_the_builds_it_times(tmp_path):
    # bjoern beside another checkout: this checkout's build is not timed.
    import per_request
    servers = [s for s in bench.all_servers() if s.name in ("pyruvate", "bjoern")]
    base = per_request.Base(str(tmp_path))
    assert per_request.timed_roots([servers[1], base]) == [str(tmp_path)]
    assert per_request.timed_roots(servers) == [bench.ROOT]
    assert per_request.timed_roots([servers[1]]) == []


def test_per_request_refuses_a_coverage_base_before_starting_a_server(tmp_path):
    root = _fake_root(tmp_path, "coverage")
    result = subprocess.run([sys.executable, str(BENCH / "per_request.py"), "--servers", "pyruvate",
                             "--base", root, "--rounds", "1"],
                            capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=""), cwd=str(BENCH))
    assert result.returncode != 0
    assert "the pyruvate built in %s is a 'coverage' build, not release" % root in result.stderr, \
        result.stderr[-2000:]
