"""Pure mapping from matrix-nio events to archive records (no I/O)."""

from __future__ import annotations

from typing import Any

from nio import MegolmEvent

from archiver_bot.archive import EventRecord

ATTACHMENT_MSGTYPES = frozenset({"m.image", "m.file", "m.audio", "m.video"})


def _relates_to(content: Any) -> dict[str, Any] | None:
    if not isinstance(content, dict):
        return None
    rel = content.get("m.relates_to")
    return dict(rel) if isinstance(rel, dict) else None


def _redacts(source: dict[str, Any], content: Any) -> str | None:
    target = source.get("redacts")
    if target is None and isinstance(content, dict):
        target = content.get("redacts")  # room versions 11+
    return target if isinstance(target, str) else None


def to_record(room_id: str, event: Any, original: MegolmEvent | None = None) -> EventRecord | None:
    """Map a parsed nio event (decrypted, undecryptable or plain) to an EventRecord.

    `original` is the encrypted event that `event` was decrypted from. Returns None for
    a source without an event id (nothing to record against).
    """
    source: dict[str, Any] = getattr(event, "source", None) or {}
    event_id = source.get("event_id")
    if not isinstance(event_id, str):
        return None
    sender = str(source.get("sender", ""))
    ts = source.get("origin_server_ts", 0)
    ts = ts if isinstance(ts, int) else 0
    content = source.get("content", {})
    if original is not None:
        enc = original.source.get("content", {})
        return EventRecord(
            event_id=event_id,
            room_id=room_id,
            sender=sender,
            origin_server_ts=ts,
            type=str(source.get("type", "")),
            content=content,
            decryption="decrypted",
            sender_device=original.device_id,
            sender_key=original.sender_key,
            session_id=original.session_id,
            encrypted=enc,
            redacts=_redacts(original.source, content),
            relates_to=_relates_to(content) or _relates_to(enc),
        )
    if isinstance(event, MegolmEvent) or source.get("type") == "m.room.encrypted":
        return EventRecord(
            event_id=event_id,
            room_id=room_id,
            sender=sender,
            origin_server_ts=ts,
            type="m.room.encrypted",
            content=content,
            decryption="undecryptable",
            sender_device=content.get("device_id") if isinstance(content, dict) else None,
            sender_key=content.get("sender_key") if isinstance(content, dict) else None,
            session_id=content.get("session_id") if isinstance(content, dict) else None,
            encrypted=content if isinstance(content, dict) else None,
            relates_to=_relates_to(content),
            unsigned=source.get("unsigned") if isinstance(source.get("unsigned"), dict) else None,
        )
    state_key = source.get("state_key")
    return EventRecord(
        event_id=event_id,
        room_id=room_id,
        sender=sender,
        origin_server_ts=ts,
        type=str(source.get("type", "")),
        content=content,
        state_key=state_key if isinstance(state_key, str) else None,
        decryption="plaintext",
        redacts=_redacts(source, content),
        relates_to=_relates_to(content),
        unsigned=source.get("unsigned") if isinstance(source.get("unsigned"), dict) else None,
    )


def stripped_by_redaction(record: EventRecord) -> bool:
    """The server sent this event already redacted: its content is gone from the sync."""
    unsigned = record.unsigned or {}
    return "redacted_because" in unsigned and not record.content


def attachment_of(record: EventRecord) -> dict[str, Any] | None:
    """The media reference of a message with an attachment: {'mxc', 'file'?, 'name', 'mimetype'}."""
    content = record.content
    if record.type != "m.room.message" or not isinstance(content, dict):
        return None
    if content.get("msgtype") not in ATTACHMENT_MSGTYPES and "file" not in content:
        return None
    raw_info = content.get("info")
    info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    name = content.get("filename") or content.get("body") or "attachment"
    encrypted = content.get("file")
    if isinstance(encrypted, dict) and isinstance(encrypted.get("url"), str):
        return {"mxc": encrypted["url"], "file": encrypted, "name": str(name),
                "mimetype": str(info.get("mimetype", "application/octet-stream"))}
    url = content.get("url")
    if isinstance(url, str):
        return {"mxc": url, "file": None, "name": str(name),
                "mimetype": str(info.get("mimetype", "application/octet-stream"))}
    return None
