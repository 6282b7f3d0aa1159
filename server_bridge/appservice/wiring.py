"""What `up` (and the tests) add to homeserver.yaml: the policy module and the ledger's AS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server_bridge.appservice.registration import write_registration
from server_bridge.policy.config import ENFORCE, PolicyConfig, module_entry
from server_bridge.roster import ARCHIVER_LOCALPART, Role, Roster
from server_bridge.settings import Settings


@dataclass(frozen=True)
class ArchivingSetup:
    modules: list[dict[str, Any]]
    app_service_config_files: list[str]


def policy_config(settings: Settings, roster: Roster, mode: str = ENFORCE) -> PolicyConfig:
    officials = [e.user_id(settings.server_name) for e in roster.by_role(Role.KEY_OFFICIAL)]
    return PolicyConfig.from_dict(
        {
            "key_officials": officials,
            "archiver": f"@{ARCHIVER_LOCALPART}:{settings.server_name}",
            "mode": mode,
        }
    )


def archiving_setup(
    settings: Settings, roster: Roster, mode: str = ENFORCE, ledger: bool = True
) -> ArchivingSetup:
    """The module entry and the (freshly written) AS registration for this roster."""
    config = policy_config(settings, roster, mode)
    files: list[str] = []
    if ledger:
        watched = [*config.key_officials, config.archiver]
        files.append(str(write_registration(settings, watched)))
    return ArchivingSetup([module_entry(config)], files)
