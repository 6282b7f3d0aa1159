"""The bot's liveness, published as a small JSON file that the bridge's /healthz reads."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def write_status(path: Path, state: str, **fields: object) -> None:
    doc = {"state": state, "pid": os.getpid(), "updated_at": time.time(), **fields}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc), "utf-8")
    os.replace(tmp, path)
