"""Talk to the homeserver over its client-server and admin APIs (HTTP only)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import Any

import aiohttp

from server_bridge.errors import HomeserverTimeoutError, ProvisioningError

log = logging.getLogger(__name__)


async def wait_until_up(
    session: aiohttp.ClientSession, base_url: str, within: float, alive: Any = None
) -> None:
    """Poll /_matrix/client/versions until it answers 200.

    `alive` is an optional callable returning False when the process has died, to fail fast.
    """
    deadline = time.monotonic() + within
    url = f"{base_url}/_matrix/client/versions"
    while True:
        if alive is not None and not alive():
            raise ProvisioningError("the homeserver exited during start-up")
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                if resp.status == 200:
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        if time.monotonic() >= deadline:
            raise HomeserverTimeoutError(
                f"the homeserver did not answer at {base_url} within {within:.0f} s"
            )
        await asyncio.sleep(0.2)


async def register_user(
    session: aiohttp.ClientSession,
    base_url: str,
    shared_secret: str,
    localpart: str,
    password: str,
    display_name: str,
    admin: bool = False,
) -> bool:
    """Register with the shared-secret admin API. True when created, False if it existed."""
    url = f"{base_url}/_synapse/admin/v1/register"
    async with session.get(url) as resp:
        nonce = (await resp.json())["nonce"]
    # Synapse's MAC: HMAC-SHA1 over nonce, user, password and admin flag joined by NULs.
    parts = (nonce, localpart, password, "admin" if admin else "notadmin")
    mac = hmac.new(shared_secret.encode(), b"\x00".join(p.encode() for p in parts), hashlib.sha1)
    body = {
        "nonce": nonce,
        "username": localpart,
        "password": password,
        "displayname": display_name,
        "admin": admin,
        "mac": mac.hexdigest(),
    }
    async with session.post(url, json=body) as resp:
        if resp.status == 200:
            return True
        data = await resp.json(content_type=None)
        if data.get("errcode") == "M_USER_IN_USE":
            return False
        raise ProvisioningError(
            f"registering @{localpart} failed: {resp.status} {data.get('errcode')} "
            f"{data.get('error', '')}"
        )


async def login(
    session: aiohttp.ClientSession,
    base_url: str,
    user_id: str,
    password: str,
    device_id: str | None = None,
    device_name: str | None = None,
) -> dict[str, Any]:
    """Password login; returns the response (access_token, device_id, user_id)."""
    body: dict[str, Any] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
    }
    if device_id:
        body["device_id"] = device_id
    if device_name:
        body["initial_device_display_name"] = device_name
    async with session.post(f"{base_url}/_matrix/client/v3/login", json=body) as resp:
        data: dict[str, Any] = await resp.json(content_type=None)
        if resp.status != 200:
            raise ProvisioningError(
                f"login as {user_id} failed: {resp.status} {data.get('errcode')}"
            )
        return data


async def logout(session: aiohttp.ClientSession, base_url: str, access_token: str) -> None:
    async with session.post(
        f"{base_url}/_matrix/client/v3/logout",
        headers={"Authorization": f"Bearer {access_token}"},
        json={},
    ):
        pass
