"""Provision the roster on the homeserver and keep the credentials file (mode 0600)."""

from __future__ import annotations

import json
import logging
import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from server_bridge.errors import DataDirError, ProvisioningError
from server_bridge.homeserver.admin import login, logout, register_user
from server_bridge.homeserver.config import write_private
from server_bridge.roster import Role, Roster
from server_bridge.settings import Settings

log = logging.getLogger(__name__)

PASSWORD_LENGTH = 24
ROSTER_FILE = "roster.json"


def generate_password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(PASSWORD_LENGTH))


@dataclass(frozen=True)
class Account:
    user_id: str
    password: str
    role: Role
    display_name: str

    def public(self) -> dict[str, str]:
        return {"user_id": self.user_id, "role": self.role.value, "display_name": self.display_name}


def _read_credentials(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
        return {u["user_id"]: u for u in data.get("users", [])}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataDirError(f"{path} is unreadable or damaged: {exc}") from exc


async def provision(
    settings: Settings, roster: Roster, shared_secret: str, verify_logins: bool = True
) -> list[Account]:
    """Register every roster user and the archiver; keep passwords of earlier runs.

    Writes credentials.json (0600), the public roster.json the other components read,
    and the archiver's own account file (0600).
    """
    known = _read_credentials(settings.credentials_file)
    accounts: list[Account] = []
    async with aiohttp.ClientSession() as session:
        for entry in roster.with_archiver():
            user_id = entry.user_id(settings.server_name)
            previous = known.get(user_id)
            password = previous["password"] if previous else generate_password()
            created = await register_user(
                session,
                settings.homeserver_url,
                shared_secret,
                entry.localpart,
                password,
                entry.display_name,
                # The archiver is a server admin only to read, via MSC2815, the original of
                # an event that was redacted before it could capture it.
                admin=entry.role is Role.ARCHIVER,
            )
            if not created:
                if previous is None:
                    raise ProvisioningError(
                        f"{user_id} exists on the homeserver but its password is not in "
                        f"{settings.credentials_file}"
                    )
                if verify_logins:
                    # Prove the kept password still works, and leave no device behind.
                    data = await login(session, settings.homeserver_url, user_id, password)
                    await logout(session, settings.homeserver_url, data["access_token"])
            log.info("%s %s (%s)", "registered" if created else "kept", user_id, entry.role.value)
            accounts.append(Account(user_id, password, entry.role, entry.display_name))
    # Users dropped from the roster keep their accounts and passwords, marked as such.
    current = {a.user_id for a in accounts}
    kept = [u for uid, u in known.items() if uid not in current]
    write_credentials(settings, accounts, kept)
    return accounts


def write_credentials(
    settings: Settings, accounts: list[Account], retired: list[dict[str, Any]]
) -> None:
    archiver = next(a for a in accounts if a.role is Role.ARCHIVER)
    users = [{**a.public(), "password": a.password} for a in accounts]
    users += [{**u, "role": "retired"} for u in retired]
    doc = {
        "homeserver": settings.homeserver_url,
        "bridge": settings.bridge_url,
        "server_name": settings.server_name,
        "archiver_user_id": archiver.user_id,
        "users": users,
    }
    write_private(settings.credentials_file, json.dumps(doc, indent=2) + "\n")
    public_roster = {"server_name": settings.server_name, "users": [a.public() for a in accounts]}
    (settings.data_dir / ROSTER_FILE).write_text(json.dumps(public_roster, indent=2) + "\n")
    settings.archiver_dir.mkdir(exist_ok=True, mode=0o700)
    account = {
        "homeserver": settings.homeserver_url,
        "user_id": archiver.user_id,
        "password": archiver.password,
    }
    write_private(settings.archiver_dir / "account.json", json.dumps(account, indent=2) + "\n")
