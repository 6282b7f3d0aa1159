"""Completeness audit, both ways: the ledger (what the homeserver accepted) against the
archive, and the archive against the ledger.

Ledger -> archive: per room, the events the archive must hold are those from the archiver's
join until it left, plus every message-like event at any time (a message the archiver could
not see is lost). State events from before the archiver first joined (the room's creation)
are counted, not required. Events younger than ``grace_ms`` are reported as *pending*, not
missing: the archiver may not have synced them yet.

Archive -> ledger: the ledger must know every archived event that the homeserver was bound
to push to it: the archiver's join in its room and every event after it (from then on a
member of the Application Service's namespace is joined, so Synapse pushes every event of the
room), when not older than the moment the ledger started watching. An archived event that
the ledger does not know is *unknown to the ledger*: the ledger is incomplete (it went blind,
or rows were removed) and so the audit cannot vouch for the archive. Events younger than
``grace_ms`` are not judged yet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from server_bridge.appservice.ledger import Ledger, LedgerInfo
from server_bridge.appservice.transactions import LedgerRow
from server_bridge.errors import BridgeError
from server_bridge.policy.config import MESSAGE_TYPES

log = logging.getLogger(__name__)

MEMBER = "m.room.member"


class ArchiveUnavailable(BridgeError):
    """The archive could not be opened or read; the audit cannot be made."""


@dataclass(frozen=True)
class ArchivedEvent:
    """An archived event as the audit sees it: no content."""

    event_id: str
    ts: int
    type: str | None = None
    state_key: str | None = None


class ArchiveView(Protocol):
    """What the audit reads from the archive (see :class:`StoreArchiveView`)."""

    async def room_ids(self) -> list[str]: ...

    async def archived_events(self, room_id: str) -> list[ArchivedEvent]: ...

    async def undecryptable_event_ids(self, room_id: str) -> set[str]: ...

    async def undecryptable_count(self) -> int: ...


@dataclass(frozen=True)
class RoomAudit:
    room_id: str
    ledger_events: int
    expected: int
    before_archiver: int
    missing: list[str]
    pending: list[str]
    undecryptable: list[str]
    unknown_to_ledger: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "ledger_events": self.ledger_events,
            "expected": self.expected,
            "before_archiver": self.before_archiver,
            "missing": self.missing,
            "pending": self.pending,
            "undecryptable": self.undecryptable,
            "unknown_to_ledger": self.unknown_to_ledger,
        }


@dataclass(frozen=True)
class AuditReport:
    generated_at: int
    rooms: list[RoomAudit] = field(default_factory=list)
    archive_undecryptable: int = 0
    ledger: LedgerInfo | None = None

    @property
    def missing_total(self) -> int:
        return sum(len(r.missing) for r in self.rooms)

    @property
    def pending_total(self) -> int:
        return sum(len(r.pending) for r in self.rooms)

    @property
    def undecryptable_total(self) -> int:
        """Undecryptable events in the audited rooms, or in the whole archive if more."""
        return max(sum(len(r.undecryptable) for r in self.rooms), self.archive_undecryptable)

    @property
    def ledger_events(self) -> int:
        return sum(r.ledger_events for r in self.rooms)

    @property
    def unknown_to_ledger_total(self) -> int:
        return sum(len(r.unknown_to_ledger) for r in self.rooms)

    @property
    def ledger_incomplete(self) -> bool:
        """The archive holds events the ledger should know and does not."""
        return self.unknown_to_ledger_total > 0

    @property
    def ledger_incomplete_reason(self) -> str | None:
        if not self.ledger_incomplete:
            return None
        count = self.unknown_to_ledger_total
        rooms = sum(1 for r in self.rooms if r.unknown_to_ledger)
        info = self.ledger
        if info is not None and info.events == 0:
            return (
                f"the ledger has recorded nothing, but the archive holds {count} events "
                f"since it started watching ({_iso(info.watch_started_at)})"
            )
        last = _iso(info.last_received_at) if info is not None else "unknown"
        return (
            f"{count} archived events in {rooms} room(s) are unknown to the ledger "
            f"(its last transaction arrived {last}): it stopped receiving events, or "
            "events were removed from it"
        )

    @property
    def complete(self) -> bool:
        return (
            self.missing_total == 0
            and self.undecryptable_total == 0
            and not self.ledger_incomplete
        )

    def to_dict(self) -> dict[str, Any]:
        info = self.ledger
        return {
            "generated_at": self.generated_at,
            "complete": self.complete,
            "ledger_incomplete": self.ledger_incomplete,
            "ledger_incomplete_reason": self.ledger_incomplete_reason,
            "totals": {
                "rooms": len(self.rooms),
                "ledger_events": self.ledger_events,
                "missing": self.missing_total,
                "pending": self.pending_total,
                "undecryptable": self.undecryptable_total,
                "unknown_to_ledger": self.unknown_to_ledger_total,
            },
            "ledger": None
            if info is None
            else {
                "watch_started_at": info.watch_started_at,
                "last_received_at": info.last_received_at,
                "events": info.events,
                "transactions": info.transactions,
            },
            "rooms": [r.to_dict() for r in self.rooms],
        }

    def render(self) -> str:
        lines = [
            "Rijkschat completeness audit (ledger of the homeserver vs. the archive)",
            f"  rooms: {len(self.rooms)}   ledger events: {self.ledger_events}   "
            f"missing: {self.missing_total}   undecryptable: {self.undecryptable_total}   "
            f"pending: {self.pending_total}   unknown to the ledger: "
            f"{self.unknown_to_ledger_total}",
        ]
        for room in self.rooms:
            bad = room.missing or room.undecryptable or room.unknown_to_ledger
            lines.append(
                f"  {room.room_id}: {'INCOMPLETE' if bad else 'ok'} ({room.expected} required, "
                f"{len(room.missing)} missing, {len(room.undecryptable)} undecryptable, "
                f"{len(room.pending)} pending, {room.before_archiver} before the archiver, "
                f"{len(room.unknown_to_ledger)} unknown to the ledger)"
            )
            lines += [f"      missing       {event_id}" for event_id in room.missing]
            lines += [f"      undecryptable {event_id}" for event_id in room.undecryptable]
            lines += [f"      not in ledger {event_id}" for event_id in room.unknown_to_ledger]
        if self.archive_undecryptable > sum(len(r.undecryptable) for r in self.rooms):
            lines.append(
                f"  the archive holds {self.archive_undecryptable} undecryptable events in all"
            )
        if self.ledger_incomplete:
            lines.append(f"  LEDGER INCOMPLETE: {self.ledger_incomplete_reason}")
        lines.append(
            "  COMPLETE: nothing missing, nothing undecryptable, the ledger knows every "
            "archived event"
            if self.complete
            else "  INCOMPLETE: see the events above"
        )
        return "\n".join(lines)


def _iso(ms: int | None) -> str:
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def ledger_scope_start(
    rows: Sequence[LedgerRow], archived: Sequence[ArchivedEvent], archiver: str
) -> int | None:
    """When the homeserver began pushing every event of the room to the ledger: the
    archiver's first join as the ledger knows it, else the archiver's first membership
    event in the archive (a ledger that lacks even that is blind); None: neither knows."""
    joins = [
        r.origin_server_ts
        for r in rows
        if r.type == MEMBER and r.state_key == archiver and r.membership == "join"
    ]
    if joins:
        return min(joins)
    own = [e.ts for e in archived if e.type == MEMBER and e.state_key == archiver]
    return min(own) if own else None


def unknown_to_ledger(
    rows: Sequence[LedgerRow],
    archived: Sequence[ArchivedEvent],
    archiver: str,
    watch_started_at: int,
    not_before_ms: int,
) -> list[str]:
    """Archived events the ledger must know and does not (see the module's docstring)."""
    start = ledger_scope_start(rows, archived, archiver)
    boundary = watch_started_at if start is None else max(start, watch_started_at)
    known = {r.event_id for r in rows}
    return [
        e.event_id
        for e in archived
        if boundary <= e.ts < not_before_ms and e.event_id not in known
    ]


def audit_room(
    room_id: str,
    rows: Iterable[LedgerRow],
    archiver: str,
    archived: set[str],
    undecryptable: set[str],
    not_before_ms: int,
) -> RoomAudit:
    """One room: ``rows`` in ledger order; events at or after ``not_before_ms`` are pending."""
    inside = False
    expected: list[LedgerRow] = []
    before = 0
    total = 0
    for row in rows:
        total += 1
        own = row.type == MEMBER and row.state_key == archiver
        if own and row.membership == "join":
            inside = True
        elif own and row.membership in ("leave", "ban"):
            inside = False
            continue
        if inside or row.type in MESSAGE_TYPES:
            expected.append(row)
        else:
            before += 1
    missing = [r for r in expected if r.event_id not in archived]
    return RoomAudit(
        room_id=room_id,
        ledger_events=total,
        expected=len(expected),
        before_archiver=before,
        missing=[r.event_id for r in missing if r.origin_server_ts < not_before_ms],
        pending=[r.event_id for r in missing if r.origin_server_ts >= not_before_ms],
        undecryptable=sorted(undecryptable),
    )


async def run_audit(
    ledger: Ledger, archive: ArchiveView, archiver: str, grace_ms: int = 0
) -> AuditReport:
    now = int(time.time() * 1000)
    info = await ledger.info()
    by_room = await ledger.rows_by_room()
    rooms = []
    for room_id in sorted(set(by_room) | set(await archive.room_ids())):
        rows = by_room.get(room_id, [])
        archived = await archive.archived_events(room_id)
        unknown = unknown_to_ledger(
            rows, archived, archiver, info.watch_started_at, now - grace_ms
        )
        if not rows and not unknown:
            continue  # an archived room from before the ledger watched, or still pending
        room = audit_room(
            room_id,
            rows,
            archiver,
            {e.event_id for e in archived},
            await archive.undecryptable_event_ids(room_id),
            now - grace_ms,
        )
        rooms.append(replace(room, unknown_to_ledger=unknown))
    report = AuditReport(now, rooms, await archive.undecryptable_count(), info)
    log.info(
        "audit: %d rooms, %d missing, %d undecryptable, %d pending, %d unknown to the ledger",
        len(rooms),
        report.missing_total,
        report.undecryptable_total,
        report.pending_total,
        report.unknown_to_ledger_total,
    )
    if report.ledger_incomplete:
        log.warning("audit: the ledger is incomplete: %s", report.ledger_incomplete_reason)
    return report


class EmptyArchiveView:
    """An archive that does not exist yet: it holds nothing."""

    async def room_ids(self) -> list[str]:
        return []

    async def archived_events(self, room_id: str) -> list[ArchivedEvent]:
        return []

    async def undecryptable_event_ids(self, room_id: str) -> set[str]:
        return set()

    async def undecryptable_count(self) -> int:
        return 0


class StoreArchiveView:
    """The audit's view of the archive store, through its public API only."""

    def __init__(self, archive: Any) -> None:
        self._archive = archive

    async def room_ids(self) -> list[str]:
        return list(await self._archive.archived_room_ids())

    async def archived_events(self, room_id: str) -> list[ArchivedEvent]:
        return [
            ArchivedEvent(m.event_id, m.origin_server_ts, m.type, m.state_key)
            for m in await self._archive.archived_event_meta(room_id)
        ]

    async def undecryptable_event_ids(self, room_id: str) -> set[str]:
        found: set[str] = set()
        for session_id in await self._archive.undecryptable_session_ids(room_id):
            for stored in await self._archive.pending_by_session(session_id):
                if stored.room_id == room_id:
                    found.add(stored.event_id)
        return found

    async def undecryptable_count(self) -> int:
        return int(await self._archive.undecryptable_count())

    async def close(self) -> None:
        await self._archive.close()


async def open_archive_view(data_dir: Path) -> StoreArchiveView | EmptyArchiveView:
    """Open the archive of a data dir for the audit; an archive never written is empty.

    Never creates an archive (so never creates keys) where there is none."""
    from archiver_bot.archive import ArchiveError, ArchivePaths, open_archive

    paths = ArchivePaths.for_data_dir(data_dir)
    if not paths.database.exists():
        return EmptyArchiveView()
    try:
        # A reader: never creates anything, takes no writer lock, runs next to the archiver.
        return StoreArchiveView(await open_archive(paths, role="reader"))
    except ArchiveError as exc:
        raise ArchiveUnavailable(f"the archive in {paths.root} cannot be opened: {exc}") from exc
