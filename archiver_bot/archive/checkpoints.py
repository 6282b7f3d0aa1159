"""Ed25519-signed checkpoints over the rooms' chain heads and the access-log head.

A checkpoint is written when the archive opens, every ``checkpoint_every`` records or
``checkpoint_interval`` seconds, and on close. Checkpoints are numbered and each names the
hash of its predecessor, so removing one is detected as well. Opening, closing and reader
checkpoints list every room ("full"); interval checkpoints list only the rooms this process
appended to since its previous checkpoint, so they stay small however many rooms exist.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from .chain import canonical_json
from .context import StoreContext, now_ms
from .schema import access_log, checkpoints, rooms, woo_log

log = logging.getLogger(__name__)


def checkpoint_link(payload: bytes, signature: bytes) -> str:
    return hashlib.sha256(payload + signature).hexdigest()


class Head(NamedTuple):
    """The newest checkpoint of an archive, as recorded outside its database."""

    archive: str
    seq: int
    link: str


def read_head(path: Path) -> Head | None:
    """The newest checkpoint recorded outside the database (None if never recorded)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Head(str(data["archive"]), int(data["seq"]), str(data["link"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        log.warning("checkpoint head file %s is unreadable; ignoring it", path)
        return None


def record_head(path: Path, archive: str, seq: int, link: str) -> None:
    """Remember the newest checkpoint outside the database, so that deleting the newest
    checkpoints from the database (e.g. the closing one) is detected as well."""
    current = read_head(path)
    if current is not None and current.archive == archive and current.seq >= seq:
        return
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps({"archive": archive, "seq": seq, "link": link}).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


async def write_checkpoint(
    ctx: StoreContext, conn: AsyncConnection, reason: str
) -> tuple[int, str]:
    if ctx.is_postgres:
        await conn.execute(text("LOCK TABLE archive_checkpoints IN SHARE ROW EXCLUSIVE MODE"))
    last = (
        await conn.execute(
            select(checkpoints.c.seq, checkpoints.c.payload, checkpoints.c.signature)
            .order_by(checkpoints.c.seq.desc())
            .limit(1)
        )
    ).first()
    seq = 1 if last is None else last.seq + 1
    full = reason != "interval" or last is None
    query = select(rooms.c.room_id, rooms.c.head_seq, rooms.c.head_hash)
    heads: dict[str, list[object]] = {}
    if full:
        parts = [query]
    else:
        dirty = sorted(ctx.dirty_rooms)
        parts = [query.where(rooms.c.pk.in_(dirty[i : i + 500])) for i in range(0, len(dirty), 500)]
    for part in parts:
        for row in await conn.execute(part):
            heads[row.room_id] = [row.head_seq, row.head_hash.hex()]
    access = (
        await conn.execute(
            select(access_log.c.seq, access_log.c.hash).order_by(access_log.c.seq.desc()).limit(1)
        )
    ).first()
    woo = (
        await conn.execute(
            select(woo_log.c.seq, woo_log.c.hash).order_by(woo_log.c.seq.desc()).limit(1)
        )
    ).first()
    created = now_ms()
    body: dict[str, object] = {}
    if woo is not None:  # absent until the first Woo record (older checkpoints lack it)
        body["woo"] = [woo.seq, woo.hash.hex()]
    payload = canonical_json(
        {
            "v": 1,
            "archive": ctx.archive_id,
            "seq": seq,
            "prev": "" if last is None else checkpoint_link(last.payload, last.signature),
            "ts": created,
            "reason": reason,
            "full": full,
            "rooms": heads,
            "access": None if access is None else [access.seq, access.hash.hex()],
            **body,
        }
    )
    signature = ctx.signer.sign(payload)
    await conn.execute(
        insert(checkpoints).values(
            seq=seq, created_ts=created, reason=reason, payload=payload, signature=signature
        )
    )
    return seq, checkpoint_link(payload, signature)


async def checkpoint(ctx: StoreContext, reason: str) -> int:
    async def operation(conn: AsyncConnection) -> tuple[int, str]:
        return await write_checkpoint(ctx, conn, reason)

    dirty = set(ctx.dirty_rooms)
    seq, link = await ctx.write("checkpoint", operation)
    record_head(ctx.paths.checkpoint_head, ctx.archive_id, seq, link)
    ctx.dirty_rooms -= dirty
    ctx.since_checkpoint = 0
    ctx.last_checkpoint = time.monotonic()
    log.debug("wrote signed checkpoint %d (%s)", seq, reason)
    return seq


async def maybe_checkpoint(ctx: StoreContext) -> None:
    if ctx.since_checkpoint == 0:
        return
    due_by_count = ctx.since_checkpoint >= ctx.settings.checkpoint_every
    due_by_time = time.monotonic() - ctx.last_checkpoint >= ctx.settings.checkpoint_interval
    if due_by_count or due_by_time:
        await checkpoint(ctx, "interval")


async def reopen_after_close(ctx: StoreContext, conn: AsyncConnection) -> None:
    """A reader process writing (access log, legal hold) while the writer is stopped signs
    a checkpoint at once, so the writer's closing checkpoint stays the truth up to there."""
    last = (
        await conn.execute(select(checkpoints.c.reason).order_by(checkpoints.c.seq.desc()).limit(1))
    ).scalar_one_or_none()
    if last == "close":
        await write_checkpoint(ctx, conn, "reader")
