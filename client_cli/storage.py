"""Where the client keeps its session: ``$XDG_DATA_HOME/rijkschat`` (or ~/.local/share/rijkschat).

``session.json`` holds the homeserver, user id, device id, access token and bridge URL;
``pickle.key`` the random key that encrypts the E2E store in ``store/``;
``cross-signing/USER_ID.json`` each account's private cross-signing keys (kept across logouts:
they belong to the account, not to a device). Directories are 0700, files 0600.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from client_cli.errors import NotLoggedInError

DEFAULT_BRIDGE = "http://127.0.0.1:8090"


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / "rijkschat"


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically."""
    ensure_private_dir(path.parent)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def ensure_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def tighten(directory: Path) -> None:
    """Make every file below ``directory`` 0600 (the E2E store is created by nio)."""
    for entry in directory.rglob("*"):
        if entry.is_file():
            os.chmod(entry, 0o600)


@dataclass
class Session:
    homeserver: str
    user_id: str
    device_id: str
    access_token: str
    bridge: str = DEFAULT_BRIDGE

    def __repr__(self) -> str:  # never show the token
        return f"Session(user_id={self.user_id!r}, device_id={self.device_id!r})"

    @property
    def server_name(self) -> str:
        return self.user_id.split(":", 1)[1]


class Storage:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or data_dir()

    @property
    def session_file(self) -> Path:
        return self.root / "session.json"

    @property
    def pickle_key_file(self) -> Path:
        return self.root / "pickle.key"

    @property
    def store_dir(self) -> Path:
        return self.root / "store"

    def cross_signing_file(self, user_id: str) -> Path:
        directory = self.root / "cross-signing"
        ensure_private_dir(directory)
        return directory / f"{user_id}.json"

    def pickle_key(self) -> str:
        """The E2E store's pickle key: random, created once, never nio's default."""
        if not self.pickle_key_file.exists():
            write_private(self.pickle_key_file, secrets.token_urlsafe(32))
        return self.pickle_key_file.read_text("utf-8").strip()

    def load(self) -> Session | None:
        try:
            raw: Any = json.loads(self.session_file.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise NotLoggedInError(f"the stored session {self.session_file} is damaged: {exc}; "
                                   "run `rijkschat login`") from exc
        fields = ("homeserver", "user_id", "device_id", "access_token")
        if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in fields):
            raise NotLoggedInError(f"the stored session {self.session_file} is damaged; "
                                   "run `rijkschat login`")
        return Session(raw["homeserver"], raw["user_id"], raw["device_id"], raw["access_token"],
                       bridge=str(raw.get("bridge", DEFAULT_BRIDGE)))

    def require(self) -> Session:
        session = self.load()
        if session is None or not session.access_token:
            raise NotLoggedInError("not logged in: run `rijkschat login` first")
        return session

    def save(self, session: Session) -> None:
        write_private(self.session_file, json.dumps(asdict(session), indent=2))

    def forget_token(self, session: Session) -> None:
        """After logout: keep the device id (and E2E store) for a later login, drop the token."""
        session.access_token = ""
        self.save(session)
