"""Completeness audit: the ledger (what the homeserver accepted) against the archive.

Per room, the events the archive must hold are those from the archiver's join until it left,
plus every message-like event at any time (a message the archiver could not see is lost).
State events from before the archiver first joined (the room's creation) are counted, not
required. Events younger than ``grace_ms`` are reported as *pending*, not missing: the
archiver may not have synced them yet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from server_bridge.appservice.ledger import Ledger
from server_bridge.appservice.transactions import LedgerRow
from server_bridge.errors import BridgeError
from server_bridge.policy.config import MESSAGE_TYPES

log = logging.getLogger(__name__)

MEMBER = "m.room.member"


class ArchiveUnavailable(BridgeError):
    """The archive could not be opened or read; the audit cannot be made."""


class ArchiveView(Protocol):
    """What the audit reads from the archive (see :class:`StoreArchiveView`)."""

    async def archived_event_ids(self, room_id: str) -> set[str]: ...

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "ledger_events": self.ledger_events,
            "expected": self.expected,
            "before_archiver": self.before_archiver,
            "missing": self.missing,
            "pending": self.pending,
            "undecryptable": self.undecryptable,
        }


@dataclass(frozen=True)
class AuditReport:
    generated_at: int
    rooms: list[RoomAudit] = field(default_factory=list)
    archive_undecryptable: int = 0

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
    def complete(self) -> bool:
        return self.missing_total == 0 and self.undecryptable_total == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at,
            "complete": self.complete,
            "totals": {
                "rooms": len(self.rooms),
                "ledger_events": self.ledger_events,
                "missing": self.missing_total,
                "pending": self.pending_total,
                "undecryptable": self.undecryptable_total,
            },
            "rooms": [r.to_dict() for r in self.rooms],
        }

    def render(self) -> str:
        lines = [
            "Rijkschat completeness audit (ledger of the homeserver vs. the archive)",
            f"  rooms: {len(self.rooms)}   ledger events: {self.ledger_events}   "
            f"missing: {self.missing_total}   undecryptable: {self.undecryptable_total}   "
            f"pending: {self.pending_total}",
        ]
        for room in self.rooms:
            status = "ok" if not (room.missing or room.undecryptable) else "INCOMPLETE"
            lines.append(
                f"  {room.room_id}: {status} ({room.expected} required, "
                f"{len(room.missing)} missing, {len(room.undecryptable)} undecryptable, "
                f"{len(room.pending)} pending, {room.before_archiver} before the archiver)"
            )
            lines += [f"      missing       {event_id}" for event_id in room.missing]
            lines += [f"      undecryptable {event_id}" for event_id in room.undecryptable]
        if self.archive_undecryptable > sum(len(r.undecryptable) for r in self.rooms):
            lines.append(
                f"  the archive holds {self.archive_undecryptable} undecryptable events in all"
            )
        lines.append(
            "  COMPLETE: nothing missing, nothing undecryptable"
            if self.complete
            else "  INCOMPLETE: see the events above"
        )
        return "\n".join(lines)


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
    by_room = await ledger.rows_by_room()
    rooms = []
    for room_id in sorted(by_room):
        rooms.append(
            audit_room(
                room_id,
                by_room[room_id],
                archiver,
                await archive.archived_event_ids(room_id),
                await archive.undecryptable_event_ids(room_id),
                now - grace_ms,
            )
        )
    report = AuditReport(now, rooms, await archive.undecryptable_count())
    log.info(
        "audit: %d rooms, %d missing, %d undecryptable, %d pending",
        len(rooms),
        report.missing_total,
        report.undecryptable_total,
        report.pending_total,
    )
    return report


class EmptyArchiveView:
    """An archive that does not exist yet: it holds nothing."""

    async def archived_event_ids(self, room_id: str) -> set[str]:
        return set()

    async def undecryptable_event_ids(self, room_id: str) -> set[str]:
        return set()

    async def undecryptable_count(self) -> int:
        return 0


class StoreArchiveView:
    """The audit's view of the archive store, through its public API only."""

    def __init__(self, archive: Any) -> None:
        self._archive = archive

    async def archived_event_ids(self, room_id: str) -> set[str]:
        return set(await self._archive.archived_event_ids(room_id))

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
