"""GET /healthz: 200 only when the homeserver, the archiver and the bridge are all up.

Unauthenticated on purpose (a liveness probe), so it names component states only.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from server_bridge.web.keys import HTTP, SETTINGS

# The archiver long-polls for 30 s, so a heartbeat older than this means it is stuck.
ARCHIVER_STALE_AFTER = 90.0


async def _homeserver_state(app: web.Application) -> str:
    url = f"{app[SETTINGS].homeserver_url}/_matrix/client/versions"
    try:
        async with app[HTTP].get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return "up" if resp.status == 200 else f"http {resp.status}"
    except (aiohttp.ClientError, TimeoutError):
        return "down"


def _archiver_state(app: web.Application) -> str:
    path = app[SETTINGS].archiver_dir / "status.json"
    try:
        status: dict[str, Any] = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return "down"
    state = str(status.get("state", "unknown"))
    if state == "syncing":
        age = time.time() - float(status.get("last_sync_at", 0))
        return "syncing" if age < ARCHIVER_STALE_AFTER else "stale"
    return state


async def healthz(request: web.Request) -> web.Response:
    components = {
        "homeserver": await _homeserver_state(request.app),
        "archiver": _archiver_state(request.app),
        "bridge": "up",
    }
    healthy = components["homeserver"] == "up" and components["archiver"] == "syncing"
    body = {"status": "ok" if healthy else "unavailable", "components": components}
    return web.json_response(body, status=200 if healthy else 503)
