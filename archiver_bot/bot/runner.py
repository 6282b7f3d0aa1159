"""The archiver's main loop: log in, cross-sign, sync, capture, publish liveness."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from aiohttp import web
from nio import AsyncClient, SyncResponse

from archiver_bot.archive import Archive, ArchiveError, ArchivePaths, open_archive
from archiver_bot.bot import niopatch
from archiver_bot.bot.capture import BackfillError, Capture
from archiver_bot.bot.control import MAX_REQUEST_BYTES, control_token, setup_control
from archiver_bot.bot.crosssign import ensure_cross_signed
from archiver_bot.bot.keyimport import ImportedSessions, KeyImporter
from archiver_bot.bot.metrics import Metrics, create_metrics_app, metrics_token
from archiver_bot.bot.notifier import Notifier
from archiver_bot.bot.roster import KnownUsers
from archiver_bot.bot.session import login_or_restore, make_client
from archiver_bot.bot.state import BotState
from archiver_bot.bot.status import write_status
from archiver_bot.settings import ArchiverSettings

log = logging.getLogger(__name__)

SYNC_TIMEOUT_MS = 30_000
SYNC_FILTER: dict[str, Any] = {
    "room": {
        "include_leave": True,
        "timeline": {"limit": 100},
        "state": {"lazy_load_members": False},
    },
    "presence": {"not_types": ["*"]},
}


async def _crypto_housekeeping(client: AsyncClient) -> None:
    """What nio's sync_forever does between syncs for E2E: keys up, queries and claims."""
    await client.send_to_device_messages()
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())


def _metrics_port(settings: ArchiverSettings) -> int | None:
    try:
        data = json.loads((settings.data_dir / "rijkschat.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    port = data.get("archiver_metrics_port")
    return int(port) if port else None


async def _start_metrics(
    settings: ArchiverSettings, metrics: Metrics, importer: list[KeyImporter]
) -> web.AppRunner | None:
    """Metrics and the control endpoint; ``importer`` is filled once the bot is ready."""
    port = _metrics_port(settings)
    if port is None:
        return None
    app = create_metrics_app(metrics, metrics_token(settings.metrics_token_file),
                             client_max_size=MAX_REQUEST_BYTES)
    setup_control(app, control_token(settings.control_token_file), importer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    log.info("metrics on http://127.0.0.1:%d/metrics (bearer token in %s)", port,
             settings.metrics_token_file)
    return runner


def make_importer(
    client: AsyncClient,
    archive: Archive,
    state: BotState,
    registry: ImportedSessions,
    metrics: Metrics | None,
) -> KeyImporter:
    importer = KeyImporter(client, archive, lambda: state.archived, registry)

    async def decrypted(count: int) -> None:
        if metrics is not None and count:
            metrics.undecryptable.set(await archive.undecryptable_count())

    importer.on_decrypted = decrypted
    return importer


async def sync_loop(client: AsyncClient, capture: Capture, archive: Archive,
                    settings: ArchiverSettings) -> None:
    since = await archive.sync_token()
    first = True  # full state once per process, so that nio knows every room's members
    backoff = 1.0
    while True:
        resp = await client.sync(
            timeout=0 if first else SYNC_TIMEOUT_MS, since=since, full_state=first,
            sync_filter=SYNC_FILTER,
        )
        if not isinstance(resp, SyncResponse):
            log.warning("sync failed: %s; retrying in %.0f s", resp, backoff)
            write_status(settings.status_file, "error", error=type(resp).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
            continue
        try:
            await capture.handle_sync(resp)
        except (BackfillError, ArchiveError) as exc:
            # Nothing of this sync was acknowledged: the next sync starts from `since` again.
            log.warning("%s; retrying the sync in %.0f s", exc, backoff)
            write_status(settings.status_file, "error", error=type(exc).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
            continue
        except Exception:
            log.exception("capturing a sync failed; retrying it in %.0f s", backoff)
            write_status(settings.status_file, "error", error="internal")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
            continue
        backoff = 1.0
        first = False
        since = resp.next_batch
        capture.metrics.syncs.inc()
        await _crypto_housekeeping(client)
        write_status(settings.status_file, "syncing", user_id=client.user_id,
                     device_id=client.device_id, last_sync_at=time.time())


def _room_name(client: AsyncClient, room_id: str) -> str | None:
    room = client.rooms.get(room_id)
    return str(room.display_name) if room is not None else None


async def run(settings: ArchiverSettings) -> None:
    """Run until cancelled."""
    niopatch.apply()
    settings.bot_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_status(settings.status_file, "starting")
    users = KnownUsers.load(settings.roster_file)
    archive = await open_archive(ArchivePaths.for_data_dir(settings.data_dir),
                                 database_url=settings.database_url)
    client = make_client(settings)
    metrics = Metrics()
    metrics_runner: web.AppRunner | None = None
    importer: list[KeyImporter] = []
    try:
        metrics_runner = await _start_metrics(settings, metrics, importer)
        await login_or_restore(client, settings)
        if client.should_upload_keys:
            await client.keys_upload()
        await ensure_cross_signed(client, settings.cross_signing_file, settings.password)
        capture = Capture(client, archive, users, BotState(settings.rooms_file), metrics)
        client.on_decrypted = capture.remember_original
        registry = ImportedSessions(settings.imported_sessions_file)
        capture.provenance_of = registry.get
        importer.append(make_importer(client, archive, capture.state, registry, metrics))
        await capture.retry_sessions(await archive.undecryptable_session_ids())
        notifier = Notifier(
            client, archive, settings.notices_file, settings.undecryptable_grace_seconds,
            enabled=settings.notify_senders, room_name=lambda r: _room_name(client, r),
        )
        notifying = asyncio.create_task(notifier.run(), name="undecryptable-notifier")
        try:
            await sync_loop(client, capture, archive, settings)
        finally:
            notifying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await notifying
    finally:
        write_status(settings.status_file, "stopped")
        with contextlib.suppress(Exception):
            await client.close()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await archive.close()
