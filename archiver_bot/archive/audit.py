"""The access log: every read through the read API, chained and checkpointed like the
archive itself. Who (user id) and what kind of read are stored in the clear; the purpose
and the details (room, event ids, search terms) are sealed under the archive metadata key.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from . import chain
from .context import StoreContext, now_ms
from .errors import ArchiveError
from .keys import make_aad, seal, unseal
from .models import AccessEntry, Actor
from .schema import access_log
from .validate import dump_json


def _aad(seq: int) -> bytes:
    return make_aad("access", chain.ACCESS_CHAIN, str(seq))


def check_actor(actor: Actor) -> None:
    if not isinstance(actor, Actor) or not actor.user_id or not actor.purpose.strip():
        raise ArchiveError("every archive read needs an actor with a user id and a purpose")


async def record_access(
    ctx: StoreContext, actor: Actor, action: str, details: dict[str, Any]
) -> None:
    """Append an access-log entry; the read only proceeds when this committed."""
    check_actor(actor)
    body = dump_json({"purpose": actor.purpose, **details})

    async def operation(conn: AsyncConnection) -> None:
        await append_access(ctx, conn, actor, action, body)

    await ctx.write("access log", operation)
    ctx.since_checkpoint += 1


async def append_access(
    ctx: StoreContext, conn: AsyncConnection, actor: Actor, action: str, body: bytes
) -> None:
    """Append one entry inside the caller's write transaction (on PostgreSQL the access log
    is locked first, so concurrent appenders queue up and the chain stays linear)."""
    if ctx.is_postgres:
        await conn.execute(text("LOCK TABLE archive_access_log IN SHARE ROW EXCLUSIVE MODE"))
    head = (
        await conn.execute(
            select(access_log.c.seq, access_log.c.hash)
            .order_by(access_log.c.seq.desc())
            .limit(1)
        )
    ).first()
    seq = 1 if head is None else head.seq + 1
    prev = chain.genesis(chain.ACCESS_CHAIN) if head is None else head.hash
    sealed = seal(ctx.meta_aead, body, _aad(seq))
    digest = chain.digest(sealed)
    ts = now_ms()
    values = (seq, ts, actor.user_id, action, digest)
    await conn.execute(
        insert(access_log).values(
            seq=seq,
            ts=ts,
            user_id=actor.user_id,
            action=action,
            details=sealed,
            digest=digest,
            prev_hash=prev,
            hash=chain.entry_hash(prev, chain.ACCESS_CHAIN, values),
        )
    )


async def read_access_log(
    ctx: StoreContext,
    conn: AsyncConnection,
    *,
    limit: int,
    user_id: str | None,
    since_ts: int | None,
) -> list[AccessEntry]:
    query = select(access_log).order_by(access_log.c.seq.desc()).limit(limit)
    if user_id is not None:
        query = query.where(access_log.c.user_id == user_id)
    if since_ts is not None:
        query = query.where(access_log.c.ts >= since_ts)
    entries: list[AccessEntry] = []
    for row in await conn.execute(query):
        details = json.loads(unseal(ctx.meta_aead, row.details, _aad(row.seq)))
        purpose = str(details.pop("purpose", ""))
        entries.append(
            AccessEntry(
                seq=row.seq,
                ts=row.ts,
                user_id=row.user_id,
                purpose=purpose,
                action=row.action,
                details=details,
            )
        )
    return entries


__all__ = ["append_access", "check_actor", "now_ms", "read_access_log", "record_access"]
