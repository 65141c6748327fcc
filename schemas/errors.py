"""Domain errors: what went wrong, in words for the user; nothing about HTTP.

The API maps each class to a status in one place (``api.errors``); the CLI
prints the message on one line and exits non-zero.
"""

from __future__ import annotations


class SibiaoError(Exception):
    """Base of every error the platform raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class CatalogError(SibiaoError):
    """The layer catalog files are malformed."""


class ConfigurationError(SibiaoError):
    """Settings are missing or contradictory."""


class DatabaseError(SibiaoError):
    """The database cannot be reached or is not usable as it is."""


class DatabaseUnavailable(DatabaseError):
    """The database is down or restarting: try again shortly."""


class NotFound(SibiaoError):
    """A named thing (layer, case, load) does not exist."""


class InvalidInput(SibiaoError):
    """A request or file does not satisfy what it must."""


class Conflict(SibiaoError):
    """The request clashes with the current state (illegal transition, stale version)."""


class Forbidden(SibiaoError):
    """The caller may not do this."""


class Unauthenticated(SibiaoError):
    """No credentials, or credentials that do not hold (bad password, expired token, bad key)."""


class TooManyRequests(SibiaoError):
    """The caller sent more requests than the policy allows in a window."""

    def __init__(self, message: str, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after
