"""The `rijkschat` CLI as a real subprocess against a real stack of its own: Synapse with the
archiver policy module (enforce mode), the archiver bot, and the bridge (in this process)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from server_bridge.process import terminate
from server_bridge.web.app import create_app
from tests.bot.conftest import ArchiverProcess
from tests.helpers import RunningHomeserver, start_homeserver

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def line(self) -> str:
        return self.out.strip().splitlines()[-1] if self.out.strip() else ""


class Cli:
    """One user's `rijkschat`, with its own XDG data dir."""

    def __init__(self, hs: RunningHomeserver, home: Path, localpart: str | None) -> None:
        self.hs = hs
        self.home = home
        self.localpart = localpart
        home.mkdir(parents=True, exist_ok=True)
        self.data = home / "data"

    @property
    def user_id(self) -> str:
        assert self.localpart is not None
        return self.hs.user_id(self.localpart)

    @property
    def store(self) -> Path:
        return self.data / "rijkschat"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
        env.update(XDG_DATA_HOME=str(self.data), HOME=str(self.home), COLUMNS="200",
                   PYTHONPATH=str(REPO))
        return env

    async def spawn(self, *args: str, stdin: int = asyncio.subprocess.DEVNULL,
                    sigint_ignored: bool = False) -> asyncio.subprocess.Process:
        """Started with SIGINT at its default, as from a terminal, or (``sigint_ignored``)
        ignored, as a background job of a script is; never with whatever the test run
        itself inherited."""
        disposition = signal.SIG_IGN if sigint_ignored else signal.SIG_DFL
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "client_cli", *args, cwd=self.home, env=self.env(),
            stdin=stdin, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            preexec_fn=lambda: signal.signal(signal.SIGINT, disposition),
        )

    async def run(self, *args: str, input: str | None = None, ok: bool = True,
                  timeout: float = 60) -> Result:
        proc = await self.spawn(*args, stdin=asyncio.subprocess.PIPE if input is not None
                                else asyncio.subprocess.DEVNULL)
        out, err = await asyncio.wait_for(
            proc.communicate(input.encode() if input is not None else None), timeout)
        result = Result(proc.returncode or 0, out.decode(), err.decode())
        assert "Traceback" not in result.err, result.err
        if ok:
            assert result.code == 0, f"rijkschat {' '.join(args)}: {result}"
        return result

    def password_file(self, password: str | None = None) -> Path:
        path = self.home / "password"
        assert self.localpart is not None or password is not None
        path.write_text((password or self.hs.password(str(self.localpart))) + "\n")
        return path

    async def login(self, *extra: str) -> Result:
        return await self.run("login", "--homeserver", self.hs.url, "--user", self.user_id,
                              "--password-file", str(self.password_file()), *extra)


def one_error_line(result: Result) -> str:
    """A failure is one line on stderr, a non-zero exit, no traceback."""
    assert result.code != 0, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("rijkschat: "), lines
    return lines[0]


@dataclass
class Stack:
    hs: RunningHomeserver
    archiver: ArchiverProcess
    root: Path

    @property
    def bridge_url(self) -> str:
        return self.hs.settings.bridge_url

    def cli(self, name: str, localpart: str | None = None) -> Cli:
        return Cli(self.hs, self.root / name, localpart)


@pytest.fixture(scope="session")
async def cli_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    root = tmp_path_factory.mktemp("cli")
    hs = await start_homeserver(root / "server", archiving_mode="enforce", ledger=False)
    runner: web.AppRunner | None = None
    archiver = ArchiverProcess(hs.settings.data_dir)
    try:
        await archiver.start()
        runner = web.AppRunner(create_app(hs.settings), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, hs.settings.bind_host, hs.settings.bridge_port).start()
        yield Stack(hs, archiver, root)
    finally:
        if runner is not None:
            await runner.cleanup()
        await archiver.stop()
        await terminate("homeserver", hs.proc)


@pytest.fixture(scope="session")
async def clis(cli_stack: Stack) -> dict[str, Cli]:
    """Logged-in CLIs (each with its own data dir) for the users the tests chat as."""
    users = {name: cli_stack.cli(name, name)
             for name in ("minister", "ambtenaar1", "ambtenaar2", "archivaris")}
    await asyncio.gather(*(
        cli.login("--bridge", cli_stack.bridge_url) for cli in users.values()))
    return users


async def read_until(stream: asyncio.StreamReader, needle: str, timeout: float = 30) -> str:
    seen = ""

    async def scan() -> str:
        nonlocal seen
        while needle not in seen:
            chunk = await stream.read(4096)
            if not chunk:
                raise AssertionError(f"stream ended before {needle!r}: {seen[-2000:]}")
            seen += chunk.decode()
        return seen

    return await asyncio.wait_for(scan(), timeout)


def interrupt(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGINT)
