"""A key export written by our own `rijkschat keys export` brings back what the join race
left undecryptable, imported with `rijkschat-archiver import-keys` while the bot runs.

The sender is a real `rijkschat` device: the race is played with a nio client opened on that
device's own session and E2E store (as a second program of the same user would), then the
CLI itself writes the export from its store.
"""

from __future__ import annotations

import json
from pathlib import Path

from nio import AsyncClient

from client_cli.matrix import client_config
from tests.bot.conftest import ArchiverProcess
from tests.bot.keyrace import archive_state, import_cmd, reproduce_race
from tests.bot.test_key_import import PASSPHRASE, assert_all_decrypted, run
from tests.cli.conftest import Cli
from tests.e2e_client import E2EUser
from tests.helpers import RunningHomeserver


def cli_device_as_e2e_user(hs: RunningHomeserver, cli: Cli) -> E2EUser:
    """A test client on the CLI device's own session and store (same device, same keys)."""
    session = json.loads((cli.store / "session.json").read_text("utf-8"))
    pickle_key = (cli.store / "pickle.key").read_text("utf-8").strip()
    user = E2EUser.__new__(E2EUser)
    user.hs = hs
    user.localpart = str(cli.localpart)
    user.user_id = session["user_id"]
    user.client = AsyncClient(hs.url, session["user_id"], store_path=str(cli.store / "store"),
                              config=client_config(pickle_key))
    user.client.restore_login(session["user_id"], session["device_id"], session["access_token"])
    return user


async def test_rijkschat_keys_export_imports_into_the_archive(
    homeserver: RunningHomeserver,
    users: dict[str, E2EUser],
    archiver: ArchiverProcess,
    tmp_path: Path,
) -> None:
    data_dir = homeserver.settings.data_dir
    cli = Cli(homeserver, tmp_path / "minister-cli", "minister")
    await cli.login()
    sender = cli_device_as_e2e_user(homeserver, cli)
    try:
        await sender.sync()
        race = await reproduce_race(homeserver, sender, users["ambtenaar2"], "Sleutels via CLI")
    finally:
        await sender.client.close()
    assert (await archive_state(data_dir, race.room_id))[0] == len(race.early)

    pass_file = tmp_path / "pass.txt"
    pass_file.write_text(PASSPHRASE + "\n")
    export = tmp_path / "rijkschat-keys.txt"
    await cli.run("keys", "export", str(export), "--passphrase-file", str(pass_file))
    assert export.read_text().startswith("-----BEGIN MEGOLM SESSION DATA-----")
    assert PASSPHRASE not in export.read_text()

    code, out, err = await run(import_cmd(data_dir, export, pass_file))
    assert code == 0, err
    assert f"events decrypted: {len(race.early)}" in out, out
    await assert_all_decrypted(homeserver, race, "cli")
