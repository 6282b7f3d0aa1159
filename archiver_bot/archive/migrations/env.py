"""Alembic environment of the archive store; run via :func:`archive.engine.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from archiver_bot.archive.schema import metadata

VERSION_TABLE = "archive_alembic_version"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only the programmatic path is supported
    raise RuntimeError("run archive migrations through archiver_bot.archive.engine.migrate()")
_run(connection)
