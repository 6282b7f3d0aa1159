"""Validation of incoming events and their canonical content encoding (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidEventError
from .models import DECRYPTION_STATES, EventRecord

#: The Matrix event size limit; larger content is rejected.
MAX_CONTENT_BYTES = 65_536
MAX_ID_BYTES = 255


@dataclass(frozen=True)
class Relation:
    rel_type: str | None
    target: str | None


def dump_json(value: Any) -> bytes:
    """Compact UTF-8 JSON; raises on lone surrogates, NaN/Infinity and non-JSON values."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
        "utf-8"
    )


def _check_id(record: EventRecord, name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise InvalidEventError(str(record.event_id), f"{name} must be a non-empty string")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidEventError(
            str(record.event_id), f"{name} is not valid UTF-8 (lone surrogate)"
        ) from None
    if size > MAX_ID_BYTES:
        raise InvalidEventError(str(record.event_id), f"{name} is longer than 255 bytes")


def _encode_object(record: EventRecord, name: str, value: object) -> bytes:
    if not isinstance(value, Mapping):
        raise InvalidEventError(
            str(record.event_id), f"{name} is not a JSON object but {type(value).__name__}"
        )
    try:
        raw = dump_json(dict(value))
    except UnicodeEncodeError:
        raise InvalidEventError(
            str(record.event_id), f"{name} contains invalid UTF-8 (lone surrogate)"
        ) from None
    except RecursionError:
        raise InvalidEventError(str(record.event_id), f"{name} is nested too deeply") from None
    except (TypeError, ValueError) as exc:
        raise InvalidEventError(str(record.event_id), f"{name} is not valid JSON: {exc}") from None
    if len(raw) > MAX_CONTENT_BYTES:
        raise InvalidEventError(
            str(record.event_id),
            f"{name} is {len(raw)} bytes, over the Matrix limit of {MAX_CONTENT_BYTES}",
        )
    return raw


def relation_of(record: EventRecord) -> Relation:
    if record.redacts or record.type == "m.room.redaction":
        target = record.redacts or record.content.get("redacts")
        return Relation("m.redaction", target if isinstance(target, str) else None)
    rel: Any = record.relates_to
    if rel is None:
        rel = record.content.get("m.relates_to")
    if rel is None and record.encrypted is not None:
        rel = record.encrypted.get("m.relates_to")
    if not isinstance(rel, Mapping):
        return Relation(None, None)
    rel_type = rel.get("rel_type")
    target = rel.get("event_id")
    if rel_type is None and isinstance(rel.get("m.in_reply_to"), Mapping):
        rel_type = "m.in_reply_to"
        target = rel["m.in_reply_to"].get("event_id")
    return Relation(
        rel_type if isinstance(rel_type, str) else None,
        target if isinstance(target, str) else None,
    )


def encode_envelope(record: EventRecord) -> bytes:
    """Validate ``record`` and return the plaintext that gets encrypted for it.

    Raises :class:`InvalidEventError` naming the event and the reason.
    """
    _check_id(record, "event_id", record.event_id)
    _check_id(record, "room_id", record.room_id)
    _check_id(record, "sender", record.sender)
    _check_id(record, "type", record.type)
    _check_id(record, "sender_device", record.sender_device, optional=True)
    _check_id(record, "sender_key", record.sender_key, optional=True)
    _check_id(record, "session_id", record.session_id, optional=True)
    _check_id(record, "redacts", record.redacts, optional=True)
    if record.state_key is not None:
        if not isinstance(record.state_key, str):
            raise InvalidEventError(record.event_id, "state_key must be a string")
        _check_id(record, "state_key", record.state_key or "-")
    ts = record.origin_server_ts
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0 or ts >= 2**53:
        raise InvalidEventError(record.event_id, "origin_server_ts must be a non-negative int")
    if record.decryption not in DECRYPTION_STATES:
        raise InvalidEventError(record.event_id, f"unknown decryption state {record.decryption!r}")
    parts = [b'{"content":', _encode_object(record, "content", record.content)]
    if record.encrypted is not None:
        parts += [b',"encrypted":', _encode_object(record, "encrypted content", record.encrypted)]
    if record.relates_to is not None:
        parts += [b',"relates_to":', _encode_object(record, "relates_to", record.relates_to)]
    if record.unsigned is not None:
        parts += [b',"unsigned":', _encode_object(record, "unsigned", record.unsigned)]
    parts.append(b"}")
    return b"".join(parts)
