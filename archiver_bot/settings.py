"""The archiver's settings: one object, loaded once from its data dir."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from archiver_bot.errors import ConfigError

# An event still undecryptable this long after it was sent is reported (review UI) and its
# sender told (server notice): the sender's key export is then the only way back.
DEFAULT_UNDECRYPTABLE_GRACE_SECONDS = 300.0


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@dataclass(frozen=True)
class ArchiverSettings:
    data_dir: Path
    homeserver: str
    user_id: str
    password: str
    database_url: str | None = None
    undecryptable_grace_seconds: float = DEFAULT_UNDECRYPTABLE_GRACE_SECONDS
    notify_senders: bool = True  # server notices to senders of undecryptable events

    @property
    def bot_dir(self) -> Path:
        return self.data_dir / "archiver"

    @property
    def session_file(self) -> Path:
        return self.bot_dir / "session.json"

    @property
    def status_file(self) -> Path:
        return self.bot_dir / "status.json"

    @property
    def crypto_dir(self) -> Path:
        return self.bot_dir / "crypto"

    @property
    def cross_signing_file(self) -> Path:
        return self.bot_dir / "cross_signing.json"

    @property
    def rooms_file(self) -> Path:
        return self.bot_dir / "rooms.json"

    @property
    def metrics_token_file(self) -> Path:
        return self.bot_dir / "metrics.token"

    @property
    def control_token_file(self) -> Path:
        """Bearer token of the bot's local control endpoint (key import), 0600."""
        return self.bot_dir / "control.token"

    @property
    def imported_sessions_file(self) -> Path:
        """Sessions whose keys were imported from a key export, with their provenance."""
        return self.bot_dir / "imported_sessions.json"

    @property
    def pickle_key_file(self) -> Path:
        return self.bot_dir / "pickle.key"

    @property
    def notices_file(self) -> Path:
        """When each sender was last told about undecryptable events in each room."""
        return self.bot_dir / "notices.json"

    @property
    def roster_file(self) -> Path:
        return self.data_dir / "roster.json"

    def pickle_key(self) -> str:
        """The crypto store's pickle key: random, created once, never nio's constant."""
        if not self.pickle_key_file.exists():
            write_private(self.pickle_key_file, secrets.token_urlsafe(32))
        return self.pickle_key_file.read_text("utf-8").strip()

    def __repr__(self) -> str:  # never show the password
        return f"ArchiverSettings(data_dir={self.data_dir!r}, user_id={self.user_id!r})"

    @classmethod
    def load(
        cls,
        data_dir: Path,
        database_url: str | None = None,
        *,
        undecryptable_grace_seconds: float = DEFAULT_UNDECRYPTABLE_GRACE_SECONDS,
        notify_senders: bool = True,
    ) -> ArchiverSettings:
        if undecryptable_grace_seconds < 0:
            raise ConfigError("the undecryptable grace period cannot be negative")
        path = data_dir / "archiver" / "account.json"
        try:
            data = json.loads(path.read_text("utf-8"))
            return cls(
                data_dir=data_dir,
                homeserver=str(data["homeserver"]),
                user_id=str(data["user_id"]),
                password=str(data["password"]),
                database_url=database_url or os.environ.get("RIJKSCHAT_ARCHIVE_URL") or None,
                undecryptable_grace_seconds=undecryptable_grace_seconds,
                notify_senders=notify_senders,
            )
        except FileNotFoundError as exc:
            raise ConfigError(f"no archiver account at {path} (run `rijkschat-server up`)") from exc
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
