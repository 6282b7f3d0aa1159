"""The ledger's own database (SQLAlchemy 2 Core, async): event metadata and a transaction log.

The ledger is idempotent per *event*: an event id is recorded once, whichever transaction
brings it. The homeserver's transaction id is information only: Synapse on SQLite starts
its Application Service transaction ids again at 1 after every restart, so an id is no key.
Every delivery that brought something new is logged (``ledger_transaction_log``) with its
id, the time, the number of events and a digest of their ids; a reused id whose event set
differs from the earlier one is logged as a warning. Events and their log row are committed
in one database transaction before the homeserver gets its 200.

A ledger made by earlier versions (``ledger_transactions`` keyed by the transaction id) is
migrated in place when it is opened: its rows are copied into the log and the old table is
dropped, in one transaction, so that opening is idempotent.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from server_bridge.appservice.transactions import LedgerRow

log = logging.getLogger(__name__)

metadata = MetaData()

#: the table of earlier versions (transaction id as primary key); migrated on open
LEGACY_TRANSACTIONS = "ledger_transactions"

transaction_log = Table(
    "ledger_transaction_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("txn_id", String(255), nullable=False, index=True),
    Column("received_at", BigInteger, nullable=False),
    Column("event_count", Integer, nullable=False),
    Column("new_events", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
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
    Column("txn_id", String(255), nullable=False),  # the first delivery's id (information)
    Column("received_at", BigInteger, nullable=False),
)

meta = Table(
    "ledger_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

#: when the ledger started watching (ms): archive events before it need not be in the ledger
WATCH_STARTED_AT = "watch_started_at"
#: how far back (ms) the next catch-up from the homeserver's timeline must read
CAUGHT_UP_UNTIL = "caught_up_until"
#: the transaction id recorded for events the catch-up found (never a homeserver's id)
CATCH_UP_TXN = "catch-up"

_IN_CHUNK = 500


class Outcome(Enum):
    """What became of one delivered transaction."""

    RECORDED = "recorded"  # a transaction id not seen before
    DUPLICATE = "duplicate"  # a retry: this id with these events was recorded before
    REUSED_ID = "reused_id"  # an id seen before, with other events (Synapse restarted)


@dataclass(frozen=True)
class RecordResult:
    outcome: Outcome
    new_events: int
    txn_id: str = ""
    #: the id of the delivery received before this one (None: the ledger's first)
    previous_txn_id: str | None = None

    @property
    def numbering_broken(self) -> bool:
        """A new delivery whose id is not the previous one's successor: the homeserver
        restarted (or skipped ids) and may have lost events on the way."""
        if self.outcome is Outcome.DUPLICATE or self.previous_txn_id is None:
            return False
        previous, current = self.previous_txn_id, self.txn_id
        if not (previous.isdecimal() and current.isdecimal()):
            return False
        return int(current) != int(previous) + 1

    @property
    def ids_skipped(self) -> bool:
        """A new delivery whose id does not follow the previous one: the homeserver may hold
        transactions it created but never sent (see :func:`ids_skipped`)."""
        return self.outcome is not Outcome.DUPLICATE and ids_skipped(
            self.previous_txn_id, self.txn_id
        )


@dataclass(frozen=True)
class LedgerInfo:
    """Facts about the ledger itself that the audit reports."""

    watch_started_at: int
    last_received_at: int | None
    events: int
    transactions: int


def ids_skipped(previous: str | None, current: str) -> bool:
    """Whether ``current`` does not follow ``previous`` in the homeserver's numbering.

    Synapse creates a transaction (stored in its database) before sending it; when it stops
    or crashes in between, the transaction stays pending and is sent again only after the
    service was marked down. Its next transaction then skips that id. A numbering that
    goes back (Synapse on SQLite starts again after the highest pending id, or at 1; its
    recoverer sends the oldest pending first) skips nothing."""
    if previous is None or not previous.isdecimal() or not current.isdecimal():
        return False
    return int(current) > int(previous) + 1


def events_digest(event_ids: Iterable[str]) -> str:
    """SHA-256 over the sorted event ids: equal for equal event sets, whatever the order."""
    return hashlib.sha256("\n".join(sorted(set(event_ids))).encode()).hexdigest()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout = 30000")
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.close()


def _make_private(path: Path) -> None:
    if path.exists():
        path.chmod(0o600)


def _migrate(conn: Connection) -> None:
    """Create the tables; move a legacy ``ledger_transactions`` into the log; set the
    watch start once. Runs in the caller's transaction (all or nothing)."""
    metadata.create_all(conn)
    if inspect(conn).has_table(LEGACY_TRANSACTIONS):
        legacy = conn.execute(
            text(f"SELECT txn_id, received_at, event_count FROM {LEGACY_TRANSACTIONS}")
        ).all()
        ids_by_txn: dict[str, list[str]] = {}
        for event_id, txn_id in conn.execute(select(events.c.event_id, events.c.txn_id)):
            ids_by_txn.setdefault(txn_id, []).append(event_id)
        rows = [
            {
                "txn_id": txn_id,
                "received_at": received_at,
                "event_count": event_count,
                "new_events": len(ids_by_txn.get(txn_id, [])),
                "digest": events_digest(ids_by_txn.get(txn_id, [])),
            }
            for txn_id, received_at, event_count in sorted(legacy, key=lambda r: (r[1], r[0]))
        ]
        if rows:
            conn.execute(transaction_log.insert(), rows)
        conn.execute(text(f"DROP TABLE {LEGACY_TRANSACTIONS}"))
        log.info("ledger migrated: %d transactions moved to the transaction log", len(rows))
    if conn.scalar(select(meta.c.value).where(meta.c.name == WATCH_STARTED_AT)) is None:
        first = conn.scalar(select(func.min(transaction_log.c.received_at)))
        first_event = conn.scalar(select(func.min(events.c.received_at)))
        known = [t for t in (first, first_event) if t is not None]
        started = min(known) if known else int(time.time() * 1000)
        conn.execute(meta.insert().values(name=WATCH_STARTED_AT, value=str(started)))


class Ledger:
    """Open with :meth:`open`; one instance per process (writes are serialised)."""

    def __init__(self, engine: AsyncEngine, last_txn_id: str | None = None) -> None:
        self._engine = engine
        self._lock = asyncio.Lock()
        self._last_txn_id = last_txn_id  # the id of the latest delivery, retries included

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
        try:
            async with engine.begin() as conn:
                await conn.run_sync(_migrate)
                last = await conn.scalar(
                    select(transaction_log.c.txn_id)
                    .order_by(transaction_log.c.id.desc())
                    .limit(1)
                )
        except BaseException:
            await engine.dispose()
            raise
        if path is not None:
            _make_private(path)
        return cls(engine, last)

    async def close(self) -> None:
        await self._engine.dispose()

    def _insert_events(self) -> Any:
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(events).on_conflict_do_nothing(index_elements=["event_id"])
        return sqlite.insert(events).on_conflict_do_nothing(index_elements=["event_id"])

    async def _known(self, conn: AsyncConnection, event_ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(event_ids), _IN_CHUNK):
            chunk = event_ids[start : start + _IN_CHUNK]
            result = await conn.execute(
                select(events.c.event_id).where(events.c.event_id.in_(chunk))
            )
            found.update(result.scalars())
        return found

    async def record_transaction(self, txn_id: str, rows: Sequence[LedgerRow]) -> RecordResult:
        """Commit the events not recorded yet, and log the delivery unless it is a plain
        retry of one logged before (same id, same events).

        Returns only after the commit; raises on any database error (nothing committed)."""
        now = int(time.time() * 1000)
        digest = events_digest(r.event_id for r in rows)
        async with self._lock:
            result = await self._record(txn_id, rows, now, digest)
            self._last_txn_id = txn_id
        return result

    async def _record(
        self, txn_id: str, rows: Sequence[LedgerRow], now: int, digest: str
    ) -> RecordResult:
        previous = self._last_txn_id
        async with self._engine.begin() as conn:
            earlier = set(
                (
                    await conn.execute(
                        select(transaction_log.c.digest).where(
                            transaction_log.c.txn_id == txn_id
                        )
                    )
                ).scalars()
            )
            known = await self._known(conn, [r.event_id for r in rows])
            new = [r for r in rows if r.event_id not in known]
            if new:
                await conn.execute(
                    self._insert_events(),
                    [{**asdict(r), "txn_id": txn_id, "received_at": now} for r in new],
                )
            if digest in earlier:
                return RecordResult(Outcome.DUPLICATE, len(new), txn_id, previous)
            await conn.execute(
                transaction_log.insert().values(
                    txn_id=txn_id,
                    received_at=now,
                    event_count=len(rows),
                    new_events=len(new),
                    digest=digest,
                )
            )
        if earlier:
            log.warning(
                "AS transaction id %s was used before for other events (the homeserver "
                "restarted its transaction ids?): %d events, %d new, digest %s",
                txn_id,
                len(rows),
                len(new),
                digest[:16],
            )
            return RecordResult(Outcome.REUSED_ID, len(new), txn_id, previous)
        return RecordResult(Outcome.RECORDED, len(new), txn_id, previous)

    async def record_caught_up(self, rows: Sequence[LedgerRow]) -> int:
        """Commit events read from the homeserver's timeline that the ledger lacks (see
        :mod:`server_bridge.appservice.catchup`); returns how many were new. Leaves the
        transaction numbering alone."""
        now = int(time.time() * 1000)
        async with self._lock, self._engine.begin() as conn:
            known = await self._known(conn, [r.event_id for r in rows])
            new = [r for r in rows if r.event_id not in known]
            if not new:
                return 0
            await conn.execute(
                self._insert_events(),
                [{**asdict(r), "txn_id": CATCH_UP_TXN, "received_at": now} for r in new],
            )
            await conn.execute(
                transaction_log.insert().values(
                    txn_id=CATCH_UP_TXN,
                    received_at=now,
                    event_count=len(new),
                    new_events=len(new),
                    digest=events_digest(r.event_id for r in new),
                )
            )
        return len(new)

    async def get_meta(self, name: str) -> str | None:
        async with self._engine.connect() as conn:
            value = await conn.scalar(select(meta.c.value).where(meta.c.name == name))
        return None if value is None else str(value)

    async def set_meta(self, name: str, value: str) -> None:
        async with self._lock, self._engine.begin() as conn:
            await conn.execute(meta.delete().where(meta.c.name == name))
            await conn.execute(meta.insert().values(name=name, value=value))

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
        """Deliveries logged (plain retries of a logged delivery are not counted again)."""
        async with self._engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(transaction_log)) or 0)

    async def transactions(self, txn_id: str | None = None) -> list[dict[str, Any]]:
        """The transaction log, oldest first (optionally of one transaction id)."""
        query = select(transaction_log).order_by(transaction_log.c.id)
        if txn_id is not None:
            query = query.where(transaction_log.c.txn_id == txn_id)
        async with self._engine.connect() as conn:
            return [dict(row._mapping) for row in await conn.execute(query)]

    async def info(self) -> LedgerInfo:
        async with self._engine.connect() as conn:
            started = await conn.scalar(
                select(meta.c.value).where(meta.c.name == WATCH_STARTED_AT)
            )
            last_txn = await conn.scalar(select(func.max(transaction_log.c.received_at)))
            last_event = await conn.scalar(select(func.max(events.c.received_at)))
            n_events = await conn.scalar(select(func.count()).select_from(events))
            n_txns = await conn.scalar(select(func.count()).select_from(transaction_log))
        last = [t for t in (last_txn, last_event) if t is not None]
        return LedgerInfo(
            watch_started_at=int(started) if started is not None else 0,
            last_received_at=max(last) if last else None,
            events=int(n_events or 0),
            transactions=int(n_txns or 0),
        )
