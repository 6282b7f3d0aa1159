"""Catch-up: read the homeserver's own timeline of the archived rooms and record the events
that its Application Service pushes never brought.

Synapse's pushes are not gap-free across a crash: it stores how far it has handed events to
its Application Service scheduler before it stores the transaction that carries them, so an
event persisted just before a SIGKILL is never pushed (and a transaction created but not
sent before a stop waits until the service is next marked down). The ledger therefore reads,
with the Application Service's own token acting as the archiver's account (in its
namespace, a member of every archived room), each archived room's ``/messages`` backwards to
where the previous catch-up ended (minus a margin), or to the archiver's join (before it,
Synapse pushes a room's events only while a key official is joined). It runs when the bridge
starts, when the homeserver's transaction numbering breaks (a restart), and every few
minutes; every event it had to add is counted and logged, so that a homeserver that stops
pushing is still noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import aiohttp

from server_bridge.appservice.ledger import CAUGHT_UP_UNTIL, WATCH_STARTED_AT, Ledger
from server_bridge.appservice.transactions import LedgerRow, TransactionError, ledger_row

log = logging.getLogger(__name__)

MARGIN_MS = 10 * 60 * 1000  # read this far before the previous catch-up's start
PAGE = 100
INTERVAL = 300.0  # seconds between catch-ups when nothing asks for one
RETRY = 10.0  # seconds before retrying a catch-up that failed (homeserver down)
DEBOUNCE = 2.0  # seconds to wait after a request, so that a burst asks once
FOLLOW_UP = 30.0  # seconds to the second catch-up after a requested one
WATCH_INTERVAL = 1.0  # seconds between looks at whether the homeserver answers
MIN_AGE_MS = 5000  # younger events are left to the push (read by the next catch-up)


class CatchUpError(Exception):
    """The homeserver could not be read; nothing was recorded."""


class CatchUp:
    def __init__(
        self,
        ledger: Ledger,
        homeserver_url: str,
        as_token: str,
        archiver: str,
        on_added: Callable[[int], None] | None = None,
    ) -> None:
        self._ledger = ledger
        self._on_added = on_added
        self._url = homeserver_url.rstrip("/")
        self._token = as_token
        self._archiver = archiver
        self._wake = asyncio.Event()
        self._running = asyncio.Lock()
        self._paused = False
        self.runs = 0
        self.caught_up = 0  # events added by catch-ups since the bridge started

    def request(self) -> None:
        """Ask for a catch-up soon (e.g. after the homeserver restarted)."""
        self._wake.set()

    async def pause(self) -> None:
        """No more catch-ups from the loop until :meth:`resume` (a run in progress ends
        first). For maintenance and tests: a catch-up restores rows removed from the ledger
        as long as the homeserver still has them within the catch-up's reach."""
        self._paused = True
        async with self._running:
            pass

    def resume(self) -> None:
        self._paused = False

    async def _get(self, session: aiohttp.ClientSession, path: str, **query: str) -> Any:
        params = {"user_id": self._archiver, **query}
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with session.get(self._url + path, params=params, headers=headers) as resp:
                if resp.status != 200:
                    raise CatchUpError(f"GET {path.split('?')[0]}: HTTP {resp.status}")
                return await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise CatchUpError(f"the homeserver cannot be read: {type(exc).__name__}") from exc

    async def _room_events(
        self, session: aiohttp.ClientSession, room_id: str, horizon: int
    ) -> AsyncIterator[LedgerRow]:
        token: str | None = None
        path = f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/messages"
        while True:
            query = {"dir": "b", "limit": str(PAGE)}
            if token is not None:
                query["from"] = token
            page = await self._get(session, path, **query)
            chunk = page.get("chunk") or []
            oldest: int | None = None
            for event in chunk:
                try:
                    row = ledger_row(event)
                except TransactionError:
                    continue  # not an event the ledger can keep (never expected)
                ts = row.origin_server_ts
                oldest = ts if oldest is None else min(oldest, ts)
                yield row
                if (
                    row.type == "m.room.member"
                    and row.state_key == self._archiver
                    and row.membership == "join"
                ):
                    return  # before its join, Synapse need not push the room's events
            token = page.get("end")
            if not chunk or token is None or (oldest is not None and oldest < horizon):
                return

    async def run_once(self) -> int:
        """One catch-up over every room the archiver is in; returns the events added."""
        async with self._running:
            return await self._run()

    async def _run(self) -> int:
        started = int(time.time() * 1000)
        youngest = started - MIN_AGE_MS
        until = await self._ledger.get_meta(CAUGHT_UP_UNTIL)
        if until is None:
            until = await self._ledger.get_meta(WATCH_STARTED_AT)
        horizon = int(until or started) - MARGIN_MS
        timeout = aiohttp.ClientTimeout(total=120)
        rows: list[LedgerRow] = []
        async with aiohttp.ClientSession(timeout=timeout) as session:
            joined = await self._get(session, "/_matrix/client/v3/joined_rooms")
            rooms = [r for r in joined.get("joined_rooms") or [] if isinstance(r, str)]
            for room_id in rooms:
                async for row in self._room_events(session, room_id, horizon):
                    if row.origin_server_ts <= youngest:
                        rows.append(row)
        added = await self._ledger.record_caught_up(rows)
        await self._ledger.set_meta(CAUGHT_UP_UNTIL, str(started))
        self.runs += 1
        self.caught_up += added
        if added and self._on_added is not None:
            self._on_added(added)
        if added:
            log.warning(
                "catch-up: %d events of the homeserver had not been pushed to the ledger; "
                "recorded now",
                added,
            )
        else:
            log.info("catch-up: the ledger knows every event of %d rooms", len(rooms))
        return added

    async def watch_homeserver(self) -> None:
        """Ask for a catch-up whenever the homeserver answers again after it did not (a
        restart or a crash). On SQLite a restart also shows in the transaction numbering;
        on PostgreSQL the numbering goes on, so this is the only sign of a crash there."""
        url = self._url + "/_matrix/client/versions"
        timeout = aiohttp.ClientTimeout(total=5)
        was_down = False
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    async with session.get(url) as resp:
                        up = resp.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    up = False
                if up and was_down:
                    log.info("the homeserver answers again: catching up")
                    self.request()
                was_down = not up
                await asyncio.sleep(WATCH_INTERVAL)

    async def loop(self) -> None:
        """Run at start, on request and every INTERVAL seconds, until cancelled; meanwhile
        watch the homeserver, so that a crash is followed by a catch-up."""
        watcher = asyncio.create_task(self.watch_homeserver())
        try:
            await self._loop()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _loop(self) -> None:
        delay = 0.0
        follow_up = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            requested = self._wake.is_set()
            await asyncio.sleep(DEBOUNCE)
            self._wake.clear()
            if self._paused:
                delay = INTERVAL
                continue
            try:
                await self.run_once()
                # After a restart, once more when the events of its last seconds are older.
                follow_up = requested and not follow_up
                delay = FOLLOW_UP if follow_up else INTERVAL
            except CatchUpError as exc:
                log.info("catch-up postponed: %s", exc)
                delay = RETRY
            except Exception:
                log.exception("catch-up failed")
                delay = RETRY
