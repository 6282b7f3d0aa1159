"""Suggested 5.1.2e spans: exact offsets on real-looking chat messages, and properties."""

from __future__ import annotations

import string
import unicodedata

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from server_bridge.roster import load_roster, parse_roster
from server_bridge.woo.suggest import (
    GROUND,
    IBAN_LENGTHS,
    Suggestion,
    bsn_valid,
    family_name,
    iban_valid,
    names_to_suggest,
    suggest_spans,
)

NAMES = [
    "Beleidsmedewerker Jansen",
    "Beleidsmedewerker de Vries",
    "Van den Berg",
    "Ayşe Çelik",
    "Marieke Jansen-de Vries",
    "Archivaris Bakker",
    "Bos",
]


def found(text: str, names: list[str] | None = None) -> list[tuple[str, str]]:
    """(kind, exact text) of every suggestion, after checking the invariants every result has."""
    result = suggest_spans(text, names or [])
    check_invariants(text, result)
    return [(s.kind, text[s.start : s.end]) for s in result]


def check_invariants(text: str, result: list[Suggestion]) -> None:
    previous_end = 0
    for s in result:
        assert 0 <= previous_end <= s.start < s.end <= len(text)
        assert s.kind in ("email", "telefoon", "iban", "bsn", "naam")
        assert s.ground == GROUND == "5.1.2e"
        assert s.reason
        previous_end = s.end


# --- e-mail ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mail het concept naar p.jansen@minbzk.nl graag.", ["p.jansen@minbzk.nl"]),
        ("Zie <a.de-vries@rijksoverheid.nl>, cc secretariaat@minfin.nl.",
         ["a.de-vries@rijksoverheid.nl", "secretariaat@minfin.nl"]),
        ("mailto:Marieke.Jansen+woo@Gemeente-Utrecht.NL",
         ["Marieke.Jansen+woo@Gemeente-Utrecht.NL"]),
        ("Privé: ayşe.çelik@gmail.com (niet doorsturen)", ["ayşe.çelik@gmail.com"]),
        ("Stuur het naar jan@xn--bcher-kva.example.", ["jan@xn--bcher-kva.example"]),
    ],
)  # fmt: skip
def test_email_addresses_are_found_exactly(text: str, expected: list[str]) -> None:
    assert found(text) == [("email", e) for e in expected]


@pytest.mark.parametrize(
    "text",
    [
        "Vergadering @ 14:00 in zaal 3",
        "Reageer via @piet:rijkschat.nl in de room",
        "zie punt 3.2@bijlage of versie 1.0",
        "e-mail volgt, @iedereen graag reageren",
        "adres: jan@localhost",
    ],
)
def test_no_email_without_an_address(text: str) -> None:
    assert [k for k, _ in found(text) if k == "email"] == []


# --- phone numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bel me even op 06-12345678, ik sta in de file.", ["06-12345678"]),
        ("Mijn nieuwe nummer is 06 1234 5678", ["06 1234 5678"]),
        ("Nummer: 0612345678.", ["0612345678"]),
        ("06 12 34 56 78 of 06-123 456 78", ["06 12 34 56 78", "06-123 456 78"]),
        ("Vanuit Brussel: +31 6 12345678 of +31612345678", ["+31 6 12345678", "+31612345678"]),
        ("0031 6 12345678 werkt ook", ["0031 6 12345678"]),
        ("+31 6 1234 5678, +316-12345678, 06-1234 56 78", ["+31 6 1234 5678", "+316-12345678",
                                                          "06-1234 56 78"]),
        ("tel:+31201234567 of +31 20 123 4567", ["+31201234567", "+31 20 123 4567"]),
        ("Secretariaat 020-1234567, receptie 070 123 4567.", ["020-1234567", "070 123 4567"]),
        ("Kantoor (020) 123 4567 of +31 (0)70 123 45 67",
         ["(020) 123 4567", "+31 (0)70 123 45 67"]),
        ("Wageningen: 0317 123 456, Goes 0113-123456", ["0317 123 456", "0113-123456"]),
        ("bel 06 - 12345678 na vieren", ["06 - 12345678"]),
        ("Contact via 088 123 4567 (algemeen)", ["088 123 4567"]),
        ("tel.06-12345678 / 020-7654321", ["06-12345678", "020-7654321"]),
    ],
)
def test_dutch_phone_numbers_are_found_exactly(text: str, expected: list[str]) -> None:
    assert found(text) == [("telefoon", e) for e in expected]


@pytest.mark.parametrize(
    "text",
    [
        "Overleg op 06-12-2025 14:30 in Den Haag",
        "Overleg op 06 12 2025 14 uur",
        "op 01 02 2026 12 uur, of 02-03-2026 10:00",
        "Woo-verzoek 2026-0412 is binnen, zaak 0412-2026 ook",
        "Kosten € 0.612.345,78 en 1.234.567,89",
        "Ordernummer 061234567890 en 00316123456789 en 0612345678901",
        "kenmerk 2026/0612345678-B",
        "De gratis lijn 0800-1234567 of 0900 1234567 is geen persoonsgegeven",
        "om 06:12:34 en 20:15:00 gestart",
        "versie 0.6.12345678 uitgerold",
        "1 0612345678",
        "0612345678-9 en 0612345678.5",
        "06 1234 5678 9",
        "06-1234-56 78",
        "Postcode 2511 BT, huisnummer 06",
        "ISBN 0-306-40615-2 en 90-6012-345-6",
        "kantoortijden 0900-1700, toestel 1234",
        "+32 2 123 45 67 is een Belgisch nummer",
    ],
)
def test_no_phone_number_in_dates_amounts_cases_and_long_runs(text: str) -> None:
    assert [k for k, _ in found(text) if k == "telefoon"] == []


# --- IBAN ------------------------------------------------------------------------------------

VALID_IBANS = [
    "NL91ABNA0417164300",
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "BE68539007547034",
    "FR1420041010050500013M02606",
    "CH9300762011623852957",
    "NO9386011117947",
]


@pytest.mark.parametrize("iban", VALID_IBANS)
def test_valid_ibans_validate(iban: str) -> None:
    assert iban_valid(iban)
    assert iban_valid(iban.lower())
    grouped = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    assert iban_valid(grouped)


@pytest.mark.parametrize(
    "iban",
    [
        "NL91ABNA0417164301",  # last digit changed
        "NL91ABNA0417164030",  # two digits swapped
        "NL19ABNA0417164300",  # check digits swapped
        "NL91ABNA041716430",  # NL is 18 characters
        "NL91ABNA04171643000",
        "XX91ABNA0417164300",  # no such country
        "NL01ABNA0417164300",  # check digits outside 02-98
        "NL9IABNA0417164300",
        "",
    ],
)
def test_invalid_ibans_do_not_validate(iban: str) -> None:
    assert not iban_valid(iban)
    assert found(f"Graag overmaken naar {iban} o.v.v. factuur") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Declaratie graag naar NL91 ABNA 0417 1643 00 t.n.v. P. Jansen",
         ["NL91 ABNA 0417 1643 00"]),
        ("rekening NL91ABNA0417164300.", ["NL91ABNA0417164300"]),
        ("iban: nl91abna0417164300, dank!", ["nl91abna0417164300"]),
        ("Duitse rekening DE89 3704 0044 0532 0130 00 en Belgische BE68 5390 0754 7034.",
         ["DE89 3704 0044 0532 0130 00", "BE68 5390 0754 7034"]),
        ("(FR14 2004 1010 0505 0001 3M02 606)", ["FR14 2004 1010 0505 0001 3M02 606"]),
    ],
)  # fmt: skip
def test_ibans_are_found_exactly(text: str, expected: list[str]) -> None:
    assert found(text) == [("iban", e) for e in expected]


def test_an_iban_inside_a_longer_token_is_not_found() -> None:
    assert found("REFNL91ABNA0417164300") == []
    assert found("NL91ABNA0417164300X1") == []
    assert found("NL91ABNA0417164300_") == [("iban", "NL91ABNA0417164300")]


# --- BSN -------------------------------------------------------------------------------------


@pytest.mark.parametrize("bsn", ["123456782", "111222333", "999999990", "012345672", "12345672"])
def test_valid_bsns_pass_the_elfproef(bsn: str) -> None:
    assert bsn_valid(bsn)


@pytest.mark.parametrize(
    "bsn", ["123456789", "123456783", "213456782", "000000000", "1234567", "1234567820", "12345678"]
)
def test_invalid_bsns_fail_the_elfproef(bsn: str) -> None:
    assert not bsn_valid(bsn)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Het BSN van de melder is 123456782, graag weglakken", ["123456782"]),
        ("bsn 1234.56.782 staat in de bijlage", ["1234.56.782"]),
        ("Klant met burgerservicenummer 123 456 782 belde", ["123 456 782"]),
        ("nummer 111.222.333; en 999-999-990.", ["111.222.333", "999-999-990"]),
        ("Oud sofinummer: 12345672", ["12345672"]),
        ("BSN nr. 12345672 en zijn vrouw 111222333", ["12345672", "111222333"]),
        ("(012345672)", ["012345672"]),
    ],
)
def test_bsns_are_found_exactly(text: str, expected: list[str]) -> None:
    assert found(text) == [("bsn", e) for e in expected]


@pytest.mark.parametrize(
    "text",
    [
        "BSN 123456789 klopt niet",  # fails the elfproef
        "ordernummer 1234567820 en 9123456782",  # longer digit runs
        "artikel 123456782a",
        "KvK 12345672 (acht cijfers zonder BSN-context)",
        "Budget € 123456782 of EUR 111.222.333",
        "Bedrag 123.456.782,00 overgemaakt",
        "reeks 1 123 456 782 en 123 456 782 9",
        "tijd 123456782:30",
        "000000000",
        "１２３４５６７８２",  # full-width digits are no BSN as written
    ],
)
def test_no_bsn_in_other_numbers(text: str) -> None:
    assert [k for k, _ in found(text) if k == "bsn"] == []


def make_iban(country: str, bban: str) -> str:
    """An IBAN with correct check digits, computed independently of the module under test."""
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def test_no_bsn_inside_an_iban() -> None:
    assert make_iban("NL", "ABNA0417164300") == "NL91ABNA0417164300"
    iban = make_iban("GB", "WEST00000123456782")  # ends in a valid BSN
    assert bsn_valid("123456782")
    for text in (f"IBAN {iban}", f"IBAN {iban[:-9]} {iban[-9:]}"):
        assert found(text) == [("iban", text[5:])]


# --- names -----------------------------------------------------------------------------------


def test_family_name_takes_particles_and_hyphenated_parts() -> None:
    assert family_name("Beleidsmedewerker de Vries") == "de Vries"
    assert family_name("Marieke Jansen-de Vries") == "Jansen-de Vries"
    assert family_name("Marieke Jansen-van der Berg") == "Jansen-van der Berg"
    assert family_name("Van den Berg") == "Van den Berg"
    assert family_name("Jansen, P. (BZK)") == "Jansen"
    assert family_name("Ayşe Çelik") == "Çelik"
    assert family_name("Kees van 't Hof") == "van 't Hof"
    assert family_name("  ") == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Jansen heeft het stuk al gezien", ["Jansen"]),
        ("Vraag het aan beleidsmedewerker jansen", ["beleidsmedewerker jansen"]),
        ("Heb je de Vries gesproken? De Vries was er niet.", ["de Vries", "De Vries"]),
        ("Marieke Jansen-de Vries neemt het over", ["Marieke Jansen-de Vries"]),
        ("Mevrouw Jansen-de Vries en mevrouw Jansen - de Vries", ["Jansen-de Vries",
                                                                 "Jansen - de Vries"]),
        ("Cc: Van den Berg, van den berg en VAN DEN BERG", ["Van den Berg", "van den berg",
                                                          "VAN DEN BERG"]),
        ("Çelik en ÇELİK en Ayşe Çelik", ["Çelik", "ÇELİK", "Ayşe Çelik"]),
        ("Overleg met Bakker; Bos belt terug", ["Bakker", "Bos"]),
        ("Jansen,Bakker:Bos.", ["Jansen", "Bakker", "Bos"]),
        ("Van den\nBerg kwam later", ["Van den\nBerg"]),
    ],
)  # fmt: skip
def test_names_of_officials_are_found_exactly(text: str, expected: list[str]) -> None:
    assert found(text, NAMES) == [("naam", e) for e in expected]


@pytest.mark.parametrize(
    "text",
    [
        "de bakker levert om acht uur",  # the trade, not the official
        "een wandeling door het bos",
        "de vries-dooi is voorbij",
        "Smit-Jansen is iemand anders, net als Jansens en Janssen",
        "Berg en Vries alleen zijn geen naam van de lijst",
        "Marieke belde",  # a given name alone is not matched
        "Celik zonder cedille",
    ],
)
def test_names_negatives(text: str) -> None:
    assert found(text, NAMES) == []


def test_names_match_in_nfd_text_and_from_nfd_names() -> None:
    nfd = unicodedata.normalize("NFD", "Ayşe Çelik belde")
    assert found(nfd, ["Ayşe Çelik"]) == [("naam", unicodedata.normalize("NFD", "Ayşe Çelik"))]
    assert found("Ayşe Çelik belde", [unicodedata.normalize("NFD", "Ayşe Çelik")]) == [
        ("naam", "Ayşe Çelik")
    ]


def test_short_family_names_are_not_matched_alone() -> None:
    names = ["Piet Bos", "Ali Kok"]
    assert found("Bos en Kok zijn er, Piet Bos ook, ALI KOK ook", names) == [
        ("naam", "Piet Bos"),
        ("naam", "ALI KOK"),
    ]


def test_odd_names_are_harmless() -> None:
    names = ["", "   ", "(BZK)", "a.*b", "[", "Jansen (BZK)", "O'Neil", "d'Ancona"]
    assert found("Jansen en a.*b en [ en O’Neil en O'Neil", names) == [
        ("naam", "Jansen"),
        ("naam", "O’Neil"),
        ("naam", "O'Neil"),
    ]


# --- merging ---------------------------------------------------------------------------------


def test_a_name_inside_an_email_address_is_one_email_suggestion() -> None:
    text = "Mail jansen@minbzk.nl of marieke.jansen-de.vries@minbzk.nl"
    assert found(text, NAMES) == [
        ("email", "jansen@minbzk.nl"),
        ("email", "marieke.jansen-de.vries@minbzk.nl"),
    ]


def test_overlaps_merge_into_their_union_with_the_strongest_kind() -> None:
    # "0417 1643 00" alone would look like a landline number; the IBAN covers it.
    text = "NL91 ABNA 0417 1643 00"
    assert found(text) == [("iban", text)]
    # A phone number as the local part of an e-mail address.
    assert found("0612345678@sms.example.nl") == [("email", "0612345678@sms.example.nl")]
    # Two officials whose names overlap: one span.
    assert found("Marieke Jansen-de Vries belt", ["Marieke Jansen-de Vries", "Jansen"]) == [
        ("naam", "Marieke Jansen-de Vries")
    ]


def test_a_real_chat_message_with_everything() -> None:
    text = (
        "Hoi @minister, Jansen heeft de melder gesproken (BSN 123456782, tel. 06-12345678, "
        "mail melder@example.com). Terugbetaling op NL91 ABNA 0417 1643 00 is akkoord; "
        "de Vries belt woensdag 06-12-2025 om 14:30 met de gemeente (020 123 4567)."
    )
    assert found(text, NAMES) == [
        ("naam", "Jansen"),
        ("bsn", "123456782"),
        ("telefoon", "06-12345678"),
        ("email", "melder@example.com"),
        ("iban", "NL91 ABNA 0417 1643 00"),
        ("naam", "de Vries"),
        ("telefoon", "020 123 4567"),
    ]
    result = suggest_spans(text, NAMES)
    assert result[1].as_dict() == {
        "start": text.index("123456782"),
        "end": text.index("123456782") + 9,
        "kind": "bsn",
        "ground": "5.1.2e",
        "reason": "Burgerservicenummer (BSN)",
    }


# --- the roster ------------------------------------------------------------------------------


def test_names_to_suggest_are_officials_and_archivists_not_key_officials() -> None:
    roster = parse_roster(
        {
            "users": [
                {"localpart": "min", "display_name": "Minister Jansen", "role": "key_official"},
                {"localpart": "b1", "display_name": "Piet de Vries", "role": "official"},
                {"localpart": "b2", "display_name": "Ayşe Çelik", "role": "official"},
                {"localpart": "b3", "display_name": "piet  DE vries", "role": "official"},
                {"localpart": "arch", "display_name": "Archivaris Bakker", "role": "archivist"},
            ]
        }
    )
    assert names_to_suggest(roster) == ["Piet de Vries", "Ayşe Çelik", "Archivaris Bakker"]
    demo = names_to_suggest(load_roster(None))
    assert "Beleidsmedewerker Jansen" in demo
    assert "Minister van Binnenlandse Zaken" not in demo
    assert not any("Rijksarchief" in n for n in demo)


# --- properties ------------------------------------------------------------------------------

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Text dense in the characters the detectors look at, so that near misses are common.
DENSE = st.text(alphabet=string.digits * 3 + " +-./()@,:€NLnlBSNbsnEUR\n", max_size=120)
ANY_TEXT = st.text(max_size=200)


@SETTINGS
@given(text=st.one_of(ANY_TEXT, DENSE), names=st.lists(st.text(max_size=20), max_size=4))
@example(text="bsn 1234.56.782 06-12345678 NL91ABNA0417164300", names=["(", "\\", "Jansen"])
def test_never_raises_and_spans_are_sorted_inside_and_disjoint(text: str, names: list[str]) -> None:
    check_invariants(text, suggest_spans(text, names))


def _bsn_strategy() -> st.SearchStrategy[str]:
    def complete(first8: list[int]) -> str:
        check = sum(w * d for w, d in zip((9, 8, 7, 6, 5, 4, 3, 2), first8, strict=True)) % 11
        assume(check != 10 and any(first8))
        return "".join(map(str, first8)) + str(check)

    return st.lists(st.integers(0, 9), min_size=8, max_size=8).map(complete)


def _surrounding(item: st.SearchStrategy[str], labels: list[str]) -> st.SearchStrategy[
    tuple[str, int, int]
]:
    """Random text, a label word, the item, a closing word, random text: (text, start, end)."""

    def build(parts: tuple[str, str, str, str]) -> tuple[str, int, int]:
        prefix, label, value, suffix = parts
        head = f"{prefix} {label} "
        return f"{head}{value} graag {suffix}", len(head), len(head) + len(value)

    return st.tuples(ANY_TEXT, st.sampled_from(labels), item, ANY_TEXT).map(build)


def _assert_found(text: str, start: int, end: int, kind: str) -> None:
    result = suggest_spans(text)
    check_invariants(text, result)
    covering = [s for s in result if s.start <= start and end <= s.end]
    assert covering, f"{text[start:end]!r} not found in {text!r}"
    assert any((s.start, s.end, s.kind) == (start, end, kind) for s in result)


def _bsn_formats(bsn: str) -> list[str]:
    return [bsn, f"{bsn[:3]} {bsn[3:6]} {bsn[6:]}", f"{bsn[:3]}.{bsn[3:6]}.{bsn[6:]}",
            f"{bsn[:4]}.{bsn[4:6]}.{bsn[6:]}"]  # fmt: skip


@SETTINGS
@given(
    case=_surrounding(
        st.tuples(_bsn_strategy(), st.integers(0, 3)).map(lambda t: _bsn_formats(t[0])[t[1]]),
        ["bsn", "BSN:", "nummer", "melder", "zie"],
    )
)
def test_every_valid_bsn_is_found(case: tuple[str, int, int]) -> None:
    _assert_found(*case, "bsn")


@SETTINGS
@given(bsn=_bsn_strategy().filter(lambda b: b.startswith("0")), label=st.sampled_from(
    ["bsn", "BSN:", "sofinummer", "burgerservicenummer is"]))  # fmt: skip
def test_an_old_eight_digit_bsn_is_found_after_its_keyword(bsn: str, label: str) -> None:
    text = f"Het {label} {bsn[1:]} graag weglakken"
    start = text.index(bsn[1:])
    _assert_found(text, start, start + 8, "bsn")


def _elfproef(digits: str) -> bool:
    digits = digits.zfill(9)
    weights = (9, 8, 7, 6, 5, 4, 3, 2, -1)
    return sum(w * int(d) for w, d in zip(weights, digits, strict=True)) % 11 == 0


@SETTINGS
@given(
    digits=st.text(alphabet=string.digits, min_size=8, max_size=9).filter(
        lambda d: not _elfproef(d)
    ),
    label=st.sampled_from(["bsn", "BSN:", "sofinummer", "nummer", ""]),
)
def test_digits_failing_the_elfproef_are_never_a_bsn(digits: str, label: str) -> None:
    for text in (f"{label} {digits} graag", f"{label} {digits[:3]} {digits[3:6]} {digits[6:]}"):
        assert [s for s in suggest_spans(text) if s.kind == "bsn"] == []


def _iban_strategy() -> st.SearchStrategy[str]:
    def build(parts: tuple[str, str, int, bool]) -> str:
        country, body, spacing, lower = parts
        iban = make_iban(country, body[: IBAN_LENGTHS[country] - 4])
        if spacing:
            iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
        return iban.lower() if lower else iban

    return st.tuples(
        st.sampled_from(sorted(IBAN_LENGTHS)),
        st.text(alphabet=string.digits + string.ascii_uppercase, min_size=30, max_size=30),
        st.booleans(),
        st.booleans(),
    ).map(build)


@SETTINGS
@given(case=_surrounding(_iban_strategy(), ["IBAN", "rekening", "naar", "op"]))
@example(case=("x IBAN NL91 ABNA 0417 1643 00 graag y", 7, 29))
def test_every_valid_iban_is_found(case: tuple[str, int, int]) -> None:
    _assert_found(*case, "iban")


@SETTINGS
@given(iban=_iban_strategy(), data=st.data())
def test_an_iban_with_one_digit_changed_is_not_an_iban(iban: str, data: st.DataObject) -> None:
    # Mod 97 catches every single-digit error (a letter read as a digit, O for 0, it cannot).
    positions = [i for i, ch in enumerate(iban) if ch.isdigit()]
    i = data.draw(st.sampled_from(positions))
    replacement = data.draw(st.sampled_from(string.digits).filter(lambda c: c != iban[i]))
    corrupted = iban[:i] + replacement + iban[i + 1 :]
    assert not iban_valid(corrupted)
    assert [s for s in suggest_spans(f"IBAN {corrupted} graag") if s.kind == "iban"] == []


@SETTINGS
@given(case=_surrounding(st.emails(), ["mail", "aan", "cc", "naar"]))
def test_every_valid_email_address_is_found(case: tuple[str, int, int]) -> None:
    _assert_found(*case, "email")


_LETTER = st.characters(categories=["Lu", "Ll"])


@SETTINGS
@given(
    given_name=st.text(alphabet=_LETTER, min_size=2, max_size=12),
    family=st.text(alphabet=_LETTER, min_size=2, max_size=12),
    prefix=ANY_TEXT,
    suffix=ANY_TEXT,
)
def test_every_full_name_is_found(given_name: str, family: str, prefix: str, suffix: str) -> None:
    name = f"{given_name} {family}"
    assume(unicodedata.is_normalized("NFC", name))
    text = f"{prefix} met {name} gesproken {suffix}"
    start = len(prefix) + 5
    result = suggest_spans(text, [name])
    check_invariants(text, result)
    assert any(s.start <= start and start + len(name) <= s.end for s in result)
