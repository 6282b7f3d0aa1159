"""Undecryptable events past the grace period: the sender is told once (Synapse server
notice), the review UI lists them with what to do. Real Synapse with the policy module and
the ledger, the real bot, the bridge serving the review UI.

The race of Element (encrypting before it knows the archiver's device) is made deterministic
by a nio sender that blacklists the archiver's device: its room key never reaches the archive.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from server_bridge.homeserver.config import SERVER_NOTICES_LOCALPART
from server_bridge.process import terminate
from server_bridge.settings import Settings
from server_bridge.web.app import create_app
from tests.bot.conftest import ArchiverProcess, wait_archived
from tests.e2e_client import E2EUser, wait_for
from tests.helpers import RunningHomeserver, free_port, start_homeserver

GRACE = 3.0  # seconds (the default is 5 minutes)
SECRET = "geheime-inhoud"


@dataclass
class NoticeStack:
    hs: RunningHomeserver
    root: Path

    @property
    def data_dir(self) -> Path:
        return self.hs.settings.data_dir

    def archiver(self, *extra: str) -> ArchiverProcess:
        return ArchiverProcess(self.data_dir, ("--undecryptable-grace", str(GRACE), *extra))

    def notices_state(self) -> dict[str, Any]:
        path = self.data_dir / "archiver" / "notices.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data


@pytest.fixture(scope="module")
async def notice_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NoticeStack]:
    root = tmp_path_factory.mktemp("notices")
    settings = Settings(data_dir=root / "server", server_name="test.localhost",
                        homeserver_port=free_port(), bridge_port=free_port(),
                        undecryptable_grace_seconds=GRACE)
    hs = await start_homeserver(settings.data_dir, archiving_mode="enforce", ledger=True,
                                settings=settings)
    runner = web.AppRunner(create_app(hs.settings), access_log=None)
    try:
        await runner.setup()
        await web.TCPSite(runner, settings.bind_host, settings.bridge_port).start()
        yield NoticeStack(hs, root)
    finally:
        await runner.cleanup()
        await terminate("homeserver", hs.proc)


async def _room_with_archiver(user: E2EUser, name: str, invite: list[str]) -> str:
    room_id = await user.create_room(name, invite=invite)
    archiver = user.hs.user_id("rijksarchief")

    async def joined() -> bool:
        await user.sync()
        room = user.client.rooms.get(room_id)
        return room is not None and archiver in room.users and not room.users[archiver].invited

    await wait_for(joined, timeout=60)
    return room_id


async def _withhold_from_archiver(user: E2EUser) -> None:
    """Blacklist the archiver's devices: the sender's room keys never reach the archive."""
    archiver = user.hs.user_id("rijksarchief")

    async def known() -> bool:
        await user.sync()
        return bool(list(user.client.device_store.active_user_devices(archiver)))

    await wait_for(known, timeout=30)
    for device in user.client.device_store.active_user_devices(archiver):
        user.client.blacklist_device(device)
    for room_id in list(user.client.rooms):
        user.client.invalidate_outbound_session(room_id)


async def _undecryptable_message(stack: NoticeStack, user: E2EUser, room_id: str,
                                 body: str) -> tuple[str, int]:
    event_id = await user.send_text(room_id, body)
    events = await wait_archived(
        stack.data_dir, room_id,
        lambda evs: any(e.event_id == event_id for e in evs), timeout=60)
    stored = next(e for e in events if e.event_id == event_id)
    assert stored.decryption == "undecryptable"
    return event_id, stored.origin_server_ts


async def server_notices(user: E2EUser) -> list[dict[str, Any]]:
    """The server notices the user received: messages of the notice system user, read
    through the user's own /sync (joining an invited notice room if need be)."""
    system = user.hs.user_id(SERVER_NOTICES_LOCALPART)
    session = user.client.client_session
    assert session is not None
    auth = {"Authorization": f"Bearer {user.client.access_token}"}
    # A new filter each time: Synapse answers an identical /sync from a cache for minutes.
    nonce = f"nl.rijkschat.test.nocache.{uuid.uuid4().hex}"
    sync_filter = json.dumps({"room": {"timeline": {"limit": 100, "not_types": [nonce]}}})
    async with session.get(f"{user.hs.url}/_matrix/client/v3/sync", headers=auth,
                           params={"filter": sync_filter, "timeout": "0"}) as resp:
        assert resp.status == 200
        body = await resp.json()
    rooms = body.get("rooms", {})
    for room_id, room in (rooms.get("invite") or {}).items():
        inviters = {e.get("sender") for e in room.get("invite_state", {}).get("events", [])}
        if system in inviters:
            async with session.post(
                f"{user.hs.url}/_matrix/client/v3/join/{quote(room_id, safe='')}",
                headers=auth, json={},
            ) as resp:
                assert resp.status == 200, await resp.text()
            return await server_notices(user)
    found = []
    for room in (rooms.get("join") or {}).values():
        for event in room.get("timeline", {}).get("events", []):
            if event.get("sender") == system and event.get("type") == "m.room.message":
                found.append(event)
    return found


async def _checked_after(stack: NoticeStack, ts_ms: int) -> None:
    """Wait until the notifier completed a pass that saw the event at ``ts_ms`` overdue."""
    due = ts_ms / 1000 + GRACE

    async def passed() -> bool:
        return float(stack.notices_state().get("last_check", 0)) >= due

    await wait_for(passed, timeout=60, interval=0.5)


async def _ui_login(stack: NoticeStack, session: aiohttp.ClientSession) -> None:
    async with session.get("/archief/inloggen") as resp:
        match = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
        assert match
    form = {"csrf": match.group(1), "gebruikersnaam": "archivaris",
            "wachtwoord": stack.hs.password("archivaris"), "doel": "test undecryptable"}
    async with session.post("/archief/inloggen", data=form, allow_redirects=False) as resp:
        assert resp.status in (302, 303), await resp.text()


async def test_sender_is_told_once_and_the_review_ui_shows_what_to_do(
    notice_stack: NoticeStack, tmp_path: Path
) -> None:
    stack = notice_stack
    archiver = stack.archiver()
    await archiver.start()
    minister = await E2EUser(stack.hs, "minister", tmp_path / "minister").start()
    try:
        room_id = await _room_with_archiver(minister, "Kabinetsberaad", [])
        readable = await minister.send_text(room_id, "voor het archief leesbaar")
        await _withhold_from_archiver(minister)
        first, first_ts = await _undecryptable_message(stack, minister, room_id, SECRET)

        # After the grace period: exactly one notice, in Dutch, naming room and time.
        notices = await wait_for(lambda: server_notices(minister), timeout=60)
        assert len(notices) == 1
        text = notices[0]["content"]["body"]
        assert "Kabinetsberaad" in text
        assert room_id in text
        assert "kon het archief niet ontsleutelen" in text
        assert "Export E2E room keys" in text
        assert "rijkschat keys export" in text
        assert re.search(r"\d\d-\d\d-\d{4} om \d\d:\d\d", text)
        assert SECRET not in text
        assert "leesbaar" not in text

        # More undecryptable messages in the same room the same day: no second notice.
        _, last_ts = await _undecryptable_message(stack, minister, room_id, SECRET + " 2")
        await _checked_after(stack, last_ts)
        assert len(await server_notices(minister)) == 1

        # ... not even after a restart (the rate limit is kept on disk).
        await archiver.stop()
        archiver = stack.archiver()
        await archiver.start()
        restarted = time.time()
        # A pass that saw the events overdue again (a new process waits a grace period).
        await _checked_after(stack, int((restarted + 1) * 1000))
        assert len(await server_notices(minister)) == 1
        assert stack.notices_state()["notices_sent"] >= 1

        # The review UI: the room page and the completeness page list both events with
        # what to do; the decrypted message is not listed.
        async with aiohttp.ClientSession(
            base_url=stack.hs.settings.bridge_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as session:
            await _ui_login(stack, session)
            for page in (f"/archief/kamers/{quote(room_id, safe='')}", "/archief/volledigheid"):
                async with session.get(page) as resp:
                    assert resp.status == 200
                    html = await resp.text()
                assert "Niet te ontsleutelen berichten (2)" in html, page
                assert first in html
                assert "E2E-kamersleutels exporteren" in html
                assert "rijkschat keys export" in html
                assert SECRET not in html
                section = html.split('id="niet-ontsleuteld"', 1)[1].split("</section>", 1)[0]
                assert readable not in section
        assert first_ts < last_ts
    finally:
        await minister.close()
        await archiver.stop()
    log = (stack.data_dir / "logs" / "archiver-test.log").read_text()
    assert SECRET not in log


async def test_no_notice_when_sender_notices_are_switched_off(
    notice_stack: NoticeStack, tmp_path: Path
) -> None:
    stack = notice_stack
    archiver = stack.archiver("--no-sender-notices")
    await archiver.start()
    sg = await E2EUser(stack.hs, "sg", tmp_path / "sg").start()
    try:
        room_id = await _room_with_archiver(sg, "Staf", [stack.hs.user_id("ambtenaar1")])
        await _withhold_from_archiver(sg)
        _, ts = await _undecryptable_message(stack, sg, room_id, SECRET)
        # A completed pass that saw the event overdue, with notices switched off: none sent.
        await _checked_after(stack, ts)
        assert await server_notices(sg) == []
    finally:
        await sg.close()
        await archiver.stop()
