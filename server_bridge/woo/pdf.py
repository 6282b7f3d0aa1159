"""``besluit-bijlage-<ref>.pdf``: the documents in scope as published, with fpdf2.

The text layer is built only from what may be published: a withheld part is never drawn
and then covered; in its place a black box carries the ground code (the code is the only
text in the box). The box's width follows the code, not the withheld text, so its length
does not leak either. Nothing withheld goes into metadata, outlines or annotations (the
document has no outlines or annotations at all)."""

from __future__ import annotations

import io
import logging
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from PIL import Image

from .model import (
    DECISION_LABELS,
    PackageInput,
    Span,
    WooDocument,
    WooModelError,
    check_document,
    segments,
)

log = logging.getLogger(__name__)

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),  # Debian's fonts-dejavu-core
    Path("/usr/share/fonts/TTF"),
    Path("/usr/share/fonts/dejavu"),
)
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf", "I": "DejaVuSans-Oblique.ttf"}
FAMILY = "DejaVu"
LINE = 5.0
SMALL = 4.2
MAX_IMAGE_W = 90.0
MAX_IMAGE_H = 90.0
MAX_IMAGE_PX = 1600


class WooFontError(RuntimeError):
    """The embedded font (DejaVu Sans, Debian package fonts-dejavu-core) is missing."""


def find_font_dir() -> Path:
    """The directory holding DejaVu Sans (``RIJKSCHAT_WOO_FONT_DIR`` overrides)."""
    override = os.environ.get("RIJKSCHAT_WOO_FONT_DIR")
    candidates = (Path(override),) if override else FONT_DIRS
    for directory in candidates:
        if all((directory / name).is_file() for name in FONT_FILES.values()):
            return directory
    raise WooFontError(
        "DejaVu Sans was not found (looked in "
        + ", ".join(str(d) for d in candidates)
        + "); install the Debian package fonts-dejavu-core (make fonts)"
    )


def _codepoints(font_file: Path) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(str(font_file), lazy=True) as font:
        return frozenset(font.getBestCmap())


def printable(text: str, covered: frozenset[int]) -> str:
    """What the PDF can show of ``text``: tabs as spaces, control characters dropped, and a
    character the font lacks (an emoji, CJK) as ``[U+1F44D]`` rather than silently nothing."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\n" or (code >= 0x20 and code in covered):
            out.append(ch)
        elif code < 0x20 or 0x7F <= code < 0xA0 or unicodedata.category(ch) in ("Cf", "Cs"):
            continue
        else:
            out.append(f"[U+{code:04X}]")
    return "".join(out)


def pdf_file_name(reference: str) -> str:
    return f"besluit-bijlage-{reference}.pdf"


def _when(ts: datetime) -> str:
    return ts.strftime("%d-%m-%Y %H:%M:%S")


_TOKENS = re.compile(r"(\n| +)")


@dataclass(frozen=True)
class Text:
    text: str
    style: str = ""
    size: float = 10


@dataclass(frozen=True)
class Box:
    label: str
    full: bool = False


Item = Text | Box


@dataclass(frozen=True)
class Run:
    text: str
    style: str
    size: float
    width: float
    box: bool = False


class _Doc(FPDF):
    def __init__(self, reference: str) -> None:
        super().__init__(format="A4", enforce_compliance="PDF/A-2B")
        self.reference = reference

    def header(self) -> None:
        self.set_font(FAMILY, "", 8)
        self.set_text_color(80, 80, 80)
        self.cell(
            0,
            SMALL,
            f"Bijlage bij Woo-besluit {self.reference}",
            new_x=XPos.LMARGIN,
            new_y=YPos.TOP,
        )
        self.cell(
            0,
            SMALL,
            f"Pagina {self.page_no()} van {{nb}}",
            align="R",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(3)
        self.set_text_color(0, 0, 0)


class PdfBuilder:
    """Add documents in time order with :meth:`add`, then :meth:`write` the file."""

    def __init__(self, pkg: PackageInput, font_dir: Path | None = None) -> None:
        self.pkg = pkg
        self.grounds: Mapping[str, str] = pkg.grounds
        self.used_grounds: set[str] = set()
        self._last_ts: datetime | None = None
        self.count = 0
        self._widths: dict[tuple[str, str, float], float] = {}
        fonts = font_dir or find_font_dir()
        self._covered = _codepoints(fonts / FONT_FILES[""])
        pdf = _Doc(pkg.request.reference)
        for style, name in FONT_FILES.items():
            pdf.add_font(FAMILY, style, str(fonts / name))
        pdf.set_title(f"Bijlage bij Woo-besluit {pkg.request.reference}")
        pdf.set_subject(pkg.request.title)
        pdf.set_author("Rijkschat archief")
        pdf.set_creator("Rijkschat Woo-publicatiepakket")
        pdf.set_lang("nl-NL")
        pdf.set_creation_date(pkg.export.exported_at)
        pdf.set_auto_page_break(True, margin=15)
        # PDF/A-2B: fpdf2 embeds its sRGB2014 output intent and writes the XMP identification
        self.pdf = pdf
        pdf.add_page()
        self._cover()

    # ---- layout ------------------------------------------------------------------------
    # fpdf2's write() re-measures a line for every character (quadratic); the documents are
    # laid out here instead: words are measured once and each line is drawn with cell().
    def _width(self, text: str, style: str, size: float) -> float:
        key = (text, style, size)
        width = self._widths.get(key)
        if width is None:
            self.pdf.set_font(FAMILY, style, size)
            width = self.pdf.get_string_width(text)
            if len(self._widths) < 50_000:
                self._widths[key] = width
        return width

    def _flow(self, items: list[Item], h: float = LINE) -> None:
        """Lay out text runs and ground boxes as one paragraph."""
        epw = self.pdf.epw
        line: list[Run] = []
        x = 0.0
        for item in items:
            if isinstance(item, Box):
                width = self.pdf.epw if item.full else self._width(item.label, "B", 8) + 3
                if line and x + width > epw:
                    self._draw(line, h)
                    line, x = [], 0.0
                line.append(Run(item.label, "B", 8, width, box=True))
                x += width
                continue
            for piece in _TOKENS.split(printable(item.text, self._covered)):
                if not piece:
                    continue
                if piece == "\n":
                    self._draw(line, h)
                    line, x = [], 0.0
                    continue
                width = self._width(piece, item.style, item.size)
                if piece.isspace():
                    if line:
                        line.append(Run(piece, item.style, item.size, width))
                        x += width
                    continue
                if line and x + width > epw:
                    self._draw(line, h)
                    line, x = [], 0.0
                while width > epw:  # a word longer than a line: cut it
                    cut = max(1, int(len(piece) * epw / width) - 1)
                    head = piece[:cut]
                    self._draw(
                        [
                            Run(
                                head,
                                item.style,
                                item.size,
                                self._width(head, item.style, item.size),
                            )
                        ],
                        h,
                    )
                    piece = piece[cut:]
                    width = self._width(piece, item.style, item.size)
                line.append(Run(piece, item.style, item.size, width))
                x += width
        self._draw(line, h)

    def _draw(self, line: list[Run], h: float) -> None:
        pdf = self.pdf
        while line and not line[-1].box and line[-1].text.isspace():
            line.pop()
        if pdf.get_y() + h > pdf.page_break_trigger:
            pdf.add_page()
        pdf.set_x(pdf.l_margin)
        merged: list[Run] = []
        for run in line:
            last = merged[-1] if merged else None
            if (
                last
                and not last.box
                and not run.box
                and (last.style, last.size) == (run.style, run.size)
            ):
                merged[-1] = Run(last.text + run.text, run.style, run.size, last.width + run.width)
            else:
                merged.append(run)
        for run in merged:
            pdf.set_font(FAMILY, run.style, run.size)
            if run.box:
                pdf.set_fill_color(0, 0, 0)
                pdf.set_text_color(255, 255, 255)
                pdf.cell(run.width, h, run.text, fill=True, align="C")
                pdf.set_text_color(0, 0, 0)
            else:
                pdf.cell(run.width, h, run.text)
        pdf.set_xy(pdf.l_margin, pdf.get_y() + h)

    @staticmethod
    def _redacted(text: str, spans: tuple[Span, ...], out: list[Item]) -> None:
        for seg in segments(text, spans):
            if seg.text is not None:
                out.append(Text(seg.text))
            else:
                assert seg.ground is not None
                out.append(Box(seg.ground))

    def _para(self, h: float, text: str) -> None:
        self.pdf.multi_cell(
            0, h, printable(text, self._covered), new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )

    def _newline(self, h: float = LINE) -> None:
        self.pdf.ln(h)

    def _cover(self) -> None:
        req = self.pkg.request
        pdf = self.pdf
        pdf.set_font(FAMILY, "B", 14)
        self._para(7, f"Bijlage bij Woo-besluit {req.reference}")
        pdf.set_font(FAMILY, "", 10)
        self._para(LINE, f"Verzoek: {req.title}")
        self._para(LINE, f"Ontvangen: {req.received.strftime('%d-%m-%Y')}")
        self._para(LINE, f"Reikwijdte: {req.scope}")
        self._para(LINE, f"Samengesteld: {_when(self.pkg.export.exported_at)}")
        pdf.ln(2)
        pdf.set_font(FAMILY, "I", 9)
        self._para(
            SMALL,
            "Weggelakte passages en niet openbaar gemaakte documenten staan als zwarte vlakken "
            "met de code van de weigeringsgrond; de gronden staan achteraan uitgeschreven.",
        )
        pdf.ln(4)

    # ---- documents ---------------------------------------------------------------------
    def add(self, doc: WooDocument) -> None:
        check_document(doc, self.grounds)
        if self._last_ts is not None and doc.ts < self._last_ts:
            raise WooModelError(f"document {doc.number} is out of time order")
        self._last_ts = doc.ts
        a = doc.assessment
        self.used_grounds.update(a.grounds)
        self.used_grounds.update(s.ground for s in a.spans)
        pdf = self.pdf
        if pdf.get_y() + 3 * LINE > pdf.page_break_trigger:
            pdf.add_page()
        pdf.set_draw_color(160, 160, 160)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(1)
        kind = "Bijlage" if doc.kind == "bijlage" else "Chatbericht"
        self._flow(
            [
                Text(f"Document {doc.number}", "B"),
                Text(f"  ·  {kind}  ·  {_when(doc.ts)}  ·  {doc.room_name}", "", 9),
            ]
        )
        withheld = a.decision == "niet_openbaar"
        decision = f"  ·  Besluit: {DECISION_LABELS[a.decision]}"
        if a.grounds:
            decision += f" ({', '.join(a.grounds)})"
        sender: list[Item] = [Text("Afzender: ", "", 9)]
        if withheld:
            sender.append(Text(doc.sender_function, "", 9))
        elif doc.sender_name_ground is not None:
            self.used_grounds.add(doc.sender_name_ground)
            sender += [Box(doc.sender_name_ground), Text(f" ({doc.sender_function})", "", 9)]
        else:
            sender.append(Text(f"{doc.sender_name} ({doc.sender_function})", "", 9))
        self._flow([*sender, Text(decision, "", 9)], SMALL)
        if doc.reply_to is not None and not withheld:
            target = doc.reply_to.number or "buiten de reikwijdte"
            self._flow([Text(f"In antwoord op document {target}", "I", 9)], SMALL)
        if withheld:
            self._flow([Box(f"Niet openbaar: {', '.join(a.grounds)}", full=True)], 7)
            pdf.ln(3)
            self.count += 1
            return
        body: list[Item]
        if doc.deleted:
            body = [Text("[Bericht verwijderd door de afzender]", "I")]
        elif a.decision == "deels_openbaar":
            body = []
            self._redacted(doc.text, a.spans, body)
        else:
            body = [Text(doc.text)]
        self._flow(body)
        for edit in doc.edits:
            items: list[Item] = [Text(f"Bewerkt op {_when(edit.ts)}: ", "I", 9)]
            if a.decision == "openbaar":
                items.append(Text(edit.text))
            elif edit.spans is not None:
                self.used_grounds.update(s.ground for s in edit.spans)
                self._redacted(edit.text, edit.spans, items)
            else:
                items.append(Box(", ".join(a.grounds)))
            self._flow(items)
        if doc.attachment is not None:
            self._attachment(doc)
        if doc.reactions:
            reactions: list[Item] = [Text("Reacties:", "", 9)]
            for i, r in enumerate(doc.reactions):
                reactions.append(Text(f"{',' if i else ''} {r.key} ", "", 9))
                if r.sender_ground is not None:
                    self.used_grounds.add(r.sender_ground)
                    reactions.append(Box(r.sender_ground))
                else:
                    reactions.append(Text(r.sender_name, "", 9))
            self._flow(reactions, SMALL)
        pdf.ln(3)
        self.count += 1

    def _attachment(self, doc: WooDocument) -> None:
        att = doc.attachment
        assert att is not None
        a = doc.assessment
        if a.decision != "openbaar":
            self._flow(
                [Text("Bijlage: ", "I", 9), Box(f"Bijlage niet openbaar: {', '.join(a.grounds)}")]
            )
            return
        if att.image_bytes is not None:
            self._image(att.image_bytes)
        self._flow(
            [Text(f"Bijlage: {att.file_name} ({att.mimetype}, {att.size} bytes)", "", 9)], SMALL
        )
        self._flow([Text(f"SHA-256: {att.sha256}", "", 8)], SMALL)

    def _image(self, data: bytes) -> bool:
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                width, height = img.size
                rgb = img.convert("RGB")  # PDF/A: no alpha surprises, one colour space
            rgb.thumbnail((MAX_IMAGE_PX, MAX_IMAGE_PX))  # bounded size in the file and memory
        except (OSError, ValueError, Image.DecompressionBombError):
            log.warning("an attachment could not be read as an image; listed instead")
            return False
        scale = min(MAX_IMAGE_W / width, MAX_IMAGE_H / height, 0.35)
        w, h = width * scale, height * scale
        pdf = self.pdf
        if pdf.get_y() + h > pdf.page_break_trigger:
            pdf.add_page()
        pdf.image(rgb, x=pdf.l_margin, y=pdf.get_y(), w=w, h=h)
        pdf.set_y(pdf.get_y() + h + 1)
        return True

    # ---- end -----------------------------------------------------------------------------
    def _legend(self) -> None:
        pdf = self.pdf
        pdf.ln(4)
        pdf.set_font(FAMILY, "B", 11)
        self._para(6, "Toegepaste weigeringsgronden")
        pdf.set_font(FAMILY, "", 9)
        if not self.used_grounds:
            self._para(SMALL, "Geen: alle documenten zijn openbaar.")
        for code in sorted(self.used_grounds):
            self._para(SMALL, f"{code}: {self.grounds[code]}")

    def write(self, path: Path) -> None:
        self._legend()
        self.pdf.output(str(path))
