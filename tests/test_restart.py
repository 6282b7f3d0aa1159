"""Stopping the pilot and starting it again at once on the same data dir and ports.

A stop leaves TIME_WAIT sockets on the homeserver's and the bridge's ports whenever the servers
closed kept-alive client connections (Element keeps several open). Synapse and aiohttp bind
with SO_REUSEADDR and start regardless; the port probe of `up` must not refuse them."""

from __future__ import annotations

import errno
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from server_bridge.errors import PortInUseError
from server_bridge.supervisor import check_port_free
from tests.helpers import free_port, processes_mentioning
from tests.test_up import data_dir, login, start_up, stop, wait_healthy

__all__ = ["data_dir"]  # the fixture, shared with test_up

REPO = Path(__file__).resolve().parents[1]
TIME_WAIT = "06"  # the state column of /proc/net/tcp


def tcp_states(port: int) -> list[str]:
    """The states of every IPv4 TCP socket on this machine whose local port is ``port``."""
    states = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port:
            states.append(fields[3])
    return states


def wait_for_time_wait(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while TIME_WAIT not in tcp_states(port):
        assert time.monotonic() < deadline, f"no TIME_WAIT on {port}: {tcp_states(port)}"
        time.sleep(0.1)


def plain_bind_refused(port: int) -> bool:
    """What the old probe did: a bind without SO_REUSEADDR."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def leave_time_wait_on_a_port() -> int:
    """A server (bound as Synapse and aiohttp bind) that closes a kept-alive connection
    itself, then stops: its port is left with only a TIME_WAIT socket."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port: int = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server closes first
    assert client.recv(1) == b""  # the client sees the server's FIN ...
    client.close()  # ... and closes its end, as a browser does
    wait_for_time_wait(port)
    return port


def test_the_probe_passes_a_port_with_only_time_wait_sockets() -> None:
    port = leave_time_wait_on_a_port()
    assert plain_bind_refused(port)  # the old probe would have said "already in use"
    check_port_free("127.0.0.1", port, "homeserver")
    # ... and a server binding as Synapse does starts on it.
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()


@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0"])
def test_the_probe_still_refuses_a_port_that_is_really_taken(address: str) -> None:
    port = leave_time_wait_on_a_port()  # TIME_WAIT too: the listener must still be seen
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind((address, port))
        busy.listen()
        with pytest.raises(PortInUseError) as caught:
            check_port_free("127.0.0.1", port, "bridge")
    assert str(caught.value) == (
        f"bridge port {port} on 127.0.0.1 is already in use (choose another with --bridge-port)"
    )


def rijkschat(home: Path, *args: str) -> str:
    """The `rijkschat` CLI as a user runs it, with its own data dir; its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(XDG_DATA_HOME=str(home / "data"), HOME=str(home), COLUMNS="200",
               PYTHONPATH=str(REPO))
    home.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "client_cli", *args],
        cwd=home, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def archive_search(home: Path, word: str, timeout: float = 90) -> list[Any]:
    """Search as the archivist until the archiver has captured ``word``."""
    deadline = time.monotonic() + timeout
    while True:
        hits: list[Any] = json.loads(rijkschat(home, "archive", "search", word, "--json"))
        if hits or time.monotonic() > deadline:
            return hits
        time.sleep(0.5)


def user(creds: dict[str, Any], role: str) -> dict[str, Any]:
    found: dict[str, Any] = next(u for u in creds["users"] if u["role"] == role)
    return found


def test_up_again_at_once_after_ctrl_c_with_kept_alive_clients(
    data_dir: Path, tmp_path: Path
) -> None:
    ports = (free_port(), free_port(), free_port())
    hs_port, bridge_port, _ = ports
    pilot = start_up(data_dir, ports=ports)
    wait_healthy(pilot)
    creds = json.loads((data_dir / "credentials.json").read_text())

    # A message in a key official's room, captured by the archiver.
    minister, archivist = user(creds, "key_official"), user(creds, "archivist")
    for who, home, extra in ((minister, tmp_path / "minister", ()),
                             (archivist, tmp_path / "archivist", ("--bridge", pilot.bridge))):
        home.mkdir()
        (home / "password").write_text(who["password"] + "\n")
        rijkschat(home, "login", "--homeserver", pilot.homeserver, "--user", who["user_id"],
                  "--password-file", str(home / "password"), *extra)
    word = f"herstart{secrets.token_hex(4)}"
    room_id = rijkschat(tmp_path / "minister", "create", "Herstart").strip().splitlines()[-1]
    rijkschat(tmp_path / "minister", "send", room_id, f"Bericht {word} voor het archief")
    hits = archive_search(tmp_path / "archivist", word)
    assert [(h["room"]["room_id"], h["event"]["decryption"]) for h in hits] == [
        (room_id, "decrypted")
    ]
    assert hits[0]["event"]["content"]["body"] == f"Bericht {word} voor het archief"

    # Clients holding kept-alive connections, as Element does, to both servers.
    clients = [httpx.Client(timeout=10) for _ in range(3)]
    try:
        for client in clients:
            versions = client.get(f"{pilot.homeserver}/_matrix/client/versions")
            assert versions.status_code == 200
            assert client.get(f"{pilot.bridge}/healthz").status_code == 200
        assert stop(pilot, signal.SIGINT) < 20  # Ctrl-C, with the connections still open
        assert pilot.proc.returncode == 0
        assert processes_mentioning(str(data_dir)) == []
    finally:
        for client in clients:
            client.close()  # each answers the servers' FIN: TIME_WAIT on the servers' side
    for port in (hs_port, bridge_port):
        wait_for_time_wait(port)
        assert plain_bind_refused(port), tcp_states(port)  # what made `up` refuse to start

    # `make up` again at once: same data dir, same ports.
    again = start_up(data_dir, ports=ports, out_name="up2.out")
    health = wait_healthy(again)
    assert health["components"] == {"homeserver": "up", "archiver": "syncing", "bridge": "up"}
    assert "already in use" not in again.text()
    creds2 = json.loads((data_dir / "credentials.json").read_text())
    assert creds2["users"] == creds["users"]  # users and passwords kept
    for u in creds["users"]:
        resp = login(again.homeserver, u["user_id"], u["password"])
        assert resp.status_code == 200, (u["user_id"], resp.text)
    # The archive is kept: the message is still found, and the chains verify.
    assert archive_search(tmp_path / "archivist", word) == hits
    assert stop(again, signal.SIGINT) < 20
    assert again.proc.returncode == 0
    verify = subprocess.run(
        [sys.executable, "-m", "archiver_bot", "verify", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "archive verified: OK" in verify.stdout
    assert f"OK      {room_id}" in verify.stdout
