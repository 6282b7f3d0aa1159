"""`rijkschat-server up`: start the homeserver, provision, start the archiver and the bridge,
restart whatever dies (with backoff), and stop everything on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from server_bridge.appservice.wiring import archiving_setup
from server_bridge.errors import DataDirError, HomeserverError, PortInUseError
from server_bridge.homeserver.admin import wait_until_up
from server_bridge.homeserver.config import prepare_homeserver, registration_secret
from server_bridge.process import spawn, tail, terminate
from server_bridge.provision import Account, provision
from server_bridge.roster import Role, Roster
from server_bridge.settings import Settings

log = logging.getLogger(__name__)

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
HEALTHY_RUN = 60.0  # a component that ran this long gets a fresh backoff


@dataclass
class Component:
    name: str
    argv: list[str]
    log_file: Path
    grace: float = 5.0
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class Supervisor:
    """Keeps components running; stops them in reverse start order."""

    def __init__(self) -> None:
        self.components: list[Component] = []
        self._stopping = asyncio.Event()

    async def start(self, component: Component) -> None:
        component.proc = await spawn(component.name, component.argv, component.log_file)
        self.components.append(component)
        component.watcher = asyncio.create_task(self._watch(component))

    async def _watch(self, c: Component) -> None:
        backoff = BACKOFF_START
        while True:
            assert c.proc is not None
            started = time.monotonic()
            code = await c.proc.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > HEALTHY_RUN:
                backoff = BACKOFF_START
            log.warning(
                "%s exited with code %s; restarting in %.0f s (restart #%d, log: %s)",
                c.name,
                code,
                backoff,
                c.restarts + 1,
                c.log_file,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            if self._stopping.is_set():
                return
            backoff = min(backoff * 2, BACKOFF_MAX)
            c.restarts += 1
            c.proc = await spawn(c.name, c.argv, c.log_file)
            log.info("restarted %s (pid %d)", c.name, c.proc.pid)

    async def stop(self) -> None:
        self._stopping.set()
        for c in self.components:
            if c.watcher:
                c.watcher.cancel()
        # The archiver and the bridge together, then the homeserver they depend on.
        dependents = [c for c in self.components if c.name != "homeserver"]
        await asyncio.gather(*(terminate(c.name, c.proc, c.grace) for c in dependents if c.proc))
        for c in self.components:
            if c.name == "homeserver" and c.proc:
                await terminate(c.name, c.proc, c.grace)


def check_data_dir(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise DataDirError(f"data dir {data_dir} is not writable: {exc.strerror}") from exc


def check_port_free(host: str, port: int, what: str) -> None:
    """Fail with one clear line when ``port`` is taken by a live socket.

    The probe binds as the servers themselves do: Synapse (Twisted) and aiohttp set
    ``SO_REUSEADDR``, so they start on a port whose only sockets are connections in TIME_WAIT,
    which a stop leaves behind whenever the server closed kept-alive client connections
    (a plain bind would refuse it for a minute). A listener (or any other socket bound to the
    address, wildcard included) still makes the bind fail."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUseError(
                    f"{what} port {port} on {host} is already in use "
                    f"(choose another with --{what}-port)"
                ) from exc
            raise


def check_instance(settings: Settings) -> None:
    """A data dir belongs to one server name: Synapse's database cannot be renamed."""
    if settings.instance_file.exists():
        previous = Settings.load(settings.data_dir)
        if previous.server_name != settings.server_name:
            raise DataDirError(
                f"{settings.data_dir} holds the server {previous.server_name!r}; "
                f"it cannot become {settings.server_name!r} (use another --data-dir)"
            )


def archiver_options(settings: Settings) -> list[str]:
    """The archiver's options that `up` decides: undecryptable grace and sender notices."""
    options = ["--undecryptable-grace", f"{settings.undecryptable_grace_seconds:g}"]
    if not settings.sender_notices:
        options.append("--no-sender-notices")
    return options


def banner(settings: Settings, accounts: list[Account]) -> str:
    people = "\n".join(
        f"    {a.user_id:<40} {a.role.value}" for a in accounts if a.role is not Role.ARCHIVER
    )
    example = next((a.user_id for a in accounts if a.role is Role.KEY_OFFICIAL), "@user:server")
    return f"""
Rijkschat pilot is running (Ctrl-C stops everything).

  Homeserver (Matrix client API): {settings.homeserver_url}
  Archive review (archivists):     {settings.bridge_url}/archief/
  Bridge health:                   {settings.bridge_url}/healthz
  Server name:                     {settings.server_name}
  Credentials (mode 0600):         {settings.credentials_file}
  Completeness audit:              rijkschat-server audit --data-dir {settings.data_dir}

  Users:
{people}

  Log in with the CLI:
    rijkschat login --homeserver {settings.homeserver_url} --user {example}
  Or with Element: homeserver {settings.homeserver_url}; passwords are in the credentials file.
"""


async def up(
    settings: Settings, roster: Roster, startup_timeout: float, archiving_mode: str = "enforce"
) -> None:
    """Bring the pilot up and keep it up until cancelled; always stop what was started.

    The homeserver loads the archiver policy module (``archiving_mode``: enforce | monitor)
    and the ledger's Application Service registration, both generated from the roster."""
    check_data_dir(settings.data_dir)
    if settings.homeserver_port == settings.bridge_port:
        raise PortInUseError("--homeserver-port and --bridge-port must differ")
    check_port_free(settings.bind_host, settings.homeserver_port, "homeserver")
    check_port_free(settings.bind_host, settings.bridge_port, "bridge")
    check_port_free(settings.bind_host, settings.metrics_port, "archiver-metrics")
    check_instance(settings)
    settings.save()
    archiving = archiving_setup(settings, roster, archiving_mode)
    layout = prepare_homeserver(
        root=settings.homeserver_dir,
        server_name=settings.server_name,
        port=settings.homeserver_port,
        bind_host=settings.bind_host,
        modules=archiving.modules,
        app_service_config_files=archiving.app_service_config_files,
    )
    logs = settings.data_dir / "logs"
    python = sys.executable
    supervisor = Supervisor()
    try:
        homeserver = Component(
            "homeserver",
            [python, "-m", "synapse.app.homeserver", "-c", str(layout.config_file)],
            logs / "homeserver.out",
            grace=6.0,
        )
        await supervisor.start(homeserver)
        log.info("waiting for the homeserver at %s", settings.homeserver_url)
        async with aiohttp.ClientSession() as session:
            try:
                await wait_until_up(
                    session, settings.homeserver_url, startup_timeout, alive=homeserver.alive
                )
            except HomeserverError as exc:
                detail = tail(layout.log_file, 5) or tail(homeserver.log_file, 5)
                raise type(exc)(f"{exc}\n--- last homeserver log lines ---\n{detail}") from exc
        accounts = await provision(settings, roster, registration_secret(layout))
        data_dir = str(settings.data_dir)
        await supervisor.start(
            Component(
                "archiver",
                [python, "-m", "archiver_bot", "run", "--data-dir", data_dir,
                 *archiver_options(settings)],
                logs / "archiver.log",
            )
        )
        await supervisor.start(
            Component(
                "bridge",
                [python, "-m", "server_bridge", "serve", "--data-dir", data_dir],
                logs / "bridge.log",
            )
        )
        print(banner(settings, accounts), flush=True)
        await asyncio.Event().wait()  # until cancelled by a signal
    finally:
        await asyncio.shield(supervisor.stop())
