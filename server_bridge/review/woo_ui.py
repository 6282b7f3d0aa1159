"""The Woo pages of the review UI (Dutch, server-rendered, no JavaScript): the list of Woo
requests with a form to register one, and a request's page with every document in scope,
its assessment, its history, a form to assess it and a preview in which withheld parts are
black boxes labelled with their ground. Same rules as the API (archivists only, CSRF on
every form, every read and write access-logged)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from server_bridge.review.service import REVIEW
from server_bridge.review.text import date_to_ms
from server_bridge.review.ui import BASE, _check_csrf, _names, _reader, _redirect, _render, _session
from server_bridge.web.api_errors import ApiError
from server_bridge.web.keys import SETTINGS
from server_bridge.woo.grounds import GROUNDS, label
from server_bridge.woo.service import (
    Case,
    Document,
    NewRequest,
    WooService,
    check_spans_fit,
    parse_assessment,
    parse_new_request,
    resolve_text,
    segments,
    suggestion_names,
    suggestions,
)

_SPAN_LINE = re.compile(r"^\s*(\d{1,7})\s*-\s*(\d{1,7})\s*(?:[:\s]\s*(\S+))?\s*$")
DECISION_LABELS = {
    "openbaar": "openbaar",
    "deels_openbaar": "deels openbaar",
    "niet_openbaar": "niet openbaar",
}
KIND_LABELS = {"chatbericht": "chatbericht", "bijlage": "bijlage", "bewerking": "bewerking"}
SUGGESTION_KINDS = {
    "email": "e-mailadres",
    "telefoon": "telefoonnummer",
    "iban": "IBAN",
    "bsn": "BSN",
    "naam": "naam",
}
_WORD = re.compile(r"\S+")
_OFFSET = re.compile(r"^\s*(\d{1,7})\s*$")


def url_for_woo(request_id: str | None = None) -> str:
    return f"{BASE}/woo" if request_id is None else f"{BASE}/woo/{quote(request_id, safe='')}"


def url_for_assessment(request_id: str, event_id: str) -> str:
    return f"{url_for_woo(request_id)}/beoordelingen/{quote(event_id, safe='')}"


def _service(request: web.Request) -> WooService:
    return WooService(request.app[REVIEW])


def parse_spans(raw: str, grounds: list[str]) -> list[dict[str, Any]]:
    """``START-END:GROUND`` per line (the ground may be left out when there is one)."""
    spans: list[dict[str, Any]] = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        match = _SPAN_LINE.match(line)
        if match is None:
            raise ApiError(
                422, "M_INVALID_PARAM",
                f"regel {number} van de weglakkingen is geen begin-eind:grond (bijv. 12-25:5.1.2e)",
            )
        ground = match.group(3)
        if ground is None:
            if len(grounds) != 1:
                raise ApiError(
                    422, "M_INVALID_PARAM",
                    f"regel {number} van de weglakkingen noemt geen grond (bijv. 12-25:5.1.2e)",
                )
            ground = grounds[0]
        spans.append({"start": int(match.group(1)), "end": int(match.group(2)), "ground": ground})
    return spans


def _period(raw: str, end_of_day: bool, what: str) -> int | None:
    if not raw.strip():
        return None
    try:
        return date_to_ms(raw.strip(), end_of_day=end_of_day)
    except ValueError:
        raise ApiError(422, "M_INVALID_PARAM", f"{what} moet een datum JJJJ-MM-DD zijn") from None


async def woo_page(request: web.Request) -> web.Response:
    session = await _session(request)
    return await _woo_list(request, session, None, {}, 200)


async def _woo_list(
    request: web.Request, session: Any, error: str | None, form: dict[str, Any], status: int
) -> web.Response:
    reader = _reader(request, session)
    requests = await _service(request).requests(reader)
    rooms = await request.app[REVIEW].rooms(reader)
    return _render(
        request,
        "woo.html",
        {
            "requests": requests,
            "rooms": rooms,
            "error": error,
            "form": form,
            "today": date.today().isoformat(),
        },
        session,
        status,
    )


async def woo_create(request: web.Request) -> web.Response:
    session = await _session(request)
    form = await _check_csrf(request, session)
    data = await request.post()
    rooms = [r for r in data.getall("kamer", []) if isinstance(r, str)]
    shown = {**form, "kamers": rooms}
    try:
        body: dict[str, Any] = {
            "reference": form.get("kenmerk", ""),
            "title": form.get("titel", ""),
            "rooms": rooms,
            "received": form.get("ontvangen") or date.today().isoformat(),
        }
        start = _period(form.get("van", ""), False, "Vanaf")
        end = _period(form.get("tot", ""), True, "Tot en met")
        if start is not None:
            body["from_ts"] = start
        if end is not None:
            body["to_ts"] = end
        if form.get("zoekterm", "").strip():
            body["query"] = form["zoekterm"]
        new: NewRequest = parse_new_request(body, date.today().isoformat())
        created = await _service(request).create(_reader(request, session), new)
    except ApiError as exc:
        if exc.status not in (404, 409, 422):
            raise
        return await _woo_list(request, session, exc.message, shown, exc.status)
    return _redirect(url_for_woo(created.id))


def _publication(doc: Document, decision: str, grounds: list[str],
                 spans: list[Any]) -> list[tuple[str, str | None]]:
    """The document as it would be published: ``(piece, None)`` shown, ``(code, ground)``
    withheld (the withheld text itself is never part of the result)."""
    if decision == "niet_openbaar":
        return [("", " ".join(grounds))]
    if decision == "deels_openbaar":
        return [("", g) if g is not None else (p, None) for p, g in segments(doc.text, spans)]
    return [(doc.text, None)]


def _words(text: str) -> list[tuple[int, str]]:
    """The words of the text with their start offsets (for counting characters by eye)."""
    return [(m.start(), m.group(0)) for m in _WORD.finditer(text)]


def _document_rows(
    case: Case, names: Any, suggest_names: list[str], state: dict[str, Any] | None
) -> list[dict[str, Any]]:
    rows = []
    for number, doc in enumerate(case.documents, 1):
        current = doc.current
        preview = (
            [] if current is None
            else _publication(doc, current.decision, list(current.grounds), list(current.spans))
        )
        content = doc.event.content or {}
        form: dict[str, Any] = {
            "decision": current.decision if current else "openbaar",
            "grounds": list(current.grounds) if current else [],
            "spans_text": "\n".join(
                f"{s.start}-{s.end}:{s.ground}" for s in current.spans
            ) if current is not None else "",
            "note": current.note if current and current.note else "",
            "accepted": set(),
            "withhold": "",
            "span_ground": "",
            "begin": "",
            "end": "",
            "draft": None,
            "error": None,
        }
        if state is not None and state["event_id"] == doc.event.event_id:
            form.update(state["form"])
        rows.append(
            {
                "number": number,
                "doc": doc,
                "sender": names(doc.event.sender),
                "filename": content.get("filename") or (
                    content.get("body") if doc.kind == "bijlage" else None
                ),
                "preview": preview,
                "current": current,
                "history": list(reversed(doc.history)),
                "form": form,
                "words": _words(doc.text),
                "suggestions": suggestions(doc.text, suggest_names),
                "whole_title": "; ".join(label(g) for g in current.grounds) if current else "",
                "action": url_for_assessment(case.request.id, doc.event.event_id),
                "anchor": "doc-" + str(number),
            }
        )
    return rows


async def woo_request_page(request: web.Request) -> web.Response:
    session = await _session(request)
    return await _woo_case(request, session, None, None, 200)


async def _woo_case(
    request: web.Request, session: Any, error: str | None, state: dict[str, Any] | None,
    status: int,
) -> web.Response:
    reader = _reader(request, session)
    case = await _service(request).case(reader, request.match_info["request_id"])
    suggest_names = suggestion_names(request.app[SETTINGS].data_dir)
    return _render(
        request,
        "woo_request.html",
        {
            "case": case,
            "rows": _document_rows(case, _names(request), suggest_names, state),
            "grounds": GROUNDS,
            "ground_label": label,
            "decisions": DECISION_LABELS,
            "kinds": KIND_LABELS,
            "suggestion_kinds": SUGGESTION_KINDS,
            "error": error,
            "error_event": state["event_id"] if state and error else None,
        },
        session,
        status,
    )


def _invalid(message: str) -> ApiError:
    return ApiError(422, "M_INVALID_PARAM", message)


def _offset(raw: str, what: str) -> int:
    match = _OFFSET.match(raw)
    if match is None:
        raise _invalid(f"{what} moet een getal zijn (een tekenpositie vanaf 0)")
    return int(match.group(1))


def _form_spans(
    form: dict[str, str], data: Any, doc: Document, grounds: list[str], suggest_names: list[str]
) -> list[dict[str, Any]]:
    """Every span the form asks for: the lines of the spans field, the ticked suggestions,
    the exact texts to withhold (resolved to offsets) and the begin/end entry."""
    spans = parse_spans(form.get("weglakkingen", ""), grounds)
    offered = {f"{s['start']}-{s['end']}": s for s in suggestions(doc.text, suggest_names)}
    for value in data.getall("suggestie", []):
        if not isinstance(value, str) or value not in offered:
            raise _invalid(f"de suggestie {value!r} hoort niet (meer) bij dit bericht")
        s = offered[value]
        spans.append({"start": s["start"], "end": s["end"], "ground": s["ground"]})
    span_ground = form.get("spangrond", "").strip()
    if not span_ground and len(grounds) == 1:
        span_ground = grounds[0]
    lines = [line for line in form.get("weglaten", "").splitlines() if line.strip()]
    begin, end = form.get("begin", "").strip(), form.get("eind", "").strip()
    if (lines or begin or end) and not span_ground:
        raise _invalid("kies de weigeringsgrond voor de weg te laten tekst")
    for line in lines:
        start, stop = resolve_text(doc.text, line)
        spans.append({"start": start, "end": stop, "ground": span_ground})
    if begin or end:
        first, last = _offset(begin, "Begin"), _offset(end, "Eind")
        spans.append({"start": first, "end": last, "ground": span_ground})
    unique = {(s["start"], s["end"], s["ground"]): s for s in spans}
    return sorted(unique.values(), key=lambda s: (s["start"], s["end"]))


async def woo_assess(request: web.Request) -> web.Response:
    """Save an assessment (``actie=opslaan``) or show it as a preview without saving
    (``actie=voorbeeld``); bad input shows the reason and keeps the form as entered."""
    session = await _session(request)
    form = await _check_csrf(request, session)
    data = await request.post()
    request_id = request.match_info["request_id"]
    event_id = request.match_info["event_id"]
    ticked = [g for g in data.getall("grond", []) if isinstance(g, str)]
    accepted = {v for v in data.getall("suggestie", []) if isinstance(v, str)}
    preview = form.get("actie") == "voorbeeld"
    service = _service(request)
    reader = _reader(request, session)
    suggest_names = suggestion_names(request.app[SETTINGS].data_dir)
    state: dict[str, Any] = {
        "event_id": event_id,
        "form": {
            "decision": form.get("besluit", ""),
            "grounds": ticked,
            "spans_text": form.get("weglakkingen", ""),
            "note": form.get("toelichting", ""),
            "accepted": accepted,
            "withhold": form.get("weglaten", ""),
            "span_ground": form.get("spangrond", ""),
            "begin": form.get("begin", ""),
            "end": form.get("eind", ""),
        },
    }
    try:
        found = await service.request(reader, request_id)
        doc = await service.document(reader, found, event_id)
        spans = _form_spans(form, data, doc, ticked, suggest_names)
        grounds = list(dict.fromkeys([*ticked, *(s["ground"] for s in spans)]))
        body: dict[str, Any] = {
            "decision": form.get("besluit", ""),
            "grounds": grounds,
            "spans": spans,
        }
        if form.get("toelichting", "").strip():
            body["note"] = form["toelichting"]
        new = parse_assessment(body)
        check_spans_fit(new.spans, doc.text)
        if preview:
            state["form"].update(
                grounds=new.grounds,
                spans_text="\n".join(f"{s.start}-{s.end}:{s.ground}" for s in new.spans),
                withhold="", begin="", end="",
                draft=_publication(doc, new.decision, new.grounds, new.spans),
                draft_title="; ".join(label(g) for g in new.grounds),
            )
            return await _woo_case(request, session, None, state, 200)
        await service.assess(reader, request_id, event_id, new)
    except ApiError as exc:
        if exc.status != 422:
            raise
        state["form"]["error"] = exc.message
        return await _woo_case(request, session, exc.message, state, 422)
    anchor = form.get("anker", "")
    suffix = f"#{anchor}" if re.fullmatch(r"doc-\d{1,6}", anchor) else ""
    return _redirect(url_for_woo(request_id) + suffix)


def setup_woo_ui(app: web.Application) -> None:
    """Register the Woo pages (after :func:`setup_ui`, whose template environment they use)."""
    aiohttp_jinja2.get_env(app).globals.update(url_for_woo=url_for_woo)
    r = app.router
    r.add_get(BASE + "/woo", woo_page)
    r.add_post(BASE + "/woo", woo_create)
    r.add_get(BASE + "/woo/{request_id}", woo_request_page)
    r.add_post(BASE + "/woo/{request_id}/beoordelingen/{event_id}", woo_assess)
