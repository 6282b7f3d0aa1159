"""The join race reproduced deterministically, and key export files written by the test.

A nio sender shares its Megolm session without the archiver's device (as Element does when
it encrypts before its device query for the new member finished), sends, and only then
gives the archiver the session from the current index: the first messages are archived
undecryptable, the later ones decrypted.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from nio import ToDeviceMessage

from archiver_bot.archive import AccessEntry, ArchivePaths, StoredEvent, open_archive
from server_bridge.appservice.audit import StoreArchiveView
from tests.bot.conftest import TEST_ACTOR, wait_archived
from tests.bot.test_capture import archived_room, archiver_id
from tests.e2e_client import E2EUser
from tests.helpers import RunningHomeserver


@dataclass
class Race:
    room_id: str
    early: list[str]  # archived undecryptable
    later: str  # archived decrypted
    session_id: str
    bodies: dict[str, str]


async def reproduce_race(
    hs: RunningHomeserver, sender: E2EUser, other: E2EUser, name: str, early: int = 2
) -> Race:
    room_id = await archived_room(hs, sender, [other], name)
    client = sender.client
    await sender.sync()
    devices = list(client.device_store.active_user_devices(archiver_id(hs)))
    assert devices, "the archiver's device keys are not known to the sender"
    device = devices[0]
    # The sender's device list does not have the archiver yet: share without it.
    client.olm.blacklist_device(device)
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())
    await client.share_group_session(room_id, ignore_unverified_devices=True)
    bodies: dict[str, str] = {}
    early_ids = []
    for i in range(early):
        body = f"Vroeg bericht {i} over de kabinetsformatie {name}"
        event_id = await sender.send_text(room_id, body)
        bodies[event_id] = body
        early_ids.append(event_id)
    # Now the query finished: the archiver gets the session, from the current index on.
    session = client.olm.outbound_group_sessions[room_id]
    assert session.message_index == early
    key_content = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "room_id": room_id,
        "session_id": session.id,
        "session_key": session.session_key,
    }
    olm_session = client.olm.session_store.get(device.curve25519)
    if olm_session is None:
        await client.keys_claim({archiver_id(hs): [device.id]})
        olm_session = client.olm.session_store.get(device.curve25519)
    assert olm_session is not None
    payload = client.olm._olm_encrypt(olm_session, device, "m.room_key", key_content)
    await client.to_device(ToDeviceMessage("m.room.encrypted", device.user_id, device.id, payload))
    client.olm.unblacklist_device(device)
    later_body = f"Later bericht, wel leesbaar {name}"
    later = await sender.send_text(room_id, later_body)
    bodies[later] = later_body

    def settled(evs: list[StoredEvent]) -> bool:
        by_id = {e.event_id: e for e in evs}
        return later in by_id and by_id[later].decryption == "decrypted" and all(
            e in by_id for e in early_ids
        )

    events = await wait_archived(hs.settings.data_dir, room_id, settled, timeout=60)
    by_id = {e.event_id: e for e in events}
    for event_id in early_ids:
        assert by_id[event_id].decryption == "undecryptable"
        assert by_id[event_id].session_id == session.id
    assert by_id[later].content is not None
    assert by_id[later].content["body"] == later_body
    return Race(room_id, early_ids, later, session.id, bodies)


def sender_sessions(sender: E2EUser, room_id: str) -> list[dict[str, Any]]:
    """The sender's own sessions of a room as a plain JSON export list (from index 0)."""
    out = []
    for session in sender.client.olm.inbound_group_store:
        if session.room_id != room_id:
            continue
        out.append({
            "algorithm": "m.megolm.v1.aes-sha2",
            "room_id": session.room_id,
            "sender_key": session.sender_key,
            "sender_claimed_keys": {"ed25519": session.ed25519},
            "forwarding_curve25519_key_chain": [],
            "session_id": session.id,
            "session_key": session.export_session(session.first_known_index),
        })
    assert out
    assert all(s["session_key"] for s in out)
    return out


def spec_export(payload: bytes, passphrase: str, rounds: int = 20_000) -> str:
    """An encrypted key export written by the test itself, per the Matrix spec's
    "Key exports" section (independent of the code under test)."""
    salt = os.urandom(16)
    iv = bytearray(os.urandom(16))
    iv[8] &= 0x7F
    kdf = PBKDF2HMAC(algorithm=hashes.SHA512(), length=64, salt=salt, iterations=rounds)
    key = kdf.derive(passphrase.encode())
    enc = Cipher(algorithms.AES(key[:32]), modes.CTR(bytes(iv))).encryptor()
    body = b"\x01" + salt + bytes(iv) + rounds.to_bytes(4, "big") + enc.update(payload)
    body += enc.finalize()
    mac = hmac.HMAC(key[32:], hashes.SHA256())
    mac.update(body)
    text = base64.b64encode(body + mac.finalize()).decode()
    lines = [text[i : i + 76] for i in range(0, len(text), 76)]
    return "-----BEGIN MEGOLM SESSION DATA-----\n" + "\n".join(lines) + (
        "\n-----END MEGOLM SESSION DATA-----\n"
    )


def import_cmd(data_dir: Path, key_file: Path, passphrase_file: Path | None) -> list[str]:
    cmd = [sys.executable, "-m", "archiver_bot", "import-keys", "--data-dir", str(data_dir),
           str(key_file), "--by", "@archivaris:test.localhost"]
    if passphrase_file is not None:
        cmd += ["--passphrase-file", str(passphrase_file)]
    return cmd


async def archive_state(
    data_dir: Path, room_id: str
) -> tuple[int, list[AccessEntry]]:
    """The room's undecryptable count (as the room list and the completeness audit's view
    of the archive see it; both must agree) and the access log's key imports."""
    archive = await open_archive(ArchivePaths.for_data_dir(data_dir), role="reader")
    try:
        rooms = {r.room_id: r for r in await archive.list_rooms(TEST_ACTOR)}
        audit_view = await StoreArchiveView(archive).undecryptable_event_ids(room_id)
        log = await archive.access_log(TEST_ACTOR, limit=1000)
    finally:
        await archive.close()
    assert len(audit_view) == rooms[room_id].undecryptable
    return rooms[room_id].undecryptable, [e for e in log if e.action == "import_keys"]


def plain_json(sessions: list[dict[str, Any]]) -> bytes:
    return json.dumps(sessions).encode()
