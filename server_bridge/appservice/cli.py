"""`rijkschat-server audit`: the completeness report from the ledger and the archive."""

from __future__ import annotations

import json
from pathlib import Path

from server_bridge.appservice.audit import (
    AuditReport,
    StoreArchiveView,
    open_archive_view,
    run_audit,
)
from server_bridge.appservice.ledger import Ledger
from server_bridge.appservice.registration import BridgePaths
from server_bridge.errors import DataDirError
from server_bridge.settings import Settings

EXIT_COMPLETE = 0
EXIT_INCOMPLETE = 1


async def audit_command(
    data_dir: Path, *, as_json: bool = False, room_id: str | None = None, grace_seconds: float = 0
) -> int:
    """Print the report; 0 only when nothing is missing or undecryptable and the ledger
    knows every archived event it should."""
    settings = Settings.load(data_dir)
    paths = BridgePaths.for_data_dir(data_dir)
    if not paths.ledger.exists():
        raise DataDirError(f"{paths.ledger} does not exist (the bridge has not run yet)")
    ledger = await Ledger.open(paths.ledger)
    try:
        view = await open_archive_view(data_dir)
        try:
            report = await run_audit(
                ledger, view, settings.archiver_user_id(), int(grace_seconds * 1000)
            )
        finally:
            if isinstance(view, StoreArchiveView):
                await view.close()
    finally:
        await ledger.close()
    if room_id is not None:
        rooms = [r for r in report.rooms if r.room_id == room_id]
        # One room's undecryptable events are its own; the archive-wide figure does not apply.
        report = AuditReport(report.generated_at, rooms, 0, report.ledger)
    print(json.dumps(report.to_dict(), indent=2) if as_json else report.render(), flush=True)
    return EXIT_COMPLETE if report.complete else EXIT_INCOMPLETE
