"""A locked or full database: the writer retries and reports, nothing uncommitted is
acknowledged, and the store keeps working once the database recovers."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from archiver_bot.archive import (
    ArchivePaths,
    ArchiveStorageFullError,
    ArchiveUnavailableError,
    open_archive,
)

from .conftest import ROOM, Backend, OpenArchive, message


class _Lock:
    """Another writer holding the database's write lock (the attacker's or a backup's)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any = None
        self._engine: Any = None

    async def hold(self) -> None:
        if self.backend.name == "sqlite":
            self._sqlite = sqlite3.connect(self.backend.paths.database, isolation_level=None)
            self._sqlite.execute("BEGIN EXCLUSIVE")
            return
        self._engine = create_async_engine(self.backend.url)
        self._pg = await self._engine.connect()
        await self._pg.begin()
        await self._pg.execute(text("LOCK TABLE archive_records IN ACCESS EXCLUSIVE MODE"))

    async def release(self) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("ROLLBACK")
            self._sqlite.close()
            self._sqlite = None
        if self._pg is not None:
            await self._pg.rollback()
            await self._pg.close()
            await self._engine.dispose()
            self._pg = None


async def test_locked_database_is_retried_until_it_frees(
    backend: Backend, open_store: OpenArchive, caplog: pytest.LogCaptureFixture
) -> None:
    archive = await open_store(busy_timeout_ms=100, retry_attempts=8, retry_delay=0.05)
    await archive.ingest([message(1, "eerste")], "s1")
    lock = _Lock(backend)
    await lock.hold()
    releaser = asyncio.get_running_loop().call_later(
        0.4, lambda: asyncio.ensure_future(lock.release())
    )
    try:
        result = await archive.ingest([message(2, "tweede")], "s2")
    finally:
        releaser.cancel()
        await lock.release()
    assert result.inserted == 1
    assert await archive.sync_token() == "s2"
    assert "nothing was committed" in caplog.text
    assert (await archive.verify()).ok


async def test_database_locked_for_too_long_acknowledges_nothing(
    backend: Backend, open_store: OpenArchive
) -> None:
    archive = await open_store(busy_timeout_ms=50, retry_attempts=3, retry_delay=0.02)
    await archive.ingest([message(1, "eerste")], "s1")
    lock = _Lock(backend)
    await lock.hold()
    try:
        with pytest.raises(ArchiveUnavailableError, match="nothing was committed"):
            await archive.ingest([message(2, "tweede")], "s2")
    finally:
        await lock.release()
    assert await archive.sync_token() == "s1"
    assert await archive.archived_event_ids(ROOM) == {"$ev1:rijk.example"}
    assert (await archive.ingest([message(2, "tweede"), message(3, "derde")], "s3")).inserted == 2
    assert (await archive.verify()).ok


async def test_full_disk_is_reported_and_nothing_is_acknowledged(tmp_path: Path) -> None:
    # SQLite only: a full disk is simulated with max_page_count
    archive = await open_archive(
        ArchivePaths.for_data_dir(tmp_path), retry_attempts=2, retry_delay=0.01
    )
    await archive.ingest([message(1, "eerste")], "s1")
    sync_engine = archive.engine.sync_engine

    def _cap(dbapi_connection: Any, *_: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {pages}")
        cursor.close()

    event.listen(sync_engine, "checkout", _cap)
    try:
        big = [message(i, "vol " * 3000) for i in range(2, 200)]
        with pytest.raises(ArchiveStorageFullError, match="full"):
            await archive.ingest(big, "s2")
    finally:
        event.remove(sync_engine, "checkout", _cap)

    def _uncap(dbapi_connection: Any, *_: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA max_page_count = 1073741823")
        cursor.close()

    event.listen(sync_engine, "checkout", _uncap)
    assert await archive.sync_token() == "s1"
    assert await archive.archived_event_ids(ROOM) == {"$ev1:rijk.example"}
    try:
        assert (await archive.ingest(big, "s3")).inserted == len(big)
        assert (await archive.verify()).ok
    finally:
        await archive.close()
