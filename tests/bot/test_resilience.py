"""Nothing lost: the archiver killed mid-stream, or offline while people talk."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

from archiver_bot.archive import ArchivePaths, open_archive
from tests.bot.conftest import ArchiverProcess, wait_archived
from tests.bot.test_capture import archived_room
from tests.e2e_client import E2EUser
from tests.helpers import RunningHomeserver


def bodies(events: list[object], prefix: str) -> Counter[str]:
    return Counter(
        str(e.content["body"])
        for e in events  # type: ignore[attr-defined]
        if e.type == "m.room.message"
        and e.content  # type: ignore[attr-defined]
        and str(e.content.get("body", "")).startswith(prefix)  # type: ignore[attr-defined]
    )


async def test_killed_archiver_loses_nothing(
    homeserver: RunningHomeserver, users: dict[str, E2EUser], archiver: ArchiverProcess
) -> None:
    minister, amb = users["minister"], users["ambtenaar2"]
    room_id = await archived_room(homeserver, minister, [amb], "Stroom met crashes")
    total = 300
    sent: list[str] = []

    async def stream() -> None:
        for i in range(total):
            sender = minister if i % 2 else amb
            sent.append(await sender.send_text(room_id, f"stroombericht {i:03d}"))

    task = asyncio.create_task(stream())
    for kill_at in (60, 140, 220):
        while len(sent) < kill_at:
            await asyncio.sleep(0.05)
        await archiver.kill(signal.SIGKILL)
        await archiver.start()
    await task

    events = await wait_archived(
        homeserver.settings.data_dir,
        room_id,
        lambda evs: len(bodies(evs, "stroombericht")) == total,
        timeout=120,
    )
    counts = bodies(events, "stroombericht")
    assert set(counts) == {f"stroombericht {i:03d}" for i in range(total)}
    assert set(counts.values()) == {1}  # exactly once
    ids = [e.event_id for e in events]
    assert len(ids) == len(set(ids))
    assert set(sent) <= set(ids)
    assert all(e.decryption == "decrypted" for e in events if e.event_id in set(sent))

    await archiver.stop()  # verify sees a quiet archive (and the shutdown checkpoint)
    try:
        archive = await open_archive(
            ArchivePaths.for_data_dir(homeserver.settings.data_dir), role="reader"
        )
        try:
            report = await archive.verify(room_id)
        finally:
            await archive.close()
        assert report.ok, report
        assert report.rooms[room_id].entries >= total
    finally:
        await archiver.start()


async def test_messages_sent_while_archiver_is_down_are_backfilled(
    homeserver: RunningHomeserver, users: dict[str, E2EUser], archiver: ArchiverProcess
) -> None:
    minister, sg = users["minister"], users["sg"]
    room_id = await archived_room(homeserver, minister, [sg], "Terwijl de archiveerder slaapt")
    await archiver.stop()
    total = 250
    for i in range(total):
        await (minister if i % 3 else sg).send_text(room_id, f"offline {i:03d}")
    await archiver.start()
    events = await wait_archived(
        homeserver.settings.data_dir,
        room_id,
        lambda evs: len(bodies(evs, "offline")) == total,
        timeout=120,
    )
    counts = bodies(events, "offline")
    assert set(counts.values()) == {1}
    assert all(
        e.decryption == "decrypted"
        for e in events
        if e.type == "m.room.message" and str(e.content.get("body")).startswith("offline")
    )
    # Timeline order is preserved across the backfilled pages.
    order = [
        str(e.content["body"])
        for e in events
        if e.type == "m.room.message" and str(e.content.get("body", "")).startswith("offline")
    ]
    assert order == sorted(order)


async def test_last_events_before_a_kick_are_kept(
    homeserver: RunningHomeserver, users: dict[str, E2EUser], archiver: ArchiverProcess
) -> None:
    """The room arrives in the sync's `leave` section (nio ignores it): its events are kept.

    The session's homeserver runs without the policy module, which would refuse the kick.
    """
    minister, amb = users["minister"], users["ambtenaar3"]
    room_id = await archived_room(homeserver, minister, [amb], "Voor de verwijdering")
    await archiver.stop()
    last = [await amb.send_text(room_id, f"voor de kick {i}") for i in range(5)]
    kicked = await minister.client.room_kick(room_id, homeserver.user_id("rijksarchief"))
    assert not hasattr(kicked, "status_code"), kicked
    await archiver.start()
    events = await wait_archived(
        homeserver.settings.data_dir,
        room_id,
        lambda evs: set(last) <= {e.event_id for e in evs},
        timeout=60,
    )
    by_id = {e.event_id: e for e in events}
    assert [by_id[e].content["body"] for e in last] == [f"voor de kick {i}" for i in range(5)]
    assert all(by_id[e].decryption == "decrypted" for e in last)
    kicks = [
        e
        for e in events
        if e.type == "m.room.member"
        and e.state_key == homeserver.user_id("rijksarchief")
        and e.content.get("membership") == "leave"
    ]
    assert kicks, "the kick itself is archived"


async def test_message_redacted_while_archiver_is_down_keeps_its_original(
    homeserver: RunningHomeserver, users: dict[str, E2EUser], archiver: ArchiverProcess
) -> None:
    """The sync then carries only the stripped event; the archiver fetches the original
    (MSC2815, as server admin) and decrypts it."""
    minister, amb = users["minister"], users["ambtenaar1"]
    room_id = await archived_room(homeserver, minister, [amb], "Snel ingetrokken")
    await archiver.stop()
    secret = await amb.send_text(room_id, "Dit trek ik meteen weer in")
    redaction = await amb.client.room_redact(room_id, secret, reason="te snel verstuurd")
    redaction_id = redaction.event_id  # type: ignore[union-attr]
    await archiver.start()
    events = await wait_archived(
        homeserver.settings.data_dir,
        room_id,
        lambda evs: {secret, redaction_id} <= {e.event_id for e in evs},
        timeout=60,
    )
    by_id = {e.event_id: e for e in events}
    assert by_id[secret].decryption == "decrypted"
    assert by_id[secret].content["body"] == "Dit trek ik meteen weer in"
    assert by_id[secret].redacted_by == redaction_id
