"""Nightscout credentials: what goes in the request headers. Layer: nightscout, pure.

Imports the standard library and :mod:`bridge.errors` only (no httpx, no clock, no I/O).

Nightscout v1 accepts (NIGHTSCOUT_API.md §2):

* the site's ``API_SECRET`` as ``api-secret: <SHA-1 hex>`` (the plain secret is refused),
* an access token (``<name>-<16 hex>``) in the same ``api-secret`` header, or
* ``Authorization: Bearer <JWT>`` with a JWT from ``GET /api/v2/authorization/request/<token>``.

A token is never sent as ``?token=`` in a URL. The plain secret is not even kept: only its
SHA-1 is stored, and no ``repr`` shows either.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

from bridge.errors import ConfigError

__all__ = [
    "API_SECRET_HEADER",
    "JWT_REFRESH_MARGIN_S",
    "JWT_REQUEST_PATH",
    "MIN_SECRET_LEN",
    "CredentialKind",
    "Credentials",
    "JWTGrant",
    "parse_jwt_grant",
    "sha1_hex",
]

API_SECRET_HEADER = "api-secret"
#: Nightscout refuses to start with an API_SECRET shorter than this (MIN_PASSPHRASE_LENGTH).
MIN_SECRET_LEN = 12
#: Prefix of the JWT exchange; the access token follows it as the last path segment.
JWT_REQUEST_PATH = "/api/v2/authorization/request/"
#: A JWT is renewed this long before it expires (Nightscout's JWTs live 8 h).
JWT_REFRESH_MARGIN_S = 300

_SHA1_HEX = re.compile(r"[0-9a-fA-F]{40}")
_TOKEN = re.compile(r"[A-Za-z0-9._~-]+")

CredentialKind = Literal["secret", "hashed-secret", "token"]


def sha1_hex(secret: str) -> str:
    """The lowercase SHA-1 hex digest of a secret's UTF-8 bytes, as Nightscout compares it."""
    return hashlib.sha1(secret.encode("utf-8")).hexdigest()  # noqa: S324 - Nightscout's scheme


@dataclass(frozen=True, slots=True)
class JWTGrant:
    """A JWT from ``/api/v2/authorization/request/<token>`` and its expiry (unix seconds)."""

    jwt: str = field(repr=False)
    expires_at: float


def parse_jwt_grant(body: object) -> JWTGrant:
    """Read the JWT exchange's reply (``{"token": <JWT>, "exp": <unix s>, ...}``).

    Raises:
        ValueError: the reply has no usable token.
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("token"), str) or not body["token"]:
        raise ValueError("the JWT exchange answered without a token")
    exp = body.get("exp")
    expires_at = float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else 0.0
    return JWTGrant(body["token"], expires_at)


@dataclass(frozen=True, slots=True)
class Credentials:
    """How to authenticate to one Nightscout site.

    Build with :meth:`from_secret` or :meth:`from_token`. ``header_value`` is what the
    ``api-secret`` header carries (the SHA-1 hex of a secret, or the access token); it is
    kept out of ``repr``.

    Attributes:
        kind: ``secret`` (a plain secret, hashed here), ``hashed-secret`` (given as 40-hex
            SHA-1) or ``token`` (an access token).
        header_value: the ``api-secret`` header's value.
        bearer: for a token, exchange it for a JWT and send ``Authorization: Bearer``.
        short_secret: the plain secret is shorter than Nightscout's 12-character minimum,
            so it cannot be the site's API_SECRET (used in the refusal hint only).
    """

    kind: CredentialKind
    header_value: str = field(repr=False)
    bearer: bool = False
    short_secret: bool = False

    @classmethod
    def from_secret(cls, secret: str) -> Credentials:
        """Credentials for the site's API_SECRET, given plain or as its 40-hex SHA-1.

        A trailing newline (as a secret file usually has) is dropped.

        Raises:
            ConfigError: the secret is empty.
        """
        value = secret.rstrip("\r\n")
        if not value:
            raise ConfigError("the Nightscout API secret is empty", hint="set API_SECRET or --secret-file")
        if _SHA1_HEX.fullmatch(value):
            return cls("hashed-secret", value.lower())
        return cls("secret", sha1_hex(value), short_secret=len(value) < MIN_SECRET_LEN)

    @classmethod
    def from_token(cls, token: str, *, bearer: bool = False) -> Credentials:
        """Credentials for a Nightscout access token (``<subject>-<16 hex>``).

        Args:
            token: the access token.
            bearer: exchange it for a JWT (``Authorization: Bearer``) instead of sending it
                in the ``api-secret`` header.

        Raises:
            ConfigError: the token is empty or has characters a token never has.
        """
        value = token.strip()
        if not value:
            raise ConfigError("the Nightscout access token is empty")
        if not _TOKEN.fullmatch(value):
            raise ConfigError(
                "the Nightscout access token has characters a token never has",
                hint="copy the token from Nightscout's Admin Tools (it looks like name-0123456789abcdef)",
            )
        return cls("token", value, bearer=bearer)

    @property
    def is_token(self) -> bool:
        """True for an access token."""
        return self.kind == "token"

    def headers(self, jwt: str | None = None) -> dict[str, str]:
        """The authentication headers of a request.

        Args:
            jwt: the current JWT when :attr:`bearer` is set.
        """
        if self.bearer:
            if jwt is None:
                raise ValueError("bearer credentials need a JWT")
            return {"Authorization": f"Bearer {jwt}"}
        return {API_SECRET_HEADER: self.header_value}

    def jwt_request_path(self) -> str:
        """The path of the JWT exchange for this token (carries the token: never log it)."""
        if not self.is_token:
            raise ValueError("only an access token can be exchanged for a JWT")
        return JWT_REQUEST_PATH + quote(self.header_value, safe="")

    def redact(self, text: str) -> str:
        """``text`` with the header value (SHA-1 or token) replaced by ``***``."""
        return text.replace(self.header_value, "***") if self.header_value else text

    def refusal(self, status: int, *, permission: str) -> tuple[str, str]:
        """A message naming why Nightscout answered 401/403, and what to try.

        Args:
            status: the HTTP status.
            permission: the permission the refused request needs, e.g. ``api:entries:create``.

        Returns:
            ``(message, hint)``; neither contains the secret or the token.
        """
        if self.kind == "secret":
            message = (
                f"Nightscout refused the API secret (HTTP {status}): the bridge sent the SHA-1 of the "
                "configured secret and the server did not accept it"
            )
            hint = "check that API_SECRET (or the secret file) holds exactly the site's API_SECRET"
            if self.short_secret:
                hint += f"; Nightscout secrets have at least {MIN_SECRET_LEN} characters, this one is shorter"
        elif self.kind == "hashed-secret":
            message = (
                f"Nightscout refused the hashed API secret (HTTP {status}): the configured 40-hex value "
                "was sent as given and the server did not accept it"
            )
            hint = (
                "check that it is the SHA-1 of the site's API_SECRET "
                "(printf %s \"$API_SECRET\" | sha1sum), or configure the plain secret instead"
            )
        else:
            how = "as a Bearer JWT" if self.bearer else "in the api-secret header"
            message = (
                f"Nightscout refused the access token sent {how} (HTTP {status}): the token is unknown "
                f"or its role lacks {permission}"
            )
            hint = (
                f"no default Nightscout role grants {permission}: give the token's subject the admin role "
                f"or a custom role with {permission} and the matching read permission (Admin Tools)"
            )
        return message, hint
