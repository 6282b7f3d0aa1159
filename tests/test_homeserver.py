"""The real homeserver from our generator: users provisioned, sovereign behaviour observable."""

from __future__ import annotations

import aiohttp

from server_bridge.homeserver.admin import login
from tests.helpers import TEST_ROSTER, RunningHomeserver


async def test_every_provisioned_user_can_log_in(homeserver: RunningHomeserver) -> None:
    async with aiohttp.ClientSession() as session:
        for entry in TEST_ROSTER.with_archiver():
            account = homeserver.accounts[entry.localpart]
            assert len(account.password) >= 20
            data = await login(session, homeserver.url, account.user_id, account.password)
            assert data["user_id"] == account.user_id


async def test_open_registration_and_federation_are_off(homeserver: RunningHomeserver) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{homeserver.url}/_matrix/client/v3/register",
            json={"username": "intruder", "password": "x" * 20, "auth": {"type": "m.login.dummy"}},
        ) as resp:
            assert resp.status == 403
            assert (await resp.json())["errcode"] == "M_FORBIDDEN"
        async with session.get(f"{homeserver.url}/_matrix/federation/v1/version") as resp:
            assert resp.status == 404
        async with session.get(f"{homeserver.url}/_matrix/key/v2/server") as resp:
            assert resp.status == 404


async def test_rooms_are_encrypted_by_default(homeserver: RunningHomeserver) -> None:
    async with aiohttp.ClientSession() as session:
        data = await login(
            session,
            homeserver.url,
            homeserver.user_id("ambtenaar1"),
            homeserver.password("ambtenaar1"),
        )
        headers = {"Authorization": f"Bearer {data['access_token']}"}
        async with session.post(
            f"{homeserver.url}/_matrix/client/v3/createRoom", json={"name": "t"}, headers=headers
        ) as resp:
            room_id = (await resp.json())["room_id"]
        async with session.get(
            f"{homeserver.url}/_matrix/client/v3/rooms/{room_id}/state/m.room.encryption/",
            headers=headers,
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["algorithm"] == "m.megolm.v1.aes-sha2"
