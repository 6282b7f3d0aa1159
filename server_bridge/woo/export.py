"""A Woo case as a publication package: the request, its documents in scope and their current
assessments (from :class:`~server_bridge.woo.service.WooService`) turned into the builder's
input model (:mod:`server_bridge.woo.model`) and written with
:func:`~server_bridge.woo.package.build_package` to a file.

How the archive's events become documents (as the review transcript shows them):

- documents are numbered in time order (``0001``, ...); an edit in scope is not a document of
  its own but a version shown under the message it edits (its assessment decides how the
  version is shown: openbaar in full, deels openbaar with its spans, niet openbaar as a box;
  the message's decision becomes the strictest of the two and takes the edit's grounds);
- a reply names the document number of the message it answers (or "buiten de reikwijdte");
- reactions are listed with the reacting person's name, withheld on 5.1.2e unless a key
  official; the same holds for the sender's name (their roster function is always shown);
- a message its sender removed (a Matrix redaction) is marked as removed, its text not shown;
- attachments: name, mimetype, size and SHA-256 of the archived bytes; images embedded.

Every document must be assessed before an export (:class:`UnassessedError` otherwise).
The case is first read as an index (each document's time, id and current assessment; the
events are read a page at a time and dropped); the documents are then read back from the
archive a chunk at a time and converted one at a time while the builder consumes them
(attachment bytes are read then and dropped after the document is laid out), so memory stays
bounded. The builder
runs in a worker thread; archive reads it needs are run on the event loop from there.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

from archiver_bot.archive import ArchivePaths, StoredEvent, WooAssessment
from server_bridge.review.service import Reader, ReviewService
from server_bridge.web.api_errors import ApiError
from server_bridge.woo.grounds import GROUNDS
from server_bridge.woo.model import (
    Assessment,
    AttachmentInfo,
    DocumentKind,
    Edit,
    ExportInfo,
    PackageInput,
    Reaction,
    ReplyRef,
    Span,
    WooDocument,
    WooRequestInfo,
)
from server_bridge.woo.package import PackageResult, build_package
from server_bridge.woo.service import CaseIndex, Document, WooService
from server_bridge.woo.signing import PdfSigningIdentity, ensure_pdf_signing_identity

log = logging.getLogger(__name__)

ROSTER_FILE = "roster.json"
PADES_DIR = "pades"
NAME_GROUND = "5.1.2e"
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
FUNCTIONS = {
    "key_official": "sleutelfunctionaris",
    "official": "ambtenaar",
    "archivist": "archivaris",
}
_STRICTNESS = {"openbaar": 0, "deels_openbaar": 1, "niet_openbaar": 2}
#: documents read from the archive at a time during an export (at most service.PAGE)
CHUNK = 250
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
T = TypeVar("T")


class UnassessedError(ApiError):
    def __init__(self, count: int) -> None:
        super().__init__(
            409,
            "M_UNASSESSED",
            f"{count} document(s) of the request have no assessment yet; assess every "
            "document before exporting",
        )


def file_reference(reference: str) -> str:
    """The request reference as it may appear in file names (``2026/12`` -> ``2026-12``)."""
    cleaned = _UNSAFE.sub("-", reference).strip(".-")
    return cleaned[:64] or "verzoek"


def zip_name(reference: str) -> str:
    return f"woo-{file_reference(reference)}.zip"


def pdf_identity(data_dir: Path) -> PdfSigningIdentity:
    """The PAdES key and certificate, kept in the archive's custody (``DATA/archive/pades``,
    0700, the key 0600); created on first use."""
    directory = ArchivePaths.for_data_dir(data_dir).root / PADES_DIR
    identity = ensure_pdf_signing_identity(directory)
    os.chmod(directory, 0o700)
    return identity


@dataclass(frozen=True)
class Person:
    name: str
    function: str
    key_official: bool


class People:
    """Display names and functions from ``roster.json``; key officials of the rooms too."""

    def __init__(self, data_dir: Path, key_officials: set[str]) -> None:
        self._by_id: dict[str, tuple[str, str]] = {}
        try:
            roster = json.loads((data_dir / ROSTER_FILE).read_text("utf-8"))
            for user in roster.get("users", []):
                uid = str(user["user_id"])
                self._by_id[uid] = (str(user.get("display_name") or uid), str(user.get("role")))
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            log.warning("roster.json unreadable: senders are shown by their Matrix id")
        self._key = key_officials

    def __call__(self, user_id: str) -> Person:
        name, role = self._by_id.get(user_id, (user_id, ""))
        key = role == "key_official" or user_id in self._key
        function = "sleutelfunctionaris" if key else FUNCTIONS.get(role, "onbekend")
        return Person(name, function, key)


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _spans(a: WooAssessment) -> tuple[Span, ...]:
    return tuple(Span(s.start, s.end, s.ground) for s in a.spans)


def _relation(event: StoredEvent) -> Mapping[str, Any]:
    if isinstance(event.relates_to, Mapping):
        return event.relates_to
    raw = (event.content or {}).get("m.relates_to")
    return raw if isinstance(raw, Mapping) else {}


def _reply_target(event: StoredEvent) -> str | None:
    rel = _relation(event)
    reply = rel.get("m.in_reply_to")
    if isinstance(reply, Mapping) and isinstance(reply.get("event_id"), str):
        return str(reply["event_id"])
    return None


def _edit_target(event: StoredEvent) -> str | None:
    rel = _relation(event)
    target = rel.get("event_id")
    return str(target) if isinstance(target, str) else None


def combine(main: WooAssessment, edits: list[WooAssessment]) -> Assessment:
    """The document's assessment with its edits': the strictest decision, every ground."""
    decision = main.decision
    grounds = list(main.grounds)
    for a in edits:
        if _STRICTNESS[a.decision] > _STRICTNESS[decision]:
            decision = "deels_openbaar" if main.decision != "niet_openbaar" else decision
        for code in a.grounds:
            if code not in grounds:
                grounds.append(code)
    spans = _spans(main) if main.decision == "deels_openbaar" else ()
    if decision == "openbaar":
        grounds = []
    return Assessment(
        decision,
        tuple(grounds),
        spans,
        published=decision != "niet_openbaar",
    )


def edit_version(doc: Document) -> Edit:
    a = doc.current
    assert a is not None
    spans: tuple[Span, ...] | None
    if a.decision == "openbaar":
        spans = ()
    elif a.decision == "deels_openbaar":
        spans = _spans(a)
    else:
        spans = None
    return Edit(_ts(doc.event.origin_server_ts), doc.text, spans)


class CaseExport:
    """One export of one case: everything small is gathered up front (names, numbers, the
    verify result); :meth:`documents` yields the builder's documents one by one."""

    def __init__(
        self,
        review: ReviewService,
        reader: Reader,
        case: CaseIndex,
        data_dir: Path,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.review = review
        self.service = WooService(review)
        self.reader = reader
        self.case = case
        self.data_dir = data_dir
        self.loop = loop
        self.room_names: dict[str, str] = {}
        self.people = People(data_dir, set())
        self.verify: dict[str, Any] = {}
        unassessed = sum(1 for k in case.keys if k.event_id not in case.current)
        if unassessed:
            raise UnassessedError(unassessed)
        ids = {k.event_id for k in case.keys}
        #: the documents of the package (time order) and the edits shown under each
        self.main: list[str] = []
        self.edits: dict[str, list[str]] = {}
        for k in case.keys:
            if k.edit_of is not None and k.edit_of in ids:
                self.edits.setdefault(k.edit_of, []).append(k.event_id)
            else:
                self.main.append(k.event_id)
        self.numbers = {event_id: f"{n:04d}" for n, event_id in enumerate(self.main, start=1)}

    async def prepare(self) -> None:
        key_officials: set[str] = set()
        checked: dict[str, Any] = {}
        ok = True
        for room_id in self.case.request.rooms:
            room = await self.review.room(self.reader, room_id)
            self.room_names[room_id] = room.name or room_id
            key_officials.update(room.key_officials)
            result = await self.review.verify(self.reader, room_id)
            checked[room_id] = result.to_dict()
            ok = ok and result.ok
        self.people = People(self.data_dir, key_officials)
        self.verify = {
            "ok": ok,
            "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "rooms": checked,
        }

    def package_input(self, exporter: str, now: datetime) -> PackageInput:
        r = self.case.request
        names = ", ".join(self.room_names.get(x, x) for x in r.rooms)
        scope = f"Kamers: {names}"
        if r.from_ts is not None or r.to_ts is not None:
            start = _ts(r.from_ts).date().isoformat() if r.from_ts is not None else "begin"
            end = _ts(r.to_ts).date().isoformat() if r.to_ts is not None else "heden"
            scope += f"; periode {start} tot en met {end}"
        if r.query:
            scope += f"; zoekvraag: {r.query}"
        return PackageInput(
            WooRequestInfo(file_reference(r.reference), r.title, date.fromisoformat(r.received),
                           scope),
            {g.code: g.description for g in GROUNDS},
            ExportInfo(exporter, now),
            self.verify,
        )

    # ---- run on the worker thread -------------------------------------------------------
    def _await(self, make: Callable[[], Awaitable[T]]) -> T:
        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result()

    def _attachment(self, event: StoredEvent) -> AttachmentInfo:
        content = event.content or {}
        info = content.get("info") if isinstance(content.get("info"), Mapping) else {}
        assert isinstance(info, Mapping)
        name = str(content.get("filename") or content.get("body") or "bijlage")
        mimetype = str(info.get("mimetype") or "application/octet-stream")
        try:
            data, stored_name, stored_type = self._await(
                lambda: self.review.attachment(self.reader, event.event_id)
            )
        except ApiError:
            size = info.get("size")
            return AttachmentInfo(name, mimetype, size if isinstance(size, int) else 0,
                                  "niet gearchiveerd")
        mimetype = stored_type or mimetype
        image = data if mimetype.lower() in IMAGE_TYPES else None
        return AttachmentInfo(stored_name or name, mimetype, len(data),
                              hashlib.sha256(data).hexdigest(), image)

    def _reactions(
        self, event: StoredEvent, found: Mapping[str, StoredEvent]
    ) -> tuple[Reaction, ...]:
        if not event.reactions:
            return ()
        out: list[Reaction] = []
        for rid in event.reactions:
            reaction = found.get(rid)
            if reaction is None or reaction.redacted_by is not None:
                continue
            key = _relation(reaction).get("key")
            if not isinstance(key, str):
                continue
            who = self.people(reaction.sender)
            out.append(Reaction(key[:32], who.name, None if who.key_official else NAME_GROUND))
        return tuple(out)

    def _document(
        self, d: Document, edits: list[Document], reactions: Mapping[str, StoredEvent]
    ) -> WooDocument:
        e = d.event
        main = d.current
        assert main is not None
        edit_assessments = [x.current for x in edits if x.current is not None]
        who = self.people(e.sender)
        target = _reply_target(e)
        reply = None if target is None else ReplyRef(self.numbers.get(target), target)
        kind: DocumentKind = "bijlage" if d.kind == "bijlage" else "chatbericht"
        return WooDocument(
            number=self.numbers[e.event_id],
            event_id=e.event_id,
            room_id=e.room_id,
            room_name=self.room_names.get(e.room_id, e.room_id),
            sender_id=e.sender,
            sender_name=who.name,
            sender_function=who.function,
            ts=_ts(e.origin_server_ts),
            kind=kind,
            text=d.text,
            assessment=combine(main, edit_assessments),
            edits=tuple(edit_version(x) for x in edits),
            reply_to=reply,
            reactions=self._reactions(e, reactions),
            attachment=self._attachment(e) if e.has_attachment else None,
            deleted=e.redacted_by is not None,
            sender_name_ground=None if who.key_official else NAME_GROUND,
        )

    def _load(self, event_ids: list[str]) -> list[Document]:
        return self._await(
            lambda: self.service.load_documents(self.reader, self.case, event_ids)
        )

    def _linked(self, event_ids: list[str]) -> dict[str, StoredEvent]:
        return self._await(lambda: self.service.events(self.reader, event_ids))

    def documents(self) -> Iterator[WooDocument]:
        """The package's documents, read from the archive CHUNK at a time (with their
        edits and reactions, one logged read each), so that memory does not grow with the
        number of documents."""
        for start in range(0, len(self.main), CHUNK):
            ids = self.main[start:start + CHUNK]
            edit_ids = [x for event_id in ids for x in self.edits.get(event_id, [])]
            docs = self._load(ids)
            edits = {
                x.event.event_id: x
                for at in range(0, len(edit_ids), CHUNK)
                for x in self._load(edit_ids[at:at + CHUNK])
            }
            reaction_ids = [r for d in docs for r in d.event.reactions or ()]
            reactions = self._linked(reaction_ids) if reaction_ids else {}
            for d in docs:
                versions = [edits[x] for x in self.edits.get(d.event.event_id, [])]
                yield self._document(d, versions, reactions)
            del docs, edits, reactions


async def export_case(
    review: ReviewService,
    reader: Reader,
    request_id: str,
    data_dir: Path,
    out: Path,
    progress: Callable[[int], None] | None = None,
) -> tuple[CaseIndex, PackageResult]:
    """Write the package of the request to ``out`` and note the export in the access log.
    404 for an unknown request, 409 while documents are unassessed (nothing logged as an
    export then)."""
    case = await WooService(review).case_index(reader, request_id)
    loop = asyncio.get_running_loop()
    job = CaseExport(review, reader, case, data_dir, loop)
    await job.prepare()
    archive = await review.store()
    await archive.record_woo_export(
        reader.actor(),
        {"request": case.request.id, "reference": case.request.reference,
         "documents": len(job.main)},
    )
    identity = await asyncio.to_thread(pdf_identity, data_dir)
    pkg = job.package_input(reader.user_id, datetime.now(UTC))
    tmp = out.with_name(out.name + ".part")
    try:
        with tmp.open("wb") as fh:
            result = await asyncio.to_thread(
                build_package, pkg, job.documents(), fh,
                sign_manifest=archive.sign_detached, pdf_identity=identity,
                workdir=out.parent, progress=progress,
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return case, result


__all__ = ["CaseExport", "UnassessedError", "export_case", "file_reference", "zip_name"]
