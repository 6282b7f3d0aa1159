"""`rijkschat archive woo ...` against the real stack: Synapse, the archiver bot (holding the
archive's writer lock) and the bridge (a reader that appends the Woo records)."""

from __future__ import annotations

import secrets

import pytest

from tests.cli.conftest import Cli, one_error_line
from tests.cli.test_cli import archived

pytestmark = pytest.mark.synapse


@pytest.fixture(scope="module")
async def woo_room(clis: dict[str, Cli]) -> str:
    room_id = (await clis["minister"].run("create", f"Woo {secrets.token_hex(3)}",
                                          "--invite", "ambtenaar1")).line
    await clis["ambtenaar1"].run("join", room_id)
    return room_id


async def test_create_list_show_and_assess(clis: dict[str, Cli], woo_room: str) -> None:
    word = f"stikstof{secrets.token_hex(4)}"
    body = f"Bel Jan op 0612345678 over de {word}"
    event_id = (await clis["minister"].run("send", woo_room, body)).line
    other = (await clis["ambtenaar1"].run("send", woo_room, "Lunch om twaalf")).line
    archivist = clis["archivaris"]
    await archived(archivist, word)
    for _ in range(60):  # the second message is captured in the same sync or the next
        shown = (await archivist.run("archive", "show", woo_room, "--json")).json()
        if other in {e["event_id"] for e in shown}:
            break
    reference = f"2026-{secrets.token_hex(3)}"

    created = (await archivist.run(
        "archive", "woo", "create", reference, "--title", "Stikstofchats", "--room", woo_room,
        "--received", "2026-11-30", "--query", word, "--json",
    )).json()
    assert created["reference"] == reference
    assert created["rooms"] == [woo_room]
    assert created["query"] == word
    text = (await archivist.run("archive", "woo", "create", f"{reference}-b", "--title", "t",
                                "--room", woo_room, "--from", "2026-01-01",
                                "--to", "2030-12-31")).out
    assert "geregistreerd" in text

    listed = (await archivist.run("archive", "woo", "list", "--json")).json()
    assert {reference, f"{reference}-b"} <= {r["reference"] for r in listed}
    assert reference in (await archivist.run("archive", "woo", "list")).out

    case = (await archivist.run("archive", "woo", "show", reference, "--json")).json()
    assert [d["event_id"] for d in case["documents"]] == [event_id]  # the query's scope
    assert case["documents"][0]["text"] == body
    wide = (await archivist.run("archive", "woo", "show", f"{reference}-b", "--json")).json()
    assert {event_id, other} <= {d["event_id"] for d in wide["documents"]}

    start = body.index("0612345678")
    saved = (await archivist.run(
        "archive", "woo", "assess", reference, event_id, "--decision", "deels_openbaar",
        "--ground", "5.1.2e", "--span", f"{start}:{start + 10}:5.1.2e",
        "--note", "telefoonnummer", "--json",
    )).json()
    assert saved["decision"] == "deels_openbaar"
    assert saved["spans"] == [{"start": start, "end": start + 10, "ground": "5.1.2e"}]
    out = (await archivist.run("archive", "woo", "assess", reference, event_id,
                               "--decision", "niet_openbaar", "--ground", "5.2")).out
    assert "vastgelegd" in out
    case = (await archivist.run("archive", "woo", "show", reference, "--json")).json()
    document = case["documents"][0]
    assert document["assessment"]["decision"] == "niet_openbaar"
    assert [h["decision"] for h in document["history"]] == ["deels_openbaar", "niet_openbaar"]
    table = (await archivist.run("archive", "woo", "show", reference)).out
    assert "niet openbaar (5.2)" in table
    assert event_id in table

    # refused input: one error line, nothing changed
    for args, words in [
        (("assess", reference, event_id, "--decision", "niet_openbaar", "--ground", "9.9"),
         "unknown Woo ground"),
        (("assess", reference, event_id, "--decision", "deels_openbaar", "--ground", "5.1.2e",
          "--span", "0:999:5.1.2e"), "outside the message text"),
        (("assess", reference, other, "--decision", "openbaar"), "scope"),
        (("assess", "2026-bestaatniet", event_id, "--decision", "openbaar"),
         "no Woo request"),
        (("create", reference, "--title", "t", "--room", woo_room), "exists already"),
    ]:
        error = one_error_line(await archivist.run("archive", "woo", *args, ok=False))
        assert words in error, error
    bad_span = await archivist.run("archive", "woo", "assess", reference, event_id,
                                   "--decision", "deels_openbaar", "--span", "1-5", ok=False)
    assert bad_span.code == 2
    assert "START:END:GROUND" in one_error_line(bad_span)
    after = (await archivist.run("archive", "woo", "show", reference, "--json")).json()
    assert after["documents"][0]["history"] == document["history"]
    assert len((await archivist.run("archive", "woo", "list", "--json")).json()) == len(listed)

    refused = one_error_line(await clis["ambtenaar1"].run("archive", "woo", "list", ok=False))
    assert "archivists only" in refused
