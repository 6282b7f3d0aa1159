"""AS transaction body -> ledger rows (pure; no I/O). Content never leaves this function."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_BODY_BYTES = 32 * 1024**2  # Synapse sends at most 100 events of at most 64 KiB each
MAX_EVENTS = 1000
MAX_ID_LENGTH = 255


class TransactionError(Exception):
    """The sender's fault: answered with a 4xx and nothing is recorded."""

    status = 400
    errcode = "M_BAD_JSON"


class MalformedTransaction(TransactionError):
    """Not JSON, not an object, or an event without the fields every event has."""


class NotJson(MalformedTransaction):
    errcode = "M_NOT_JSON"


class TransactionTooLarge(TransactionError):
    status = 413
    errcode = "M_TOO_LARGE"


@dataclass(frozen=True)
class LedgerRow:
    """What the ledger keeps of one event: who, where, what kind, when; never content.

    ``membership`` is kept for ``m.room.member`` events only, to tell when the archiver
    joined and left (the audit's scope)."""

    event_id: str
    room_id: str
    sender: str
    type: str
    state_key: str | None
    origin_server_ts: int
    encrypted: bool
    membership: str | None = None


def _identifier(event: dict[str, Any], key: str, sigil: str, index: int) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value.startswith(sigil) or len(value) > MAX_ID_LENGTH:
        raise MalformedTransaction(f"event #{index}: {key} must be a {sigil}-identifier")
    return value


def _row(event: Any, index: int) -> LedgerRow:
    if not isinstance(event, dict):
        raise MalformedTransaction(f"event #{index} is not an object")
    event_id = _identifier(event, "event_id", "$", index)
    room_id = _identifier(event, "room_id", "!", index)
    sender = _identifier(event, "sender", "@", index)
    etype = event.get("type")
    if not isinstance(etype, str) or not etype or len(etype) > MAX_ID_LENGTH:
        raise MalformedTransaction(f"event #{index}: type must be a non-empty string")
    ts = event.get("origin_server_ts")
    if not isinstance(ts, int) or isinstance(ts, bool) or ts < 0:
        raise MalformedTransaction(f"event #{index}: origin_server_ts must be an integer")
    state_key = event.get("state_key")
    if state_key is not None and (not isinstance(state_key, str) or len(state_key) > 4096):
        raise MalformedTransaction(f"event #{index}: state_key must be a string")
    membership = None
    if etype == "m.room.member":
        content = event.get("content")
        raw = content.get("membership") if isinstance(content, dict) else None
        membership = raw if isinstance(raw, str) and len(raw) <= 32 else None
    return LedgerRow(
        event_id=event_id,
        room_id=room_id,
        sender=sender,
        type=etype,
        state_key=state_key,
        origin_server_ts=ts,
        encrypted=etype == "m.room.encrypted",
        membership=membership,
    )


def ledger_row(event: Any) -> LedgerRow:
    """One client-format event (e.g. from ``/messages``) -> its ledger row."""
    return _row(event, 0)


def parse_transaction(body: bytes) -> list[LedgerRow]:
    """Validate a whole transaction; any bad event rejects all of it (no partial commit)."""
    if len(body) > MAX_BODY_BYTES:
        raise TransactionTooLarge(f"transaction body exceeds {MAX_BODY_BYTES} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotJson("transaction body is not JSON") from exc
    if not isinstance(doc, dict):
        raise MalformedTransaction("transaction body must be a JSON object")
    events = doc.get("events", [])
    if not isinstance(events, list):
        raise MalformedTransaction("events must be a list")
    if len(events) > MAX_EVENTS:
        raise TransactionTooLarge(f"a transaction may carry at most {MAX_EVENTS} events")
    rows = [_row(event, i) for i, event in enumerate(events)]
    seen: dict[str, LedgerRow] = {}
    for row in rows:
        seen.setdefault(row.event_id, row)
    return list(seen.values())
