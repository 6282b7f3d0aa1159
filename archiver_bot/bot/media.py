"""Attachments: download at once, decrypt, check the hash; failures become an error status."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from nio import AsyncClient, DownloadError
from nio.crypto.attachments import decrypt_attachment
from nio.exceptions import EncryptionError

log = logging.getLogger(__name__)

ATTEMPTS = 3


@dataclass(frozen=True)
class FetchedMedia:
    data: bytes
    filename: str
    mimetype: str
    sha256_ok: bool | None  # None: unencrypted upload, no hash to check
    error: str | None


async def fetch(client: AsyncClient, ref: dict[str, Any]) -> FetchedMedia:
    """Fetch and (for encrypted files) decrypt one attachment, retrying transient failures."""
    name, mimetype = ref["name"], ref["mimetype"]
    last_error = "unknown"
    for attempt in range(ATTEMPTS):
        resp = await client.download(mxc=ref["mxc"])
        if isinstance(resp, DownloadError):
            last_error = f"download failed: {resp.status_code or ''} {resp.message}".strip()
            if resp.status_code in ("M_NOT_FOUND", "M_FORBIDDEN"):
                break
            await asyncio.sleep(0.5 * (attempt + 1))
            continue
        body = resp.body
        if not isinstance(body, bytes):
            last_error = "download returned no bytes"
            break
        file = ref.get("file")
        if file is None:
            return FetchedMedia(body, name, mimetype, None, None)
        try:
            plain = decrypt_attachment(body, file["key"]["k"], file["hashes"]["sha256"],
                                       file["iv"])
        except (EncryptionError, KeyError, TypeError, ValueError) as exc:
            # Hash mismatch or a damaged key: keep the ciphertext, marked as failed.
            log.warning("attachment %s failed its integrity check: %s", ref["mxc"],
                        type(exc).__name__)
            return FetchedMedia(body, name, mimetype, False, f"decryption failed: {exc}")
        return FetchedMedia(plain, name, mimetype, True, None)
    log.warning("attachment %s could not be fetched: %s", ref["mxc"], last_error)
    return FetchedMedia(b"", name, mimetype, None, last_error)
