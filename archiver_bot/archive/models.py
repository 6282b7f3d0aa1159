"""Plain data types of the public archive API (no I/O here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Decryption = Literal["decrypted", "plaintext", "undecryptable"]
DECRYPTION_STATES: frozenset[str] = frozenset({"decrypted", "plaintext", "undecryptable"})

BreakKind = Literal["modified", "missing", "inserted", "reordered", "bad_signature"]

#: Retention class that keeps content forever (default for rooms with a key official).
PERMANENT = "bewaren"


@dataclass(frozen=True)
class ArchivePaths:
    """Where one archive keeps its database and its keys (keys never go into the database)."""

    root: Path
    database: Path
    kek: Path
    signing_key: Path
    keyring: Path

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> ArchivePaths:
        root = Path(data_dir) / "archive"
        return cls(
            root=root,
            database=root / "archive.db",
            kek=root / "kek.key",
            signing_key=root / "signing.key",
            keyring=root / "keyring",
        )

    @property
    def checkpoint_head(self) -> Path:
        """The newest checkpoint's number and hash, kept outside the database."""
        return self.root / "checkpoint.head"

    @property
    def default_database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.database}"


@dataclass(frozen=True)
class EventRecord:
    """One Matrix event as handed to :meth:`Archive.ingest`.

    ``content`` is the decrypted content (``decryption="decrypted"``), the plain content of an
    unencrypted event (``"plaintext"``), or the encrypted content when it could not be
    decrypted (``"undecryptable"``). ``encrypted`` keeps the original ``m.room.encrypted``
    content of an encrypted event.
    """

    event_id: str
    room_id: str
    sender: str
    origin_server_ts: int
    type: str
    content: Mapping[str, Any]
    state_key: str | None = None
    decryption: Decryption = "plaintext"
    sender_device: str | None = None
    sender_key: str | None = None
    session_id: str | None = None
    encrypted: Mapping[str, Any] | None = None
    redacts: str | None = None
    relates_to: Mapping[str, Any] | None = None
    unsigned: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class IngestResult:
    inserted: int
    duplicates: int
    rejected: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Actor:
    """Who reads the archive and why; every read API call is logged with it."""

    user_id: str
    purpose: str


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    room_id: str
    sender: str
    sender_device: str | None
    origin_server_ts: int
    type: str
    state_key: str | None
    content: dict[str, Any] | None
    decryption: Decryption
    relates_to: dict[str, Any] | None
    redacted_by: str | None
    edits: list[str]
    has_attachment: bool
    sender_key: str | None = None
    session_id: str | None = None
    late_decryption: bool = False
    destroyed: bool = False
    encrypted: dict[str, Any] | None = None
    unsigned: dict[str, Any] | None = None
    reactions: list[str] = field(default_factory=list)
    #: set when the late decryption used a room key imported from a key export (weaker
    #: than a key received over Olm from the sender's device): who imported it, when
    #: (``imported_by``, ``imported_at`` in ms) and the export file's ``file_sha256``
    imported_key: dict[str, Any] | None = None


@dataclass(frozen=True)
class ArchivedEventMeta:
    """What the completeness audit may see of an archived event without reading it (and so
    without an access-log entry): its id, time and the plaintext type and state key."""

    event_id: str
    origin_server_ts: int
    type: str | None
    state_key: str | None


@dataclass(frozen=True)
class RoomSummary:
    room_id: str
    name: str | None
    members: list[str]
    key_officials: list[str]
    event_count: int
    first_ts: int | None
    last_ts: int | None
    undecryptable: int
    retention: str
    legal_hold: bool
    left_reason: str | None = None


@dataclass(frozen=True)
class SearchHit:
    event: StoredEvent
    terms: tuple[str, ...]

    @property
    def event_id(self) -> str:
        return self.event.event_id

    @property
    def room_id(self) -> str:
        return self.event.room_id


@dataclass(frozen=True)
class RoomVerification:
    room_id: str
    ok: bool
    entries: int
    position: int | None = None
    kind: BreakKind | None = None
    detail: str = ""
    #: late decryptions in this chain made with imported room keys (weaker provenance)
    imported_decryptions: int = 0


@dataclass(frozen=True)
class VerifyReport:
    rooms: dict[str, RoomVerification]
    checkpoints: int
    problems: list[str] = field(default_factory=list)
    access_log: RoomVerification | None = None
    #: the chain of Woo requests and assessments (None when only one room was verified)
    woo_log: RoomVerification | None = None

    @property
    def ok(self) -> bool:
        return (
            not self.problems
            and all(r.ok for r in self.rooms.values())
            and (self.access_log is None or self.access_log.ok)
            and (self.woo_log is None or self.woo_log.ok)
        )


@dataclass(frozen=True)
class AccessEntry:
    seq: int
    ts: int
    user_id: str
    purpose: str
    action: str
    details: dict[str, Any]


@dataclass(frozen=True)
class DestructionReport:
    destroyed_events: int
    destroyed_keys: int
    held_rooms: list[str]


WooDecision = Literal["openbaar", "deels_openbaar", "niet_openbaar"]
WOO_DECISIONS: tuple[str, ...] = ("openbaar", "deels_openbaar", "niet_openbaar")


@dataclass(frozen=True)
class WooSpan:
    """A withheld character range ``[start, end)`` of a message's plain body."""

    start: int
    end: int
    ground: str


@dataclass(frozen=True)
class WooRequest:
    """A Woo request: what is asked (reference, title, received date) and its scope
    (rooms, optional period in ms and search query)."""

    id: str
    reference: str
    title: str
    received: str
    rooms: list[str]
    from_ts: int | None
    to_ts: int | None
    query: str | None
    created_by: str
    created_ts: int


@dataclass(frozen=True)
class WooAssessment:
    """One assessment of one archived event for one request; a later one for the same
    event supersedes it (both are kept). ``seq`` is its position in the Woo log."""

    seq: int
    request_id: str
    event_id: str
    decision: WooDecision
    grounds: list[str]
    spans: list[WooSpan]
    note: str | None
    assessed_by: str
    assessed_ts: int
