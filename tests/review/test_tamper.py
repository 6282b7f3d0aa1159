"""An archive changed behind the store's back: the verify endpoint and the UI's button say so."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path
from urllib.parse import quote

import aiohttp
from aiohttp import web

from archiver_bot.archive import ArchivePaths, open_archive
from server_bridge.settings import Settings
from server_bridge.web.app import create_app
from tests.helpers import free_port
from tests.review.conftest import ReviewStack, showcase_events


async def test_a_modified_record_is_reported_by_verify(
    review_stack: ReviewStack, tmp_path: Path
) -> None:
    server = review_stack.archive.server
    room = f"!manipulatie:{server}"
    paths = ArchivePaths.for_data_dir(tmp_path)
    archive = await open_archive(paths)
    events, ids = showcase_events(room, server)
    await archive.ingest(events)
    await archive.close()
    # the attacker's edit: a message moved one hour back in time
    with sqlite3.connect(paths.database) as db:
        db.execute("UPDATE archive_records SET ts = ts - 3600000 WHERE uid = ?",
                   (ids["first"],))
    settings = Settings(data_dir=tmp_path, server_name=server,
                        homeserver_port=review_stack.settings.homeserver_port,
                        bridge_port=free_port())
    shutil.copy(review_stack.settings.data_dir / "roster.json", tmp_path / "roster.json")
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.bind_host, settings.bridge_port).start()
    try:
        headers = {"Authorization": f"Bearer {review_stack.tokens['archivaris']}"}
        async with aiohttp.ClientSession(base_url=settings.bridge_url,
                                         cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(f"/api/v1/rooms/{quote(room, safe='')}/verify",
                                headers=headers) as resp:
                body = await resp.json()
            assert resp.status == 200
            assert body["ok"] is False
            assert body["problems"]
            assert "modified" in body["problems"][0] or "reordered" in body["problems"][0]
            # the UI shows it too
            async with http.get("/archief/inloggen") as resp:
                login_csrf = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
            assert login_csrf
            form = {"csrf": login_csrf.group(1), "gebruikersnaam": "archivaris",
                    "wachtwoord": review_stack.hs.password("archivaris")}
            async with http.post("/archief/inloggen", data=form) as resp:
                html = await resp.text()
            csrf = re.search(r'name="csrf" value="([^"]+)"', html)
            assert csrf
            async with http.post(f"/archief/kamers/{quote(room, safe='')}/controleren",
                                 data={"csrf": csrf.group(1)}) as resp:
                html = await resp.text()
            assert "GESCHONDEN" in html
    finally:
        await runner.cleanup()


async def test_purpose_is_bounded(review_stack: ReviewStack) -> None:
    status, body, _ = await review_stack.get(
        "/api/v1/rooms", headers={"X-Rijkschat-Purpose": "x" * 201})
    assert status == 400
    assert body["errcode"] == "M_INVALID_PARAM"
