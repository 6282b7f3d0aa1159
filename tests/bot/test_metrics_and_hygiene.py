"""The archiver's metrics endpoint, its refusal to share keys, and bad media."""

from __future__ import annotations

import json
import os

import httpx

from archiver_bot.archive import ArchivePaths, open_archive
from tests.bot.conftest import TEST_ACTOR, ArchiverProcess, wait_archived
from tests.bot.test_capture import archived_room
from tests.e2e_client import E2EUser
from tests.helpers import RunningHomeserver


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


async def test_metrics_need_the_token_and_count_captures(
    homeserver: RunningHomeserver, users: dict[str, E2EUser], archiver: ArchiverProcess
) -> None:
    minister, amb = users["minister"], users["ambtenaar1"]
    room_id = await archived_room(homeserver, minister, [amb], "Meten")
    event_id = await amb.send_text(room_id, "Meetbaar bericht")
    await wait_archived(
        homeserver.settings.data_dir, room_id, lambda evs: event_id in {e.event_id for e in evs}
    )
    settings = json.loads((homeserver.settings.data_dir / "rijkschat.json").read_text())
    url = f"http://127.0.0.1:{settings['archiver_metrics_port']}/metrics"
    token = (homeserver.settings.data_dir / "archiver" / "metrics.token").read_text().strip()
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).status_code == 401
        assert (await http.get(url, headers={"Authorization": "Bearer wrong"})).status_code == 401
        resp = await http.get(url, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    assert metric(resp.text, "rijkschat_archiver_events_total") >= 1
    assert metric(resp.text, "rijkschat_archiver_capture_lag_seconds_count") >= 1
    assert metric(resp.text, "rijkschat_archiver_syncs_total") >= 1
    metric(resp.text, "rijkschat_archiver_undecryptable_events")
    metric(resp.text, "rijkschat_archiver_backfill_pages_total")


async def test_bad_attachments_are_stored_with_an_error_and_the_bot_goes_on(
    homeserver: RunningHomeserver, users: dict[str, E2EUser], archiver: ArchiverProcess
) -> None:
    minister, amb = users["minister"], users["ambtenaar3"]
    room_id = await archived_room(homeserver, minister, [amb], "Kapotte bijlagen")
    # A file whose declared hash does not match what was uploaded.
    data = os.urandom(4000)
    resp, keys = await amb.client.upload(
        __import__("io").BytesIO(data),
        content_type="application/pdf",
        filename="x.pdf",
        encrypt=True,
        filesize=len(data),
    )
    assert keys is not None
    keys["hashes"]["sha256"] = "A" * 43
    bad_hash = await amb.send(
        room_id,
        {
            "msgtype": "m.file",
            "body": "vervalst.pdf",
            "info": {"mimetype": "application/pdf"},
            "file": {**keys, "url": resp.content_uri},
        },
    )  # type: ignore[union-attr]
    # A file that does not exist on the media repository.
    missing = await amb.send(
        room_id,
        {
            "msgtype": "m.file",
            "body": "weg.pdf",
            "url": f"mxc://{homeserver.settings.server_name}/doesnotexist",
        },
    )
    after = await minister.send_text(room_id, "En het archief werkt gewoon door")
    events = await wait_archived(
        homeserver.settings.data_dir, room_id, lambda evs: after in {e.event_id for e in evs}
    )
    by_id = {e.event_id: e for e in events}
    assert by_id[bad_hash].content["body"] == "vervalst.pdf"
    assert by_id[missing].content["body"] == "weg.pdf"
    assert by_id[after].decryption == "decrypted"
    archive = await open_archive(
        ArchivePaths.for_data_dir(homeserver.settings.data_dir), role="reader"
    )
    try:
        info = await archive.attachment_status(TEST_ACTOR, bad_hash)
        assert info["sha256_ok"] is False
        assert "decryption failed" in (info["error"] or "")
        info = await archive.attachment_status(TEST_ACTOR, missing)
        assert info["error"]
    finally:
        await archive.close()


async def test_malformed_events_are_archived_and_the_bot_goes_on(
    homeserver: RunningHomeserver, users: dict[str, E2EUser], archiver: ArchiverProcess
) -> None:
    minister, amb = users["minister"], users["ambtenaar1"]
    room_id = await archived_room(homeserver, minister, [amb], "Rare berichten")
    await minister.client.room_put_state(room_id, "m.room.topic", {"topic": "Onderwerp"})
    odd = await amb.send(room_id, {"body": "bericht zonder msgtype", "extra": [1, 2, 3]})
    custom = await amb.send(room_id, {"iets": "eigen type"}, event_type="nl.example.custom")
    after = await minister.send_text(room_id, "Daarna gewoon verder")
    events = await wait_archived(
        homeserver.settings.data_dir, room_id, lambda evs: after in {e.event_id for e in evs}
    )
    by_id = {e.event_id: e for e in events}
    assert by_id[odd].content["body"] == "bericht zonder msgtype"
    assert by_id[odd].decryption == "decrypted"
    assert by_id[custom].type == "nl.example.custom"
    assert by_id[custom].content == {"iets": "eigen type"}
    assert by_id[after].decryption == "decrypted"
    topics = [e for e in events if e.type == "m.room.topic"]
    assert topics[-1].content["topic"] == "Onderwerp"
    for state_type in ("m.room.power_levels", "m.room.history_visibility", "m.room.join_rules"):
        assert any(e.type == state_type for e in events), state_type


def test_room_key_requests_are_never_answered() -> None:
    """The bot's olm machine drops every key request: nothing is queued for sending."""
    import tempfile

    from nio.crypto import Olm
    from nio.events import RoomKeyRequest
    from nio.store import DefaultStore

    from archiver_bot.bot import niopatch

    niopatch.apply()
    with tempfile.TemporaryDirectory() as tmp:
        store = DefaultStore("@rijksarchief:x", "DEV", tmp, "key")
        olm = Olm("@rijksarchief:x", "DEV", store)
        request = RoomKeyRequest.from_dict(
            {
                "sender": "@rijksarchief:x",
                "type": "m.room_key_request",
                "content": {
                    "action": "request",
                    "requesting_device_id": "OTHER",
                    "request_id": "r1",
                    "body": {
                        "algorithm": "m.megolm.v1.aes-sha2",
                        "room_id": "!r:x",
                        "sender_key": "k",
                        "session_id": "s",
                    },
                },
            }
        )
        olm.received_key_requests["r1"] = request
        before = niopatch.dropped_key_requests
        assert olm.collect_key_requests() == []
        assert olm.outgoing_to_device_messages == []
        assert olm.received_key_requests == {}
        assert niopatch.dropped_key_requests == before + 1


def test_archive_commands_of_the_archiver_cli(
    homeserver: RunningHomeserver, archiver: ArchiverProcess
) -> None:
    """`rijkschat-archiver` hands verify and export-public-key to the store's CLI."""
    import subprocess
    import sys

    data_dir = str(homeserver.settings.data_dir)
    out = subprocess.run(
        [sys.executable, "-m", "archiver_bot", "export-public-key", "--data-dir", data_dir],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    out = subprocess.run(
        [sys.executable, "-m", "archiver_bot", "verify", "--data-dir", data_dir],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK" in out.stdout


async def test_withheld_key_notices_are_recorded_with_their_reason(
    homeserver: RunningHomeserver, users: dict[str, E2EUser], archiver: ArchiverProcess
) -> None:
    from nio import ToDeviceMessage

    minister, amb = users["minister"], users["ambtenaar2"]
    room_id = await archived_room(homeserver, minister, [amb], "Achtergehouden sleutel")
    archiver_id = homeserver.user_id("rijksarchief")
    await minister.sync()
    (device,) = list(minister.client.device_store.active_user_devices(archiver_id))
    content = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "room_id": room_id,
        "session_id": "sessie-x",
        "sender_key": minister.client.olm.account.identity_keys["curve25519"],
        "code": "m.unverified",
        "reason": "Apparaat niet geverifieerd",
    }
    await minister.client.to_device(
        ToDeviceMessage("m.room_key.withheld", archiver_id, device.id, content)
    )

    async def recorded() -> list[dict[str, object]]:
        archive = await open_archive(
            ArchivePaths.for_data_dir(homeserver.settings.data_dir), role="reader"
        )
        try:
            return await archive.withheld_keys(TEST_ACTOR, room_id)
        finally:
            await archive.close()

    from tests.e2e_client import wait_for

    (notice,) = await wait_for(recorded, timeout=30)
    assert notice["code"] == "m.unverified"
    assert notice["reason"] == "Apparaat niet geverifieerd"
    assert notice["session_id"] == "sessie-x"
    assert notice["sender"] == minister.user_id
