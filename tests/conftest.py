"""Fixtures shared by the whole suite: a real Synapse homeserver for the session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server_bridge.process import terminate
from tests.helpers import RunningHomeserver, start_homeserver


@pytest.fixture(scope="session")
async def homeserver(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningHomeserver]:
    hs = await start_homeserver(tmp_path_factory.mktemp("synapse"))
    yield hs
    await terminate("homeserver", hs.proc)
