"""Import exported room keys into the archiver's crypto store and decrypt what they open.

One code path for the running bot (its control endpoint) and for ``import-keys`` while the
bot is stopped (then under the archive's writer lock, so the bot cannot start meanwhile):
only one process ever writes the bot's crypto store.

A session is taken only when it belongs to an archived room (and to the room asked for, if
any), is a well-formed Megolm export whose key matches its session id, and improves on what
the archiver holds (an earlier first index); when the archiver already holds the session,
the imported one must be the same ratchet (both exported at the archiver's first index
agree). Events decrypted with an imported key are chained with their provenance.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nio import AsyncClient
from nio.crypto.sessions import InboundGroupSession

from archiver_bot.archive import Actor, Archive
from archiver_bot.bot.keyexport import ExportedSession, KeyFileError, parse_sessions
from archiver_bot.bot.late import decrypt_pending
from archiver_bot.settings import write_private

log = logging.getLogger(__name__)

NOT_ARCHIVED = "room is not archived"
OTHER_ROOM = "belongs to another room"
INVALID_KEY = "invalid session key"
ID_MISMATCH = "session id does not match its key"
ALREADY_HELD = "already held by the archiver from the same or an earlier index"
CONFLICT = "does not match the session the archiver holds"
DUPLICATE = "duplicate in the file"


class NothingToImportError(KeyFileError):
    """No session of the file is usable; nothing was changed."""

    def __init__(self, message: str, outcome: ImportOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass
class ImportOutcome:
    keys_read: int = 0
    keys_used: int = 0
    events_decrypted: int = 0
    ignored: dict[str, int] = field(default_factory=dict)

    def ignore(self, reason: str, count: int = 1) -> None:
        self.ignored[reason] = self.ignored.get(reason, 0) + count

    def to_dict(self) -> dict[str, Any]:
        return {
            "keys_read": self.keys_read,
            "keys_used": self.keys_used,
            "events_decrypted": self.events_decrypted,
            "ignored": dict(sorted(self.ignored.items())),
        }

    def ignored_text(self) -> str:
        return ", ".join(f"{n} {reason}" for reason, n in sorted(self.ignored.items()))


def _candidate(
    client: AsyncClient, item: ExportedSession
) -> tuple[InboundGroupSession | None, str | None]:
    try:
        session = InboundGroupSession.import_session(
            item.session_key, item.sender_ed25519, item.sender_key, item.room_id,
            list(item.forwarding_chain),
        )
    except Exception:  # vodozemac raises its own types for every malformed key
        return None, INVALID_KEY
    if session.id != item.session_id:
        return None, ID_MISMATCH
    held = client.olm.inbound_group_store.get(item.room_id, item.sender_key, item.session_id)
    if held is None:
        return session, None
    if held.first_known_index <= session.first_known_index:
        return None, ALREADY_HELD
    index = held.first_known_index
    try:
        same = session.export_session(index) == held.export_session(index)
    except Exception:
        same = False
    if not same:
        return None, CONFLICT
    # Keep what the archiver learnt over Olm about the sender's signing key.
    session.ed25519 = held.ed25519
    session.forwarding_chain = list(held.forwarding_chain)
    return session, None


def select_sessions(
    client: AsyncClient,
    items: list[ExportedSession],
    archived_rooms: set[str],
    room_filter: str | None,
    outcome: ImportOutcome,
) -> list[InboundGroupSession]:
    chosen: dict[tuple[str, str, str], InboundGroupSession] = {}
    for item in items:
        if item.room_id not in archived_rooms:
            outcome.ignore(NOT_ARCHIVED)
            continue
        if room_filter is not None and item.room_id != room_filter:
            outcome.ignore(OTHER_ROOM)
            continue
        session, reason = _candidate(client, item)
        if session is None:
            outcome.ignore(reason or INVALID_KEY)
            continue
        key = (item.room_id, item.sender_key, item.session_id)
        earlier = chosen.get(key)
        if earlier is not None:
            outcome.ignore(DUPLICATE)
            if earlier.first_known_index <= session.first_known_index:
                continue
        chosen[key] = session
    return list(chosen.values())


class ImportedSessions:
    """Which sessions' keys came from an import, with their provenance (``archiver/
    imported_sessions.json``, 0600): later late decryptions of such a session (e.g. an
    event captured during the import) are marked as imported too."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            data = {}
        self._by_id: dict[str, dict[str, Any]] = data if isinstance(data, dict) else {}

    def get(self, session_id: str) -> dict[str, Any] | None:
        return self._by_id.get(session_id)

    def add(self, session_ids: set[str], provenance: dict[str, Any]) -> None:
        for session_id in session_ids:
            self._by_id[session_id] = provenance
        write_private(self.path, json.dumps(self._by_id, sort_keys=True))


class KeyImporter:
    """Imports one file's sessions at a time into a client's store and the archive."""

    def __init__(
        self,
        client: AsyncClient,
        archive: Archive,
        archived_rooms: Any,
        registry: ImportedSessions,
    ) -> None:
        self.client = client
        self.archive = archive
        self._archived_rooms = archived_rooms  # () -> set[str]
        self.registry = registry
        self._lock = asyncio.Lock()
        #: called with the number of events decrypted (the bot updates its metrics)
        self.on_decrypted: Any = None

    async def run(
        self,
        raw_sessions: list[Any],
        *,
        actor: Actor,
        file_sha256: str,
        via: str,
        room_filter: str | None = None,
    ) -> ImportOutcome:
        items, malformed = parse_sessions(raw_sessions)
        outcome = ImportOutcome(keys_read=len(raw_sessions))
        for reason, n in malformed.items():
            outcome.ignore(reason, n)
        async with self._lock:
            chosen = select_sessions(
                self.client, items, set(self._archived_rooms()), room_filter, outcome
            )
            if not chosen:
                detail = outcome.ignored_text() or "the file holds no sessions"
                raise NothingToImportError(
                    f"nothing imported: no session in the file is usable ({detail})", outcome
                )
            olm = self.client.olm
            for session in chosen:
                olm.inbound_group_store.add(session)
                olm.save_inbound_group_session(session)
            outcome.keys_used = len(chosen)
            provenance = {
                "imported_by": actor.user_id,
                "imported_at": int(time.time() * 1000),
                "file_sha256": file_sha256,
                "via": via,
            }
            self.registry.add({s.id for s in chosen}, provenance)
            outcome.events_decrypted = await decrypt_pending(
                self.client, self.archive, {s.id for s in chosen}, imported=provenance
            )
            await self.archive.record_key_import(
                actor,
                {"file_sha256": file_sha256, "room": room_filter, "via": via,
                 **outcome.to_dict()},
            )
        log.info(
            "imported %d of %d room key(s) (%s); %d archived event(s) decrypted",
            outcome.keys_used, outcome.keys_read, via, outcome.events_decrypted,
        )
        if self.on_decrypted is not None:
            await self.on_decrypted(outcome.events_decrypted)
        return outcome
