"""The review service: every archive read of the archivist API and web UI goes through here.

It opens the archive store as a *reader* (next to the running archiver bot), validates all
input before the store is touched (so bad input costs no database work and no access-log
entry), passes an :class:`Actor` naming the archivist and the endpoint to every read (the
store logs each read before it serves it), and maps store errors to typed API errors.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from archiver_bot.archive import (
    AccessEntry,
    Actor,
    Archive,
    ArchiveError,
    ArchiveIntegrityError,
    ArchivePaths,
    ArchiveUnavailableError,
    ContentDestroyedError,
    RoomSummary,
    SearchHit,
    StoredEvent,
    UnknownEventError,
    open_archive,
)
from server_bridge.web.api_errors import ApiError
from server_bridge.web.keys import SETTINGS

log = logging.getLogger(__name__)

# Bounds on every input: work per request stays small whatever a caller sends.
MAX_ID_CHARS = 255
MAX_TOKEN_CHARS = 128
EVENTS_DEFAULT_LIMIT = 100
EVENTS_MAX_LIMIT = 1000
SEARCH_DEFAULT_LIMIT = 50
SEARCH_MAX_LIMIT = 200
SEARCH_MAX_QUERY_CHARS = 500
SEARCH_MAX_WORDS = 16
AUDIT_DEFAULT_LIMIT = 100
AUDIT_MAX_LIMIT = 1000
MAX_TS = 2**53 - 1
MAX_PURPOSE_CHARS = 200
ROOM_NAME_TTL = 60.0

# Room ids are "!opaque:server" up to room version 11 and "!hash" from version 12 on.
_ROOM_ID = re.compile(r"^![^\s/]{1,254}$")
_EVENT_ID = re.compile(r"^\$[^\s/]{1,250}$")
_USER_ID = re.compile(r"^@[^\s:/]{1,200}:[^\s/]{1,200}$")
_PAGE_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_WORDS = re.compile(r"[^\W_]+", re.UNICODE)

DECRYPTION_STATES = ("decrypted", "plaintext", "undecryptable")


def bad_param(message: str) -> ApiError:
    return ApiError(400, "M_INVALID_PARAM", message)


def room_id_param(value: str | None, what: str = "room id") -> str:
    if value is None or len(value) > MAX_ID_CHARS or not _ROOM_ID.match(value):
        raise bad_param(f"{what} must look like !opaque or !opaque:server")
    return value


def event_id_param(value: str | None) -> str:
    if value is None or len(value) > MAX_ID_CHARS or not _EVENT_ID.match(value):
        raise bad_param("event id must look like $opaque")
    return value


def user_id_param(value: str | None, what: str = "user id") -> str:
    if value is None or len(value) > MAX_ID_CHARS or not _USER_ID.match(value):
        raise bad_param(f"{what} must look like @name:server")
    return value


def int_param(
    raw: str | None, name: str, *, default: int | None, low: int, high: int
) -> int | None:
    if raw is None or raw == "":
        return default
    if len(raw) > 20 or not re.fullmatch(r"-?\d+", raw):
        raise bad_param(f"{name} must be an integer")
    value = int(raw)
    if not low <= value <= high:
        raise bad_param(f"{name} must be within {low}..{high}")
    return value


def limit_param(raw: str | None, default: int, high: int) -> int:
    value = int_param(raw, "limit", default=default, low=1, high=high)
    assert value is not None
    return value


def page_token_param(raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_TOKEN_CHARS or not _PAGE_TOKEN.match(raw):
        raise bad_param("malformed pagination token")
    # The store's tokens are opaque to clients, but a forged one must not reach the
    # database with numbers it cannot hold: check the shape before any work is done.
    try:
        decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise bad_param("malformed pagination token") from None
    parts = decoded.split(".")
    if len(parts) != 2 or not all(p.isdigit() and len(p) <= 18 for p in parts):
        raise bad_param("malformed pagination token")
    return raw


def query_param(raw: str | None) -> str:
    q = (raw or "").strip()
    if not q:
        raise bad_param("q (the words to search for) is required")
    if len(q) > SEARCH_MAX_QUERY_CHARS:
        raise bad_param(f"q is limited to {SEARCH_MAX_QUERY_CHARS} characters")
    if not _WORDS.search(q):
        raise bad_param("q contains no words")
    if len(_WORDS.findall(q)) > SEARCH_MAX_WORDS:
        raise bad_param(f"q is limited to {SEARCH_MAX_WORDS} words")
    return q


def purpose_param(raw: str | None) -> str | None:
    if raw is None:
        return None
    purpose = " ".join(raw.split())
    if len(purpose) > MAX_PURPOSE_CHARS:
        raise bad_param(f"the purpose is limited to {MAX_PURPOSE_CHARS} characters")
    return purpose or None


@dataclass(frozen=True)
class Reader:
    """An archivist reading the archive, with the stated purpose and the endpoint used;
    both end up (sealed) in the access log."""

    user_id: str
    purpose: str | None
    via: str

    def actor(self) -> Actor:
        stated = self.purpose or "archiefinzage"
        return Actor(self.user_id, f"{stated} [{self.via}]")


@dataclass(frozen=True)
class VerifyResult:
    room_id: str
    ok: bool
    checked: int
    problems: list[str]
    checked_at: float

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "problems": list(self.problems)}


def event_to_dict(event: StoredEvent) -> dict[str, Any]:
    """The API form of an archived event; ``content`` is the original even when redacted."""
    return {
        "event_id": event.event_id,
        "room_id": event.room_id,
        "sender": event.sender,
        "sender_device": event.sender_device,
        "origin_server_ts": event.origin_server_ts,
        "type": event.type,
        "state_key": event.state_key,
        "content": event.content,
        "decryption": event.decryption,
        "late_decryption": event.late_decryption,
        "relates_to": event.relates_to,
        "redacted_by": event.redacted_by,
        "edits": list(event.edits),
        "reactions": list(event.reactions),
        "has_attachment": event.has_attachment,
        "destroyed": event.destroyed,
        # "imported": decrypted later with a room key from a key export (weaker than a key
        # received over Olm from the sender's device); "room_key": received over Olm.
        "key_provenance": None if event.decryption != "decrypted"
        else "imported" if event.imported_key is not None else "room_key",
        "imported_key": event.imported_key,
    }


def room_to_dict(room: RoomSummary) -> dict[str, Any]:
    return {
        "room_id": room.room_id,
        "name": room.name,
        "members": list(room.members),
        "key_officials": list(room.key_officials),
        "event_count": room.event_count,
        "first_ts": room.first_ts,
        "last_ts": room.last_ts,
        "undecryptable": room.undecryptable,
        "retention": room.retention,
        "legal_hold": room.legal_hold,
    }


def access_to_dict(entry: AccessEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "ts": entry.ts,
        "user_id": entry.user_id,
        "purpose": entry.purpose,
        "action": entry.action,
        "details": entry.details,
    }


class ReviewService:
    """One reader of the archive per bridge process; opened on first use (the archive may
    not exist yet when the bridge starts) and closed with the app."""

    def __init__(self, data_dir: Path) -> None:
        self._paths = ArchivePaths.for_data_dir(data_dir)
        self._archive: Archive | None = None
        self._open_lock = asyncio.Lock()
        self._verify_lock = asyncio.Lock()
        self._verified: dict[str, VerifyResult] = {}
        self._names: dict[str, str | None] = {}
        self._names_at = 0.0

    async def _get(self) -> Archive:
        if self._archive is not None:
            return self._archive
        async with self._open_lock:
            if self._archive is None:
                try:
                    self._archive = await open_archive(self._paths, role="reader")
                except ArchiveError as exc:
                    log.error("cannot open the archive for review: %s", type(exc).__name__)
                    raise ApiError(
                        503, "M_UNAVAILABLE", "the archive is not available (yet)"
                    ) from exc
            return self._archive

    async def store(self) -> Archive:
        """The archive, opened as a reader (503 when it is not available); for the Woo
        service, which passes an access-logged actor to every call like this one does."""
        return await self._get()

    def archive_exists(self) -> bool:
        return self._archive is not None or self._paths.database.exists()

    async def close(self) -> None:
        if self._archive is not None:
            archive, self._archive = self._archive, None
            await archive.close()

    # ---- reads (each one access-logged by the store before it is served) -------------------
    async def rooms(self, reader: Reader) -> list[RoomSummary]:
        archive = await self._get()
        with store_errors():
            rooms = await archive.list_rooms(reader.actor())
        self._names = {room.room_id: room.name for room in rooms}
        self._names_at = time.monotonic()
        return rooms

    async def room(self, reader: Reader, room_id: str) -> RoomSummary:
        for room in await self.rooms(reader):
            if room.room_id == room_id:
                return room
        raise ApiError(404, "M_NOT_FOUND", "no such room in the archive")

    async def room_name(self, reader: Reader, room_id: str) -> str | None:
        if time.monotonic() - self._names_at > ROOM_NAME_TTL or room_id not in self._names:
            await self.rooms(reader)
        return self._names.get(room_id)

    async def events(
        self, reader: Reader, room_id: str, after: str | None, limit: int
    ) -> tuple[list[StoredEvent], str | None]:
        archive = await self._get()
        try:
            with store_errors():
                return await archive.room_events(reader.actor(), room_id, after, limit)
        except ApiError as exc:
            if exc.status == 500 and after is not None and exc.errcode == "M_STORE":
                raise bad_param("malformed pagination token") from None
            raise

    async def event(self, reader: Reader, event_id: str) -> StoredEvent:
        archive = await self._get()
        with store_errors():
            return await archive.get_event(reader.actor(), event_id)

    async def events_by_id(
        self, reader: Reader, event_ids: list[str], budget: int
    ) -> dict[str, StoredEvent]:
        """Linked events (edits, reply targets, reactions) not on the page being shown;
        at most ``budget`` reads, unknown ones skipped."""
        found: dict[str, StoredEvent] = {}
        for event_id in dict.fromkeys(event_ids):
            if len(found) >= budget:
                break
            try:
                found[event_id] = await self.event(reader, event_id)
            except ApiError as exc:
                if exc.status != 404:
                    raise
        return found

    async def attachment(self, reader: Reader, event_id: str) -> tuple[bytes, str, str]:
        archive = await self._get()
        with store_errors():
            data, filename, mimetype = await archive.get_attachment(reader.actor(), event_id)
        return data, filename or "bijlage", mimetype or "application/octet-stream"

    async def search(
        self,
        reader: Reader,
        q: str,
        *,
        room: str | None,
        sender: str | None,
        from_ts: int | None,
        to_ts: int | None,
        limit: int,
    ) -> list[SearchHit]:
        archive = await self._get()
        with store_errors():
            return await archive.search(
                reader.actor(), q, room=room, sender=sender, from_ts=from_ts, to_ts=to_ts,
                limit=limit,
            )

    async def access_log(
        self, reader: Reader, *, limit: int, user_id: str | None, since_ts: int | None
    ) -> list[AccessEntry]:
        archive = await self._get()
        with store_errors():
            return await archive.access_log(
                reader.actor(), limit=limit, user_id=user_id, since_ts=since_ts
            )

    async def verify(self, reader: Reader, room_id: str) -> VerifyResult:
        """Recompute the room's hash chain. The store's verify takes no actor, so the room
        is read through a logged call first (which also answers 404 for unknown rooms);
        one verification runs at a time."""
        await self.room(reader, room_id)
        archive = await self._get()
        async with self._verify_lock:
            with store_errors():
                report = await archive.verify(room_id)
        problems = list(report.problems)
        result = report.rooms.get(room_id)
        checked = 0
        if result is not None:
            checked = result.entries
            if not result.ok:
                problems.append(
                    f"{result.kind or 'broken'} at position {result.position}: {result.detail}"
                )
        else:
            problems.append("the room has no hash chain")
        outcome = VerifyResult(room_id, not problems, checked, problems, time.time())
        self._verified[room_id] = outcome
        if problems:
            log.warning("verification of %s by %s found %d problem(s)",
                        room_id, reader.user_id, len(problems))
        return outcome

    async def overdue_undecryptable(
        self, grace_seconds: float, room_id: str | None = None, now: float | None = None
    ) -> list[StoredEvent]:
        """Events still undecryptable ``grace_seconds`` after they were sent (oldest first):
        only their sender's key export can open them. Metadata only is shown of them; the
        page that lists them made the access-logged read."""
        archive = await self._get()
        cutoff_ms = int(((time.time() if now is None else now) - grace_seconds) * 1000)
        found: list[StoredEvent] = []
        with store_errors():
            for session_id in sorted(await archive.undecryptable_session_ids(room_id)):
                found.extend(
                    e for e in await archive.pending_by_session(session_id)
                    if e.origin_server_ts <= cutoff_ms
                    and (room_id is None or e.room_id == room_id)
                )
        return sorted(found, key=lambda e: (e.origin_server_ts, e.event_id))

    def last_verification(self, room_id: str) -> VerifyResult | None:
        return self._verified.get(room_id)

    async def note_access(self, reader: Reader) -> None:
        """Put a read that does not go through the store's read API (the completeness
        audit) in the access log: the store logs the room list read that names it."""
        await self.rooms(reader)


@contextmanager
def store_errors() -> Iterator[None]:
    """Map the store's typed exceptions to API errors (nothing of the store's message that
    could hold content is shown)."""
    try:
        yield
    except UnknownEventError as exc:
        raise ApiError(404, "M_NOT_FOUND", "not in the archive") from exc
    except ContentDestroyedError as exc:
        raise ApiError(410, "M_GONE", "destroyed after its retention period") from exc
    except ArchiveUnavailableError as exc:
        log.error("archive unavailable during review: %s", type(exc).__name__)
        raise ApiError(503, "M_UNAVAILABLE", "the archive is busy or unavailable") from exc
    except ArchiveIntegrityError as exc:
        log.error("archive integrity error during review")
        raise ApiError(
            500, "M_INTEGRITY", "stored content does not authenticate; run verify"
        ) from exc
    except ArchiveError as exc:
        raise ApiError(500, "M_STORE", "the archive refused the request") from exc


REVIEW = web.AppKey("review_service", ReviewService)


async def review_ctx(app: web.Application) -> AsyncIterator[None]:
    service = ReviewService(app[SETTINGS].data_dir)
    app[REVIEW] = service
    try:
        yield
    finally:
        await service.close()
