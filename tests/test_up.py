"""`rijkschat-server up` as a real subprocess: health, credentials, logins, stop, restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, processes_mentioning

UP_TIMEOUT = 120


@dataclass
class Pilot:
    proc: subprocess.Popen[str]
    data_dir: Path
    hs_port: int
    bridge_port: int
    output: Path

    @property
    def bridge(self) -> str:
        return f"http://127.0.0.1:{self.bridge_port}"

    @property
    def homeserver(self) -> str:
        return f"http://127.0.0.1:{self.hs_port}"

    def text(self) -> str:
        return self.output.read_text()


def start_up(
    data_dir: Path,
    *extra: str,
    out_name: str = "up.out",
    ports: tuple[int, int, int] | None = None,
) -> Pilot:
    """``ports``: (homeserver, bridge, archiver metrics); free ones when not given."""
    hs_port, bridge_port, metrics_port = ports or (free_port(), free_port(), free_port())
    output = data_dir.parent / f"{data_dir.name}-{out_name}"
    fh = output.open("a")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server_bridge",
            "up",
            "--data-dir",
            str(data_dir),
            "--homeserver-port",
            str(hs_port),
            "--bridge-port",
            str(bridge_port),
            "--metrics-port",
            str(metrics_port),
            *extra,
        ],
        stdout=fh,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Pilot(proc, data_dir, hs_port, bridge_port, output)


def wait_healthy(pilot: Pilot, timeout: float = UP_TIMEOUT) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        assert pilot.proc.poll() is None, f"up exited early:\n{pilot.text()}"
        try:
            resp = httpx.get(f"{pilot.bridge}/healthz", timeout=2)
            last = (resp.status_code, resp.text)
            if resp.status_code == 200:
                body: dict[str, object] = resp.json()
                return body
            assert resp.status_code == 503
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"never healthy (last: {last}):\n{pilot.text()}")


def stop(pilot: Pilot, sig: int = signal.SIGTERM) -> float:
    started = time.monotonic()
    pilot.proc.send_signal(sig)
    pilot.proc.wait(timeout=20)
    return time.monotonic() - started


def login(homeserver: str, user_id: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{homeserver}/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id},
            "password": password,
        },
        timeout=10,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "pilot-data"
    yield d
    for pid, _ in processes_mentioning(str(d)):  # never leave a process behind, even on failure
        os.kill(pid, signal.SIGKILL)


def test_up_runs_the_pilot_and_stops_cleanly_and_restarts(data_dir: Path) -> None:
    pilot = start_up(data_dir)
    health = wait_healthy(pilot)
    assert health["components"] == {"homeserver": "up", "archiver": "syncing", "bridge": "up"}

    creds_file = data_dir / "credentials.json"
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    creds = json.loads(creds_file.read_text())
    assert creds["homeserver"] == pilot.homeserver
    assert creds["bridge"] == pilot.bridge
    assert creds["archiver_user_id"] == f"@rijksarchief:{creds['server_name']}"
    roles = sorted(u["role"] for u in creds["users"])
    assert roles.count("key_official") >= 1
    assert roles.count("official") >= 2
    assert "archivist" in roles
    assert "archiver" in roles
    for user in creds["users"]:
        assert len(user["password"]) >= 20
        assert {"user_id", "password", "role", "display_name"} <= set(user)
        resp = login(pilot.homeserver, user["user_id"], user["password"])
        assert resp.status_code == 200, (user["user_id"], resp.text)
    # The archiver's metrics: loopback, behind the token in its data dir.
    port = json.loads((data_dir / "rijkschat.json").read_text())["archiver_metrics_port"]
    token = (data_dir / "archiver" / "metrics.token").read_text().strip()
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    assert httpx.get(metrics_url, timeout=5).status_code == 401
    resp = httpx.get(metrics_url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert resp.status_code == 200
    assert "rijkschat_archiver_syncs_total" in resp.text
    assert "rijkschat login" in pilot.text()
    assert str(creds_file) in pilot.text()

    elapsed = stop(pilot)
    assert pilot.proc.returncode == 0
    assert elapsed < 15, f"stop took {elapsed:.1f}s"
    assert processes_mentioning(str(data_dir)) == []

    # Passwords never reach a log: not the supervisor's output, nor any component's.
    logs = [pilot.output, *(data_dir / "logs").iterdir(), data_dir / "homeserver/homeserver.log"]
    all_logs = "\n".join(p.read_text(errors="replace") for p in logs)
    for user in creds["users"]:
        assert user["password"] not in all_logs

    # A restart on the same data dir keeps users and passwords.
    again = start_up(data_dir, out_name="up2.out")
    wait_healthy(again)
    creds2 = json.loads(creds_file.read_text())
    assert {u["user_id"]: u["password"] for u in creds2["users"]} == {
        u["user_id"]: u["password"] for u in creds["users"]
    }
    for user in creds2["users"]:
        assert login(again.homeserver, user["user_id"], user["password"]).status_code == 200
    assert stop(again, signal.SIGINT) < 15
    assert processes_mentioning(str(data_dir)) == []


def test_a_component_that_dies_is_restarted_and_logged(data_dir: Path) -> None:
    pilot = start_up(data_dir)
    wait_healthy(pilot)
    ((archiver_pid, _),) = [
        p for p in processes_mentioning(str(data_dir)) if "archiver_bot" in p[1]
    ]
    os.kill(archiver_pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while "restarted archiver (pid" not in pilot.text():
        assert time.monotonic() < deadline, pilot.text()
        time.sleep(0.2)
    assert "archiver exited with code -9; restarting" in pilot.text()
    new = [p for p in processes_mentioning(str(data_dir)) if "archiver_bot" in p[1]]
    assert len(new) == 1
    assert new[0][0] != archiver_pid
    # Healthy again with the new archiver process on the same device: wait for its own
    # status (the dead one's heartbeat stays fresh for a while and would pass /healthz).
    status_file = data_dir / "archiver" / "status.json"
    while json.loads(status_file.read_text())["pid"] != new[0][0]:
        assert time.monotonic() < deadline, status_file.read_text()
        time.sleep(0.2)
    wait_healthy(pilot)
    stop(pilot)
    assert processes_mentioning(str(data_dir)) == []


def _run_up(data_dir: Path, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server_bridge", "up", "--data-dir", str(data_dir), *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bad_roster_stops_before_anything_starts(tmp_path: Path) -> None:
    roster = tmp_path / "roster.toml"
    roster.write_text('[[users]]\nlocalpart = "minister"\nrole = "koning"\n')
    data_dir = tmp_path / "d"
    result = _run_up(data_dir, "--roster", str(roster))
    assert result.returncode != 0
    assert "user #1 ('minister'): unknown role 'koning'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not data_dir.exists()


def test_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run_up(
            tmp_path / "d", "--homeserver-port", str(port), "--bridge-port", str(free_port())
        )
    assert result.returncode != 0
    assert f"homeserver port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert processes_mentioning(str(tmp_path / "d")) == []


def test_unwritable_data_dir_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = _run_up(
        blocker / "data", "--homeserver-port", str(free_port()), "--bridge-port", str(free_port())
    )
    assert result.returncode != 0
    assert "is not writable" in result.stderr
    assert "Traceback" not in result.stderr


def test_homeserver_that_does_not_come_up_in_time(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    result = _run_up(
        data_dir,
        "--startup-timeout",
        "0.01",
        "--homeserver-port",
        str(free_port()),
        "--bridge-port",
        str(free_port()),
    )
    assert result.returncode != 0
    assert "did not answer" in result.stderr
    assert "Traceback" not in result.stderr
    assert processes_mentioning(str(data_dir)) == []
