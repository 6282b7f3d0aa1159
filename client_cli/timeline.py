"""Pure timeline logic: raw room events in, readable messages out (edits applied, reactions
gathered, redactions shown). No I/O, so it is tested on plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MESSAGE_TYPES = ("m.room.message", "m.sticker")
REDACTED_TEXT = "[verwijderd]"
UNDECRYPTABLE_TEXT = "[kan niet ontsleutelen]"


@dataclass
class TimelineEvent:
    event_id: str
    sender: str
    ts: int  # origin_server_ts, ms
    type: str
    content: dict[str, Any]
    encrypted: bool = False
    undecryptable: bool = False
    redacted_by: str | None = None
    redaction_reason: str | None = None
    state_key: str | None = None

    @property
    def relation(self) -> dict[str, Any]:
        rel = self.content.get("m.relates_to")
        return rel if isinstance(rel, dict) else {}

    @property
    def rel_type(self) -> str | None:
        value = self.relation.get("rel_type")
        return value if isinstance(value, str) else None

    @property
    def target(self) -> str | None:
        value = self.relation.get("event_id")
        return value if isinstance(value, str) else None

    def as_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id, "sender": self.sender, "origin_server_ts": self.ts,
            "type": self.type, "content": self.content, "encrypted": self.encrypted,
            "undecryptable": self.undecryptable, "redacted_by": self.redacted_by,
        }


@dataclass
class Message:
    event_id: str
    sender: str
    ts: int
    body: str
    msgtype: str
    encrypted: bool
    edited: bool = False
    edited_ts: int | None = None
    redacted: bool = False
    redacted_by: str | None = None
    undecryptable: bool = False
    reply_to: str | None = None
    reactions: dict[str, list[str]] = field(default_factory=dict)
    attachment: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id, "sender": self.sender, "origin_server_ts": self.ts,
            "body": self.body, "msgtype": self.msgtype, "encrypted": self.encrypted,
            "edited": self.edited, "redacted": self.redacted, "redacted_by": self.redacted_by,
            "undecryptable": self.undecryptable, "reply_to": self.reply_to,
            "reactions": self.reactions, "attachment": self.attachment,
        }


def _body(content: dict[str, Any]) -> str:
    body = content.get("body")
    return body if isinstance(body, str) else ""


def _attachment(content: dict[str, Any]) -> dict[str, Any] | None:
    file = content.get("file")
    url = file.get("url") if isinstance(file, dict) else content.get("url")
    if not isinstance(url, str):
        return None
    info = content.get("info")
    if not isinstance(info, dict):
        info = {}
    return {"url": url, "name": content.get("filename") or _body(content),
            "mimetype": info.get("mimetype"), "size": info.get("size"),
            "encrypted": isinstance(file, dict)}


def is_edit(event: TimelineEvent) -> bool:
    return event.rel_type == "m.replace"


def is_reaction(event: TimelineEvent) -> bool:
    return event.type == "m.reaction" or event.rel_type == "m.annotation"


def to_message(event: TimelineEvent) -> Message | None:
    """A top-level message from one event, or None (edits, reactions, state, redactions)."""
    if is_edit(event) or is_reaction(event):
        return None
    if event.redacted_by is not None:
        if event.type in (*MESSAGE_TYPES, "m.room.encrypted"):
            return Message(event.event_id, event.sender, event.ts, REDACTED_TEXT, "redacted",
                           event.type == "m.room.encrypted", redacted=True,
                           redacted_by=event.redacted_by)
        return None
    if event.undecryptable:
        return Message(event.event_id, event.sender, event.ts, UNDECRYPTABLE_TEXT,
                       "m.room.encrypted", True, undecryptable=True)
    if event.type not in MESSAGE_TYPES:
        return None
    content = event.content
    reply = content.get("m.relates_to", {})
    in_reply = reply.get("m.in_reply_to") if isinstance(reply, dict) else None
    reply_to = in_reply.get("event_id") if isinstance(in_reply, dict) else None
    msgtype = content.get("msgtype")
    return Message(
        event.event_id, event.sender, event.ts, _body(content),
        msgtype if isinstance(msgtype, str) else event.type, event.encrypted,
        reply_to=reply_to if isinstance(reply_to, str) else None,
        attachment=_attachment(content),
    )


def build(events: list[TimelineEvent]) -> list[Message]:
    """Messages in timeline order with their latest edit applied (by the original sender
    only, as the spec requires) and their reactions gathered."""
    messages: dict[str, Message] = {}
    order: list[str] = []
    for event in events:
        message = to_message(event)
        if message is not None and message.event_id not in messages:
            messages[message.event_id] = message
            order.append(message.event_id)
    for event in events:
        target = messages.get(event.target or "")
        if target is None or event.redacted_by is not None or target.redacted:
            continue
        if is_edit(event) and not event.undecryptable and event.sender == target.sender:
            new = event.content.get("m.new_content")
            if isinstance(new, dict) and (target.edited_ts is None or event.ts >= target.edited_ts):
                target.body = _body(new)
                target.edited = True
                target.edited_ts = event.ts
                target.attachment = _attachment(new) or target.attachment
        elif is_reaction(event) and not event.undecryptable:
            key = event.relation.get("key")
            if isinstance(key, str):
                senders = target.reactions.setdefault(key, [])
                if event.sender not in senders:
                    senders.append(event.sender)
    return [messages[event_id] for event_id in order]


def describe(event: TimelineEvent) -> str | None:
    """One line for a live event in `tail` (edits, reactions and redactions included)."""
    if event.type == "m.room.redaction":
        redacts = event.content.get("redacts")
        return f"verwijderde {redacts}" if isinstance(redacts, str) else "verwijderde een bericht"
    if is_edit(event):
        if event.undecryptable:
            return f"bewerkte {event.target}: {UNDECRYPTABLE_TEXT}"
        new = event.content.get("m.new_content")
        return f"bewerkte {event.target}: {_body(new) if isinstance(new, dict) else ''}"
    if is_reaction(event):
        return f"reageerde {event.relation.get('key', '?')} op {event.target}"
    message = to_message(event)
    if message is None:
        return None
    if message.reply_to:
        return f"(antwoord op {message.reply_to}) {message.body}"
    return message.body
