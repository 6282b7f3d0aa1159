"""The archivist web UI (server-rendered, Dutch) under ``/archief``: thin handlers over the
review service, the same rules as the API (archivists only, every read access-logged)."""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import aiohttp_jinja2
import jinja2
from aiohttp import web

from server_bridge.appservice.audit import ArchiveUnavailable
from server_bridge.appservice.routes import LEDGER
from server_bridge.review.api import ARCHIVIST, attachment_response
from server_bridge.review.keyimport import MAX_UPLOAD_BYTES, forward_import, read_upload
from server_bridge.review.service import (
    REVIEW,
    Reader,
    event_id_param,
    page_token_param,
    purpose_param,
    query_param,
    room_id_param,
    user_id_param,
)
from server_bridge.review.sessions import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSIONS,
    THROTTLE,
    LoginThrottle,
    SessionStore,
    WebSession,
    clear_cookie,
    same_secret,
    set_cookie,
)
from server_bridge.review.text import date_to_ms, format_short, format_ts
from server_bridge.review.transcript import (
    IMAGE_TYPES,
    Names,
    anchor_of,
    build_transcript,
    hit_segments,
    linked_ids,
)
from server_bridge.web.api_errors import ApiError, Handler
from server_bridge.web.auth import (
    ROSTER_FILE,
    forget_token,
    require_user_role,
    user_for_token,
)
from server_bridge.web.keys import HTTP, SETTINGS

log = logging.getLogger(__name__)

BASE = "/archief"
STATIC_DIR = Path(__file__).parent / "static"
TEMPLATE_DIR = Path(__file__).parent / "templates"
PAGE_SIZE = 200
LINKED_BUDGET = 100  # linked events fetched per transcript page, at most
COMPLETENESS_GRACE_MS = 30_000  # the archiver may lag this far behind the ledger
MAX_FIELD_CHARS = 1000
ACTION_LABELS = {
    "list_rooms": "kamerlijst",
    "room_events": "transcript gelezen",
    "get_event": "gebeurtenis gelezen",
    "get_attachment": "bijlage geopend",
    "search": "gezocht",
    "access_log": "toegangslog gelezen",
    "import_keys": "sleutels geïmporteerd",
}
KEY_IMPORT_ERRORS = {
    400: "Het sleutelbestand kon niet worden gelezen: verkeerd wachtwoord, of het bestand is "
    "beschadigd, afgekapt of gewijzigd. Er is niets veranderd.",
    413: "Het sleutelbestand is te groot.",
    422: "Niets geïmporteerd: geen sleutel in dit bestand hoort bij deze kamer of opent iets "
    "wat het archief nog niet kon lezen. Er is niets veranderd.",
    503: "De archiver is nu niet bereikbaar; probeer het opnieuw wanneer hij draait.",
}


def url_for_room(room_id: str) -> str:
    return f"{BASE}/kamers/{quote(room_id, safe='')}"


def url_for_event(event_id: str) -> str:
    return f"{BASE}/gebeurtenissen/{quote(event_id, safe='')}"


def _names(request: web.Request) -> Names:
    path = request.app[SETTINGS].data_dir / ROSTER_FILE
    try:
        roster = json.loads(path.read_text("utf-8"))
        return Names({str(u["user_id"]): str(u.get("display_name") or u["user_id"])
                      for u in roster.get("users", []) if "user_id" in u})
    except (OSError, ValueError, AttributeError, TypeError):
        return Names({})


def _render(request: web.Request, template: str, context: dict[str, Any],
            session: WebSession | None, status: int = 200) -> web.Response:
    context = {
        **context,
        "session": session,
        "csrf": session.csrf if session else None,
    }
    return aiohttp_jinja2.render_template(template, request, context, status=status)


# ---- sessions ---------------------------------------------------------------------------
async def _session(request: web.Request) -> WebSession:
    """The logged-in archivist, or a redirect to the login page. The Matrix token behind
    the session is re-checked with the homeserver (cached 30 s) and the roster role on every
    request, so a logout elsewhere or a changed role ends access."""
    store = request.app[SESSIONS]
    session = store.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise web.HTTPSeeOther(location=f"{BASE}/inloggen")
    try:
        user_id = await user_for_token(request, session.token)
    except ApiError as exc:
        if exc.status == 401:
            store.drop(session.sid)
            raise web.HTTPSeeOther(location=f"{BASE}/inloggen") from None
        raise
    if user_id != session.user_id:
        store.drop(session.sid)
        raise web.HTTPSeeOther(location=f"{BASE}/inloggen")
    require_user_role(request, user_id, ARCHIVIST)
    return session


def _reader(request: web.Request, session: WebSession) -> Reader:
    route = request.match_info.route.resource
    via = f"{request.method} {route.canonical if route is not None else request.path}"
    return Reader(session.user_id, session.purpose, via)


async def _form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    form: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, str):
            form[key] = value[:MAX_FIELD_CHARS]
    return form


async def _check_csrf(request: web.Request, session: WebSession) -> dict[str, str]:
    form = await _form(request)
    if not same_secret(form.get("csrf"), session.csrf):
        log.warning("POST %s by %s without a valid CSRF token", request.path, session.user_id)
        raise ApiError(403, "M_FORBIDDEN", "ongeldig of ontbrekend formuliertoken (CSRF)")
    return form


# ---- login / logout -----------------------------------------------------------------------
async def login_page(request: web.Request) -> web.Response:
    if request.app[SESSIONS].get(request.cookies.get(SESSION_COOKIE)) is not None:
        return _redirect(f"{BASE}/")
    return _login_form(request, None, 200)


def _login_form(request: web.Request, error: str | None, status: int,
                username: str = "") -> web.Response:
    token = request.cookies.get(LOGIN_COOKIE)
    if not token or len(token) > 100:
        token = secrets.token_urlsafe(32)
    response = _render(request, "login.html",
                       {"login_csrf": token, "error": error, "username": username}, None,
                       status)
    set_cookie(response, request, LOGIN_COOKIE, token, max_age=3600)
    return response


def _user_id(request: web.Request, username: str) -> str | None:
    name = username.strip()
    if not name.startswith("@"):
        name = f"@{name}:{request.app[SETTINGS].server_name}"
    try:
        return user_id_param(name)
    except ApiError:
        return None


async def _matrix_login(request: web.Request, user_id: str, password: str) -> str | None:
    """The access token for these credentials, None when the homeserver refuses them."""
    url = f"{request.app[SETTINGS].homeserver_url}/_matrix/client/v3/login"
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
        "initial_device_display_name": "Rijkschat archiefinzage",
    }
    try:
        async with request.app[HTTP].post(
            url, json=body, timeout=aiohttp.ClientTimeout(total=10)
        ) as resp:
            if resp.status == 429:
                raise ApiError(429, "M_LIMIT_EXCEEDED",
                               "te veel inlogpogingen; probeer het later opnieuw")
            if resp.status in (400, 401, 403):
                return None
            if resp.status != 200:
                raise ApiError(503, "M_UNAVAILABLE", "de homeserver is niet bereikbaar")
            token = (await resp.json()).get("access_token")
            return token if isinstance(token, str) else None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise ApiError(503, "M_UNAVAILABLE", "de homeserver is niet bereikbaar") from exc


async def _matrix_logout(request: web.Request, token: str) -> None:
    url = f"{request.app[SETTINGS].homeserver_url}/_matrix/client/v3/logout"
    forget_token(request, token)
    try:
        async with request.app[HTTP].post(
            url, json={}, headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=5),
        ) as resp:
            if resp.status != 200:
                log.warning("homeserver logout answered %d", resp.status)
    except (aiohttp.ClientError, TimeoutError):
        log.warning("homeserver logout failed; the device stays until it is removed")


async def login_submit(request: web.Request) -> web.Response:
    form = await _form(request)
    if not same_secret(form.get("csrf"), request.cookies.get(LOGIN_COOKIE) or "\0"):
        log.warning("login from %s without a valid CSRF token", request.remote)
        raise ApiError(403, "M_FORBIDDEN", "ongeldig formuliertoken; laad de pagina opnieuw")
    throttle_key = request.remote or "?"
    if request.app[THROTTLE].blocked(throttle_key):
        log.warning("review login from %s refused: too many failed attempts", throttle_key)
        return _login_form(request, "Te veel mislukte inlogpogingen; probeer het over "
                           "tien minuten opnieuw.", 429)
    username = form.get("gebruikersnaam", "")
    password = form.get("wachtwoord", "")
    try:
        purpose = purpose_param(form.get("doel"))
    except ApiError:
        return _login_form(request, "Het doel mag hoogstens 200 tekens lang zijn.", 400,
                           username)
    user_id = _user_id(request, username)
    if user_id is None or not password:
        return _login_form(request, "Vul een geldige gebruikersnaam en wachtwoord in.", 400,
                           username)
    try:
        token = await _matrix_login(request, user_id, password)
    except ApiError as exc:
        if exc.status != 429:
            raise
        request.app[THROTTLE].failed(throttle_key)
        return _login_form(request, exc.message, 429, username)
    if token is None:
        request.app[THROTTLE].failed(throttle_key)
        log.info("failed review login for %s", user_id)
        return _login_form(request, "Onjuiste gebruikersnaam of wachtwoord.", 401, username)
    try:
        real_user = await user_for_token(request, token)
        require_user_role(request, real_user, ARCHIVIST)
    except ApiError as exc:
        await _matrix_logout(request, token)
        if exc.status == 403:
            log.warning("review login refused for %s: not an archivist", user_id)
            return _login_form(
                request, "Geen toegang: alleen archivarissen kunnen het archief inzien.", 403,
                username)
        raise
    request.app[THROTTLE].succeeded(throttle_key)
    session = request.app[SESSIONS].create(real_user, token, purpose)
    log.info("archivist %s logged in to the review UI", real_user)
    response = _redirect(f"{BASE}/")
    set_cookie(response, request, SESSION_COOKIE, session.sid)
    clear_cookie(response, LOGIN_COOKIE)
    return response


async def logout_submit(request: web.Request) -> web.Response:
    session = await _session(request)
    await _check_csrf(request, session)
    request.app[SESSIONS].drop(session.sid)
    await _matrix_logout(request, session.token)
    log.info("archivist %s logged out of the review UI", session.user_id)
    response = _redirect(f"{BASE}/inloggen")
    clear_cookie(response, SESSION_COOKIE)
    return response


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


# ---- pages ----------------------------------------------------------------------------------
async def index_redirect(request: web.Request) -> web.Response:
    return _redirect(f"{BASE}/")


async def rooms_page(request: web.Request) -> web.Response:
    session = await _session(request)
    service = request.app[REVIEW]
    rooms = await service.rooms(_reader(request, session))
    names = _names(request)
    rows = [
        {
            "room": room,
            "key_officials": [names(k) for k in room.key_officials],
            "verification": service.last_verification(room.room_id),
        }
        for room in rooms
    ]
    return _render(request, "rooms.html", {"rows": rows}, session)


async def room_page(request: web.Request) -> web.Response:
    session = await _session(request)
    room_id = room_id_param(request.match_info["room_id"])
    after = page_token_param(request.query.get("van"))
    service = request.app[REVIEW]
    reader = _reader(request, session)
    room = await service.room(reader, room_id)
    events, next_token = await service.events(reader, room_id, after, PAGE_SIZE)
    on_page = {e.event_id for e in events}
    missing = [i for i in linked_ids(events) if i not in on_page]
    linked = await service.events_by_id(reader, missing, LINKED_BUDGET)
    names = _names(request)
    lines = build_transcript(events, linked, names, BASE + "/bijlagen/{}")
    return _render(
        request,
        "room.html",
        {
            "room": room,
            "lines": lines,
            "names": names,
            "next_url": f"{url_for_room(room_id)}?{urlencode({'van': next_token})}"
            if next_token else None,
            "first_url": url_for_room(room_id) if after else None,
            "verification": service.last_verification(room_id),
            "max_upload_mib": MAX_UPLOAD_BYTES // 2**20,
            **await _undecryptable_context(request, room_id),
        },
        session,
    )


async def verify_submit(request: web.Request) -> web.Response:
    session = await _session(request)
    form = await _check_csrf(request, session)
    room_id = room_id_param(request.match_info["room_id"])
    await request.app[REVIEW].verify(_reader(request, session), room_id)
    back = f"{BASE}/" if form.get("terug") == "lijst" else url_for_room(room_id)
    return _redirect(back + "#controle")


async def keys_submit(request: web.Request) -> web.Response:
    """Upload of a sender's room-key export for this room (multipart, CSRF-checked before
    anything is done); the archiver imports it and the result is shown."""
    session = await _session(request)
    room_id = room_id_param(request.match_info["room_id"])
    upload = await read_upload(request)
    if not same_secret(upload.csrf, session.csrf):
        log.warning("key upload by %s without a valid CSRF token", session.user_id)
        raise ApiError(403, "M_FORBIDDEN", "ongeldig of ontbrekend formuliertoken (CSRF)")
    reader = _reader(request, session)
    room = await request.app[REVIEW].room(reader, room_id)
    result: dict[str, Any] | None = None
    error: str | None = None
    detail: str | None = None
    status = 200
    try:
        result = await forward_import(request, reader, room_id, upload)
    except ApiError as exc:
        if exc.status not in KEY_IMPORT_ERRORS:
            raise
        status, error, detail = exc.status, KEY_IMPORT_ERRORS[exc.status], exc.message
    return _render(request, "keys.html",
                   {"room": room, "result": result, "error": error, "detail": detail},
                   session, status)


async def event_page(request: web.Request) -> web.Response:
    session = await _session(request)
    event_id = event_id_param(request.match_info["event_id"])
    service = request.app[REVIEW]
    reader = _reader(request, session)
    event = await service.event(reader, event_id)
    linked = await service.events_by_id(reader, linked_ids([event]), LINKED_BUDGET)
    names = _names(request)
    lines = build_transcript([event], linked, names, BASE + "/bijlagen/{}")
    return _render(
        request,
        "event.html",
        {
            "event": event,
            "lines": lines,
            "room_name": await service.room_name(reader, event.room_id),
            "raw": json.dumps(
                {"content": event.content, "relates_to": event.relates_to}, indent=2,
                ensure_ascii=False, sort_keys=True),
        },
        session,
    )


async def attachment_download(request: web.Request) -> web.Response:
    session = await _session(request)
    event_id = event_id_param(request.match_info["event_id"])
    data, filename, mimetype = await request.app[REVIEW].attachment(
        _reader(request, session), event_id)
    response = attachment_response(data, filename, mimetype)
    if request.query.get("weergave") == "inline" and mimetype in IMAGE_TYPES:
        response.headers["Content-Disposition"] = "inline"
    return response


async def search_page(request: web.Request) -> web.Response:
    session = await _session(request)
    service = request.app[REVIEW]
    reader = _reader(request, session)
    rooms = await service.rooms(reader)
    query = request.query
    form = {k: query.get(k, "")[:MAX_FIELD_CHARS] for k in ("q", "kamer", "afzender", "van",
                                                           "tot")}
    hits: list[dict[str, Any]] | None = None
    error: str | None = None
    if form["q"]:
        try:
            q = query_param(form["q"])
            room = room_id_param(form["kamer"]) if form["kamer"] else None
            sender = user_id_param(form["afzender"].strip()) if form["afzender"].strip() \
                else None
            from_ts = _date(form["van"], end_of_day=False)
            to_ts = _date(form["tot"], end_of_day=True)
        except ApiError as exc:
            error = _dutch_error(exc)
        else:
            names = _names(request)
            room_names = {r.room_id: r.name for r in rooms}
            found = await service.search(reader, q, room=room, sender=sender,
                                         from_ts=from_ts, to_ts=to_ts, limit=100)
            hits = [
                {
                    "event": hit.event,
                    "sender": names(hit.event.sender),
                    "room_name": room_names.get(hit.room_id) or hit.room_id,
                    "segments": hit_segments(hit.event, hit.terms),
                }
                for hit in found
            ]
    return _render(request, "search.html",
                   {"form": form, "rooms": rooms, "hits": hits, "error": error},
                   session, 400 if error else 200)


def _date(value: str, *, end_of_day: bool) -> int | None:
    if not value:
        return None
    try:
        return date_to_ms(value, end_of_day=end_of_day)
    except ValueError:
        raise ApiError(400, "M_INVALID_PARAM", "date must be YYYY-MM-DD") from None


def _dutch_error(exc: ApiError) -> str:
    if "q" in exc.message:
        return "Geef een of meer woorden op (hoogstens 500 tekens, 16 woorden)."
    if "date" in exc.message:
        return "Een datum heeft de vorm JJJJ-MM-DD."
    if "sender" in exc.message or "user" in exc.message:
        return "Een afzender heeft de vorm @naam:server."
    return "Ongeldige zoekopdracht."


async def audit_page(request: web.Request) -> web.Response:
    session = await _session(request)
    user = request.query.get("gebruiker", "").strip()[:MAX_FIELD_CHARS]
    user_id = user_id_param(user, "user") if user else None
    entries = await request.app[REVIEW].access_log(
        _reader(request, session), limit=200, user_id=user_id, since_ts=None)
    rows = [
        {"entry": e, "details": json.dumps(e.details, ensure_ascii=False, sort_keys=True)}
        for e in entries
    ]
    return _render(request, "audit.html", {"rows": rows, "user": user}, session)


async def completeness_page(request: web.Request) -> web.Response:
    """The ledger's completeness audit (what the homeserver accepted vs. what the archive
    holds), after the room list read that puts this view in the access log."""
    session = await _session(request)
    rooms = await request.app[REVIEW].rooms(_reader(request, session))
    try:
        report = await request.app[LEDGER].audit(COMPLETENESS_GRACE_MS)
    except ArchiveUnavailable as exc:
        raise ApiError(503, "M_UNAVAILABLE", "het archief is niet beschikbaar") from exc
    names = {r.room_id: r.name for r in rooms}
    return _render(request, "completeness.html",
                   {"report": report, "room_names": names,
                    "grace_seconds": COMPLETENESS_GRACE_MS // 1000,
                    **await _undecryptable_context(request, None)}, session)


async def _undecryptable_context(request: web.Request, room_id: str | None) -> dict[str, Any]:
    """Events undecryptable past the grace period, for ``_undecryptable.html``."""
    grace = request.app[SETTINGS].undecryptable_grace_seconds
    overdue = await request.app[REVIEW].overdue_undecryptable(grace, room_id)
    return {"overdue": overdue, "overdue_grace_minutes": max(1, round(grace / 60)),
            "overdue_room": room_id}


# ---- errors as pages ------------------------------------------------------------------------
_STATUS_TEXT = {
    400: "Ongeldige aanvraag",
    401: "Niet ingelogd",
    403: "Geen toegang",
    404: "Niet gevonden",
    405: "Methode niet toegestaan",
    410: "Vernietigd",
    413: "Aanvraag te groot",
    429: "Te veel aanvragen",
    500: "Interne fout",
    503: "Niet beschikbaar",
}


@web.middleware
async def ui_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors under /archief as an HTML page (never a stack trace); the API keeps JSON."""
    if not request.path.startswith(BASE) or request.path.startswith(BASE + "/static/"):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return _error_page(request, exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error_page(request, exc.status, _STATUS_TEXT.get(exc.status, exc.reason))
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return _error_page(request, 500, "Er ging iets mis; de fout is gelogd.")


def _error_page(request: web.Request, status: int, message: str) -> web.Response:
    session = request.app[SESSIONS].get(request.cookies.get(SESSION_COOKIE))
    return _render(request, "error.html",
                   {"status": status, "title": _STATUS_TEXT.get(status, "Fout"),
                    "message": message}, session, status)


def setup_ui(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(
        base=BASE,
        url_for_room=url_for_room,
        url_for_event=url_for_event,
        format_ts=format_ts,
        format_short=format_short,
        anchor_of=anchor_of,
        action_label=ACTION_LABELS.get,
    )
    app[SESSIONS] = SessionStore()
    app[THROTTLE] = LoginThrottle()
    r = app.router
    r.add_get("/", index_redirect)
    r.add_get(BASE, index_redirect)
    r.add_get(BASE + "/", rooms_page)
    r.add_get(BASE + "/inloggen", login_page)
    r.add_post(BASE + "/inloggen", login_submit)
    r.add_post(BASE + "/uitloggen", logout_submit)
    r.add_get(BASE + "/kamers/{room_id}", room_page)
    r.add_post(BASE + "/kamers/{room_id}/controleren", verify_submit)
    r.add_post(BASE + "/kamers/{room_id}/sleutels", keys_submit)
    r.add_get(BASE + "/gebeurtenissen/{event_id}", event_page)
    r.add_get(BASE + "/bijlagen/{event_id}", attachment_download)
    r.add_get(BASE + "/zoeken", search_page)
    r.add_get(BASE + "/toegangslog", audit_page)
    r.add_get(BASE + "/volledigheid", completeness_page)
    r.add_static(BASE + "/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
