"""The read path: stored events with their redactions, edits and late decryptions,
timelines with stable pagination, rooms, attachments and blind-index search."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from typing import Any, cast

from cryptography.exceptions import InvalidTag
from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from .context import StoreContext
from .errors import (
    ArchiveError,
    ArchiveIntegrityError,
    ContentDestroyedError,
    UnknownEventError,
)
from .keys import make_aad, unseal
from .models import ArchivedEventMeta, Decryption, RoomSummary, SearchHit, StoredEvent
from .schema import attachments, records, rooms
from .search import count_capped, hits_query, indexable_text, words
from .writer import open_info

log = logging.getLogger(__name__)

_IN_CHUNK = 500


async def _open(
    ctx: StoreContext, conn: AsyncConnection, row: Any, kind: str, room_id: str
) -> dict[str, Any] | None:
    if row.ciphertext is None:
        return None
    aead = await ctx.dek(conn, row.room_pk, row.key_epoch)
    if aead is None:
        return None
    try:
        plain = unseal(aead, row.ciphertext, make_aad(kind, room_id, row.uid))
    except InvalidTag:
        log.error("ciphertext of archive record %s fails authentication", row.pk)
        raise ArchiveIntegrityError(
            f"the stored content of {row.uid} does not authenticate: it was altered or moved "
            "from another record; run `rijkschat-archiver verify`"
        ) from None
    value = json.loads(plain)
    assert isinstance(value, dict)
    return value


async def build_events(
    ctx: StoreContext, conn: AsyncConnection, rows: Sequence[Row[Any]]
) -> list[StoredEvent]:
    uids = [row.uid for row in rows]
    links: dict[str, list[Any]] = {}
    for start in range(0, len(uids), _IN_CHUNK):
        chunk = uids[start : start + _IN_CHUNK]
        result = await conn.execute(
            select(records)
            .where(records.c.target.in_(chunk))
            .order_by(records.c.room_pk, records.c.seq)
        )
        for link in result:
            links.setdefault(link.target, []).append(link)
    events: list[StoredEvent] = []
    for row in rows:
        room_id = await ctx.room_id_of(conn, row.room_pk)
        envelope = await _open(ctx, conn, row, "event", room_id)
        destroyed = envelope is None
        content = None if envelope is None else envelope.get("content")
        decryption = cast(Decryption, row.decryption)
        event_type = row.type
        sender_device, sender_key = row.sender_device, row.sender_key
        late = False
        imported_key: dict[str, Any] | None = None
        redacted_by: str | None = None
        edits: list[str] = []
        reactions: list[str] = []
        has_attachment = False
        for link in links.get(row.uid, []):
            if link.kind == "decryption":
                decrypted = await _open(ctx, conn, link, "decryption", room_id)
                if decrypted is not None:
                    content = decrypted.get("content")
                if link.decryption == "imported":
                    provenance = (decrypted or {}).get("provenance")
                    imported_key = dict(provenance) if isinstance(provenance, dict) else {}
                decryption, late = "decrypted", True
                sender_device, sender_key = link.sender_device, link.sender_key
                event_type = link.type
            elif link.kind == "attachment":
                has_attachment = has_attachment or link.blob_digest is not None
            elif link.kind == "event" and link.rel_type == "m.redaction":
                redacted_by = redacted_by or link.uid
            elif link.kind == "event" and link.rel_type == "m.replace":
                edits.append(link.uid)
            elif link.kind == "event" and link.rel_type == "m.annotation":
                reactions.append(link.uid)
        events.append(
            StoredEvent(
                event_id=row.uid,
                room_id=room_id,
                sender=row.sender,
                sender_device=sender_device,
                origin_server_ts=row.ts,
                type=event_type,
                state_key=row.state_key,
                content=content,
                decryption=decryption,
                relates_to=None
                if envelope is None
                else envelope.get("relates_to") or _relates(content, envelope.get("encrypted")),
                redacted_by=redacted_by,
                edits=edits,
                has_attachment=has_attachment,
                sender_key=sender_key,
                session_id=row.session_id,
                late_decryption=late,
                destroyed=destroyed,
                encrypted=None if envelope is None else envelope.get("encrypted"),
                unsigned=None if envelope is None else envelope.get("unsigned"),
                reactions=reactions,
                imported_key=imported_key,
            )
        )
    return events


def _relates(content: Any, encrypted: Any) -> dict[str, Any] | None:
    for source in (content, encrypted):
        if isinstance(source, dict) and isinstance(source.get("m.relates_to"), dict):
            return cast(dict[str, Any], source["m.relates_to"])
    return None


def encode_token(ts: int, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{ts}.{pk}".encode()).decode().rstrip("=")


def decode_token(token: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        ts, pk = raw.split(".")
        return int(ts), int(pk)
    except (ValueError, UnicodeDecodeError):
        raise ArchiveError(f"invalid pagination token {token!r}") from None


async def room_events(
    ctx: StoreContext, conn: AsyncConnection, room_id: str, after: str | None, limit: int
) -> tuple[list[StoredEvent], str | None]:
    room_pk = await ctx.room_pk_of(conn, room_id)
    if room_pk is None:
        raise UnknownEventError(f"room {room_id} is not in the archive")
    query = select(records).where(records.c.room_pk == room_pk, records.c.kind == "event")
    if after is not None:
        ts, pk = decode_token(after)
        query = query.where(or_(records.c.ts > ts, and_(records.c.ts == ts, records.c.pk > pk)))
    rows = (await conn.execute(query.order_by(records.c.ts, records.c.pk).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    events = await build_events(ctx, conn, rows)
    next_token = encode_token(rows[-1].ts, rows[-1].pk) if more and rows else None
    return events, next_token


async def get_event(ctx: StoreContext, conn: AsyncConnection, event_id: str) -> StoredEvent:
    row = (
        await conn.execute(
            select(records).where(records.c.uid == event_id, records.c.kind == "event")
        )
    ).first()
    if row is None:
        raise UnknownEventError(f"event {event_id} is not in the archive")
    return (await build_events(ctx, conn, [row]))[0]


async def get_events(
    ctx: StoreContext, conn: AsyncConnection, event_ids: Sequence[str]
) -> dict[str, StoredEvent]:
    rows: list[Row[Any]] = []
    wanted = list(dict.fromkeys(event_ids))
    for start in range(0, len(wanted), _IN_CHUNK):
        result = await conn.execute(
            select(records).where(
                records.c.uid.in_(wanted[start : start + _IN_CHUNK]), records.c.kind == "event"
            )
        )
        rows.extend(result.all())
    return {event.event_id: event for event in await build_events(ctx, conn, rows)}


async def get_attachment(
    ctx: StoreContext, conn: AsyncConnection, event_id: str
) -> tuple[bytes, str | None, str | None]:
    rows = (
        await conn.execute(
            select(records)
            .where(records.c.kind == "attachment", records.c.target == event_id)
            .order_by(records.c.seq.desc())
        )
    ).all()
    for row in rows:
        room_id = await ctx.room_id_of(conn, row.room_pk)
        if row.ciphertext is None:
            raise ContentDestroyedError(f"the attachment of {event_id} was destroyed")
        if row.blob_digest is None:
            continue
        info = await _open(ctx, conn, row, "attachment", room_id)
        blob = (
            await conn.execute(select(attachments.c.blob).where(attachments.c.record_pk == row.pk))
        ).scalar_one()
        aead = await ctx.dek(conn, row.room_pk, row.key_epoch)
        if aead is None or info is None:
            raise ContentDestroyedError(f"the attachment of {event_id} was destroyed")
        try:
            data = unseal(aead, blob, make_aad("attachment-blob", room_id, row.uid))
        except InvalidTag:
            raise ArchiveIntegrityError(
                f"the stored attachment of {event_id} does not authenticate"
            ) from None
        return data, info.get("filename"), info.get("mimetype")
    raise UnknownEventError(f"no attachment stored for {event_id}")


async def attachment_status(
    ctx: StoreContext, conn: AsyncConnection, event_id: str
) -> dict[str, Any]:
    row = (
        await conn.execute(
            select(records)
            .where(records.c.kind == "attachment", records.c.target == event_id)
            .order_by(records.c.seq.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        raise UnknownEventError(f"no attachment recorded for {event_id}")
    room_id = await ctx.room_id_of(conn, row.room_pk)
    info = await _open(ctx, conn, row, "attachment", room_id)
    if info is None:
        raise ContentDestroyedError(f"the attachment of {event_id} was destroyed")
    return {**info, "stored": row.blob_digest is not None}


async def withheld_keys(
    ctx: StoreContext, conn: AsyncConnection, room_id: str
) -> list[dict[str, Any]]:
    """The `m.room_key.withheld` notices recorded for a room, oldest first."""
    room_pk = await ctx.room_pk_of(conn, room_id)
    if room_pk is None:
        return []
    rows = (
        await conn.execute(
            select(records)
            .where(records.c.room_pk == room_pk, records.c.kind == "withheld")
            .order_by(records.c.seq)
        )
    ).all()
    out = []
    for row in rows:
        body = await _open(ctx, conn, row, "withheld", room_id)
        out.append(
            {
                "ts": row.ts,
                "sender": row.sender,
                "session_id": row.session_id,
                "code": row.type,
                "reason": None if body is None else body.get("reason"),
            }
        )
    return out


async def list_rooms(ctx: StoreContext, conn: AsyncConnection) -> list[RoomSummary]:
    pending = await undecryptable_counts(conn)
    summaries: list[RoomSummary] = []
    for room in await conn.execute(select(rooms).order_by(rooms.c.room_id)):
        info = open_info(ctx, room.room_id, room.info)
        summaries.append(
            RoomSummary(
                room_id=room.room_id,
                name=info.get("name"),
                members=list(info.get("members", [])),
                key_officials=list(info.get("key_officials", [])),
                event_count=room.event_count,
                first_ts=room.first_ts,
                last_ts=room.last_ts,
                undecryptable=pending.get(room.pk, 0),
                retention=room.retention,
                legal_hold=room.legal_hold,
                left_reason=info.get("left_reason"),
            )
        )
    return summaries


def _still_undecryptable() -> Any:
    done = records.alias("done")
    return and_(
        records.c.decryption == "undecryptable",
        records.c.kind == "event",
        ~select(done.c.pk)
        .where(done.c.kind == "decryption", done.c.target == records.c.uid)
        .exists(),
    )


async def undecryptable_counts(conn: AsyncConnection) -> dict[int, int]:
    result = await conn.execute(
        select(records.c.room_pk, func.count())
        .where(_still_undecryptable())
        .group_by(records.c.room_pk)
    )
    return {room_pk: count for room_pk, count in result.tuples()}


async def undecryptable_session_ids(
    ctx: StoreContext, conn: AsyncConnection, room_id: str | None
) -> set[str]:
    query = select(records.c.session_id).where(_still_undecryptable()).distinct()
    if room_id is not None:
        room_pk = await ctx.room_pk_of(conn, room_id)
        if room_pk is None:
            return set()
        query = query.where(records.c.room_pk == room_pk)
    return {s for s in (await conn.execute(query)).scalars() if s is not None}


async def pending_by_session(
    ctx: StoreContext, conn: AsyncConnection, session_id: str
) -> list[StoredEvent]:
    rows = (
        await conn.execute(
            select(records)
            .where(_still_undecryptable(), records.c.session_id == session_id)
            .order_by(records.c.ts, records.c.pk)
        )
    ).all()
    return await build_events(ctx, conn, rows)


async def archived_event_ids(ctx: StoreContext, conn: AsyncConnection, room_id: str) -> set[str]:
    room_pk = await ctx.room_pk_of(conn, room_id)
    if room_pk is None:
        return set()
    result = await conn.execute(
        select(records.c.uid).where(records.c.room_pk == room_pk, records.c.kind == "event")
    )
    return set(result.scalars())


async def archived_room_ids(conn: AsyncConnection) -> list[str]:
    return list((await conn.execute(select(rooms.c.room_id).order_by(rooms.c.room_id))).scalars())


async def archived_event_meta(
    ctx: StoreContext, conn: AsyncConnection, room_id: str
) -> list[ArchivedEventMeta]:
    room_pk = await ctx.room_pk_of(conn, room_id)
    if room_pk is None:
        return []
    result = await conn.execute(
        select(records.c.uid, records.c.ts, records.c.type, records.c.state_key)
        .where(records.c.room_pk == room_pk, records.c.kind == "event")
        .order_by(records.c.ts, records.c.pk)
    )
    return [ArchivedEventMeta(uid, ts, etype, key) for uid, ts, etype, key in result.tuples()]


async def search(
    ctx: StoreContext,
    conn: AsyncConnection,
    terms: list[str],
    *,
    room_id: str | None,
    sender: str | None,
    from_ts: int | None,
    to_ts: int | None,
    limit: int,
) -> list[SearchHit]:
    if not terms or limit <= 0:
        return []
    room_pk: int | None = None
    if room_id is not None:
        room_pk = await ctx.room_pk_of(conn, room_id)
        if room_pk is None:
            return []
    tokens = [ctx.index.token(t) for t in terms]
    if len(tokens) > 1:
        counts = []
        for token in tokens:
            counts.append((await conn.execute(count_capped(token, 20_000))).scalar_one())
        tokens = [t for _, t in sorted(zip(counts, tokens, strict=True))]
    sender_tag = None if sender is None else ctx.index.sender_tag(sender)
    wanted = set(terms)
    hits: list[SearchHit] = []
    before: tuple[int, int] | None = None
    batch = max(limit, 20)
    while len(hits) < limit:
        found = (
            await conn.execute(
                hits_query(
                    tokens,
                    room_pk=room_pk,
                    sender_tag=sender_tag,
                    from_ts=from_ts,
                    to_ts=to_ts,
                    before=before,
                    limit=batch,
                )
            )
        ).all()
        if not found:
            break
        before = (found[-1].ts, found[-1].record_pk)
        pks = [f.record_pk for f in found]
        rows = list((await conn.execute(select(records).where(records.c.pk.in_(pks)))).all())
        order = {pk: i for i, pk in enumerate(pks)}
        rows.sort(key=lambda r: order[r.pk])
        for event in await build_events(ctx, conn, rows):
            if sender is not None and event.sender != sender:
                continue
            if not wanted.issubset(words(indexable_text(event.type, event.content))):
                continue  # a truncated-HMAC collision: never shown
            hits.append(SearchHit(event=event, terms=tuple(terms)))
            if len(hits) >= limit:
                break
        if len(found) < batch:
            break
    return hits
