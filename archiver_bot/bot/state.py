"""The bot's small bookkeeping of room decisions (archived, left, notice sent)."""

from __future__ import annotations

import json
from pathlib import Path

from archiver_bot.settings import write_private


class BotState:
    def __init__(self, path: Path) -> None:
        self.path = path
        data = json.loads(path.read_text("utf-8")) if path.exists() else {}
        self.archived: set[str] = set(data.get("archived", []))
        self.left: set[str] = set(data.get("left", []))
        self.noticed: set[str] = set(data.get("noticed", []))

    def _save(self) -> None:
        doc = {k: sorted(getattr(self, k)) for k in ("archived", "left", "noticed")}
        write_private(self.path, json.dumps(doc))

    def mark_archived(self, room_id: str) -> None:
        self.archived.add(room_id)
        self.left.discard(room_id)
        self._save()

    def mark_left(self, room_id: str) -> None:
        self.left.add(room_id)
        self._save()

    def mark_noticed(self, room_id: str) -> None:
        self.noticed.add(room_id)
        self._save()
