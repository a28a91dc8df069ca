"""Command line: ``pyruvate module:app [--bind ADDRESS] [--workers N] [options]``.

Also run as ``python3 -m pyruvate``. ``pyruvate --help`` lists every
serve() option as a flag.
"""

import argparse
import importlib
import logging
import os
import sys
import traceback

from pyruvate.paste import (DEFAULT_WORKERS, OPTIONS, OptionError, boolean, check_zodb_pool,
                            convert_option, convert_socket)

DEFAULT_BIND = "127.0.0.1:7878"

EPILOG = """\
ADDRESS is host:port, [ipv6]:port, a Unix socket path (/run/app.sock or
unix:/run/app.sock), fd://N for an inherited listening socket, or
"systemd" for systemd socket activation (the default when systemd passed
sockets to this process, i.e. LISTEN_PID is our pid).

SIGTERM stops the server gracefully (exit status 0); so does SIGINT.

examples:
  pyruvate myproject.wsgi:application --bind 127.0.0.1:8000 --workers 8
  pyruvate myapp:create_app --factory --bind /run/myapp/http.sock --unix-socket-perms 660
"""


class CommandLineError(Exception):
    """An error the user can fix; printed without a traceback."""


def load_application(spec, factory=False, app_dir=None):
    """Imports "module:attribute" (the attribute may be dotted; default
    "application") and returns the WSGI application."""
    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "application"
    if not module_name or module_name.startswith(".") or not all(attribute.split(".")):
        raise CommandLineError(f"expected MODULE:ATTRIBUTE (e.g. myapp:application), got {spec!r}")
    path = os.path.abspath(app_dir) if app_dir else os.getcwd()
    if not os.path.isdir(path):
        raise CommandLineError(f"--app-dir {app_dir}: not a directory")
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        target = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and (module_name == error.name or module_name.startswith(error.name + ".")):
            raise CommandLineError(
                f"cannot import module {module_name!r}: {error} (looked in {path} and in "
                f"the packages of {sys.executable})") from None
        raise CommandLineError(
            f"cannot import module {module_name!r}: {error}\n{traceback.format_exc()}") from None
    except Exception as error:  # noqa: BLE001 - any failure while importing the app
        raise CommandLineError(
            f"error while importing module {module_name!r}: {error!r}\n"
            f"{traceback.format_exc()}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise CommandLineError(
                f"module {module_name!r} has no attribute {attribute!r}") from None
    if factory:
        if not callable(target):
            raise CommandLineError(f"{spec} is not callable, so it is no application factory")
        try:
            target = target()
        except Exception as error:  # noqa: BLE001
            raise CommandLineError(
                f"the application factory {spec}() failed: {error!r}\n"
                f"{traceback.format_exc()}") from None
    if not callable(target):
        raise CommandLineError(
            f"{spec}{'()' if factory else ''} is {type(target).__name__}, "
            f"not a callable WSGI application")
    return target


def _option_type(name):
    def convert(text):
        try:
            return convert_option(name, text)
        except OptionError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    convert.__name__ = name
    return convert


def build_parser():
    parser = argparse.ArgumentParser(
        prog="pyruvate",
        description="Serve a WSGI application with pyruvate, a multithreaded WSGI server "
                    "with a C core.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("application",
                        help="the WSGI application as MODULE:ATTRIBUTE (ATTRIBUTE may be "
                             "dotted; default 'application'), imported from the current "
                             "directory or --app-dir")
    parser.add_argument("--bind", "-b", metavar="ADDRESS", action="append",
                        help=f"where to listen (default {DEFAULT_BIND}, or the systemd "
                             "sockets when started by systemd); see below")
    parser.add_argument("--workers", "-w", metavar="N", type=_workers_type,
                        default=DEFAULT_WORKERS,
                        help=f"worker threads running the application (default "
                             f"{DEFAULT_WORKERS})")
    parser.add_argument("--factory", action="store_true",
                        help="ATTRIBUTE is a factory: call it without arguments to get the "
                             "application")
    parser.add_argument("--app-dir", metavar="DIR",
                        help="import the application from DIR (default: the current "
                             "directory)")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"],
                        help="level of the root logger, which prints to stderr (default info)")
    parser.add_argument("--version", action="version", version=_version())
    group = parser.add_argument_group(
        "server options", "the keyword arguments of pyruvate.serve(); timeouts in seconds")
    for name, (converter, default, text) in OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        if converter is boolean:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                               default=None, help=f"{text} (default {default})")
        else:
            group.add_argument(flag, dest=name, metavar="VALUE", type=_option_type(name),
                               default=None, help=f"{text} (default {default})")
    return parser


def _workers_type(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of threads, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1 worker is needed")
    return value


def _version():
    from pyruvate import __version__
    return f"pyruvate {__version__}"


def _systemd_sockets_for_us():
    return os.environ.get("LISTEN_PID") == str(os.getpid()) and "LISTEN_FDS" in os.environ


def resolve_bind(binds):
    """The serve() socket argument for the --bind values."""
    if not binds:
        return None if _systemd_sockets_for_us() else DEFAULT_BIND
    if len(binds) > 1:
        raise CommandLineError(
            "only one --bind is supported (pyruvate listens on one socket, or on every "
            "socket systemd passes)")
    bind = binds[0].strip()
    if bind.startswith("fd://"):
        try:
            return int(bind[5:])
        except ValueError:
            raise CommandLineError(f"--bind {bind}: expected fd://NUMBER") from None
    return convert_socket(bind)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    options = {name: getattr(args, name) for name in OPTIONS
               if getattr(args, name, None) is not None}
    try:
        socket = resolve_bind(args.bind)
        application = load_application(args.application, args.factory, args.app_dir)
    except CommandLineError as error:
        parser.exit(2, f"pyruvate: error: {error}\n")
    check_zodb_pool(args.workers)

    from pyruvate import serve
    try:
        serve(application, socket, args.workers, **options)
    except KeyboardInterrupt:
        pass
    except (ValueError, TypeError) as error:
        # A bad option or --bind value, found by serve() itself.
        parser.exit(2, f"pyruvate: error: {error}\n")
    except (OSError, RuntimeError) as error:
        # Start-up failures: nothing was started, nothing is left behind.
        parser.exit(1, f"pyruvate: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
