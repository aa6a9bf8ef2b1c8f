"""Nightscout-style authentication: API secret digests, access tokens, roles and fail delay.

Layer: server (auth). Stdlib only; never imports starlette or the core packages.

A credential is the SHA-1 (any case) or SHA-512 (lower case) hex digest of ``API_SECRET``,
compared in constant time, or an access token. Both may arrive in the ``api-secret`` header,
``?secret=``, ``?token=`` or a ``secret``/``token`` body field, as in Nightscout. The plain
secret is refused. A request whose credentials do not resolve fails (401) and pushes that
address's penalty ``fail_delay_s`` further out; until then, requests from that address that
carry credentials first wait (Nightscout's AUTH_FAIL_DELAY).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "UNAUTHORIZED_BODY",
    "AuthResult",
    "Authenticator",
    "FailureDelay",
    "permissions_of",
    "verifyauth_message",
]

UNAUTHORIZED_BODY = {"status": 401, "message": "Unauthorized", "description": "Invalid/Missing"}
_ROLE_PERMISSIONS = {
    "admin": frozenset({"read", "create", "admin"}),
    "readable": frozenset({"read"}),
    "denied": frozenset(),
}
_MAX_TRACKED_ADDRESSES = 10_000  # prune expired penalties beyond this many addresses


def permissions_of(role: str | None) -> frozenset[str]:
    """Return the verbs (``read``, ``create``, ``admin``) a role grants."""
    return _ROLE_PERMISSIONS.get(role or "denied", frozenset())


@dataclass(frozen=True)
class AuthResult:
    """What a request's credentials resolved to.

    Attributes:
        presented: the request carried at least one credential.
        role: ``admin`` for the API secret, the token's role, or None (not resolved).
        permissions: the role's verbs plus the default role's.
    """

    presented: bool
    role: str | None
    permissions: frozenset[str]

    @property
    def failed(self) -> bool:
        """Credentials were presented but none resolved."""
        return self.presented and self.role is None

    def can(self, verb: str) -> bool:
        """True when the request may ``verb`` (``read`` or ``create``); never after a failure."""
        return not self.failed and verb in self.permissions


def verifyauth_message(result: AuthResult) -> dict[str, object]:
    """Return the ``message`` object of Nightscout's ``GET /api/v1/verifyauth``."""
    ok = not result.failed and bool(result.permissions)
    return {
        "canRead": result.can("read"),
        "canWrite": result.can("create"),
        "isAdmin": result.can("admin"),
        "message": "OK" if ok else "UNAUTHORIZED",
        "rolefound": "FOUND" if result.role is not None else "NOTFOUND",
        "permissions": "ROLE" if result.role is not None else "DEFAULT",
    }


class FailureDelay:
    """Per-address penalty after failed authentications, as Nightscout's delayer."""

    def __init__(self, delay_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        """Args: delay_s: penalty per failure; clock: a monotonic clock in seconds."""
        self._delay_s = delay_s
        self._clock = clock
        self._until: dict[str, float] = {}

    def remaining(self, address: str) -> float:
        """Seconds a request from ``address`` must still wait (0 when none)."""
        until = self._until.get(address)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._until[address]
            return 0.0
        return left

    def add_failure(self, address: str) -> None:
        """Push ``address``'s penalty ``delay_s`` further into the future."""
        now = self._clock()
        if len(self._until) >= _MAX_TRACKED_ADDRESSES:
            self._until = {a: u for a, u in self._until.items() if u > now}
        self._until[address] = max(self._until.get(address, now), now) + self._delay_s


class Authenticator:
    """Resolve credentials to permissions."""

    def __init__(self, api_secret: str | None, default_role: str,
                 find_token_role: Callable[[str], str | None], delay: FailureDelay) -> None:
        """Precompute the accepted digests of ``api_secret``.

        Args:
            api_secret: the admin secret, or None (then only tokens resolve).
            default_role: the role of requests without credentials.
            find_token_role: looks an access token up; None when unknown.
            delay: the failure penalty shared by all requests.
        """
        self._digests: tuple[tuple[bytes, bool], ...] = ()
        if api_secret:
            raw = api_secret.encode("utf-8")
            self._digests = ((hashlib.sha1(raw).hexdigest().encode(), True),  # Nightscout's scheme, not ours
                             (hashlib.sha512(raw).hexdigest().encode(), False))
        self._default = permissions_of(default_role)
        self._find_token_role = find_token_role
        self.delay = delay

    def resolve(self, secrets: Iterable[str], tokens: Iterable[str]) -> AuthResult:
        """Resolve credentials without any delay (may look tokens up in the database).

        Args:
            secrets: values that may be a secret digest or a token (``api-secret``, ``secret``).
            tokens: values that may only be a token (``token``).
        """
        secrets, tokens = [s for s in secrets if s], [t for t in tokens if t]
        role: str | None = None
        for value in secrets:
            if self._matches_secret(value):
                role = "admin"
                break
        if role is None:
            for value in (*tokens, *secrets):
                role = self._find_token_role(value)
                if role is not None:
                    break
        presented = bool(secrets or tokens)
        permissions = self._default | permissions_of(role) if role is not None or not presented else frozenset()
        return AuthResult(presented=presented, role=role, permissions=permissions)

    async def authenticate(self, address: str, secrets: Iterable[str], tokens: Iterable[str]) -> AuthResult:
        """Wait out ``address``'s penalty if credentials are presented, resolve, record failure.

        Token look-ups run in a worker thread, so a busy database never stalls the event loop.
        """
        secrets, tokens = [s for s in secrets if s], [t for t in tokens if t]
        if not (secrets or tokens):
            return self.resolve(secrets, tokens)
        wait_s = self.delay.remaining(address)
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        result = await asyncio.to_thread(self.resolve, secrets, tokens)
        if result.failed:
            self.delay.add_failure(address)
        return result

    def _matches_secret(self, value: str) -> bool:
        """Compare ``value`` with the secret's digests in constant time."""
        presented = value.encode("utf-8", "surrogatepass")
        matched = False
        for digest, case_insensitive in self._digests:
            candidate = presented.lower() if case_insensitive else presented
            matched |= hmac.compare_digest(candidate, digest)
        return matched
