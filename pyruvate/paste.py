"""PasteDeploy server runner: ``[server:main] use = egg:pyruvate#main``.

Every option of :func:`pyruvate.serve` can be given in the ini file as a
string; it is converted here, and an unknown or malformed option stops the
start-up with a message that names it.
"""

from pyruvate._pyruvate import serve

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _boolean(name, text):
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"pyruvate option {name} = {text!r}: expected true/false/yes/no/on/off/1/0")


def _integer(name, text):
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"pyruvate option {name} = {text!r}: expected an integer") from None


def _number(name, text):
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"pyruvate option {name} = {text!r}: expected a number") from None


def _optional_integer(name, text):
    if text.strip().lower() in ("", "none"):
        return None
    return _integer(name, text)


CONVERTERS = {
    "workers": _integer,
    "max_number_headers": _integer,
    "max_request_line_size": _integer,
    "max_request_header_size": _integer,
    "max_request_body_size": _integer,
    "keepalive_timeout": _number,
    "request_timeout": _number,
    "send_timeout": _number,
    "shutdown_timeout": _number,
    "max_reuse_count": _integer,
    "max_connections": _integer,
    "max_queue_size": _integer,
    "qmon_warn_threshold": _optional_integer,
    "chunked_transfer": _boolean,
    "async_logging": _boolean,
    "backlog": _integer,
}


def convert_options(options):
    """Turns ini strings into serve() keyword arguments."""
    converted = {}
    for name, value in options.items():
        if name == "socket":
            continue
        converter = CONVERTERS.get(name)
        if converter is None:
            known = ", ".join(sorted(("socket",) + tuple(CONVERTERS)))
            raise ValueError(f"unknown pyruvate option {name!r}; known options: {known}")
        converted[name] = converter(name, value) if isinstance(value, str) else value
    return converted


def serve_paste(app, global_conf, **options):
    """The ``paste.server_runner`` entry point ``main``."""
    kwargs = convert_options(options)
    workers = kwargs.pop("workers", 4)
    socket = options.get("socket")
    if socket is None:
        raise ValueError("pyruvate: the 'socket' option is required (e.g. 127.0.0.1:8080)")
    serve(app, socket, workers, **kwargs)
    return 0
