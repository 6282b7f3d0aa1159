"""`rijkschat` as a user runs it: real subprocesses against a real Synapse (policy module in
enforce mode), the real archiver bot and the bridge's archive API."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nio.crypto.sas import SasState

from tests.cli.conftest import Cli, Stack, interrupt, one_error_line, read_until
from tests.e2e_client import E2EUser
from tests.helpers import free_port

pytestmark = pytest.mark.synapse


@pytest.fixture(scope="module")
async def overleg(clis: dict[str, Cli]) -> str:
    """An encrypted room of two officials (no key official: not archived)."""
    a1, a2 = clis["ambtenaar1"], clis["ambtenaar2"]
    room_id = (await a1.run("create", "Overleg", "--invite", "ambtenaar2")).line
    assert room_id.startswith("!")
    await a2.run("join", "Overleg")  # by the name of the invitation
    return room_id


@pytest.fixture(scope="module")
async def beleid(clis: dict[str, Cli]) -> str:
    """A key official's room: the policy module brings in the archiver."""
    room_id = (await clis["minister"].run("create", "Beleid", "--invite", "ambtenaar1",
                                          "--alias", "beleid")).line
    joined = await clis["ambtenaar1"].run("join", room_id)
    assert "gearchiveerd" in joined.err  # the invitee is told before the first message
    return room_id


async def homeserver_event(cli: Cli, room_id: str, event_id: str) -> dict[str, Any]:
    """The event as the homeserver holds it (with the CLI user's own token)."""
    session = json.loads((cli.store / "session.json").read_text())
    async with aiohttp.ClientSession() as http, http.get(
        f"{session['homeserver']}/_matrix/client/v3/rooms/{room_id}/event/{event_id}",
        headers={"Authorization": f"Bearer {session['access_token']}"},
    ) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


def by_body(messages: list[dict[str, Any]], body: str) -> dict[str, Any]:
    found = [m for m in messages if m["body"] == body]
    assert len(found) == 1, messages
    return found[0]


# -- login and the stored session ---------------------------------------------------------------

async def test_login_stores_a_private_session_and_reuses_its_device(clis: dict[str, Cli]) -> None:
    cli = clis["ambtenaar2"]
    store = cli.store
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    files = [p for p in store.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"session.json", "pickle.key", f"{cli.user_id}.json"}
    assert any(p.suffix == ".db" for p in files), files  # the E2E store
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    pickle_key = (store / "pickle.key").read_text().strip()
    assert len(pickle_key) >= 32
    assert pickle_key != "DEFAULT_KEY"
    assert cli.hs.password("ambtenaar2") not in (store / "session.json").read_text()

    before = (await cli.run("whoami", "--json")).json()
    assert before["user_id"] == cli.user_id
    again = await cli.login()
    assert "same device" in again.err
    after = (await cli.run("whoami", "--json")).json()
    assert after["device_id"] == before["device_id"]

    devices = (await cli.run("devices", "--json")).json()
    mine = [d for d in devices if d["this_device"]]
    assert len(mine) == 1
    assert mine[0]["device_id"] == before["device_id"]
    assert mine[0]["cross_signed"] is True  # signed with our self-signing key on first login


async def test_direct_chat_invite_and_leave(clis: dict[str, Cli]) -> None:
    a1, a2 = clis["ambtenaar1"], clis["ambtenaar2"]
    room_id = (await a1.run("create", "Even bellen", "--direct", "--invite", "ambtenaar2")).line
    await a2.run("join", "Even bellen")
    await a1.run("invite", room_id, "@ambtenaar3:test.localhost")
    rooms = {r["room_id"]: r for r in (await a2.run("rooms", "--json")).json()}
    assert rooms[room_id]["encrypted"] is True
    assert rooms[room_id]["members"] == 3  # two joined, one invited
    await a2.run("leave", "Even bellen")
    after = (await a2.run("rooms", "--json")).json()
    assert room_id not in {r["room_id"] for r in after}, after
    usage = one_error_line(await a1.run("create", "Fout", "--direct", ok=False))
    assert "--direct needs exactly one" in usage


async def test_logout_removes_the_device_and_a_revoked_session_says_so(
    cli_stack: Stack, clis: dict[str, Cli]
) -> None:
    cli = cli_stack.cli("logout", "ambtenaar3")
    await cli.login()
    device = (await cli.run("whoami", "--json")).json()["device_id"]
    copy = cli_stack.cli("logout-copy", "ambtenaar3")
    shutil.copytree(cli.data, copy.data)
    await cli.run("logout")
    assert not (cli.store / "session.json").exists()
    assert "not logged in" in one_error_line(await cli.run("rooms", ok=False))
    revoked = one_error_line(await copy.run("rooms", ok=False))
    assert "no longer accepts this session" in revoked
    assert "new device" in (await copy.login()).err  # the old device is gone: not reused
    listed = await clis["ambtenaar1"].run("devices", "ambtenaar3", "--json", ok=False)
    remaining = {d["device_id"] for d in listed.json()} if listed.code == 0 else set()
    assert device not in remaining  # the homeserver deleted the device and its keys

    await cli.login()  # a new device, signed with the account's cross-signing keys kept here
    mine = [d for d in (await cli.run("devices", "--json")).json() if d["this_device"]]
    assert mine[0]["device_id"] != device
    assert mine[0]["cross_signed"] is True


# -- chatting ------------------------------------------------------------------------------------

async def test_two_users_read_each_others_encrypted_messages(
    clis: dict[str, Cli], overleg: str
) -> None:
    a1, a2 = clis["ambtenaar1"], clis["ambtenaar2"]
    await a1.run("send", "Overleg", "Goedemorgen, zullen we om tien uur bellen?")
    await a2.run("send", overleg, "Prima, tot straks.")
    for cli in (a1, a2):
        messages = (await cli.run("read", "Overleg", "--json")).json()
        ask = by_body(messages, "Goedemorgen, zullen we om tien uur bellen?")
        answer = by_body(messages, "Prima, tot straks.")
        assert ask["encrypted"]
        assert answer["encrypted"]
        assert ask["sender"] == a1.user_id
        assert answer["sender_name"] == "Ambtenaar Twee"
        assert not any(m["undecryptable"] for m in messages)
    text = (await a2.run("read", "Overleg", "--limit", "5")).out
    assert "Ambtenaar Een: Goedemorgen, zullen we om tien uur bellen?" in text


async def test_file_round_trip_is_byte_identical(
    clis: dict[str, Cli], overleg: str, tmp_path: Path
) -> None:
    data = secrets.token_bytes(150_000)
    source = tmp_path / "notulen.pdf"
    source.write_bytes(data)
    event_id = (await clis["ambtenaar1"].run("send", "Overleg", "--file", str(source))).line
    target = tmp_path / "ontvangen.pdf"
    await clis["ambtenaar2"].run("download", "Overleg", event_id, "-o", str(target))
    assert target.read_bytes() == data
    messages = (await clis["ambtenaar2"].run("read", "Overleg", "--json")).json()
    attachment = next(m for m in messages if m["event_id"] == event_id)["attachment"]
    assert attachment["encrypted"] is True
    assert attachment["name"] == "notulen.pdf"


async def test_reply_edit_react_and_redact_show_up_in_read(
    clis: dict[str, Cli], overleg: str
) -> None:
    a1, a2 = clis["ambtenaar1"], clis["ambtenaar2"]
    original = (await a1.run("send", "Overleg", "De nota is klaar")).line
    reply = (await a2.run("reply", "Overleg", original, "Dank, ik lees hem vandaag")).line
    await a1.run("edit", "Overleg", original, "De nota is klaar (versie 2)")
    reaction = (await a2.run("react", "Overleg", original, "👍")).line
    raw = await homeserver_event(a2, overleg, reaction)
    assert raw["type"] == "m.room.encrypted"  # as Element does: the emoji is not in the clear
    assert raw["content"]["m.relates_to"]["event_id"] == original
    oops = (await a1.run("send", "Overleg", "verkeerde kamer")).line
    await a1.run("redact", "Overleg", oops, "--reason", "vergissing")

    messages = (await a2.run("read", "Overleg", "--json")).json()
    by_id = {m["event_id"]: m for m in messages}
    assert by_id[original]["body"] == "De nota is klaar (versie 2)"
    assert by_id[original]["edited"] is True
    assert by_id[original]["reactions"] == {"👍": [a2.user_id]}
    assert by_id[reply]["reply_to"] == original
    assert by_id[oops]["redacted"] is True
    assert by_id[oops]["body"] == "[verwijderd]"
    assert not any(m["body"].startswith("* ") for m in messages)  # edits are not messages
    text = (await a1.run("read", "Overleg")).out
    assert "De nota is klaar (versie 2) (bewerkt)" in text
    assert "[verwijderd]" in text
    assert "verkeerde kamer" not in text

    line = one_error_line(await a2.run("edit", "Overleg", original, "niet van mij", ok=False))
    assert "only edit your own" in line


async def test_tail_shows_new_messages_live_until_ctrl_c(
    clis: dict[str, Cli], overleg: str
) -> None:
    proc = await clis["ambtenaar2"].spawn("tail", "Overleg")
    try:
        assert proc.stderr is not None
        assert proc.stdout is not None
        await read_until(proc.stderr, "Ctrl-C")
        await clis["ambtenaar1"].run("send", "Overleg", "Live vanuit de trein")
        seen = await read_until(proc.stdout, "Live vanuit de trein")
        assert "Ambtenaar Een" in seen
        # The same user sending from another terminal: its room key is only in the store.
        await clis["ambtenaar2"].run("send", "Overleg", "Zelf ook onderweg")
        seen = await read_until(proc.stdout, "Zelf ook onderweg")
        assert "kan niet ontsleutelen" not in seen
        interrupt(proc)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert "Traceback" not in (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(("sigint_ignored", "sig"), [
    (True, signal.SIGINT),  # a background job of a script or a CI runner: SIGINT ignored
    (False, signal.SIGTERM),
], ids=["sigint-inherited-ignored", "sigterm"])
async def test_tail_stops_on_a_signal_whatever_it_inherited(
    clis: dict[str, Cli], overleg: str, sigint_ignored: bool, sig: signal.Signals
) -> None:
    proc = await clis["ambtenaar2"].spawn("tail", "Overleg", sigint_ignored=sigint_ignored)
    try:
        assert proc.stderr is not None
        assert proc.stdout is not None
        await read_until(proc.stderr, "Ctrl-C")
        word = f"signaal-{secrets.token_hex(4)}"
        await clis["ambtenaar1"].run("send", "Overleg", word)
        await read_until(proc.stdout, word)  # in its loop, long-polling for the next event
        proc.send_signal(sig)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert "Traceback" not in (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# -- the archiving marker and the archive ---------------------------------------------------------

async def test_archived_marker_only_in_a_key_officials_room(
    clis: dict[str, Cli], overleg: str, beleid: str
) -> None:
    for _ in range(20):  # the policy module sets the state in the background, at once
        listed = (await clis["ambtenaar1"].run("rooms", "--json")).json()
        rooms = {r["room_id"]: r for r in listed}
        if rooms[beleid]["archiving"] is not None:
            break
        await asyncio.sleep(0.5)
    assert rooms[beleid]["archived"] is True
    assert rooms[beleid]["archiving"]["basis"] == "Archiefwet"
    assert rooms[overleg]["archived"] is False
    assert rooms[beleid]["encrypted"]
    assert rooms[overleg]["encrypted"]
    table = (await clis["ambtenaar1"].run("rooms")).out.splitlines()
    assert "gearchiveerd" in next(line for line in table if beleid in line)
    assert "gearchiveerd" not in next(line for line in table if overleg in line)
    read = (await clis["minister"].run("read", "#beleid")).out  # by its alias
    assert read.splitlines()[0] == "Beleid  gearchiveerd"


async def archived(archivist: Cli, word: str) -> list[Any]:
    """Search until the archiver has captured the message holding ``word``."""
    for _ in range(60):  # the archiver captures within a sync or two
        hits: list[Any] = (await archivist.run("archive", "search", word, "--json")).json()
        if hits:
            return hits
        await asyncio.sleep(0.5)
    raise AssertionError(f"{word} never reached the archive")


async def test_archivist_finds_a_message_sent_with_the_cli(
    clis: dict[str, Cli], beleid: str
) -> None:
    word = f"kwartaalcijfers{secrets.token_hex(4)}"
    event_id = (await clis["minister"].run("send", "Beleid", f"De {word} zijn binnen")).line
    archivist = clis["archivaris"]

    hits = await archived(archivist, word)
    assert [h["event"]["event_id"] for h in hits] == [event_id]
    assert hits[0]["event"]["content"]["body"] == f"De {word} zijn binnen"
    assert hits[0]["event"]["decryption"] == "decrypted"
    assert hits[0]["room"]["room_id"] == beleid
    assert word in (await archivist.run("archive", "search", word)).out

    rooms = (await archivist.run("archive", "rooms", "--json")).json()
    assert beleid in {r["room_id"] for r in rooms}
    assert "Beleid" in (await archivist.run("archive", "rooms")).out
    await archivist.run("archive", "search", word, "--purpose", "Woo-verzoek 2026-42")
    log = (await archivist.run("archive", "audit", "--json")).json()
    assert any(entry["user_id"] == archivist.user_id for entry in log)
    assert any("Woo-verzoek 2026-42" in str(entry["purpose"]) for entry in log)
    completeness = await archivist.run("archive", "audit", "--completeness", "--json", ok=False)
    assert completeness.code == (0 if completeness.json()["complete"] else 1)

    refused = one_error_line(await clis["ambtenaar1"].run("archive", "rooms", ok=False))
    assert "archivists only" in refused


async def test_archivist_reads_and_verifies_a_room(clis: dict[str, Cli], beleid: str) -> None:
    word = f"begroting{secrets.token_hex(4)}"
    event_id = (await clis["minister"].run("send", "Beleid", f"Over de {word}")).line
    archivist = clis["archivaris"]
    await archived(archivist, word)
    shown = (await archivist.run("archive", "show", "Beleid", "--json")).json()
    assert event_id in {e["event_id"] for e in shown}
    assert f"Over de {word}" in (await archivist.run("archive", "show", beleid)).out
    verified = await archivist.run("archive", "verify", "Beleid")
    assert "intact" in verified.out


# -- devices and verification -------------------------------------------------------------------

async def _accept_and_confirm(partner: E2EUser, stop: asyncio.Event) -> list[Any]:
    """The other side of an emoji verification: accept, then confirm, as a user would."""
    client = partner.client
    shown: list[Any] = []
    accepted: set[str] = set()
    while not stop.is_set():
        await client.sync(timeout=300)
        await client.send_to_device_messages()  # our key goes out before our MAC
        for tx_id, sas in list(client.key_verifications.items()):
            if sas.we_started_it or sas.canceled:
                continue
            if tx_id not in accepted:
                accepted.add(tx_id)
                await client.accept_key_verification(tx_id)
            elif sas.state == SasState.key_received and not sas.sas_accepted:
                shown = sas.get_emoji()
                await client.confirm_short_auth_string(tx_id)
        await client.send_to_device_messages()
    return shown


async def verify_with_partner(stack: Stack, cli: Cli, store: Path, answer: bytes
                              ) -> tuple[int, str, str, list[Any], str]:
    """`rijkschat verify` against a new device of ambtenaar3 that accepts and confirms;
    ``answer`` is what the CLI user types when asked whether the emoji match."""
    partner = await E2EUser(stack.hs, "ambtenaar3", store).start()
    stop = asyncio.Event()
    proc: asyncio.subprocess.Process | None = None
    try:
        partner.client.olm.users_for_key_query.add(cli.user_id)
        await partner.client.keys_query()
        device = str(partner.client.device_id)
        helper = asyncio.create_task(_accept_and_confirm(partner, stop))
        proc = await cli.spawn("verify", "ambtenaar3", device, stdin=asyncio.subprocess.PIPE)
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        seen = await read_until(proc.stderr, "Do they match?")
        proc.stdin.write(answer)
        await proc.stdin.drain()
        code = await asyncio.wait_for(proc.wait(), 60)
        out = (await proc.stdout.read()).decode()
        err = seen + (await proc.stderr.read()).decode()
        stop.set()
        return code, out, err, await helper, device
    finally:
        stop.set()
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await partner.close()


async def test_emoji_verification_with_another_client(
    cli_stack: Stack, clis: dict[str, Cli], tmp_path: Path
) -> None:
    cli = clis["ambtenaar1"]
    code, out, err, shown, device = await verify_with_partner(
        cli_stack, cli, tmp_path / "partner", b"y\n")
    assert code == 0, err
    assert out.splitlines()[0].strip() == "  ".join(symbol for symbol, _ in shown)
    devices = (await cli.run("devices", "ambtenaar3", "--json")).json()
    assert {d["device_id"]: d["trust"] for d in devices}[device] == "verified"


async def test_emoji_that_do_not_match_leave_the_device_unverified(
    cli_stack: Stack, clis: dict[str, Cli], tmp_path: Path
) -> None:
    cli = clis["ambtenaar2"]
    code, _, err, _, device = await verify_with_partner(
        cli_stack, cli, tmp_path / "partner", b"n\n")
    assert code == 1
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("rijkschat: the emoji do not match")
    devices = (await cli.run("devices", "ambtenaar3", "--json")).json()
    assert {d["device_id"]: d["trust"] for d in devices}[device] == "unverified"


# -- errors: one line, a non-zero exit, no traceback -------------------------------------------

async def test_wrong_password_is_one_clear_line(cli_stack: Stack) -> None:
    cli = cli_stack.cli("wrong-password", "ambtenaar3")
    result = await cli.run("login", "--homeserver", cli_stack.hs.url, "--user", "ambtenaar3",
                           "--password-file", str(cli.password_file("niet-het-wachtwoord")),
                           ok=False)
    assert "wrong user name or password" in one_error_line(result)
    assert not cli.store.exists()  # nothing is left behind


async def test_unreachable_homeserver_and_bridge(cli_stack: Stack, clis: dict[str, Cli]) -> None:
    cli = cli_stack.cli("unreachable", "ambtenaar3")
    dead = f"http://127.0.0.1:{free_port()}"
    result = await cli.run("login", "--homeserver", dead, "--user", "ambtenaar3",
                           "--password-file", str(cli.password_file()), ok=False)
    assert "does not answer" in one_error_line(result)
    assert dead in result.err
    result = await clis["archivaris"].run("archive", "rooms", "--bridge", dead, ok=False)
    assert "does not answer" in one_error_line(result)
    assert not cli.store.exists()
    # A stored session whose homeserver went away:
    shutil.copytree(clis["ambtenaar1"].store, cli.store)
    session = json.loads((cli.store / "session.json").read_text())
    (cli.store / "session.json").write_text(json.dumps({**session, "homeserver": dead}))
    assert "does not answer" in one_error_line(await cli.run("rooms", ok=False))


async def test_not_logged_in(cli_stack: Stack) -> None:
    cli = cli_stack.cli("nobody", None)
    for args in (("rooms",), ("send", "Overleg", "hallo"), ("archive", "rooms")):
        assert "not logged in" in one_error_line(await cli.run(*args, ok=False))


async def test_unknown_room_and_event(clis: dict[str, Cli], overleg: str) -> None:
    cli = clis["ambtenaar1"]
    assert "unknown room" in one_error_line(await cli.run("read", "Bestaat niet", ok=False))
    assert "unknown room" in one_error_line(
        await cli.run("send", "!onbekend:test.localhost", "hallo", ok=False))
    assert "unknown room" in one_error_line(
        await cli.run("send", "#onbekend", "hallo", ok=False))
    assert "unknown event" in one_error_line(
        await cli.run("react", "Overleg", "$onbekend", "👍", ok=False))
    assert "unknown room" in one_error_line(
        await clis["archivaris"].run("archive", "verify", "Bestaat niet", ok=False))


async def test_login_without_a_terminal_never_prompts(cli_stack: Stack) -> None:
    cli = cli_stack.cli("no-terminal", "ambtenaar3")
    result = await cli.run("login", "--homeserver", cli_stack.hs.url, "--user", "ambtenaar3",
                           ok=False)  # a prompt would hang: caught by the 60 s limit
    assert "--password-file" in one_error_line(result)
    assert not os.path.exists(cli.store / "session.json")
