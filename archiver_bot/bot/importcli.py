"""``rijkschat-archiver import-keys``: a sender's room-key export into the archive.

The file is read and decrypted here first (a wrong passphrase or a damaged file stops
before anything is touched). Then the sessions go to the running bot's control endpoint,
which imports them into its own crypto store and decrypts the archived events they open.
When nothing listens there (the bot is stopped), this process does the same itself while
holding the archive's writer lock, so the bot cannot start meanwhile and never two
processes write the bot's crypto store at once.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp

from archiver_bot.archive import Actor, ArchiveBusyError, ArchiveError, ArchivePaths, open_archive
from archiver_bot.bot.control import IMPORT_PATH
from archiver_bot.bot.keyexport import MAX_EXPORT_BYTES, KeyFileError, read_key_file
from archiver_bot.bot.keyimport import ImportedSessions, ImportOutcome, NothingToImportError
from archiver_bot.errors import ArchiverError, ConfigError
from archiver_bot.settings import ArchiverSettings

PURPOSE = "import of room keys from a sender's key export"
STARTING_WAIT = 60.0


class _NotListening(Exception):
    pass


def _read_private(path: Path, what: str, limit: int) -> bytes:
    try:
        if path.stat().st_size > limit:
            raise KeyFileError(f"{what} {path} is larger than {limit // 2**20} MiB")
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read {what} {path}: {exc.strerror}") from None


def _passphrase(args: argparse.Namespace, encrypted: bool) -> str | None:
    if args.passphrase_file is not None:
        raw = _read_private(args.passphrase_file, "passphrase file", 64 * 1024)
        try:
            return raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise KeyFileError("the passphrase file is not UTF-8 text") from None
    if encrypted and sys.stdin.isatty():
        return getpass.getpass("Passphrase of the key export: ")
    return None


def _endpoint(data_dir: Path) -> tuple[str, str] | None:
    try:
        config = json.loads((data_dir / "rijkschat.json").read_text("utf-8"))
        port = int(config["archiver_metrics_port"])
        token = (data_dir / "archiver" / "control.token").read_text("utf-8").strip()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"http://127.0.0.1:{port}{IMPORT_PATH}", token


async def _via_bot(url: str, token: str, body: dict[str, Any]) -> ImportOutcome:
    deadline = asyncio.get_running_loop().time() + STARTING_WAIT
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while True:
            try:
                async with http.post(
                    url, json=body, headers={"Authorization": f"Bearer {token}"}
                ) as resp:
                    status = resp.status
                    answer = await resp.json(content_type=None)
            except aiohttp.ClientConnectorError:
                raise _NotListening from None
            except (aiohttp.ClientError, ValueError) as exc:
                raise ArchiverError(f"the archiver's control endpoint failed: {exc}") from None
            if status == 503 and answer.get("error") == "starting":
                if asyncio.get_running_loop().time() > deadline:
                    raise ArchiverError("the archiver did not finish starting; try again")
                await asyncio.sleep(1.0)
                continue
            if status == 200:
                return ImportOutcome(
                    keys_read=int(answer["keys_read"]),
                    keys_used=int(answer["keys_used"]),
                    events_decrypted=int(answer["events_decrypted"]),
                    ignored=dict(answer.get("ignored") or {}),
                )
            raise ArchiverError(str(answer.get("message") or f"the archiver answered {status}"))


async def _in_process(
    data_dir: Path, database_url: str | None, sessions: list[Any], **kwargs: Any
) -> ImportOutcome:
    from archiver_bot.bot.runner import make_importer
    from archiver_bot.bot.session import make_client
    from archiver_bot.bot.state import BotState

    settings = ArchiverSettings.load(data_dir, database_url)
    if not settings.session_file.exists():
        raise ConfigError("the archiver never logged in: it has no crypto store to import into")
    try:
        archive = await open_archive(
            ArchivePaths.for_data_dir(data_dir), database_url=settings.database_url
        )
    except ArchiveBusyError:
        raise ArchiverError(
            "the archiver is running (it holds the archive's writer lock) but its control "
            "endpoint does not answer; try again when it is up"
        ) from None
    client = make_client(settings)
    try:
        saved = json.loads(settings.session_file.read_text("utf-8"))
        client.restore_login(saved["user_id"], saved["device_id"], saved["access_token"])
        registry = ImportedSessions(settings.imported_sessions_file)
        importer = make_importer(client, archive, BotState(settings.rooms_file), registry, None)
        return await importer.run(sessions, **kwargs)
    finally:
        await client.close()
        await archive.close()


def _report(outcome: ImportOutcome, where: str) -> None:
    print(f"keys read: {outcome.keys_read}")
    print(f"keys used: {outcome.keys_used}")
    print(f"events decrypted: {outcome.events_decrypted}")
    ignored = sum(outcome.ignored.values())
    print(f"sessions ignored: {ignored}" + (f" ({outcome.ignored_text()})" if ignored else ""))
    print(where)


async def _import(args: argparse.Namespace) -> int:
    data = _read_private(args.file, "key file", MAX_EXPORT_BYTES)
    encrypted = data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"-----BEGIN MEGOLM")
    sessions, _ = read_key_file(data, _passphrase(args, encrypted))
    if not sessions:
        raise KeyFileError("the key file holds no sessions")
    digest = hashlib.sha256(data).hexdigest()
    actor = Actor(args.by or f"local:{getpass.getuser()}", PURPOSE)
    kwargs: dict[str, Any] = {
        "actor": actor, "file_sha256": digest, "via": "cli", "room_filter": args.room,
    }
    endpoint = _endpoint(args.data_dir)
    if endpoint is not None:
        url, token = endpoint
        body = {
            "actor": {"user_id": actor.user_id, "purpose": actor.purpose},
            "via": "cli", "room_id": args.room, "file_sha256": digest, "sessions": sessions,
        }
        try:
            outcome = await _via_bot(url, token, body)
        except _NotListening:
            pass
        else:
            _report(outcome, "imported by the running archiver")
            return 0
    outcome = await _in_process(args.data_dir, args.database_url, sessions, **kwargs)
    _report(outcome, "imported with the archiver stopped (under its writer lock)")
    return 0


def import_keys_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rijkschat-archiver import-keys",
        description="Import a sender's room-key export (Element's 'Export E2E room keys' "
        "file or a JSON list of sessions) and decrypt the archived events it opens.",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("pilot-data"))
    parser.add_argument("file", type=Path, help="the export file")
    parser.add_argument(
        "--passphrase-file", type=Path, default=None,
        help="file holding the export's passphrase (asked for when omitted on a terminal)",
    )
    parser.add_argument("--room", default=None, help="take only sessions of this room id")
    parser.add_argument("--by", default=None, help="who imports (access log); default local:USER")
    parser.add_argument("--database-url", default=None, help="archive database URL")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_import(args))
    except NothingToImportError as exc:
        print(f"rijkschat-archiver import-keys: {exc}", file=sys.stderr)
        return 1
    except (ArchiverError, ArchiveError) as exc:
        print(f"rijkschat-archiver import-keys: {exc}", file=sys.stderr)
        return 1
