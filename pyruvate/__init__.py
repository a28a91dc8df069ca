"""pyruvate: a fast, multithreaded WSGI server with a C core."""

from pyruvate._pyruvate import FileWrapper, serve, shutdown, stats

__all__ = ["FileWrapper", "serve", "shutdown", "stats"]
__version__ = "0.1.0"
