"""Woo cases: requests, the documents in their scope and the assessments of those documents.

The rules of the Woo live here (ground codes, spans within a message's text, a message in
the request's scope); the archive store keeps the records (sealed, chained, access-logged)
and checks only their structure. Every call passes the archivist's access-logged actor.

A request's *documents* are the message-like events (text, formatted text, images, files,
edits, undecryptable messages) of its rooms within its period, limited to the search hits of
its query when it has one; reactions, redactions and state events are not documents. Span
offsets are character (code point) offsets into the document's *text*: the message's plain
``body`` (for an edit, the body of its ``m.new_content``).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archiver_bot.archive import (
    WOO_DECISIONS,
    Archive,
    DuplicateWooReferenceError,
    StoredEvent,
    UnknownWooRequestError,
    WooAssessment,
    WooInputError,
    WooRequest,
    WooSpan,
)
from server_bridge.review.service import MAX_TS, Reader, ReviewService, store_errors
from server_bridge.roster import Role, Roster, RosterEntry
from server_bridge.web.api_errors import ApiError
from server_bridge.woo.grounds import UnknownGroundError, validate_grounds
from server_bridge.woo.suggest import names_to_suggest, suggest_spans

#: event types that are documents of a Woo request (besides undecryptable messages)
DOCUMENT_TYPES = ("m.room.message", "m.sticker")
#: the most documents one request may hold (the search behind a query returns at most 1000)
MAX_DOCUMENTS = 10_000
SEARCH_LIMIT = 1000
PAGE = 1000
ATTACHMENT_MSGTYPES = ("m.image", "m.file", "m.audio", "m.video")
_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ROOM_ID = re.compile(r"^![^\s/]{1,254}$")
_EVENT_ID = re.compile(r"^\$[^\s/]{1,250}$")
_REQUEST_ID = re.compile(r"^[0-9a-f]{16}$")


def invalid(message: str) -> ApiError:
    return ApiError(422, "M_INVALID_PARAM", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "M_NOT_FOUND", message)


def _rel(event: StoredEvent) -> Mapping[str, Any]:
    rel = event.relates_to
    if isinstance(rel, Mapping):
        return rel
    value = (event.content or {}).get("m.relates_to")
    return value if isinstance(value, Mapping) else {}


def is_edit(event: StoredEvent) -> bool:
    return _rel(event).get("rel_type") == "m.replace"


def _edit_of(event: StoredEvent) -> str | None:
    target = _rel(event).get("event_id") if is_edit(event) else None
    return target if isinstance(target, str) else None


def document_text(event: StoredEvent) -> str:
    """The text span offsets refer to (empty for undecryptable or destroyed messages)."""
    content: Mapping[str, Any] = event.content or {}
    if is_edit(event) and isinstance(content.get("m.new_content"), Mapping):
        content = content["m.new_content"]
    body = content.get("body")
    return body if isinstance(body, str) else ""


def document_kind(event: StoredEvent) -> str:
    """chatbericht, bijlage (an image or file) or bewerking (an edit of a message)."""
    if is_edit(event):
        return "bewerking"
    msgtype = (event.content or {}).get("msgtype")
    if event.type == "m.sticker" or msgtype in ATTACHMENT_MSGTYPES or event.has_attachment:
        return "bijlage"
    return "chatbericht"


def is_document(event: StoredEvent) -> bool:
    if event.type in DOCUMENT_TYPES:
        return True
    return event.decryption == "undecryptable" and event.type == "m.room.encrypted"


def in_period(request: WooRequest, ts: int) -> bool:
    return (request.from_ts is None or ts >= request.from_ts) and (
        request.to_ts is None or ts <= request.to_ts
    )


@dataclass
class Document:
    event: StoredEvent
    text: str
    kind: str
    history: list[WooAssessment] = field(default_factory=list)

    @property
    def current(self) -> WooAssessment | None:
        return self.history[-1] if self.history else None


@dataclass
class Case:
    request: WooRequest
    documents: list[Document]
    #: assessments of events no longer in scope (kept and shown, never dropped)
    outside: list[WooAssessment]


@dataclass(frozen=True)
class DocumentKey:
    """A document of a case by its place in time order, without its content."""

    ts: int
    event_id: str
    #: the event an edit replaces (None for other documents)
    edit_of: str | None


@dataclass
class CaseIndex:
    """A case without its documents' content, for a streaming export: the documents' keys
    in time order and the current assessment of each assessed one. Its size is a few
    hundred bytes per document; the content is read a chunk at a time with
    :meth:`WooService.load_documents`."""

    request: WooRequest
    keys: list[DocumentKey]
    current: dict[str, WooAssessment]


def span_to_dict(span: WooSpan) -> dict[str, Any]:
    return {"start": span.start, "end": span.end, "ground": span.ground}


def assessment_to_dict(a: WooAssessment) -> dict[str, Any]:
    return {
        "seq": a.seq,
        "event_id": a.event_id,
        "decision": a.decision,
        "grounds": list(a.grounds),
        "spans": [span_to_dict(s) for s in a.spans],
        "note": a.note,
        "assessed_by": a.assessed_by,
        "assessed_ts": a.assessed_ts,
    }


def request_to_dict(r: WooRequest) -> dict[str, Any]:
    return {
        "id": r.id,
        "reference": r.reference,
        "title": r.title,
        "received": r.received,
        "rooms": list(r.rooms),
        "from_ts": r.from_ts,
        "to_ts": r.to_ts,
        "query": r.query,
        "created_by": r.created_by,
        "created_ts": r.created_ts,
    }


# ---- suggestions (never stored: the archivist accepts or rejects each) ----------------------
ROSTER_FILE = "roster.json"


def roster_from_public(data: object) -> Roster:
    """The roster from the public ``roster.json`` (``users``: user_id, role, display_name);
    entries that cannot be read (or roles this bridge does not know) are left out."""
    entries: list[RosterEntry] = []
    users = data.get("users") if isinstance(data, Mapping) else None
    for user in users if isinstance(users, list) else []:
        if not isinstance(user, Mapping):
            continue
        user_id, name, role = user.get("user_id"), user.get("display_name"), user.get("role")
        if not isinstance(user_id, str) or not isinstance(name, str):
            continue
        try:
            parsed = Role(str(role))
        except ValueError:
            continue
        entries.append(RosterEntry(user_id[1:].split(":", 1)[0], name, parsed))
    return Roster(tuple(entries))


def suggestion_names(data_dir: Path) -> list[str]:
    """The names whose mention is suggested for 5.1.2e: officials and archivists of the
    roster (not key officials, not the archiver bot). No roster: no name suggestions."""
    try:
        data = json.loads((data_dir / ROSTER_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return []
    return names_to_suggest(roster_from_public(data))


def suggestions(text: str, names: Sequence[str]) -> list[dict[str, Any]]:
    """Suggested 5.1.2e spans of a document's text, each with the text it would withhold."""
    out = []
    for s in suggest_spans(text, names):
        item = s.as_dict()
        item["text"] = text[s.start:s.end]
        out.append(item)
    return out


def document_to_dict(d: Document, names: Sequence[str] | None = None) -> dict[str, Any]:
    e = d.event
    return {
        "event_id": e.event_id,
        "room_id": e.room_id,
        "sender": e.sender,
        "origin_server_ts": e.origin_server_ts,
        "type": e.type,
        "kind": d.kind,
        "msgtype": (e.content or {}).get("msgtype"),
        "text": d.text,
        "decryption": e.decryption,
        "has_attachment": e.has_attachment,
        "replaces": _rel(e).get("event_id") if is_edit(e) else None,
        "assessment": None if d.current is None else assessment_to_dict(d.current),
        "history": [assessment_to_dict(a) for a in d.history],
        "suggestions": [] if names is None else suggestions(d.text, names),
    }


def case_to_dict(case: Case, names: Sequence[str] | None = None) -> dict[str, Any]:
    body = request_to_dict(case.request)
    body["documents"] = [document_to_dict(d, names) for d in case.documents]
    body["assessed"] = sum(1 for d in case.documents if d.current is not None)
    body["outside_scope"] = [assessment_to_dict(a) for a in case.outside]
    return body


# ---- input checks (before the store is touched) ---------------------------------------------
def _opt_ts(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TS:
        raise invalid(f"{name} must be a time in milliseconds since 1970")
    return value


@dataclass(frozen=True)
class NewRequest:
    reference: str
    title: str
    received: str
    rooms: list[str]
    from_ts: int | None
    to_ts: int | None
    query: str | None


def parse_new_request(body: object, today: str) -> NewRequest:
    if not isinstance(body, Mapping):
        raise invalid("the body must be a JSON object")
    unknown = set(body) - {"reference", "title", "rooms", "received", "from_ts", "to_ts", "query"}
    if unknown:
        raise invalid(f"unknown field(s): {', '.join(sorted(unknown))}")
    reference = body.get("reference")
    if not isinstance(reference, str) or not _REFERENCE.match(reference.strip()):
        raise invalid(
            "reference is required: letters, digits and . _ / - (e.g. 2026-0412), at most 64"
        )
    title = body.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > 500:
        raise invalid("title is required (at most 500 characters)")
    received = body.get("received", today)
    if not isinstance(received, str) or not _DATE.match(received):
        raise invalid("received must be a date YYYY-MM-DD")
    rooms = body.get("rooms")
    if not isinstance(rooms, list) or not rooms or len(rooms) > 200:
        raise invalid("rooms must list 1 to 200 room ids")
    for room in rooms:
        if not isinstance(room, str) or not _ROOM_ID.match(room):
            raise invalid("rooms must be room ids (!opaque:server)")
    from_ts, to_ts = _opt_ts(body, "from_ts"), _opt_ts(body, "to_ts")
    if from_ts is not None and to_ts is not None and from_ts > to_ts:
        raise invalid("from_ts lies after to_ts")
    query = body.get("query")
    if query is not None and (not isinstance(query, str) or len(query) > 500):
        raise invalid("query must be a text of at most 500 characters")
    query = query.strip() if isinstance(query, str) and query.strip() else None
    if query is not None and not re.search(r"[^\W_]", query):
        raise invalid("query contains no words")
    return NewRequest(
        reference.strip(), title.strip(), received, list(dict.fromkeys(rooms)), from_ts, to_ts,
        query,
    )


@dataclass(frozen=True)
class NewAssessment:
    decision: str
    grounds: list[str]
    spans: list[WooSpan]
    note: str | None


def parse_assessment(body: object) -> NewAssessment:
    """Structure, decision and ground codes (the spans' fit to the text is checked later)."""
    if not isinstance(body, Mapping):
        raise invalid("the body must be a JSON object")
    unknown = set(body) - {"decision", "grounds", "spans", "note"}
    if unknown:
        raise invalid(f"unknown field(s): {', '.join(sorted(unknown))}")
    decision = body.get("decision")
    if decision not in WOO_DECISIONS:
        raise invalid("decision must be one of " + ", ".join(WOO_DECISIONS))
    raw_grounds = body.get("grounds", [])
    if not isinstance(raw_grounds, list) or len(raw_grounds) > 20:
        raise invalid("grounds must be a list of ground codes such as 5.1.2e")
    try:
        grounds = validate_grounds(raw_grounds)
    except UnknownGroundError as exc:
        raise invalid(str(exc)) from None
    if decision != "openbaar" and not grounds:
        raise invalid(f"a decision {decision} needs at least one ground")
    if decision == "openbaar" and grounds:
        raise invalid("a decision openbaar withholds nothing and takes no grounds")
    raw_spans = body.get("spans") or []
    if not isinstance(raw_spans, list) or len(raw_spans) > 500:
        raise invalid("spans must be a list of {start, end, ground}")
    spans: list[WooSpan] = []
    for raw in raw_spans:
        if not isinstance(raw, Mapping) or set(raw) - {"start", "end", "ground"}:
            raise invalid("every span is an object {start, end, ground}")
        start, end = raw.get("start"), raw.get("end")
        if (
            isinstance(start, bool) or isinstance(end, bool)
            or not isinstance(start, int) or not isinstance(end, int)
        ):
            raise invalid("a span's start and end must be integers")
        if not 0 <= start < end:
            raise invalid(f"span {start}-{end}: needs 0 <= start < end")
        try:
            (ground,) = validate_grounds([raw.get("ground")])
        except (UnknownGroundError, ValueError):
            raise invalid(f"span {start}-{end}: unknown ground {raw.get('ground')!r}") from None
        if ground not in grounds:
            raise invalid(f"span {start}-{end}: ground {ground} is not among the grounds")
        spans.append(WooSpan(start, end, ground))
    spans.sort(key=lambda s: (s.start, s.end))
    for before, after in zip(spans, spans[1:], strict=False):
        if after.start < before.end:
            raise invalid(
                f"spans {before.start}-{before.end} and {after.start}-{after.end} overlap"
            )
    if decision == "deels_openbaar" and not spans:
        raise invalid("a decision deels_openbaar needs the spans that are withheld")
    if decision != "deels_openbaar" and spans:
        raise invalid("spans belong to a decision deels_openbaar only")
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 4000):
        raise invalid("note must be a text of at most 4000 characters")
    return NewAssessment(str(decision), grounds, spans, note.strip() if note else None)


def check_spans_fit(spans: list[WooSpan], text: str) -> None:
    for span in spans:
        if span.end > len(text):
            raise invalid(
                f"span {span.start}-{span.end} lies outside the message text "
                f"({len(text)} characters)"
            )


def resolve_text(text: str, wanted: str) -> tuple[int, int]:
    """The offsets of ``wanted`` in the text: it must occur exactly once (422 otherwise)."""
    if not wanted:
        raise invalid("the text to withhold is empty")
    at = text.find(wanted)
    if at < 0:
        raise invalid(f"the text to withhold does not occur in the message: {wanted!r}")
    count = text.count(wanted)
    if count > 1:
        raise invalid(
            f"the text to withhold occurs {count} times in the message: {wanted!r}; "
            "give its start and end instead"
        )
    return at, at + len(wanted)


class WooService:
    """Woo requests and assessments on top of the review service's reader archive."""

    def __init__(self, review: ReviewService) -> None:
        self._review = review

    async def _archive(self) -> Archive:
        return await self._review.store()

    async def create(self, reader: Reader, new: NewRequest) -> WooRequest:
        archive = await self._archive()
        with store_errors():
            known = set(await archive.archived_room_ids())
        for room in new.rooms:
            if room not in known:
                raise not_found(f"room {room} is not in the archive")
        with _woo_errors():
            return await archive.woo_create_request(
                reader.actor(),
                reference=new.reference,
                title=new.title,
                received=new.received,
                rooms=new.rooms,
                from_ts=new.from_ts,
                to_ts=new.to_ts,
                query=new.query,
            )

    async def requests(self, reader: Reader) -> list[WooRequest]:
        archive = await self._archive()
        with _woo_errors():
            return await archive.woo_requests(reader.actor())

    async def request(self, reader: Reader, request_id: str) -> WooRequest:
        if not _REQUEST_ID.match(request_id):
            raise not_found("no Woo request with this id")
        archive = await self._archive()
        with _woo_errors():
            return await archive.woo_request(reader.actor(), request_id)

    async def by_reference(self, reader: Reader, reference: str) -> WooRequest:
        for found in await self.requests(reader):
            if found.reference == reference:
                return found
        raise not_found(f"no Woo request with reference {reference}")

    async def _query_hits(
        self, archive: Archive, reader: Reader, request: WooRequest, room: str,
        from_ts: int | None, to_ts: int | None,
    ) -> set[str]:
        assert request.query is not None
        with store_errors():
            hits = await archive.search(
                reader.actor(), request.query, room=room, from_ts=from_ts, to_ts=to_ts,
                limit=SEARCH_LIMIT,
            )
        return {hit.event_id for hit in hits}

    async def _scope(
        self, archive: Archive, reader: Reader, request: WooRequest
    ) -> AsyncIterator[StoredEvent]:
        """The request's documents, room by room, a page at a time (at most MAX_DOCUMENTS)."""
        count = 0
        for room in request.rooms:
            wanted: set[str] | None = None
            if request.query is not None:
                wanted = await self._query_hits(
                    archive, reader, request, room, request.from_ts, request.to_ts
                )
            after: str | None = None
            while count < MAX_DOCUMENTS:
                with store_errors():
                    page, after = await archive.room_events(reader.actor(), room, after, PAGE)
                for event in page:
                    if not is_document(event) or not in_period(request, event.origin_server_ts):
                        continue
                    if wanted is not None and event.event_id not in wanted:
                        continue
                    count += 1
                    yield event
                if after is None or not page:
                    break

    async def case(self, reader: Reader, request_id: str) -> Case:
        """The request with every document in scope (time order) and its assessments."""
        request = await self.request(reader, request_id)
        archive = await self._archive()
        documents = [
            Document(event, document_text(event), document_kind(event))
            async for event in self._scope(archive, reader, request)
        ]
        documents.sort(key=lambda d: (d.event.origin_server_ts, d.event.event_id))
        by_id = {d.event.event_id: d for d in documents}
        outside: list[WooAssessment] = []
        with _woo_errors():
            history = await archive.woo_assessments(reader.actor(), request.id)
        for assessment in history:
            doc = by_id.get(assessment.event_id)
            if doc is None:
                outside.append(assessment)
            else:
                doc.history.append(assessment)
        return Case(request, documents, outside)

    async def case_index(self, reader: Reader, request_id: str) -> CaseIndex:
        """The case as :meth:`case` finds it, keeping only each document's key and current
        assessment (the events are read a page at a time and dropped)."""
        request = await self.request(reader, request_id)
        archive = await self._archive()
        keys = [
            DocumentKey(event.origin_server_ts, event.event_id, _edit_of(event))
            async for event in self._scope(archive, reader, request)
        ]
        keys.sort(key=lambda k: (k.ts, k.event_id))
        in_scope = {k.event_id for k in keys}
        with _woo_errors():
            history = await archive.woo_assessments(reader.actor(), request.id)
        current = {a.event_id: a for a in history if a.event_id in in_scope}
        del history
        return CaseIndex(request, keys, current)

    async def load_documents(
        self, reader: Reader, index: CaseIndex, event_ids: Sequence[str]
    ) -> list[Document]:
        """The documents of ``event_ids`` (keys of ``index``, at most PAGE) in that order,
        each with its current assessment as its history; one logged read."""
        archive = await self._archive()
        with store_errors():
            found = await archive.get_events(reader.actor(), list(event_ids))
        out: list[Document] = []
        for event_id in event_ids:
            event = found.get(event_id)
            if event is None:
                raise ApiError(503, "M_UNAVAILABLE", "the archive changed during the export")
            current = index.current.get(event_id)
            out.append(Document(event, document_text(event), document_kind(event),
                                [] if current is None else [current]))
        return out

    async def events(self, reader: Reader, event_ids: Sequence[str]) -> dict[str, StoredEvent]:
        """Linked events (reactions) by id, unknown ones left out; one logged read per PAGE."""
        archive = await self._archive()
        wanted = list(dict.fromkeys(event_ids))
        found: dict[str, StoredEvent] = {}
        for start in range(0, len(wanted), PAGE):
            with store_errors():
                found.update(
                    await archive.get_events(reader.actor(), wanted[start:start + PAGE])
                )
        return found

    async def document(self, reader: Reader, request: WooRequest, event_id: str) -> Document:
        """One document of the request; 404 for an unknown event, 422 outside the scope."""
        if not _EVENT_ID.match(event_id):
            raise not_found("event id must look like $opaque")
        archive = await self._archive()
        with store_errors():
            event = await archive.get_event(reader.actor(), event_id)
        if event.room_id not in request.rooms:
            raise invalid("the message is outside the request's scope (another room)")
        if not in_period(request, event.origin_server_ts):
            raise invalid("the message is outside the request's scope (outside the period)")
        if not is_document(event):
            raise invalid("the event is not a message (not a document of the request)")
        if request.query is not None:
            ts = event.origin_server_ts
            hits = await self._query_hits(archive, reader, request, event.room_id, ts, ts)
            if event_id not in hits:
                raise invalid("the message is outside the request's scope (query)")
        return Document(event, document_text(event), document_kind(event))

    async def assess(
        self, reader: Reader, request_id: str, event_id: str, new: NewAssessment
    ) -> WooAssessment:
        request = await self.request(reader, request_id)
        doc = await self.document(reader, request, event_id)
        check_spans_fit(new.spans, doc.text)
        archive = await self._archive()
        with _woo_errors():
            return await archive.woo_assess(
                reader.actor(),
                request.id,
                event_id,
                decision=new.decision,
                grounds=new.grounds,
                spans=new.spans,
                note=new.note,
            )

    async def history(
        self, reader: Reader, request_id: str, event_id: str
    ) -> list[WooAssessment]:
        archive = await self._archive()
        with _woo_errors():
            every = await archive.woo_assessments(reader.actor(), request_id)
        return [a for a in every if a.event_id == event_id]


@contextmanager
def _woo_errors() -> Iterator[None]:
    """The store's Woo errors as API errors (404 unknown request, 409 duplicate reference,
    422 refused input); every other store error as the review service maps it."""
    with store_errors():
        try:
            yield
        except UnknownWooRequestError as exc:
            raise not_found("no Woo request with this id") from exc
        except DuplicateWooReferenceError as exc:
            raise ApiError(409, "M_CONFLICT", str(exc)) from exc
        except WooInputError as exc:
            raise invalid(str(exc)) from exc


def segments(text: str, spans: list[WooSpan]) -> list[tuple[str, str | None]]:
    """The text cut at the spans: ``(piece, None)`` is shown, ``(piece, ground)`` withheld."""
    out: list[tuple[str, str | None]] = []
    pos = 0
    for span in sorted(spans, key=lambda s: s.start):
        start, end = max(span.start, pos), min(span.end, len(text))
        if start > pos:
            out.append((text[pos:start], None))
        if end > start:
            out.append((text[start:end], span.ground))
        pos = max(pos, end)
    if pos < len(text):
        out.append((text[pos:], None))
    return out


__all__ = [
    "Case",
    "CaseIndex",
    "Document",
    "DocumentKey",
    "NewAssessment",
    "NewRequest",
    "WooService",
    "assessment_to_dict",
    "case_to_dict",
    "check_spans_fit",
    "document_text",
    "parse_assessment",
    "parse_new_request",
    "request_to_dict",
    "resolve_text",
    "segments",
    "suggestion_names",
    "suggestions",
]
