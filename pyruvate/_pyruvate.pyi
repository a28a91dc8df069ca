"""Types of the C module pyruvate._pyruvate (src/module.c, src/options.c,
src/filewrapper.c). serve()'s keywords follow the table in
include/pyruvate/options.h; tests/integration/test_options.py checks that
this stub names each of them."""

import socket as _socket
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import Any, Protocol, final

class _StartResponse(Protocol):
    def __call__(self, status: str, headers: list[tuple[str, str]],
                 exc_info: Any = ..., /) -> Callable[[bytes], object]: ...

_Application = Callable[[dict[str, Any], _StartResponse], Iterable[bytes]]

class _HasFileno(Protocol):
    def fileno(self) -> int: ...

OPTIONS: tuple[tuple[str, str, object, str], ...]
# The Makefile's build variant ("release", "coverage", "asan"...); "release"
# for a pip install. Benchmarks refuse to time any other.
BUILD_VARIANT: str

def serve(
    application: _Application,
    socket: str | int | _socket.socket | _HasFileno | None,
    workers: int,
    *,
    max_number_headers: int = 32,
    max_request_line_size: int = 8192,
    max_request_header_size: int = 65536,
    max_request_body_size: int = 268435456,
    keepalive_timeout: float = 60,
    request_timeout: float = 30,
    header_timeout: float = 10,
    send_timeout: float = 60,
    shutdown_timeout: float = 30,
    shutdown_idle_grace: float = 1,
    max_reuse_count: int = 0,
    max_connections: int = 50000,
    max_queue_size: int = 1024,
    qmon_warn_threshold: int | None = None,
    chunked_transfer: bool = True,
    async_logging: bool = True,
    backlog: int = 1024,
    unix_socket_perms: int | str | None = None,
    trusted_proxy: str | None = None,
    trusted_proxy_headers: str | None = None,
    trusted_proxy_count: int = 1,
    health_path: str | None = None,
    metrics_path: str | None = None,
    url_scheme: str = "http",
    url_prefix: str = "",
    access_log: bool = False,
) -> None: ...

def stats() -> dict[str, Any] | None: ...
def shutdown(timeout: float | None = None) -> int: ...

def _on_signal(signum: int, frame: FrameType | None, /) -> None: ...

@final
class FileWrapper(Iterator[bytes]):
    @property
    def filelike(self) -> Any: ...
    @property
    def blksize(self) -> int: ...
    def __new__(cls, filelike: Any, blksize: int = 8192) -> FileWrapper: ...
    def __iter__(self) -> FileWrapper: ...
    def __next__(self) -> bytes: ...
    def close(self) -> None: ...
