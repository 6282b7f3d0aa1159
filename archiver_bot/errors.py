"""Typed errors of the archiver bot."""

from __future__ import annotations


class ArchiverError(Exception):
    """Base class: reported by `rijkschat-archiver` as one line and a non-zero exit."""


class ConfigError(ArchiverError):
    """The data dir lacks the archiver's account file or it is damaged."""


class LoginError(ArchiverError):
    """The homeserver refused the archiver's login."""
