"""The completeness audit: the ledger against the archive, through the store's public API."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from archiver_bot.archive import ArchivePaths, EventRecord, open_archive
from server_bridge.appservice.audit import AuditReport, RoomAudit, StoreArchiveView, run_audit
from server_bridge.appservice.ledger import Ledger
from server_bridge.appservice.registration import BridgePaths
from server_bridge.appservice.transactions import LedgerRow
from tests.bridge.conftest import Stack
from tests.e2e_client import E2EUser, wait_for
from tests.helpers import processes_mentioning

MESSAGES = ("m.room.message", "m.room.encrypted")


async def ledger_rows(stack: Stack, room_id: str, wanted: set[str]) -> list[LedgerRow]:
    async def complete() -> list[LedgerRow] | None:
        rows = (await stack.service.ledger.rows_by_room()).get(room_id, [])
        return rows if wanted <= {r.event_id for r in rows} else None

    result: list[LedgerRow] = await wait_for(complete, timeout=60, interval=0.05)
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


def archived(event_id: str, room_id: str, ts: int, **extra: Any) -> EventRecord:
    fields: dict[str, Any] = {"type": "m.room.message", "sender": "@minister:test.localhost",
                              "content": {"msgtype": "m.text", "body": "inhoud"}, **extra}
    return EventRecord(event_id=event_id, room_id=room_id, origin_server_ts=ts, **fields)


async def test_archived_events_the_ledger_does_not_know_fail_the_audit(
    stack: Stack, tmp_path: Path
) -> None:
    """The audit's other side: a ledger that went blind (or lost rows) cannot pass."""
    minister = await stack.user("minister")
    room_id = await minister.create_room(name="Blind grootboek")
    sent = [await minister.text_when_archived(room_id, f"punt {n}") for n in range(3)]
    rows = await ledger_rows(stack, room_id, set(sent))
    # A copy of the ledger, so that removing rows leaves the session's ledger alone.
    ledger_copy = tmp_path / "ledger-copy.db"
    shutil.copyfile(BridgePaths.for_data_dir(stack.settings.data_dir).ledger, ledger_copy)
    ledger = await Ledger.open(ledger_copy)
    watch_start = (await ledger.info()).watch_started_at
    archive = await open_archive(ArchivePaths.for_data_dir(tmp_path))
    try:
        await archive.ingest([record_of(r) for r in rows])
        view = StoreArchiveView(archive)

        async def audit(room: str = room_id) -> tuple[AuditReport, RoomAudit | None]:
            report = await run_audit(ledger, view, stack.archiver)
            return report, next((r for r in report.rooms if r.room_id == room), None)

        report, room = await audit()
        assert room is not None
        assert (room.missing, room.unknown_to_ledger) == ([], [])
        assert not report.ledger_incomplete

        await wait_for(lambda: _later_than(max(r.origin_server_ts for r in rows) + 2),
                       timeout=10, interval=0.01)
        now = int(time.time() * 1000)
        blind_room = "!blind:test.localhost"
        await archive.ingest([
            # After the ledger's last event of a room it knows.
            archived("$na-de-herstart", room_id, max(r.origin_server_ts for r in rows) + 1),
            # A room the ledger never heard of: the archiver's join and a message.
            archived("$blind-join", blind_room, now - 1500, type="m.room.member",
                     state_key=stack.archiver, content={"membership": "join"},
                     sender=stack.archiver),
            archived("$blind-msg", blind_room, now - 1000),
            # A room whose events all predate the ledger: not its business.
            archived("$oud-join", "!oud:test.localhost", watch_start - 60_000,
                     type="m.room.member", state_key=stack.archiver,
                     content={"membership": "join"}, sender=stack.archiver),
            archived("$oud-msg", "!oud:test.localhost", watch_start - 50_000),
        ])
        report, room = await audit()
        assert room is not None
        assert room.unknown_to_ledger == ["$na-de-herstart"]
        blind = next(r for r in report.rooms if r.room_id == blind_room)
        assert blind.unknown_to_ledger == ["$blind-join", "$blind-msg"]
        assert blind.ledger_events == 0
        assert "!oud:test.localhost" not in {r.room_id for r in report.rooms}
        assert report.ledger_incomplete
        assert not report.complete
        doc = report.to_dict()
        assert doc["ledger_incomplete"] is True
        assert "unknown to the ledger" in doc["ledger_incomplete_reason"]
        assert doc["totals"]["unknown_to_ledger"] >= 3
        assert "LEDGER INCOMPLETE" in report.render()

        # Rows removed from the ledger: exactly those are reported.
        with sqlite3.connect(ledger_copy) as db:
            db.execute("DELETE FROM ledger_events WHERE event_id = ?", (sent[1],))
        _, room = await audit()
        assert room is not None
        assert room.unknown_to_ledger == [sent[1], "$na-de-herstart"]
        # Younger than the grace period: not judged yet.
        report = await run_audit(ledger, view, stack.archiver, grace_ms=600_000)
        assert not any(r.unknown_to_ledger for r in report.rooms)
    finally:
        await archive.close()
        await ledger.close()


async def test_a_ledger_that_recorded_nothing_cannot_pass(
    stack: Stack, tmp_path: Path
) -> None:
    ledger = await Ledger.open(tmp_path / "leeg" / "ledger.db")
    archive = await open_archive(ArchivePaths.for_data_dir(tmp_path))
    try:
        start = (await ledger.info()).watch_started_at
        await archive.ingest([
            archived("$j", "!groei:test.localhost", start, type="m.room.member",
                     state_key=stack.archiver, content={"membership": "join"},
                     sender=stack.archiver),
            archived("$m", "!groei:test.localhost", start + 1),
        ])
        await wait_for(lambda: _later_than(start + 2), timeout=10, interval=0.01)
        report = await run_audit(ledger, StoreArchiveView(archive), stack.archiver, grace_ms=0)
        assert report.ledger_incomplete
        assert not report.complete
        assert report.rooms[0].unknown_to_ledger == ["$j", "$m"]
        reason = report.ledger_incomplete_reason
        assert reason is not None
        assert "recorded nothing" in reason
    finally:
        await archive.close()
        await ledger.close()


async def _later_than(ms: int) -> bool:
    return time.time() * 1000 > ms


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

        await wait_for(archiver_in, timeout=60, interval=0.05)
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
