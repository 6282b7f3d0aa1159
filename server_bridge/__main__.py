"""rijkschat-server: up | serve | audit."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from server_bridge.errors import BridgeError
from server_bridge.settings import (
    DEFAULT_BRIDGE_PORT,
    DEFAULT_HOMESERVER_PORT,
    DEFAULT_SERVER_NAME,
    DEFAULT_UNDECRYPTABLE_GRACE,
    Settings,
)

log = logging.getLogger("rijkschat.server")


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # schema checks on every open


def _run_until_signal(coro: Coroutine[Any, Any, None]) -> None:
    async def runner() -> None:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(runner())


def _cmd_up(args: argparse.Namespace) -> None:
    from server_bridge.roster import load_roster
    from server_bridge.supervisor import up

    roster = load_roster(args.roster)  # a bad roster stops us before anything starts
    settings = Settings(
        data_dir=args.data_dir.resolve(),
        server_name=args.server_name,
        homeserver_port=args.homeserver_port,
        bridge_port=args.bridge_port,
        archiver_metrics_port=args.metrics_port,
        undecryptable_grace_seconds=args.undecryptable_grace,
        sender_notices=not args.no_sender_notices,
    )
    _run_until_signal(up(settings, roster, args.startup_timeout, args.archiving_mode))


def _cmd_serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from server_bridge.web.app import create_app

    settings = Settings.load(args.data_dir.resolve())
    web.run_app(
        create_app(settings),
        host=settings.bind_host,
        port=settings.bridge_port,
        print=None,
        access_log=None,
    )


def _cmd_audit(args: argparse.Namespace) -> int:
    from server_bridge.appservice.cli import audit_command

    return asyncio.run(
        audit_command(
            args.data_dir.resolve(),
            as_json=args.json,
            room_id=args.room,
            grace_seconds=args.grace_seconds,
        )
    )


def _non_negative(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if number < 0 or number != number:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {value!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rijkschat-server", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    up_p = sub.add_parser("up", help="run the whole pilot on this machine")
    up_p.add_argument("--data-dir", type=Path, default=Path("pilot-data"))
    up_p.add_argument("--server-name", default=DEFAULT_SERVER_NAME)
    up_p.add_argument("--homeserver-port", type=int, default=DEFAULT_HOMESERVER_PORT)
    up_p.add_argument("--bridge-port", type=int, default=DEFAULT_BRIDGE_PORT)
    up_p.add_argument(
        "--metrics-port", type=int, default=None,
        help="the archiver's Prometheus port (default: bridge port + 1)",
    )
    up_p.add_argument("--roster", type=Path, default=None, help="roster TOML (default: demo)")
    up_p.add_argument(
        "--startup-timeout",
        type=float,
        default=180.0,
        help="seconds to wait for the homeserver to answer",
    )
    up_p.add_argument(
        "--archiving-mode",
        choices=("enforce", "monitor"),
        default="enforce",
        help="enforce: refuse messages in a key official's room until the archiver has "
        "joined, and refuse removing it; monitor: only log (default: enforce)",
    )
    up_p.add_argument(
        "--undecryptable-grace", type=_non_negative, default=DEFAULT_UNDECRYPTABLE_GRACE,
        metavar="SECONDS",
        help="an event still undecryptable this long after it was sent is listed in the "
        "review UI with what to do, and its sender gets a server notice (default: %(default).0f)",
    )
    up_p.add_argument(
        "--no-sender-notices", action="store_true",
        help="do not send server notices to senders of undecryptable events",
    )
    up_p.set_defaults(func=_cmd_up)

    serve_p = sub.add_parser("serve", help="run the bridge service only")
    serve_p.add_argument("--data-dir", type=Path, default=Path("pilot-data"))
    serve_p.set_defaults(func=_cmd_serve)

    audit_p = sub.add_parser(
        "audit",
        help="compare the ledger with the archive; exit 0 only when the archive is complete",
    )
    audit_p.add_argument("--data-dir", type=Path, default=Path("pilot-data"))
    audit_p.add_argument("--json", action="store_true", help="print the report as JSON")
    audit_p.add_argument("--room", default=None, help="only this room id")
    audit_p.add_argument(
        "--grace-seconds",
        type=float,
        default=0.0,
        help="report events younger than this as pending, not missing",
    )
    audit_p.set_defaults(func=_cmd_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        code = args.func(args)
    except BridgeError as exc:
        print(f"rijkschat-server: {exc}", file=sys.stderr)
        return exc.exit_code
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
