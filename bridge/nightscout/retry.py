"""The retry policy for one Nightscout request. Layer: nightscout, pure (tenacity, stdlib).

Imports neither httpx nor a clock: the client classifies failures into
:class:`~bridge.errors.UploadUnavailableError` (retry) and
:class:`~bridge.errors.UploadRejectedError` (never retried) and passes ``sleep`` in.

Seconds-scale retries happen here, inside one call: exponential backoff with jitter for
connection errors, timeouts, 408, 429 and 5xx, or exactly the server's ``Retry-After`` when it
sent one. A ``Retry-After`` longer than :attr:`RetryPolicy.max_retry_after_s` is not waited
out in the call: the error is raised at once (with ``retry_after_s`` set) so the outbox can
schedule the next attempt. Minutes-to-days retries belong to the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import tenacity

from bridge.errors import UploadUnavailableError

__all__ = [
    "DEFAULT_RETRY",
    "NO_RETRY",
    "RetryPolicy",
    "parse_retry_after",
    "retry_after_of",
]

log = logging.getLogger(__name__)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    Args:
        value: the header value, or None when absent.
        now: the current UTC time (for the HTTP-date form).

    Returns:
        Seconds (never negative), or None when absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT by definition
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def retry_after_of(exc: BaseException | None) -> float | None:
    """The ``retry_after_s`` an UploadUnavailableError carries, if any."""
    value = getattr(exc, "retry_after_s", None)
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry one request.

    Attributes:
        attempts: total attempts, the first included (1 = no retry).
        initial_s: first backoff wait.
        max_wait_s: cap of one backoff wait.
        jitter_s: random extra of up to this many seconds on each backoff wait.
        max_retry_after_s: the longest ``Retry-After`` waited out inside the call.
    """

    attempts: int = 4
    initial_s: float = 1.0
    max_wait_s: float = 30.0
    jitter_s: float = 1.0
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    def wait_s(self, retry_state: tenacity.RetryCallState) -> float:
        """The wait before the next attempt: the server's Retry-After, else backoff with jitter."""
        outcome = retry_state.outcome
        retry_after = retry_after_of(outcome.exception() if outcome is not None else None)
        if retry_after is not None:
            return retry_after
        backoff = tenacity.wait_exponential_jitter(initial=self.initial_s, max=self.max_wait_s, jitter=self.jitter_s)
        return float(backoff(retry_state))

    def should_stop(self, retry_state: tenacity.RetryCallState) -> bool:
        """Stop after the last attempt, or when the server asked for a longer pause than we wait."""
        if retry_state.attempt_number >= self.attempts:
            return True
        outcome = retry_state.outcome
        retry_after = retry_after_of(outcome.exception() if outcome is not None else None)
        return retry_after is not None and retry_after > self.max_retry_after_s

    def retrying(self, sleep: Callable[[float], None]) -> tenacity.Retrying:
        """A tenacity controller for one call; ``sleep`` is injected (tests pass a recorder).

        Only :class:`~bridge.errors.UploadUnavailableError` is retried; the last one is
        re-raised as it is.
        """
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(UploadUnavailableError),
            wait=self.wait_s,
            stop=self.should_stop,
            sleep=sleep,
            reraise=True,
            before_sleep=_log_retry,
        )


def _log_retry(retry_state: tenacity.RetryCallState) -> None:
    outcome = retry_state.outcome
    exc = outcome.exception() if outcome is not None else None
    wait = retry_state.next_action.sleep if retry_state.next_action is not None else 0.0
    log.warning("nightscout: %s; attempt %d failed, retrying in %.1f s", exc, retry_state.attempt_number, wait)


#: The default: 4 attempts, 1 s, 2 s, 4 s (+ up to 1 s jitter each), at most 30 s per wait.
DEFAULT_RETRY = RetryPolicy()
#: One attempt only (the caller's outbox retries later).
NO_RETRY = RetryPolicy(attempts=1)
