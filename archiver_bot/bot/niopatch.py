"""Two targeted changes to matrix-nio, applied once by the bot at start.

1. Speed: nio builds a new jsonschema validator for every event it parses (0.3-0.5 ms each);
   we cache one validator per schema, which leaves validation itself unchanged.
2. Crypto hygiene: nio answers room-key requests from its owner's verified devices. The
   archiver must never hand a room key to anyone, so requests are dropped (and counted).
"""

from __future__ import annotations

import logging
from typing import Any

import nio.crypto.olm_machine as olm_machine
import nio.events.misc as events_misc
import nio.responses as responses
import nio.schemas as schemas

log = logging.getLogger(__name__)

_validators: dict[int, Any] = {}
_applied = False
dropped_key_requests = 0


def _cached_validate_json(instance: Any, schema: dict[str, Any]) -> None:
    validator = _validators.get(id(schema))
    if validator is None:
        validator = schemas.Validator(schema, format_checker=schemas.Checker)
        _validators[id(schema)] = validator
    validator.validate(instance)


def _refuse_key_requests(self: Any) -> list[Any]:
    """Replacement for Olm.collect_key_requests: share nothing, surface nothing."""
    global dropped_key_requests
    if self.received_key_requests:
        dropped_key_requests += len(self.received_key_requests)
        log.info("ignored %d room-key request(s)", len(self.received_key_requests))
    self.received_key_requests = {}
    return []


def apply() -> None:
    global _applied
    if _applied:
        return
    for module in (schemas, responses, events_misc, olm_machine):
        module.validate_json = _cached_validate_json
    olm_machine.Olm.collect_key_requests = _refuse_key_requests
    _applied = True
