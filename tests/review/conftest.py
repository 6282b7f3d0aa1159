"""Fixtures of the review tests: a deterministic archive written through the store's own
writer API (a big room for pagination, a showcase room with every kind of message), the
bridge app serving it, and real Matrix tokens from the session's Synapse."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from archiver_bot.archive import ArchivePaths, EventRecord, open_archive
from server_bridge.settings import Settings
from server_bridge.web.app import create_app
from tests.helpers import RunningHomeserver, free_port

BASE_TS = 1_767_254_400_000  # 2026-01-01T08:00:00Z
BIG_EVENTS = 3000
XSS_SCRIPT = "<script>window.__pwned = 'script'</script> let op"
XSS_IMG = "<img src=x onerror=\"window.__pwned = 'img'\"> foto"
PDF_BYTES = b"%PDF-1.4\n" + bytes(range(256)) * 40
PNG_BYTES = bytes.fromhex(  # a valid 4x4 RGB image (it is embedded in Woo packages)
    "89504e470d0a1a0a0000000d4948445200000004000000040802000000269309290000001449444154"
    "789c633c2127c700034c0c48003707003476010caf6ab9b50000000049454e44ae426082"
)


@dataclass
class ReviewArchive:
    data_dir: Path
    server: str
    big_room: str
    room: str
    other_room: str
    ids: dict[str, str]  # label -> event id of the showcase room

    def user(self, localpart: str) -> str:
        return f"@{localpart}:{self.server}"


def _ev(n: int, room: str, sender: str, content: dict[str, Any], *, ts: int | None = None,
        type_: str = "m.room.message", state_key: str | None = None,
        decryption: str = "decrypted", **extra: Any) -> EventRecord:
    return EventRecord(
        event_id=f"$r{n}-{room[1:4]}",
        room_id=room,
        sender=sender,
        origin_server_ts=BASE_TS + n * 60_000 if ts is None else ts,
        type=type_,
        content=content,
        state_key=state_key,
        decryption=decryption,  # type: ignore[arg-type]
        sender_device="DEVICE1",
        sender_key="curve-key",
        session_id="megolm-1",
        encrypted={"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": f"AwgA{n}"}
        if decryption != "plaintext" else None,
        **extra,
    )


def showcase_events(room: str, server: str) -> tuple[list[EventRecord], dict[str, str]]:
    minister, sg, amb = (f"@{x}:{server}" for x in ("minister", "sg", "ambtenaar1"))
    events: list[EventRecord] = []
    ids: dict[str, str] = {}

    def add(label: str, sender: str, content: dict[str, Any], **kw: Any) -> str:
        record = _ev(len(events) + 1, room, sender, content, **kw)
        events.append(record)
        ids[label] = record.event_id
        return record.event_id

    add("create", minister, {"creator": minister}, type_="m.room.create", state_key="",
        decryption="plaintext")
    for who in (minister, sg, amb):
        add(f"join-{who}", who, {"membership": "join"}, type_="m.room.member", state_key=who,
            decryption="plaintext")
    add("name", minister, {"name": "Kabinetsberaad"}, type_="m.room.name", state_key="",
        decryption="plaintext")
    first = add("first", minister, {"msgtype": "m.text",
                                    "body": "Goedemorgen, de begroting staat op de agenda."})
    add("reply", sg, {
        "msgtype": "m.text",
        "body": "> <@minister> Goedemorgen, de begroting staat op de agenda.\n\n"
                "Akkoord, ik breng de cijfers mee.",
        "m.relates_to": {"m.in_reply_to": {"event_id": first}},
    })
    add("script", amb, {"msgtype": "m.text", "body": XSS_SCRIPT})
    add("img", amb, {"msgtype": "m.text", "body": XSS_IMG})
    add("formatted", sg, {
        "msgtype": "m.text",
        "body": "Zie het *concept* voor de begroting",
        "format": "org.matrix.custom.html",
        "formatted_body": "Zie het <b>concept</b> voor de begroting"
                          "<script>window.__pwned='fmt'</script>"
                          "<img src=x onerror=\"window.__pwned='fmtimg'\">"
                          " <a href=\"javascript:window.__pwned='link'\">klik</a>",
    })
    edited = add("edited", minister, {"msgtype": "m.text", "body": "Vergadering om 10 uur"})
    add("edit", minister, {
        "msgtype": "m.text", "body": "* Vergadering om 11 uur",
        "m.new_content": {"msgtype": "m.text", "body": "Vergadering om 11 uur"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": edited},
    })
    add("reaction", sg, {"m.relates_to": {"rel_type": "m.annotation", "event_id": edited,
                                          "key": "✓"}}, type_="m.reaction")
    add("reaction2", amb, {"m.relates_to": {"rel_type": "m.annotation", "event_id": edited,
                                           "key": "✓"}}, type_="m.reaction")
    secret = add("redacted", amb, {"msgtype": "m.text",
                                   "body": "Het vertrouwelijke memo over de fusie"})
    add("redaction", amb, {"reason": "per ongeluk verstuurd"}, type_="m.room.redaction",
        redacts=secret)
    root = add("thread-root", minister, {"msgtype": "m.text", "body": "Wie leidt de werkgroep?"})
    add("thread-reply", sg, {
        "msgtype": "m.text", "body": "Dat doe ik, de werkgroep start maandag.",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root, "is_falling_back": True,
                         "m.in_reply_to": {"event_id": root}},
    })
    add("pdf", amb, {"msgtype": "m.file", "body": "nota begroting.pdf",
                     "filename": "nota begroting.pdf",
                     "info": {"mimetype": "application/pdf", "size": len(PDF_BYTES)}})
    add("png", amb, {"msgtype": "m.image", "body": "grafiek.png", "filename": "grafiek.png",
                     "info": {"mimetype": "image/png", "size": len(PNG_BYTES)}})
    add("undecryptable", sg, {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAzz"},
        type_="m.room.encrypted", decryption="undecryptable")
    add("cafe", minister, {"msgtype": "m.text", "body": "Één café-overleg over de e-mail"})
    return events, ids


async def build_archive(data_dir: Path, server: str) -> ReviewArchive:
    paths = ArchivePaths.for_data_dir(data_dir)
    big_room = f"!groot:{server}"
    room = f"!kabinet:{server}"
    other_room = f"!overig:{server}"
    archive = await open_archive(paths)
    try:
        sender = f"@ambtenaar2:{server}"
        batch: list[EventRecord] = []
        for n in range(BIG_EVENTS):
            # every fifth pair shares a timestamp: ordering must stay stable on ties
            ts = BASE_TS + (n - n % 2 if n % 5 == 0 else n) * 1000
            batch.append(_ev(10_000 + n, big_room, sender,
                             {"msgtype": "m.text", "body": f"bericht {n} over de planning"},
                             ts=ts))
            if len(batch) == 500:
                await archive.ingest(batch)
                batch = []
        if batch:
            await archive.ingest(batch)
        await archive.set_room_info(big_room, name="Grote kamer",
                                    members=[sender, f"@sg:{server}"],
                                    key_officials=[f"@sg:{server}"])
        events, ids = showcase_events(room, server)
        result = await archive.ingest(events)
        assert not result.rejected, result.rejected
        await archive.store_attachment(ids["pdf"], room, PDF_BYTES, "nota begroting.pdf",
                                       "application/pdf", True)
        await archive.store_attachment(ids["png"], room, PNG_BYTES, "grafiek.png",
                                       "image/png", True)
        await archive.set_room_info(
            room, name="Kabinetsberaad",
            members=[f"@minister:{server}", f"@sg:{server}", f"@ambtenaar1:{server}"],
            key_officials=[f"@minister:{server}", f"@sg:{server}"],
        )
        await archive.ingest([_ev(90_000, other_room, f"@ambtenaar3:{server}",
                                  {"msgtype": "m.text", "body": "Lunch om twaalf uur"})])
        await archive.set_room_info(other_room, name="Overig overleg",
                                    members=[f"@ambtenaar3:{server}"])
        await archive.set_legal_hold(other_room, True, "Woo-verzoek 2026-17")
    finally:
        await archive.close()
    return ReviewArchive(data_dir, server, big_room, room, other_room, ids)


@dataclass
class ReviewStack:
    archive: ReviewArchive
    settings: Settings
    app: web.Application
    session: aiohttp.ClientSession
    tokens: dict[str, str]
    hs: RunningHomeserver

    @property
    def url(self) -> str:
        return self.settings.bridge_url

    async def get(self, path: str, who: str | None = "archivaris",
                  **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = dict(kw.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(who, who)}"
        async with self.session.get(self.url + path, headers=headers, **kw) as resp:
            raw = await resp.read()
            try:
                body: Any = await resp.json(content_type=None)
            except ValueError:
                body = raw
            return resp.status, body, resp


async def matrix_login(session: aiohttp.ClientSession, hs: RunningHomeserver,
                       localpart: str) -> str:
    async with session.post(
        f"{hs.url}/_matrix/client/v3/login",
        json={"type": "m.login.password",
              "identifier": {"type": "m.id.user", "user": hs.user_id(localpart)},
              "password": hs.password(localpart)},
    ) as resp:
        body = await resp.json()
        assert resp.status == 200, body
        return str(body["access_token"])


@pytest.fixture(scope="session")
async def review_stack(
    homeserver: RunningHomeserver, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ReviewStack]:
    data_dir = tmp_path_factory.mktemp("review")
    hs_settings = homeserver.settings
    settings = Settings(
        data_dir=data_dir,
        server_name=hs_settings.server_name,
        homeserver_port=hs_settings.homeserver_port,
        bridge_port=free_port(),
    )
    settings.save()
    shutil.copy(hs_settings.data_dir / "roster.json", data_dir / "roster.json")
    archive = await build_archive(data_dir, hs_settings.server_name)
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.bind_host, settings.bridge_port).start()
    try:
        async with aiohttp.ClientSession() as session:
            tokens = {who: await matrix_login(session, homeserver, who)
                      for who in ("archivaris", "minister", "ambtenaar1")}
            yield ReviewStack(archive, settings, app, session, tokens, homeserver)
    finally:
        await runner.cleanup()
