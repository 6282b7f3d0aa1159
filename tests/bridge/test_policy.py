"""The archiver policy module inside a real Synapse (enforce mode)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote

from server_bridge.policy.config import ARCHIVING_STATE_TYPE
from tests.bridge.conftest import MatrixUser, Stack

# The module acts in the background within milliseconds; the deadline only bounds a failure
# on a loaded machine, it measures nothing.
DEADLINE = 60.0


async def wait_until_archiver_joined(user: MatrixUser, room_id: str, archiver: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while await user.membership(room_id, archiver) != "join":
        assert time.monotonic() < deadline, f"archiver not joined {room_id} within {DEADLINE} s"
        await asyncio.sleep(0.05)


async def member_events(user: MatrixUser, room_id: str) -> list[dict[str, Any]]:
    """Every membership event of the room, oldest first."""
    only = quote(json.dumps({"types": ["m.room.member"]}))
    status, body = await user.call(
        "GET", f"/rooms/{room_id}/messages?dir=f&limit=1000&filter={only}"
    )
    assert status == 200, body
    events: list[dict[str, Any]] = body["chunk"]
    return events


async def homeserver_logged(stack: Stack, text: str) -> None:
    log = stack.settings.homeserver_dir / "homeserver.log"
    deadline = time.monotonic() + DEADLINE
    while text not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"the homeserver never logged {text!r}"
        await asyncio.sleep(0.1)


async def assert_archiver_came_after(
    user: MatrixUser, room_id: str, archiver: str, key_official: str
) -> None:
    """The room's history shows the archiver only after the key official: proof, without a
    sleep, that the room had no archiver while only officials were in it."""
    order = [e["state_key"] for e in await member_events(user, room_id)]
    assert archiver in order, order
    assert key_official in order, order
    assert order.index(key_official) < order.index(archiver), order


async def test_key_official_room_gets_the_archiver_and_a_transparency_notice(
    stack: Stack,
) -> None:
    minister = await stack.user("minister")
    room_id = await minister.create_room(name="Kabinetsoverleg")
    await wait_until_archiver_joined(minister, room_id, stack.archiver)

    async def notice() -> dict[str, object]:
        deadline = time.monotonic() + DEADLINE
        while not (content := await minister.state(room_id, ARCHIVING_STATE_TYPE)):
            assert time.monotonic() < deadline, "no archiving notice"
            await asyncio.sleep(0.05)
        return content

    content = await notice()
    assert content["archived"] is True
    assert content["archiver"] == stack.archiver
    assert content["retention_class"] == "bewaren"
    # Nobody can rewrite the notice to hide the archiving.
    status, body = await minister.call(
        "PUT", f"/rooms/{room_id}/state/{ARCHIVING_STATE_TYPE}/", {"archived": False}
    )
    assert status == 403
    assert (await minister.state(room_id, ARCHIVING_STATE_TYPE))["archived"] is True


async def test_inviting_a_key_official_brings_the_archiver_in(stack: Stack) -> None:
    amb = await stack.user("ambtenaar1")
    room_id = await amb.create_room(name="Voorbereiding")
    assert await amb.membership(room_id, stack.archiver) is None
    sg = stack.hs.user_id("sg")
    status, _ = await amb.membership_change(room_id, "invite", sg)
    assert status == 200
    await wait_until_archiver_joined(amb, room_id, stack.archiver)
    await assert_archiver_came_after(amb, room_id, stack.archiver, sg)


async def test_rooms_of_officials_only_never_see_the_archiver(stack: Stack) -> None:
    amb1, amb2 = await stack.user("ambtenaar1"), await stack.user("ambtenaar2")
    room_id = await amb1.create_room(name="Koffie", invite=[amb2.user_id])
    assert (await amb2.call("POST", f"/rooms/{room_id}/join", {}))[0] == 200
    assert (await amb2.text(room_id, "wie haalt er koffie?"))[0] == 200
    # Nor can anyone bring it in by hand.
    status, body = await amb1.membership_change(room_id, "invite", stack.archiver)
    assert status == 403
    assert "sleutelfunctionaris" in body["error"]
    assert await amb1.membership(room_id, stack.archiver) is None
    # Later a key official is invited: the archiver comes in then, and only then.
    sg = stack.hs.user_id("sg")
    assert (await amb1.membership_change(room_id, "invite", sg))[0] == 200
    await wait_until_archiver_joined(amb1, room_id, stack.archiver)
    await assert_archiver_came_after(amb1, room_id, stack.archiver, sg)


async def test_kicking_or_banning_the_archiver_is_refused(stack: Stack) -> None:
    minister = await stack.user("minister")
    room_id = await minister.create_room(name="Vertrouwelijk")
    await wait_until_archiver_joined(minister, room_id, stack.archiver)
    for action in ("kick", "ban"):
        status, body = await minister.membership_change(room_id, action, stack.archiver)
        assert status == 403, (action, body)
        assert body["errcode"] == "M_FORBIDDEN"
    assert await minister.membership(room_id, stack.archiver) == "join"


async def test_messages_are_refused_until_the_archiver_has_joined(stack: Stack) -> None:
    """A room where nobody present may bring the archiver in: the creator banned it while
    no key official was there, then left. Once the creator (who may unban) is back, the
    module brings the archiver in and the message goes through."""
    amb1, amb2 = await stack.user("ambtenaar1"), await stack.user("ambtenaar2")
    room_id = await amb1.create_room(
        name="Zonder archief", preset="public_chat", power_level_content_override={"invite": 0}
    )
    assert (await amb2.call("POST", f"/rooms/{room_id}/join", {}))[0] == 200
    assert (await amb1.membership_change(room_id, "ban", stack.archiver))[0] == 200
    assert (await amb1.call("POST", f"/rooms/{room_id}/leave", {}))[0] == 200

    status, _ = await amb2.membership_change(room_id, "invite", stack.hs.user_id("minister"))
    assert status == 200
    # The module tried and could not (amb2 may not unban): it says so in the homeserver log.
    await homeserver_logged(stack, f"cannot invite the archiver into {room_id}")
    assert await amb2.membership(room_id, stack.archiver) == "ban"
    for event_type, content in [
        ("m.room.message", {"msgtype": "m.text", "body": "snel, voor het archief er is"}),
        ("m.room.encrypted", {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x"}),
        ("m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "key": "+1"}}),
    ]:
        status, body = await amb2.send(room_id, content, event_type)
        assert status == 403, (event_type, body)
        assert "archivering nog niet actief" in body["error"]

    assert (await amb1.call("POST", f"/rooms/{room_id}/join", {}))[0] == 200
    await wait_until_archiver_joined(amb2, room_id, stack.archiver)
    status, body = await amb2.text(room_id, "nu wel")
    assert status == 200, body


async def test_a_key_official_joining_a_room_brings_the_archiver_in(stack: Stack) -> None:
    amb = await stack.user("ambtenaar3")
    room_id = await amb.create_room(name="Open overleg", preset="public_chat")
    assert await amb.membership(room_id, stack.archiver) is None
    sg = await stack.user("sg")
    assert (await sg.call("POST", f"/rooms/{room_id}/join", {}))[0] == 200
    await wait_until_archiver_joined(amb, room_id, stack.archiver)
    await assert_archiver_came_after(amb, room_id, stack.archiver, sg.user_id)
