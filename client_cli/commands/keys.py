"""keys export | import: the room keys of this device, in the format Element uses.

The file is the Matrix key-export format (``-----BEGIN MEGOLM SESSION DATA-----``,
PBKDF2-SHA-512, AES-256-CTR, HMAC-SHA-256). It lets the archivist decrypt messages the
archive could not (the archive then reports them as undecryptable), and moves keys between
devices. The passphrase is asked at a prompt (twice for an export) or read from a file;
it is never taken from the command line.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections import Counter
from pathlib import Path

from nio.exceptions import EncryptionError

from client_cli.errors import CliError, UsageError
from client_cli.matrix import connect
from client_cli.storage import Storage

# PBKDF2 rounds of an export (the format stores the count; Element uses 500000 too).
EXPORT_ROUNDS = 500_000
MIN_PASSPHRASE = 8


class KeyFileError(CliError):
    """The key file cannot be read, written or decrypted."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="export or import the room keys of this device")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    p = actions.add_parser(
        "export", help="write every room key of this device to FILE (Element's format)")
    p.add_argument("file", metavar="FILE", type=Path)
    p.add_argument("--passphrase-file", metavar="PFILE", type=Path,
                   help="read the passphrase from PFILE (its first line) instead of asking")
    p.set_defaults(impl=export_keys)

    p = actions.add_parser("import", help="read room keys from an export FILE")
    p.add_argument("file", metavar="FILE", type=Path)
    p.add_argument("--passphrase-file", metavar="PFILE", type=Path,
                   help="read the passphrase from PFILE (its first line) instead of asking")
    p.set_defaults(impl=import_keys)


def _from_file(path: Path) -> str:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read the passphrase file {path}: {reason}") from exc
    lines = text.splitlines()
    passphrase = lines[0] if lines else ""
    if not passphrase:
        raise UsageError(f"the passphrase file {path} is empty")
    return passphrase


def _no_terminal() -> UsageError:
    return UsageError("passphrase not given and no terminal to ask on (use --passphrase-file)")


def passphrase_for_export(path: Path | None) -> str:
    if path is not None:
        passphrase = _from_file(path)
    else:
        if not sys.stdin.isatty():
            raise _no_terminal()
        passphrase = getpass.getpass("Passphrase for the key file: ", stream=sys.stderr)
        again = getpass.getpass("The same passphrase again: ", stream=sys.stderr)
        if passphrase != again:
            raise UsageError("the passphrases differ; nothing was written")
    if len(passphrase) < MIN_PASSPHRASE:
        raise UsageError(f"the passphrase is too short (at least {MIN_PASSPHRASE} characters)")
    return passphrase


def passphrase_for_import(path: Path | None) -> str:
    if path is not None:
        return _from_file(path)
    if not sys.stdin.isatty():
        raise _no_terminal()
    passphrase = getpass.getpass("Passphrase of the key file: ", stream=sys.stderr)
    if not passphrase:
        raise UsageError("no passphrase given")
    return passphrase


def _new_file(target: Path) -> Path:
    if target.exists():
        raise UsageError(f"{target} exists already; choose another file name")
    if not target.parent.is_dir():
        raise UsageError(f"directory {target.parent} does not exist")
    return target


def _existing_file(source: Path) -> Path:
    if not source.is_file():
        raise UsageError(f"no such file: {source}")
    return source


async def export_keys(args: argparse.Namespace) -> int:
    target = _new_file(Path(args.file))
    passphrase = passphrase_for_export(args.passphrase_file)
    async with connect(Storage()) as conn:  # syncs first: room keys that just arrived count
        client = conn.client
        assert client.store is not None
        sessions = list(client.store.load_inbound_group_sessions())
        if not sessions:
            raise KeyFileError("this device holds no room keys yet; nothing was written")
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            await client.export_keys(str(tmp), passphrase, count=EXPORT_ROUNDS)
            os.chmod(tmp, 0o600)
            os.link(tmp, target)  # never replaces a file that appeared meanwhile
        except FileExistsError as exc:
            raise UsageError(f"{target} exists already; choose another file name") from exc
        except OSError as exc:
            raise KeyFileError(f"cannot write {target}: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
    rooms = Counter(s.room_id for s in sessions)
    print(f"Exported {len(sessions)} room keys of {len(rooms)} rooms to {target}. Keep the "
          "file and its passphrase apart; give both to the archivist only.")
    return 0


async def import_keys(args: argparse.Namespace) -> int:
    source = _existing_file(Path(args.file))
    passphrase = passphrase_for_import(args.passphrase_file)
    async with connect(Storage(), sync=False) as conn:
        client = conn.client
        assert client.store is not None
        assert client.olm is not None
        before = {(s.room_id, s.id) for s in client.store.load_inbound_group_sessions()}
        try:
            await client.import_keys(str(source), passphrase)
        except EncryptionError as exc:
            raise KeyFileError(
                f"cannot import {source}: wrong passphrase or not a key export ({exc})"
            ) from exc
        except (OSError, UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise KeyFileError(f"cannot read {source} as a key export: {exc}") from exc
        after = {(s.room_id, s.id) for s in client.store.load_inbound_group_sessions()}
    new = after - before
    print(f"Imported {len(new)} new room keys of {len({r for r, _ in new})} rooms from {source}.")
    return 0
