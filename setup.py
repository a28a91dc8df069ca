"""Builds pyruvate._pyruvate from src/ plus llhttp's C sources.

llhttp comes from Debian's node-llhttp package (LLHTTP_DIR, default
/usr/share/llhttp; headers in LLHTTP_INCLUDE). It is never part of this
repository nor of the sdist: build_ext looks for it when it compiles, so
`python -m build --sdist` works without it and a build without it stops with
a message naming the package. setuptools only accepts relative source paths,
so llhttp's files are staged into build/llhttp-src (ignored by git) first.
"""

import os
import shutil

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

LLHTTP_FILES = ("llhttp.c", "api.c", "http.c")
STAGE = os.path.join("build", "llhttp-src")

SOURCES = [
    "buf", "listen", "acceptor", "pool", "room", "conn", "request", "http_status", "response",
    "log", "systemd", "proxy", "idle", "fdlimit", "park", "syntax", "wakeup", "pollset",
    "metrics", "registry", "handoff",
    "module", "server", "signals", "worker", "wsgi", "environ", "start_response", "send", "input",
    "filewrapper", "options", "stats",
]


def llhttp_dirs():
    return (os.environ.get("LLHTTP_DIR", "/usr/share/llhttp"),
            os.environ.get("LLHTTP_INCLUDE", "/usr/share/include/llhttp"))


def stage_llhttp():
    """Copies llhttp's sources next to ours; returns their relative paths."""
    source_dir, include_dir = llhttp_dirs()
    missing = [os.path.join(source_dir, name) for name in LLHTTP_FILES
               if not os.path.isfile(os.path.join(source_dir, name))]
    if not os.path.isfile(os.path.join(include_dir, "llhttp.h")):
        missing.append(os.path.join(include_dir, "llhttp.h"))
    if missing:
        raise SystemExit(
            "error: pyruvate needs llhttp's C sources, from Debian's node-llhttp package "
            "(apt-get install node-llhttp); not found: " + ", ".join(missing) + ". "
            "Elsewhere, point LLHTTP_DIR at llhttp's llhttp.c, api.c and http.c and "
            "LLHTTP_INCLUDE at the directory of llhttp.h.")
    os.makedirs(STAGE, exist_ok=True)
    for name in LLHTTP_FILES:
        shutil.copyfile(os.path.join(source_dir, name), os.path.join(STAGE, name))
    return [os.path.join(STAGE, name) for name in LLHTTP_FILES]


class BuildExtWithLlhttp(build_ext):
    def run(self):
        llhttp_sources = stage_llhttp()
        include_dir = llhttp_dirs()[1]
        for extension in self.extensions:
            extension.sources += [s for s in llhttp_sources if s not in extension.sources]
            extension.include_dirs.append(include_dir)
        super().run()


extension = Extension(
    "pyruvate._pyruvate",
    sources=[os.path.join("src", name + ".c") for name in SOURCES],
    include_dirs=["include"],
    define_macros=[("_GNU_SOURCE", None)],
    extra_compile_args=["-std=c11", "-pthread", "-fvisibility=hidden", "-O2"],
    extra_link_args=["-pthread"],
)

setup(ext_modules=[extension], cmdclass={"build_ext": BuildExtWithLlhttp})
