"""Typed errors of the server side. Each carries a message fit for one clear line."""

from __future__ import annotations


class BridgeError(Exception):
    """Base class: an error that `rijkschat-server` reports as one line and a non-zero exit."""

    exit_code = 2


class RosterError(BridgeError):
    """The roster file is missing, unreadable or has an invalid entry."""


class DataDirError(BridgeError):
    """The data directory cannot be created or written."""


class PortInUseError(BridgeError):
    """A port that a component must listen on is already taken."""


class HomeserverError(BridgeError):
    """The homeserver failed to start, died, or answered an admin call with an error."""


class HomeserverTimeoutError(HomeserverError):
    """The homeserver did not answer within the start-up timeout."""


class ProvisioningError(BridgeError):
    """A roster user could not be registered or logged in."""
