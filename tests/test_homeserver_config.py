"""The generated Synapse configuration carries the sovereign defaults and keeps its secrets."""

from __future__ import annotations

import stat
from pathlib import Path

import yaml

from server_bridge.homeserver.config import prepare_homeserver


def _load(path: Path) -> dict[str, object]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def test_sovereign_defaults_are_in_the_file(tmp_path: Path) -> None:
    layout = prepare_homeserver(root=tmp_path / "hs", server_name="x.localhost", port=18123)
    cfg = _load(layout.config_file)
    text = layout.config_file.read_text()
    (listener,) = cfg["listeners"]  # type: ignore[misc]
    assert listener["bind_addresses"] == ["127.0.0.1"]
    assert [r["names"] for r in listener["resources"]] == [["client"]]  # no federation
    assert cfg["federation_domain_whitelist"] == []
    assert cfg["trusted_key_servers"] == []
    assert cfg["report_stats"] is False
    assert cfg["enable_registration"] is False
    assert cfg["url_preview_enabled"] is False
    assert cfg["push"] == {"enabled": False, "include_content": False}
    assert cfg["enable_metrics"] is False
    assert "default_identity_server" not in cfg
    assert cfg["encryption_enabled_by_default_for_room_type"] == "all"
    assert cfg["experimental_features"] == {"msc2815_enabled": True}  # originals of redactions
    assert cfg["database"]["args"]["database"].startswith(str(tmp_path))  # type: ignore[index]
    # Server notices: the channel through which senders learn their room keys are needed.
    assert cfg["server_notices"]["system_mxid_localpart"] == "rijksarchief-meldingen"  # type: ignore[index]
    assert cfg["server_notices"]["room_name"] == "Meldingen van het Rijksarchief"  # type: ignore[index]
    # Rate limits raised for the pilot, brute-force limit on failed logins kept.
    assert cfg["rc_message"]["per_second"] >= 10  # type: ignore[index]
    assert cfg["rc_login"]["failed_attempts"] == {"per_second": 0.17, "burst_count": 3}  # type: ignore[index]
    assert "# sovereignty" in text or "sovereignty" in text
    for secret_file in (layout.config_file, layout.secrets_file, layout.signing_key_file):
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_secrets_are_generated_once_and_kept(tmp_path: Path) -> None:
    first = prepare_homeserver(root=tmp_path / "hs", server_name="x.localhost", port=18123)
    cfg1 = _load(first.config_file)
    key1 = first.signing_key_file.read_text()
    second = prepare_homeserver(root=tmp_path / "hs", server_name="x.localhost", port=18124)
    cfg2 = _load(second.config_file)
    for name in ("registration_shared_secret", "macaroon_secret_key", "form_secret"):
        assert cfg1[name] == cfg2[name]
        assert len(str(cfg1[name])) >= 32
    assert second.signing_key_file.read_text() == key1
    assert key1.startswith("ed25519 a_")
    assert cfg2["listeners"][0]["port"] == 18124  # type: ignore[index]
    other = prepare_homeserver(root=tmp_path / "hs2", server_name="x.localhost", port=18123)
    assert _load(other.config_file)["macaroon_secret_key"] != cfg1["macaroon_secret_key"]
