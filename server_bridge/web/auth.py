"""Who is calling the bridge: archivists by their Matrix access token, machines by a token file.

An archivist presents ``Authorization: Bearer <Matrix access token>``; the bridge asks the
homeserver who that is (``/account/whoami``) and looks the user up in ``roster.json``.
Answers are cached briefly by a hash of the token (the token itself is never kept or logged).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from server_bridge.web.api_errors import ApiError
from server_bridge.web.keys import HTTP, SETTINGS

log = logging.getLogger(__name__)

WHOAMI_CACHE_SECONDS = 30.0
ROSTER_FILE = "roster.json"


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: str


class _WhoamiCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, float]] = {}

    def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None or entry[1] < time.monotonic():
            self._entries.pop(key, None)
            return None
        return entry[0]

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def put(self, key: str, user_id: str) -> None:
        if len(self._entries) > 1000:
            self._entries.clear()
        self._entries[key] = (user_id, time.monotonic() + WHOAMI_CACHE_SECONDS)


WHOAMI_CACHE = web.AppKey("whoami_cache", _WhoamiCache)


def setup_auth(app: web.Application) -> None:
    app[WHOAMI_CACHE] = _WhoamiCache()


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def tokens_match(presented: str, expected: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def require_static_token(request: web.Request, expected: str, what: str) -> None:
    """A machine caller (e.g. a metrics scraper) with a token from a 0600 file."""
    token = bearer_token(request)
    if token is None:
        raise ApiError(401, "M_MISSING_TOKEN", f"{what} needs a bearer token")
    if not tokens_match(token, expected):
        log.warning("%s: wrong bearer token from %s", what, request.remote)
        raise ApiError(403, "M_FORBIDDEN", f"wrong token for {what}")


def roster_role(request: web.Request, user_id: str) -> str | None:
    path = request.app[SETTINGS].data_dir / ROSTER_FILE
    try:
        roster = json.loads(path.read_text("utf-8"))
        for user in roster.get("users", []):
            if user.get("user_id") == user_id:
                role = user.get("role")
                return role if isinstance(role, str) else None
    except (OSError, ValueError, AttributeError) as exc:
        log.error("cannot read the roster %s: %s", path, exc)
        raise ApiError(503, "M_UNKNOWN", "the roster is unavailable") from exc
    return None


async def _whoami(request: web.Request, token: str) -> str | None:
    url = f"{request.app[SETTINGS].homeserver_url}/_matrix/client/v3/account/whoami"
    try:
        async with request.app[HTTP].get(
            url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=5),
        ) as resp:
            if resp.status in (401, 403):
                return None
            if resp.status != 200:
                raise ApiError(503, "M_UNKNOWN", "the homeserver cannot check the token")
            user_id = (await resp.json()).get("user_id")
            return user_id if isinstance(user_id, str) else None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise ApiError(503, "M_UNKNOWN", "the homeserver cannot check the token") from exc


async def authenticate(request: web.Request) -> str:
    """The Matrix user id behind the request's bearer token."""
    token = bearer_token(request)
    if token is None:
        raise ApiError(401, "M_MISSING_TOKEN", "log in: an access token is required")
    return await user_for_token(request, token)


async def user_for_token(request: web.Request, token: str) -> str:
    """The Matrix user id of an access token (also one kept in a web session); 401 if the
    homeserver does not know it, 503 if the homeserver cannot be asked."""
    key = hashlib.sha256(token.encode("utf-8")).hexdigest()
    cache = request.app[WHOAMI_CACHE]
    user_id = cache.get(key)
    if user_id is None:
        user_id = await _whoami(request, token)
        if user_id is None:
            log.info("rejected an unknown access token from %s", request.remote)
            raise ApiError(401, "M_UNKNOWN_TOKEN", "unknown or expired access token")
        cache.put(key, user_id)
    return user_id


async def require_role(request: web.Request, *roles: str) -> Principal:
    """The caller, if its roster role is one of ``roles``; 401/403 otherwise."""
    user_id = await authenticate(request)
    return require_user_role(request, user_id, *roles)


def forget_token(request: web.Request, token: str) -> None:
    """Drop a token from the whoami cache (after a logout)."""
    request.app[WHOAMI_CACHE].forget(hashlib.sha256(token.encode("utf-8")).hexdigest())


def require_user_role(request: web.Request, user_id: str, *roles: str) -> Principal:
    """``user_id`` as a principal if its roster role is one of ``roles``; 403 otherwise."""
    role = roster_role(request, user_id)
    if role not in roles:
        log.warning("%s (role %s) refused at %s", user_id, role, request.path)
        raise ApiError(403, "M_FORBIDDEN", f"only {' or '.join(roles)} may use this")
    return Principal(user_id, role)
