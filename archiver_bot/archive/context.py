"""Shared state of one open archive: engine, keys, caches of committed state, write lock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .engine import BEGIN_OPTION, with_retry
from .errors import ArchiveError
from .keys import KeyProvider, Signer, make_aad
from .models import ArchivePaths
from .schema import data_keys, rooms
from .search import BlindIndex

T = TypeVar("T")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class RoomState:
    pk: int
    room_id: str
    head_seq: int
    head_hash: bytes
    retention: str
    retention_explicit: bool
    legal_hold: bool
    event_count: int = 0
    first_ts: int | None = None
    last_ts: int | None = None

    def copy(self) -> RoomState:
        return replace(self)


@dataclass
class Settings:
    default_retention: str = "10y"
    retry_attempts: int = 5
    retry_delay: float = 0.2
    checkpoint_every: int = 10_000
    checkpoint_interval: float = 60.0
    lock_timeout_ms: int = 5000


class StoreContext:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        paths: ArchivePaths,
        provider: KeyProvider,
        signer: Signer,
        index: BlindIndex,
        meta_aead: AESGCM,
        archive_id: str,
        settings: Settings,
    ) -> None:
        self.engine = engine
        self.paths = paths
        self.provider = provider
        self.signer = signer
        self.index = index
        self.meta_aead = meta_aead
        self.archive_id = archive_id
        self.settings = settings
        self.rooms: dict[str, RoomState] = {}
        self.room_ids: dict[int, str] = {}
        self.deks: dict[tuple[int, int], AESGCM | None] = {}
        self.write_lock = asyncio.Lock()
        self.since_checkpoint = 0
        self.closed = False
        self.rows_at_analyze = 0
        self.appended_since_analyze = 0
        #: rooms this process appended to since its last checkpoint
        self.dirty_rooms: set[int] = set()
        self.last_checkpoint = time.monotonic()
        #: run inside every write transaction, after the operation (set by the store)
        self.after_write: Callable[[AsyncConnection], Awaitable[None]] | None = None

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def read(self) -> AsyncConnection:
        """A connection for reads (use as ``async with ctx.read() as conn``)."""
        self.check_open()
        return self.engine.connect()

    def check_open(self) -> None:
        if self.closed:
            raise ArchiveError("the archive is closed")

    async def write(self, what: str, operation: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``operation`` in one serialised write transaction with retries."""
        self.check_open()

        async def attempt() -> T:
            async with self.engine.connect() as raw:
                conn = await raw.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                async with conn.begin():
                    result = await operation(conn)
                    if self.after_write is not None:
                        await self.after_write(conn)
                    return result

        async with self.write_lock:
            return await with_retry(
                attempt,
                what=what,
                attempts=self.settings.retry_attempts,
                base_delay=self.settings.retry_delay,
            )

    async def room_id_of(self, conn: AsyncConnection, room_pk: int) -> str:
        room_id = self.room_ids.get(room_pk)
        if room_id is None:
            room_id = (
                await conn.execute(select(rooms.c.room_id).where(rooms.c.pk == room_pk))
            ).scalar_one()
            self.room_ids[room_pk] = room_id
        return room_id

    async def room_pk_of(self, conn: AsyncConnection, room_id: str) -> int | None:
        state = self.rooms.get(room_id)
        if state is not None:
            return state.pk
        pk = (
            await conn.execute(select(rooms.c.pk).where(rooms.c.room_id == room_id))
        ).scalar_one_or_none()
        if pk is not None:
            self.room_ids[pk] = room_id
        return pk

    async def dek(self, conn: AsyncConnection, room_pk: int, epoch: int) -> AESGCM | None:
        """The data key of (room, epoch); None when it was destroyed or never existed."""
        cache_key = (room_pk, epoch)
        if cache_key in self.deks:
            return self.deks[cache_key]
        row = (
            await conn.execute(
                select(data_keys.c.key_ref, data_keys.c.wrapped).where(
                    data_keys.c.room_pk == room_pk, data_keys.c.epoch == epoch
                )
            )
        ).first()
        if row is None or row.wrapped is None:
            return None
        room_id = await self.room_id_of(conn, room_pk)
        raw = self.provider.unwrap(row.key_ref, row.wrapped, dek_aad(room_id, epoch))
        aead = AESGCM(raw)
        if len(self.deks) > 10_000:
            self.deks.clear()
        self.deks[cache_key] = aead
        return aead


def dek_aad(room_id: str, epoch: int) -> bytes:
    return make_aad("dek", room_id, str(epoch))


def epoch_of(ts_ms: int) -> int:
    """Data keys rotate per calendar year (UTC) of the event time."""
    return time.gmtime(ts_ms / 1000).tm_year
