"""The sovereign archive store: encrypted at rest, tamper-evident, searchable without
plaintext, on SQLite and PostgreSQL. This package's names below are its whole public API;
``server_bridge`` and the bot use nothing else."""

from .errors import (
    ArchiveBusyError,
    ArchiveError,
    ArchiveIntegrityError,
    ArchiveKeyError,
    ArchiveStorageFullError,
    ArchiveUnavailableError,
    ContentDestroyedError,
    InvalidEventError,
    LegalHoldError,
    UnknownEventError,
)
from .keys import FileKeyProvider, KeyProvider
from .models import (
    PERMANENT,
    AccessEntry,
    Actor,
    ArchivedEventMeta,
    ArchivePaths,
    BreakKind,
    Decryption,
    DestructionReport,
    EventRecord,
    IngestResult,
    RoomSummary,
    RoomVerification,
    SearchHit,
    StoredEvent,
    VerifyReport,
)
from .store import Archive, Role, open_archive, verify_archive
from .validate import MAX_CONTENT_BYTES

__all__ = [
    "MAX_CONTENT_BYTES",
    "PERMANENT",
    "AccessEntry",
    "Actor",
    "Archive",
    "ArchivedEventMeta",
    "ArchiveBusyError",
    "ArchiveError",
    "ArchiveIntegrityError",
    "ArchiveKeyError",
    "ArchivePaths",
    "ArchiveStorageFullError",
    "ArchiveUnavailableError",
    "BreakKind",
    "ContentDestroyedError",
    "Decryption",
    "DestructionReport",
    "EventRecord",
    "FileKeyProvider",
    "IngestResult",
    "InvalidEventError",
    "KeyProvider",
    "LegalHoldError",
    "Role",
    "RoomSummary",
    "RoomVerification",
    "SearchHit",
    "StoredEvent",
    "UnknownEventError",
    "VerifyReport",
    "open_archive",
    "verify_archive",
]
