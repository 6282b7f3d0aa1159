"""A Woo request's documents covering every case the package must render: plain and
formatted text, an edit, a reply, a Matrix redaction, an image, a PDF attachment, and
assessments of every kind. Withheld strings are collected in ``WITHHELD``."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from server_bridge.woo.model import (
    Assessment,
    AttachmentInfo,
    Edit,
    ExportInfo,
    PackageInput,
    Reaction,
    ReplyRef,
    Span,
    WooDocument,
    WooRequestInfo,
)
from server_bridge.woo.signing import PdfSigningIdentity, ensure_pdf_signing_identity

REFERENCE = "2026-0412"
GROUNDS = {
    "5.1.1c": "bedrijfs- en fabricagegegevens die vertrouwelijk aan de overheid zijn meegedeeld",
    "5.1.2e": "de eerbiediging van de persoonlijke levenssfeer",
    "5.1.2i": "het goed functioneren van de staat of andere publiekrechtelijke lichamen",
    "5.2": "persoonlijke beleidsopvattingen in documenten voor intern beraad",
}
ROOM = "!beleid:rijk.example"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# Strings that must appear nowhere in the package (in any encoding).
PHONE = "06-98765432"
EMAIL = "p.pietersen@minfin.example"
SECRET_OPINION = "Zuidasgeheimbeleidsopvatting"
SECRET_EDIT = "Gewijzigdgeheimvoorstel"
SECRET_IMAGE_NAME = "verborgenfotobestand.png"
SECRET_ATTACHMENT_TEXT = "Vertrouwelijkbedrijfsrapport"
SECRET_REACTION_NAME = "Reactiegeverdeverborgen"
SECRET_IN_EDIT_SPAN = "Naamgeheimindebewerking"
SECRET_SENDER = "Sanne Verborgenambtenaar"
SECRET_REACTING = "Reagerendeverborgen"
WITHHELD = (
    SECRET_SENDER,
    SECRET_REACTING,
    SECRET_IN_EDIT_SPAN,
    PHONE,
    EMAIL,
    SECRET_OPINION,
    SECRET_EDIT,
    SECRET_IMAGE_NAME,
    SECRET_ATTACHMENT_TEXT,
    SECRET_REACTION_NAME,
)
# Strings that must be in the PDF's text.
PUBLIC = (
    "Het overleg over de Zuidasbrug begint om tien uur.",
    "Let op: de notitie over de aanbesteding is klaar",
    "Eerste versie van het voorstel",
    "Tweede versie van het voorstel",
    "Akkoord, ik lees de notitie vandaag",
    "Bel me even op",
    "kaart-zuidas.png",
    "begroting-2026.pdf",
    "Ondersteuning Zuidas",
    "Coördinatie met één café, geïnformeerd: ja",
    "Nieuwe planning, afgestemd met",
    "[U+1F44D] Arjen Adviseur",  # an emoji the font lacks, shown by its code point
)


def png_bytes() -> bytes:
    img = Image.new("RGB", (120, 80), (30, 90, 200))
    ImageDraw.Draw(img).rectangle((20, 20, 100, 60), fill=(250, 200, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def minimal_pdf() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )


def _att(name: str, mimetype: str, data: bytes, image: bool) -> AttachmentInfo:
    return AttachmentInfo(
        file_name=name,
        mimetype=mimetype,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        image_bytes=data if image else None,
    )


def _doc(n: int, text: str, assessment: Assessment, **kw: object) -> WooDocument:
    fields: dict[str, object] = {
        "number": f"{n:04d}",
        "event_id": f"$event{n}",
        "room_id": ROOM,
        "room_name": "Beleid Zuidas",
        "sender_id": "@minister:rijk.example",
        "sender_name": "Mieke Minister",
        "sender_function": "minister",
        "ts": T0 + timedelta(minutes=n),
        "kind": "chatbericht",
        "text": text,
        "assessment": assessment,
    }
    fields.update(kw)
    return WooDocument(**fields)  # type: ignore[arg-type]


OPEN = Assessment("openbaar")


def sample_documents() -> list[WooDocument]:
    partly = f"Bel me even op {PHONE} of mail {EMAIL} voor de stukken."
    p0 = partly.index(PHONE)
    e0 = partly.index(EMAIL)
    pdf_data = minimal_pdf()
    png = png_bytes()
    secret_png = png_bytes()[:-1] + b"\x00"  # different bytes, still withheld
    return [
        _doc(1, PUBLIC[0] + "\n" + PUBLIC[9] + ".", OPEN),
        _doc(  # formatted: its plain body; the sender is not a key official
            2,
            PUBLIC[1] + " (zie bijlage).",
            OPEN,
            sender_name=SECRET_SENDER,
            sender_function="beleidsmedewerker",
            sender_name_ground="5.1.2e",
        ),
        _doc(
            3,
            PUBLIC[2],
            OPEN,
            edits=(Edit(T0 + timedelta(minutes=3, seconds=30), PUBLIC[3]),),
        ),
        _doc(
            4,
            PUBLIC[4] + ".",
            OPEN,
            sender_name="Arjen Adviseur",
            sender_function="beleidsadviseur",
            reply_to=ReplyRef("0003", "$event3"),
            reactions=(
                Reaction("✓", "Mieke Minister"),
                Reaction("👍", "Arjen Adviseur"),
                Reaction("✓", SECRET_REACTING, "5.1.2e"),
            ),
        ),
        _doc(
            5,
            partly,
            Assessment(
                "deels_openbaar",
                ("5.1.2e",),
                (Span(p0, p0 + len(PHONE), "5.1.2e"), Span(e0, e0 + len(EMAIL), "5.1.2e")),
            ),
            edits=(Edit(T0 + timedelta(minutes=5, seconds=20), f"{SECRET_EDIT} {PHONE}"),),
        ),
        _doc(
            6,
            f"Mijn persoonlijke mening: {SECRET_OPINION}.",
            Assessment("niet_openbaar", ("5.2",), published=False),
            reply_to=ReplyRef("0005", "$event5"),
            reactions=(Reaction("✓", SECRET_REACTION_NAME),),
        ),
        _doc(7, "", OPEN, deleted=True),
        _doc(
            8,
            "kaart-zuidas.png",
            OPEN,
            kind="bijlage",
            attachment=_att("kaart-zuidas.png", "image/png", png, image=True),
        ),
        _doc(
            9,
            "begroting-2026.pdf",
            OPEN,
            kind="bijlage",
            attachment=_att("begroting-2026.pdf", "application/pdf", pdf_data, image=False),
        ),
        _doc(
            10,
            SECRET_IMAGE_NAME,
            Assessment("niet_openbaar", ("5.1.2e",), published=False),
            kind="bijlage",
            attachment=_att(SECRET_IMAGE_NAME, "image/png", secret_png, image=True),
        ),
        _doc(
            11,
            f"Ondersteuning Zuidas {SECRET_ATTACHMENT_TEXT}.pdf",
            Assessment(
                "deels_openbaar",
                ("5.1.1c",),
                (Span(21, 21 + len(SECRET_ATTACHMENT_TEXT), "5.1.1c"),),
            ),
            kind="bijlage",
            attachment=_att(
                f"Ondersteuning Zuidas {SECRET_ATTACHMENT_TEXT}.pdf",
                "application/pdf",
                pdf_data + b"%x",
                image=False,
            ),
        ),
        _doc(
            12,
            "Planning volgt.",
            Assessment("deels_openbaar", ("5.1.2e",), (Span(0, 8, "5.1.2e"),)),
            edits=(
                Edit(
                    T0 + timedelta(minutes=12, seconds=40),
                    f"{PUBLIC[10]} {SECRET_IN_EDIT_SPAN}.",
                    (
                        Span(
                            len(PUBLIC[10]) + 1,
                            len(PUBLIC[10]) + 1 + len(SECRET_IN_EDIT_SPAN),
                            "5.1.2i",
                        ),
                    ),
                ),
            ),
        ),
    ]


def package_input() -> PackageInput:
    return PackageInput(
        request=WooRequestInfo(
            REFERENCE, "Chatberichten over de Zuidasbrug", date(2026, 4, 12), "Beleid Zuidas"
        ),
        grounds=GROUNDS,
        export=ExportInfo("@archivaris:rijk.example", datetime(2026, 12, 1, 12, 0, tzinfo=UTC)),
        verify={"ok": True, "rooms": {ROOM: {"ok": True, "entries": 11}}},
    )


@pytest.fixture
def pdf_identity(tmp_path: Path) -> PdfSigningIdentity:
    return ensure_pdf_signing_identity(tmp_path / "keys")
