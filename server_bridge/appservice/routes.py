"""The bridge's Application Service endpoints, the audit API and the metrics endpoint.

``PUT /_matrix/app/v1/transactions/{txnId}``: the homeserver token is checked in constant
time (403 and a log line for a wrong one), the whole body is validated before anything is
written (4xx: the sender's fault, nothing recorded), and 200 is answered only after the
ledger committed the events (idempotent per event: the transaction id is information only);
a database failure is a 500 so that Synapse retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from server_bridge.appservice.audit import ArchiveUnavailable
from server_bridge.appservice.ledger import Ledger, Outcome
from server_bridge.appservice.registration import (
    AppserviceTokens,
    BridgePaths,
    load_or_create_metrics_token,
    load_or_create_tokens,
)
from server_bridge.appservice.service import LedgerService
from server_bridge.appservice.transactions import (
    MAX_BODY_BYTES,
    MAX_ID_LENGTH,
    TransactionError,
    TransactionTooLarge,
    parse_transaction,
)
from server_bridge.web.api_errors import ApiError
from server_bridge.web.auth import bearer_token, require_role, require_static_token, tokens_match
from server_bridge.web.keys import SETTINGS

log = logging.getLogger(__name__)

LEDGER = web.AppKey("ledger_service", LedgerService)
AS_TOKENS = web.AppKey("appservice_tokens", AppserviceTokens)
METRICS_TOKEN = web.AppKey("metrics_token", str)
#: set before the app starts to keep the ledger in that database (e.g. PostgreSQL) rather
#: than in DATA/bridge/ledger.db
LEDGER_DATABASE_URL = web.AppKey("ledger_database_url", str)

ARCHIVIST = "archivist"


async def _ledger_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    paths = BridgePaths.for_data_dir(settings.data_dir)
    app[AS_TOKENS] = load_or_create_tokens(paths)
    app[METRICS_TOKEN] = load_or_create_metrics_token(paths)
    url = app.get(LEDGER_DATABASE_URL)
    ledger = await Ledger.open(paths.ledger if url is None else None, database_url=url)
    service = LedgerService(
        ledger,
        settings.data_dir,
        settings.archiver_user_id(),
        settings.homeserver_url,
        app[AS_TOKENS].as_token,
    )
    app[LEDGER] = service
    catch_up = asyncio.create_task(service.catch_up.loop()) if service.catch_up else None
    try:
        yield
    finally:
        if catch_up is not None:
            catch_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await catch_up
        await service.close()


def _check_hs_token(request: web.Request) -> None:
    service = request.app[LEDGER]
    token = bearer_token(request) or request.query.get("access_token")
    if token is None:
        service.metrics.auth_failures.inc()
        log.warning("AS request without a homeserver token from %s", request.remote)
        raise ApiError(401, "M_UNAUTHORIZED", "missing homeserver token")
    if not tokens_match(token, request.app[AS_TOKENS].hs_token):
        service.metrics.auth_failures.inc()
        log.warning("AS request with a wrong homeserver token from %s refused", request.remote)
        raise ApiError(403, "M_FORBIDDEN", "wrong homeserver token")


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise TransactionTooLarge(f"transaction body exceeds {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise TransactionTooLarge(f"transaction body exceeds {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def put_transaction(request: web.Request) -> web.Response:
    _check_hs_token(request)
    service = request.app[LEDGER]
    txn_id = request.match_info["txn_id"]
    if not txn_id or len(txn_id) > MAX_ID_LENGTH:
        raise ApiError(400, "M_INVALID_PARAM", "bad transaction id")
    try:
        rows = parse_transaction(await _read_body(request))
    except TransactionError as exc:
        service.metrics.transactions.labels(outcome="rejected").inc()
        log.warning("AS transaction %s rejected: %s", txn_id, exc)
        raise ApiError(exc.status, exc.errcode, str(exc)) from exc
    try:
        result = await service.ledger.record_transaction(txn_id, rows)
    except (SQLAlchemyError, OSError):
        service.metrics.transactions.labels(outcome="error").inc()
        log.exception("AS transaction %s not committed; the homeserver will retry", txn_id)
        raise ApiError(500, "M_UNKNOWN", "ledger unavailable; retry later") from None
    service.metrics.events_recorded.inc(result.new_events)
    if result.numbering_broken and service.catch_up is not None:
        # The homeserver restarted: what it persisted just before may never be pushed.
        service.catch_up.request()
    if result.ids_skipped:
        # Committed, but answered as a failure: Synapse then marks the ledger down and its
        # recoverer sends every transaction it still holds, oldest first (the skipped ones
        # too); the retry of this one is a duplicate and gets its 200.
        service.metrics.transactions.labels(outcome="resend_requested").inc()
        log.warning(
            "AS transaction %s does not follow %s: the homeserver may hold transactions it "
            "never sent (it stopped or crashed); asking it to resend them",
            txn_id,
            result.previous_txn_id,
        )
        raise ApiError(503, "M_UNKNOWN", "transaction ids skipped; resend pending transactions")
    service.metrics.transactions.labels(outcome=result.outcome.value).inc()
    if result.outcome is Outcome.DUPLICATE:
        log.info("AS transaction %s was a retry: %d new events", txn_id, result.new_events)
    else:
        log.debug("AS transaction %s: %d of %d events new", txn_id, result.new_events, len(rows))
    return web.json_response({})


async def query_not_found(request: web.Request) -> web.Response:
    """The ledger creates no users or rooms on demand."""
    _check_hs_token(request)
    raise ApiError(404, "M_NOT_FOUND", "the ledger provides no users or rooms")


async def ping(request: web.Request) -> web.Response:
    _check_hs_token(request)
    return web.json_response({})


def _grace_ms(request: web.Request) -> int:
    raw = request.query.get("grace_seconds", "0")
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, "M_INVALID_PARAM", "grace_seconds must be a number") from None
    if not 0 <= value <= 86400:
        raise ApiError(400, "M_INVALID_PARAM", "grace_seconds must be within 0..86400")
    return int(value * 1000)


async def get_completeness(request: web.Request) -> web.Response:
    """GET /api/v1/audit/completeness: the audit report, for archivists."""
    principal = await require_role(request, ARCHIVIST)
    grace = _grace_ms(request)
    try:
        report = await request.app[LEDGER].audit(grace)
    except ArchiveUnavailable as exc:
        log.error("audit for %s failed: %s", principal.user_id, exc)
        raise ApiError(503, "M_UNKNOWN", "the archive is unavailable") from exc
    log.info("audit report served to %s", principal.user_id)
    return web.json_response(report.to_dict())


async def get_metrics(request: web.Request) -> web.Response:
    require_static_token(request, request.app[METRICS_TOKEN], "metrics")
    service = request.app[LEDGER]
    try:
        await service.refresh_metrics()
    except ArchiveUnavailable as exc:
        log.error("metrics audit failed: %s", exc)
    return web.Response(
        body=generate_latest(service.metrics.registry),
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )


def setup_ledger(app: web.Application) -> None:
    app.cleanup_ctx.append(_ledger_ctx)
    for prefix in ("/_matrix/app/v1", ""):  # the spec's paths and the legacy ones
        app.router.add_put(prefix + "/transactions/{txn_id}", put_transaction)
        app.router.add_get(prefix + "/users/{user_id}", query_not_found)
        app.router.add_get(prefix + "/rooms/{alias}", query_not_found)
    app.router.add_post("/_matrix/app/v1/ping", ping)
    app.router.add_get("/api/v1/audit/completeness", get_completeness)
    app.router.add_get("/metrics", get_metrics)
