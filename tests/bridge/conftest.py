"""A stack of its own for the bridge tests: the bridge (in this process) first, then a real
Synapse that loads the archiver policy module (enforce mode) and the ledger's AS registration.

The bridge listens before Synapse starts, so the homeserver never marks the ledger as down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from server_bridge.appservice.registration import BridgePaths, load_tokens
from server_bridge.appservice.routes import LEDGER
from server_bridge.appservice.service import LedgerService
from server_bridge.process import terminate
from server_bridge.settings import Settings
from server_bridge.web.app import create_app
from tests.helpers import RunningHomeserver, free_port, start_homeserver


class MatrixUser:
    """A logged-in test user over plain HTTP (no encryption needed for policy tests)."""

    def __init__(self, hs: RunningHomeserver, session: aiohttp.ClientSession, localpart: str):
        self.hs = hs
        self.session = session
        self.user_id = hs.user_id(localpart)
        self.localpart = localpart
        self.token = ""
        self._txn = 0

    async def login(self) -> MatrixUser:
        status, body = await self.call(
            "POST",
            "/login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": self.user_id},
                "password": self.hs.password(self.localpart),
            },
        )
        assert status == 200, body
        self.token = body["access_token"]
        return self

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        url = f"{self.hs.url}/_matrix/client/v3{path}"
        async with self.session.request(method, url, json=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def create_room(self, **body: Any) -> str:
        status, data = await self.call("POST", "/createRoom", body)
        assert status == 200, data
        return str(data["room_id"])

    async def send(
        self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message"
    ) -> tuple[int, dict[str, Any]]:
        self._txn += 1
        path = f"/rooms/{room_id}/send/{event_type}/t{self._txn}"
        return await self.call("PUT", path, content)

    async def text(self, room_id: str, body: str) -> tuple[int, dict[str, Any]]:
        return await self.send(room_id, {"msgtype": "m.text", "body": body})

    async def text_when_archived(self, room_id: str, body: str) -> str:
        """Send a text, retrying while enforce mode refuses it (the archiver is joining)."""
        deadline = time.monotonic() + 60  # bounds a failure on a loaded machine
        while time.monotonic() < deadline:
            status, data = await self.text(room_id, body)
            if status == 200:
                return str(data["event_id"])
            assert status == 403, data
            await asyncio.sleep(0.05)
        raise AssertionError(f"the archiver never joined {room_id}")

    async def membership(self, room_id: str, user_id: str) -> str | None:
        status, data = await self.call("GET", f"/rooms/{room_id}/state/m.room.member/{user_id}")
        return str(data["membership"]) if status == 200 else None

    async def state(self, room_id: str, event_type: str, state_key: str = "") -> dict[str, Any]:
        status, data = await self.call("GET", f"/rooms/{room_id}/state/{event_type}/{state_key}")
        return data if status == 200 else {}

    async def membership_change(
        self, room_id: str, action: str, user_id: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        body = {"user_id": user_id} if user_id else {}
        return await self.call("POST", f"/rooms/{room_id}/{action}", body)


@dataclass
class Stack:
    hs: RunningHomeserver
    app: web.Application
    session: aiohttp.ClientSession

    @property
    def settings(self) -> Settings:
        return self.hs.settings

    @property
    def archiver(self) -> str:
        return self.settings.archiver_user_id()

    @property
    def service(self) -> LedgerService:
        return self.app[LEDGER]

    @property
    def hs_token(self) -> str:
        return load_tokens(BridgePaths.for_data_dir(self.settings.data_dir)).hs_token

    async def user(self, localpart: str) -> MatrixUser:
        return await MatrixUser(self.hs, self.session, localpart).login()


@pytest.fixture(scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    data_dir = tmp_path_factory.mktemp("bridge-stack")
    settings = Settings(
        data_dir=data_dir,
        server_name="test.localhost",
        homeserver_port=free_port(),
        bridge_port=free_port(),
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    settings.save()
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.bind_host, settings.bridge_port).start()
    try:
        hs = await start_homeserver(
            data_dir, archiving_mode="enforce", ledger=True, settings=settings
        )
        try:
            async with aiohttp.ClientSession() as session:
                yield Stack(hs, app, session)
        finally:
            await terminate("homeserver", hs.proc)
    finally:
        await runner.cleanup()
