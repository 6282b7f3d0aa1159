"""Room-key import from the review API and UI: read the uploaded export, forward it to the
archiver bot's local control endpoint (which alone writes its crypto store and decrypts),
and map its answer. The bridge never decrypts the file itself; it reads the bot's control
token from the data dir and talks to it on loopback only."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from server_bridge.review.service import Reader
from server_bridge.web.api_errors import ApiError
from server_bridge.web.keys import HTTP, SETTINGS

log = logging.getLogger(__name__)

#: the largest export file accepted through the review UI/API
MAX_UPLOAD_BYTES = 16 * 1024 * 1024
MAX_PASSPHRASE_CHARS = 1024
CONTROL_PATH = "/control/import-keys"
CONTROL_TOKEN = "control.token"


@dataclass(frozen=True)
class Upload:
    data: bytes
    passphrase: str | None
    csrf: str | None


async def read_upload(request: web.Request) -> Upload:
    """The multipart fields ``file``, ``passphrase`` (``wachtwoord`` from the UI) and
    ``csrf``, with hard size limits (the whole body is never buffered beyond them)."""
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):
        raise ApiError(400, "M_INVALID_PARAM", "expected multipart/form-data") from None
    data: bytes | None = None
    fields: dict[str, str] = {}
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, aiohttp.BodyPartReader):
            raise ApiError(400, "M_INVALID_PARAM", "nested multipart is not accepted")
        name = part.name or ""
        if name == "file":
            chunks = bytearray()
            while chunk := await part.read_chunk(64 * 1024):
                chunks.extend(chunk)
                if len(chunks) > MAX_UPLOAD_BYTES:
                    raise ApiError(413, "M_TOO_LARGE",
                                   f"the key file is limited to {MAX_UPLOAD_BYTES // 2**20} MiB")
            data = bytes(chunks)
        elif name in ("passphrase", "wachtwoord", "csrf"):
            raw = await part.read(decode=False)
            if len(raw) > MAX_PASSPHRASE_CHARS * 4:
                raise ApiError(400, "M_INVALID_PARAM", f"{name} is too long")
            fields[name] = raw.decode("utf-8", "replace")
        else:
            await part.release()
    if not data:
        raise ApiError(400, "M_INVALID_PARAM", "the key file (field file) is missing or empty")
    passphrase = fields.get("passphrase") or fields.get("wachtwoord") or None
    return Upload(data, passphrase, fields.get("csrf"))


async def forward_import(
    request: web.Request, reader: Reader, room_id: str, upload: Upload
) -> dict[str, Any]:
    """The bot's outcome (``keys_read``, ``keys_used``, ``events_decrypted``, ``ignored``)."""
    settings = request.app[SETTINGS]
    try:
        token = (settings.archiver_dir / CONTROL_TOKEN).read_text("utf-8").strip()
    except OSError:
        raise ApiError(503, "M_UNAVAILABLE", "the archiver is not reachable (never started)") \
            from None
    actor = reader.actor()
    body = {
        "actor": {"user_id": actor.user_id, "purpose": actor.purpose},
        "via": "review",
        "room_id": room_id,
        "file_b64": base64.b64encode(upload.data).decode("ascii"),
        "passphrase": upload.passphrase,
    }
    url = f"http://127.0.0.1:{settings.metrics_port}{CONTROL_PATH}"
    try:
        async with request.app[HTTP].post(
            url, json=body, headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=300),
        ) as resp:
            status = resp.status
            answer = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.warning("key import by %s: the archiver is not reachable (%s)",
                    reader.user_id, type(exc).__name__)
        raise ApiError(503, "M_UNAVAILABLE", "the archiver is not reachable; try again when "
                       "it runs") from None
    if not isinstance(answer, dict):
        raise ApiError(502, "M_UNAVAILABLE", "the archiver gave no answer")
    message = str(answer.get("message") or "")
    if status == 200:
        log.info("archivist %s imported %s room key(s) for %s: %s event(s) decrypted",
                 reader.user_id, answer.get("keys_used"), room_id,
                 answer.get("events_decrypted"))
        return answer
    log.info("key import by %s for %s refused: %s", reader.user_id, room_id,
             answer.get("error"))
    if status == 400:
        raise ApiError(400, "M_BAD_KEY_FILE", message or "the key file cannot be read")
    if status == 422:
        raise ApiError(422, "M_NOTHING_TO_IMPORT", message or "nothing imported")
    if status == 401:
        log.error("the archiver refused the bridge's control token")
    raise ApiError(503, "M_UNAVAILABLE", message or "the archiver is not available")
