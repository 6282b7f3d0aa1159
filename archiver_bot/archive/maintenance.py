"""Keep PostgreSQL's planner statistics fresh after bulk ingest.

Autovacuum analyzes on its own schedule; right after a large backfill the planner would
still see an empty table and pick sequential scans for the small lookups of the read path.
The writer therefore runs ``ANALYZE`` on the archive tables once the rows appended since the
last analyze exceed ``max(10,000, 20 %)`` of what the table held then. SQLite needs nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy import text

from .context import StoreContext

log = logging.getLogger(__name__)

_TABLES = ("archive_records", "archive_search", "archive_rooms", "archive_keys")


async def analyze(ctx: StoreContext) -> None:
    if not ctx.is_postgres:
        return
    async with ctx.engine.connect() as conn:
        for table in _TABLES:
            await conn.execute(text(f"ANALYZE {table}"))
        estimate = (
            await conn.execute(
                text("SELECT reltuples FROM pg_class WHERE relname = 'archive_records'")
            )
        ).scalar()
        await conn.commit()
    ctx.rows_at_analyze = max(0, int(estimate or 0))
    ctx.appended_since_analyze = 0
    log.debug("refreshed planner statistics (%d records)", ctx.rows_at_analyze)


async def maybe_analyze(ctx: StoreContext) -> None:
    if not ctx.is_postgres:
        return
    if ctx.appended_since_analyze >= max(10_000, ctx.rows_at_analyze // 5):
        await analyze(ctx)
