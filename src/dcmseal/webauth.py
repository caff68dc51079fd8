"""How dcmseal signs in to a DICOMweb service (WADO-RS sources of burn, STOW-RS and QIDO-RS of import).

HTTP Basic authentication (RFC 7617) with a user and a password, or a bearer token (RFC 6750). Neither is ever
taken from a URL on the command line (``ps`` and the shell history show it): the CLI reads them from a file or
an environment variable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

__all__ = ["HttpCredentials"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpCredentials:
    """A user and password (HTTP Basic), or a bearer token; reprs and logs never show the secret."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.token is not None and self.username is not None:
            raise ValueError("a bearer token or a user and password, not both")
        if self.password is not None and self.username is None:
            raise ValueError("a password needs its user")

    def apply(self, session: requests.Session) -> None:
        """Sign every request of ``session`` in."""
        if self.token is not None:
            session.headers["Authorization"] = f"Bearer {self.token}"
        elif self.username is not None:
            session.auth = (self.username, self.password or "")
