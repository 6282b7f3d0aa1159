"""Fixtures of the archive store suite: every store test runs on SQLite and on the real
PostgreSQL server (one fresh database per test, dropped afterwards)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from archiver_bot.archive import Archive, ArchivePaths, EventRecord, open_archive

PG_HOST = os.environ.get("RIJKSCHAT_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("RIJKSCHAT_TEST_PG_PORT", "5432"))
PG_ADMIN_URL = f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/test"
IN_CI = os.environ.get("CI", "").lower() == "true"


async def _pg_available() -> str | None:
    engine = create_async_engine(PG_ADMIN_URL, connect_args={"timeout": 3})
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # any failure means: no usable server
        return f"{type(exc).__name__}: {exc}"
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_server() -> str:
    # a sync fixture (so it can be requested lazily); the probe runs on its own loop
    with ThreadPoolExecutor(1) as pool:
        problem = pool.submit(asyncio.run, _pg_available()).result()
    if problem is not None:
        message = f"PostgreSQL at {PG_HOST}:{PG_PORT} (database 'test') does not answer: {problem}"
        if IN_CI:
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)
    return PG_ADMIN_URL


@dataclass
class Backend:
    name: str
    url: str
    paths: ArchivePaths
    pg_database: str | None = None

    async def sql(self, statement: str, **params: Any) -> list[Any]:
        """Run raw SQL against the archive database (the attacker's view)."""
        engine = create_async_engine(self.url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(statement), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    paths = ArchivePaths.for_data_dir(tmp_path / "data")
    if request.param == "sqlite":
        yield Backend("sqlite", paths.default_database_url, paths)
        return
    admin_url = request.getfixturevalue("pg_server")
    name = f"rijkschat_archive_test_{secrets.token_hex(6)}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin_url.rsplit("/", 1)[0] + f"/{name}"
        yield Backend("postgres", url, paths, pg_database=name)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


OpenArchive = Callable[..., Awaitable[Archive]]


@pytest.fixture
async def open_store(backend: Backend) -> AsyncIterator[OpenArchive]:
    opened: list[Archive] = []

    async def _open(**options: Any) -> Archive:
        options.setdefault("retry_delay", 0.01)
        archive = await open_archive(backend.paths, backend.url, **options)
        opened.append(archive)
        return archive

    yield _open
    for archive in opened:
        await archive.close()


@pytest.fixture
async def archive(open_store: OpenArchive) -> Archive:
    return await open_store()


ROOM = "!beleid:rijk.example"
OTHER_ROOM = "!crisis:rijk.example"
MINISTER = "@minister:rijk.example"
ADVISEUR = "@adviseur:rijk.example"
BASE_TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def message(
    n: int,
    body: str,
    *,
    room: str = ROOM,
    sender: str = MINISTER,
    ts: int | None = None,
    **extra: Any,
) -> EventRecord:
    values: dict[str, Any] = {
        "event_id": f"$ev{n}:rijk.example",
        "room_id": room,
        "sender": sender,
        "origin_server_ts": BASE_TS + n * 1000 if ts is None else ts,
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": body},
        "decryption": "decrypted",
        "sender_device": "DEVICEA",
        "sender_key": "curve25519keyA",
        "session_id": "megolm-session-1",
        "encrypted": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA" + str(n)},
    }
    values.update(extra)
    return EventRecord(**values)
