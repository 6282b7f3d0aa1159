"""Log in once and reuse the device: a new device on each start would lose its room keys."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from nio import AsyncClient, AsyncClientConfig, LoginResponse, MegolmEvent

from archiver_bot.errors import LoginError
from archiver_bot.settings import ArchiverSettings, write_private

log = logging.getLogger(__name__)

DEVICE_NAME = "Rijkschat archiver"


class ArchiverClient(AsyncClient):  # type: ignore[misc]
    """nio's client, telling us which encrypted event each decrypted one came from.

    nio replaces an encrypted timeline event by its decryption in place; the archive keeps
    both (the ciphertext as received, and the plaintext with the sender's device and keys).
    """

    on_decrypted: Callable[[MegolmEvent], None] | None = None

    def _handle_timeline_event(
        self, event: Any, room_id: str, room: Any, encrypted_rooms: set[str]
    ) -> Any:
        decrypted = super()._handle_timeline_event(event, room_id, room, encrypted_rooms)
        if decrypted is not None and isinstance(event, MegolmEvent) and self.on_decrypted:
            self.on_decrypted(event)
        return decrypted

    def _handle_messages_response(self, response: Any) -> None:
        """Leave /messages chunks encrypted: the backfill decrypts them keeping the originals."""


def make_client(settings: ArchiverSettings) -> ArchiverClient:
    settings.crypto_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = AsyncClientConfig(
        encryption_enabled=True,
        pickle_key=settings.pickle_key(),
        store_sync_tokens=False,  # we keep the sync position ourselves, after commit
        max_timeouts=None,
        request_timeout=60,
    )
    return ArchiverClient(
        settings.homeserver, settings.user_id, store_path=str(settings.crypto_dir), config=config
    )


async def login_or_restore(client: AsyncClient, settings: ArchiverSettings) -> None:
    """Restore the saved session, or log in once and save it (mode 0600)."""
    if settings.session_file.exists():
        data = json.loads(settings.session_file.read_text("utf-8"))
        client.restore_login(data["user_id"], data["device_id"], data["access_token"])
        whoami = await client.whoami()
        if getattr(whoami, "user_id", None) == settings.user_id:
            log.info("restored session of %s on device %s", client.user_id, client.device_id)
            return
        # The token was revoked: log in again on the same device id, keeping the keys.
        log.warning("saved session was rejected; logging in again on device %s", data["device_id"])
        client.device_id = data["device_id"]
    resp = await client.login(settings.password, device_name=DEVICE_NAME)
    if not isinstance(resp, LoginResponse):
        raise LoginError(f"login as {settings.user_id} failed: {getattr(resp, 'message', resp)}")
    session = {
        "user_id": resp.user_id,
        "device_id": resp.device_id,
        "access_token": resp.access_token,
    }
    write_private(settings.session_file, json.dumps(session))
    log.info("logged in as %s on new device %s", resp.user_id, resp.device_id)
