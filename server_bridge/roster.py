"""The roster: who uses the pilot and in which role (pure, no I/O beyond reading the file)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from server_bridge.errors import RosterError

# Matrix user id grammar (spec: "historical" localparts are not allowed for new users).
_LOCALPART = re.compile(r"^[a-z0-9._=\-/+]{1,64}$")

ARCHIVER_LOCALPART = "rijksarchief"
ARCHIVER_DISPLAY_NAME = "Rijksarchief (archivering)"


class Role(StrEnum):
    OFFICIAL = "official"
    KEY_OFFICIAL = "key_official"
    ARCHIVIST = "archivist"
    ARCHIVER = "archiver"  # the bot's own account; never valid in a roster file


ROSTER_ROLES = (Role.OFFICIAL, Role.KEY_OFFICIAL, Role.ARCHIVIST)


@dataclass(frozen=True)
class RosterEntry:
    localpart: str
    display_name: str
    role: Role

    def user_id(self, server_name: str) -> str:
        return f"@{self.localpart}:{server_name}"


@dataclass(frozen=True)
class Roster:
    entries: tuple[RosterEntry, ...]

    def by_role(self, role: Role) -> list[RosterEntry]:
        return [e for e in self.entries if e.role is role]

    def with_archiver(self) -> tuple[RosterEntry, ...]:
        """The roster's people plus the archiver bot's own account."""
        archiver = RosterEntry(ARCHIVER_LOCALPART, ARCHIVER_DISPLAY_NAME, Role.ARCHIVER)
        return (*self.entries, archiver)


def _entry_label(index: int, raw: Any) -> str:
    name = raw.get("localpart") if isinstance(raw, dict) else None
    return f"user #{index + 1}" + (f" ({name!r})" if name else "")


def parse_roster(data: dict[str, Any], source: str = "roster") -> Roster:
    """Validate a parsed roster document; raise RosterError naming the offending entry."""
    users = data.get("users")
    if not isinstance(users, list) or not users:
        raise RosterError(f"{source}: expected a non-empty [[users]] list")
    seen: set[str] = set()
    entries: list[RosterEntry] = []
    for i, raw in enumerate(users):
        label = f"{source}: {_entry_label(i, raw)}"
        if not isinstance(raw, dict):
            raise RosterError(f"{label}: each user must be a table")
        unknown = set(raw) - {"localpart", "display_name", "role"}
        if unknown:
            raise RosterError(f"{label}: unknown field(s) {', '.join(sorted(unknown))}")
        localpart = raw.get("localpart")
        if not isinstance(localpart, str) or not _LOCALPART.match(localpart):
            raise RosterError(
                f"{label}: invalid localpart {localpart!r} "
                "(lower-case letters, digits and . _ = - / + only, 1-64 characters)"
            )
        if localpart == ARCHIVER_LOCALPART:
            raise RosterError(f"{label}: localpart {localpart!r} is reserved for the archiver")
        if localpart in seen:
            raise RosterError(f"{label}: duplicate localpart {localpart!r}")
        seen.add(localpart)
        display_name = raw.get("display_name", localpart)
        if not isinstance(display_name, str) or not display_name.strip():
            raise RosterError(f"{label}: display_name must be a non-empty string")
        role = raw.get("role")
        if role not in {r.value for r in ROSTER_ROLES}:
            allowed = ", ".join(r.value for r in ROSTER_ROLES)
            raise RosterError(f"{label}: unknown role {role!r} (one of: {allowed})")
        entries.append(RosterEntry(localpart, display_name.strip(), Role(role)))
    return Roster(tuple(entries))


def load_roster(path: Path | None) -> Roster:
    """Load the roster file, or the demo roster shipped with the package when path is None."""
    if path is None:
        text = resources.files("server_bridge").joinpath("demo_roster.toml").read_text("utf-8")
        source = "demo roster"
    else:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise RosterError(f"roster {path}: cannot read ({exc.strerror})") from exc
        except UnicodeDecodeError as exc:
            raise RosterError(f"roster {path}: not UTF-8 text") from exc
        source = f"roster {path}"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RosterError(f"{source}: invalid TOML ({exc})") from exc
    return parse_roster(data, source)
