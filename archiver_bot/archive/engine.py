"""Engine creation from a URL, SQLite tuning, Alembic migrations and write retries."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .errors import ArchiveStorageFullError, ArchiveUnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")
_MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "archive_alembic_version"
BEGIN_OPTION = "rijkschat_begin"

DbFailure = Literal["locked", "full", "unavailable"]


def make_engine(url: str, *, busy_timeout_ms: int = 5000) -> AsyncEngine:
    """Create the async engine; SQLite gets WAL, full sync, secure delete and a busy timeout."""
    engine = create_async_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        sync_engine = engine.sync_engine

        @event.listens_for(sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
            cursor = dbapi_connection.cursor()
            for pragma in (
                f"PRAGMA busy_timeout = {int(busy_timeout_ms)}",
                "PRAGMA journal_mode = WAL",
                "PRAGMA synchronous = FULL",
                "PRAGMA secure_delete = ON",
                "PRAGMA cache_size = -131072",
                "PRAGMA wal_autocheckpoint = 16384",
                "PRAGMA temp_store = MEMORY",
            ):
                cursor.execute(pragma)
            cursor.close()

        @event.listens_for(sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def create_private_sqlite_file(url: str) -> None:
    """Create a new SQLite database file readable by its owner only (SQLite gives its WAL
    and shared-memory files the same mode)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return
    path = Path(parsed.database)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _alembic_config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest Alembic revision."""

    def _upgrade(connection: Connection) -> None:
        command.upgrade(_alembic_config(connection), "head")

    async with engine.connect() as conn:
        await conn.run_sync(_upgrade)
        await conn.commit()


async def schema_revision(engine: AsyncEngine) -> str | None:
    def _current(connection: Connection) -> str | None:
        ctx = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def classify(exc: BaseException) -> DbFailure | None:
    """Is this a transient database failure worth a retry (and which)?"""
    if not isinstance(exc, DBAPIError):
        return None
    message = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if "disk is full" in message or "disk full" in message or sqlstate == "53100":
        return "full"
    if "locked" in message or "busy" in message or sqlstate in {"40001", "40P01", "55P03"}:
        return "locked"
    if exc.connection_invalidated or isinstance(exc, OperationalError):
        return "unavailable"
    return None


async def with_retry(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    attempts: int,
    base_delay: float,
) -> T:
    """Run a write transaction, retrying transient failures; raise typed errors when it
    keeps failing. The operation must be a complete transaction: nothing is acknowledged
    unless it returned."""
    last: BaseException | None = None
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except DBAPIError as exc:
            failure = classify(exc)
            if failure is None:
                raise
            last = exc
            log.warning(
                "archive %s failed (%s), attempt %d of %d; nothing was committed",
                what,
                failure,
                attempt,
                attempts,
            )
            if attempt < attempts:
                await asyncio.sleep(base_delay * (2 ** (attempt - 1)))
    assert last is not None
    failure = classify(last)
    log.error("archive %s gave up after %d attempts (%s)", what, attempts, failure)
    if failure == "full":
        raise ArchiveStorageFullError(
            f"archive {what} failed: the database or its disk is full; nothing was committed"
        ) from last
    raise ArchiveUnavailableError(
        f"archive {what} failed after {attempts} attempts ({failure}); nothing was committed"
    ) from last
