"""`rijkschat keys export | import`, and `send` sharing the room key with the archiver's
device before it encrypts: real Synapse with the policy module (enforce), the real bot."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from nio.crypto.key_export import decrypt_and_read

from client_cli.__main__ import build_parser
from tests.bot.conftest import wait_archived
from tests.cli.conftest import Cli, Stack, one_error_line
from tests.e2e_client import wait_for

PASSPHRASE = "correct horse battery staple"


def _passphrase_file(cli: Cli, text: str = PASSPHRASE) -> Path:
    path = cli.home / "passphrase"
    path.write_text(text + "\n")
    return path


async def test_keys_export_writes_elements_format_with_the_rooms_session_and_import_reads_it(
    cli_stack: Stack, clis: dict[str, Cli]
) -> None:
    minister = clis["minister"]
    room_id = (await minister.run("create", "Sleuteloverleg", "--invite", "ambtenaar1")).line
    event_id = (await minister.run("send", room_id, "Het besluit valt vrijdag.")).line
    events = await wait_archived(
        cli_stack.hs.settings.data_dir, room_id,
        lambda evs: any(e.event_id == event_id and e.decryption == "decrypted" for e in evs))
    session_id = next(e.session_id for e in events if e.event_id == event_id)
    assert session_id

    pfile = _passphrase_file(minister)
    export = minister.home / "sleutels.txt"
    result = await minister.run("keys", "export", str(export), "--passphrase-file", str(pfile))
    assert "Exported" in result.out
    text = export.read_text()
    assert text.startswith("-----BEGIN MEGOLM SESSION DATA-----")
    assert text.rstrip().endswith("-----END MEGOLM SESSION DATA-----")
    assert export.stat().st_mode & 0o077 == 0
    sessions = json.loads(decrypt_and_read(str(export), PASSPHRASE))
    mine = [s for s in sessions if s["room_id"] == room_id and s["session_id"] == session_id]
    assert len(mine) == 1
    assert mine[0]["algorithm"] == "m.megolm.v1.aes-sha2"
    assert mine[0]["sender_claimed_keys"]["ed25519"]
    with pytest.raises(ValueError, match="HMAC check failed"):
        decrypt_and_read(str(export), "the wrong passphrase")

    # Never overwrites; the passphrase is never an argument; no terminal means a clear error.
    line = one_error_line(await minister.run(
        "keys", "export", str(export), "--passphrase-file", str(pfile), ok=False))
    assert "exists already" in line
    refused = await minister.run("keys", "export", str(minister.home / "b.txt"),
                                 "--passphrase", PASSPHRASE, ok=False)
    assert refused.code != 0
    assert not (minister.home / "b.txt").exists()
    line = one_error_line(await minister.run("keys", "export", str(minister.home / "c.txt"),
                                             ok=False))
    assert "--passphrase-file" in line
    assert not (minister.home / "c.txt").exists()

    # A new device of the same user reads the old message only after importing the keys.
    other = cli_stack.cli("minister-tweede", "minister")
    await other.login()
    before = await other.run("read", room_id, "--json")
    assert "Het besluit valt vrijdag." not in before.out
    line = one_error_line(await other.run(
        "keys", "import", str(export), "--passphrase-file",
        str(_passphrase_file(other, "niet het wachtwoord")), ok=False))
    assert "wrong passphrase" in line
    imported = await other.run("keys", "import", str(export), "--passphrase-file",
                               str(_passphrase_file(other)))
    assert "Imported" in imported.out
    after = await other.run("read", room_id, "--json")
    assert "Het besluit valt vrijdag." in after.out


async def test_sending_at_once_in_a_new_key_officials_room_is_always_archived_decrypted(
    cli_stack: Stack, clis: dict[str, Cli], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The race of Element: a room created with a key official, a message sent at once. The
    CLI's own code path (create, then send, in one process: no start-up time in between)."""
    minister = clis["minister"]
    monkeypatch.setenv("XDG_DATA_HOME", str(minister.data))
    parser = build_parser()

    async def run(*argv: str) -> str:
        args = parser.parse_args(list(argv))
        assert await args.impl(args) == 0
        return capsys.readouterr().out.strip().splitlines()[-1]

    sent: dict[str, str] = {}
    for n in range(20):
        room_id = await run("create", f"Direct overleg {n}", "--invite", "ambtenaar1")
        sent[room_id] = await run("send", room_id, f"Eerste bericht {n}")

    data_dir = cli_stack.hs.settings.data_dir
    for room_id, event_id in sent.items():
        # Decrypted (the key may come a sync after the message), and nothing undecryptable.
        events = await wait_archived(
            data_dir, room_id,
            lambda evs, e=event_id: any(x.event_id == e and x.decryption == "decrypted"
                                        for x in evs)
            and not any(x.decryption == "undecryptable" for x in evs),
            timeout=60)
        assert [x.event_id for x in events if x.sender == minister.user_id
                and x.type == "m.room.message"] == [event_id]


async def test_a_send_right_after_the_archiver_joined_shares_the_key_with_it(
    cli_stack: Stack, clis: dict[str, Cli], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race made deterministic: a client that already shares a room key in a room (so
    nio believes it knows the members) sends just after a key official's invitation brought
    the archiver in, before its own sync saw the archiver join. The send must share a room
    key with the archiver's device first; otherwise the message is archived undecryptable."""
    from client_cli.matrix import connect
    from client_cli.storage import Storage

    sender = clis["ambtenaar1"]
    monkeypatch.setenv("XDG_DATA_HOME", str(sender.data))
    hs = cli_stack.hs
    archiver = hs.user_id("rijksarchief")
    sent: dict[str, str] = {}
    async with connect(Storage()) as conn, aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {conn.client.access_token}"}

        async def archiver_joined(room_id: str) -> bool:
            async with http.get(f"{hs.url}/_matrix/client/v3/rooms/{quote(room_id, safe='')}"
                                "/joined_members", headers=auth) as resp:
                body = await resp.json()
            return archiver in (body.get("joined") or {})

        for n in range(5):
            resp = await conn.client.room_create(
                name=f"Werkoverleg {n}", invite=[hs.user_id("ambtenaar2")],
                initial_state=[
                    {"type": "m.room.encryption", "state_key": "",
                     "content": {"algorithm": "m.megolm.v1.aes-sha2"}},
                    # the archiver must not see the message from before it was there
                    {"type": "m.room.history_visibility", "state_key": "",
                     "content": {"history_visibility": "joined"}},
                ])
            room_id = str(resp.room_id)
            await conn.sync(full_state=False)
            await conn.send(room_id, "m.room.message", {"msgtype": "m.text", "body": "vooraf"})
            await conn.client.room_invite(room_id, hs.user_id("minister"))
            await wait_for(lambda r=room_id: archiver_joined(r), timeout=30)  # type: ignore[misc]
            sent[room_id] = await conn.send(
                room_id, "m.room.message", {"msgtype": "m.text", "body": f"meteen {n}"})

    data_dir = hs.settings.data_dir
    for room_id, event_id in sent.items():
        await wait_archived(
            data_dir, room_id,
            lambda evs, e=event_id: any(x.event_id == e and x.decryption == "decrypted"
                                        for x in evs)
            and not any(x.decryption == "undecryptable" for x in evs),
            timeout=60)


async def _on_a_terminal(cli: Cli, *args: str, typed: list[str]) -> tuple[int, str]:
    """Run `rijkschat` with a pseudo-terminal as its controlling terminal (getpass reads
    from it with echo off) and type the given lines at its prompts."""
    import asyncio
    import fcntl
    import os
    import pty
    import sys
    import termios

    master, slave = pty.openpty()

    def own_terminal() -> None:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client_cli", *args, cwd=cli.home, env=cli.env(),
        stdin=slave, stdout=asyncio.subprocess.PIPE, stderr=slave,
        preexec_fn=own_terminal,
    )
    os.close(slave)
    seen = b""
    loop = asyncio.get_running_loop()
    try:
        for line in typed:
            while b": " not in seen.rsplit(b"\n", 1)[-1]:
                chunk = await asyncio.wait_for(loop.run_in_executor(None, os.read, master,
                                                                    1024), 30)
                seen += chunk
            os.write(master, line.encode() + b"\n")
            seen += b"\n"
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        os.close(master)
    return proc.returncode or 0, out.decode()


async def test_keys_export_asks_the_passphrase_twice_on_the_terminal(
    cli_stack: Stack, clis: dict[str, Cli]
) -> None:
    minister = clis["minister"]
    room_id = (await minister.run("create", "Terminaloverleg")).line
    await minister.run("send", room_id, "Een sleutel om te exporteren.")
    differ = minister.home / "verschillend.txt"
    code, _ = await _on_a_terminal(minister, "keys", "export", str(differ),
                                   typed=[PASSPHRASE, PASSPHRASE + "!"])
    assert code != 0
    assert not differ.exists()
    export = minister.home / "gevraagd.txt"
    code, out = await _on_a_terminal(minister, "keys", "export", str(export),
                                     typed=[PASSPHRASE, PASSPHRASE])
    assert code == 0, out
    assert json.loads(decrypt_and_read(str(export), PASSPHRASE))
