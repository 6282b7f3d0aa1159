"""The transaction endpoint asks the homeserver to resend what it holds when the numbering
skips ahead (a transaction created but never sent before Synapse stopped), on a bridge of its
own (no homeserver: the deliveries are played by the test)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from server_bridge.appservice.registration import BridgePaths, load_tokens
from server_bridge.appservice.routes import LEDGER
from server_bridge.settings import Settings
from server_bridge.web.app import create_app
from tests.helpers import free_port


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[tuple[web.Application, Settings]]:
    settings = Settings(data_dir=tmp_path / "data", server_name="test.localhost",
                        homeserver_port=free_port(), bridge_port=free_port())
    settings.data_dir.mkdir()
    settings.save()
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.bind_host, settings.bridge_port).start()
    try:
        yield app, settings
    finally:
        await runner.cleanup()


def body(n: int) -> bytes:
    return json.dumps({"events": [{
        "event_id": f"$n{n}", "room_id": "!nummering:test.localhost",
        "sender": "@minister:test.localhost", "type": "m.room.message",
        "origin_server_ts": 1_800_000_000_000 + n, "content": {"body": "geheim"},
    }]}).encode()


async def test_skipped_transaction_ids_get_a_503_after_the_commit(
    bridge: tuple[web.Application, Settings], caplog: pytest.LogCaptureFixture
) -> None:
    app, settings = bridge
    token = load_tokens(BridgePaths.for_data_dir(settings.data_dir)).hs_token
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def put(txn: str, n: int) -> int:
        url = f"{settings.bridge_url}/_matrix/app/v1/transactions/{txn}"
        async with aiohttp.ClientSession() as session, session.put(
            url, data=body(n), headers=headers
        ) as resp:
            return resp.status

    assert await put("16", 16) == 200
    with caplog.at_level(logging.WARNING, logger="server_bridge.appservice"):
        assert await put("18", 18) == 503  # 17 was created but never sent
    assert "does not follow 16" in caplog.text
    assert "geheim" not in caplog.text
    ledger = app[LEDGER].ledger
    # Committed all the same: the 503 only makes Synapse's recoverer resend.
    rows = (await ledger.rows_by_room())["!nummering:test.localhost"]
    assert "$n18" in {r.event_id for r in rows}
    # The recoverer: the held-back 17, then 18 again, then on as usual.
    assert [await put("17", 17), await put("18", 18), await put("19", 19)] == [200, 200, 200]
    # Synapse on SQLite starting again at 1 after a restart with nothing pending: fine.
    assert await put("1", 20) == 200
    rows = (await ledger.rows_by_room())["!nummering:test.localhost"]
    assert [r.event_id for r in rows] == ["$n16", "$n18", "$n17", "$n19", "$n20"]
