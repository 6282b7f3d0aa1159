"""Output: JSON for scripts (``--json``), rich tables and lines for people.

User-supplied text (message bodies, room and display names) always goes into rich ``Text``
objects, never into markup strings, so ``[bold]`` in a message is shown, not interpreted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.text import Text

_console: Console | None = None


def console() -> Console:
    global _console
    if _console is None:
        _console = Console(highlight=False, soft_wrap=True)
    return _console


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def emit_json_line(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def info(text: str) -> None:
    """A status line on stderr (stdout stays clean for data)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Aligned columns, one line per row. Nothing is truncated or folded (ids stay whole
    and copyable); a line longer than the terminal simply wraps."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(header), *(row[i].cell_len for row in cells)])
              for i, header in enumerate(columns)]
    if title:
        console().print(Text(title, style="bold"), soft_wrap=True)
    lines = [[Text(h, style="bold") for h in columns], *cells]
    for row in lines:
        text = Text()
        for i, cell in enumerate(row):
            text.append(cell)
            if i < len(row) - 1:
                text.append(" " * (widths[i] - cell.cell_len + 2))
        text.rstrip()
        console().print(text, soft_wrap=True)


def _cell(value: Any) -> Text:
    text = value.copy() if isinstance(value, Text) else Text(str(value))
    text.plain = text.plain.replace("\n", " ⏎ ")
    return text


def line(*parts: Text | str) -> None:
    text = Text()
    for part in parts:
        text.append(part if isinstance(part, Text) else Text(part))
    console().print(text)
    console().file.flush()


def timestamp(ms: int | float | None, seconds: bool = True) -> str:
    if not ms:
        return "-"
    fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return datetime.fromtimestamp(float(ms) / 1000).strftime(fmt)
