"""The Woo case log: Woo (Wet open overheid) requests and the assessments of archived
messages for them, as a chained, sealed, append-only log beside the access log.

Assessing is never editing: an assessment is a record beside the message; a later one for
the same (request, event) supersedes the earlier, and both stay in the log. Every write and
read is also recorded in the access log, in the same transaction as a write. Like the access
log, a process that opened the archive as a *reader* may append (the bridge, next to the
archiver bot that holds the writer lock): on PostgreSQL the access log and then the Woo log
are locked for the transaction; on SQLite the write transaction is ``BEGIN IMMEDIATE``.

The store checks the structure (decision, grounds present, spans ordered and disjoint,
rooms archived, reference unique); which ground codes exist and where a message's text
ends is the caller's business (the Woo's rules live in ``server_bridge.woo``).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from . import chain
from .audit import append_access, check_actor
from .context import StoreContext, now_ms
from .errors import DuplicateWooReferenceError, UnknownWooRequestError, WooInputError
from .keys import make_aad, seal, unseal
from .models import (
    WOO_DECISIONS,
    Actor,
    WooAssessment,
    WooDecision,
    WooRequest,
    WooSpan,
)
from .schema import rooms, woo_log
from .validate import dump_json

MAX_REFERENCE_CHARS = 64
MAX_TITLE_CHARS = 500
MAX_NOTE_CHARS = 4000
MAX_QUERY_CHARS = 500
MAX_ROOMS = 200
MAX_GROUNDS = 20
MAX_SPANS = 500
MAX_GROUND_CHARS = 32
MAX_ID_CHARS = 255
_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_TS = 2**53 - 1


def _aad(seq: int) -> bytes:
    return make_aad("woo", chain.WOO_CHAIN, str(seq))


def _text(value: object, name: str, limit: int, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise WooInputError(f"{name} must be a non-empty text")
    if len(value) > limit:
        raise WooInputError(f"{name} is limited to {limit} characters")
    return value.strip()


def _ts(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TS:
        raise WooInputError(f"{name} must be a time in milliseconds since 1970 (or absent)")
    return value


def check_request(
    reference: object,
    title: object,
    received: object,
    room_ids: object,
    from_ts: object,
    to_ts: object,
    query: object,
) -> dict[str, Any]:
    """The request's sealed body, or :class:`WooInputError` saying what is wrong."""
    ref = _text(reference, "reference", MAX_REFERENCE_CHARS)
    assert ref is not None
    if not _REFERENCE.match(ref):
        raise WooInputError(
            "reference may hold letters, digits and . _ / - (e.g. 2026-0412), at most 64"
        )
    name = _text(title, "title", MAX_TITLE_CHARS)
    if not isinstance(received, str) or not _DATE.match(received):
        raise WooInputError("received must be a date YYYY-MM-DD")
    if not isinstance(room_ids, list | tuple) or not room_ids:
        raise WooInputError("rooms must list at least one room id")
    if len(room_ids) > MAX_ROOMS:
        raise WooInputError(f"a request covers at most {MAX_ROOMS} rooms")
    clean_rooms: list[str] = []
    for room in room_ids:
        if not isinstance(room, str) or not room.startswith("!") or len(room) > MAX_ID_CHARS:
            raise WooInputError("rooms must be room ids (!opaque:server)")
        if room not in clean_rooms:
            clean_rooms.append(room)
    start, end = _ts(from_ts, "from_ts"), _ts(to_ts, "to_ts")
    if start is not None and end is not None and start > end:
        raise WooInputError("from_ts lies after to_ts")
    q = _text(query, "query", MAX_QUERY_CHARS, required=False)
    return {
        "reference": ref,
        "title": name,
        "received": received,
        "rooms": clean_rooms,
        "from_ts": start,
        "to_ts": end,
        "query": q,
    }


def check_assessment(
    event_id: object, decision: object, grounds: object, spans: object, note: object
) -> dict[str, Any]:
    """The assessment's sealed body, or :class:`WooInputError` saying what is wrong."""
    if not isinstance(event_id, str) or not event_id.startswith("$") or len(event_id) > 255:
        raise WooInputError("event id must look like $opaque")
    if decision not in WOO_DECISIONS:
        raise WooInputError("decision must be one of " + ", ".join(WOO_DECISIONS))
    if not isinstance(grounds, list | tuple) or len(grounds) > MAX_GROUNDS:
        raise WooInputError(f"grounds must be a list of at most {MAX_GROUNDS} ground codes")
    clean_grounds: list[str] = []
    for ground in grounds:
        if not isinstance(ground, str) or not ground or len(ground) > MAX_GROUND_CHARS:
            raise WooInputError("every ground must be a ground code such as 5.1.2e")
        if ground not in clean_grounds:
            clean_grounds.append(ground)
    if decision != "openbaar" and not clean_grounds:
        raise WooInputError(f"a decision {decision} needs at least one ground")
    if decision == "openbaar" and clean_grounds:
        raise WooInputError("a decision openbaar withholds nothing and takes no grounds")
    if not isinstance(spans, list | tuple) or len(spans) > MAX_SPANS:
        raise WooInputError(f"spans must be a list of at most {MAX_SPANS} ranges")
    clean_spans: list[dict[str, Any]] = []
    for span in spans:
        if isinstance(span, WooSpan):
            span = {"start": span.start, "end": span.end, "ground": span.ground}
        if not isinstance(span, dict) or set(span) - {"start", "end", "ground"}:
            raise WooInputError("every span is an object {start, end, ground}")
        start, end, ground = span.get("start"), span.get("end"), span.get("ground")
        if (
            isinstance(start, bool)
            or isinstance(end, bool)
            or not isinstance(start, int)
            or not isinstance(end, int)
            or not 0 <= start < end
        ):
            raise WooInputError("a span needs integers 0 <= start < end")
        if not isinstance(ground, str) or ground not in clean_grounds:
            raise WooInputError("every span's ground must be one of the assessment's grounds")
        clean_spans.append({"start": start, "end": end, "ground": ground})
    clean_spans.sort(key=lambda s: (s["start"], s["end"]))
    for before, after in zip(clean_spans, clean_spans[1:], strict=False):
        if after["start"] < before["end"]:
            raise WooInputError(
                f"spans {before['start']}-{before['end']} and "
                f"{after['start']}-{after['end']} overlap"
            )
    if decision == "deels_openbaar" and not clean_spans:
        raise WooInputError("a decision deels_openbaar needs the spans that are withheld")
    if decision != "deels_openbaar" and clean_spans:
        raise WooInputError("spans belong to a decision deels_openbaar only")
    clean_note = _text(note, "note", MAX_NOTE_CHARS, required=False) if note != "" else None
    return {
        "event_id": event_id,
        "decision": decision,
        "grounds": clean_grounds,
        "spans": clean_spans,
        "note": clean_note,
    }


async def _lock(ctx: StoreContext, conn: AsyncConnection) -> None:
    if ctx.is_postgres:  # access log first, as every appender does: no lock-order deadlock
        await conn.execute(text("LOCK TABLE archive_access_log IN SHARE ROW EXCLUSIVE MODE"))
        await conn.execute(text("LOCK TABLE archive_woo_log IN SHARE ROW EXCLUSIVE MODE"))


async def _append(
    ctx: StoreContext,
    conn: AsyncConnection,
    actor: Actor,
    kind: str,
    request_id: str,
    body: dict[str, Any],
) -> tuple[int, int]:
    head = (
        await conn.execute(
            select(woo_log.c.seq, woo_log.c.hash).order_by(woo_log.c.seq.desc()).limit(1)
        )
    ).first()
    seq = 1 if head is None else head.seq + 1
    prev = chain.genesis(chain.WOO_CHAIN) if head is None else head.hash
    sealed = seal(ctx.meta_aead, dump_json(body), _aad(seq))
    digest = chain.digest(sealed)
    ts = now_ms()
    values = (seq, ts, actor.user_id, kind, request_id, digest)
    await conn.execute(
        insert(woo_log).values(
            seq=seq,
            ts=ts,
            user_id=actor.user_id,
            kind=kind,
            request_id=request_id,
            details=sealed,
            digest=digest,
            prev_hash=prev,
            hash=chain.entry_hash(prev, chain.WOO_CHAIN, values),
        )
    )
    return seq, ts


def _open(ctx: StoreContext, row: Any) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(unseal(ctx.meta_aead, row.details, _aad(row.seq))))


def _request(ctx: StoreContext, row: Any) -> WooRequest:
    body = _open(ctx, row)
    return WooRequest(
        id=row.request_id,
        reference=body["reference"],
        title=body["title"],
        received=body["received"],
        rooms=list(body["rooms"]),
        from_ts=body.get("from_ts"),
        to_ts=body.get("to_ts"),
        query=body.get("query"),
        created_by=row.user_id,
        created_ts=row.ts,
    )


def _assessment(ctx: StoreContext, row: Any) -> WooAssessment:
    body = _open(ctx, row)
    return WooAssessment(
        seq=row.seq,
        request_id=row.request_id,
        event_id=body["event_id"],
        decision=cast(WooDecision, body["decision"]),
        grounds=list(body["grounds"]),
        spans=[WooSpan(s["start"], s["end"], s["ground"]) for s in body["spans"]],
        note=body.get("note"),
        assessed_by=row.user_id,
        assessed_ts=row.ts,
    )


async def _all_requests(ctx: StoreContext, conn: AsyncConnection) -> list[WooRequest]:
    result = await conn.execute(
        select(woo_log).where(woo_log.c.kind == "request").order_by(woo_log.c.seq)
    )
    return [_request(ctx, row) for row in result]


async def _find_request(
    ctx: StoreContext, conn: AsyncConnection, request_id: str
) -> WooRequest:
    row = (
        await conn.execute(
            select(woo_log).where(
                woo_log.c.kind == "request", woo_log.c.request_id == request_id
            )
        )
    ).first()
    if row is None:
        raise UnknownWooRequestError("no Woo request with this id")
    return _request(ctx, row)


async def create_request(
    ctx: StoreContext,
    actor: Actor,
    *,
    reference: str,
    title: str,
    received: str,
    room_ids: Sequence[str],
    from_ts: int | None,
    to_ts: int | None,
    query: str | None,
) -> WooRequest:
    check_actor(actor)
    body = check_request(reference, title, received, list(room_ids), from_ts, to_ts, query)
    request_id = secrets.token_hex(8)
    audit_body = dump_json(
        {"purpose": actor.purpose, "request": request_id, "reference": body["reference"]}
    )

    async def operation(conn: AsyncConnection) -> int:
        await _lock(ctx, conn)
        known = set(
            (
                await conn.execute(
                    select(rooms.c.room_id).where(rooms.c.room_id.in_(body["rooms"]))
                )
            ).scalars()
        )
        missing = [r for r in body["rooms"] if r not in known]
        if missing:
            raise WooInputError(f"room {missing[0]} is not in the archive")
        for existing in await _all_requests(ctx, conn):
            if existing.reference == body["reference"]:
                raise DuplicateWooReferenceError(
                    f"a Woo request with reference {body['reference']} exists already"
                )
        await append_access(ctx, conn, actor, "woo_create_request", audit_body)
        _, ts = await _append(ctx, conn, actor, "request", request_id, body)
        return ts

    ts = await ctx.write("woo request", operation)
    ctx.since_checkpoint += 2
    return WooRequest(
        id=request_id,
        reference=body["reference"],
        title=body["title"],
        received=body["received"],
        rooms=list(body["rooms"]),
        from_ts=body["from_ts"],
        to_ts=body["to_ts"],
        query=body["query"],
        created_by=actor.user_id,
        created_ts=ts,
    )


async def assess(
    ctx: StoreContext,
    actor: Actor,
    request_id: str,
    *,
    event_id: str,
    decision: str,
    grounds: Sequence[str],
    spans: Sequence[WooSpan | dict[str, Any]],
    note: str | None,
) -> WooAssessment:
    check_actor(actor)
    body = check_assessment(event_id, decision, list(grounds), list(spans), note)
    if not isinstance(request_id, str) or len(request_id) > 64:
        raise UnknownWooRequestError("no Woo request with this id")
    audit_body = dump_json(
        {
            "purpose": actor.purpose,
            "request": request_id,
            "event": event_id,
            "decision": body["decision"],
            "grounds": body["grounds"],
        }
    )

    async def operation(conn: AsyncConnection) -> tuple[int, int]:
        await _lock(ctx, conn)
        await _find_request(ctx, conn, request_id)
        await append_access(ctx, conn, actor, "woo_assess", audit_body)
        return await _append(ctx, conn, actor, "assessment", request_id, body)

    seq, ts = await ctx.write("woo assessment", operation)
    ctx.since_checkpoint += 2
    return WooAssessment(
        seq=seq,
        request_id=request_id,
        event_id=body["event_id"],
        decision=cast(WooDecision, body["decision"]),
        grounds=list(body["grounds"]),
        spans=[WooSpan(s["start"], s["end"], s["ground"]) for s in body["spans"]],
        note=body["note"],
        assessed_by=actor.user_id,
        assessed_ts=ts,
    )


async def list_requests(ctx: StoreContext, conn: AsyncConnection) -> list[WooRequest]:
    return await _all_requests(ctx, conn)


async def get_request(
    ctx: StoreContext, conn: AsyncConnection, request_id: str
) -> WooRequest:
    if not isinstance(request_id, str) or len(request_id) > 64:
        raise UnknownWooRequestError("no Woo request with this id")
    return await _find_request(ctx, conn, request_id)


async def assessments(
    ctx: StoreContext, conn: AsyncConnection, request_id: str
) -> list[WooAssessment]:
    """Every assessment of the request, oldest first (the last per event is current)."""
    await get_request(ctx, conn, request_id)
    result = await conn.execute(
        select(woo_log)
        .where(woo_log.c.kind == "assessment", woo_log.c.request_id == request_id)
        .order_by(woo_log.c.seq)
    )
    return [_assessment(ctx, row) for row in result]


__all__ = [
    "assess",
    "assessments",
    "check_assessment",
    "check_request",
    "create_request",
    "get_request",
    "list_requests",
]
