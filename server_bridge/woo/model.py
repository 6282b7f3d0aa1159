"""The publication package builder's input: plain frozen values, filled in by the caller
(the Woo service reads them from the archive). Nothing here touches the archive.

Texts are the messages' plain bodies; an assessment's spans are character ranges over
:attr:`WooDocument.text`. Edits carry their own (optional) spans: when a partly public
document's edit has none, the whole edited text is withheld, never shown."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

Decision = Literal["openbaar", "deels_openbaar", "niet_openbaar"]
DocumentKind = Literal["chatbericht", "bijlage"]
DECISIONS: tuple[Decision, ...] = ("openbaar", "deels_openbaar", "niet_openbaar")
DECISION_LABELS: Mapping[Decision, str] = {
    "openbaar": "Openbaar",
    "deels_openbaar": "Deels openbaar",
    "niet_openbaar": "Niet openbaar",
}


class WooModelError(ValueError):
    """The builder's input is inconsistent (e.g. a span outside the text, an unknown ground)."""


@dataclass(frozen=True)
class WooRequestInfo:
    reference: str
    title: str
    received: date
    scope: str


@dataclass(frozen=True)
class Span:
    """Characters ``text[start:end]`` are withheld on ``ground``."""

    start: int
    end: int
    ground: str


@dataclass(frozen=True)
class Assessment:
    decision: Decision
    grounds: tuple[str, ...] = ()
    spans: tuple[Span, ...] = ()
    published: bool = True


@dataclass(frozen=True)
class Edit:
    """A later version of a message. ``spans`` (over ``text``) are needed to show it in a
    partly public document; without them the whole version is withheld."""

    ts: datetime
    text: str
    spans: tuple[Span, ...] | None = None


@dataclass(frozen=True)
class ReplyRef:
    number: str | None
    event_id: str


@dataclass(frozen=True)
class Reaction:
    key: str
    sender_name: str
    sender_ground: str | None = None  # set: the reacting person's name is withheld on it


@dataclass(frozen=True)
class AttachmentInfo:
    file_name: str
    mimetype: str
    size: int
    sha256: str
    image_bytes: bytes | None = None  # set for images that are to be embedded


@dataclass(frozen=True)
class WooDocument:
    number: str
    event_id: str
    room_id: str
    room_name: str
    sender_id: str
    sender_name: str
    sender_function: str
    ts: datetime
    kind: DocumentKind
    text: str
    assessment: Assessment
    edits: tuple[Edit, ...] = ()
    reply_to: ReplyRef | None = None
    reactions: tuple[Reaction, ...] = ()
    attachment: AttachmentInfo | None = None
    deleted: bool = False  # redacted (removed) by its sender in Matrix
    # set: the sender's name is withheld on this ground (e.g. 5.1.2e for an official who is
    # not a key official); the function is still shown
    sender_name_ground: str | None = None


@dataclass(frozen=True)
class ExportInfo:
    exporter: str
    exported_at: datetime


@dataclass(frozen=True)
class PackageInput:
    request: WooRequestInfo
    grounds: Mapping[str, str]  # ground code -> Dutch description
    export: ExportInfo
    verify: Mapping[str, Any] = field(default_factory=dict)


def check_spans(text: str, spans: tuple[Span, ...], grounds: Mapping[str, str]) -> None:
    for span in spans:
        if not 0 <= span.start < span.end <= len(text):
            raise WooModelError(
                f"span {span.start}-{span.end} lies outside a text of {len(text)} characters"
            )
        if span.ground not in grounds:
            raise WooModelError(f"unknown ground {span.ground!r}")


def check_document(doc: WooDocument, grounds: Mapping[str, str]) -> None:
    """Raise :class:`WooModelError` when the document's assessment cannot be rendered safely."""
    a = doc.assessment
    if a.decision not in DECISIONS:
        raise WooModelError(f"document {doc.number}: unknown decision {a.decision!r}")
    for code in a.grounds:
        if code not in grounds:
            raise WooModelError(f"document {doc.number}: unknown ground {code!r}")
    for name_ground in (doc.sender_name_ground, *(r.sender_ground for r in doc.reactions)):
        if name_ground is not None and name_ground not in grounds:
            raise WooModelError(f"document {doc.number}: unknown ground {name_ground!r}")
    if a.decision != "openbaar" and not a.grounds:
        raise WooModelError(f"document {doc.number}: {a.decision} needs at least one ground")
    try:
        check_spans(doc.text, a.spans, grounds)
        for edit in doc.edits:
            if edit.spans is not None:
                check_spans(edit.text, edit.spans, grounds)
    except WooModelError as exc:
        raise WooModelError(f"document {doc.number}: {exc}") from None


@dataclass(frozen=True)
class Segment:
    """A piece of a text as published: either shown text or a withheld part's ground."""

    text: str | None
    ground: str | None


def segments(text: str, spans: tuple[Span, ...]) -> list[Segment]:
    """Split ``text`` into shown parts and withheld parts (overlapping spans merge; the
    merged part is labelled with the grounds of its spans)."""
    ordered = sorted(spans, key=lambda s: (s.start, s.end))
    merged: list[tuple[int, int, list[str]]] = []
    for s in ordered:
        if merged and s.start <= merged[-1][1]:
            start, end, codes = merged[-1]
            if s.ground not in codes:
                codes.append(s.ground)
            merged[-1] = (start, max(end, s.end), codes)
        else:
            merged.append((s.start, s.end, [s.ground]))
    out: list[Segment] = []
    pos = 0
    for start, end, codes in merged:
        if start > pos:
            out.append(Segment(text[pos:start], None))
        out.append(Segment(None, ", ".join(codes)))
        pos = end
    if pos < len(text):
        out.append(Segment(text[pos:], None))
    return out
