"""Recompute every chain and check it against the signed checkpoints.

Needs only the database and the public verification key: no data key is touched, so an
auditor can verify an archive without being able to read it. For each room it reports OK
or the first broken position and what is wrong:

* ``modified``  a record's fields or content no longer match its hash/digest
* ``missing``   a position is empty, or the chain links to a record that is gone
* ``inserted``  a record that the chain (or a closing checkpoint) does not account for
* ``reordered`` a genuine record sits at the wrong position
* ``bad_signature`` a checkpoint covering the room does not verify with the public key
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import chain, kv
from .checkpoints import Head, checkpoint_link
from .keys import signature_valid
from .models import BreakKind, RoomVerification, VerifyReport
from .retention import DEK_KINDS
from .schema import access_log, attachments, checkpoints, records, rooms, woo_log

log = logging.getLogger(__name__)

_FIELDS = [getattr(records.c, name) for name in chain.CHAIN_FIELDS]
_KIND = 0
_EPOCH = chain.CHAIN_FIELDS.index("key_epoch")
_DIGEST = chain.CHAIN_FIELDS.index("digest")
_BLOB_DIGEST = chain.CHAIN_FIELDS.index("blob_digest")
_N = len(chain.CHAIN_FIELDS)


#: anchors kept per chain; older ones are thinned out (the newest is always kept), so
#: verification memory stays bounded however many checkpoints an archive accumulates
MAX_ANCHORS = 512


@dataclass
class _Anchors:
    """What the valid checkpoints say about one chain."""

    hashes: dict[int, bytes] = field(default_factory=dict)
    last_seq: int | None = None
    last_closed: bool = False
    bad_signature_at: int | None = None

    def add(self, seq: int, digest: bytes) -> None:
        self.hashes[seq] = digest
        if len(self.hashes) > MAX_ANCHORS:
            ordered = sorted(self.hashes)
            keep = set(ordered[::2]) | {ordered[-1]}
            self.hashes = {s: self.hashes[s] for s in keep}


@dataclass
class _Checkpoints:
    count: int = 0
    problems: list[str] = field(default_factory=list)
    chains: dict[str, _Anchors] = field(default_factory=dict)


async def _load_checkpoints(
    conn: AsyncConnection, key: Ed25519PublicKey, expected_head: Head | None
) -> _Checkpoints:
    out = _Checkpoints()
    head_seen = False
    previous: tuple[bytes, bytes] | None = None
    expected = 1
    result = await conn.execute(select(checkpoints).order_by(checkpoints.c.seq))
    for row in result:
        out.count += 1
        if row.seq != expected:
            out.problems.append(f"checkpoints {expected}..{row.seq - 1} are missing")
        expected = row.seq + 1
        good = signature_valid(key, row.signature, row.payload)
        try:
            payload = json.loads(row.payload)
        except ValueError:
            payload, good = {}, False
        if good and previous is not None and payload.get("prev") != checkpoint_link(*previous):
            out.problems.append(f"checkpoint {row.seq} does not link to its predecessor")
        if expected_head is not None and row.seq == expected_head.seq:
            head_seen = True
            if checkpoint_link(row.payload, row.signature) != expected_head.link:
                out.problems.append(
                    f"checkpoint {row.seq} differs from the one recorded outside the database"
                )
        previous = (row.payload, row.signature)
        heads: dict[str, Any] = dict(payload.get("rooms") or {})
        if payload.get("access"):
            heads[chain.ACCESS_CHAIN] = payload["access"]
        if payload.get("woo"):
            heads[chain.WOO_CHAIN] = payload["woo"]
        if not good:
            out.problems.append(f"checkpoint {row.seq} has a bad signature")
        for chain_id, head in heads.items():
            anchors = out.chains.setdefault(chain_id, _Anchors())
            try:
                seq, digest_hex = int(head[0]), bytes.fromhex(head[1])
            except (ValueError, TypeError, IndexError):
                seq, digest_hex, good = 0, b"", False
            if not good:
                if anchors.bad_signature_at is None:
                    anchors.bad_signature_at = seq
                continue
            anchors.add(seq, digest_hex)
        if good:
            for chain_id, anchors in out.chains.items():
                if chain_id in heads:
                    anchors.last_seq = int(heads[chain_id][0])
                anchors.last_closed = payload.get("reason") == "close"
    if expected_head is not None and not head_seen:
        out.problems.append(
            f"checkpoint {expected_head.seq} (recorded outside the database) is missing: "
            "the newest checkpoints were removed"
        )
    return out


class _Walker:
    """Walks one chain in position order and classifies the first break."""

    def __init__(self, chain_id: str, anchors: _Anchors, locate: Any) -> None:
        self.chain_id = chain_id
        self.anchors = anchors
        self.locate = locate  # async (hash) -> seq | None
        self.expected_seq = 1
        self.expected_prev = chain.genesis(chain_id)
        self.entries = 0
        self.broken: tuple[int, BreakKind, str] | None = None

    def _break(self, position: int, kind: BreakKind, detail: str) -> None:
        if self.broken is None:
            self.broken = (position, kind, detail)

    async def _shift_kind(self, position: int) -> tuple[int, BreakKind, str] | None:
        """Use a later checkpoint anchor to tell removal from insertion from re-hashing."""
        for seq in sorted(s for s in self.anchors.hashes if s >= position):
            where = await self.locate(self.anchors.hashes[seq])
            if where is None:
                continue
            if where < seq:
                return position, "missing", f"{seq - where} record(s) before {position} removed"
            if where > seq:
                return position, "inserted", f"{where - seq} record(s) inserted before {position}"
            return position - 1, "modified", "record altered and re-hashed"
        return None

    async def step(
        self,
        seq: int,
        prev: bytes,
        stored: bytes,
        values: tuple[Any, ...],
        content_ok: str,
        next_row: tuple[int, bytes, bytes, tuple[Any, ...]] | None,
    ) -> bool:
        """Check one entry; False once the chain is broken (the walk stops)."""
        if seq != self.expected_seq:
            self._break(
                self.expected_seq, "missing", f"positions {self.expected_seq}..{seq - 1} are empty"
            )
            return False
        valid = chain.entry_hash(prev, self.chain_id, values) == stored
        if valid and prev == self.expected_prev:
            if content_ok:
                self._break(seq, "modified", content_ok)
                return False
            anchor = self.anchors.hashes.get(seq)
            if anchor is not None and anchor != stored:
                where = await self.locate(anchor)
                if where is None:
                    self._break(seq, "modified", "record differs from the signed checkpoint")
                elif where < seq:
                    self._break(where + 1, "missing", "records removed (checkpoint shifted)")
                else:
                    self._break(seq, "inserted", "records inserted (checkpoint shifted)")
                return False
            self.entries += 1
            self.expected_seq += 1
            self.expected_prev = stored
            return True
        if not valid:
            if next_row is not None:
                n_seq, n_prev, n_hash, n_values = next_row
                n_valid = chain.entry_hash(n_prev, self.chain_id, n_values) == n_hash
                if n_valid and n_prev == self.expected_prev:
                    self._break(seq, "inserted", "record not part of the chain")
                    return False
            self._break(seq, "modified", "record fields do not match its hash")
            return False
        where = await self.locate(prev)
        if where is not None and where > seq:
            self._break(seq, "reordered", f"record belongs after position {where}")
        elif where is not None and where < seq - 1:
            self._break(where + 1, "inserted", f"{seq - 1 - where} record(s) not part of the chain")
        else:
            shifted = await self._shift_kind(seq)
            if shifted is not None:
                self._break(*shifted)
            else:
                self._break(seq - 1, "modified", "record altered and re-hashed, or records removed")
        return False

    def finish(self, last_seq: int) -> RoomVerification:
        anchors = self.anchors
        notes = ""
        if self.broken is None and anchors.last_seq is not None:
            if last_seq < anchors.last_seq:
                self._break(
                    last_seq + 1, "missing", f"signed checkpoint covers {anchors.last_seq} entries"
                )
            elif last_seq > anchors.last_seq:
                if anchors.last_closed:
                    self._break(
                        anchors.last_seq + 1, "inserted", "entries after the closing checkpoint"
                    )
                else:
                    notes = f"{last_seq - anchors.last_seq} entries not yet checkpointed"
        if anchors.bad_signature_at is not None and (
            self.broken is None or anchors.bad_signature_at < self.broken[0]
        ):
            self.broken = (
                anchors.bad_signature_at,
                "bad_signature",
                "checkpoint signature invalid",
            )
        if self.broken is None:
            return RoomVerification(self.chain_id, True, self.entries, detail=notes)
        position, kind, detail = self.broken
        return RoomVerification(self.chain_id, False, self.entries, position, kind, detail)


async def _verify_room(
    conn: AsyncConnection, room_pk: int, room_id: str, anchors: _Anchors
) -> RoomVerification:
    destroy_seqs: dict[int, int] = {}
    for epoch, seq in await conn.execute(
        select(records.c.key_epoch, records.c.seq).where(
            records.c.room_pk == room_pk, records.c.kind == "destroy"
        )
    ):
        if epoch is not None:
            destroy_seqs[epoch] = max(seq, destroy_seqs.get(epoch, 0))

    async def locate(target_hash: bytes) -> int | None:
        found = (
            await conn.execute(
                select(records.c.seq).where(
                    records.c.room_pk == room_pk, records.c.hash == target_hash
                )
            )
        ).first()
        return None if found is None else int(found[0])

    walker = _Walker(room_id, anchors, locate)
    query = (
        select(
            records.c.seq,
            records.c.prev_hash,
            records.c.hash,
            records.c.ciphertext,
            attachments.c.blob,
            *_FIELDS,
        )
        .select_from(records.outerjoin(attachments, attachments.c.record_pk == records.c.pk))
        .where(records.c.room_pk == room_pk)
        .order_by(records.c.seq)
    )
    pending: tuple[Any, ...] | None = None
    last_seq = 0
    stopped = False
    result = await conn.stream(query.execution_options(yield_per=5000))
    async for partition in result.partitions(5000):
        for row in partition:
            last_seq = row[0]
            if stopped:
                continue
            if pending is not None:
                nxt = (row[0], row[1], row[2], tuple(row[5 : 5 + _N]))
                if not await _step(walker, pending, nxt, destroy_seqs):
                    stopped = True
            pending = tuple(row)
    if pending is not None and not stopped:
        await _step(walker, pending, None, destroy_seqs)
    imported = (
        await conn.execute(
            select(func.count()).where(
                records.c.room_pk == room_pk,
                records.c.kind == "decryption",
                records.c.decryption == "imported",
            )
        )
    ).scalar_one()
    return replace(walker.finish(last_seq), imported_decryptions=int(imported))


def _content_problem(row: tuple[Any, ...], destroy_seqs: dict[int, int]) -> str:
    seq, ciphertext, blob = row[0], row[3], row[4]
    values = row[5 : 5 + _N]
    kind = values[_KIND]
    if ciphertext is None:
        destroyed_at = destroy_seqs.get(values[_EPOCH]) if values[_EPOCH] is not None else None
        if kind in DEK_KINDS and destroyed_at is not None and destroyed_at > seq:
            return ""
        return "content removed without a destruction record"
    if hashlib.sha256(ciphertext).digest() != values[_DIGEST]:
        return "content does not match its digest"
    if values[_BLOB_DIGEST] is not None:
        if blob is None:
            return "attachment bytes removed"
        if hashlib.sha256(blob).digest() != values[_BLOB_DIGEST]:
            return "attachment bytes do not match their digest"
    return ""


async def _step(
    walker: _Walker,
    row: tuple[Any, ...],
    nxt: tuple[int, bytes, bytes, tuple[Any, ...]] | None,
    destroy_seqs: dict[int, int],
) -> bool:
    values = tuple(row[5 : 5 + _N])
    return await walker.step(
        row[0], row[1], row[2], values, _content_problem(row, destroy_seqs), nxt
    )


async def _verify_access_log(conn: AsyncConnection, anchors: _Anchors) -> RoomVerification:
    async def locate(target_hash: bytes) -> int | None:
        found = (
            await conn.execute(select(access_log.c.seq).where(access_log.c.hash == target_hash))
        ).first()
        return None if found is None else int(found[0])

    walker = _Walker(chain.ACCESS_CHAIN, anchors, locate)
    rows = (await conn.execute(select(access_log).order_by(access_log.c.seq))).all()
    last_seq = 0
    for i, row in enumerate(rows):
        last_seq = row.seq
        values = (row.seq, row.ts, row.user_id, row.action, row.digest)
        problem = (
            ""
            if hashlib.sha256(row.details).digest() == row.digest
            else ("details do not match their digest")
        )
        nxt = None
        if i + 1 < len(rows):
            n = rows[i + 1]
            nxt = (n.seq, n.prev_hash, n.hash, (n.seq, n.ts, n.user_id, n.action, n.digest))
        if not await walker.step(row.seq, row.prev_hash, row.hash, values, problem, nxt):
            break
    return walker.finish(last_seq)


async def _verify_woo_log(conn: AsyncConnection, anchors: _Anchors) -> RoomVerification:
    async def locate(target_hash: bytes) -> int | None:
        found = (
            await conn.execute(select(woo_log.c.seq).where(woo_log.c.hash == target_hash))
        ).first()
        return None if found is None else int(found[0])

    def values(row: Any) -> tuple[Any, ...]:
        return (row.seq, row.ts, row.user_id, row.kind, row.request_id, row.digest)

    walker = _Walker(chain.WOO_CHAIN, anchors, locate)
    rows = (await conn.execute(select(woo_log).order_by(woo_log.c.seq))).all()
    last_seq = 0
    for i, row in enumerate(rows):
        last_seq = row.seq
        problem = (
            ""
            if hashlib.sha256(row.details).digest() == row.digest
            else "details do not match their digest"
        )
        nxt = None
        if i + 1 < len(rows):
            n = rows[i + 1]
            nxt = (n.seq, n.prev_hash, n.hash, values(n))
        if not await walker.step(row.seq, row.prev_hash, row.hash, values(row), problem, nxt):
            break
    return walker.finish(last_seq)


async def verify(
    engine: AsyncEngine,
    public_key: Ed25519PublicKey,
    room_id: str | None = None,
    expected_head: Head | None = None,
) -> VerifyReport:
    async with engine.connect() as raw:
        conn = raw
        if engine.dialect.name == "postgresql":  # one snapshot while the writer goes on
            conn = await raw.execution_options(isolation_level="REPEATABLE READ")
        other = await _other_archive(conn, expected_head)
        cps = await _load_checkpoints(conn, public_key, None if other else expected_head)
        if other:
            cps.problems.append(other)
        query = select(rooms.c.pk, rooms.c.room_id).order_by(rooms.c.room_id)
        if room_id is not None:
            query = query.where(rooms.c.room_id == room_id)
        room_rows = (await conn.execute(query)).all()
        results: dict[str, RoomVerification] = {}
        for row in room_rows:
            anchors = cps.chains.get(row.room_id, _Anchors())
            results[row.room_id] = await _verify_room(conn, row.pk, row.room_id, anchors)
        known = {row.room_id for row in room_rows}
        for chain_id in cps.chains:
            if chain_id in (chain.ACCESS_CHAIN, chain.WOO_CHAIN) or chain_id in known:
                continue
            if room_id is not None and chain_id != room_id:
                continue
            results[chain_id] = RoomVerification(
                chain_id, False, 0, 1, "missing", "room in signed checkpoint is gone"
            )
        access = None
        woo = None
        if room_id is None:
            access = await _verify_access_log(conn, cps.chains.get(chain.ACCESS_CHAIN, _Anchors()))
            if await conn.run_sync(lambda c: inspect(c).has_table(woo_log.name)):
                woo = await _verify_woo_log(conn, cps.chains.get(chain.WOO_CHAIN, _Anchors()))
        if cps.count == 0 and (results or access is not None and access.entries):
            cps.problems.append("no signed checkpoint found")
    for name, result in results.items():
        if not result.ok:
            log.warning("archive chain of %s broken at %s: %s", name, result.position, result.kind)
    return VerifyReport(
        rooms=results,
        checkpoints=cps.count,
        problems=cps.problems,
        access_log=access,
        woo_log=woo,
    )


async def changes_since_close(conn: AsyncConnection, key: Ed25519PublicKey) -> list[str]:
    """When the archive was closed cleanly, nothing may differ from its closing checkpoint;
    list what does (an empty list means the database is as it was left)."""
    last = (
        await conn.execute(select(checkpoints).order_by(checkpoints.c.seq.desc()).limit(1))
    ).first()
    if last is None or last.reason != "close":
        return []
    if not signature_valid(key, last.signature, last.payload):
        return [f"closing checkpoint {last.seq} has a bad signature"]
    payload = json.loads(last.payload)
    signed: dict[str, Any] = payload.get("rooms") or {}
    problems: list[str] = []
    current = {
        row.room_id: (row.head_seq, row.head_hash)
        for row in await conn.execute(select(rooms.c.room_id, rooms.c.head_seq, rooms.c.head_hash))
    }
    for room_id in current.keys() - signed.keys():
        problems.append(f"room {room_id} appeared after the closing checkpoint")
    for room_id, (seq, hash_hex) in signed.items():
        found = (
            await conn.execute(
                select(records.c.seq, records.c.hash)
                .select_from(records.join(rooms, rooms.c.pk == records.c.room_pk))
                .where(rooms.c.room_id == room_id)
                .order_by(records.c.seq.desc())
                .limit(1)
            )
        ).first()
        if found is None or found.seq != seq or found.hash.hex() != hash_hex:
            problems.append(f"room {room_id} changed after the closing checkpoint")
    access = payload.get("access")
    head = (
        await conn.execute(
            select(access_log.c.seq, access_log.c.hash).order_by(access_log.c.seq.desc()).limit(1)
        )
    ).first()
    if (head is None) != (access is None) or (
        head is not None and access is not None and [head.seq, head.hash.hex()] != access
    ):
        problems.append("the access log changed after the closing checkpoint")
    woo = payload.get("woo")
    woo_head = (
        await conn.execute(
            select(woo_log.c.seq, woo_log.c.hash).order_by(woo_log.c.seq.desc()).limit(1)
        )
    ).first()
    if (woo_head is None) != (woo is None) or (
        woo_head is not None and woo is not None and [woo_head.seq, woo_head.hash.hex()] != woo
    ):
        problems.append("the Woo log changed after the closing checkpoint")
    return problems


async def _other_archive(conn: AsyncConnection, head: Head | None) -> str | None:
    if head is None:
        return None
    archive_id = await kv.get(conn, "archive_id")
    if archive_id != head.archive:
        return (
            "the database is not the archive recorded in checkpoint.head "
            f"(archive {archive_id}, recorded {head.archive})"
        )
    return None


async def head_problem(conn: AsyncConnection, expected_head: Head | None) -> str | None:
    """Does the database still hold the newest checkpoint recorded outside it?"""
    if expected_head is None:
        return None
    other = await _other_archive(conn, expected_head)
    if other:
        return other
    row = (
        await conn.execute(
            select(checkpoints.c.payload, checkpoints.c.signature).where(
                checkpoints.c.seq == expected_head.seq
            )
        )
    ).first()
    if row is None:
        return f"checkpoint {expected_head.seq} (recorded outside the database) is missing"
    if checkpoint_link(row.payload, row.signature) != expected_head.link:
        return f"checkpoint {expected_head.seq} differs from the one recorded outside the database"
    return None
