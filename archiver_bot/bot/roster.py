"""The public roster (DIR/roster.json, written by the server side): who is a key official."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from archiver_bot.errors import ConfigError


@dataclass(frozen=True)
class KnownUsers:
    key_officials: frozenset[str]
    display_names: dict[str, str]

    @classmethod
    def load(cls, path: Path) -> KnownUsers:
        try:
            data = json.loads(path.read_text("utf-8"))
            users = data["users"]
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"cannot read the roster {path}: {exc}") from exc
        return cls(
            key_officials=frozenset(u["user_id"] for u in users if u["role"] == "key_official"),
            display_names={u["user_id"]: u.get("display_name", u["user_id"]) for u in users},
        )
