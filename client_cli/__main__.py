"""rijkschat: the end-to-end encrypted command-line Matrix client.

A thin synchronous shell: parse the command line, configure logging, run the command's
coroutine once with ``asyncio.run``, and turn every failure into one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from client_cli.commands import account, archive, devices, keys, messages, rooms
from client_cli.errors import CliError

log = logging.getLogger("rijkschat")

Impl = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]

# Commands that run until the user stops them: they take SIGINT and SIGTERM themselves.
# Python (and with it asyncio.run) keeps a SIGINT disposition of "ignore" inherited from
# the parent, as every background job of a non-interactive shell (`make test &`, many CI
# runners, scripts) gets: such a `tail` would never end on Ctrl-C or `kill -INT`.
UNTIL_STOPPED = {"tail": 0, "verify": 130}  # command -> exit code when stopped


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


async def _until_signal(command: Coroutine[Any, Any, int]) -> int | None:
    """Run ``command``; SIGINT or SIGTERM cancel it (it cleans up as it unwinds): None then."""
    task = asyncio.ensure_future(command)
    loop = asyncio.get_running_loop()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        stopped = True
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        return await task
    except asyncio.CancelledError:
        if stopped:
            return None
        raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # everything we write (session, E2E store, downloads) is private
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    impl: Impl = args.impl
    try:
        if args.command in UNTIL_STOPPED:
            code = asyncio.run(_until_signal(impl(args)))
            return UNTIL_STOPPED[args.command] if code is None else code
        return asyncio.run(impl(args))
    except CliError as exc:
        return _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        # Ctrl-C while another command runs (it cleaned up as it unwound), or before a
        # command of UNTIL_STOPPED took the signal over.
        return UNTIL_STOPPED.get(args.command, 130)
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
