"""A typed client of the bridge's archivist review API (``/api/v1``), over plain HTTP.

Authentication is the archivist's own Matrix access token (``Authorization: Bearer``); the
bridge checks it with the homeserver and its roster. A stated purpose (a Woo request, an
inspection) travels in ``X-Rijkschat-Purpose`` and lands in the archive's access log.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import aiohttp
from yarl import URL

from client_cli.errors import ArchiveApiError, NotLoggedInError, UnknownRoomError
from client_cli.matrix import reachable

PURPOSE_HEADER = "X-Rijkschat-Purpose"
PAGE_LIMIT = 500


@dataclass(frozen=True)
class ArchivedRoom:
    room_id: str
    name: str | None
    members: list[str]
    key_officials: list[str]
    event_count: int
    first_ts: int | None
    last_ts: int | None
    undecryptable: int
    retention: str | None
    legal_hold: bool
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ArchivedRoom:
        return cls(
            room_id=str(raw.get("room_id", "")),
            name=raw.get("name") if isinstance(raw.get("name"), str) else None,
            members=[str(m) for m in raw.get("members") or []],
            key_officials=[str(m) for m in raw.get("key_officials") or []],
            event_count=int(raw.get("event_count") or 0),
            first_ts=raw.get("first_ts") if isinstance(raw.get("first_ts"), int) else None,
            last_ts=raw.get("last_ts") if isinstance(raw.get("last_ts"), int) else None,
            undecryptable=int(raw.get("undecryptable") or 0),
            retention=str(raw["retention"]) if raw.get("retention") is not None else None,
            legal_hold=bool(raw.get("legal_hold")),
            raw=raw,
        )


@dataclass(frozen=True)
class SearchHit:
    event: dict[str, Any]
    room_id: str
    room_name: str | None
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SearchHit:
        found = raw.get("event")
        event: dict[str, Any] = found if isinstance(found, dict) else raw
        room = raw.get("room")
        if isinstance(room, dict):
            room_id, name = str(room.get("room_id", "")), room.get("name")
        else:
            room_id, name = str(room or event.get("room_id", "")), None
        return cls(event, room_id, name if isinstance(name, str) else None, raw)


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    checked: int
    problems: list[Any]
    raw: dict[str, Any]


class ArchiveApi:
    def __init__(self, base_url: str, token: str, session: aiohttp.ClientSession,
                 purpose: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._session = session
        self._purpose = purpose

    def __repr__(self) -> str:  # never show the token
        return f"ArchiveApi({self.base_url!r})"

    async def _get(self, path: str | tuple[str, ...], params: dict[str, Any] | None = None,
                   room_id: str | None = None) -> Any:
        """GET a path (a tuple of raw segments is quoted segment by segment)."""
        return await self._call("GET", path, params, room_id)

    async def woo_export(self, request_id: str, sink: Callable[[bytes], None],
                         started: Callable[[int | None, int | None], None]) -> None:
        """POST the export and hand the ZIP's bytes to ``sink`` as they arrive; ``started``
        gets the size (Content-Length) and the number of documents first."""
        url = URL(self.base_url).joinpath("api", "v1", "woo", "requests", request_id, "export")
        headers = {"Authorization": f"Bearer {self._token}"}
        if self._purpose:
            headers[PURPOSE_HEADER] = self._purpose
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=900)
        with reachable("the bridge", self.base_url):
            async with self._session.post(url, headers=headers, timeout=timeout) as resp:
                if resp.status != 200:
                    raw = await resp.read()
                    try:
                        answer = json.loads(raw)
                    except ValueError:
                        answer = None
                    self._raise(resp.status, answer, "/api/v1/woo/requests/…/export", None)
                if resp.content_type != "application/zip":
                    raise ArchiveApiError("the archive API answered without a ZIP")
                documents = resp.headers.get("X-Rijkschat-Documents", "")
                started(resp.content_length,
                        int(documents) if documents.isdigit() else None)
                async for chunk in resp.content.iter_chunked(1 << 16):
                    sink(chunk)

    async def _call(self, method: str, path: str | tuple[str, ...],
                    params: dict[str, Any] | None = None, room_id: str | None = None,
                    body: Any = None) -> Any:
        if isinstance(path, tuple):
            url = URL(self.base_url).joinpath(*path)
            path = "/" + "/".join(path)
        else:
            url = URL(self.base_url + path)
        headers = {"Authorization": f"Bearer {self._token}"}
        if self._purpose:
            headers[PURPOSE_HEADER] = self._purpose
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        with reachable("the bridge", self.base_url):
            async with self._session.request(method, url, params=query, headers=headers,
                                             json=body) as resp:
                try:
                    answer = await resp.json(content_type=None)
                except ValueError:
                    answer = None
                status = resp.status
        if status in (200, 201):
            return answer
        self._raise(status, answer, path, room_id)

    def _raise(self, status: int, answer: Any, path: str, room_id: str | None) -> NoReturn:
        message = answer.get("error") if isinstance(answer, dict) else None
        errcode = answer.get("errcode") if isinstance(answer, dict) else None
        if status == 401:
            raise NotLoggedInError("the bridge does not accept your session: "
                                   "run `rijkschat login`")
        if status == 403:
            raise ArchiveApiError("the archive is for archivists only: "
                                  f"{message or 'access refused'}")
        if status == 404 and room_id is not None:
            raise UnknownRoomError(f"room {room_id} is not in the archive")
        if status == 404 and errcode is None:
            raise ArchiveApiError(f"the bridge at {self.base_url} has no archive API "
                                  f"({path} not found)")
        raise ArchiveApiError(f"the archive API answered {status}"
                              + (f": {message}" if message else ""))

    async def rooms(self) -> list[ArchivedRoom]:
        body = await self._get("/api/v1/rooms")
        return [ArchivedRoom.from_json(r) for r in _list(body, "rooms")]

    async def events_page(self, room_id: str, after: str | None = None,
                          limit: int = PAGE_LIMIT) -> tuple[list[dict[str, Any]], str | None]:
        body = await self._get(("api", "v1", "rooms", room_id, "events"),
                               {"from": after, "limit": limit}, room_id=room_id)
        following = body.get("next") if isinstance(body, dict) else None
        return _list(body, "events"), following if isinstance(following, str) else None

    async def events(self, room_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The room's archived events in timeline order (all, or the first ``limit``)."""
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page_size = PAGE_LIMIT if limit is None else max(1, min(PAGE_LIMIT, limit - len(out)))
            page, token = await self.events_page(room_id, token, page_size)
            out.extend(page)
            if token is None or not page or (limit is not None and len(out) >= limit):
                return out

    async def search(self, q: str, *, room: str | None = None, sender: str | None = None,
                     from_ts: int | None = None, to_ts: int | None = None,
                     limit: int | None = None) -> list[SearchHit]:
        body = await self._get("/api/v1/search", {"q": q, "room": room, "sender": sender,
                                                  "from_ts": from_ts, "to_ts": to_ts,
                                                  "limit": limit})
        return [SearchHit.from_json(h) for h in _list(body, "hits")]

    async def verify(self, room_id: str) -> VerifyReport:
        body = await self._get(("api", "v1", "rooms", room_id, "verify"),
                               room_id=room_id)
        if not isinstance(body, dict):
            raise ArchiveApiError("the archive API answered verify with no report")
        return VerifyReport(bool(body.get("ok")), int(body.get("checked") or 0),
                            list(body.get("problems") or []), body)

    async def access_log(self, limit: int | None = None,
                         user: str | None = None) -> list[dict[str, Any]]:
        body = await self._get("/api/v1/audit", {"limit": limit, "user": user})
        return _list(body, "entries")

    async def completeness(self) -> dict[str, Any]:
        body = await self._get("/api/v1/audit/completeness")
        if not isinstance(body, dict):
            raise ArchiveApiError("the archive API answered the audit with no report")
        return body

    # ---- Woo requests and assessments ------------------------------------------------------
    async def woo_create(self, *, reference: str, title: str, rooms: list[str],
                         received: str | None = None, from_ts: int | None = None,
                         to_ts: int | None = None, query: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"reference": reference, "title": title, "rooms": rooms}
        extra = {"received": received, "from_ts": from_ts, "to_ts": to_ts, "query": query}
        body.update({k: v for k, v in extra.items() if v is not None})
        return _object(await self._call("POST", "/api/v1/woo/requests", body=body))

    async def woo_requests(self) -> list[dict[str, Any]]:
        return _list(await self._get("/api/v1/woo/requests"), "requests")

    async def woo_request(self, request_id: str) -> dict[str, Any]:
        return _object(await self._get(("api", "v1", "woo", "requests", request_id)))

    async def woo_find(self, reference: str) -> dict[str, Any]:
        """The request with this reference (or id), with its documents."""
        for found in await self.woo_requests():
            if reference in (found.get("reference"), found.get("id")):
                return await self.woo_request(str(found["id"]))
        raise ArchiveApiError(f"no Woo request with reference {reference}")

    async def woo_assess(self, request_id: str, event_id: str, *, decision: str,
                         grounds: list[str], spans: list[dict[str, Any]],
                         note: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"decision": decision, "grounds": grounds}
        if spans:
            body["spans"] = spans
        if note is not None:
            body["note"] = note
        path = ("api", "v1", "woo", "requests", request_id, "assessments", event_id)
        return _object(await self._call("PUT", path, body=body))


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ArchiveApiError("the archive API answered without an object")
    return body


def _list(body: Any, key: str) -> list[dict[str, Any]]:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ArchiveApiError(f"the archive API answered without {key!r}")
    return [item for item in items if isinstance(item, dict)]


@contextlib.asynccontextmanager
async def open_api(base_url: str, token: str,
                   purpose: str | None = None) -> AsyncIterator[ArchiveApi]:
    timeout = aiohttp.ClientTimeout(total=60, connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield ArchiveApi(base_url, token, session, purpose)
