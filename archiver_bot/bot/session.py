"""Log in once and reuse the device: a new device on each start would lose its room keys."""

from __future__ import annotations

import json
import logging

from nio import AsyncClient, AsyncClientConfig, LoginResponse

from archiver_bot.errors import LoginError
from archiver_bot.settings import ArchiverSettings, write_private

log = logging.getLogger(__name__)

DEVICE_NAME = "Rijkschat archiver"


def make_client(settings: ArchiverSettings) -> AsyncClient:
    settings.crypto_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = AsyncClientConfig(
        encryption_enabled=True,
        pickle_key=settings.pickle_key(),
        store_sync_tokens=False,  # we keep the sync position ourselves, after commit
        max_timeouts=None,
        request_timeout=60,
    )
    return AsyncClient(
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
