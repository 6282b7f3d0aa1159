"""ArchiverPolicy: a Synapse module (module API only) that keeps the archiver in every room
with a key official.

* When a key official creates a room, is invited to one or joins one, the archiver is invited
  (by a member allowed to invite) and joined server-side at once, and the room gets the
  ``nl.rijkschat.archiving`` state event.
* At start (and every ``reconcile_interval_seconds``) every room of a key official is brought
  in line, e.g. after the roster named a new key official.
* Enforce mode: message events are refused until the archiver has joined, and the archiver
  cannot be kicked, banned, or made to leave while a key official is in the room; the archiver
  is never let into a room without a key official. Monitor mode logs the same cases instead.

"A key official is in the room" means: joined or invited. Imports Synapse and stdlib only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from synapse.events import EventBase
from synapse.module_api import ModuleApi
from synapse.module_api.errors import Codes, ConfigError, SynapseError

from server_bridge.policy.config import (
    ARCHIVER_MUST_STAY,
    ARCHIVER_ONLY_WITH_KEY_OFFICIALS,
    ARCHIVING_STATE_TYPE,
    MESSAGE_TYPES,
    NOT_YET_ARCHIVED,
    STATE_IS_MANAGED,
    PolicyConfig,
    PolicyConfigError,
)

logger = logging.getLogger(__name__)

StateMap = Mapping[tuple[str, str], EventBase]

MEMBER = "m.room.member"
PRESENT = ("join", "invite")
STARTUP_DELAY_MS = 1000
SETTLE_TIMEOUT = 5.0  # seconds to wait for a room that is still being created
MAX_PASSES = 5


def _membership(state: StateMap, user_id: str) -> str | None:
    event = state.get((MEMBER, user_id))
    if event is None:
        return None
    value = event.content.get("membership")
    return value if isinstance(value, str) else None


def _power(state: StateMap, user_id: str) -> float:
    """The user's power level, with room v12 creators (MSC4289) above everyone."""
    create = state.get(("m.room.create", ""))
    if create is not None:
        creators = {create.sender}
        extra = create.content.get("additional_creators")
        if isinstance(extra, list):
            creators.update(u for u in extra if isinstance(u, str))
        if user_id in creators:
            return float("inf")
    levels = state.get(("m.room.power_levels", ""))
    if levels is None:
        return 0.0
    users = levels.content.get("users", {})
    value = users.get(user_id, levels.content.get("users_default", 0))
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


class ArchiverPolicy:
    """Loaded by Synapse from the ``modules:`` list of homeserver.yaml."""

    def __init__(self, config: PolicyConfig, api: ModuleApi) -> None:
        self._config = config
        self._api = api
        self._busy: set[str] = set()
        self._again: set[str] = set()
        api.register_third_party_rules_callbacks(
            check_event_allowed=self.check_event_allowed,
            on_new_event=self.on_new_event,
        )
        if api.should_run_background_tasks():
            api.delayed_background_call(
                STARTUP_DELAY_MS, self.reconcile, desc="rijkschat_archiver_reconcile_start"
            )
            api.looping_background_call(
                self.reconcile,
                config.reconcile_interval * 1000,
                desc="rijkschat_archiver_reconcile",
            )
        logger.info(
            "archiver policy loaded: mode=%s, archiver=%s, %d key officials",
            config.mode,
            config.archiver,
            len(config.key_officials),
        )

    @staticmethod
    def parse_config(raw: Any) -> PolicyConfig:
        try:
            return PolicyConfig.from_dict(raw)
        except PolicyConfigError as exc:
            raise ConfigError(f"rijkschat archiver policy: {exc}") from exc

    # -- state helpers -------------------------------------------------------------------

    def key_officials_in(self, state: StateMap) -> list[str]:
        return sorted(u for u in self._config.key_officials if _membership(state, u) in PRESENT)

    def _archiver_joined(self, state: StateMap) -> bool:
        return _membership(state, self._config.archiver) == "join"

    def _state_event_ok(self, state: StateMap) -> bool:
        event = state.get((ARCHIVING_STATE_TYPE, ""))
        return event is not None and dict(event.content) == self._config.archiving_content()

    def _refuse(self, room_id: str, sender: str, what: str, message: str) -> None:
        if self._config.enforce:
            logger.info("refused %s in %s from %s", what, room_id, sender)
            raise SynapseError(403, message, Codes.FORBIDDEN)
        logger.warning("monitor mode: would refuse %s in %s from %s", what, room_id, sender)

    # -- callbacks -----------------------------------------------------------------------

    async def check_event_allowed(
        self, event: EventBase, state: StateMap
    ) -> tuple[bool, dict[str, Any] | None]:
        """Synapse calls this for every new event with the room state before it."""
        etype = event.type
        room_id = event.room_id
        if etype in MESSAGE_TYPES:
            if self.key_officials_in(state) and not self._archiver_joined(state):
                # Let the sender's retry succeed: bring the archiver in right away.
                self._api.run_as_background_process(
                    "rijkschat_archiver_ensure", self.ensure, room_id
                )
                self._refuse(
                    room_id, event.sender, f"{etype} before the archiver joined", NOT_YET_ARCHIVED
                )
        elif etype == MEMBER and event.get_state_key() == self._config.archiver:
            membership = event.content.get("membership")
            officials = self.key_officials_in(state)
            previous = _membership(state, self._config.archiver)
            if officials and (
                membership == "ban" or (membership == "leave" and previous in PRESENT)
            ):
                self._refuse(room_id, event.sender, f"archiver {membership}", ARCHIVER_MUST_STAY)
            elif membership in PRESENT and not officials:
                self._refuse(
                    room_id,
                    event.sender,
                    f"archiver {membership} without a key official",
                    ARCHIVER_ONLY_WITH_KEY_OFFICIALS,
                )
        elif etype == ARCHIVING_STATE_TYPE:
            if dict(event.content) != self._config.archiving_content():
                self._refuse(room_id, event.sender, f"a change of {etype}", STATE_IS_MANAGED)
        return True, None

    async def on_new_event(self, event: EventBase, state: StateMap) -> None:
        """After an event is persisted: bring the room in line, in the background."""
        if not event.is_state():
            return
        if self.key_officials_in(state) and not (
            self._archiver_joined(state) and self._state_event_ok(state)
        ):
            self._api.run_as_background_process(
                "rijkschat_archiver_ensure", self.ensure, event.room_id
            )

    # -- bringing rooms in line ------------------------------------------------------------

    async def reconcile(self) -> None:
        """Every room in which a key official is joined or invited gets the archiver."""
        officials = sorted(self._config.key_officials)
        if not officials:
            return
        rooms: list[str] = await self._api.run_db_interaction(
            "rijkschat_key_official_rooms", _key_official_rooms_txn, officials
        )
        fixed = 0
        for room_id in rooms:
            try:
                if await self.ensure(room_id):
                    fixed += 1
            except Exception:
                logger.exception("could not bring %s in line", room_id)
        logger.info(
            "archiver reconciliation: %d rooms with key officials, %d brought in line",
            len(rooms),
            fixed,
        )

    async def ensure(self, room_id: str) -> bool:
        """Bring one room in line; True when something had to change. One pass per room at
        a time: a call while one runs asks that pass to look again."""
        if room_id in self._busy:
            self._again.add(room_id)
            return False
        self._busy.add(room_id)
        changed = False
        try:
            for _ in range(MAX_PASSES):
                self._again.discard(room_id)
                changed = await self._bring_in_line(room_id) or changed
                if room_id not in self._again:
                    break
        finally:
            self._busy.discard(room_id)
            self._again.discard(room_id)
        return changed

    async def _settled_state(self, room_id: str) -> StateMap:
        """The room's current state, once its creation batch (join rules) has landed."""
        waited = 0.0
        while True:
            state: StateMap = await self._api.get_room_state(room_id)
            if ("m.room.join_rules", "") in state or waited >= SETTLE_TIMEOUT:
                return state
            await self._api.sleep(0.05)
            waited += 0.05

    def _candidates(self, state: StateMap) -> list[str]:
        """Joined local members who may act for the room, key officials first, then by power."""
        archiver = self._config.archiver
        joined = [
            key[1]
            for key, ev in state.items()
            if key[0] == MEMBER
            and key[1] != archiver
            and ev.content.get("membership") == "join"
            and self._api.is_mine(key[1])
        ]
        return sorted(
            joined, key=lambda u: (u not in self._config.key_officials, -_power(state, u), u)
        )

    async def _as_first_allowed(self, state: StateMap, what: str, action: Any) -> bool:
        for user_id in self._candidates(state):
            try:
                await action(user_id)
                return True
            except SynapseError as exc:
                logger.debug("%s as %s refused: %s", what, user_id, exc.code)
        return False

    async def _bring_in_line(self, room_id: str) -> bool:
        state = await self._settled_state(room_id)
        officials = self.key_officials_in(state)
        if not officials:
            return False
        archiver = self._config.archiver
        changed = False
        membership = _membership(state, archiver)
        if membership != "join":
            api = self._api
            if membership == "ban":
                await self._as_first_allowed(
                    state,
                    "unban",
                    lambda u: api.update_room_membership(u, archiver, room_id, "unban"),
                )
            if membership != "invite":
                invited = await self._as_first_allowed(
                    state,
                    "invite",
                    lambda u: api.update_room_membership(u, archiver, room_id, "invite"),
                )
                if not invited:
                    logger.warning(
                        "cannot invite the archiver into %s: no local member may invite", room_id
                    )
                    return False
            await api.update_room_membership(archiver, archiver, room_id, "join")
            logger.info("archiver joined %s (key officials: %s)", room_id, ", ".join(officials))
            changed = True
            state = await self._api.get_room_state(room_id)
        if not self._state_event_ok(state):
            content = self._config.archiving_content()

            async def send(user_id: str) -> None:
                await self._api.create_and_send_event_into_room(
                    {
                        "type": ARCHIVING_STATE_TYPE,
                        "state_key": "",
                        "room_id": room_id,
                        "sender": user_id,
                        "content": content,
                    }
                )

            if await self._as_first_allowed(state, "archiving state", send):
                changed = True
            else:
                logger.warning("cannot set %s in %s: nobody may", ARCHIVING_STATE_TYPE, room_id)
        return changed


def _key_official_rooms_txn(txn: Any, officials: list[str]) -> list[str]:
    placeholders = ", ".join("?" for _ in officials)
    txn.execute(
        "SELECT DISTINCT room_id FROM local_current_membership"
        f" WHERE membership IN ('join', 'invite') AND user_id IN ({placeholders})",
        officials,
    )
    return sorted(str(row[0]) for row in txn.fetchall())
