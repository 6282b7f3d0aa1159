"""The policy's rules without a homeserver: monitor mode only logs, bad config stops Synapse."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from synapse.module_api.errors import ConfigError, SynapseError

from server_bridge.policy.config import NOT_YET_ARCHIVED, PolicyConfig
from server_bridge.policy.module import ArchiverPolicy

ARCHIVER = "@rijksarchief:x"
MINISTER = "@minister:x"
AMB = "@amb:x"


@dataclass
class FakeEvent:
    type: str
    sender: str
    content: dict[str, Any] = field(default_factory=dict)
    state_key: str | None = None
    room_id: str = "!r:x"

    def is_state(self) -> bool:
        return self.state_key is not None

    def get_state_key(self) -> str | None:
        return self.state_key


class FakeApi:
    def __init__(self) -> None:
        self.background: list[str] = []

    def register_third_party_rules_callbacks(self, **_: Any) -> None:
        pass

    def run_as_background_process(self, desc: str, func: Any, *args: Any) -> None:
        self.background.append(desc)

    def should_run_background_tasks(self) -> bool:
        return False


def member(user: str, membership: str) -> FakeEvent:
    return FakeEvent("m.room.member", user, {"membership": membership}, user)


def state(*events: FakeEvent) -> dict[tuple[str, str], Any]:
    return {(e.type, e.state_key or ""): e for e in events}


def policy(mode: str) -> ArchiverPolicy:
    config = ArchiverPolicy.parse_config(
        {"key_officials": [MINISTER], "archiver": ARCHIVER, "mode": mode}
    )
    return ArchiverPolicy(config, FakeApi())  # type: ignore[arg-type]


MESSAGE = FakeEvent("m.room.message", AMB, {"msgtype": "m.text", "body": "x"})
KICK = FakeEvent("m.room.member", MINISTER, {"membership": "leave"}, ARCHIVER)
BAN = FakeEvent("m.room.member", MINISTER, {"membership": "ban"}, ARCHIVER)


async def test_enforce_mode_refuses_and_monitor_mode_only_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    without = state(member(MINISTER, "join"), member(AMB, "join"))
    with_archiver = state(member(MINISTER, "join"), member(ARCHIVER, "join"))
    with pytest.raises(SynapseError) as refused:
        await policy("enforce").check_event_allowed(MESSAGE, without)  # type: ignore[arg-type]
    assert refused.value.code == 403
    assert refused.value.msg == NOT_YET_ARCHIVED
    with pytest.raises(SynapseError):
        await policy("enforce").check_event_allowed(KICK, with_archiver)  # type: ignore[arg-type]
    assert await policy("enforce").check_event_allowed(MESSAGE, with_archiver) == (True, None)  # type: ignore[arg-type]

    with caplog.at_level(logging.WARNING):
        assert await policy("monitor").check_event_allowed(MESSAGE, without) == (True, None)  # type: ignore[arg-type]
        assert await policy("monitor").check_event_allowed(KICK, with_archiver) == (True, None)  # type: ignore[arg-type]
    assert caplog.text.count("monitor mode: would refuse") == 2
    assert '"x"' not in caplog.text  # no message content in the log


def test_an_invited_key_official_counts_and_rooms_without_one_are_left_alone() -> None:
    p = policy("enforce")
    assert p.key_officials_in(state(member(MINISTER, "invite"))) == [MINISTER]  # type: ignore[arg-type]
    assert p.key_officials_in(state(member(MINISTER, "leave"), member(AMB, "join"))) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw",
    [
        {"key_officials": [MINISTER], "archiver": ARCHIVER, "mode": "lax"},
        {"key_officials": [MINISTER], "archiver": "rijksarchief"},
        {"key_officials": "minister", "archiver": ARCHIVER},
        {"key_officials": [ARCHIVER], "archiver": ARCHIVER},
        {"key_officials": [], "archiver": ARCHIVER, "surprise": True},
    ],
)
def test_a_bad_module_config_stops_the_homeserver(raw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        ArchiverPolicy.parse_config(raw)


def test_the_generated_config_round_trips() -> None:
    config = PolicyConfig.from_dict({"key_officials": [MINISTER], "archiver": ARCHIVER})
    assert PolicyConfig.from_dict(config.to_dict()) == config
    assert config.enforce


async def test_the_archiver_cannot_be_banned_before_it_arrives_and_a_refusal_fetches_it() -> None:
    p = policy("enforce")
    no_archiver_yet = state(member(MINISTER, "join"), member(AMB, "join"))
    with pytest.raises(SynapseError):
        await p.check_event_allowed(BAN, no_archiver_yet)  # type: ignore[arg-type]
    api: FakeApi = p._api  # type: ignore[assignment]
    with pytest.raises(SynapseError):
        await p.check_event_allowed(MESSAGE, no_archiver_yet)  # type: ignore[arg-type]
    assert api.background == ["rijkschat_archiver_ensure"]
    # Without a key official the archiver may be banned (and never brought in).
    assert await p.check_event_allowed(BAN, state(member(AMB, "join"))) == (True, None)  # type: ignore[arg-type]
