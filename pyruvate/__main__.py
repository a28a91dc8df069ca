"""Command line: ``python3 -m pyruvate module:app [--bind ADDRESS] [--workers N]``."""

import argparse
import importlib
import logging
import sys

from pyruvate import serve
from pyruvate.paste import CONVERTERS


def load_application(spec, factory=False):
    """Imports "module:attribute" (attribute may be dotted)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"pyruvate: expected module:application, got {spec!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        target = importlib.import_module(module_name)
    except ImportError as error:
        raise SystemExit(f"pyruvate: cannot import {module_name!r}: {error}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise SystemExit(
                f"pyruvate: module {module_name!r} has no attribute {attribute!r}") from None
    if factory:
        target = target()
    if not callable(target):
        raise SystemExit(f"pyruvate: {spec} is not callable")
    return target


def build_parser():
    parser = argparse.ArgumentParser(
        prog="pyruvate", description="Serve a WSGI application with pyruvate.")
    parser.add_argument("application", help="the WSGI application as module:attribute")
    parser.add_argument("--bind", "-b", default="127.0.0.1:7878",
                        help="address to listen on, host:port or [ipv6]:port "
                             "(default 127.0.0.1:7878)")
    parser.add_argument("--workers", "-w", type=int, default=4,
                        help="number of worker threads (default 4)")
    parser.add_argument("--factory", action="store_true",
                        help="the attribute is a factory: call it to get the application")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"],
                        help="level of the 'pyruvate' logger (default info)")
    for name, converter in CONVERTERS.items():
        if name == "workers":
            continue
        parser.add_argument("--" + name.replace("_", "-"), dest=name, metavar="VALUE",
                            help=f"serve() option {name}")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = {}
    for name, converter in CONVERTERS.items():
        value = getattr(args, name, None)
        if name != "workers" and value is not None:
            try:
                options[name] = converter(name, value)
            except ValueError as error:
                raise SystemExit(f"pyruvate: {error}") from None
    application = load_application(args.application, args.factory)
    try:
        serve(application, args.bind, args.workers, **options)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
