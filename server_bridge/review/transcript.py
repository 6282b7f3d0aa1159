"""Turn archived events into a chat-like transcript (pure: no I/O).

Edits, reactions and redactions are not shown as lines of their own but with the message
they belong to: the latest text with its edit history, reactions counted under it, a
redacted message marked as such and still readable (the archive keeps the original).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from archiver_bot.archive import StoredEvent
from server_bridge.review.text import (
    format_day,
    format_time,
    format_ts,
    highlight,
    sanitize_html,
    strip_reply_fallback,
)

HIDDEN_RELATIONS = ("m.replace", "m.annotation")
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
FILE_MSGTYPES = frozenset({"m.file", "m.image", "m.audio", "m.video"})
QUOTE_CHARS = 200


@dataclass
class Names:
    """Display names from the roster (user id -> name); the id itself otherwise."""

    by_id: Mapping[str, str]

    def __call__(self, user_id: str) -> str:
        return self.by_id.get(user_id) or user_id


@dataclass
class Text:
    """A message text: plain (escaped by the template) or sanitised HTML."""

    plain: str
    html: Markup | None = None


@dataclass
class Version:
    when: str
    sender: str
    text: Text


@dataclass
class Quote:
    event_id: str
    sender: str
    text: str
    on_page: bool


@dataclass
class Reaction:
    key: str
    count: int
    names: list[str]


@dataclass
class Attachment:
    url: str
    filename: str
    mimetype: str
    size: int | None
    inline_image: bool


@dataclass
class Line:
    event_id: str
    anchor: str
    kind: str  # message | state | undecryptable | destroyed | other
    sender_id: str
    sender: str
    ts: int
    time: str
    full_time: str
    msgtype: str = ""
    text: Text | None = None
    history: list[Version] = field(default_factory=list)
    reply_to: Quote | None = None
    thread_root: str | None = None
    thread_root_on_page: bool = False
    thread_replies: int = 0
    reactions: list[Reaction] = field(default_factory=list)
    redacted_by: str | None = None
    redaction_note: str = ""
    attachment: Attachment | None = None
    decryption: str = ""
    late_decryption: bool = False
    imported_key: bool = False
    system: str = ""
    day: str = ""
    new_day: bool = False


def anchor_of(event_id: str) -> str:
    return "ev-" + quote(event_id, safe="")


def _rel(event: StoredEvent) -> Mapping[str, Any]:
    rel = event.relates_to
    if isinstance(rel, Mapping):
        return rel
    content = event.content or {}
    value = content.get("m.relates_to")
    return value if isinstance(value, Mapping) else {}


def rel_type(event: StoredEvent) -> str | None:
    value = _rel(event).get("rel_type")
    return value if isinstance(value, str) else None


def rel_target(event: StoredEvent) -> str | None:
    value = _rel(event).get("event_id")
    return value if isinstance(value, str) else None


def reply_target(event: StoredEvent) -> str | None:
    reply = _rel(event).get("m.in_reply_to")
    if isinstance(reply, Mapping) and isinstance(reply.get("event_id"), str):
        if _rel(event).get("is_falling_back") is True:
            return None  # a thread reply's fallback, not a real reply
        return str(reply["event_id"])
    return None


def is_hidden(event: StoredEvent) -> bool:
    """Shown with their target instead of on a line of their own."""
    return event.type in ("m.reaction", "m.room.redaction") or rel_type(event) == "m.replace"


def message_text(content: Mapping[str, Any] | None, *, reply: bool = False) -> Text:
    if not content:
        return Text("")
    body = content.get("body")
    plain = body if isinstance(body, str) else ""
    if reply:
        plain = strip_reply_fallback(plain)
    formatted = content.get("formatted_body")
    if content.get("format") == "org.matrix.custom.html" and isinstance(formatted, str):
        return Text(plain, sanitize_html(formatted))
    return Text(plain)


def _edit_text(edit: StoredEvent) -> Text:
    new = (edit.content or {}).get("m.new_content")
    return message_text(new if isinstance(new, Mapping) else edit.content)


def linked_ids(events: Iterable[StoredEvent]) -> list[str]:
    """Events a page needs besides its own: edits, reactions, redactions, reply targets."""
    wanted: list[str] = []
    for event in events:
        wanted.extend(event.edits)
        wanted.extend(event.reactions)
        if event.redacted_by:
            wanted.append(event.redacted_by)
        target = reply_target(event)
        if target:
            wanted.append(target)
    return wanted


def _system_text(event: StoredEvent, names: Names) -> str:
    content = event.content or {}
    who = names(event.sender)
    if event.type == "m.room.create":
        return f"{who} heeft de kamer aangemaakt"
    if event.type == "m.room.member":
        target = names(event.state_key or "")
        membership = content.get("membership")
        if membership == "join":
            return f"{target} neemt deel"
        if membership == "invite":
            return f"{who} heeft {target} uitgenodigd"
        if membership == "leave":
            return f"{target} heeft de kamer verlaten" if event.state_key == event.sender \
                else f"{who} heeft {target} verwijderd"
        if membership == "ban":
            return f"{who} heeft {target} verbannen"
        return f"lidmaatschap van {target}: {membership}"
    if event.type == "m.room.name":
        return f"{who} noemde de kamer \u201c{content.get('name', '')}\u201d"
    if event.type == "m.room.topic":
        return f"{who} zette het onderwerp op \u201c{content.get('topic', '')}\u201d"
    if event.type == "m.room.encryption":
        return f"{who} zette eind-tot-eind-versleuteling aan"
    if event.type == "nl.rijkschat.archiving":
        return "deze kamer wordt gearchiveerd (Archiefwet)"
    return f"{who} wijzigde {event.type}"


def build_transcript(
    page: list[StoredEvent],
    linked: Mapping[str, StoredEvent],
    names: Names,
    attachment_url: str,
) -> list[Line]:
    """The lines of one transcript page. ``linked`` holds events referenced from the page
    but stored elsewhere in the timeline; ``attachment_url`` is formatted with the event id."""
    known: dict[str, StoredEvent] = {**linked, **{e.event_id: e for e in page}}
    on_page = {e.event_id for e in page}
    thread_counts: dict[str, int] = {}
    for event in page:
        if rel_type(event) == "m.thread" and rel_target(event):
            root = str(rel_target(event))
            thread_counts[root] = thread_counts.get(root, 0) + 1
    lines: list[Line] = []
    previous_day = ""
    for event in page:
        if is_hidden(event):
            continue
        line = _line(event, known, on_page, names, attachment_url)
        line.thread_replies = thread_counts.get(event.event_id, 0)
        line.day = format_day(event.origin_server_ts)
        line.new_day = line.day != previous_day
        previous_day = line.day
        lines.append(line)
    return lines


def _line(
    event: StoredEvent,
    known: Mapping[str, StoredEvent],
    on_page: set[str],
    names: Names,
    attachment_url: str,
) -> Line:
    line = Line(
        event_id=event.event_id,
        anchor=anchor_of(event.event_id),
        kind="message",
        sender_id=event.sender,
        sender=names(event.sender),
        ts=event.origin_server_ts,
        time=format_time(event.origin_server_ts),
        full_time=format_ts(event.origin_server_ts),
        decryption=event.decryption,
        late_decryption=event.late_decryption,
        imported_key=event.imported_key is not None,
    )
    if event.destroyed:
        line.kind = "destroyed"
        return line
    if event.decryption == "undecryptable":
        line.kind = "undecryptable"
        return line
    if event.state_key is not None:
        line.kind = "state"
        line.system = _system_text(event, names)
        return line
    if event.type not in ("m.room.message", "m.sticker"):
        line.kind = "other"
        line.system = f"{names(event.sender)}: {event.type}"
        return line
    content = event.content or {}
    msgtype = content.get("msgtype")
    line.msgtype = msgtype if isinstance(msgtype, str) else ""
    target = reply_target(event)
    line.text = message_text(content, reply=target is not None)
    if target is not None:
        quoted = known.get(target)
        if quoted is not None:
            quoted_text = _current_text(quoted, known).plain
            line.reply_to = Quote(target, names(quoted.sender), quoted_text[:QUOTE_CHARS],
                                  target in on_page)
        else:
            line.reply_to = Quote(target, "", "", False)
    if rel_type(event) == "m.thread":
        line.thread_root = rel_target(event)
        line.thread_root_on_page = line.thread_root in on_page
    edits = sorted((known[e] for e in event.edits if e in known),
                   key=lambda e: (e.origin_server_ts, e.event_id))
    if edits:
        line.history = [Version(format_ts(event.origin_server_ts), names(event.sender),
                                line.text)]
        for edit in edits:
            line.history.append(Version(format_ts(edit.origin_server_ts), names(edit.sender),
                                        _edit_text(edit)))
        line.text = line.history[-1].text
    line.reactions = _reactions(event, known, names)
    if event.redacted_by:
        line.redacted_by = event.redacted_by
        redaction = known.get(event.redacted_by)
        if redaction is not None:
            reason = (redaction.content or {}).get("reason")
            line.redaction_note = (
                f"door {names(redaction.sender)} op "
                f"{format_ts(redaction.origin_server_ts)}"
                + (f" (reden: {reason})" if isinstance(reason, str) and reason else "")
            )
        else:
            line.redaction_note = ""
    if event.has_attachment or line.msgtype in FILE_MSGTYPES:
        info = content.get("info")
        info = info if isinstance(info, Mapping) else {}
        mimetype = str(info.get("mimetype") or "application/octet-stream")
        size = info.get("size")
        filename = content.get("filename") or content.get("body") or "bijlage"
        line.attachment = Attachment(
            url=attachment_url.format(quote(event.event_id, safe="")),
            filename=str(filename),
            mimetype=mimetype,
            size=size if isinstance(size, int) else None,
            inline_image=event.has_attachment and mimetype in IMAGE_TYPES,
        ) if event.has_attachment else None
        if not event.has_attachment:
            line.system = "bijlage niet in het archief"
    return line


def _current_text(event: StoredEvent, known: Mapping[str, StoredEvent]) -> Text:
    edits = sorted((known[e] for e in event.edits if e in known),
                   key=lambda e: (e.origin_server_ts, e.event_id))
    if edits:
        return _edit_text(edits[-1])
    return message_text(event.content, reply=reply_target(event) is not None)


def _reactions(event: StoredEvent, known: Mapping[str, StoredEvent], names: Names
               ) -> list[Reaction]:
    grouped: dict[str, list[str]] = {}
    for reaction_id in event.reactions:
        reaction = known.get(reaction_id)
        if reaction is None or reaction.redacted_by:
            continue
        key = _rel(reaction).get("key")
        if isinstance(key, str):
            grouped.setdefault(key[:40], []).append(names(reaction.sender))
    return [Reaction(key, len(who), who) for key, who in grouped.items()]


def hit_segments(event: StoredEvent, terms: Iterable[str]) -> list[tuple[str, bool]]:
    """The searchable text of a hit, split for highlighting."""
    content = event.content or {}
    new = content.get("m.new_content")
    source = new if isinstance(new, Mapping) else content
    parts = [str(source[k]) for k in ("body", "name", "topic") if isinstance(source.get(k), str)]
    return highlight("\n".join(parts), frozenset(terms))
