"""Canonical encoding and hashing of chain records (pure functions, no I/O).

Each room has its own chain. Entry *n* has ``hash_n = SHA-256(prev_hash ‖ encode(record))``
with ``prev_hash`` = ``hash_{n-1}`` (or the room's genesis value for the first record).
The encoding is length-prefixed and type-tagged, so no two different records encode alike:
``b"RCA1"``, the room id, then each field of :data:`CHAIN_FIELDS` as
``tag (1 byte) ‖ length (4 bytes, big endian) ‖ bytes`` with tags ``n`` (None), ``s`` (UTF-8
text), ``i`` (signed 64-bit integer) and ``b`` (bytes). The position (seq) is not encoded:
the links alone order the chain, which lets ``verify`` tell a reordering from a modification.
Content is covered through ``digest`` = SHA-256 of its ciphertext, so the chain can be
verified without any decryption key and stays valid after crypto-shredding.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

CHAIN_FIELDS: tuple[str, ...] = (
    "kind",
    "uid",
    "sender",
    "ts",
    "type",
    "state_key",
    "decryption",
    "sender_device",
    "sender_key",
    "session_id",
    "rel_type",
    "target",
    "key_epoch",
    "ingested_ts",
    "digest",
    "blob_digest",
)
ACCESS_FIELDS: tuple[str, ...] = ("seq", "ts", "user_id", "action", "digest")
ACCESS_CHAIN = "@access-log"
WOO_FIELDS: tuple[str, ...] = ("seq", "ts", "user_id", "kind", "request_id", "digest")
WOO_CHAIN = "@woo-log"

_MAGIC = b"RCA1"
_NONE = b"n\x00\x00\x00\x00"
_LEN = struct.Struct(">BI")
_INT = struct.Struct(">BIq")


def _encode_value(value: Any) -> bytes:
    cls = value.__class__
    if cls is str:  # the common cases first (hot path)
        raw: bytes = value.encode("utf-8", "surrogatepass")
        return _LEN.pack(0x73, len(raw)) + raw
    if value is None:
        return _NONE
    if cls is int:
        return _INT.pack(0x69, 8, value)
    if cls is bytes:
        data: bytes = value
        return _LEN.pack(0x62, len(data)) + data
    if isinstance(value, bool):
        return _INT.pack(0x69, 8, int(value))
    if isinstance(value, int):
        return _INT.pack(0x69, 8, value)
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
        return _LEN.pack(0x73, len(raw)) + raw
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return _LEN.pack(0x62, len(raw)) + raw
    raise TypeError(f"cannot encode {type(value).__name__} in a chain record")


def encode(chain_id: str, values: Sequence[Any]) -> bytes:
    parts = [_MAGIC, _encode_value(chain_id)]
    parts.extend(_encode_value(v) for v in values)
    return b"".join(parts)


def record_values(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row[name] for name in CHAIN_FIELDS)


def entry_hash(prev_hash: bytes, chain_id: str, values: Sequence[Any]) -> bytes:
    return hashlib.sha256(prev_hash + encode(chain_id, values)).digest()


def genesis(chain_id: str) -> bytes:
    return hashlib.sha256(b"rijkschat/archive/genesis/v1\x00" + chain_id.encode()).digest()


def digest(data: bytes | None) -> bytes | None:
    return None if data is None else hashlib.sha256(data).digest()


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON (sorted keys, no spaces, UTF-8) for signed checkpoint payloads."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
