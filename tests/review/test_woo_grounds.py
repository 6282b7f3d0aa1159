"""The Woo's ground codes as data, their lookup and validation, and cutting a text at spans."""

from __future__ import annotations

import pytest

from archiver_bot.archive import WooSpan
from server_bridge.woo.grounds import (
    GROUNDS,
    UnknownGroundError,
    ground,
    is_ground,
    label,
    validate_grounds,
)
from server_bridge.woo.service import segments


def test_every_ground_of_articles_5_1_to_5_3_is_there_once() -> None:
    codes = [g.code for g in GROUNDS]
    assert len(codes) == len(set(codes))
    expected = {f"5.1.1{c}" for c in "abcde"} | {f"5.1.2{c}" for c in "abcdefghi"}
    assert expected | {"5.1.5", "5.2", "5.3"} == set(codes)
    assert all(g.absolute == g.code.startswith("5.1.1") for g in GROUNDS)
    assert all(g.description and g.title and "Woo" in g.article for g in GROUNDS)


def test_lookup_and_validation() -> None:
    assert ground("5.1.2e").title == "persoonlijke levenssfeer"
    assert ground(" 5.1.2E ").code == "5.1.2e"
    assert ground("5.2").title == "persoonlijke beleidsopvattingen"
    assert is_ground("5.1.1c")
    assert not is_ground("5.1.2j")
    assert label("5.1.2e") == "5.1.2e persoonlijke levenssfeer"
    assert validate_grounds(["5.1.2E", "5.2", "5.1.2e"]) == ["5.1.2e", "5.2"]
    with pytest.raises(UnknownGroundError) as caught:
        validate_grounds(["5.2", "5.1.2z", 7])
    assert caught.value.codes == ["5.1.2z", "7"]
    with pytest.raises(UnknownGroundError):
        ground("art. 10")


def test_segments_withhold_exactly_the_spans() -> None:
    text = "Bel Jan op 0612345678 of jan@example.nl"
    spans = [WooSpan(25, 39, "5.1.2e"), WooSpan(11, 21, "5.1.2e")]
    pieces = segments(text, spans)
    assert pieces == [
        ("Bel Jan op ", None), ("0612345678", "5.1.2e"), (" of ", None),
        ("jan@example.nl", "5.1.2e"),
    ]
    assert "".join(p for p, _ in pieces) == text
