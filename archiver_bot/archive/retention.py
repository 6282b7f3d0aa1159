"""Retention classes, legal holds and destruction by crypto-shredding.

Data keys exist per room and calendar year. When a year of a room has passed its retention
period (counted from the end of that year) and the room carries no legal hold, destruction
removes the ciphertext, the search index rows and the attachments of that year, deletes the
wrapped data key from the database and its keyring secret from the key store, and appends a
``destroy`` record to the room's chain. The chain keeps every record's metadata and content
digest, so ``verify`` still passes, while old backups of the database hold only ciphertext
whose key no longer exists.
"""

from __future__ import annotations

import calendar
import json
import logging
import re
import secrets
from typing import Any

from sqlalchemy import delete, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .batch import Batch
from .context import RoomState, StoreContext, now_ms
from .errors import ArchiveError, UnknownEventError
from .keys import make_aad, seal, unseal
from .models import PERMANENT, DestructionReport
from .schema import attachments, data_keys, records, rooms, search
from .search import indexable_text
from .validate import dump_json

log = logging.getLogger(__name__)

_YEARS = re.compile(r"^([1-9][0-9]{0,2})y$")
#: Record kinds whose content is sealed under the room's yearly data keys.
DEK_KINDS = frozenset({"event", "decryption", "attachment", "withheld"})
#: Record kinds whose content is sealed under the archive's metadata key.
META_KINDS = frozenset({"retention", "hold", "destroy", "left"})


def retention_years(retention: str) -> int | None:
    """``"bewaren"`` -> None (forever); ``"10y"`` -> 10. Raises ArchiveError otherwise."""
    if retention == PERMANENT:
        return None
    match = _YEARS.match(retention)
    if not match:
        raise ArchiveError(f"unknown retention class {retention!r} (use 'bewaren' or e.g. '10y')")
    return int(match.group(1))


def expiry_ms(epoch: int, years: int) -> int:
    """Content of calendar year ``epoch`` may be destroyed from 1 January of epoch+1+years."""
    return calendar.timegm((epoch + 1 + years, 1, 1, 0, 0, 0, 0, 0, 0)) * 1000


def append_meta_record(
    ctx: StoreContext,
    work: Batch,
    state: RoomState,
    kind: str,
    body: dict[str, Any],
    *,
    key_epoch: int | None = None,
) -> int:
    uid = f"{kind}:{secrets.token_hex(12)}"
    ciphertext = seal(ctx.meta_aead, dump_json(body), make_aad(kind, state.room_id, uid))
    return work.append(
        state, kind=kind, uid=uid, ts=work.now, ciphertext=ciphertext, key_epoch=key_epoch
    )


def open_meta_record(ctx: StoreContext, room_id: str, uid: str, kind: str, blob: bytes) -> Any:
    return json.loads(unseal(ctx.meta_aead, blob, make_aad(kind, room_id, uid)))


async def _room_state(work: Batch, room_id: str) -> RoomState:
    state = await work.room(room_id, create=False)
    if state is None:
        raise UnknownEventError(f"room {room_id} is not in the archive")
    return state


async def set_retention(ctx: StoreContext, room_id: str, retention: str) -> None:
    retention_years(retention)

    async def operation(conn: AsyncConnection) -> Batch:
        work = await Batch.start(ctx, conn)
        state = await _room_state(work, room_id)
        append_meta_record(ctx, work, state, "retention", {"retention": retention})
        state.retention = retention
        state.retention_explicit = True
        work.set_room(state, retention=retention, retention_explicit=True)
        await work.flush()
        return work

    (await ctx.write("retention change", operation)).publish()


async def set_legal_hold(ctx: StoreContext, room_id: str, on: bool, reason: str) -> None:
    async def operation(conn: AsyncConnection) -> Batch:
        work = await Batch.start(ctx, conn)
        state = await _room_state(work, room_id)
        append_meta_record(ctx, work, state, "hold", {"on": on, "reason": reason})
        state.legal_hold = on
        work.set_room(state, legal_hold=on)
        await work.flush()
        return work

    (await ctx.write("legal hold", operation)).publish()


async def _destroy_epoch(ctx: StoreContext, room_id: str, epoch: int, key_ref: str) -> int:
    async def operation(conn: AsyncConnection) -> tuple[Batch, int]:
        work = await Batch.start(ctx, conn)
        state = await _room_state(work, room_id)
        aead = await ctx.dek(conn, state.pk, epoch)
        rows = (
            await conn.execute(
                select(
                    records.c.pk,
                    records.c.kind,
                    records.c.uid,
                    records.c.type,
                    records.c.ts,
                    records.c.target,
                    records.c.ciphertext,
                ).where(
                    records.c.room_pk == state.pk,
                    records.c.key_epoch == epoch,
                    records.c.kind.in_(DEK_KINDS),
                    records.c.ciphertext.isnot(None),
                )
            )
        ).all()
        index_keys: list[tuple[int, int, int]] = []
        attachment_pks: list[int] = []
        destroyed_events = 0
        for row in rows:
            if row.kind == "attachment":
                attachment_pks.append(row.pk)
                continue
            if row.kind not in ("event", "decryption") or aead is None:
                continue
            envelope = json.loads(
                unseal(aead, row.ciphertext, make_aad(row.kind, room_id, row.uid))
            )
            tokens = ctx.index.tokens(indexable_text(row.type, envelope.get("content")))
            if row.kind == "event":
                destroyed_events += 1
                target_pk = row.pk
            else:
                target_pk = (
                    await conn.execute(select(records.c.pk).where(records.c.uid == row.target))
                ).scalar_one()
            index_keys.extend((t, row.ts, target_pk) for t in tokens)
        for start in range(0, len(index_keys), 300):
            chunk = index_keys[start : start + 300]
            await conn.execute(
                delete(search).where(
                    tuple_(search.c.token, search.c.ts, search.c.record_pk).in_(chunk)
                )
            )
        for start in range(0, len(attachment_pks), 500):
            await conn.execute(
                delete(attachments).where(
                    attachments.c.record_pk.in_(attachment_pks[start : start + 500])
                )
            )
        await conn.execute(
            update(records)
            .where(
                records.c.room_pk == state.pk,
                records.c.key_epoch == epoch,
                records.c.kind.in_(DEK_KINDS),
            )
            .values(ciphertext=None)
        )
        await conn.execute(
            update(data_keys)
            .where(data_keys.c.room_pk == state.pk, data_keys.c.epoch == epoch)
            .values(wrapped=None, destroyed_ts=work.now)
        )
        append_meta_record(
            ctx,
            work,
            state,
            "destroy",
            {"epoch": epoch, "records": len(rows), "events": destroyed_events},
            key_epoch=epoch,
        )
        await work.flush()
        return work, destroyed_events

    work, count = await ctx.write("destruction", operation)
    work.publish()
    ctx.deks.pop((work.rooms[room_id].pk, epoch), None)
    ctx.deks[(work.rooms[room_id].pk, epoch)] = None
    ctx.provider.destroy(key_ref)
    log.info("destroyed %d events of %s (year %d) by crypto-shredding", count, room_id, epoch)
    return count


async def destroy_expired(ctx: StoreContext, now: int | None = None) -> DestructionReport:
    """Destroy every room-year past its retention; legal holds block destruction."""
    now = now_ms() if now is None else now
    async with ctx.engine.connect() as conn:
        room_rows = (
            await conn.execute(
                select(rooms.c.pk, rooms.c.room_id, rooms.c.retention, rooms.c.legal_hold)
            )
        ).all()
        key_rows = (
            await conn.execute(
                select(data_keys.c.room_pk, data_keys.c.epoch, data_keys.c.key_ref).where(
                    data_keys.c.destroyed_ts.is_(None)
                )
            )
        ).all()
    keys_by_room: dict[int, list[tuple[int, str]]] = {}
    for key in key_rows:
        keys_by_room.setdefault(key.room_pk, []).append((key.epoch, key.key_ref))
    held: list[str] = []
    events = 0
    destroyed_keys = 0
    for room in room_rows:
        years = retention_years(room.retention)
        if years is None:
            continue
        expired = [
            (epoch, ref)
            for epoch, ref in sorted(keys_by_room.get(room.pk, []))
            if expiry_ms(epoch, years) <= now
        ]
        if not expired:
            continue
        if room.legal_hold:
            log.warning(
                "legal hold on %s blocks destruction of %d year(s)", room.room_id, len(expired)
            )
            held.append(room.room_id)
            continue
        for epoch, ref in expired:
            events += await _destroy_epoch(ctx, room.room_id, epoch, ref)
            destroyed_keys += 1
    if destroyed_keys and ctx.engine.dialect.name == "sqlite":
        async with ctx.engine.connect() as conn:
            await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    return DestructionReport(
        destroyed_events=events, destroyed_keys=destroyed_keys, held_rooms=held
    )


async def sweep_destroyed_keys(ctx: StoreContext) -> None:
    """Finish destructions interrupted between commit and keyring deletion."""
    async with ctx.engine.connect() as conn:
        refs = (
            await conn.execute(
                select(data_keys.c.key_ref).where(data_keys.c.destroyed_ts.isnot(None))
            )
        ).scalars()
        for ref in refs:
            ctx.provider.destroy(ref)
