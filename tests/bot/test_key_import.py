"""Messages encrypted before the sender knew the archiver's device come back through the
sender's key export, imported with `rijkschat-archiver import-keys` while the bot runs (and
while it is stopped); bad files change nothing."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import aiohttp

from archiver_bot.archive import ArchivePaths, open_archive, verify_archive
from tests.bot.conftest import TEST_ACTOR, ArchiverProcess, room_events, wait_archived
from tests.bot.keyrace import (
    Race,
    archive_state,
    import_cmd,
    plain_json,
    reproduce_race,
    sender_sessions,
    spec_export,
)
from tests.e2e_client import E2EUser
from tests.helpers import RunningHomeserver

PASSPHRASE = "correct horse battery staple"


async def run(cmd: list[str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def assert_all_decrypted(hs: RunningHomeserver, race: Race, via: str) -> None:
    data_dir = hs.settings.data_dir
    by_id = {e.event_id: e for e in await room_events(data_dir, race.room_id)}
    for event_id in race.early:
        event = by_id[event_id]
        assert event.decryption == "decrypted", event
        assert event.content is not None
        assert event.content["body"] == race.bodies[event_id]
        assert event.late_decryption
        assert event.imported_key is not None
        assert event.imported_key["imported_by"] == "@archivaris:test.localhost"
        assert event.imported_key["via"] == via
        assert len(event.imported_key["file_sha256"]) == 64
    # The message received over Olm keeps its ordinary provenance.
    assert by_id[race.later].imported_key is None
    undecryptable, imports = await archive_state(data_dir, race.room_id)
    assert undecryptable == 0
    assert imports, "the import is not in the access log"
    archive = await open_archive(ArchivePaths.for_data_dir(data_dir), role="reader")
    try:
        first = race.bodies[race.early[0]]
        hits = await archive.search(TEST_ACTOR, first, room=race.room_id)
    finally:
        await archive.close()
    assert [h.event_id for h in hits] == [race.early[0]]
    report = await verify_archive(ArchivePaths.for_data_dir(data_dir), room_id=race.room_id)
    assert report.ok, report
    assert report.rooms[race.room_id].imported_decryptions == len(race.early)


async def test_element_export_imported_while_the_bot_runs_and_bad_files_change_nothing(
    homeserver: RunningHomeserver,
    users: dict[str, E2EUser],
    archiver: ArchiverProcess,
    tmp_path: Path,
) -> None:
    data_dir = homeserver.settings.data_dir
    sender = users["minister"]
    race = await reproduce_race(homeserver, sender, users["ambtenaar1"], "Sleutelrace CLI")
    export = tmp_path / "element-keys.txt"
    await sender.client.export_keys(str(export), PASSPHRASE)  # nio writes Element's format
    good_pass = tmp_path / "pass.txt"
    good_pass.write_text(PASSPHRASE + "\n")
    wrong_pass = tmp_path / "wrong.txt"
    wrong_pass.write_text("niet het wachtwoord\n")
    text = export.read_text()
    truncated = tmp_path / "truncated.txt"
    truncated.write_text(text[: len(text) // 2])
    # Forged: one ciphertext byte flipped, the MAC left as it was.
    lines = text.strip().splitlines()
    raw = bytearray(base64.b64decode("".join(lines[1:-1]) + "=="))
    raw[60] ^= 0x01
    forged = tmp_path / "forged.txt"
    forged.write_text(
        f"{lines[0]}\n{base64.b64encode(bytes(raw)).decode().rstrip('=')}\n{lines[-1]}\n"
    )
    other_rooms = tmp_path / "other-rooms.json"
    others = sender_sessions(sender, race.room_id)
    for s in others:
        s["room_id"] = "!nietgearchiveerd:test.localhost"
    other_rooms.write_bytes(plain_json(others))

    before, imports_before = await archive_state(data_dir, race.room_id)
    assert before == len(race.early)
    for key_file, pass_file, expected in (
        (export, wrong_pass, "wrong passphrase"),
        (truncated, good_pass, "truncated"),
        (forged, good_pass, "altered"),
        (other_rooms, None, "room is not archived"),
        (tmp_path / "missing.txt", good_pass, "does not exist"),
    ):
        code, out, err = await run(import_cmd(data_dir, key_file, pass_file))
        assert code != 0, (key_file, out, err)
        assert expected in err, (key_file, err)
        assert len(err.strip().splitlines()) == 1, err
        after, imports_after = await archive_state(data_dir, race.room_id)
        assert after == before
        assert len(imports_after) == len(imports_before)

    code, out, err = await run(import_cmd(data_dir, export, good_pass))
    assert code == 0, err
    assert "events decrypted: 2" in out, out
    assert "keys used: 1" in out, out
    assert "imported by the running archiver" in out
    await assert_all_decrypted(homeserver, race, "cli")
    _, imports = await archive_state(data_dir, race.room_id)
    assert len(imports) == len(imports_before) + 1
    assert imports[0].user_id == "@archivaris:test.localhost"
    assert imports[0].details["events_decrypted"] == 2
    assert imports[0].details["file_sha256"]

    # The same file again: nothing left to open, one clear line, nothing changed.
    code, out, err = await run(import_cmd(data_dir, export, good_pass))
    assert code != 0
    assert "already held" in err


async def test_spec_format_and_plain_json_exports_import_too(
    homeserver: RunningHomeserver,
    users: dict[str, E2EUser],
    archiver: ArchiverProcess,
    tmp_path: Path,
) -> None:
    data_dir = homeserver.settings.data_dir
    sender = users["sg"]
    spec_race = await reproduce_race(homeserver, sender, users["ambtenaar2"], "Spec-formaat")
    json_race = await reproduce_race(homeserver, sender, users["ambtenaar3"], "Platte JSON")

    spec_file = tmp_path / "spec-export.txt"
    spec_file.write_text(spec_export(plain_json(sender_sessions(sender, spec_race.room_id)),
                                     PASSPHRASE))
    pass_file = tmp_path / "pass.txt"
    pass_file.write_text(PASSPHRASE)
    code, out, err = await run(import_cmd(data_dir, spec_file, pass_file))
    assert code == 0, err
    assert "events decrypted: 2" in out, out
    await assert_all_decrypted(homeserver, spec_race, "cli")
    # The other room's events stay as they were.
    assert (await archive_state(data_dir, json_race.room_id))[0] == 2

    json_file = tmp_path / "sessions.json"
    json_file.write_text(json.dumps(sender_sessions(sender, json_race.room_id)))
    code, out, err = await run(import_cmd(data_dir, json_file, None))
    assert code == 0, err
    assert "events decrypted: 2" in out, out
    await assert_all_decrypted(homeserver, json_race, "cli")


async def test_import_while_the_bot_is_stopped_holds_its_lock_and_the_bot_goes_on(
    homeserver: RunningHomeserver,
    users: dict[str, E2EUser],
    archiver: ArchiverProcess,
    tmp_path: Path,
) -> None:
    data_dir = homeserver.settings.data_dir
    sender = users["minister"]
    race = await reproduce_race(homeserver, sender, users["ambtenaar2"], "Bot gestopt")
    json_file = tmp_path / "sessions.json"
    json_file.write_text(json.dumps(sender_sessions(sender, race.room_id)))
    await archiver.stop()
    try:
        code, out, err = await run(import_cmd(data_dir, json_file, None))
    finally:
        await archiver.start()
    assert code == 0, err
    assert "imported with the archiver stopped" in out, out
    assert "events decrypted: 2" in out
    await assert_all_decrypted(homeserver, race, "cli")
    # The bot remembers which sessions came from an import (later retries are marked too).
    registry_file = data_dir / "archiver" / "imported_sessions.json"
    assert registry_file.stat().st_mode & 0o777 == 0o600
    registry = json.loads(registry_file.read_text())
    assert registry[race.session_id]["imported_by"] == "@archivaris:test.localhost"
    # The restarted bot uses the imported key store: a new message still arrives decrypted.
    event_id = await sender.send_text(race.room_id, "Na de herstart")
    events = await wait_archived(
        data_dir, race.room_id,
        lambda evs: any(e.event_id == event_id and e.decryption == "decrypted" for e in evs),
    )
    assert events


async def test_control_endpoint_needs_its_own_token(
    homeserver: RunningHomeserver, archiver: ArchiverProcess
) -> None:
    data_dir = homeserver.settings.data_dir
    settings = json.loads((data_dir / "rijkschat.json").read_text())
    url = f"http://127.0.0.1:{settings['archiver_metrics_port']}/control/import-keys"
    token_file = data_dir / "archiver" / "control.token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    control = token_file.read_text().strip()
    metrics = (data_dir / "archiver" / "metrics.token").read_text().strip()
    assert control != metrics
    body = {"actor": {"user_id": "@x:y", "purpose": "test"}, "sessions": []}
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": f"Bearer {metrics}"},
                        {"Authorization": "Bearer wrong"}):
            async with http.post(url, json=body, headers=headers) as resp:
                assert resp.status == 401
        auth = {"Authorization": f"Bearer {control}"}
        async with http.post(url, data=b"{not json", headers=auth) as resp:
            assert resp.status == 400
        async with http.post(url, json={"sessions": []}, headers=auth) as resp:
            assert resp.status == 400  # no actor: nothing is done anonymously
        async with http.post(url, json=body, headers=auth) as resp:
            assert resp.status == 422
            assert (await resp.json())["error"] == "nothing_to_import"
