"""The write path: ingest (one transaction per batch), late decryptions, withheld keys,
attachments and room metadata."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from . import kv
from .batch import Batch
from .checkpoints import maybe_checkpoint
from .context import StoreContext, epoch_of
from .errors import ContentDestroyedError, InvalidEventError, UnknownEventError
from .keys import make_aad, seal, unseal
from .maintenance import maybe_analyze
from .models import PERMANENT, EventRecord, IngestResult
from .retention import append_meta_record
from .schema import records, rooms
from .search import indexable_text
from .validate import dump_json, encode_envelope, relation_of

log = logging.getLogger(__name__)

_IN_CHUNK = 500


class _Prepared:
    __slots__ = ("record", "envelope", "tokens", "rel_type", "target")

    def __init__(self, record: EventRecord, envelope: bytes, tokens: list[int]) -> None:
        self.record = record
        self.envelope = envelope
        self.tokens = tokens
        rel = relation_of(record)
        self.rel_type = rel.rel_type
        self.target = rel.target


def _prepare(
    ctx: StoreContext, batch: Sequence[EventRecord]
) -> tuple[list[_Prepared], list[tuple[str, str]], int]:
    prepared: list[_Prepared] = []
    rejected: list[tuple[str, str]] = []
    seen: set[str] = set()
    duplicates = 0
    for record in batch:
        try:
            envelope = encode_envelope(record)
        except InvalidEventError as exc:
            log.error("archive rejected event %s: %s", exc.event_id, exc.reason)
            rejected.append((exc.event_id, exc.reason))
            continue
        if record.event_id in seen:
            duplicates += 1
            continue
        seen.add(record.event_id)
        tokens: list[int] = []
        if record.decryption != "undecryptable":
            tokens = ctx.index.tokens(indexable_text(record.type, record.content))
        prepared.append(_Prepared(record, envelope, tokens))
    return prepared, rejected, duplicates


async def _existing_uids(conn: AsyncConnection, uids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(uids), _IN_CHUNK):
        chunk = uids[start : start + _IN_CHUNK]
        result = await conn.execute(select(records.c.uid).where(records.c.uid.in_(chunk)))
        found.update(result.scalars())
    return found


async def ingest(
    ctx: StoreContext, batch: Sequence[EventRecord], sync_token: str | None
) -> IngestResult:
    prepared, rejected, in_batch_duplicates = _prepare(ctx, batch)

    async def operation(
        conn: AsyncConnection,
    ) -> tuple[Batch, int, list[tuple[str, str]]]:
        work = await Batch.start(ctx, conn)
        existing = await _existing_uids(conn, [p.record.event_id for p in prepared])
        await work.prefetch(
            {p.record.room_id for p in prepared if p.record.event_id not in existing}
        )
        inserted = 0
        refused: list[tuple[str, str]] = []
        sender_tags: dict[str, int] = {}
        for item in prepared:
            rec = item.record
            if rec.event_id in existing:
                continue
            state = await work.room(rec.room_id)
            assert state is not None
            epoch = epoch_of(rec.origin_server_ts)
            aead = await work.dek(state, epoch)
            if aead is None:
                refused.append(
                    (rec.event_id, "its room and year were already destroyed after retention")
                )
                continue
            ciphertext = seal(aead, item.envelope, make_aad("event", rec.room_id, rec.event_id))
            pk = work.append(
                state,
                kind="event",
                uid=rec.event_id,
                ts=rec.origin_server_ts,
                ciphertext=ciphertext,
                key_epoch=epoch,
                sender=rec.sender,
                type=rec.type,
                state_key=rec.state_key,
                decryption=rec.decryption,
                sender_device=rec.sender_device,
                sender_key=rec.sender_key,
                session_id=rec.session_id,
                rel_type=item.rel_type,
                target=item.target,
            )
            if item.tokens:
                tag = sender_tags.get(rec.sender)
                if tag is None:
                    tag = sender_tags[rec.sender] = ctx.index.sender_tag(rec.sender)
                ts = rec.origin_server_ts
                room_pk = state.pk
                work.index_rows.extend((t, ts, pk, room_pk, tag) for t in item.tokens)
            inserted += 1
        await work.flush()
        if sync_token is not None:
            await kv.put(conn, "sync_token", sync_token)
        return work, inserted, refused

    work, inserted, refused = await ctx.write("ingest", operation)
    work.publish()
    for event_id, reason in refused:
        log.error("archive rejected event %s: %s", event_id, reason)
    rejected.extend(refused)
    duplicates = in_batch_duplicates + len(prepared) - inserted - len(refused)
    await maybe_checkpoint(ctx)
    await maybe_analyze(ctx)
    return IngestResult(inserted=inserted, duplicates=duplicates, rejected=rejected)


async def _event_row(conn: AsyncConnection, event_id: str) -> Any:
    return (
        await conn.execute(
            select(records).where(records.c.uid == event_id, records.c.kind == "event")
        )
    ).first()


async def add_decryption(
    ctx: StoreContext,
    event_id: str,
    content: dict[str, Any],
    sender_device: str | None,
    sender_key: str | None,
    event_type: str | None = None,
    imported: dict[str, Any] | None = None,
) -> bool:
    probe = EventRecord(
        event_id=event_id,
        room_id="!probe",
        sender="@probe",
        origin_server_ts=0,
        type=event_type or "m.room.message",
        content=content,
        sender_device=sender_device,
        sender_key=sender_key,
    )
    envelope = encode_envelope(probe)
    if imported is not None:
        # The provenance of an imported key travels inside the sealed (and chained) envelope.
        envelope = envelope[:-1] + b',"provenance":' + dump_json(dict(imported)) + b"}"
    uid = f"decryption:{event_id}"

    async def operation(conn: AsyncConnection) -> Batch | None:
        row = await _event_row(conn, event_id)
        if row is None or row.decryption != "undecryptable":
            return None
        if (await conn.execute(select(records.c.pk).where(records.c.uid == uid))).first():
            return None
        work = await Batch.start(ctx, conn)
        room_id = await ctx.room_id_of(conn, row.room_pk)
        state = await work.room(room_id, create=False)
        assert state is not None
        aead = await work.dek(state, row.key_epoch, create=False)
        if aead is None:
            return None
        work.append(
            state,
            kind="decryption",
            uid=uid,
            ts=row.ts,
            ciphertext=seal(aead, envelope, make_aad("decryption", room_id, uid)),
            key_epoch=row.key_epoch,
            sender=row.sender,
            type=event_type or row.type,  # the decrypted event's own type
            decryption="decrypted" if imported is None else "imported",
            sender_device=sender_device,
            sender_key=sender_key,
            session_id=row.session_id,
            target=event_id,
        )
        tokens = ctx.index.tokens(indexable_text(event_type or row.type, content))
        tag = ctx.index.sender_tag(row.sender)
        work.index_rows.extend((t, row.ts, row.pk, row.room_pk, tag) for t in tokens)
        await work.flush()
        return work

    work = await ctx.write("late decryption", operation)
    if work is None:
        return False
    work.publish()
    await maybe_checkpoint(ctx)
    return True


async def record_withheld(
    ctx: StoreContext, room_id: str, session_id: str, sender: str, code: str, reason: str | None
) -> None:
    for name, value in (("room_id", room_id), ("session_id", session_id), ("sender", sender)):
        if not isinstance(value, str) or not value:
            raise InvalidEventError(f"withheld:{session_id}", f"{name} must be a non-empty string")
    body = dump_json({"code": code, "reason": reason})

    async def operation(conn: AsyncConnection) -> Batch:
        work = await Batch.start(ctx, conn)
        state = await work.room(room_id)
        assert state is not None
        epoch = epoch_of(work.now)
        aead = await work.dek(state, epoch)
        assert aead is not None
        uid = f"withheld:{secrets.token_hex(12)}"
        work.append(
            state,
            kind="withheld",
            uid=uid,
            ts=work.now,
            ciphertext=seal(aead, body, make_aad("withheld", room_id, uid)),
            key_epoch=epoch,
            sender=sender,
            type=code,
            session_id=session_id,
        )
        await work.flush()
        return work

    (await ctx.write("withheld key record", operation)).publish()


async def store_attachment(
    ctx: StoreContext,
    event_id: str,
    room_id: str,
    data: bytes,
    filename: str | None,
    mimetype: str | None,
    sha256_ok: bool | None,
    error: str | None,
) -> None:
    meta_plain = dump_json(
        {
            "filename": filename,
            "mimetype": mimetype,
            "size": len(data),
            "sha256_ok": sha256_ok,
            "error": error,
        }
    )

    async def operation(conn: AsyncConnection) -> Batch | None:
        row = await _event_row(conn, event_id)
        if row is None:
            raise UnknownEventError(f"event {event_id} is not archived")
        actual_room = await ctx.room_id_of(conn, row.room_pk)
        if actual_room != room_id:
            raise InvalidEventError(event_id, "attachment names a different room than its event")
        previous = (
            await conn.execute(
                select(records.c.uid, records.c.blob_digest).where(
                    records.c.kind == "attachment", records.c.target == event_id
                )
            )
        ).all()
        if any(p.blob_digest is not None for p in previous):
            return None
        work = await Batch.start(ctx, conn)
        state = await work.room(room_id, create=False)
        assert state is not None
        aead = await work.dek(state, row.key_epoch, create=False)
        if aead is None:
            raise ContentDestroyedError(f"content of event {event_id} was destroyed")
        uid = f"attachment:{event_id}:{len(previous)}"
        blob = seal(aead, data, make_aad("attachment-blob", room_id, uid)) if data else None
        pk = work.append(
            state,
            kind="attachment",
            uid=uid,
            ts=row.ts,
            ciphertext=seal(aead, meta_plain, make_aad("attachment", room_id, uid)),
            key_epoch=row.key_epoch,
            sender=row.sender,
            target=event_id,
            blob_digest=None if blob is None else _digest(blob),
        )
        if blob is not None:
            work.attachment_rows.append({"record_pk": pk, "blob": blob})
        await work.flush()
        return work

    work = await ctx.write("attachment", operation)
    if work is not None:
        work.publish()


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def seal_info(ctx: StoreContext, room_id: str, info: dict[str, Any]) -> bytes:
    return seal(ctx.meta_aead, dump_json(info), make_aad("room-info", room_id, room_id))


def open_info(ctx: StoreContext, room_id: str, blob: bytes | None) -> dict[str, Any]:
    if blob is None:
        return {}
    value = json.loads(unseal(ctx.meta_aead, blob, make_aad("room-info", room_id, room_id)))
    assert isinstance(value, dict)
    return value


async def set_room_info(
    ctx: StoreContext,
    room_id: str,
    *,
    name: str | None = None,
    members: Sequence[str] | None = None,
    key_officials: Sequence[str] | None = None,
    left_reason: str | None = None,
) -> None:
    async def operation(conn: AsyncConnection) -> Batch:
        work = await Batch.start(ctx, conn)
        state = await work.room(room_id)
        assert state is not None
        blob = (
            await conn.execute(select(rooms.c.info).where(rooms.c.pk == state.pk))
        ).scalar_one_or_none()
        info = open_info(ctx, room_id, blob)
        if name is not None:
            info["name"] = name
        if members is not None:
            info["members"] = sorted(set(members))
        if key_officials is not None:
            info["key_officials"] = sorted(set(key_officials))
        if left_reason is not None:
            info["left_reason"] = left_reason
            append_meta_record(ctx, work, state, "left", {"reason": left_reason})
        await conn.execute(
            update(rooms).where(rooms.c.pk == state.pk).values(info=seal_info(ctx, room_id, info))
        )
        if key_officials and not state.retention_explicit and state.retention != PERMANENT:
            append_meta_record(
                ctx, work, state, "retention", {"retention": PERMANENT, "why": "key official"}
            )
            state.retention = PERMANENT
            work.set_room(state, retention=PERMANENT)
        await work.flush()
        return work

    (await ctx.write("room metadata", operation)).publish()
