"""The bot's local control endpoint, next to its metrics on 127.0.0.1 (bridge port + 1).

``POST /control/import-keys`` behind the bearer token in ``archiver/control.token`` (0600,
separate from the metrics token, compared in constant time). The body is JSON::

    {"actor": {"user_id": ..., "purpose": ...}, "via": "cli" | "review",
     "room_id": optional filter,
     "file_sha256": hex digest of the export file (given with "sessions"),
     "sessions": [...]                        # a decrypted export (the CLI decrypts)
     | "file_b64": ..., "passphrase": ...}    # the export file itself (the review UI)

Answers 200 with the outcome (``keys_read``, ``keys_used``, ``events_decrypted``,
``ignored``), 400 ``key_file`` (unreadable file, wrong passphrase, bad request),
422 ``nothing_to_import`` (nothing changed), 401 without the token, 503 while starting.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from archiver_bot.archive import Actor, ArchiveError
from archiver_bot.bot.keyexport import MAX_EXPORT_BYTES, KeyFileError, read_key_file
from archiver_bot.bot.keyimport import KeyImporter, NothingToImportError
from archiver_bot.bot.metrics import metrics_token

log = logging.getLogger(__name__)

IMPORT_PATH = "/control/import-keys"
#: a base64 export file of MAX_EXPORT_BYTES plus the JSON around it
MAX_REQUEST_BYTES = MAX_EXPORT_BYTES * 4 // 3 + 1024 * 1024


def control_token(path: Path) -> str:
    """The control token (created once, 0600); the same helper as the metrics token."""
    return metrics_token(path)


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status)


def _str(body: dict[str, Any], name: str, limit: int = 255) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise KeyFileError(f"{name} must be a non-empty string")
    return value


def setup_control(app: web.Application, token: str, slot: list[KeyImporter]) -> None:
    """Add the control routes to ``app``; ``slot`` gets the importer once the bot is ready."""

    async def import_keys(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _error(401, "unauthorized", "a valid control token is required")
        if not slot:
            return _error(503, "starting", "the archiver is starting; try again shortly")
        try:
            body = json.loads(await request.read())
            if not isinstance(body, dict):
                raise KeyFileError("the request body must be a JSON object")
            actor_doc = body.get("actor")
            if not isinstance(actor_doc, dict):
                raise KeyFileError("actor is required")
            actor = Actor(str(actor_doc.get("user_id") or ""), str(actor_doc.get("purpose") or ""))
            if not actor.user_id or not actor.purpose.strip():
                raise KeyFileError("actor needs a user_id and a purpose")
            via = _str(body, "via", 32) or "control"
            room_filter = _str(body, "room_id")
            if "file_b64" in body:
                raw = base64.b64decode(str(body["file_b64"]), validate=True)
                file_sha256 = hashlib.sha256(raw).hexdigest()
                secret: Any = body.get("passphrase")
                sessions, _ = await asyncio.to_thread(
                    read_key_file, raw, secret if isinstance(secret, str) else None
                )
            else:
                listed: Any = body.get("sessions")
                file_sha256 = _str(body, "file_sha256", 64) or ""
                if not isinstance(listed, list):
                    raise KeyFileError("sessions must be a list")
                sessions = listed
        except (ValueError, binascii.Error) as exc:
            return _error(400, "key_file", f"bad request: {type(exc).__name__}")
        except KeyFileError as exc:
            return _error(400, "key_file", str(exc))
        try:
            outcome = await slot[0].run(
                sessions, actor=actor, file_sha256=file_sha256, via=via, room_filter=room_filter
            )
        except NothingToImportError as exc:
            return _error(422, "nothing_to_import", str(exc), **exc.outcome.to_dict())
        except ArchiveError as exc:
            log.warning("key import failed in the archive: %s", type(exc).__name__)
            return _error(503, "archive", f"the archive refused the import: {exc}")
        return web.json_response(outcome.to_dict())

    app.router.add_post(IMPORT_PATH, import_keys)
