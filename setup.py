"""Builds pyruvate._pyruvate from src/ plus llhttp's C sources.

llhttp comes from Debian's node-llhttp package (LLHTTP_DIR, default
/usr/share/llhttp). setuptools only accepts relative source paths, so its
files are staged into build/llhttp-src (ignored by git) first; they are never
part of this repository.
"""

import os
import shutil
import sysconfig

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
LLHTTP_DIR = os.environ.get("LLHTTP_DIR", "/usr/share/llhttp")
LLHTTP_INCLUDE = os.environ.get("LLHTTP_INCLUDE", "/usr/share/include/llhttp")
LLHTTP_FILES = ("llhttp.c", "api.c", "http.c")
STAGE = os.path.join("build", "llhttp-src")

SOURCES = [
    "buf", "listen", "acceptor", "pool", "conn", "request", "http_status", "response", "log",
    "systemd", "proxy", "idle", "fdlimit", "park",
    "module", "server", "worker", "wsgi", "input", "filewrapper",
]


def stage_llhttp():
    missing = [f for f in LLHTTP_FILES if not os.path.exists(os.path.join(LLHTTP_DIR, f))]
    if missing:
        raise SystemExit(
            f"llhttp sources not found in {LLHTTP_DIR} ({', '.join(missing)}): "
            "install Debian's node-llhttp or set LLHTTP_DIR")
    os.makedirs(os.path.join(HERE, STAGE), exist_ok=True)
    for name in LLHTTP_FILES:
        shutil.copyfile(os.path.join(LLHTTP_DIR, name), os.path.join(HERE, STAGE, name))
    return [os.path.join(STAGE, name) for name in LLHTTP_FILES]


extension = Extension(
    "pyruvate._pyruvate",
    sources=[os.path.join("src", name + ".c") for name in SOURCES] + stage_llhttp(),
    include_dirs=["include", LLHTTP_INCLUDE],
    define_macros=[("_GNU_SOURCE", None)],
    extra_compile_args=["-std=c11", "-pthread", "-fvisibility=hidden", "-O2"],
    extra_link_args=["-pthread"],
)

setup(ext_modules=[extension])
