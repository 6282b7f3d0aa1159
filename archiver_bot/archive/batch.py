"""One write transaction's worth of chain appends: rooms, data keys, records, index rows.

Working copies of room heads and new data keys are published to the shared caches only
after the transaction committed (:meth:`Batch.publish`), so a rolled-back or retried
transaction leaves no trace in memory.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Table, bindparam, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from . import chain
from .context import RoomState, StoreContext, dek_aad, now_ms
from .keys import new_dek
from .models import PERMANENT
from .schema import attachments, data_keys, records, rooms, search


class Batch:
    def __init__(self, ctx: StoreContext, conn: AsyncConnection, next_pk: int) -> None:
        self.ctx = ctx
        self.conn = conn
        self.next_pk = next_pk
        self.now = now_ms()
        self.rooms: dict[str, RoomState] = {}
        self.deks: dict[tuple[int, int], AESGCM | None] = {}
        self.records: list[dict[str, Any]] = []
        #: (token, ts, record_pk, room_pk, sender_h) rows of the blind index
        self.index_rows: list[tuple[int, int, int, int, int]] = []
        self.attachment_rows: list[dict[str, Any]] = []
        self.room_updates: dict[int, dict[str, Any]] = {}
        #: (room pk, year) -> the data key exists (True) or was destroyed (False)
        self.key_known: dict[tuple[int, int], bool] = {}
        self.keys_prefetched: set[int] = set()
        self.touched: set[int] = set()

    @classmethod
    async def start(cls, ctx: StoreContext, conn: AsyncConnection) -> Batch:
        if ctx.is_postgres:
            timeout = int(ctx.settings.lock_timeout_ms)
            await conn.execute(text(f"SET LOCAL lock_timeout = '{timeout}ms'"))
            await conn.execute(text("LOCK TABLE archive_records IN SHARE ROW EXCLUSIVE MODE"))
        max_pk = (await conn.execute(select(func.max(records.c.pk)))).scalar()
        return cls(ctx, conn, int(max_pk or 0) + 1)

    async def prefetch(self, room_ids: set[str]) -> None:
        """Load the chain heads of these rooms from the database (never from a cache: another
        process may have appended since, under the same database lock)."""
        wanted = [r for r in room_ids if r not in self.rooms]
        for start in range(0, len(wanted), 500):
            result = await self.conn.execute(
                select(rooms).where(rooms.c.room_id.in_(wanted[start : start + 500]))
            )
            for row in result:
                self.rooms[row.room_id] = _state(row)
        room_pks = [state.pk for state in self.rooms.values()]
        for start in range(0, len(room_pks), 500):
            result = await self.conn.execute(
                select(data_keys.c.room_pk, data_keys.c.epoch, data_keys.c.wrapped).where(
                    data_keys.c.room_pk.in_(room_pks[start : start + 500])
                )
            )
            for room_pk, epoch, wrapped in result.tuples():
                self.key_known[(room_pk, epoch)] = wrapped is not None
        self.keys_prefetched.update(room_pks)

    async def room(self, room_id: str, *, create: bool = True) -> RoomState | None:
        state = self.rooms.get(room_id)
        if state is not None:
            return state
        row = (await self.conn.execute(select(rooms).where(rooms.c.room_id == room_id))).first()
        if row is not None:
            state = _state(row)
        elif not create:
            return None
        else:
            retention = self.ctx.settings.default_retention
            head = chain.genesis(room_id)
            pk = (
                await self.conn.execute(
                    insert(rooms)
                    .values(
                        room_id=room_id,
                        created_ts=self.now,
                        retention=retention,
                        retention_explicit=False,
                        legal_hold=False,
                        head_seq=0,
                        head_hash=head,
                    )
                    .returning(rooms.c.pk)
                )
            ).scalar_one()
            state = RoomState(pk, room_id, 0, head, retention, False, False)
        self.rooms[room_id] = state
        return state

    async def dek(self, state: RoomState, epoch: int, *, create: bool = True) -> AESGCM | None:
        key = (state.pk, epoch)
        if key in self.deks:
            return self.deks[key]
        if state.pk in self.keys_prefetched:
            exists = self.key_known.get(key)
        else:
            row = (
                await self.conn.execute(
                    select(data_keys.c.wrapped).where(
                        data_keys.c.room_pk == state.pk, data_keys.c.epoch == epoch
                    )
                )
            ).first()
            exists = None if row is None else row.wrapped is not None
        if exists is False:
            aead = None  # destroyed, possibly by another process
        elif exists:
            aead = await self.ctx.dek(self.conn, state.pk, epoch)
        elif not create:
            aead = None
        else:
            raw = new_dek()
            ref = self.ctx.provider.new_key_ref()
            wrapped = self.ctx.provider.wrap(ref, raw, dek_aad(state.room_id, epoch))
            await self.conn.execute(
                insert(data_keys).values(
                    room_pk=state.pk,
                    epoch=epoch,
                    key_ref=ref,
                    wrapped=wrapped,
                    created_ts=self.now,
                )
            )
            aead = AESGCM(raw)
        self.deks[key] = aead
        return aead

    def append(
        self,
        state: RoomState,
        *,
        kind: str,
        uid: str,
        ts: int,
        ciphertext: bytes | None,
        key_epoch: int | None,
        sender: str | None = None,
        type: str | None = None,
        state_key: str | None = None,
        decryption: str | None = None,
        sender_device: str | None = None,
        sender_key: str | None = None,
        session_id: str | None = None,
        rel_type: str | None = None,
        target: str | None = None,
        blob_digest: bytes | None = None,
    ) -> int:
        """Append one record to the room's chain; returns its primary key."""
        pk = self.next_pk
        self.next_pk += 1
        row: dict[str, Any] = {
            "kind": kind,
            "uid": uid,
            "sender": sender,
            "ts": ts,
            "type": type,
            "state_key": state_key,
            "decryption": decryption,
            "sender_device": sender_device,
            "sender_key": sender_key,
            "session_id": session_id,
            "rel_type": rel_type,
            "target": target,
            "key_epoch": key_epoch,
            "ingested_ts": self.now,
            "digest": chain.digest(ciphertext),
            "blob_digest": blob_digest,
        }
        new_hash = chain.entry_hash(state.head_hash, state.room_id, chain.record_values(row))
        state.head_seq += 1
        if kind == "event":
            state.event_count += 1
            state.first_ts = ts if state.first_ts is None else min(state.first_ts, ts)
            state.last_ts = ts if state.last_ts is None else max(state.last_ts, ts)
        self.touched.add(state.pk)
        row["pk"] = pk
        row["room_pk"] = state.pk
        row["seq"] = state.head_seq
        row["ciphertext"] = ciphertext
        row["prev_hash"] = state.head_hash
        row["hash"] = new_hash
        state.head_hash = new_hash
        self.records.append(row)
        return pk

    def set_room(self, state: RoomState, **values: Any) -> None:
        self.room_updates.setdefault(state.pk, {}).update(values)

    async def flush(self) -> None:
        conn = self.conn
        if self.records:
            await bulk_insert(conn, records, self.records)
        if self.index_rows:
            await bulk_insert_tuples(conn, search, INDEX_COLUMNS, self.index_rows)
        if self.attachment_rows:
            await conn.execute(insert(attachments), self.attachment_rows)
        heads = [
            {
                "b_pk": s.pk,
                "b_seq": s.head_seq,
                "b_hash": s.head_hash,
                "b_count": s.event_count,
                "b_first": s.first_ts,
                "b_last": s.last_ts,
            }
            for s in self.rooms.values()
            if s.pk in self.touched
        ]
        if heads:
            await conn.execute(
                update(rooms)
                .where(rooms.c.pk == bindparam("b_pk"))
                .values(
                    head_seq=bindparam("b_seq"),
                    head_hash=bindparam("b_hash"),
                    event_count=bindparam("b_count"),
                    first_ts=bindparam("b_first"),
                    last_ts=bindparam("b_last"),
                ),
                heads,
            )
        for pk, values in self.room_updates.items():
            await conn.execute(update(rooms).where(rooms.c.pk == pk).values(**values))

    def publish(self) -> None:
        """Make the committed state visible to later transactions."""
        for room_id, state in self.rooms.items():
            self.ctx.rooms[room_id] = state
            self.ctx.room_ids[state.pk] = room_id
        self.ctx.deks.update(self.deks)
        self.ctx.dirty_rooms |= self.touched
        self.ctx.since_checkpoint += len(self.records)
        self.ctx.appended_since_analyze += len(self.records)


def _state(row: Any) -> RoomState:
    return RoomState(
        pk=row.pk,
        room_id=row.room_id,
        head_seq=row.head_seq,
        head_hash=row.head_hash,
        retention=row.retention,
        retention_explicit=row.retention_explicit,
        legal_hold=row.legal_hold,
        event_count=row.event_count,
        first_ts=row.first_ts,
        last_ts=row.last_ts,
    )


def _marker(paramstyle: str, position: int) -> str:
    if paramstyle == "qmark":
        return "?"
    if paramstyle == "numeric":
        return f":{position}"
    if paramstyle == "numeric_dollar":
        return f"${position}"
    return "%s"


INDEX_COLUMNS = ("token", "ts", "record_pk", "room_pk", "sender_h")


async def bulk_insert(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Hot-path executemany straight to the driver: the same INSERT as ``insert(table)``
    without SQLAlchemy's per-row parameter processing (about 3x faster for the index)."""
    names = tuple(rows[0])
    getter = itemgetter(*names)
    await bulk_insert_tuples(conn, table, names, [getter(row) for row in rows])


async def bulk_insert_tuples(
    conn: AsyncConnection, table: Table, names: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    style = conn.dialect.paramstyle
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"VALUES ({', '.join(_marker(style, i + 1) for i in range(len(names)))})"
    )
    await conn.exec_driver_sql(sql, rows)


def is_permanent(retention: str) -> bool:
    return retention == PERMANENT
