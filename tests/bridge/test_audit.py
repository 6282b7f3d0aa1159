"""The completeness audit: the ledger against the archive, through the store's public API."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from archiver_bot.archive import ArchivePaths, EventRecord, open_archive
from server_bridge.appservice.audit import RoomAudit, StoreArchiveView, run_audit
from server_bridge.appservice.transactions import LedgerRow
from tests.bridge.conftest import Stack
from tests.e2e_client import E2EUser, wait_for
from tests.helpers import processes_mentioning

MESSAGES = ("m.room.message", "m.room.encrypted")


async def ledger_rows(stack: Stack, room_id: str, wanted: set[str]) -> list[LedgerRow]:
    async def complete() -> list[LedgerRow] | None:
        rows = (await stack.service.ledger.rows_by_room()).get(room_id, [])
        return rows if wanted <= {r.event_id for r in rows} else None

    result: list[LedgerRow] = await wait_for(complete, timeout=20, interval=0.05)
    return result


def delete_from_archive(database: Path, event_ids: list[str]) -> None:
    with sqlite3.connect(database) as db:
        marks = ",".join("?" for _ in event_ids)
        deleted = db.execute(f"DELETE FROM archive_records WHERE uid IN ({marks})", event_ids)
        assert deleted.rowcount == len(event_ids)


def record_of(row: LedgerRow) -> EventRecord:
    if row.type == "m.room.member":
        content: dict[str, object] = {"membership": row.membership}
    elif row.type in MESSAGES:
        content = {"msgtype": "m.text", "body": "inhoud"}
    else:
        content = {}
    return EventRecord(
        event_id=row.event_id,
        room_id=row.room_id,
        sender=row.sender,
        origin_server_ts=row.origin_server_ts,
        type=row.type,
        content=content,
        state_key=row.state_key,
    )


async def test_deleting_archive_rows_makes_the_audit_report_exactly_those(
    stack: Stack, tmp_path: Path
) -> None:
    """The store's write API stands in for the archiver here; see test_audit_e2e for the
    whole pipeline with the real archiver bot."""
    minister = await stack.user("minister")
    room_id = await minister.create_room(name="Ministerraad")
    sent = [await minister.text_when_archived(room_id, f"punt {n}") for n in range(5)]
    rows = await ledger_rows(stack, room_id, set(sent))

    paths = ArchivePaths.for_data_dir(tmp_path)
    archive = await open_archive(paths)
    try:
        await archive.ingest([record_of(r) for r in rows])
        view = StoreArchiveView(archive)

        async def audit() -> RoomAudit:
            report = await run_audit(stack.service.ledger, view, stack.archiver)
            return next(r for r in report.rooms if r.room_id == room_id)

        room = await audit()
        assert (room.missing, room.undecryptable) == ([], [])
        assert room.expected >= len(sent) + 1  # the archiver's join and every message
        assert room.before_archiver >= 1  # the room's creation

        delete_from_archive(paths.database, [sent[1], sent[3]])
        room = await audit()
        assert room.missing == [sent[1], sent[3]]
        assert room.undecryptable == []
    finally:
        await archive.close()


@pytest.fixture(scope="module")
async def archiver_bot(stack: Stack) -> AsyncIterator[asyncio.subprocess.Process]:
    data_dir = stack.settings.data_dir
    log = data_dir / "logs" / "archiver.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as fh:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "archiver_bot", "run", "--data-dir", str(data_dir),
            stdout=fh, stderr=fh,
        )

    async def syncing() -> bool:
        assert proc.returncode is None, log.read_text()[-3000:]
        try:
            status = json.loads((data_dir / "archiver" / "status.json").read_text())
        except (OSError, ValueError):
            return False
        return bool(status.get("state") == "syncing" and status.get("pid") == proc.pid)

    try:
        await wait_for(syncing, timeout=60)
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
        assert not [p for p in processes_mentioning(str(data_dir)) if "archiver_bot" in p[1]]


def audit_cli(data_dir: Path, room_id: str) -> tuple[int, dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-m", "server_bridge", "audit", "--data-dir", str(data_dir),
         "--room", room_id, "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


async def test_after_an_encrypted_chat_the_audit_reports_nothing_missing(
    stack: Stack, archiver_bot: asyncio.subprocess.Process, tmp_path: Path
) -> None:
    minister = await E2EUser(stack.hs, "minister", tmp_path / "minister").start()
    amb = await E2EUser(stack.hs, "ambtenaar1", tmp_path / "amb").start()
    try:
        room_id = await minister.create_room("Crisisoverleg", invite=[amb.user_id])
        http = await stack.user("minister")

        async def archiver_in() -> bool:
            return await http.membership(room_id, stack.archiver) == "join"

        await wait_for(archiver_in, timeout=2, interval=0.05)
        await amb.join(room_id)
        sent = []
        for n in range(3):
            sent.append(await minister.send_text(room_id, f"vertrouwelijk punt {n}"))
            sent.append(await amb.send_text(room_id, f"reactie {n}"))
    finally:
        await minister.close()
        await amb.close()

    data_dir = stack.settings.data_dir

    async def archived() -> tuple[int, dict[str, object]] | None:
        code, report = await asyncio.to_thread(audit_cli, data_dir, room_id)
        return (code, report) if code == 0 else None

    code, report = await wait_for(archived, timeout=60, interval=1.0)
    rooms = report["rooms"]
    assert isinstance(rooms, list)
    assert (rooms[0]["missing"], rooms[0]["undecryptable"]) == ([], [])
    assert rooms[0]["expected"] >= len(sent)
    rows = (await stack.service.ledger.rows_by_room())[room_id]
    assert {r.event_id for r in rows if r.encrypted} >= set(sent)  # the chat was encrypted

    delete_from_archive(ArchivePaths.for_data_dir(data_dir).database, [sent[0], sent[4]])
    code, report = audit_cli(data_dir, room_id)
    assert code == 1
    rooms = report["rooms"]
    assert isinstance(rooms, list)
    assert rooms[0]["missing"] == [sent[0], sent[4]]
