"""The ledger across homeserver restarts, on both databases, against real Synapse, the real
AS registration, the bridge's ledger and the real archiver bot.

Synapse on SQLite starts its Application Service transaction ids again at 1 after every
restart (a clean one or a crash); on PostgreSQL a sequence keeps them unique. Either way every
event of the homeserver must be in the ledger exactly once, and the audit complete; a ledger
with rows removed must fail the audit in the API, the metrics and the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from server_bridge.appservice.audit import AuditReport
from server_bridge.appservice.registration import BridgePaths
from server_bridge.appservice.routes import LEDGER, LEDGER_DATABASE_URL
from server_bridge.appservice.service import LedgerService
from server_bridge.homeserver.config import postgres_database
from server_bridge.process import terminate
from server_bridge.settings import Settings
from server_bridge.web.app import create_app
from tests.bridge.conftest import MatrixUser
from tests.e2e_client import wait_for
from tests.helpers import RunningHomeserver, free_port, processes_mentioning, start_homeserver

PG_HOST = os.environ.get("RIJKSCHAT_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("RIJKSCHAT_TEST_PG_PORT", "5432"))
PG_ADMIN_URL = f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/test"
IN_CI = os.environ.get("CI", "").lower() == "true"

pytestmark = pytest.mark.synapse


async def _pg_admin(statement: str) -> None:
    engine = create_async_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"timeout": 5}
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@dataclass
class Databases:
    """Where Synapse and the ledger keep their data on one backend."""

    backend: str
    synapse: dict[str, object] | None = None  # Synapse's database section; None: SQLite
    ledger_url: str | None = None  # None: DATA/bridge/ledger.db
    created: list[str] = field(default_factory=list)


@pytest.fixture(params=["sqlite", "postgres"])
async def databases(request: pytest.FixtureRequest) -> AsyncIterator[Databases]:
    if request.param == "sqlite":
        yield Databases("sqlite")
        return
    try:
        await _pg_admin("SELECT 1")
    except Exception as exc:  # any failure means: no usable server
        message = f"PostgreSQL at {PG_HOST}:{PG_PORT} does not answer: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    suffix = secrets.token_hex(6)
    synapse_db, ledger_db = f"rijkschat_synapse_{suffix}", f"rijkschat_ledger_{suffix}"
    dbs = Databases(
        "postgres",
        synapse=postgres_database(synapse_db, host=PG_HOST, port=PG_PORT),
        ledger_url=PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{ledger_db}",
        created=[synapse_db, ledger_db],
    )
    try:
        # Synapse insists on UTF8 with C collation.
        await _pg_admin(
            f"CREATE DATABASE \"{synapse_db}\" ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' "
            "TEMPLATE template0"
        )
        await _pg_admin(f'CREATE DATABASE "{ledger_db}"')
        yield dbs
    finally:
        for name in dbs.created:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Pilot:
    """The bridge (in this process), a Synapse that can be stopped and killed, the archiver."""

    def __init__(self, data_dir: Path, dbs: Databases) -> None:
        self.dbs = dbs
        self.settings = Settings(
            data_dir=data_dir,
            server_name="test.localhost",
            homeserver_port=free_port(),
            bridge_port=free_port(),
        )
        self.app = create_app(self.settings)
        if dbs.ledger_url is not None:
            self.app[LEDGER_DATABASE_URL] = dbs.ledger_url
        self.runner = web.AppRunner(self.app, access_log=None)
        self.hs: RunningHomeserver | None = None
        self.archiver: asyncio.subprocess.Process | None = None

    @property
    def service(self) -> LedgerService:
        return self.app[LEDGER]

    @property
    def archiver_id(self) -> str:
        return self.settings.archiver_user_id()

    async def start_bridge(self) -> None:
        data_dir = self.settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.settings.save()
        await self.runner.setup()
        await web.TCPSite(self.runner, self.settings.bind_host, self.settings.bridge_port).start()

    async def start_homeserver(self) -> RunningHomeserver:
        self.hs = await start_homeserver(
            self.settings.data_dir,
            archiving_mode="enforce",
            ledger=True,
            settings=self.settings,
            database=self.dbs.synapse,
        )
        return self.hs

    async def stop_homeserver(self, how: signal.Signals) -> None:
        assert self.hs is not None
        proc = self.hs.proc
        if how is signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        else:
            await terminate("homeserver", proc, grace=30)
        self.hs = None

    async def start_archiver(self) -> None:
        data_dir = self.settings.data_dir
        log = data_dir / "logs" / "archiver.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as fh:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "archiver_bot", "run", "--data-dir", str(data_dir),
                stdout=fh, stderr=fh, start_new_session=True,
            )
        self.archiver = proc

        async def syncing() -> bool:
            assert proc.returncode is None, log.read_text()[-3000:]
            try:
                status = json.loads((data_dir / "archiver" / "status.json").read_text())
            except (OSError, ValueError):
                return False
            return bool(status.get("state") == "syncing" and status.get("pid") == proc.pid)

        await wait_for(syncing, timeout=90)

    async def close(self) -> None:
        if self.archiver is not None and self.archiver.returncode is None:
            await terminate("archiver", self.archiver, grace=30)
        if self.hs is not None:
            await terminate("homeserver", self.hs.proc, grace=30)
        await self.runner.cleanup()


@pytest.fixture
async def pilot(databases: Databases, tmp_path: Path) -> AsyncIterator[Pilot]:
    stack = Pilot(tmp_path / "pilot", databases)
    await stack.start_bridge()
    try:
        await stack.start_homeserver()
        await stack.start_archiver()
        yield stack
    finally:
        await stack.close()
    assert not processes_mentioning(str(stack.settings.data_dir))


async def users(pilot: Pilot, session: aiohttp.ClientSession) -> tuple[MatrixUser, MatrixUser]:
    assert pilot.hs is not None
    return (
        await MatrixUser(pilot.hs, session, "minister").login(),
        await MatrixUser(pilot.hs, session, "ambtenaar1").login(),
    )


async def room_event_ids(user: MatrixUser, room_id: str) -> list[str]:
    """Every event of the room on the homeserver, oldest first (the truth to compare with)."""
    ids: list[str] = []
    token: str | None = None
    while True:
        query = "?dir=b&limit=100" + (f"&from={token}" if token else "")
        status, page = await user.call("GET", f"/rooms/{room_id}/messages{query}")
        assert status == 200, page
        ids.extend(e["event_id"] for e in page.get("chunk", []))
        token = page.get("end")
        if not page.get("chunk") or token is None:
            return ids[::-1]


async def converse(a: MatrixUser, b: MatrixUser, room_id: str, label: str, n: int) -> list[str]:
    sent = []
    for i in range(n):
        user = a if i % 2 == 0 else b
        status, body = await user.text(room_id, f"{label} {i}")
        assert status == 200, body
        sent.append(str(body["event_id"]))
    return sent


async def converse_until_killed(
    a: MatrixUser, b: MatrixUser, room_id: str, got: list[str]
) -> None:
    """Talk until the homeserver is gone; keep the ids the senders got back."""
    i = 0
    while True:
        user = a if i % 2 == 0 else b
        try:
            status, body = await user.text(room_id, f"tijdens de crash {i}")
        except (aiohttp.ClientError, ValueError):
            return
        if status != 200:
            return
        got.append(str(body["event_id"]))
        i += 1
        await asyncio.sleep(0.02)


async def remove_from_ledger(pilot: Pilot, event_ids: list[str]) -> None:
    url = pilot.dbs.ledger_url
    if url is None:
        url = f"sqlite+aiosqlite:///{BridgePaths.for_data_dir(pilot.settings.data_dir).ledger}"
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for event_id in event_ids:
                result = await conn.execute(
                    text("DELETE FROM ledger_events WHERE event_id = :e"), {"e": event_id}
                )
                assert result.rowcount == 1
    finally:
        await engine.dispose()


async def bridge_get(pilot: Pilot, path: str, token: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(
        pilot.settings.bridge_url + path, headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        return resp.status, await resp.text()


async def completeness_page(pilot: Pilot, password: str) -> str:
    """The review UI's completeness page, as an archivist logged in through the form."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=pilot.settings.bridge_url, cookie_jar=jar) as s:
        async with s.get("/archief/inloggen") as resp:
            found = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
            assert found is not None
        form = {"csrf": found.group(1), "gebruikersnaam": "archivaris", "wachtwoord": password,
                "doel": "volledigheidscontrole"}
        async with s.post("/archief/inloggen", data=form, allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
        async with s.get("/archief/volledigheid") as resp:
            assert resp.status == 200
            return await resp.text()


async def test_every_event_reaches_the_ledger_once_across_restarts_and_a_kill(
    pilot: Pilot,
) -> None:
    sent: list[str] = []
    async with aiohttp.ClientSession() as session:
        minister, amb = await users(pilot, session)
        room_id = await minister.create_room(name="Herstart", invite=[amb.user_id])
        status, body = await amb.call("POST", f"/rooms/{room_id}/join", {})
        assert status == 200, body
        sent.append(await minister.text_when_archived(room_id, "voor de herstart"))
        sent += await converse(minister, amb, room_id, "voor de herstart", 6)

    # A clean restart (SIGTERM), once Synapse holds no transaction for the ledger: on SQLite
    # its transaction ids then start again at 1, the case that blinded the earlier ledger.
    # (The archiver's one notice to the room included: it comes whenever the bot syncs.)
    await wait_for(lambda: _in_ledger(pilot, room_id, sent), timeout=60, interval=0.1)
    await wait_for(lambda: _archiver_noticed(pilot, room_id), timeout=90, interval=0.1)
    await wait_for(lambda: _none_pending(pilot), timeout=60, interval=0.1)
    await pilot.stop_homeserver(signal.SIGTERM)
    await pilot.start_homeserver()
    async with aiohttp.ClientSession() as session:
        minister, amb = await users(pilot, session)
        sent += await converse(minister, amb, room_id, "na de herstart", 6)
        # A crash (SIGKILL) in the middle of the conversation.
        talking = asyncio.create_task(converse_until_killed(minister, amb, room_id, sent))
        before = len(sent)
        await wait_for(lambda: _at_least(sent, before + 5), timeout=60, interval=0.01)
        await pilot.stop_homeserver(signal.SIGKILL)
        await asyncio.wait_for(talking, 60)
    await pilot.start_homeserver()
    async with aiohttp.ClientSession() as session:
        minister, amb = await users(pilot, session)
        sent += await converse(minister, amb, room_id, "na de crash", 6)
        truth = await room_event_ids(minister, room_id)
    assert set(sent) <= set(truth)

    ledger = pilot.service.ledger

    async def all_in_ledger() -> list[str] | None:
        rows = (await ledger.rows_by_room()).get(room_id, [])
        ids = [r.event_id for r in rows]
        return ids if set(truth) <= set(ids) else None

    try:
        recorded = await wait_for(all_in_ledger, timeout=90, interval=0.2)
    except AssertionError:
        ids = {r.event_id for r in (await ledger.rows_by_room()).get(room_id, [])}
        lacking = [e for e in truth if e not in ids]
        raise AssertionError(
            f"{len(lacking)} of {len(truth)} events not in the ledger: {lacking}, "
            f"sent: {sent}"
        ) from None
    # Exactly once each, and nothing the homeserver does not have.
    assert sorted(recorded) == sorted(set(recorded))
    assert set(recorded) == set(truth)

    async def audited() -> AuditReport | None:
        report = await pilot.service.audit(0)
        return report if report.complete else None

    report = await wait_for(audited, timeout=90, interval=1.0)
    [room] = [r for r in report.rooms if r.room_id == room_id]
    assert (room.missing, room.undecryptable, room.unknown_to_ledger) == ([], [], [])
    assert room.expected >= len(sent)

    log = await ledger.transactions()
    reused = {t["txn_id"] for t in log if sum(u["txn_id"] == t["txn_id"] for u in log) > 1}
    if pilot.dbs.backend == "sqlite":
        # The situation that blinded the earlier ledger really happened here ...
        assert "1" in reused, "Synapse on SQLite did not start its transaction ids again"
    else:
        # ... while PostgreSQL's sequence keeps the ids unique.
        assert not reused

    # A ledger with events removed makes the audit fail: API, metrics and CLI. (The
    # catch-up would restore them from the homeserver's timeline: paused here, run below.)
    catch_up = pilot.service.catch_up
    assert catch_up is not None
    await catch_up.pause()
    removed = [sent[2], sent[9]]
    await remove_from_ledger(pilot, removed)
    async with aiohttp.ClientSession() as session:
        archivist = await MatrixUser(pilot.hs, session, "archivaris").login()  # type: ignore[arg-type]
    status, body = await bridge_get(pilot, "/api/v1/audit/completeness", archivist.token)
    assert status == 200, body
    doc = json.loads(body)
    assert doc["complete"] is False
    assert doc["ledger_incomplete"] is True
    assert doc["ledger_incomplete_reason"]
    [api_room] = [r for r in doc["rooms"] if r["room_id"] == room_id]
    assert api_room["unknown_to_ledger"] == removed
    assert api_room["missing"] == []
    assert pilot.hs is not None
    password = pilot.hs.password("archivaris")

    async def page_says_incomplete() -> str | None:
        # The page waits 30 s before it judges an event.
        page = await completeness_page(pilot, password)
        return page if "GROOTBOEK ONVOLLEDIG" in page else None

    page = await wait_for(page_says_incomplete, timeout=90, interval=2.0)
    assert removed[0] in page
    metrics_token = BridgePaths.for_data_dir(pilot.settings.data_dir).metrics_token

    async def metrics_say_incomplete() -> str | None:
        # The audit behind the metrics waits 30 s for stragglers and is reused for 30 s.
        status, metrics = await bridge_get(pilot, "/metrics", metrics_token.read_text().strip())
        assert status == 200
        unknown = _metric(metrics, "rijkschat_audit_unknown_to_ledger_events")
        return metrics if unknown == len(removed) else None

    metrics = await wait_for(metrics_say_incomplete, timeout=120, interval=2.0)
    assert _metric(metrics, "rijkschat_audit_unknown_to_ledger_events") == 2
    assert _metric(metrics, "rijkschat_audit_complete") == 0
    if pilot.dbs.backend == "sqlite":  # the CLI reads DATA/bridge/ledger.db
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "server_bridge", "audit", "--data-dir",
             str(pilot.settings.data_dir), "--json"],
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 1, result.stderr
        cli = json.loads(result.stdout)
        assert cli["ledger_incomplete"] is True
        [cli_room] = [r for r in cli["rooms"] if r["room_id"] == room_id]
        assert cli_room["unknown_to_ledger"] == removed

    # The catch-up reads them back from the homeserver: complete again.
    assert await catch_up.run_once() == len(removed)
    report = await pilot.service.audit(0)
    assert report.complete, report.render()


async def _in_ledger(pilot: Pilot, room_id: str, event_ids: list[str]) -> bool:
    rows = (await pilot.service.ledger.rows_by_room()).get(room_id, [])
    return set(event_ids) <= {r.event_id for r in rows}


async def _archiver_noticed(pilot: Pilot, room_id: str) -> bool:
    rows = (await pilot.service.ledger.rows_by_room()).get(room_id, [])
    return any(
        r.sender == pilot.archiver_id and r.type in ("m.room.message", "m.room.encrypted")
        for r in rows
    )


async def _none_pending(pilot: Pilot) -> bool:
    """Whether Synapse's database holds no transaction for the ledger (sent and done)."""
    query = "SELECT count(*) FROM application_services_txns"
    synapse = pilot.dbs.synapse
    if synapse is None:
        db_file = pilot.settings.homeserver_dir / "homeserver.db"
        with contextlib.closing(sqlite3.connect(db_file)) as db:
            return bool(db.execute(query).fetchone()[0] == 0)
    args = synapse["args"]
    assert isinstance(args, dict)
    engine = create_async_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{args['database']}")
    try:
        async with engine.connect() as conn:
            return await conn.scalar(text(query)) == 0
    finally:
        await engine.dispose()


async def _at_least(items: list[Any], n: int) -> bool:
    return len(items) >= n


def _metric(text_: str, name: str) -> float:
    for line in text_.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the metrics")
