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
from rich.table import Table
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
    t = Table(title=title, title_justify="left", header_style="bold", box=None,
              pad_edge=False)
    for column in columns:
        t.add_column(column, overflow="fold")
    for row in rows:
        t.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in row))
    console().print(t)


def line(*parts: Text | str) -> None:
    text = Text()
    for part in parts:
        text.append(part if isinstance(part, Text) else Text(part))
    console().print(text)
    console().file.flush()


def timestamp(ms: int | float | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(float(ms) / 1000).strftime("%Y-%m-%d %H:%M:%S")
