"""At start the module brings existing rooms in line: a new key official's rooms get the
archiver (a homeserver of its own, restarted with a changed roster)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from server_bridge.policy.config import ARCHIVING_STATE_TYPE
from server_bridge.process import terminate
from server_bridge.roster import Role, Roster, RosterEntry
from tests.bridge.conftest import MatrixUser
from tests.helpers import TEST_ROSTER, start_homeserver

DEADLINE = 60.0  # bounds a failure on a loaded machine; measures nothing


def promoted(roster: Roster, localpart: str) -> Roster:
    return Roster(
        tuple(
            RosterEntry(e.localpart, e.display_name, Role.KEY_OFFICIAL)
            if e.localpart == localpart
            else e
            for e in roster.entries
        )
    )


async def test_a_new_key_officials_rooms_get_the_archiver_at_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "reconcile"
    hs = await start_homeserver(data_dir, TEST_ROSTER, archiving_mode="enforce")
    archiver = hs.settings.archiver_user_id()
    try:
        async with aiohttp.ClientSession() as session:
            amb3 = await MatrixUser(hs, session, "ambtenaar3").login()
            amb2 = await MatrixUser(hs, session, "ambtenaar2").login()
            room_id = await amb3.create_room(name="Dossier", invite=[amb2.user_id])
            assert (await amb2.call("POST", f"/rooms/{room_id}/join", {}))[0] == 200
            assert (await amb3.text(room_id, "nog geen sleutelfunctionaris"))[0] == 200
            assert await amb3.membership(room_id, archiver) is None
    finally:
        await terminate("homeserver", hs.proc)

    # ambtenaar3 is promoted to key official; the homeserver starts with the new roster.
    hs = await start_homeserver(
        data_dir, promoted(TEST_ROSTER, "ambtenaar3"), archiving_mode="enforce",
        settings=hs.settings,
    )
    try:
        async with aiohttp.ClientSession() as session:
            amb3 = await MatrixUser(hs, session, "ambtenaar3").login()
            deadline = time.monotonic() + DEADLINE
            while await amb3.membership(room_id, archiver) != "join":
                assert time.monotonic() < deadline, "the archiver never joined"
                await asyncio.sleep(0.1)
            while not await amb3.state(room_id, ARCHIVING_STATE_TYPE):
                assert time.monotonic() < deadline, "no archiving notice"
                await asyncio.sleep(0.1)
            assert (await amb3.state(room_id, ARCHIVING_STATE_TYPE))["archiver"] == archiver
            assert (await amb3.text(room_id, "nu wel gearchiveerd"))[0] == 200
        # The homeserver's log is the proof, without a sleep: the first run (complete, since
        # that homeserver has stopped) never brought the archiver in; the reconciliation at the
        # second start did, once.
        log = (hs.settings.homeserver_dir / "homeserver.log").read_text(errors="replace")
        joined = [line for line in log.splitlines() if f"archiver joined {room_id}" in line]
        assert len(joined) == 1, joined
        assert "rijkschat_archiver_reconcile_start" in joined[0]
        assert log.index(joined[0]) > log.rindex("archiver policy loaded")
    finally:
        await terminate("homeserver", hs.proc)
