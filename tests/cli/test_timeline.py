"""The client's timeline logic on plain events: edits, reactions, redactions, replies."""

from __future__ import annotations

from typing import Any

from client_cli.timeline import TimelineEvent, build, describe

A, B = "@a:test.localhost", "@b:test.localhost"


def ev(event_id: str, sender: str, content: dict[str, Any], ts: int,
       etype: str = "m.room.message", **extra: Any) -> TimelineEvent:
    return TimelineEvent(event_id, sender, ts, etype, content, encrypted=True, **extra)


def text(body: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body}


def edit(target: str, body: str) -> dict[str, Any]:
    return {**text(f"* {body}"), "m.new_content": text(body),
            "m.relates_to": {"rel_type": "m.replace", "event_id": target}}


def test_the_latest_edit_by_the_sender_wins_and_is_marked() -> None:
    events = [
        ev("$1", A, text("eerste"), 1),
        ev("$2", A, edit("$1", "tweede"), 2),
        ev("$3", A, edit("$1", "derde"), 3),
        ev("$4", B, edit("$1", "van een ander"), 4),  # not the sender: ignored
    ]
    [message] = build(events)
    assert message.body == "derde"
    assert message.edited
    assert message.edited_ts == 3


def test_reactions_are_gathered_once_per_sender_and_redacted_ones_dropped() -> None:
    react = {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$1", "key": "👍"}}
    events = [
        ev("$1", A, text("hallo"), 1),
        ev("$2", B, react, 2, etype="m.reaction"),
        ev("$3", B, react, 3, etype="m.reaction"),
        ev("$4", A, {}, 4, etype="m.reaction", redacted_by="$5"),
    ]
    [message] = build(events)
    assert message.reactions == {"👍": [B]}


def test_redacted_and_undecryptable_messages_are_shown_as_such() -> None:
    events = [
        ev("$1", A, {}, 1, redacted_by=B),
        ev("$2", B, {}, 2, etype="m.room.encrypted", undecryptable=True),
        ev("$3", A, {"membership": "join"}, 0, etype="m.room.member", state_key=A),
    ]
    redacted, unknown = build(events)
    assert redacted.redacted
    assert redacted.body == "[verwijderd]"
    assert redacted.redacted_by == B
    assert unknown.undecryptable
    assert unknown.body == "[kan niet ontsleutelen]"


def test_replies_point_at_their_message_and_tail_describes_changes() -> None:
    reply = {**text("ja"), "m.relates_to": {"m.in_reply_to": {"event_id": "$1"}}}
    [first, answer] = build([ev("$1", A, text("vraag?"), 1), ev("$2", B, reply, 2)])
    assert answer.reply_to == "$1"
    assert describe(ev("$3", A, edit("$1", "nieuw"), 3)) == "bewerkte $1: nieuw"
    assert describe(ev("$4", A, {"redacts": "$1"}, 4, etype="m.room.redaction")) == \
        "verwijderde $1"
    assert describe(ev("$5", A, {"membership": "join"}, 5, etype="m.room.member")) is None
    assert first.body == "vraag?"
