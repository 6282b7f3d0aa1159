"""The archiver's main loop: log in, sync, publish liveness."""

from __future__ import annotations

import asyncio
import logging
import time

from nio import AsyncClient, SyncResponse

from archiver_bot.bot.session import login_or_restore, make_client
from archiver_bot.bot.status import write_status
from archiver_bot.settings import ArchiverSettings

log = logging.getLogger(__name__)

SYNC_TIMEOUT_MS = 30_000


async def _crypto_housekeeping(client: AsyncClient) -> None:
    """What nio's sync_forever does between syncs for E2E: keys up, queries and claims."""
    await client.send_to_device_messages()
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())


async def run(settings: ArchiverSettings) -> None:
    """Run until cancelled."""
    settings.bot_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_status(settings.status_file, "starting")
    client = make_client(settings)
    token_file = settings.bot_dir / "sync_token"
    try:
        await login_or_restore(client, settings)
        since = token_file.read_text("utf-8").strip() if token_file.exists() else None
        backoff = 1.0
        while True:
            resp = await client.sync(timeout=SYNC_TIMEOUT_MS, since=since, full_state=since is None)
            if not isinstance(resp, SyncResponse):
                log.warning("sync failed: %s; retrying in %.0f s", resp, backoff)
                write_status(settings.status_file, "error", error=str(resp)[:200])
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 1.0
            since = resp.next_batch
            token_file.write_text(since, "utf-8")
            await _crypto_housekeeping(client)
            write_status(
                settings.status_file,
                "syncing",
                user_id=client.user_id,
                device_id=client.device_id,
                last_sync_at=time.time(),
            )
    finally:
        write_status(settings.status_file, "stopped")
        await client.close()
