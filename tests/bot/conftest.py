"""The archiver bot as a real subprocess against the session's real Synapse."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from archiver_bot.archive import Actor, ArchivePaths, StoredEvent, UnknownEventError, open_archive
from tests.e2e_client import E2EUser, wait_for
from tests.helpers import RunningHomeserver

TEST_ACTOR = Actor("@test:test.localhost", "test assertions")


class ArchiverProcess:
    def __init__(self, data_dir: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.extra_args = extra_args
        self.proc: asyncio.subprocess.Process | None = None
        self.log = data_dir / "logs" / "archiver-test.log"

    async def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        fh = self.log.open("a")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "archiver_bot",
            "run",
            "-v",
            "--data-dir",
            str(self.data_dir),
            *self.extra_args,
            stdout=fh,
            stderr=fh,
        )
        fh.close()
        started = time.time()

        async def syncing() -> bool:
            assert self.proc is not None
            assert self.proc.returncode is None, self.log.read_text()[-3000:]
            try:
                status = json.loads((self.data_dir / "archiver" / "status.json").read_text())
            except (OSError, ValueError):
                return False
            return bool(
                status.get("state") == "syncing"
                and status.get("pid") == self.proc.pid
                and status.get("last_sync_at", 0) >= started
            )

        await wait_for(syncing, timeout=60)

    async def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            os.kill(self.proc.pid, sig)
            await self.proc.wait()

    async def stop(self) -> None:
        await self.kill(signal.SIGTERM)


@pytest.fixture(scope="session")
async def archiver(homeserver: RunningHomeserver) -> AsyncIterator[ArchiverProcess]:
    proc = ArchiverProcess(homeserver.settings.data_dir)
    await proc.start()
    yield proc
    await proc.stop()


async def room_events(data_dir: Path, room_id: str) -> list[StoredEvent]:
    archive = await open_archive(ArchivePaths.for_data_dir(data_dir), role="reader")
    try:
        out: list[StoredEvent] = []
        token = None
        while True:
            try:
                page, token = await archive.room_events(TEST_ACTOR, room_id, token, 500)
            except UnknownEventError:  # the room is not archived (yet)
                return []
            out.extend(page)
            if token is None:
                return out
    finally:
        await archive.close()


async def wait_archived(
    data_dir: Path, room_id: str, predicate: Any, timeout: float = 30
) -> list[StoredEvent]:
    async def check() -> list[StoredEvent] | None:
        events = await room_events(data_dir, room_id)
        return events if predicate(events) else None

    result: list[StoredEvent] = await wait_for(check, timeout=timeout, interval=0.5)
    return result


@pytest.fixture
async def users(homeserver: RunningHomeserver, tmp_path: Path) -> AsyncIterator[dict[str, E2EUser]]:
    started: dict[str, E2EUser] = {}
    for name in ("minister", "sg", "ambtenaar1", "ambtenaar2", "ambtenaar3"):
        started[name] = await E2EUser(homeserver, name, tmp_path / name).start()
    yield started
    for user in started.values():
        await user.close()


def texts(events: list[StoredEvent]) -> list[str]:
    return [
        str((e.content or {}).get("body"))
        for e in events
        if e.type == "m.room.message" and e.content
    ]
