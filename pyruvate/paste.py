"""PasteDeploy server runner: ``[server:main] use = egg:pyruvate#main``.

Every option of :func:`pyruvate.serve` can be given in the ini file as a
string; it is converted here, and an unknown or malformed option stops the
start-up with a ``ValueError`` that names it::

    [server:main]
    use = egg:pyruvate#main
    socket = 127.0.0.1:8080
    workers = 2
    keepalive_timeout = 30
    chunked_transfer = yes

Without ``socket`` the listening sockets come from systemd (socket
activation: ``LISTEN_PID``/``LISTEN_FDS``).

The same table of options drives the command line (``pyruvate.__main__``).
When the application is Zope, a warning is logged if ``workers`` exceeds the
ZODB connection pool size.
"""

import logging
import sys

from pyruvate import _pyruvate

logger = logging.getLogger("pyruvate")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class OptionError(ValueError):
    """A serve() option given as text could not be used."""


def boolean(name, text):
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise OptionError(f"pyruvate option {name} = {text!r}: expected true/false/yes/no/on/off/1/0")


def integer(name, text):
    try:
        return int(text.strip())
    except ValueError:
        raise OptionError(f"pyruvate option {name} = {text!r}: expected an integer") from None


def seconds(name, text):
    try:
        value = float(text.strip())
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise OptionError(
            f"pyruvate option {name} = {text!r}: expected a positive number of seconds")
    return int(value) if value.is_integer() else value


def optional_integer(name, text):
    if text.strip().lower() in ("", "none"):
        return None
    return integer(name, text)


def octal_mode(name, text):
    digits = text.strip().lower()
    if digits.startswith("0o"):
        digits = digits[2:]
    try:
        mode = int(digits, 8)
    except ValueError:
        mode = -1
    if not 0 < mode <= 0o7777:
        raise OptionError(
            f"pyruvate option {name} = {text!r}: expected an octal file mode such as 660")
    return mode


def optional_text(name, text):
    text = text.strip()
    return None if text.lower() in ("", "none") else text


def plain_text(name, text):
    return text.strip()


def header_list(name, text):
    """Header names; "none" (or nothing) trusts no header at all."""
    text = text.strip()
    return "" if text.lower() == "none" else text


# How ini and command-line text becomes a value, per kind of option (the
# kinds of SERVE_OPTIONS in include/pyruvate/options.h).
CONVERTERS = {
    "COUNT": integer,
    "SIZE": integer,
    "SECONDS": seconds,
    "BOOL": boolean,
    "TEXT": plain_text,
    "LIMIT": optional_integer,
    "MODE": octal_mode,
    "PROXIES": optional_text,
    "HEADERS": header_list,
    "HOPS": integer,
    "PATH": optional_text,
}


def shown(default):
    """A default as --help and the README's options table show it."""
    if isinstance(default, bool):
        return str(default).lower()
    if default == "":
        return "''"
    return str(default)


# name: (converter, default as shown in --help, help text), in the order of
# serve()'s keyword arguments, from the C module's one table of options.
OPTIONS = {name: (CONVERTERS[kind], shown(default), text)
           for name, kind, default, text in _pyruvate.OPTIONS}

DEFAULT_WORKERS = 4


def convert_option(name, value):
    """One option from text (ini or command line) to its serve() value."""
    entry = OPTIONS.get(name)
    if entry is None:
        known = ", ".join(("socket", "workers") + tuple(OPTIONS))
        raise OptionError(f"unknown pyruvate option {name!r}; known options: {known}")
    if not isinstance(value, str):  # already converted (Python callers)
        return value
    return entry[0](name, value)


def convert_options(options):
    """Turns ini strings into serve() keyword arguments (without socket and
    workers)."""
    return {name: convert_option(name, value) for name, value in options.items()
            if name not in ("socket", "workers")}


def convert_workers(value):
    if value is None:
        return DEFAULT_WORKERS
    workers = integer("workers", value) if isinstance(value, str) else value
    if workers < 1:
        raise OptionError(f"pyruvate option workers = {value!r}: expected at least 1")
    return workers


def convert_socket(value):
    """None or an empty value: sockets from systemd (socket activation)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if value.lower() in ("", "none", "systemd"):
            return None
    return value


def zodb_databases():
    """(name, DB) of the ZODB databases Zope opened in this process, if any."""
    zope2 = sys.modules.get("Zope2")
    db = getattr(zope2, "DB", None) if zope2 is not None else None
    if db is None:
        return []
    databases = getattr(db, "databases", None) or {"main": db}
    return sorted(databases.items(), key=lambda item: str(item[0]))


def check_zodb_pool(workers):
    """Warns when more workers than ZODB connections may be busy at once.

    Zope opens one ZODB connection per request; a connection beyond the
    pool size is discarded after use (with its object cache), and ZODB
    logs a warning for every open beyond it. Returns the warnings logged."""
    messages = []
    for name, database in zodb_databases():
        try:
            pool_size = database.getPoolSize()
        except Exception:  # noqa: BLE001 - a stand-in database without pools
            continue
        if pool_size is not None and workers > pool_size:
            message = (
                f"{workers} workers but the ZODB connection pool of database {name!r} holds "
                f"{pool_size} connections: use at most {pool_size} workers or raise "
                f"pool-size in zope.conf (Zope's threads must not exceed it)")
            logger.warning(message)
            messages.append(message)
    return messages


def serve_paste(app, global_conf, **options):
    """The ``paste.server_runner`` entry point ``main``."""
    from pyruvate import serve

    options = dict(options)
    socket = convert_socket(options.pop("socket", None))
    workers = convert_workers(options.pop("workers", None))
    kwargs = convert_options(options)
    check_zodb_pool(workers)
    serve(app, socket, workers, **kwargs)
    return 0
