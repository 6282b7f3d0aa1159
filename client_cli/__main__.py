"""rijkschat: the end-to-end encrypted command-line Matrix client.

A thin synchronous shell: parse the command line, configure logging, run the command's
coroutine once with ``asyncio.run``, and turn every failure into one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from client_cli.commands import account, archive, devices, keys, messages, rooms
from client_cli.errors import CliError

log = logging.getLogger("rijkschat")

Impl = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rijkschat",
        description="Rijkschat: end-to-end encrypted Matrix chat for the Dutch government. "
        "Rooms marked 'gearchiveerd' are archived by the Rijksarchief.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (account, rooms, messages, devices, keys, archive):
        module.register(sub)
    return parser


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # nio logs whole events (even at WARNING, on validation errors): content and tokens must
    # never reach a log.
    logging.getLogger("nio").setLevel(logging.CRITICAL)
    logging.getLogger("peewee").setLevel(logging.WARNING)


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"rijkschat: {message}\n")
    sys.stderr.flush()
    return code


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # everything we write (session, E2E store, downloads) is private
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    impl: Impl = args.impl
    try:
        return asyncio.run(impl(args))
    except CliError as exc:
        return _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        # Ctrl-C: how `tail` and `verify` are meant to end; the command cleaned up already.
        return 0 if args.command == "tail" else 130
    except BrokenPipeError:  # e.g. `rijkschat read ROOM | head`: the reader has enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        return 0
    except Exception as exc:  # a bug: still one line, the traceback only with --verbose
        if args.verbose:
            log.exception("unexpected error")
        return _fail(f"unexpected error: {type(exc).__name__}: {exc}", 1)


if __name__ == "__main__":
    sys.exit(main())
