"""Gap-free: events the homeserver accepted while the bridge was down reach the ledger once
it is back, because Synapse keeps every transaction that did not get a 200."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp import web

from server_bridge.appservice.routes import LEDGER
from server_bridge.process import terminate
from server_bridge.settings import Settings
from server_bridge.web.app import create_app
from tests.bridge.conftest import MatrixUser
from tests.helpers import free_port, start_homeserver


async def test_events_sent_while_the_bridge_was_down_reach_the_ledger(tmp_path: Path) -> None:
    data_dir = tmp_path / "gapfree"
    settings = Settings(
        data_dir=data_dir,
        server_name="test.localhost",
        homeserver_port=free_port(),
        bridge_port=free_port(),
    )
    hs = await start_homeserver(
        data_dir, archiving_mode="enforce", ledger=True, settings=settings
    )
    runner: web.AppRunner | None = None
    try:
        async with aiohttp.ClientSession() as session:
            minister = await MatrixUser(hs, session, "minister").login()
            room_id = await minister.create_room(name="Terwijl de brug plat ligt")
            sent = {await minister.text_when_archived(room_id, f"bericht {n}") for n in range(3)}
        await asyncio.sleep(0.5)  # Synapse has tried, failed, and backs off

        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, settings.bind_host, settings.bridge_port).start()
        for _ in range(300):
            rows = (await app[LEDGER].ledger.rows_by_room()).get(room_id, [])
            if sent <= {r.event_id for r in rows}:
                break
            await asyncio.sleep(0.1)
        assert sent <= {r.event_id for r in rows}
    finally:
        if runner is not None:
            await runner.cleanup()
        await terminate("homeserver", hs.proc)
