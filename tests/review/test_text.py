"""The pure presentation helpers: the allow-list sanitiser, hit highlighting, transcripts."""

from __future__ import annotations

import pytest

from archiver_bot.archive import StoredEvent
from server_bridge.review.service import page_token_param, query_param, room_id_param
from server_bridge.review.text import highlight, sanitize_html, strip_reply_fallback
from server_bridge.review.transcript import Names, build_transcript
from server_bridge.web.api_errors import ApiError


@pytest.mark.parametrize(
    ("html", "kept", "gone"),
    [
        ("<b>vet</b><script>alert(1)</script>", "<b>vet</b>", "script"),
        ('<img src=x onerror="alert(1)">tekst', "tekst", "img"),
        ('<a href="javascript:alert(1)">link</a>', ">link</a>", "javascript"),
        ('<a href="https://rijksoverheid.nl" onclick="x()">rijk</a>',
         'href="https://rijksoverheid.nl"', "onclick"),
        ('<p style="background:url(x)">p</p>', "<p>p</p>", "style"),
        ("<mx-reply><blockquote>oud</blockquote></mx-reply>antwoord", "antwoord", "oud"),
        ('<svg><script>alert(1)</script></svg>', "", "alert"),
        ('<iframe src="https://x"></iframe><form action=x><input></form>ok', "ok", "iframe"),
        ("<details open><summary>s</summary>d</details>", "<summary>s</summary>", "open"),
    ],
)
def test_the_sanitiser_keeps_formatting_and_drops_everything_active(
    html: str, kept: str, gone: str
) -> None:
    clean = str(sanitize_html(html))
    assert kept in clean
    assert gone not in clean.lower()


def test_links_get_noopener_noreferrer() -> None:
    assert 'rel="noopener noreferrer nofollow"' in str(sanitize_html('<a href="https://a">a</a>'))


def test_highlight_matches_like_the_archive_search() -> None:
    segments = highlight("Één café-overleg over de e-mail en auto's", {"cafe", "email", "autos"})
    hits = [text for text, hit in segments if hit]
    assert hits == ["café-overleg", "e-mail", "auto's"]  # a hyphenated word is one hit
    assert "".join(text for text, _ in segments) == "Één café-overleg over de e-mail en auto's"
    assert highlight("<script>", {"script"}) == [("<", False), ("script", True), (">", False)]


def test_reply_fallback_is_stripped() -> None:
    assert strip_reply_fallback("> <@a:b> oud\n> meer\n\nnieuw") == "nieuw"
    assert strip_reply_fallback("gewoon") == "gewoon"


def _event(n: int, content: dict[str, object], **kw: object) -> StoredEvent:
    values: dict[str, object] = {
        "event_id": f"$e{n}", "room_id": "!r", "sender": "@a:x", "sender_device": None,
        "origin_server_ts": 1_767_254_400_000 + n * 1000, "type": "m.room.message",
        "state_key": None, "content": content, "decryption": "decrypted", "relates_to": None,
        "redacted_by": None, "edits": [], "has_attachment": False,
    }
    values.update(kw)
    return StoredEvent(**values)  # type: ignore[arg-type]


def test_transcript_folds_edits_reactions_and_redactions_into_their_message() -> None:
    original = _event(1, {"msgtype": "m.text", "body": "eerst"}, edits=["$e2"],
                      reactions=["$e3"], redacted_by="$e4")
    edit = _event(2, {"body": "* daarna", "m.new_content": {"body": "daarna"},
                      "m.relates_to": {"rel_type": "m.replace", "event_id": "$e1"}})
    reaction = _event(3, {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$e1",
                                           "key": "ok"}}, type="m.reaction", sender="@b:x")
    redaction = _event(4, {"reason": "oeps"}, type="m.room.redaction")
    lines = build_transcript([original, edit, reaction, redaction], {},
                             Names({"@a:x": "Anna", "@b:x": "Bert"}), "/b/{}")
    assert len(lines) == 1
    line = lines[0]
    assert line.sender == "Anna"
    assert line.text is not None
    assert line.text.plain == "daarna"
    assert [v.text.plain for v in line.history] == ["eerst", "daarna"]
    assert [(r.key, r.count, r.names) for r in line.reactions] == [("ok", 1, ["Bert"])]
    assert line.redacted_by == "$e4"
    assert "oeps" in line.redaction_note


@pytest.mark.parametrize("value", ["!abc", "!abc:server.nl", "!aXjrp_XaByQM5Vsm3k00sD306"])
def test_room_ids_of_every_room_version_are_accepted(value: str) -> None:
    assert room_id_param(value) == value


@pytest.mark.parametrize("value", ["abc", "!", "!a b", "!a/b", "!" + "x" * 300, ""])
def test_malformed_room_ids_are_refused(value: str) -> None:
    with pytest.raises(ApiError) as info:
        room_id_param(value)
    assert info.value.status == 400


@pytest.mark.parametrize("token", ["%%", "a" * 129, "bm90LWEtdG9rZW4", "MS4y" + "==", "=="])
def test_forged_pagination_tokens_are_refused_before_the_store(token: str) -> None:
    with pytest.raises(ApiError):
        page_token_param(token)


def test_search_queries_are_bounded() -> None:
    assert query_param("  begroting  ") == "begroting"
    for bad in ("", "   ", "!!!", "x" * 501, "w " * 17):
        with pytest.raises(ApiError):
            query_param(bad)


@pytest.mark.parametrize(
    "content",
    [
        {"body": 42, "msgtype": ["m.text"]},
        {"body": "x", "m.relates_to": "not an object"},
        {"body": "x", "m.relates_to": {"m.in_reply_to": "nope", "rel_type": 7}},
        {"body": "x", "format": "org.matrix.custom.html", "formatted_body": {"a": 1}},
        {"msgtype": "m.file", "body": None, "info": "big", "filename": ["a"]},
        {"msgtype": "m.image", "info": {"mimetype": 5, "size": "groot"}},
        {},
    ],
)
def test_odd_content_never_breaks_a_transcript(content: dict[str, object]) -> None:
    target = _event(1, {"body": "doel"}, reactions=["$e2"], edits=["$e3"], redacted_by="$e4")
    odd = [
        _event(2, content, type="m.reaction"),
        _event(3, {**content, "m.new_content": content.get("body")}),
        _event(4, content, type="m.room.redaction"),
        _event(5, content),
        _event(6, content, type="m.room.member", state_key="@b:x"),
        _event(7, content, type="m.room.name", state_key=""),
    ]
    lines = build_transcript([target, *odd], {}, Names({}), "/b/{}")
    assert lines
