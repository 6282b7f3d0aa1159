"""Suggested redactions: personal data in a message text, withheld routinely under Woo 5.1.2e.

Pure functions, no I/O. Every suggestion is only a suggestion: the archivist accepts or
rejects each one. Offsets are Python ``str`` indices into the text given, so
``text[s.start:s.end]`` is exactly what would be blacked out.

What is found (and what deliberately is not):

- **email**: ``local@domain.tld`` (Unicode letters allowed, punycode TLDs too).
- **telefoon**: Dutch numbers, national (``06-12345678``, ``020 123 4567``, ``(020) 123 4567``,
  ``0111 123 456``) or international (``+31 6 12345678``, ``+31 (0)20 ...``, ``0031 ...``).
  The area code is recognised, and the digits after it must be grouped as people write phone
  numbers (8 = 8, 4+4, 4+2+2, 2+2+2+2, 3+3+2, 2+3+3; 7 = 7, 3+4, 3+2+2; 6 = 6, 3+3, 2+2+2), so
  dates (``06-12-2025 14:30``), amounts, times, case numbers (``2026-0412``) and longer digit
  runs are not hits. Service numbers (0800, 090x) are not personal data and are skipped.
- **iban**: any country of the ISO 13616 registry, with or without spaces, any case; the
  length must be the country's and the mod-97 check must hold (check digits 02-98).
- **bsn**: 9 digits (``123456782``, ``123 456 782``, ``123.456.782``, ``1234.56.782``) that pass
  the elfproef (weights 9..2 and -1), not all zeros, not part of a longer digit run, not an
  amount (after ``€``/``EUR``). An old 8-digit number (a BSN whose leading zero was dropped) is
  only a hit right after the word BSN, sofi(nummer) or burgerservicenummer: KvK and case
  numbers have 8 digits too, and one in eleven passes the elfproef by chance.
- **naam**: the display names given (officials who are not key officials, see
  :func:`names_to_suggest`). A full name of more than one word is matched case-insensitively.
  The family name alone (the last word with its particles and hyphenated parts: ``de Vries``,
  ``Van den Berg``, ``Jansen-de Vries``) is matched too when it has at least 4 letters, but only
  where each of its non-particle words starts with a capital in the text, so that the trade
  "bakker" or the word "koning" is not suggested while "Bakker" and "de Vries" are. The family
  name without its particles ("Berg" for "van den Berg") and given names alone are not matched;
  a one-word display name is matched like a family name, whatever its length. Brackets in a
  display name ("Jansen (BZK)") are ignored; "Jansen, P." has the family name "Jansen".
  Names are matched on word boundaries (a hyphen joins words: "Jansen" is not found inside
  "Smit-Jansen"), Unicode-aware, in NFC or NFD form alike.

Overlapping candidates are merged into their union (never less is withheld), and the union
takes the kind of its highest-priority member: iban, email, bsn, telefoon, naam.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from server_bridge.roster import Role, Roster

Kind = Literal["email", "telefoon", "iban", "bsn", "naam"]

GROUND = "5.1.2e"

REASONS: dict[Kind, str] = {
    "email": "E-mailadres (persoonsgegeven)",
    "telefoon": "Telefoonnummer (persoonsgegeven)",
    "iban": "Bankrekeningnummer (IBAN, persoonsgegeven)",
    "bsn": "Burgerservicenummer (BSN)",
    "naam": "Naam van een ambtenaar zonder sleutelfunctie",
}

# When candidates overlap, the union gets the kind that comes first here.
_PRIORITY: tuple[Kind, ...] = ("iban", "email", "bsn", "telefoon", "naam")


@dataclass(frozen=True)
class Suggestion:
    """One suggested redaction: text[start:end] withheld on ground 5.1.2e, with a Dutch reason."""

    start: int
    end: int
    kind: Kind
    ground: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "start": self.start,
            "end": self.end,
            "kind": self.kind,
            "ground": self.ground,
            "reason": self.reason,
        }


def suggest_spans(text: str, names: Iterable[str] = ()) -> list[Suggestion]:
    """Suggested 5.1.2e spans in text: non-overlapping, sorted by start."""
    found: list[tuple[int, int, Kind]] = []
    found += ((s, e, "email") for s, e in _emails(text))
    found += ((s, e, "telefoon") for s, e in _phones(text))
    found += ((s, e, "iban") for s, e in _ibans(text))
    found += ((s, e, "bsn") for s, e in _bsns(text))
    found += ((s, e, "naam") for s, e in _names(text, names))
    return _merge(found)


def names_to_suggest(roster: Roster) -> list[str]:
    """Display names whose mention is suggested for 5.1.2e, in roster order, without duplicates.

    Officials and archivists: civil servants without a public role, whose names are personal
    data. Not key officials (they act in public by their function) and not the archiver bot's
    account (not a person).
    """
    names: list[str] = []
    seen: set[str] = set()
    for entry in roster.entries:
        if entry.role not in (Role.OFFICIAL, Role.ARCHIVIST):
            continue
        key = " ".join(entry.display_name.split()).casefold()
        if key and key not in seen:
            seen.add(key)
            names.append(entry.display_name)
    return names


# ---------------------------------------------------------------------------------------------
# Merging


def _merge(found: list[tuple[int, int, Kind]]) -> list[Suggestion]:
    result: list[Suggestion] = []
    cluster: list[tuple[int, int, Kind]] = []

    def flush() -> None:
        if cluster:
            kind = min((k for _, _, k in cluster), key=_PRIORITY.index)
            start = min(s for s, _, _ in cluster)
            end = max(e for _, e, _ in cluster)
            result.append(Suggestion(start, end, kind, GROUND, REASONS[kind]))
            cluster.clear()

    end = -1
    for item in sorted(set(found), key=lambda f: (f[0], f[1], _PRIORITY.index(f[2]))):
        if item[0] >= end:
            flush()
        cluster.append(item)
        end = max(end, item[1])
    flush()
    return result


def _search_all(
    pattern: re.Pattern[str], text: str, accept: Callable[[re.Match[str]], bool]
) -> Iterator[re.Match[str]]:
    """Matches that accept() approves; after a rejected match, look again one character on."""
    pos = 0
    while (m := pattern.search(text, pos)) is not None:
        if accept(m):
            yield m
            pos = max(m.end(), m.start() + 1)
        else:
            pos = m.start() + 1


# ---------------------------------------------------------------------------------------------
# E-mail

_LOCAL = r"[\w!#$%&'*+/=?^`{|}~\-]"
_EMAIL = re.compile(
    rf"(?<!{_LOCAL})(?<!{_LOCAL}\.)"
    rf"{_LOCAL}+(?:\.{_LOCAL}+)*"
    r"@(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+(?:[^\W\d_]{2,63}|xn--[a-z0-9\-]{1,59})"
    r"(?![\w\-])",
    re.IGNORECASE,
)


def _emails(text: str) -> Iterator[tuple[int, int]]:
    for m in _search_all(_EMAIL, text, lambda m: True):
        yield m.span()


# ---------------------------------------------------------------------------------------------
# Phone numbers

_SEP = r"(?:\ ?[\-./]\ ?|\ )"
_PHONE = re.compile(
    r"(?<![\w+])"
    r"(?:(?:\+|00)31[\ \-.]?(?:\(0\)\ ?|0)?"  # +31 6.., +31 (0)6.., 0031 06..
    r"|\(0(?=[0-9]{1,3}\))"  # (020) 123 4567
    r"|0)"
    rf"(?P<rest>[1-9](?:(?:\)\ ?|{_SEP})?[0-9]){{8}})"
)

# Two-digit area codes (and non-geographic 08x); every other geographic code has three digits.
_TWO_DIGIT_CODES = frozenset(
    "10 13 15 20 23 24 26 30 33 35 36 38 40 43 45 46 50 53 55 58"
    " 70 71 72 73 74 75 76 77 78 79 84 85 87 88".split()
)
_SUBSCRIBER_GROUPS: dict[int, frozenset[tuple[int, ...]]] = {
    8: frozenset({(8,), (4, 4), (2, 2, 2, 2), (3, 3, 2), (2, 3, 3), (4, 2, 2)}),
    7: frozenset({(7,), (3, 4), (3, 2, 2)}),
    6: frozenset({(6,), (3, 3), (2, 2, 2)}),
}
_DIGIT_SEP_BEFORE = re.compile(r"[0-9][ .,\-/:]\Z")
_DIGIT_AFTER = re.compile(r"[.,\-/:]?[0-9]")


def _phone_ok(m: re.Match[str]) -> bool:
    text = m.string
    rest = m.group("rest")
    digits = "".join(ch for ch in rest if ch.isdigit())
    if digits.startswith(("800", "90")):  # service numbers: not personal data
        return False
    code_len = 1 if digits[0] == "6" else 2 if digits[:2] in _TWO_DIGIT_CODES else 3
    parts = re.findall(r"[0-9]+|\D+", rest)
    groups = tuple(len(p) for p in parts[::2])
    seps = parts[1::2]
    has_paren = m.group(0).startswith("(")
    if any(")" in s for s in seps[1:]) or (has_paren != (bool(seps) and ")" in seps[0])):
        return False
    if groups != (9,):
        if groups[0] != code_len or groups[1:] not in _SUBSCRIBER_GROUPS[9 - code_len]:
            return False
        if len(set(seps[1:])) > 1:  # the subscriber's groups share one separator
            return False
    spaced = " " in m.group(0)
    before = text[max(0, m.start() - 2) : m.start()]
    after = text[m.end() : m.end() + 2]
    if _DIGIT_SEP_BEFORE.search(before) or _DIGIT_AFTER.match(after):
        return False
    return not (spaced and re.match(r"\s[0-9]", after))


def _phones(text: str) -> Iterator[tuple[int, int]]:
    for m in _search_all(_PHONE, text, _phone_ok):
        yield m.span()


# ---------------------------------------------------------------------------------------------
# IBAN (ISO 13616)

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

_IBAN_START = re.compile(r"(?<![0-9A-Za-z])[A-Za-z]{2}[0-9]{2}")
_ALNUM = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def iban_valid(iban: str) -> bool:
    """ISO 13616: known country, its length, check digits 02-98 and the mod-97 check."""
    s = "".join(iban.split()).upper()
    if not s.isascii() or not s.isalnum() or IBAN_LENGTHS.get(s[:2]) != len(s):
        return False
    if not s[2:4].isdigit() or not 2 <= int(s[2:4]) <= 98:
        return False
    return int("".join(str(int(ch, 36)) for ch in s[4:] + s[:4])) % 97 == 1


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    for m in _IBAN_START.finditer(text):
        length = IBAN_LENGTHS.get(m.group(0)[:2].upper())
        if length is None:
            continue
        # Take `length` characters from here, allowing one space between any two of them.
        chars, i = 4, m.end()
        while chars < length and i < len(text):
            if text[i] in _ALNUM:
                chars, i = chars + 1, i + 1
            elif text[i] == " " and i + 1 < len(text) and text[i + 1] in _ALNUM:
                i += 1
            else:
                break
        if chars == length and (i == len(text) or text[i] not in _ALNUM):
            if iban_valid(text[m.start() : i]):
                yield m.start(), i


# ---------------------------------------------------------------------------------------------
# BSN (elfproef)

_BSN = re.compile(
    r"(?<!\w)(?:"
    r"(?P<g4>[0-9]{4}\.[0-9]{2}\.[0-9]{3})"
    r"|(?P<g3>[0-9]{3}(?P<sep>[ .\-])[0-9]{3}(?P=sep)[0-9]{3})"
    r"|(?P<plain>[0-9]{9})"
    r"|(?P<eight>[0-9]{8})"
    r")(?!\w)"
)
_BSN_KEYWORD = re.compile(
    r"\b(?:bsn|sofi|sofinummer|burgerservicenummer)(?:\s*(?:nr\.?|nummer|is|:|-))*\s*\Z",
    re.IGNORECASE,
)
_CURRENCY_BEFORE = re.compile(r"(?:€|\beur|\$|£)\s*\Z", re.IGNORECASE)


def bsn_valid(number: str) -> bool:
    """The elfproef on 9 digits (8 digits get their leading zero back); all zeros is not a BSN."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if len(digits) == 8:
        digits = "0" + digits
    if len(digits) != 9 or not digits.isascii() or set(digits) == {"0"}:
        return False
    total = sum(w * int(d) for w, d in zip((9, 8, 7, 6, 5, 4, 3, 2, -1), digits, strict=True))
    return total % 11 == 0


def _bsn_ok(m: re.Match[str]) -> bool:
    text, start, end = m.string, m.start(), m.end()
    if not m.group(0).isascii() or not bsn_valid(m.group(0)):
        return False
    before = text[max(0, start - 2) : start]
    after = text[end : end + 2]
    if _DIGIT_SEP_BEFORE.search(before) or _DIGIT_AFTER.match(after):
        return False
    if " " in m.group(0) and (re.match(r"\s[0-9]", after) or re.search(r"[0-9]\s\Z", before)):
        return False
    if _CURRENCY_BEFORE.search(text[max(0, start - 6) : start]):
        return False
    if m.group("eight") is not None:
        return _BSN_KEYWORD.search(text[max(0, start - 40) : start]) is not None
    return True


def _bsns(text: str) -> Iterator[tuple[int, int]]:
    for m in _search_all(_BSN, text, _bsn_ok):
        yield m.span()


# ---------------------------------------------------------------------------------------------
# Names

_PARTICLES = frozenset(
    "van de der den het 't ’t te ter ten in op aan bij onder over uit voor d' d’ "
    "la le les du des von zu vom zum di da del della dos das do el al bin ibn".split()
)
_HYPHENS = "-\u2010\u2011"
_HY = re.escape(_HYPHENS)  # for character classes


def family_name(display_name: str) -> str:
    """The family name in a display name: its last word with particles and hyphenated parts.

    "Beleidsmedewerker de Vries" -> "de Vries"; "Marieke Jansen-de Vries" -> "Jansen-de Vries";
    "Jansen, P. (BZK)" -> "Jansen".
    """
    name = _strip_brackets(display_name)
    if "," in name:
        name = name.split(",", 1)[0]
    words = name.split()
    if not words:
        return ""
    i = len(words) - 1
    while i > 0 and words[i - 1].casefold() in _PARTICLES:
        i -= 1
    if i > 0:
        last_part = re.split(f"[{_HY}]", words[i - 1])[-1]
        if words[i - 1][-1:] in _HYPHENS or last_part.casefold() in _PARTICLES:
            i -= 1  # "Jansen-de Vries", "Jansen- de Vries"
    return " ".join(words[i:])


def _char_pattern(ch: str) -> str:
    if ch in _HYPHENS:
        return rf"\s*[{_HY}]\s*"
    if ch in "'’":
        return "['’]"
    forms = {ch, unicodedata.normalize("NFD", ch)}
    return "(?:" + "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)) + ")"


def _name_regex(name: str) -> str:
    words = ["".join(_char_pattern(ch) for ch in word) for word in name.split()]
    boundary_before = rf"(?<!\w)(?<!\w[{_HY}])"
    boundary_after = rf"(?!\w)(?![{_HY}]\w)"
    return boundary_before + r"\s+".join(words) + boundary_after


def _strip_brackets(name: str) -> str:
    return re.sub(r"[(\[].*?[)\]]", " ", name)


@lru_cache(maxsize=1024)
def _name_patterns(display_name: str) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """(full-name pattern, family-name-alone pattern) of one display name; None where unused."""
    full = " ".join(unicodedata.normalize("NFC", _strip_brackets(display_name)).split())
    family = unicodedata.normalize("NFC", family_name(display_name))
    if not full:
        return None, None
    one_word = len(full.split()) == 1
    full_re = None if one_word else re.compile(_name_regex(full), re.IGNORECASE)
    family_re = None
    if family and (one_word or (family != full and sum(ch.isalpha() for ch in family) >= 4)):
        family_re = re.compile(_name_regex(family), re.IGNORECASE)
    return full_re, family_re


def _capitalised(found: str) -> bool:
    """Each non-particle word of a family name found in a text starts with a capital."""
    words = re.split(rf"[\s{_HY}]+", unicodedata.normalize("NFC", found))
    return all(w.casefold() in _PARTICLES or w[:1].isupper() for w in words if w)


def _names(text: str, names: Iterable[str]) -> Iterator[tuple[int, int]]:
    for name in names:
        if not isinstance(name, str) or not name.strip():
            continue
        full_re, family_re = _name_patterns(name)
        if full_re is not None:
            for m in full_re.finditer(text):
                if m.end() > m.start():
                    yield m.span()
        if family_re is not None:
            for m in family_re.finditer(text):
                if m.end() > m.start() and _capitalised(m.group(0)):
                    yield m.span()
