"""The bridge's audit API (archivists only) and its metrics endpoint (token from a 0600 file)."""

from __future__ import annotations

import json
import stat

from server_bridge.appservice.registration import BridgePaths
from tests.bridge.conftest import Stack


async def get(stack: Stack, path: str, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with stack.session.get(f"{stack.settings.bridge_url}{path}", headers=headers) as resp:
        return resp.status, await resp.text()


async def test_the_audit_report_is_for_archivists_only(stack: Stack) -> None:
    path = "/api/v1/audit/completeness"
    assert (await get(stack, path, None))[0] == 401
    assert (await get(stack, path, "not-a-real-token"))[0] == 401
    minister = await stack.user("minister")
    status, body = await get(stack, path, minister.token)
    assert status == 403, body
    archivist = await stack.user("archivaris")
    status, body = await get(stack, path, archivist.token)
    assert status == 200, body
    report = json.loads(body)
    assert {"complete", "totals", "rooms"} <= set(report)
    assert (await get(stack, path + "?grace_seconds=soon", archivist.token))[0] == 400


async def test_metrics_need_the_token_from_the_data_dir(stack: Stack) -> None:
    token_file = BridgePaths.for_data_dir(stack.settings.data_dir).metrics_token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert (await get(stack, "/metrics", None))[0] == 401
    assert (await get(stack, "/metrics", "wrong"))[0] == 403
    status, text = await get(stack, "/metrics", token)
    assert status == 200
    for name in (
        "rijkschat_audit_missing_events",
        "rijkschat_audit_undecryptable_events",
        "rijkschat_audit_complete",
        "rijkschat_ledger_events",
        "rijkschat_ledger_transactions_total",
    ):
        assert name in text
    assert token not in text
    assert stack.hs_token not in text
