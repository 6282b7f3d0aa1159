"""Turn each sync response into committed archive records, losing nothing.

Order per sync: decide rooms (join/leave) -> collect every event (backfilling limited
timelines, decrypting what left rooms hold) -> ingest in one transaction -> store
attachments -> only then advance the sync position -> retry undecryptable events whose
keys arrived -> send the one archiving notice to newly archived rooms.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import quote

from nio import (
    AsyncClient,
    Event,
    ForwardedRoomKeyEvent,
    JoinError,
    MegolmEvent,
    RoomKeyEvent,
    RoomMessagesError,
    SyncResponse,
    UnknownToDeviceEvent,
)

from archiver_bot.archive import Archive, EventRecord
from archiver_bot.bot import media
from archiver_bot.bot.late import decrypt_pending, try_decrypt
from archiver_bot.bot.mapping import attachment_of, stripped_by_redaction, to_record
from archiver_bot.bot.metrics import Metrics
from archiver_bot.bot.roster import KnownUsers
from archiver_bot.bot.state import BotState

log = logging.getLogger(__name__)

NOTICE = (
    "Dit gesprek wordt gearchiveerd door het Rijksarchief (Archiefwet 1995, Woo). "
    "Berichten in deze kamer worden versleuteld bewaard in het overheidsarchief."
)
BACKFILL_PAGE = 100
MAX_BACKFILL_PAGES = 10_000


class Capture:
    def __init__(
        self,
        client: AsyncClient,
        archive: Archive,
        users: KnownUsers,
        state: BotState,
        metrics: Metrics,
    ) -> None:
        self.client = client
        self.archive = archive
        self.users = users
        self.state = state
        self.metrics = metrics
        # Encrypted originals of the events nio decrypted in place during this sync.
        self.originals: dict[str, MegolmEvent] = {}
        #: provenance of sessions whose keys were imported from a key export (or None)
        self.provenance_of: Callable[[str], dict[str, Any] | None] | None = None

    # ----- room decisions -------------------------------------------------------------
    def _members(self, room_id: str) -> set[str]:
        room = self.client.rooms.get(room_id)
        if room is None:
            return set()
        return set(room.users) | set(room.invited_users)

    def key_officials_in(self, room_id: str) -> list[str]:
        return sorted(self._members(room_id) & self.users.key_officials)

    async def _left_room_has_key_official(self, room_id: str) -> bool:
        resp = await self.client.room_get_state(room_id)
        events = getattr(resp, "events", None)
        if not isinstance(events, list):
            return False
        members = {
            e.get("state_key") for e in events
            if e.get("type") == "m.room.member"
            and e.get("content", {}).get("membership") in ("join", "invite")
        }
        return bool(members & self.users.key_officials)

    async def _accept_invites(self, resp: SyncResponse) -> None:
        for room_id in resp.rooms.invite:
            if room_id in self.state.left:
                continue
            result = await self.client.join(room_id)
            if isinstance(result, JoinError):
                log.warning("could not join %s: %s", room_id, result.message)
            else:
                log.info("accepted invitation to %s", room_id)

    async def _leave(self, room_id: str) -> None:
        reason = "geen sleutelfunctionaris in dit gesprek (dataminimalisatie)"
        await self.client.room_leave(room_id)
        await self.client.room_forget(room_id)
        await self.archive.record_room_left(room_id, reason)
        self.state.mark_left(room_id)
        log.info("left %s: no key official in the room", room_id)

    # ----- collecting events ----------------------------------------------------------
    def remember_original(self, encrypted: MegolmEvent) -> None:
        self.originals[encrypted.event_id] = encrypted

    def _record(self, room_id: str, event: Any) -> EventRecord | None:
        source = getattr(event, "source", None) or {}
        original = self.originals.get(source.get("event_id", ""))
        if original is event:
            original = None  # still encrypted
        return to_record(room_id, event, original)

    async def _backfill(self, room_id: str, prev_batch: str | None) -> list[EventRecord]:
        """Page back from prev_batch until an archived event or the start of the room."""
        if not prev_batch:
            return []
        out: list[EventRecord] = []
        archived = await self.archive.archived_event_ids(room_id)
        token: str | None = prev_batch
        for _ in range(MAX_BACKFILL_PAGES):
            if token is None:
                break
            resp = await self.client.room_messages(room_id, start=token, limit=BACKFILL_PAGE)
            if isinstance(resp, RoomMessagesError):
                raise BackfillError(f"backfill of {room_id} failed: {resp.message}")
            self.metrics.backfill_pages.inc()
            page = self._decrypting_records(room_id, resp.chunk)
            known = {r.event_id for r in page if r.event_id in archived}
            out.extend(r for r in page if r.event_id not in known)
            if known:
                break  # reached what we already have
            token = resp.end  # a missing `end` is the start of the room; an empty chunk is not
        out.reverse()
        return out

    async def _unredacted(self, record: EventRecord) -> EventRecord:
        """The original of an event redacted before we saw it (MSC2815), else the stripped one."""
        url = (
            f"{self.client.homeserver}/_matrix/client/v3/rooms/{quote(record.room_id, safe='')}"
            f"/event/{quote(record.event_id, safe='')}"
        )
        if self.client.client_session is None:
            await self.client.create_session()
        assert self.client.client_session is not None
        async with self.client.client_session.get(
            url, params={"fi.mau.msc2815.include_unredacted_content": "true"},
            headers={"Authorization": f"Bearer {self.client.access_token}"},
        ) as resp:
            if resp.status != 200:
                log.warning("original of redacted event %s is not available (HTTP %d)",
                            record.event_id, resp.status)
                return record
            source = await resp.json(content_type=None)
        if not isinstance(source, dict) or not source.get("content"):
            return record
        (recovered,) = self._decrypting_records(record.room_id, [Event.parse_event(source)]) or (
            record,
        )
        log.info("recovered the original of redacted event %s", record.event_id)
        return recovered

    def _try_decrypt(self, event: MegolmEvent) -> Any:
        return try_decrypt(self.client, event)

    def _decrypting_records(self, room_id: str, events: Iterable[Any]) -> list[EventRecord]:
        """Records of events nio did not decrypt itself (/messages pages, left rooms)."""
        out = []
        for event in events:
            if isinstance(event, MegolmEvent):
                event.room_id = room_id
                decrypted = self._try_decrypt(event)
                rec = to_record(room_id, decrypted or event, event if decrypted else None)
            else:
                rec = to_record(room_id, event)
            if rec is not None:
                out.append(rec)
        return out

    # ----- one sync -------------------------------------------------------------------
    async def handle_sync(self, resp: SyncResponse) -> None:
        records: list[EventRecord] = []
        new_sessions: set[str] = set()
        withheld: list[dict[str, Any]] = []
        for event in resp.to_device_events:
            if isinstance(event, RoomKeyEvent | ForwardedRoomKeyEvent):
                new_sessions.add(event.session_id)
            elif isinstance(event, UnknownToDeviceEvent) and event.type == "m.room_key.withheld":
                withheld.append(event.source)

        newly_archived: list[str] = []
        for room_id, info in resp.rooms.join.items():
            if room_id not in self.state.archived:
                officials = self.key_officials_in(room_id)
                if not officials:
                    await self._leave(room_id)
                    continue
                self.state.mark_archived(room_id)
                newly_archived.append(room_id)
            if info.timeline.limited:
                records.extend(await self._backfill(room_id, info.timeline.prev_batch))
            records.extend(r for e in info.state if (r := self._record(room_id, e)))
            records.extend(r for e in info.timeline.events if (r := self._record(room_id, e)))

        for room_id, info in resp.rooms.leave.items():
            if room_id not in self.state.archived and room_id not in self.state.left:
                # Joined, then removed before we could decide: decide on the room's state.
                if await self._left_room_has_key_official(room_id):
                    self.state.mark_archived(room_id)
            if room_id in self.state.archived:  # kicked or left: keep the last events
                records.extend(self._decrypting_records(room_id, info.state))
                records.extend(self._decrypting_records(room_id, info.timeline.events))
            log.debug("left room %s: %d timeline events", room_id, len(info.timeline.events))
        if records:
            log.debug("sync: %d joined, %d left rooms, %d records",
                      len(resp.rooms.join), len(resp.rooms.leave), len(records))

        records = [await self._unredacted(r) if stripped_by_redaction(r) else r for r in records]
        await self._commit(records, resp.next_batch)
        self.originals.clear()

        for w in withheld:
            content = w.get("content", {})
            await self.archive.record_withheld(
                content.get("room_id", ""), content.get("session_id", ""),
                w.get("sender", ""), content.get("code", ""), content.get("reason"),
            )
        # A key imported while this sync was being captured: its events are retried too.
        new_sessions.update(
            r.session_id for r in records if r.decryption == "undecryptable" and r.session_id
        )
        if new_sessions:
            await self.retry_sessions(new_sessions)
        for room_id in newly_archived:
            await self._room_info(room_id)
            await self._send_notice(room_id)
        await self._accept_invites(resp)

    async def _commit(self, records: Sequence[EventRecord], token: str) -> None:
        refs = [(r, ref) for r in records if (ref := attachment_of(r))]
        if not refs:
            result = await self.archive.ingest(records, sync_token=token)
        else:
            # Events first, then their attachments, then the position: a crash in between
            # replays this sync, and both ingest and attachments are idempotent.
            result = await self.archive.ingest(records)
            fetched = await asyncio.gather(*(media.fetch(self.client, ref) for _, ref in refs))
            for (record, _), got in zip(refs, fetched, strict=True):
                await self.archive.store_attachment(
                    record.event_id, record.room_id, got.data, got.filename, got.mimetype,
                    got.sha256_ok, got.error,
                )
            await self.archive.ingest([], sync_token=token)
        now = time.time()
        for r in records:
            self.metrics.events.inc()
            if r.origin_server_ts:
                self.metrics.capture_lag.observe(max(0.0, now - r.origin_server_ts / 1000))
        for event_id, reason in result.rejected:
            log.error("event %s rejected by the archive: %s", event_id, reason)
        self.metrics.undecryptable.set(await self.archive.undecryptable_count())

    async def retry_sessions(self, session_ids: Iterable[str]) -> int:
        """Decrypt archived events of sessions whose keys arrived; append the plaintext."""
        done = await decrypt_pending(
            self.client, self.archive, session_ids, provenance_of=self.provenance_of
        )
        if done:
            log.info("decrypted %d archived event(s) after their keys arrived", done)
            self.metrics.undecryptable.set(await self.archive.undecryptable_count())
        return done

    async def _room_info(self, room_id: str) -> None:
        room = self.client.rooms.get(room_id)
        await self.archive.set_room_info(
            room_id,
            name=room.display_name if room else None,
            members=sorted(self._members(room_id)),
            key_officials=self.key_officials_in(room_id),
        )

    async def _send_notice(self, room_id: str) -> None:
        if room_id in self.state.noticed:
            return
        resp = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.notice", "body": NOTICE},
            ignore_unverified_devices=True,
        )
        if hasattr(resp, "event_id"):
            self.state.mark_noticed(room_id)
        else:
            log.warning("could not send the archiving notice to %s: %s", room_id, resp)


class BackfillError(Exception):
    """/messages failed; the sync is not acknowledged and will be retried."""
