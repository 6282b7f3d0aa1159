"""Late decryption: archived undecryptable events of sessions whose keys are now known."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from nio import AsyncClient, MegolmEvent
from nio.exceptions import EncryptionError

from archiver_bot.archive import Archive

log = logging.getLogger(__name__)


def try_decrypt(client: AsyncClient, event: MegolmEvent) -> Any:
    try:
        return client.decrypt_event(event)
    except (EncryptionError, AssertionError):
        return None


async def decrypt_pending(
    client: AsyncClient,
    archive: Archive,
    session_ids: Iterable[str],
    imported: dict[str, Any] | None = None,
    provenance_of: Callable[[str], dict[str, Any] | None] | None = None,
) -> int:
    """Decrypt the stored events of these sessions and append their plaintext; the number
    decrypted. ``imported`` (provenance of an imported key) is chained with each; without
    it, ``provenance_of(session_id)`` says whether a session's key was imported earlier."""
    done = 0
    for session_id in session_ids:
        provenance = imported
        if provenance is None and provenance_of is not None:
            provenance = provenance_of(session_id)
        for stored in await archive.pending_by_session(session_id):
            source = {
                "type": "m.room.encrypted",
                "event_id": stored.event_id,
                "sender": stored.sender,
                "origin_server_ts": stored.origin_server_ts,
                "room_id": stored.room_id,
                "content": stored.encrypted or stored.content or {},
            }
            encrypted = MegolmEvent.from_dict(source)
            if not isinstance(encrypted, MegolmEvent):
                continue
            encrypted.room_id = stored.room_id
            decrypted = try_decrypt(client, encrypted)
            if decrypted is None:
                continue
            content = dict(decrypted.source["content"])
            if await archive.add_decryption(
                stored.event_id, content, encrypted.device_id, encrypted.sender_key,
                event_type=str(decrypted.source.get("type", "")) or None,
                imported=provenance,
            ):
                done += 1
    return done
