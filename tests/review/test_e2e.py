"""End to end: officials send real E2E-encrypted messages through the real Synapse, the
real archiver bot captures them, and the archivist reads them back through the review API
(decrypted, with the attachment under its original name) while the archiver keeps running."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from server_bridge.web.app import create_app
from tests.bot.conftest import ArchiverProcess, wait_archived
from tests.e2e_client import E2EUser, wait_for
from tests.helpers import RunningHomeserver, free_port
from tests.review.conftest import matrix_login


def _archiver_running(data_dir: Path) -> bool:
    """The bot suite's session archiver may already run on this data dir (one writer)."""
    try:
        status = json.loads((data_dir / "archiver" / "status.json").read_text())
        os.kill(int(status["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return status.get("state") == "syncing"


@pytest.fixture(scope="module")
async def live_archiver(homeserver: RunningHomeserver) -> AsyncIterator[None]:
    data_dir = homeserver.settings.data_dir
    if _archiver_running(data_dir):
        yield
        return
    proc = ArchiverProcess(data_dir)
    await proc.start()
    try:
        yield
    finally:
        await proc.stop()


@pytest.mark.usefixtures("live_archiver")
async def test_real_e2e_messages_are_readable_through_the_review_api(
    homeserver: RunningHomeserver, tmp_path: Path
) -> None:
    minister = await E2EUser(homeserver, "minister", tmp_path / "minister").start()
    official = await E2EUser(homeserver, "ambtenaar1", tmp_path / "ambtenaar1").start()
    archiver = homeserver.user_id("rijksarchief")
    data_dir = homeserver.settings.data_dir
    try:
        room_id = await minister.create_room("Review end-to-end", invite=[official.user_id])
        await official.join(room_id)
        await minister.invite(room_id, archiver)

        async def archiver_joined() -> bool:
            await minister.sync()
            room = minister.client.rooms.get(room_id)
            return room is not None and archiver in room.users

        await wait_for(archiver_joined, timeout=30)
        text = "Vertrouwelijk: <script>alert(1)</script> het besluit over de zeedijk"
        first = await minister.send_text(room_id, text)
        await official.send(room_id, {
            "msgtype": "m.text", "body": "Gezien, dank.",
            "m.relates_to": {"m.in_reply_to": {"event_id": first}},
        })
        pdf = b"%PDF-1.4 " + os.urandom(4000)
        file_event = await official.send_file(room_id, pdf, "notulen zeedijk.pdf",
                                              "application/pdf")
        await wait_archived(data_dir, room_id,
                            lambda evs: any(e.event_id == file_event and e.has_attachment
                                            for e in evs), timeout=60)
    finally:
        await minister.close()
        await official.close()

    settings = dataclasses.replace(homeserver.settings, bridge_port=free_port())
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.bind_host, settings.bridge_port).start()
    try:
        async with aiohttp.ClientSession() as session:
            token = await matrix_login(session, homeserver, "archivaris")
            headers = {"Authorization": f"Bearer {token}"}

            async def get(path: str) -> tuple[int, bytes, aiohttp.ClientResponse]:
                async with session.get(settings.bridge_url + path, headers=headers) as resp:
                    return resp.status, await resp.read(), resp

            status, raw, _ = await get("/api/v1/rooms")
            assert status == 200
            rooms = {r["room_id"]: r for r in json.loads(raw)["rooms"]}
            assert minister.user_id in rooms[room_id]["key_officials"]
            status, raw, _ = await get(f"/api/v1/rooms/{quote(room_id, safe='')}/events")
            assert status == 200, (room_id, raw)
            events = {e["event_id"]: e for e in json.loads(raw)["events"]}
            assert events[first]["content"]["body"] == text
            assert events[first]["decryption"] == "decrypted"
            assert events[first]["sender"] == minister.user_id
            assert events[file_event]["has_attachment"] is True
            status, raw, resp = await get(f"/api/v1/events/{quote(file_event, safe='')}"
                                          "/attachment")
            assert status == 200
            assert raw == pdf
            assert "notulen%20zeedijk.pdf" in resp.headers["Content-Disposition"]
            status, raw, _ = await get(f"/api/v1/search?q=zeedijk&room={quote(room_id)}")
            hits = [h["event"]["event_id"] for h in json.loads(raw)["hits"]]
            assert first in hits
            assert file_event in hits
            status, raw, _ = await get(f"/api/v1/rooms/{quote(room_id, safe='')}/verify")
            assert status == 200
            assert json.loads(raw)["ok"] is True
    finally:
        await runner.cleanup()
