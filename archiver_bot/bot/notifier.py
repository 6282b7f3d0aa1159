"""Tell the sender of an event that stays undecryptable how to bring it back.

Element can encrypt the first messages after a join before it knows the archiver's device;
the archiver then holds the Megolm session only from a later index, and only the sender's own
devices can still open those events. After a grace period the sender gets one Synapse server
notice (in Dutch) per room and day, naming the room and the time and how to export the room
keys from Element or `rijkschat`. The notice never contains message content, nor do the logs.

When each sender was last told about each room is kept in a small file of the bot's data dir,
so a restart does not repeat a notice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import aiohttp
from nio import AsyncClient

from archiver_bot.archive import Archive, ArchiveError
from archiver_bot.settings import write_private

log = logging.getLogger(__name__)

NOTICE_INTERVAL_SECONDS = 24 * 3600  # at most one notice per sender and room in this time
MAX_CHECK_INTERVAL_SECONDS = 60.0
SEND_ATTEMPTS = 4
SEND_RETRY_SECONDS = 1.0
SERVER_NOTICE_PATH = "/_synapse/admin/v1/send_server_notice"


def _local_zone() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("Europe/Amsterdam")
    except Exception:  # no time zone database on this machine
        return UTC


@dataclass(frozen=True)
class Overdue:
    """Undecryptable events of one sender in one room, older than the grace period."""

    sender: str
    room_id: str
    first_ts: int  # ms
    count: int


def notice_text(room_name: str | None, room_id: str, first_ts: int, count: int,
                zone: tzinfo | None = None) -> str:
    """The Dutch notice: room, time and how to export the keys; never message content."""
    zone = zone or _local_zone()
    when = datetime.fromtimestamp(first_ts / 1000, zone)
    stamp = when.strftime("%d-%m-%Y om %H:%M") + (" UTC" if zone is UTC else "")
    room = f"„{room_name}” ({room_id})" if room_name and room_name != room_id else room_id
    which = (f"het bericht dat u op {stamp}" if count == 1
             else f"{count} berichten die u sinds {stamp}")
    return (
        f"Rijksarchief: {which} stuurde in het gesprek {room} kon het "
        "archief niet ontsleutelen. Uw app versleutelde toen voordat hij het apparaat van het "
        "archief kende; alleen uw eigen apparaten hebben de sleutel nog.\n\n"
        "Wat u kunt doen: exporteer uw gesprekssleutels en geef het bestand met het wachtwoord "
        "aan de archivaris, die ze in het archief inleest.\n"
        "- Element: Instellingen → Beveiliging & privacy → Versleuteling → "
        "'E2E-kamersleutels exporteren' (Settings → Security & Privacy → Export E2E room keys).\n"
        "- rijkschat: rijkschat keys export sleutels.txt\n\n"
        "Deze melding bevat geen berichtinhoud. U krijgt per gesprek hooguit één melding per dag."
    )


class NoticeLog:
    """When each (sender, room) was last told; persisted across restarts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sent: dict[str, float] = {}
        self.last_check: float = 0.0
        self.notices_sent = 0
        try:
            data = json.loads(path.read_text("utf-8"))
            self.sent = {str(k): float(v) for k, v in dict(data.get("sent", {})).items()}
            self.notices_sent = int(data.get("notices_sent", 0))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, AttributeError):
            log.warning("notice log %s is unreadable; starting a new one", path)

    @staticmethod
    def key(sender: str, room_id: str) -> str:
        return f"{sender}|{room_id}"

    def due(self, sender: str, room_id: str, now: float) -> bool:
        last = self.sent.get(self.key(sender, room_id))
        return last is None or now - last >= NOTICE_INTERVAL_SECONDS

    def mark(self, sender: str, room_id: str, now: float) -> None:
        self.sent[self.key(sender, room_id)] = now
        self.notices_sent += 1

    def save(self, now: float) -> None:
        self.last_check = now
        # Forget entries older than the rate-limit window: they no longer limit anything.
        self.sent = {k: v for k, v in self.sent.items() if now - v < NOTICE_INTERVAL_SECONDS}
        write_private(self.path, json.dumps({
            "sent": self.sent, "last_check": self.last_check, "notices_sent": self.notices_sent,
        }, sort_keys=True))


class Notifier:
    """Finds events undecryptable past the grace period and tells their senders."""

    def __init__(
        self,
        client: AsyncClient,
        archive: Archive,
        notices_file: Path,
        grace_seconds: float,
        *,
        enabled: bool = True,
        room_name: Callable[[str], str | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.archive = archive
        self.grace_seconds = grace_seconds
        self.enabled = enabled
        self.log = NoticeLog(notices_file)
        self.room_name = room_name or (lambda _room_id: None)
        self.clock = clock
        self._first_seen: dict[str, float] = {}  # event id -> when this process saw it pending

    @property
    def interval(self) -> float:
        """How often to look: often enough that a short grace (tests) is honoured."""
        return max(1.0, min(MAX_CHECK_INTERVAL_SECONDS, self.grace_seconds / 4))

    async def overdue(self, now: float) -> list[Overdue]:
        """Undecryptable events sent more than the grace period ago and known to this process
        for as long (an event captured late may get its key in the very next sync)."""
        cutoff = now - self.grace_seconds
        groups: dict[tuple[str, str], list[int]] = {}
        pending: set[str] = set()
        for session_id in sorted(await self.archive.undecryptable_session_ids()):
            for event in await self.archive.pending_by_session(session_id):
                pending.add(event.event_id)
                seen = self._first_seen.setdefault(event.event_id, now)
                if max(event.origin_server_ts / 1000, seen) <= cutoff:
                    groups.setdefault((event.sender, event.room_id), []).append(
                        event.origin_server_ts)
        self._first_seen = {k: v for k, v in self._first_seen.items() if k in pending}
        return [Overdue(sender, room_id, min(ts), len(ts))
                for (sender, room_id), ts in sorted(groups.items())]

    def _local(self, user_id: str) -> bool:
        own_server = str(self.client.user_id).split(":", 1)[-1]
        return user_id.split(":", 1)[-1] == own_server and user_id != self.client.user_id

    async def check_once(self) -> int:
        """One pass; the number of notices sent."""
        now = self.clock()
        found = await self.overdue(now)
        sent = 0
        for item in found:
            if not self.enabled or not self._local(item.sender):
                continue
            if not self.log.due(item.sender, item.room_id, now):
                continue
            text = notice_text(self.room_name(item.room_id), item.room_id, item.first_ts,
                               item.count)
            if await self._send(item.sender, text):
                self.log.mark(item.sender, item.room_id, now)
                sent += 1
                log.info("told %s about %d undecryptable event(s) in %s",
                         item.sender, item.count, item.room_id)
        if found:
            log.info("%d sender/room pair(s) with events undecryptable for more than %.0f s; "
                     "%d notice(s) sent", len(found), self.grace_seconds, sent)
        self.log.save(now)
        return sent

    async def _send(self, user_id: str, text: str) -> bool:
        """Send one server notice; retried briefly (the homeserver refuses messages in a key
        official's notice room until the archiver has joined it)."""
        if self.client.client_session is None:
            await self.client.create_session()
        assert self.client.client_session is not None
        body: dict[str, Any] = {"user_id": user_id,
                                "content": {"msgtype": "m.text", "body": text}}
        status, error = 0, ""
        for attempt in range(SEND_ATTEMPTS):
            if attempt:
                await asyncio.sleep(SEND_RETRY_SECONDS * attempt)
            try:
                async with self.client.client_session.post(
                    f"{self.client.homeserver}{SERVER_NOTICE_PATH}", json=body,
                    headers={"Authorization": f"Bearer {self.client.access_token}"},
                ) as resp:
                    status = resp.status
                    if status == 200:
                        return True
                    data = await resp.json(content_type=None)
                    error = str(data.get("errcode", "")) if isinstance(data, dict) else ""
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                status, error = 0, type(exc).__name__
                continue
            if status not in (403, 429) and status < 500:
                break
        log.warning("could not send a server notice to %s (HTTP %d %s); will try again later",
                    user_id, status, error)
        return False

    async def run(self) -> None:
        """Check periodically until cancelled."""
        while True:
            try:
                await self.check_once()
            except (ArchiveError, OSError) as exc:
                log.warning("checking undecryptable events failed: %s", type(exc).__name__)
            except Exception:
                log.exception("checking undecryptable events failed")
            await asyncio.sleep(self.interval)
