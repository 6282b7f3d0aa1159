"""Typed exceptions of the archive store.

Hierarchy::

    ArchiveError                      base of everything raised by the store
    ├── ArchiveKeyError               key-encryption key or signing key missing, wrong or unsafe
    ├── InvalidEventError             an event that cannot be archived (too big, bad UTF-8, ...)
    ├── UnknownEventError             a read of an event id that is not in the archive
    ├── ArchiveUnavailableError       the database stayed locked/unreachable after retries
    │   └── ArchiveStorageFullError   the database or disk is full
    ├── ArchiveIntegrityError         stored content does not authenticate (altered or moved)
    ├── ArchiveBusyError              another process already writes to this archive
    ├── WooInputError                 a Woo request or assessment that cannot be stored
    │   ├── UnknownWooRequestError    no Woo request with that id
    │   └── DuplicateWooReferenceError  a Woo request with that reference exists already
    ├── LegalHoldError                destruction refused because of a legal hold
    └── ContentDestroyedError         content was crypto-shredded and is gone for good
"""

from __future__ import annotations


class ArchiveError(Exception):
    """Base class of all archive store errors."""


class ArchiveKeyError(ArchiveError):
    """A key needed to open or read the archive is missing, wrong or unsafe."""


class InvalidEventError(ArchiveError):
    """An event was rejected; ``event_id`` names it and ``reason`` says why."""

    def __init__(self, event_id: str, reason: str) -> None:
        super().__init__(f"event {event_id!r} rejected: {reason}")
        self.event_id = event_id
        self.reason = reason


class UnknownEventError(ArchiveError):
    """The requested event id is not in the archive."""


class ArchiveUnavailableError(ArchiveError):
    """The database could not be written after retries; nothing was committed."""


class ArchiveStorageFullError(ArchiveUnavailableError):
    """The database or its disk is full; nothing was committed."""


class LegalHoldError(ArchiveError):
    """Destruction was refused because the room is under legal hold."""


class ContentDestroyedError(ArchiveError):
    """The content was destroyed (crypto-shredded) after its retention period."""


class ArchiveIntegrityError(ArchiveError):
    """A ciphertext does not belong to the row it sits in (moved, swapped or altered)."""


class ArchiveBusyError(ArchiveError):
    """Another archiver process already holds this archive's writer lock."""


class WooInputError(ArchiveError):
    """A Woo request or assessment was refused (bad input); nothing was stored."""


class UnknownWooRequestError(WooInputError):
    """No Woo request with this id is in the archive."""


class DuplicateWooReferenceError(WooInputError):
    """A Woo request with this reference is already in the archive."""
