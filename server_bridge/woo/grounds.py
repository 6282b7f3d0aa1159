"""The Woo's grounds for withholding information, as data: code, article and the Dutch
description the UI's picker and the publication show.

Codes follow article, member and letter: ``5.1.1c`` is art. 5.1 lid 1 onder c (absolute),
``5.1.2e`` art. 5.1 lid 2 onder e (relative, weighed against the public interest),
``5.1.5`` art. 5.1 lid 5, ``5.2`` art. 5.2 (persoonlijke beleidsopvattingen) and ``5.3``
art. 5.3 (ouderdom van de informatie).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class UnknownGroundError(ValueError):
    """One or more codes are not Woo grounds; ``codes`` lists them."""

    def __init__(self, codes: list[str]) -> None:
        super().__init__("unknown Woo ground code(s): " + ", ".join(codes))
        self.codes = codes


@dataclass(frozen=True)
class Ground:
    code: str
    #: the article as cited in a decision, e.g. "art. 5.1, tweede lid, onder e, Woo"
    article: str
    #: a few words for pickers and black boxes' legends
    title: str
    #: the text of the ground (paraphrased from the Woo)
    description: str
    #: absolute grounds (lid 1) need no weighing of interests
    absolute: bool = False


def _lid1(letter: str, title: str, description: str) -> Ground:
    return Ground(
        f"5.1.1{letter}", f"art. 5.1, eerste lid, onder {letter}, Woo", title, description, True
    )


def _lid2(letter: str, title: str, description: str) -> Ground:
    return Ground(
        f"5.1.2{letter}", f"art. 5.1, tweede lid, onder {letter}, Woo", title, description
    )


GROUNDS: tuple[Ground, ...] = (
    _lid1(
        "a",
        "eenheid van de Kroon",
        "Het verstrekken van de informatie zou de eenheid van de Kroon in gevaar kunnen brengen.",
    ),
    _lid1(
        "b",
        "veiligheid van de Staat",
        "Het verstrekken van de informatie zou de veiligheid van de Staat kunnen schaden.",
    ),
    _lid1(
        "c",
        "vertrouwelijke bedrijfs- en fabricagegegevens",
        "De informatie betreft bedrijfs- en fabricagegegevens die door natuurlijke personen of "
        "rechtspersonen vertrouwelijk aan de overheid zijn meegedeeld.",
    ),
    _lid1(
        "d",
        "bijzondere persoonsgegevens",
        "De informatie betreft bijzondere persoonsgegevens als bedoeld in paragraaf 1 van "
        "hoofdstuk 3 van de Algemene verordening gegevensbescherming.",
    ),
    _lid1(
        "e",
        "nationale identificatienummers",
        "De informatie betreft nationale identificatienummers (zoals het "
        "burgerservicenummer) als bedoeld in artikel 46 van de Uitvoeringswet AVG.",
    ),
    _lid2(
        "a",
        "internationale betrekkingen",
        "Het belang van de betrekkingen van Nederland met andere staten en met internationale "
        "organisaties weegt zwaarder dan het belang van openbaarmaking.",
    ),
    _lid2(
        "b",
        "economische of financiële belangen",
        "Het belang van de economische of financiële belangen van de Staat, andere "
        "publiekrechtelijke lichamen of bestuursorganen weegt zwaarder.",
    ),
    _lid2(
        "c",
        "opsporing en vervolging van strafbare feiten",
        "Het belang van de opsporing en vervolging van strafbare feiten weegt zwaarder.",
    ),
    _lid2(
        "d",
        "inspectie, controle en toezicht",
        "Het belang van inspectie, controle en toezicht door bestuursorganen weegt zwaarder.",
    ),
    _lid2(
        "e",
        "persoonlijke levenssfeer",
        "Het belang van de eerbiediging van de persoonlijke levenssfeer weegt zwaarder dan het "
        "belang van openbaarmaking.",
    ),
    _lid2(
        "f",
        "concurrentiegevoelige bedrijfs- en fabricagegegevens",
        "Het belang van de bescherming van andere dan vertrouwelijk meegedeelde, "
        "concurrentiegevoelige bedrijfs- en fabricagegegevens weegt zwaarder.",
    ),
    _lid2(
        "g",
        "bescherming van het milieu",
        "Het belang van de bescherming van het milieu waarop de informatie betrekking heeft "
        "weegt zwaarder.",
    ),
    _lid2(
        "h",
        "beveiliging van personen en bedrijven",
        "Het belang van de beveiliging van personen en bedrijven en het voorkomen van sabotage "
        "weegt zwaarder.",
    ),
    _lid2(
        "i",
        "goed functioneren van de Staat",
        "Het belang van het goed functioneren van de Staat, andere publiekrechtelijke lichamen "
        "of bestuursorganen weegt zwaarder.",
    ),
    Ground(
        "5.1.5",
        "art. 5.1, vijfde lid, Woo",
        "onevenredige benadeling",
        "Het verstrekken van de informatie zou leiden tot onevenredige benadeling van een "
        "ander belang dan de in het tweede lid genoemde belangen.",
    ),
    Ground(
        "5.2",
        "art. 5.2 Woo",
        "persoonlijke beleidsopvattingen",
        "De informatie bevat persoonlijke beleidsopvattingen in documenten opgesteld ten "
        "behoeve van intern beraad.",
    ),
    Ground(
        "5.3",
        "art. 5.3 Woo",
        "ouderdom van de informatie",
        "De informatie is ouder dan vijf jaar; het gewicht van de belangen om haar niet te "
        "verstrekken is opnieuw gewogen.",
    ),
)

_BY_CODE: dict[str, Ground] = {g.code: g for g in GROUNDS}


def normalise(code: str) -> str:
    """``" 5.1.2E "`` -> ``"5.1.2e"`` (surrounding space and the letter's case only)."""
    return code.strip().lower()


def is_ground(code: str) -> bool:
    return isinstance(code, str) and normalise(code) in _BY_CODE


def ground(code: str) -> Ground:
    """The ground of a code; :class:`UnknownGroundError` when it is none."""
    found = _BY_CODE.get(normalise(code)) if isinstance(code, str) else None
    if found is None:
        raise UnknownGroundError([str(code)])
    return found


def validate_grounds(codes: Iterable[object]) -> list[str]:
    """The normalised codes in order without repeats; :class:`UnknownGroundError` naming
    every code that is not a Woo ground (or not a text)."""
    clean: list[str] = []
    unknown: list[str] = []
    for code in codes:
        if not isinstance(code, str) or normalise(code) not in _BY_CODE:
            unknown.append(str(code)[:40])
        elif normalise(code) not in clean:
            clean.append(normalise(code))
    if unknown:
        raise UnknownGroundError(unknown)
    return clean


def label(code: str) -> str:
    """``"5.1.2e persoonlijke levenssfeer"`` (the code alone when unknown)."""
    found = _BY_CODE.get(normalise(code))
    return code if found is None else f"{found.code} {found.title}"


__all__ = [
    "GROUNDS",
    "Ground",
    "UnknownGroundError",
    "ground",
    "is_ground",
    "label",
    "normalise",
    "validate_grounds",
]
