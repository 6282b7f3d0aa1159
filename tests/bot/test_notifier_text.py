"""The sender notice's text (Dutch: room, time, how to export the keys) and the options
that `up` passes to the archiver."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from archiver_bot.bot.notifier import notice_text
from server_bridge.settings import Settings
from server_bridge.supervisor import archiver_options


def test_notice_names_room_and_time_and_both_ways_to_export() -> None:
    ts = 1_796_166_613_504  # 2026-12-01T23:10:13.504Z
    one = notice_text("Kabinetsberaad", "!abc:x", ts, 1, zone=UTC)
    assert "het bericht dat u op 01-12-2026 om 23:10 UTC stuurde" in one
    assert "„Kabinetsberaad” (!abc:x)" in one
    assert "Export E2E room keys" in one
    assert "rijkschat keys export" in one
    several = notice_text(None, "!abc:x", ts, 3, zone=UTC)
    assert ("3 berichten die u sinds 01-12-2026 om 23:10 UTC stuurde in het gesprek !abc:x"
            in several)


def test_up_passes_grace_and_notice_switch_to_the_archiver(tmp_path: Path) -> None:
    assert archiver_options(Settings(tmp_path)) == ["--undecryptable-grace", "300"]
    off = Settings(tmp_path, undecryptable_grace_seconds=2.5, sender_notices=False)
    assert archiver_options(off) == ["--undecryptable-grace", "2.5", "--no-sender-notices"]
    off.save()
    loaded = Settings.load(tmp_path)
    assert loaded.undecryptable_grace_seconds == 2.5
    assert loaded.sender_notices is False
