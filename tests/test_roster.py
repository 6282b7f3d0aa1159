from __future__ import annotations

from pathlib import Path

import pytest

from server_bridge.errors import RosterError
from server_bridge.roster import Role, load_roster, parse_roster


def test_demo_roster_has_every_role() -> None:
    roster = load_roster(None)
    assert roster.by_role(Role.KEY_OFFICIAL)
    assert len(roster.by_role(Role.OFFICIAL)) >= 2
    assert roster.by_role(Role.ARCHIVIST)
    assert any(e.role is Role.ARCHIVER for e in roster.with_archiver())


@pytest.mark.parametrize(
    ("users", "expected"),
    [
        ([{"localpart": "a", "role": "minister"}], "user #1 ('a'): unknown role 'minister'"),
        (
            [{"localpart": "a", "role": "official"}, {"localpart": "a", "role": "official"}],
            "user #2 ('a'): duplicate localpart 'a'",
        ),
        ([{"localpart": "Bad Name", "role": "official"}], "invalid localpart 'Bad Name'"),
        ([{"localpart": "rijksarchief", "role": "official"}], "reserved for the archiver"),
        ([{"localpart": "a", "role": "archiver"}], "unknown role 'archiver'"),
        ([{"localpart": "a", "role": "official", "rank": 1}], "unknown field(s) rank"),
        ([{"localpart": "a", "role": "official", "display_name": " "}], "display_name"),
        ([], "non-empty [[users]]"),
    ],
)
def test_bad_roster_entries_are_named(users: list[dict[str, object]], expected: str) -> None:
    with pytest.raises(RosterError) as err:
        parse_roster({"users": users}, "roster x.toml")
    assert expected in str(err.value)
    assert str(err.value).startswith("roster x.toml")


def test_roster_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RosterError, match="cannot read"):
        load_roster(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[users]\n")
    with pytest.raises(RosterError, match="invalid TOML"):
        load_roster(bad)
    good = tmp_path / "good.toml"
    good.write_text('[[users]]\nlocalpart = "x"\nrole = "key_official"\ndisplay_name = "X"\n')
    assert load_roster(good).entries[0].role is Role.KEY_OFFICIAL
