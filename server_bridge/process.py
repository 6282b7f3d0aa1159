"""Child processes that never outlive their parent.

Every component runs in its own session (so a Ctrl-C in the terminal reaches only the
supervisor, which stops the children in order) and with ``PR_SET_PDEATHSIG`` so that
the kernel ends it if the supervisor itself is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the forked child, before exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


async def spawn(
    name: str, argv: Sequence[str], log_file: Path, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """Start a component with its output appended to log_file."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            env={**os.environ, **(env or {})},
        )
    finally:
        os.close(fd)
    log.info("started %s (pid %d)", name, proc.pid)
    return proc


async def terminate(name: str, proc: asyncio.subprocess.Process, grace: float = 8.0) -> None:
    """SIGTERM the process group, then SIGKILL after `grace` seconds."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        log.warning("%s did not stop within %.0f s; killing it", name, grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
    # Anything the component left in its group goes too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    log.info("stopped %s", name)


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
