"""The catch-up reads the homeserver's timeline of the archived rooms (with the AS token,
acting as the archiver) and records what the ledger lacks, from the archiver's join on."""

from __future__ import annotations

from pathlib import Path

from server_bridge.appservice.catchup import CatchUp
from server_bridge.appservice.ledger import CATCH_UP_TXN, Ledger
from server_bridge.appservice.registration import BridgePaths, load_tokens
from tests.bridge.conftest import Stack
from tests.e2e_client import wait_for


async def test_the_catch_up_records_what_the_ledger_lacks(stack: Stack, tmp_path: Path) -> None:
    minister, amb = await stack.user("minister"), await stack.user("ambtenaar2")
    # Created by an official: its first events are before the archiver's join.
    room_id = await amb.create_room(name="Inhalen", invite=[minister.user_id])
    status, body = await minister.call("POST", f"/rooms/{room_id}/join", {})
    assert status == 200, body
    sent = [await minister.text_when_archived(room_id, f"bericht {n}") for n in range(3)]

    # A ledger that received nothing (as if every push had been lost).
    ledger = await Ledger.open(tmp_path / "ledger.db")
    tokens = load_tokens(BridgePaths.for_data_dir(stack.settings.data_dir))
    added: list[int] = []
    catch_up = CatchUp(ledger, stack.settings.homeserver_url, tokens.as_token, stack.archiver,
                       added.append)
    try:
        async def caught_up() -> bool:
            # Events younger than 5 s are left to the push: poll until these are older.
            await catch_up.run_once()
            rows = (await ledger.rows_by_room()).get(room_id, [])
            return set(sent) <= {r.event_id for r in rows}

        await wait_for(caught_up, timeout=60, interval=1.0)
        rows = (await ledger.rows_by_room())[room_id]
        types = [r.type for r in rows]
        # From the archiver's join on, and nothing before it (the room's creation).
        assert "m.room.create" not in types
        joins = [r for r in rows if r.state_key == stack.archiver and r.membership == "join"]
        assert len(joins) == 1
        assert all(r.origin_server_ts >= joins[0].origin_server_ts for r in rows)
        log = await ledger.transactions()
        assert {t["txn_id"] for t in log} == {CATCH_UP_TXN}
        assert sum(added) == await ledger.event_count()
        # The same events again: nothing new.
        assert await catch_up.run_once() == 0
        # The session's ledger had them all from the pushes.
        pushed = (await stack.service.ledger.rows_by_room())[room_id]
        assert {r.event_id for r in rows} <= {r.event_id for r in pushed}
    finally:
        await ledger.close()
