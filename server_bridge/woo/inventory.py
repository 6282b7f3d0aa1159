"""``inventarislijst-<ref>.xlsx`` and ``.csv``: one row per document, written as the
documents stream past (openpyxl's write-only mode keeps rows out of memory)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, TextIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from .model import WooDocument

HEADER = (
    "Documentnummer",
    "Datum",
    "Type",
    "Kamer",
    "Functie afzender",
    "Besluit",
    "Weigeringsgronden",
    "Gepubliceerd",
)
DECISION_TEXT = {
    "openbaar": "openbaar",
    "deels_openbaar": "deels openbaar",
    "niet_openbaar": "niet openbaar",
}


def inventory_names(reference: str) -> tuple[str, str]:
    return f"inventarislijst-{reference}.xlsx", f"inventarislijst-{reference}.csv"


def inventory_row(doc: WooDocument) -> list[str]:
    a = doc.assessment
    grounds = list(a.grounds)
    for span in a.spans:
        if span.ground not in grounds:
            grounds.append(span.ground)
    for edit in doc.edits if a.decision == "deels_openbaar" else ():
        for span in edit.spans or ():
            if span.ground not in grounds:
                grounds.append(span.ground)
    if a.decision != "niet_openbaar":
        for code in (doc.sender_name_ground, *(r.sender_ground for r in doc.reactions)):
            if code is not None and code not in grounds:
                grounds.append(code)
    return [
        doc.number,
        doc.ts.strftime("%Y-%m-%d %H:%M:%S"),
        doc.kind,
        doc.room_name,
        doc.sender_function,
        DECISION_TEXT[a.decision],
        ", ".join(grounds),
        "ja" if a.published else "nee",
    ]


def _safe_cell(value: str) -> str:
    """Keep spreadsheet programs from evaluating a cell as a formula (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


class InventoryWriter:
    """Add rows with :meth:`add`; :meth:`close` finishes both files."""

    def __init__(self, xlsx_path: Path, csv_path: Path, reference: str) -> None:
        self._xlsx_path = xlsx_path
        self._wb = Workbook(write_only=True)
        self._ws: Any = self._wb.create_sheet(title="Inventarislijst")
        self._ws.append([f"Inventarislijst Woo-besluit {reference}"])
        bold = Font(bold=True)
        header = []
        for title in HEADER:
            cell = WriteOnlyCell(self._ws, value=title)
            cell.font = bold
            header.append(cell)
        self._ws.append(header)
        self._csv_file: TextIO = csv_path.open("w", encoding="utf-8-sig", newline="")
        self._csv = csv.writer(self._csv_file, delimiter=";")
        self._csv.writerow(HEADER)
        self.count = 0

    def add(self, doc: WooDocument) -> None:
        row = [_safe_cell(v) for v in inventory_row(doc)]
        self._ws.append(row)
        self._csv.writerow(row)
        self.count += 1

    def close(self) -> None:
        self._wb.save(self._xlsx_path)
        self._csv_file.close()
