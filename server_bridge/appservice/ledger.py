"""The ledger's own database (SQLAlchemy 2 Core, async): transactions and event metadata.

A transaction id is stored in the same database transaction as its events, so a retried
transaction is recognised across restarts and nothing is acknowledged before it is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from server_bridge.appservice.transactions import LedgerRow

log = logging.getLogger(__name__)

metadata = MetaData()

transactions = Table(
    "ledger_transactions",
    metadata,
    Column("txn_id", String(255), primary_key=True),
    Column("received_at", BigInteger, nullable=False),
    Column("event_count", Integer, nullable=False),
)

events = Table(
    "ledger_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(255), nullable=False, unique=True),
    Column("room_id", String(255), nullable=False, index=True),
    Column("sender", String(255), nullable=False),
    Column("type", String(255), nullable=False),
    Column("state_key", Text, nullable=True),
    Column("membership", String(32), nullable=True),
    Column("origin_server_ts", BigInteger, nullable=False),
    Column("encrypted", Boolean, nullable=False),
    Column("txn_id", String(255), nullable=False),
    Column("received_at", BigInteger, nullable=False),
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout = 30000")
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.close()


def _make_private(path: Path) -> None:
    if path.exists():
        path.chmod(0o600)


class Ledger:
    """Open with :meth:`open`; one instance per process (writes are serialised)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | None = None, database_url: str | None = None) -> Ledger:
        if database_url is None:
            if path is None:
                raise ValueError("a ledger needs a path or a database URL")
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            database_url = f"sqlite+aiosqlite:///{path}"
        engine = create_async_engine(database_url)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        if path is not None:
            _make_private(path)
        return cls(engine)

    async def close(self) -> None:
        await self._engine.dispose()

    def _insert_events(self) -> Any:
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(events).on_conflict_do_nothing(index_elements=["event_id"])
        return sqlite.insert(events).on_conflict_do_nothing(index_elements=["event_id"])

    async def record_transaction(self, txn_id: str, rows: Sequence[LedgerRow]) -> bool:
        """Commit a transaction's rows with its id; False (and no change) if already recorded.

        Returns only after the commit; raises on any database error (nothing committed)."""
        now = int(time.time() * 1000)
        async with self._lock:
            try:
                async with self._engine.begin() as conn:
                    known = await conn.scalar(
                        select(transactions.c.txn_id).where(transactions.c.txn_id == txn_id)
                    )
                    if known is not None:
                        return False
                    await conn.execute(
                        transactions.insert().values(
                            txn_id=txn_id, received_at=now, event_count=len(rows)
                        )
                    )
                    if rows:
                        await conn.execute(
                            self._insert_events(),
                            [{**asdict(r), "txn_id": txn_id, "received_at": now} for r in rows],
                        )
            except IntegrityError:
                # A concurrent delivery of the same transaction (another process) won the race.
                async with self._engine.connect() as conn:
                    known = await conn.scalar(
                        select(transactions.c.txn_id).where(transactions.c.txn_id == txn_id)
                    )
                if known is None:
                    raise
                return False
        return True

    async def rows_by_room(self) -> dict[str, list[LedgerRow]]:
        """Every recorded event, grouped per room, in the order the homeserver sent them."""
        cols = [events.c[name] for name in LedgerRow.__dataclass_fields__]
        async with self._engine.connect() as conn:
            result = await conn.execute(select(*cols).order_by(events.c.seq))
            by_room: dict[str, list[LedgerRow]] = {}
            for row in result:
                item = LedgerRow(**row._asdict())
                by_room.setdefault(item.room_id, []).append(item)
        return by_room

    async def event_count(self) -> int:
        async with self._engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(events)) or 0)

    async def transaction_count(self) -> int:
        async with self._engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(transactions)) or 0)
