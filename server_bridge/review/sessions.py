"""Web sessions of the review UI, kept in the bridge's memory only.

The archivist logs in with Matrix credentials; the bridge keeps the resulting access token
server-side and gives the browser only a random session id (cookie HttpOnly,
SameSite=Strict). Each session has its own CSRF token, checked on every POST. Sessions end
after 30 minutes idle or 8 hours in all, on logout, or when the bridge restarts.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

from aiohttp import web

SESSION_COOKIE = "rijkschat_sessie"
LOGIN_COOKIE = "rijkschat_login"
IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 8 * 3600
MAX_SESSIONS = 1000
FAILED_LOGIN_LIMIT = 10  # per client address ...
FAILED_LOGIN_WINDOW = 600.0  # ... in this many seconds


@dataclass
class WebSession:
    sid: str
    user_id: str
    token: str = field(repr=False)  # the Matrix access token: never logged, never sent out
    purpose: str | None
    csrf: str = field(repr=False)
    created: float
    last_seen: float


class SessionStore:
    def __init__(self) -> None:
        self._sessions: dict[str, WebSession] = {}

    def _expired(self, session: WebSession, now: float) -> bool:
        return now - session.last_seen > IDLE_SECONDS or now - session.created > ABSOLUTE_SECONDS

    def _sweep(self, now: float) -> None:
        for sid in [s for s, v in self._sessions.items() if self._expired(v, now)]:
            del self._sessions[sid]

    def create(self, user_id: str, token: str, purpose: str | None) -> WebSession:
        now = time.monotonic()
        self._sweep(now)
        if len(self._sessions) >= MAX_SESSIONS:  # drop the oldest rather than grow
            oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
            del self._sessions[oldest.sid]
        session = WebSession(
            sid=secrets.token_urlsafe(32),
            user_id=user_id,
            token=token,
            purpose=purpose,
            csrf=secrets.token_urlsafe(32),
            created=now,
            last_seen=now,
        )
        self._sessions[session.sid] = session
        return session

    def get(self, sid: str | None) -> WebSession | None:
        if not sid or len(sid) > 100:
            return None
        session = self._sessions.get(sid)
        now = time.monotonic()
        if session is None:
            return None
        if self._expired(session, now):
            del self._sessions[sid]
            return None
        session.last_seen = now
        return session

    def drop(self, sid: str) -> WebSession | None:
        return self._sessions.pop(sid, None)

    def __len__(self) -> int:
        return len(self._sessions)


class LoginThrottle:
    """Failed UI logins per client address: the homeserver sees every UI login coming from
    the bridge, so the bridge limits guessing itself before it reaches Synapse."""

    def __init__(self, limit: int = FAILED_LOGIN_LIMIT,
                 window: float = FAILED_LOGIN_WINDOW) -> None:
        self._limit = limit
        self._window = window
        self._failures: dict[str, list[float]] = {}

    def _recent(self, key: str, now: float) -> list[float]:
        recent = [t for t in self._failures.get(key, []) if now - t < self._window]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)
        return recent

    def blocked(self, key: str) -> bool:
        return len(self._recent(key, time.monotonic())) >= self._limit

    def failed(self, key: str) -> None:
        now = time.monotonic()
        if len(self._failures) > 10_000:
            self._failures.clear()
        self._failures[key] = [*self._recent(key, now), now]

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


SESSIONS = web.AppKey("review_sessions", SessionStore)
THROTTLE = web.AppKey("review_login_throttle", LoginThrottle)


def same_secret(presented: str | None, expected: str) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str,
               max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        path="/archief",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        max_age=max_age,
    )


def clear_cookie(response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path="/archief")
