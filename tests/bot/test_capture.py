"""The archiver against a real Synapse with real E2E clients: what officials send arrives
in the archive decrypted, complete and linked."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nio import MegolmEvent, ToDeviceMessage

from archiver_bot.archive import ArchivePaths, open_archive
from tests.bot.conftest import TEST_ACTOR, wait_archived
from tests.e2e_client import E2EUser, wait_for
from tests.helpers import RunningHomeserver

pytestmark = pytest.mark.usefixtures("archiver")


def archiver_id(hs: RunningHomeserver) -> str:
    return hs.user_id("rijksarchief")


async def archived_room(
    hs: RunningHomeserver, owner: E2EUser, others: list[E2EUser], name: str
) -> str:
    """A key official's encrypted room with the archiver in it, ready for messages."""
    room_id = await owner.create_room(name, invite=[u.user_id for u in others])
    for user in others:
        await user.join(room_id)
    await owner.invite(room_id, archiver_id(hs))  # the server's policy may have done it already

    async def archiver_joined() -> bool:
        await owner.sync()
        room = owner.client.rooms.get(room_id)
        return room is not None and archiver_id(hs) in room.users

    await wait_for(archiver_joined, timeout=30)
    # ... and has decided to archive it (its first records are committed).
    await wait_archived(hs.settings.data_dir, room_id, bool)
    return room_id


async def test_every_message_kind_arrives_decrypted(
    homeserver: RunningHomeserver, users: dict[str, E2EUser]
) -> None:
    minister, amb = users["minister"], users["ambtenaar1"]
    room_id = await archived_room(homeserver, minister, [amb], "Kabinetsberaad")
    sent: dict[str, str] = {}
    text = "Het kabinet besluit vandaag over de begroting"
    sent["text"] = await minister.send_text(room_id, text)
    sent["notice"] = await amb.send(room_id, {"msgtype": "m.notice", "body": "Agenda bijgewerkt"})
    sent["emote"] = await amb.send(room_id, {"msgtype": "m.emote", "body": "knikt instemmend"})
    sent["location"] = await minister.send(
        room_id, {"msgtype": "m.location", "body": "Binnenhof", "geo_uri": "geo:52.08,4.31"}
    )
    pdf = os.urandom(20_000)
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(5_000)
    ogg, mp4 = os.urandom(3_000), os.urandom(4_000)
    sent["file"] = await amb.send_file(room_id, pdf, "nota.pdf", "application/pdf")
    sent["image"] = await minister.send_file(room_id, png, "foto.png", "image/png", "m.image")
    sent["audio"] = await minister.send_file(room_id, ogg, "memo.ogg", "audio/ogg", "m.audio")
    sent["video"] = await amb.send_file(room_id, mp4, "clip.mp4", "video/mp4", "m.video")

    events = await wait_archived(
        homeserver.settings.data_dir,
        room_id,
        lambda evs: set(sent.values()) <= {e.event_id for e in evs},
    )
    by_id = {e.event_id: e for e in events}
    assert by_id[sent["text"]].content["body"] == text
    assert by_id[sent["text"]].decryption == "decrypted"
    assert by_id[sent["text"]].sender == minister.user_id
    assert by_id[sent["text"]].sender_device == minister.client.device_id
    assert by_id[sent["notice"]].content["msgtype"] == "m.notice"
    assert by_id[sent["emote"]].content["body"] == "knikt instemmend"
    assert by_id[sent["location"]].content["geo_uri"] == "geo:52.08,4.31"
    for kind in ("text", "notice", "emote", "location", "file", "image", "audio", "video"):
        assert by_id[sent[kind]].decryption == "decrypted", kind
    # State events are archived too: creation, membership, encryption, name.
    types = {e.type for e in events}
    assert {"m.room.create", "m.room.member", "m.room.encryption", "m.room.name"} <= types
    # The archiver announced itself exactly once.
    notices = [
        e for e in events if e.sender == archiver_id(homeserver) and e.type == "m.room.message"
    ]
    assert len(notices) == 1
    assert "gearchiveerd" in notices[0].content["body"]

    archive = await open_archive(
        ArchivePaths.for_data_dir(homeserver.settings.data_dir), role="reader"
    )
    try:
        for kind, data, name in (
            ("file", pdf, "nota.pdf"),
            ("image", png, "foto.png"),
            ("audio", ogg, "memo.ogg"),
            ("video", mp4, "clip.mp4"),
        ):
            got = await archive.get_attachment(TEST_ACTOR, sent[kind])
            assert got[0] == data, kind
            assert got[1] == name
    finally:
        await archive.close()


async def test_edits_reactions_replies_threads_and_redactions(
    homeserver: RunningHomeserver, users: dict[str, E2EUser]
) -> None:
    minister, amb = users["minister"], users["ambtenaar2"]
    room_id = await archived_room(homeserver, minister, [amb], "Relaties")
    original = await amb.send_text(room_id, "Eerste versie van de nota")
    edit = await amb.send(
        room_id,
        {
            "msgtype": "m.text",
            "body": "* Tweede versie van de nota",
            "m.new_content": {"msgtype": "m.text", "body": "Tweede versie van de nota"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        },
    )
    reaction = await minister.send(
        room_id,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": original, "key": "👍"}},
        event_type="m.reaction",
    )
    reply = await minister.send(
        room_id,
        {
            "msgtype": "m.text",
            "body": "Akkoord",
            "m.relates_to": {"m.in_reply_to": {"event_id": original}},
        },
    )
    thread = await amb.send(
        room_id,
        {
            "msgtype": "m.text",
            "body": "In de draad",
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": original,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": original},
            },
        },
    )
    secret = await amb.send_text(room_id, "Dit had ik niet moeten sturen")
    # The archiver has captured it (as it does within tens of ms) before it is redacted; a
    # redaction before the archiver saw the event leaves only the stripped event on the server.
    await wait_archived(homeserver.settings.data_dir, room_id,
                        lambda evs: secret in {e.event_id for e in evs})
    redaction = await amb.client.room_redact(room_id, secret, reason="vergissing")
    redaction_id = redaction.event_id  # type: ignore[union-attr]

    wanted = {original, edit, reaction, reply, thread, secret, redaction_id}
    events = await wait_archived(
        homeserver.settings.data_dir, room_id, lambda evs: wanted <= {e.event_id for e in evs}
    )
    by_id = {e.event_id: e for e in events}
    assert by_id[edit].relates_to["rel_type"] == "m.replace"
    assert edit in by_id[original].edits
    assert by_id[original].content["body"] == "Eerste versie van de nota"  # original kept
    assert by_id[reaction].type == "m.reaction"
    assert by_id[reaction].relates_to["key"] == "👍"
    assert by_id[reply].relates_to["m.in_reply_to"]["event_id"] == original
    assert by_id[thread].relates_to["rel_type"] == "m.thread"
    assert by_id[secret].redacted_by == redaction_id
    assert by_id[secret].content["body"] == "Dit had ik niet moeten sturen"  # never lost
    assert by_id[redaction_id].type == "m.room.redaction"


async def test_a_key_that_arrives_late_ends_decrypted(
    homeserver: RunningHomeserver, users: dict[str, E2EUser]
) -> None:
    minister, amb = users["minister"], users["ambtenaar3"]
    room_id = await archived_room(homeserver, minister, [amb], "Late sleutel")
    client = minister.client
    await minister.sync()
    archiver_devices = list(client.device_store.active_user_devices(archiver_id(homeserver)))
    assert archiver_devices, "the archiver's device keys are not known to the sender"
    device = archiver_devices[0]
    # Fault injection: hold the room key back from the archiver (without rotating the session).
    client.olm.blacklist_device(device)
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())
    await client.share_group_session(room_id, ignore_unverified_devices=True)
    session = client.olm.outbound_group_sessions[room_id]
    key_content = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "room_id": room_id,
        "session_id": session.id,
        "session_key": session.session_key,
    }
    late = await minister.send_text(room_id, "Vertrouwelijk: de sleutel komt later")

    events = await wait_archived(
        homeserver.settings.data_dir, room_id, lambda evs: late in {e.event_id for e in evs}
    )
    stored = next(e for e in events if e.event_id == late)
    assert stored.decryption == "undecryptable"
    assert stored.session_id == session.id

    # Now the key arrives, olm-encrypted to the archiver's device, as a delayed to-device.
    olm_session = client.olm.session_store.get(device.curve25519)
    if olm_session is None:
        await client.keys_claim({archiver_id(homeserver): [device.id]})
        olm_session = client.olm.session_store.get(device.curve25519)
    assert olm_session is not None
    payload = client.olm._olm_encrypt(olm_session, device, "m.room_key", key_content)
    await client.to_device(ToDeviceMessage("m.room.encrypted", device.user_id, device.id, payload))

    def decrypted(evs: list[Any]) -> bool:
        return any(e.event_id == late and e.decryption == "decrypted" for e in evs)

    events = await wait_archived(homeserver.settings.data_dir, room_id, decrypted)
    stored = next(e for e in events if e.event_id == late)
    assert stored.content["body"] == "Vertrouwelijk: de sleutel komt later"
    assert stored.type == "m.room.message"
    assert stored.late_decryption
    # The late plaintext is searchable like any other message.
    archive = await open_archive(
        ArchivePaths.for_data_dir(homeserver.settings.data_dir), role="reader"
    )
    try:
        hits = await archive.search(TEST_ACTOR, "sleutel vertrouwelijk", room=room_id)
    finally:
        await archive.close()
    assert [h.event_id for h in hits] == [late]
    client.olm.unblacklist_device(device)


async def test_room_without_key_official_is_left_and_not_stored(
    homeserver: RunningHomeserver, users: dict[str, E2EUser]
) -> None:
    a1, a2 = users["ambtenaar1"], users["ambtenaar2"]
    room_id = await a1.create_room("Koffiepraat", invite=[a2.user_id])
    await a2.join(room_id)
    await a1.send_text(room_id, "Lunchen we om twaalf uur bij de kantine")
    await a1.invite(room_id, archiver_id(homeserver))

    async def archiver_left() -> bool:
        await a1.sync()
        room = a1.client.rooms[room_id]
        return (
            archiver_id(homeserver) not in room.users
            and archiver_id(homeserver) not in room.invited_users
        )

    await wait_for(archiver_left, timeout=30)
    archive = await open_archive(
        ArchivePaths.for_data_dir(homeserver.settings.data_dir), role="reader"
    )
    try:
        rooms = {r.room_id: r for r in await archive.list_rooms(TEST_ACTOR)}
        events = []
        if room_id in rooms:
            assert rooms[room_id].left_reason  # recorded that it left
            events, _ = await archive.room_events(TEST_ACTOR, room_id, None, 100)
        assert events == []
        assert await archive.search(TEST_ACTOR, "kantine") == []
    finally:
        await archive.close()


def _verify(key_b64: str, obj: dict[str, Any], sig_b64: str) -> bool:
    def dec(s: str) -> bytes:
        return base64.b64decode(s + "=" * (-len(s) % 4))

    unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    data = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    try:
        Ed25519PublicKey.from_public_bytes(dec(key_b64)).verify(dec(sig_b64), data)
    except InvalidSignature:
        return False
    return True


async def cross_signed_devices(user: E2EUser, user_id: str) -> set[str]:
    """What an MSC4153 client checks: devices signed by the owner's self-signing key,
    itself signed by the owner's master key."""
    resp = await user.client.client_session.post(  # type: ignore[union-attr]
        f"{user.hs.url}/_matrix/client/v3/keys/query",
        json={"device_keys": {user_id: []}},
        headers={"Authorization": f"Bearer {user.client.access_token}"},
    )
    data = await resp.json()
    master = data.get("master_keys", {}).get(user_id)
    ssk = data.get("self_signing_keys", {}).get(user_id)
    if not master or not ssk:
        return set()
    ((master_id, master_key),) = master["keys"].items()
    ((ssk_id, ssk_key),) = ssk["keys"].items()
    if not _verify(master_key, ssk, ssk["signatures"][user_id][master_id]):
        return set()
    out = set()
    for device_id, keys in data["device_keys"].get(user_id, {}).items():
        sig = keys.get("signatures", {}).get(user_id, {}).get(ssk_id)
        if sig and _verify(ssk_key, keys, sig):
            out.add(device_id)
    return out


async def test_sender_that_encrypts_only_to_cross_signed_devices(
    homeserver: RunningHomeserver, users: dict[str, E2EUser], tmp_path: Any
) -> None:
    sg, amb = users["sg"], users["ambtenaar1"]
    room_id = await archived_room(homeserver, sg, [amb], "Alleen kruisgetekend")
    # A second, never cross-signed device of the official: an MSC4153 sender must skip it.
    second = await E2EUser(homeserver, "ambtenaar1", tmp_path / "second").start()
    await sg.sync()
    trusted = await cross_signed_devices(sg, archiver_id(homeserver))
    assert trusted, "the archiver's device is not cross-signed"
    for user_id in (archiver_id(homeserver), amb.user_id):
        allowed = await cross_signed_devices(sg, user_id)
        for device in sg.client.device_store.active_user_devices(user_id):
            if device.id in allowed:
                sg.client.verify_device(device)
            else:
                sg.client.blacklist_device(device)
    event_id = await sg.send_text(room_id, "Alleen voor kruisgetekende apparaten")
    events = await wait_archived(
        homeserver.settings.data_dir, room_id, lambda evs: event_id in {e.event_id for e in evs}
    )
    stored = next(e for e in events if e.event_id == event_id)
    assert stored.decryption == "decrypted"
    assert stored.content["body"] == "Alleen voor kruisgetekende apparaten"
    # Control: the uncross-signed device really got no key.
    resp = await second.client.sync(timeout=0, full_state=True)
    timeline = {e.event_id: e for e in resp.rooms.join[room_id].timeline.events}  # type: ignore[union-attr]
    assert isinstance(timeline[event_id], MegolmEvent)
    await second.close()
