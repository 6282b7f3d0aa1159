"""Safe text for the review UI: the allow-list HTML sanitiser for ``formatted_body``,
search-hit highlighting and Dutch date formatting (pure functions)."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import nh3
from markupsafe import Markup

# The Matrix spec's suggested subset of HTML for formatted_body, minus anything that loads
# or runs something: no img (would fetch), no style/class, no font colours.
ALLOWED_TAGS = frozenset(
    {
        "b", "strong", "i", "em", "u", "s", "del", "strike", "sup", "sub", "code", "pre",
        "blockquote", "p", "br", "hr", "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5",
        "h6", "table", "thead", "tbody", "tr", "th", "td", "caption", "span", "div", "details",
        "summary",
    }
)
ALLOWED_ATTRIBUTES = {"a": {"href"}, "ol": {"start"}}
ALLOWED_URL_SCHEMES = frozenset({"https", "http", "mailto"})
MAX_HTML_CHARS = 65_536


def sanitize_html(html: str) -> Markup:
    """``formatted_body`` through the allow-list: unknown tags are dropped (their text kept),
    script/style and Matrix reply fallbacks dropped with their content, every attribute but
    a link target removed, links get rel=noopener noreferrer nofollow."""
    cleaned = nh3.clean(
        html[:MAX_HTML_CHARS],
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style", "mx-reply", "template", "iframe", "object"},
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(ALLOWED_URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return Markup(cleaned)  # noqa: S704 - the sanitiser's output is the allow-listed HTML


_WORD = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")


def normalise_word(word: str) -> str:
    folded = unicodedata.normalize("NFKD", word.casefold().replace("\u0133", "ij"))
    return "".join(c for c in folded if not unicodedata.combining(c))


def _forms(word: str) -> set[str]:
    norm = normalise_word(word).replace("'", "").replace("\u2019", "")
    forms = {norm.replace("-", "")}
    if "-" in norm:
        forms.update(p for p in norm.split("-") if p)
    return forms


def highlight(text: str, terms: set[str] | frozenset[str]) -> list[tuple[str, bool]]:
    """``text`` split into (piece, is_hit) segments: the words that match a search term (as
    the archive's search normalises them). The template escapes every piece."""
    if not terms:
        return [(text, False)]
    segments: list[tuple[str, bool]] = []
    pos = 0
    for match in _WORD.finditer(text):
        if _forms(match.group()) & terms:
            if match.start() > pos:
                segments.append((text[pos : match.start()], False))
            segments.append((match.group(), True))
            pos = match.end()
    if pos < len(text):
        segments.append((text[pos:], False))
    return segments


def strip_reply_fallback(body: str) -> str:
    """Drop the ``> <@user> quoted`` lines a reply carries for old clients."""
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> "):
        return body
    while lines and lines[0].startswith(">"):
        lines.pop(0)
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines)


try:
    LOCAL_ZONE: timezone | ZoneInfo = ZoneInfo("Europe/Amsterdam")
except ZoneInfoNotFoundError:  # a machine without tzdata: show UTC rather than fail
    LOCAL_ZONE = UTC

_DAYS = ("ma", "di", "wo", "do", "vr", "za", "zo")


def format_ts(ts_ms: int | None, *, with_day: bool = True) -> str:
    if ts_ms is None:
        return "–"
    moment = datetime.fromtimestamp(ts_ms / 1000, LOCAL_ZONE)
    text = moment.strftime("%d-%m-%Y %H:%M:%S")
    return f"{_DAYS[moment.weekday()]} {text}" if with_day else text


def format_short(ts_ms: int | None) -> str:
    if ts_ms is None:
        return "–"
    return datetime.fromtimestamp(ts_ms / 1000, LOCAL_ZONE).strftime("%d-%m-%Y %H:%M")


def format_time(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, LOCAL_ZONE).strftime("%H:%M")


def format_day(ts_ms: int) -> str:
    moment = datetime.fromtimestamp(ts_ms / 1000, LOCAL_ZONE)
    return f"{_DAYS[moment.weekday()]} {moment.strftime('%d-%m-%Y')}"


def date_to_ms(value: str, *, end_of_day: bool) -> int:
    """A ``YYYY-MM-DD`` date (local time) as ms since the epoch; ValueError if malformed."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("not a date")
    day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=LOCAL_ZONE)
    if end_of_day:
        day = day.replace(hour=23, minute=59, second=59, microsecond=999_000)
    return int(day.timestamp() * 1000)
