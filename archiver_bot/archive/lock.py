"""The single-writer lock: one archiver process appends to an archive at a time.

An exclusive ``flock`` on ``DIR/archive/writer.lock`` and, on PostgreSQL, a session
advisory lock (per database), held for as long as the archive is open for writing.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .errors import ArchiveBusyError

_ADVISORY_KEY = 0x726A6B63_61726368  # "rjkc" "arch"
_ADVISORY_KEY -= 1 << 64 if _ADVISORY_KEY >= 1 << 63 else 0


class WriterLock:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None
        self._pg: AsyncConnection | None = None

    async def acquire(self, engine: AsyncEngine) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ArchiveBusyError(
                f"another archiver process is writing to the archive in {self._path.parent}"
            ) from None
        self._fd = fd
        if engine.dialect.name == "postgresql":
            conn = await engine.connect()
            got = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _ADVISORY_KEY})
            ).scalar()
            await conn.commit()
            if not got:
                await conn.close()
                await self.release()
                raise ArchiveBusyError("another archiver process is writing to this database")
            self._pg = conn

    async def release(self) -> None:
        if self._pg is not None:
            try:
                await self._pg.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_KEY})
                await self._pg.commit()
            finally:
                await self._pg.close()
                self._pg = None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
