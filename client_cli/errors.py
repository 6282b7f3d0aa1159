"""Typed errors of the `rijkschat` client.

Every failure a user can cause or meet (not logged in, a wrong password, an unknown room, a
server that does not answer) is a :class:`CliError`; the entry point prints its message as one
line on stderr and exits with its ``exit_code``. Anything else is a bug and still gets one line.
"""

from __future__ import annotations


class CliError(Exception):
    """Base class: shown as ``rijkschat: <message>``, exit code 1."""

    exit_code = 1


class UsageError(CliError):
    """The command line itself is wrong (bad argument combination)."""

    exit_code = 2


class NotLoggedInError(CliError):
    """No stored session, or the homeserver no longer accepts its access token."""


class LoginFailedError(CliError):
    """The homeserver refused the user name or password."""


class UnreachableError(CliError):
    """The homeserver (or the bridge) does not answer."""


class UnknownRoomError(CliError):
    """The ROOM argument names no room the user can see, or more than one."""


class UnknownEventError(CliError):
    """The EVENT argument names no event of the room."""


class MatrixRequestError(CliError):
    """The homeserver answered a request with an error."""


class VerificationError(CliError):
    """An interactive verification was cancelled, rejected or timed out."""


class ArchiveApiError(CliError):
    """The bridge's review API refused a request or answered with an error."""
