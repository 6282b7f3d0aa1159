"""Room-key import through the review API and the web UI: archivists only, CSRF on the
form, a clear 503 without the archiver, and with the real archiver running the sender's
export opens every message of the join race, marked as decrypted with an imported key."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from server_bridge.settings import Settings
from server_bridge.web.app import create_app
from tests.bot.keyrace import archive_state, reproduce_race
from tests.e2e_client import E2EUser
from tests.helpers import RunningHomeserver, free_port
from tests.review.conftest import ReviewStack, matrix_login
from tests.review.test_e2e import live_archiver  # noqa: F401  (fixture)
from tests.review.test_ui import browser, csrf_of, login

PASSPHRASE = "geheim wachtwoord van de minister"


def upload_form(data: bytes, passphrase: str | None, csrf: str | None = None,
                field: str = "passphrase") -> aiohttp.FormData:
    form = aiohttp.FormData()
    if csrf is not None:
        form.add_field("csrf", csrf)
    if passphrase is not None:
        form.add_field(field, passphrase)
    form.add_field("file", data, filename="keys.txt", content_type="text/plain")
    return form


async def test_key_upload_is_for_archivists_only_and_needs_the_csrf_token(
    review_stack: ReviewStack,
) -> None:
    room = quote(review_stack.archive.room, safe="")
    url = f"{review_stack.url}/api/v1/rooms/{room}/keys"
    http = review_stack.session
    data = b"[]"
    async with http.post(url, data=upload_form(data, None)) as resp:
        assert resp.status == 401
    minister = {"Authorization": f"Bearer {review_stack.tokens['minister']}"}
    async with http.post(url, data=upload_form(data, None), headers=minister) as resp:
        assert resp.status == 403
    archivist = {"Authorization": f"Bearer {review_stack.tokens['archivaris']}"}
    async with http.post(url, data=aiohttp.FormData({"passphrase": "x"}),
                         headers=archivist) as resp:
        assert resp.status == 400  # no file
    # No archiver runs next to this archive: a clear 503, nothing done.
    async with http.post(url, data=upload_form(b"[{}]", None), headers=archivist) as resp:
        body = await resp.json()
        assert resp.status == 503, body
        assert "archiver" in body["error"]

    async with await browser(review_stack) as session:
        await login(session, review_stack, "archivaris")
        room_url = f"/archief/kamers/{room}"
        async with session.get(room_url) as resp:
            html = await resp.text()
        assert 'enctype="multipart/form-data"' in html
        assert "/sleutels" in html
        csrf = csrf_of(html)
        async with session.post(room_url + "/sleutels",
                                data=upload_form(b"[{}]", "x", "verkeerd", "wachtwoord")) as resp:
            assert resp.status == 403
            assert "CSRF" in await resp.text()
        async with session.post(room_url + "/sleutels",
                                data=upload_form(b"[{}]", "x", None, "wachtwoord")) as resp:
            assert resp.status == 403
        async with session.post(room_url + "/sleutels",
                                data=upload_form(b"[{}]", "x", csrf, "wachtwoord")) as resp:
            assert resp.status == 503
            assert "niet bereikbaar" in await resp.text()
    # An official's session cannot reach the form at all (no UI login for non-archivists).
    async with await browser(review_stack) as session:
        resp = await login(session, review_stack, "minister")
        assert resp.status == 403


@pytest.fixture
async def bridge(homeserver: RunningHomeserver) -> AsyncIterator[Settings]:
    """A bridge over the live archive, talking to the live archiver's control endpoint."""
    hs = homeserver.settings
    settings = dataclasses.replace(hs, bridge_port=free_port(),
                                   archiver_metrics_port=hs.metrics_port)
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.bind_host, settings.bridge_port).start()
    try:
        yield settings
    finally:
        await runner.cleanup()


async def _api(http: aiohttp.ClientSession, method: str, url: str, token: str,
               **kw: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
    async with http.request(method, url, headers=headers, **kw) as resp:
        return resp.status, await resp.json(content_type=None)


@pytest.mark.usefixtures("live_archiver")
async def test_sender_export_uploaded_through_api_and_ui_opens_every_message(
    homeserver: RunningHomeserver, bridge: Settings, tmp_path: Path
) -> None:
    data_dir = homeserver.settings.data_dir
    minister = await E2EUser(homeserver, "minister", tmp_path / "minister").start()
    official = await E2EUser(homeserver, "ambtenaar2", tmp_path / "ambtenaar2").start()
    try:
        api_race = await reproduce_race(homeserver, minister, official, "Upload via API")
        ui_race = await reproduce_race(homeserver, minister, official, "Upload via UI")
        export = tmp_path / "keys.txt"
        await minister.client.export_keys(str(export), PASSPHRASE)
    finally:
        await minister.close()
        await official.close()
    data = export.read_bytes()

    async with aiohttp.ClientSession() as http:
        token = await matrix_login(http, homeserver, "archivaris")
        room = quote(api_race.room_id, safe="")
        keys_url = f"{bridge.bridge_url}/api/v1/rooms/{room}/keys"
        _, imports_before = await archive_state(data_dir, api_race.room_id)
        status, body = await _api(http, "POST", keys_url, token,
                                  data=upload_form(data, "verkeerd wachtwoord"))
        assert status == 400, body
        assert "passphrase" in body["error"]
        undecryptable, imports = await archive_state(data_dir, api_race.room_id)
        assert undecryptable == 2
        assert len(imports) == len(imports_before)

        status, body = await _api(http, "POST", keys_url, token,
                                  data=upload_form(data, PASSPHRASE),
                                  headers={"X-Rijkschat-Purpose": "herstel na sleutelrace"})
        assert status == 200, body
        assert body["events_decrypted"] == 2
        assert body["keys_used"] == 1
        assert body["keys_read"] >= 2  # the file holds the other room's session too
        assert sum(body["ignored"].values()) == body["keys_read"] - 1
        # The other room (same file) is untouched: its upload is its own decision.
        assert (await archive_state(data_dir, ui_race.room_id))[0] == 2

        status, body = await _api(http, "GET", f"{bridge.bridge_url}/api/v1/rooms/{room}/events",
                                  token)
        events = {e["event_id"]: e for e in body["events"]}
        for event_id in api_race.early:
            assert events[event_id]["decryption"] == "decrypted"
            assert events[event_id]["content"]["body"] == api_race.bodies[event_id]
            assert events[event_id]["key_provenance"] == "imported"
            assert events[event_id]["imported_key"]["imported_by"] == homeserver.user_id(
                "archivaris")
            assert events[event_id]["imported_key"]["via"] == "review"
        assert events[api_race.later]["key_provenance"] == "room_key"
        status, body = await _api(http, "GET", f"{bridge.bridge_url}/api/v1/rooms", token)
        rooms = {r["room_id"]: r for r in body["rooms"]}
        assert rooms[api_race.room_id]["undecryptable"] == 0
        first = api_race.bodies[api_race.early[0]]
        status, body = await _api(
            http, "GET", f"{bridge.bridge_url}/api/v1/search?q={quote(first)}&room={room}", token)
        assert [h["event"]["event_id"] for h in body["hits"]] == [api_race.early[0]]
        status, body = await _api(http, "GET",
                                  f"{bridge.bridge_url}/api/v1/rooms/{room}/verify", token)
        assert body["ok"] is True
        status, body = await _api(http, "GET", f"{bridge.bridge_url}/api/v1/audit?limit=200",
                                  token)
        imported = [e for e in body["entries"] if e["action"] == "import_keys"]
        assert imported[0]["user_id"] == homeserver.user_id("archivaris")
        assert imported[0]["details"]["events_decrypted"] == 2
        assert "herstel na sleutelrace" in imported[0]["purpose"]

    # The same file through the web UI, for the other room.
    async with aiohttp.ClientSession(base_url=bridge.bridge_url,
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get("/archief/inloggen") as resp:
            login_csrf = csrf_of(await resp.text())
        async with session.post("/archief/inloggen", allow_redirects=False, data={
            "csrf": login_csrf, "gebruikersnaam": "archivaris",
            "wachtwoord": homeserver.password("archivaris"), "doel": "sleutelimport",
        }) as resp:
            assert resp.status == 303
        room_url = f"/archief/kamers/{quote(ui_race.room_id, safe='')}"
        async with session.get(room_url) as resp:
            html = await resp.text()
        assert "2 niet ontsleuteld</span>" in html
        assert "kon (nog) niet worden ontsleuteld" in html
        csrf = csrf_of(html)
        async with session.post(room_url + "/sleutels",
                                data=upload_form(data, PASSPHRASE, csrf, "wachtwoord")) as resp:
            html = await resp.text()
            assert resp.status == 200, html
        assert '<td class="decrypted-count">2</td>' in html
        async with session.get(room_url) as resp:
            html = await resp.text()
        assert "niet ontsleuteld</span>" not in html
        assert "kon (nog) niet worden ontsleuteld" not in html
        assert html.count("geïmporteerde sleutel</span>") == 2
        for event_id in ui_race.early:
            assert ui_race.bodies[event_id] in html
        async with session.get(f"/archief/gebeurtenissen/{quote(ui_race.early[0], safe='')}") \
                as resp:
            html = await resp.text()
        assert "Sleutelherkomst" in html
        assert homeserver.user_id("archivaris") in html
    undecryptable, _ = await archive_state(data_dir, ui_race.room_id)
    assert undecryptable == 0
