"""One typed settings object for the server side, loaded once per process."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from server_bridge.errors import DataDirError

DEFAULT_SERVER_NAME = "rijkschat.localhost"
DEFAULT_HOMESERVER_PORT = 8008
DEFAULT_BRIDGE_PORT = 8090
INSTANCE_FILE = "rijkschat.json"
DEFAULT_UNDECRYPTABLE_GRACE = 300.0  # seconds before an undecryptable event is reported


@dataclass(frozen=True)
class Settings:
    """Everything the server-side processes need to know about one pilot instance."""

    data_dir: Path
    server_name: str = DEFAULT_SERVER_NAME
    homeserver_port: int = DEFAULT_HOMESERVER_PORT
    bridge_port: int = DEFAULT_BRIDGE_PORT
    bind_host: str = "127.0.0.1"
    archiver_metrics_port: int | None = None  # default: the bridge port + 1
    undecryptable_grace_seconds: float = DEFAULT_UNDECRYPTABLE_GRACE
    sender_notices: bool = True  # the archiver tells senders of undecryptable events

    @property
    def homeserver_url(self) -> str:
        return f"http://{self.bind_host}:{self.homeserver_port}"

    @property
    def metrics_port(self) -> int:
        """The archiver's Prometheus endpoint (loopback, bearer token)."""
        return self.archiver_metrics_port or self.bridge_port + 1

    @property
    def bridge_url(self) -> str:
        return f"http://{self.bind_host}:{self.bridge_port}"

    # Layout of the data directory: every byte the pilot keeps lives below data_dir.
    @property
    def homeserver_dir(self) -> Path:
        return self.data_dir / "homeserver"

    @property
    def archiver_dir(self) -> Path:
        return self.data_dir / "archiver"

    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "credentials.json"

    @property
    def instance_file(self) -> Path:
        return self.data_dir / INSTANCE_FILE

    def archiver_user_id(self) -> str:
        from server_bridge.roster import ARCHIVER_LOCALPART

        return f"@{ARCHIVER_LOCALPART}:{self.server_name}"

    def save(self) -> None:
        """Record the instance's non-secret settings so that other commands find them."""
        data = asdict(self)
        data["data_dir"] = str(self.data_dir)
        data["archiver_metrics_port"] = self.metrics_port
        self.instance_file.write_text(json.dumps(data, indent=2) + "\n", "utf-8")

    @classmethod
    def load(cls, data_dir: Path) -> Settings:
        """Settings of an instance that `up` has initialised before."""
        path = data_dir / INSTANCE_FILE
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError as exc:
            raise DataDirError(
                f"{data_dir} is not a Rijkschat data dir (no {INSTANCE_FILE}; run `up` first)"
            ) from exc
        except (OSError, ValueError) as exc:
            raise DataDirError(f"cannot read {path}: {exc}") from exc
        return cls(
            data_dir=data_dir,
            server_name=str(data["server_name"]),
            homeserver_port=int(data["homeserver_port"]),
            bridge_port=int(data["bridge_port"]),
            bind_host=str(data.get("bind_host", "127.0.0.1")),
            archiver_metrics_port=data.get("archiver_metrics_port"),
            undecryptable_grace_seconds=float(
                data.get("undecryptable_grace_seconds", DEFAULT_UNDECRYPTABLE_GRACE)),
            sender_notices=bool(data.get("sender_notices", True)),
        )
