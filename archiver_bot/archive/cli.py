"""Archive subcommands of ``rijkschat-archiver``: ``verify``, ``export-public-key`` and
``destroy-expired``. Each ``*_main(argv)`` returns the process exit code."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .checkpoints import Head, read_head
from .engine import make_engine, schema_revision
from .errors import ArchiveError
from .keys import load_public_key, public_pem
from .models import ArchivePaths, RoomVerification, VerifyReport
from .store import open_archive
from .verify import verify


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", required=True, type=Path, help="the archiver's data dir")
    parser.add_argument(
        "--database-url",
        default=None,
        help="database URL (default: sqlite+aiosqlite:///DATA_DIR/archive/archive.db)",
    )


def _line(name: str, result: RoomVerification) -> str:
    if result.ok:
        notes = [result.detail] if result.detail else []
        if result.imported_decryptions:
            notes.append(f"{result.imported_decryptions} decrypted with imported keys")
        extra = f" ({'; '.join(notes)})" if notes else ""
        return f"OK      {name}  {result.entries} entries{extra}"
    return f"BROKEN  {name}  position {result.position}: {result.kind} ({result.detail})"


def print_report(report: VerifyReport, out: TextIO) -> None:
    for room_id, result in report.rooms.items():
        print(_line(room_id, result), file=out)
    if report.access_log is not None:
        print(_line("access log", report.access_log), file=out)
    if report.woo_log is not None:
        print(_line("Woo log", report.woo_log), file=out)
    print(f"checkpoints: {report.checkpoints} signed checkpoints read", file=out)
    for problem in report.problems:
        print(f"PROBLEM {problem}", file=out)
    print("archive verified: OK" if report.ok else "archive verification FAILED", file=out)


async def _verify(
    url: str, key: Ed25519PublicKey, room: str | None, head: Head | None
) -> VerifyReport | None:
    engine = make_engine(url)
    try:
        if await schema_revision(engine) is None:
            return None
        return await verify(engine, key, room, head)
    finally:
        await engine.dispose()


def verify_main(argv: list[str]) -> int:
    """``rijkschat-archiver verify --data-dir DIR [--room ROOM_ID] [--database-url URL]
    [--public-key FILE]``: exit 0 when every chain and checkpoint holds, 1 otherwise."""
    parser = argparse.ArgumentParser(
        prog="rijkschat-archiver verify",
        description="Recompute the archive's hash chains and check the signed checkpoints.",
    )
    _common(parser)
    parser.add_argument("--room", default=None, help="verify only this room id")
    parser.add_argument(
        "--public-key",
        type=Path,
        default=None,
        help="exported public key (PEM); default: derived from DATA_DIR/archive/signing.key",
    )
    args = parser.parse_args(argv)
    paths = ArchivePaths.for_data_dir(args.data_dir)
    url = args.database_url or paths.default_database_url
    if args.database_url is None and not paths.database.exists():
        print(f"error: no archive database at {paths.database}", file=sys.stderr)
        return 1
    try:
        key = load_public_key(args.public_key or paths.signing_key)
    except (OSError, ArchiveError) as exc:
        print(f"error: cannot load the verification key: {exc}", file=sys.stderr)
        return 1
    try:
        report = asyncio.run(_verify(url, key, args.room, read_head(paths.checkpoint_head)))
    except Exception as exc:  # any database failure is a failed check, never a traceback
        print(f"error: cannot read the archive: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if report is None:
        print("error: the database holds no archive (schema missing)", file=sys.stderr)
        return 1
    if args.room is not None and args.room not in report.rooms:
        print(f"error: room {args.room} is not in the archive", file=sys.stderr)
        return 1
    print_report(report, sys.stdout)
    return 0 if report.ok else 1


def export_public_key_main(argv: list[str]) -> int:
    """``rijkschat-archiver export-public-key --data-dir DIR``: print the PEM public key
    that verifies the archive's checkpoints (give it to auditors)."""
    parser = argparse.ArgumentParser(prog="rijkschat-archiver export-public-key")
    parser.add_argument("--data-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    paths = ArchivePaths.for_data_dir(args.data_dir)
    try:
        key = load_public_key(paths.signing_key)
    except (OSError, ArchiveError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(public_pem(key))
    return 0


async def _destroy(paths: ArchivePaths, url: str | None) -> str:
    # a "reader" may append next to the running archiver bot (chain heads are read under
    # the database lock), so destruction can run from cron without stopping the bot
    archive = await open_archive(paths, url, role="reader")
    try:
        report = await archive.destroy_expired()
    finally:
        await archive.close()
    held = ", ".join(report.held_rooms) or "none"
    return (
        f"destroyed {report.destroyed_events} events under {report.destroyed_keys} data keys; "
        f"legal hold blocked: {held}"
    )


def destroy_expired_main(argv: list[str]) -> int:
    """``rijkschat-archiver destroy-expired --data-dir DIR [--database-url URL]``:
    crypto-shred everything past its retention period (legal holds block)."""
    parser = argparse.ArgumentParser(prog="rijkschat-archiver destroy-expired")
    _common(parser)
    args = parser.parse_args(argv)
    try:
        print(asyncio.run(_destroy(ArchivePaths.for_data_dir(args.data_dir), args.database_url)))
    except ArchiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
