"""Shared test helpers: free ports, process scans, a real Synapse."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from server_bridge.homeserver.admin import wait_until_up
from server_bridge.homeserver.config import prepare_homeserver, registration_secret
from server_bridge.process import spawn, terminate
from server_bridge.provision import Account, provision
from server_bridge.roster import Role, Roster, RosterEntry
from server_bridge.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line contains `text` (e.g. a data dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append((int(entry.name), cmdline))
    return found


TEST_ROSTER = Roster(
    (
        RosterEntry("minister", "Minister van Testzaken", Role.KEY_OFFICIAL),
        RosterEntry("sg", "Secretaris-generaal", Role.KEY_OFFICIAL),
        RosterEntry("ambtenaar1", "Ambtenaar Een", Role.OFFICIAL),
        RosterEntry("ambtenaar2", "Ambtenaar Twee", Role.OFFICIAL),
        RosterEntry("ambtenaar3", "Ambtenaar Drie", Role.OFFICIAL),
        RosterEntry("archivaris", "Archivaris", Role.ARCHIVIST),
    )
)


@dataclass
class RunningHomeserver:
    settings: Settings
    accounts: dict[str, Account]  # by localpart
    proc: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        return self.settings.homeserver_url

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.settings.server_name}"

    def password(self, localpart: str) -> str:
        return self.accounts[localpart].password


async def start_homeserver(
    data_dir: Path,
    roster: Roster = TEST_ROSTER,
    *,
    archiving_mode: str | None = None,
    ledger: bool = False,
    settings: Settings | None = None,
    database: dict[str, object] | None = None,
) -> RunningHomeserver:
    """A real Synapse from the project's own config generator, with the roster provisioned.

    ``archiving_mode`` ("enforce" or "monitor") loads the archiver policy module, ``ledger``
    the ledger's AS registration (pointing at ``settings.bridge_url``); both off by default.
    ``settings`` reuses a data dir's ports (e.g. to restart on it); ``database`` is Synapse's
    database section (default SQLite; see ``postgres_database``)."""
    if settings is None:
        settings = Settings(
            data_dir=data_dir,
            server_name="test.localhost",
            homeserver_port=free_port(),
            bridge_port=free_port(),
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    settings.save()
    modules: list[dict[str, object]] = []
    as_files: list[str] = []
    if archiving_mode is not None or ledger:
        from server_bridge.appservice.wiring import archiving_setup

        setup = archiving_setup(settings, roster, archiving_mode or "enforce", ledger=ledger)
        modules = setup.modules if archiving_mode is not None else []
        as_files = setup.app_service_config_files
    layout = prepare_homeserver(
        root=settings.homeserver_dir,
        server_name=settings.server_name,
        port=settings.homeserver_port,
        modules=modules,
        app_service_config_files=as_files,
        database=database,
    )
    proc = await spawn(
        "homeserver",
        [sys.executable, "-m", "synapse.app.homeserver", "-c", str(layout.config_file)],
        data_dir / "logs" / "homeserver.out",
    )
    try:
        async with aiohttp.ClientSession() as session:
            await wait_until_up(
                session, settings.homeserver_url, 120, alive=lambda: proc.returncode is None
            )
        accounts = await provision(settings, roster, registration_secret(layout))
    except BaseException:
        await terminate("homeserver", proc)
        raise
    by_localpart = {a.user_id[1:].split(":")[0]: a for a in accounts}
    return RunningHomeserver(settings, by_localpart, proc)
