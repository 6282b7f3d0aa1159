"""The :class:`Archive` facade and :func:`open_archive`: the store's public entry points."""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import audit, kv, reader, retention, woo, writer
from .checkpoints import checkpoint, read_head, reopen_after_close
from .context import Settings, StoreContext
from .engine import create_private_sqlite_file, make_engine, migrate
from .errors import ArchiveError, ArchiveIntegrityError, ArchiveKeyError
from .keys import (
    FileKeyProvider,
    KeyProvider,
    Signer,
    load_public_key,
    make_aad,
    new_dek,
    public_pem,
)
from .lock import WriterLock
from .maintenance import analyze
from .models import (
    AccessEntry,
    Actor,
    ArchivedEventMeta,
    ArchivePaths,
    DestructionReport,
    EventRecord,
    IngestResult,
    RoomSummary,
    SearchHit,
    StoredEvent,
    VerifyReport,
    WooAssessment,
    WooRequest,
    WooSpan,
)
from .schema import checkpoints
from .search import BlindIndex, words
from .verify import changes_since_close, head_problem
from .verify import verify as verify_chains

log = logging.getLogger(__name__)

Role = Literal["writer", "reader"]
#: the most events, hits or log entries one read call returns
MAX_PAGE = 1000
#: the most words one search uses (they are ANDed)
MAX_TERMS = 16


class Archive:
    """An open archive. Writes are serialised and each is one transaction; every read
    API call takes an :class:`Actor` and is recorded in the access log first."""

    def __init__(self, ctx: StoreContext, role: Role, lock: WriterLock | None) -> None:
        self._ctx = ctx
        self._role = role
        self._lock = lock
        self._closed = False

    @property
    def role(self) -> Role:
        return self._role

    @property
    def engine(self) -> AsyncEngine:
        return self._ctx.engine

    @property
    def public_key_pem(self) -> str:
        return public_pem(self._ctx.signer.public_key)

    def sign_detached(self, data: bytes) -> bytes:
        """A detached Ed25519 signature over ``data`` (e.g. a Woo package's manifest.json) by
        the checkpoint signing key; verify with the PEM key ``export-public-key`` prints.
        Data shaped like a checkpoint payload is refused, so that this can never produce a
        checkpoint signature."""
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            parsed = None
        if isinstance(parsed, dict) and {"v", "archive", "seq"} & parsed.keys():
            raise ArchiveError("refusing to sign data shaped like a checkpoint payload")
        return self._ctx.signer.sign(data)

    # ---- write API (the bot) -------------------------------------------------------------
    async def ingest(
        self, records: Sequence[EventRecord], sync_token: str | None = None
    ) -> IngestResult:
        """Store a batch in one transaction (events, chain, index, sync position)."""
        return await writer.ingest(self._ctx, records, sync_token)

    async def sync_token(self) -> str | None:
        async with self._ctx.read() as conn:
            return await kv.get(conn, "sync_token")

    async def add_decryption(
        self,
        event_id: str,
        content: dict[str, Any],
        sender_device: str | None,
        sender_key: str | None,
        event_type: str | None = None,
        imported: dict[str, Any] | None = None,
    ) -> bool:
        """Record a late decryption next to the undecryptable original; False when the
        event is unknown, was not undecryptable, or already has a decryption.
        ``event_type`` is the decrypted event's type (e.g. ``m.room.message``).
        ``imported`` marks a decryption with a room key imported from a key export (a
        weaker origin than Olm from the sender's device) and says who imported it, when and
        from which file; it is chained (record ``decryption="imported"``, the details sealed
        in the record) and shown as :attr:`StoredEvent.imported_key`."""
        return await writer.add_decryption(
            self._ctx, event_id, content, sender_device, sender_key, event_type, imported
        )

    async def record_key_import(self, actor: Actor, details: dict[str, Any]) -> None:
        """Note a room-key import in the access log (who, the file's digest, the counts)."""
        await audit.record_access(self._ctx, actor, "import_keys", details)

    async def record_woo_export(self, actor: Actor, details: dict[str, Any]) -> None:
        """Note a Woo publication package export in the access log (request, reference)."""
        await audit.record_access(self._ctx, actor, "woo_export", details)

    async def undecryptable_session_ids(self, room_id: str | None = None) -> set[str]:
        async with self._ctx.read() as conn:
            return await reader.undecryptable_session_ids(self._ctx, conn, room_id)

    async def pending_by_session(self, session_id: str) -> list[StoredEvent]:
        async with self._ctx.read() as conn:
            return await reader.pending_by_session(self._ctx, conn, session_id)

    async def undecryptable_count(self) -> int:
        async with self._ctx.read() as conn:
            return sum((await reader.undecryptable_counts(conn)).values())

    async def record_withheld(
        self, room_id: str, session_id: str, sender: str, code: str, reason: str | None
    ) -> None:
        await writer.record_withheld(self._ctx, room_id, session_id, sender, code, reason)

    async def store_attachment(
        self,
        event_id: str,
        room_id: str,
        data: bytes,
        filename: str | None,
        mimetype: str | None,
        sha256_ok: bool | None,
        error: str | None = None,
    ) -> None:
        await writer.store_attachment(
            self._ctx, event_id, room_id, data, filename, mimetype, sha256_ok, error
        )

    async def set_room_info(
        self,
        room_id: str,
        *,
        name: str | None = None,
        members: Sequence[str] | None = None,
        key_officials: Sequence[str] | None = None,
    ) -> None:
        """Room name/members/key officials (sealed). A key official makes the room
        'bewaren' unless a retention class was set explicitly."""
        await writer.set_room_info(
            self._ctx, room_id, name=name, members=members, key_officials=key_officials
        )

    async def record_room_left(self, room_id: str, reason: str) -> None:
        await writer.set_room_info(self._ctx, room_id, left_reason=reason)

    async def archived_event_ids(self, room_id: str) -> set[str]:
        async with self._ctx.read() as conn:
            return await reader.archived_event_ids(self._ctx, conn, room_id)

    async def archived_room_ids(self) -> list[str]:
        """Every room the archive holds (ids only; not logged, like the event ids)."""
        async with self._ctx.read() as conn:
            return await reader.archived_room_ids(conn)

    async def archived_event_meta(self, room_id: str) -> list[ArchivedEventMeta]:
        """A room's archived events without their content (for the completeness audit;
        not logged), oldest first."""
        async with self._ctx.read() as conn:
            return await reader.archived_event_meta(self._ctx, conn, room_id)

    # ---- retention -------------------------------------------------------------------------
    async def set_retention(self, room_id: str, retention_class: str) -> None:
        await retention.set_retention(self._ctx, room_id, retention_class)

    async def set_legal_hold(self, room_id: str, on: bool, reason: str) -> None:
        await retention.set_legal_hold(self._ctx, room_id, on, reason)

    async def destroy_expired(self, now: int | None = None) -> DestructionReport:
        """Crypto-shred every room-year past retention (``now`` in ms; default: now)."""
        return await retention.destroy_expired(self._ctx, now)

    # ---- read API (logged) ---------------------------------------------------------------
    async def list_rooms(self, actor: Actor) -> list[RoomSummary]:
        await audit.record_access(self._ctx, actor, "list_rooms", {})
        async with self._ctx.read() as conn:
            return await reader.list_rooms(self._ctx, conn)

    async def room_events(
        self, actor: Actor, room_id: str, after: str | None = None, limit: int = 100
    ) -> tuple[list[StoredEvent], str | None]:
        await audit.record_access(
            self._ctx, actor, "room_events", {"room": room_id, "after": after, "limit": limit}
        )
        async with self._ctx.read() as conn:
            return await reader.room_events(
                self._ctx, conn, room_id, after, min(max(1, limit), MAX_PAGE)
            )

    async def get_event(self, actor: Actor, event_id: str) -> StoredEvent:
        await audit.record_access(self._ctx, actor, "get_event", {"event": event_id})
        async with self._ctx.read() as conn:
            return await reader.get_event(self._ctx, conn, event_id)

    async def get_events(self, actor: Actor, event_ids: Sequence[str]) -> dict[str, StoredEvent]:
        """Several events by id in one logged read (unknown ids are left out); for linked
        events (edits, reply targets, reactions) of a page."""
        ids = list(dict.fromkeys(event_ids))[:MAX_PAGE]
        await audit.record_access(self._ctx, actor, "get_events", {"events": ids})
        async with self._ctx.read() as conn:
            return await reader.get_events(self._ctx, conn, ids)

    async def get_attachment(
        self, actor: Actor, event_id: str
    ) -> tuple[bytes, str | None, str | None]:
        await audit.record_access(self._ctx, actor, "get_attachment", {"event": event_id})
        async with self._ctx.read() as conn:
            return await reader.get_attachment(self._ctx, conn, event_id)

    async def attachment_status(self, actor: Actor, event_id: str) -> dict[str, Any]:
        """What the archiver recorded about an event's attachment, without its bytes:
        ``filename``, ``mimetype``, ``size``, ``sha256_ok`` (None: no hash to check),
        ``error`` (why it could not be fetched or decrypted) and ``stored`` (bytes kept)."""
        await audit.record_access(self._ctx, actor, "attachment_status", {"event": event_id})
        async with self._ctx.read() as conn:
            return await reader.attachment_status(self._ctx, conn, event_id)

    async def withheld_keys(self, actor: Actor, room_id: str) -> list[dict[str, Any]]:
        """The room-key withheld notices the archiver received for a room: ``ts``,
        ``sender``, ``session_id``, ``code`` (e.g. ``m.unverified``) and ``reason``."""
        await audit.record_access(self._ctx, actor, "withheld_keys", {"room": room_id})
        async with self._ctx.read() as conn:
            return await reader.withheld_keys(self._ctx, conn, room_id)

    async def search(
        self,
        actor: Actor,
        q: str,
        room: str | None = None,
        sender: str | None = None,
        from_ts: int | None = None,
        to_ts: int | None = None,
        limit: int = 50,
    ) -> list[SearchHit]:
        """Messages containing every word of ``q`` (exact, normalised), newest first."""
        terms = words(q)[:MAX_TERMS]
        await audit.record_access(
            self._ctx,
            actor,
            "search",
            {"terms": terms, "room": room, "sender": sender, "from": from_ts, "to": to_ts},
        )
        async with self._ctx.read() as conn:
            return await reader.search(
                self._ctx,
                conn,
                terms,
                room_id=room,
                sender=sender,
                from_ts=from_ts,
                to_ts=to_ts,
                limit=min(limit, MAX_PAGE),
            )

    async def access_log(
        self,
        actor: Actor,
        limit: int = 100,
        user_id: str | None = None,
        since_ts: int | None = None,
    ) -> list[AccessEntry]:
        """Newest first. Reading the access log is itself logged."""
        await audit.record_access(
            self._ctx, actor, "access_log", {"user": user_id, "since": since_ts}
        )
        async with self._ctx.read() as conn:
            return await audit.read_access_log(
                self._ctx, conn, limit=min(limit, MAX_PAGE), user_id=user_id, since_ts=since_ts
            )

    # ---- Woo requests and assessments (chained, sealed, access-logged; readers may write) --
    async def woo_create_request(
        self,
        actor: Actor,
        *,
        reference: str,
        title: str,
        received: str,
        rooms: Sequence[str],
        from_ts: int | None = None,
        to_ts: int | None = None,
        query: str | None = None,
    ) -> WooRequest:
        """Register a Woo request. :class:`WooInputError` for bad input or a room not in
        the archive, :class:`DuplicateWooReferenceError` for a reference in use; nothing is
        stored then (and nothing logged)."""
        return await woo.create_request(
            self._ctx,
            actor,
            reference=reference,
            title=title,
            received=received,
            room_ids=rooms,
            from_ts=from_ts,
            to_ts=to_ts,
            query=query,
        )

    async def woo_assess(
        self,
        actor: Actor,
        request_id: str,
        event_id: str,
        *,
        decision: str,
        grounds: Sequence[str],
        spans: Sequence[WooSpan | dict[str, Any]] = (),
        note: str | None = None,
    ) -> WooAssessment:
        """Record an assessment of an archived event for a request (superseding, never
        replacing, an earlier one). The caller checks the ground codes, that the event is
        in the request's scope and that the spans lie within its text."""
        return await woo.assess(
            self._ctx,
            actor,
            request_id,
            event_id=event_id,
            decision=decision,
            grounds=grounds,
            spans=spans,
            note=note,
        )

    async def woo_requests(self, actor: Actor) -> list[WooRequest]:
        await audit.record_access(self._ctx, actor, "woo_requests", {})
        async with self._ctx.read() as conn:
            return await woo.list_requests(self._ctx, conn)

    async def woo_request(self, actor: Actor, request_id: str) -> WooRequest:
        """:class:`UnknownWooRequestError` when there is no such request."""
        await audit.record_access(self._ctx, actor, "woo_request", {"request": request_id})
        async with self._ctx.read() as conn:
            return await woo.get_request(self._ctx, conn, request_id)

    async def woo_assessments(self, actor: Actor, request_id: str) -> list[WooAssessment]:
        """Every assessment of a request, oldest first (per event the last is current)."""
        await audit.record_access(
            self._ctx, actor, "woo_assessments", {"request": request_id}
        )
        async with self._ctx.read() as conn:
            return await woo.assessments(self._ctx, conn, request_id)

    # ---- integrity -----------------------------------------------------------------------
    async def verify(self, room_id: str | None = None) -> VerifyReport:
        return await verify_chains(
            self._ctx.engine,
            self._ctx.signer.public_key,
            room_id,
            read_head(self._ctx.paths.checkpoint_head),
        )

    async def checkpoint(self, reason: str = "manual") -> int:
        return await checkpoint(self._ctx, reason)

    async def close(self) -> None:
        """Write the closing signed checkpoint (a reader: one over what it appended) and
        release the database and the writer lock."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._role == "writer":
                await checkpoint(self._ctx, "close")
            elif self._ctx.since_checkpoint:
                await checkpoint(self._ctx, "reader")
        finally:
            try:
                if self._lock is not None:
                    await self._lock.release()
            finally:
                self._ctx.closed = True
                await self._ctx.engine.dispose()

    async def __aenter__(self) -> Archive:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _archive_key(conn: Any, provider: KeyProvider, name: str, *, create: bool) -> bytes:
    stored = await kv.get(conn, f"{name}_key")
    aad = make_aad("archive-key", name, name)
    if stored is None:
        if not create:
            raise ArchiveKeyError(f"archive key {name} missing from the database")
        raw = new_dek()
        ref = provider.new_key_ref()
        wrapped = provider.wrap(ref, raw, aad)
        await kv.put(conn, f"{name}_key", f"{ref}:{base64.b64encode(wrapped).decode()}")
        return raw
    ref, wrapped_b64 = stored.split(":", 1)
    return provider.unwrap(ref, base64.b64decode(wrapped_b64), aad)


async def open_archive(
    paths: ArchivePaths,
    database_url: str | None = None,
    *,
    key_provider: KeyProvider | None = None,
    default_retention: str = "10y",
    retry_attempts: int = 5,
    retry_delay: float = 0.2,
    checkpoint_every: int = 10_000,
    checkpoint_interval: float = 60.0,
    busy_timeout_ms: int = 5000,
    role: Role = "writer",
) -> Archive:
    """Open the archive: migrate the schema, load the keys, check and sign.

    ``role="writer"`` (the archiver bot) creates the archive and its keys on first start,
    takes the single-writer lock (:class:`ArchiveBusyError` if another process holds it),
    refuses to start when the database changed since its closing checkpoint, and writes
    signed checkpoints on open and close. ``role="reader"`` (``server_bridge``: review,
    audit) never creates anything and may run next to the writer; its reads are
    access-logged as always. A missing or wrong key-encryption key or signing key for an
    archive that holds data raises :class:`ArchiveKeyError`."""
    if role not in ("writer", "reader"):
        raise ArchiveError(f"unknown archive role {role!r}")
    retention.retention_years(default_retention)
    url = database_url or paths.default_database_url
    if role == "reader" and database_url is None and not paths.database.exists():
        raise ArchiveError(f"no archive at {paths.database}")
    paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    if role == "writer":
        create_private_sqlite_file(url)
    engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
    lock: WriterLock | None = None
    try:
        if role == "writer":
            lock = WriterLock(paths.root / "writer.lock")
            await lock.acquire(engine)
        await migrate(engine)
        async with engine.connect() as conn:
            existing = await kv.get(conn, "meta_key") is not None
            has_checkpoints = (
                await conn.execute(select(func.count()).select_from(checkpoints))
            ).scalar_one() > 0
        if role == "reader" and not existing:
            raise ArchiveError("the database holds no archive yet (the archiver never ran)")
        provider = key_provider or FileKeyProvider(paths.kek, paths.keyring, create=not existing)
        signer = Signer(paths.signing_key, create=not has_checkpoints)
        async with engine.begin() as conn:
            meta_key = await _archive_key(conn, provider, "meta", create=not existing)
            index_key = await _archive_key(conn, provider, "index", create=not existing)
            archive_id = await kv.get(conn, "archive_id")
            if archive_id is None:
                archive_id = secrets.token_hex(16)
                await kv.put(conn, "archive_id", archive_id)
            stored_public = await kv.get(conn, "signing_public_key")
            current_public = signer.public_raw.hex()
            if stored_public is None:
                await kv.put(conn, "signing_public_key", current_public)
            elif stored_public != current_public:
                raise ArchiveKeyError(
                    f"signing key {paths.signing_key} is not the key this archive was signed "
                    "with; restore the original signing key"
                )
        ctx = StoreContext(
            engine=engine,
            paths=paths,
            provider=provider,
            signer=signer,
            index=BlindIndex(index_key),
            meta_aead=AESGCM(meta_key),
            archive_id=archive_id,
            settings=Settings(
                default_retention=default_retention,
                retry_attempts=retry_attempts,
                retry_delay=retry_delay,
                checkpoint_every=checkpoint_every,
                checkpoint_interval=checkpoint_interval,
                lock_timeout_ms=busy_timeout_ms,
            ),
        )
        changed: list[str] = []
        if role == "writer":
            async with engine.connect() as conn:
                changed = await changes_since_close(conn, signer.public_key)
                problem = None
                if existing:  # a new archive replaces whatever an old head file says
                    problem = await head_problem(conn, read_head(paths.checkpoint_head))
            if problem is not None:
                changed.append(problem)
        if changed:
            log.critical("archive database changed while closed: %s", "; ".join(changed))
            raise ArchiveIntegrityError(
                "the archive database changed while the archiver was stopped ("
                + "; ".join(changed)
                + "); refusing to sign over it. Run `rijkschat-archiver verify`."
            )
        if role == "writer":
            await retention.sweep_destroyed_keys(ctx)
            await checkpoint(ctx, "open")
            await analyze(ctx)
        else:

            async def _after_write(conn: AsyncConnection) -> None:
                await reopen_after_close(ctx, conn)

            ctx.after_write = _after_write
    except BaseException:
        if lock is not None:
            await lock.release()
        await engine.dispose()
        raise
    log.info("archive opened as %s (%s)", role, engine.dialect.name)
    return Archive(ctx, role, lock)


async def verify_archive(
    paths: ArchivePaths,
    database_url: str | None = None,
    *,
    room_id: str | None = None,
    public_key_file: Path | None = None,
) -> VerifyReport:
    """Read-only verification (no data keys needed, nothing written): what the
    ``verify`` command runs. The public key defaults to the one of ``paths.signing_key``."""
    key = load_public_key(public_key_file or paths.signing_key)
    engine = make_engine(database_url or paths.default_database_url)
    try:
        return await verify_chains(engine, key, room_id, read_head(paths.checkpoint_head))
    finally:
        await engine.dispose()
