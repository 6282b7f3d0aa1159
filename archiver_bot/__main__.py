"""rijkschat-archiver: run the archiver bot, verify the archive, import room keys."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from archiver_bot.errors import ArchiverError
from archiver_bot.settings import DEFAULT_UNDECRYPTABLE_GRACE_SECONDS

log = logging.getLogger("rijkschat.archiver")

# Subcommands implemented by the archive store's own command-line module.
_ARCHIVE_COMMANDS = {
    "verify": "verify_main",
    "export-public-key": "export_public_key_main",
    "destroy-expired": "destroy_expired_main",
}


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # nio logs whole events (even at WARNING, on validation errors): content must never reach a log.
    logging.getLogger("nio").setLevel(logging.ERROR)
    logging.getLogger("peewee").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


async def _run_until_signal(args: argparse.Namespace) -> None:
    from archiver_bot.bot.runner import run
    from archiver_bot.settings import ArchiverSettings

    settings = ArchiverSettings.load(
        args.data_dir, args.database_url,
        undecryptable_grace_seconds=args.undecryptable_grace,
        notify_senders=not args.no_sender_notices,
    )
    task = asyncio.ensure_future(run(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list and args_list[0] in _ARCHIVE_COMMANDS:
        from archiver_bot.archive import cli

        command: Callable[[list[str]], int] = getattr(cli, _ARCHIVE_COMMANDS[args_list[0]])
        return command(args_list[1:])
    if args_list and args_list[0] == "import-keys":
        from archiver_bot.bot.importcli import import_keys_main

        _configure_logging(False)
        logging.getLogger().setLevel(logging.WARNING)
        return import_keys_main(args_list[1:])
    parser = argparse.ArgumentParser(prog="rijkschat-archiver")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the archiver bot")
    run_p.add_argument("--data-dir", type=Path, default=Path("pilot-data"))
    run_p.add_argument("--database-url", default=None, help="archive database URL")
    run_p.add_argument(
        "--undecryptable-grace", type=float, default=DEFAULT_UNDECRYPTABLE_GRACE_SECONDS,
        metavar="SECONDS",
        help="report an event still undecryptable this long after it was sent, and tell its "
        "sender how to export the keys (default: %(default).0f)",
    )
    run_p.add_argument(
        "--no-sender-notices", action="store_true",
        help="do not send server notices to senders of undecryptable events",
    )
    run_p.add_argument("-v", "--verbose", action="store_true")
    sub.add_parser("verify", help="verify the archive's integrity (see verify --help)")
    sub.add_parser("export-public-key", help="print the checkpoint signing public key (PEM)")
    sub.add_parser("destroy-expired", help="crypto-shred content past its retention")
    sub.add_parser("import-keys", help="import a sender's room-key export (see import-keys --help)")
    args = parser.parse_args(args_list)
    _configure_logging(args.verbose)
    try:
        asyncio.run(_run_until_signal(args))
    except ArchiverError as exc:
        print(f"rijkschat-archiver: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
