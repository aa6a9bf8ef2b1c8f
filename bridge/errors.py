"""The project's one exception tree. Layer: bottom; imports the standard library only.

Exit codes are sysexits (FIELD_NOTES.md (c)); the CLI is the only place that turns an
error into a process exit.

::

    BridgeError                      70 EX_SOFTWARE
    ├── ConfigError                  78 EX_CONFIG      missing or invalid setting
    ├── ReceiverError                74 EX_IOERR       serial I/O that survived retries
    │   ├── ReceiverNotFoundError    69 EX_UNAVAILABLE no port matched 22a3:0047 / path missing
    │   ├── ReceiverPermissionError  77 EX_NOPERM      port exists but cannot be opened
    │   ├── ReceiverBusyError        75 EX_TEMPFAIL    another process (the daemon) owns the port
    │   ├── ReceiverTimeoutError     74                also a builtin TimeoutError
    │   ├── ReceiverDisconnectedError 74               the link vanished mid-session
    │   └── ProtocolError            74                a reply we cannot accept
    │       ├── FrameError                             damaged or impossible framing
    │       │   └── CRCError                           a CRC did not match
    │       ├── NAKError                               receiver answered NAK or an error status
    │       └── RecordError                            a page or record that cannot be decoded
    ├── StoreError                   74 EX_IOERR
    └── UploadError                  75 EX_TEMPFAIL
        ├── UploadRejectedError      77 EX_NOPERM      4xx other than 408/413/429
        └── UploadUnavailableError   75                network, timeout, 5xx, 429
"""

from __future__ import annotations

__all__ = [
    "EX_CONFIG",
    "EX_IOERR",
    "EX_NOPERM",
    "EX_OK",
    "EX_SOFTWARE",
    "EX_TEMPFAIL",
    "EX_UNAVAILABLE",
    "EX_USAGE",
    "BridgeError",
    "CRCError",
    "ConfigError",
    "FrameError",
    "NAKError",
    "ProtocolError",
    "ReceiverBusyError",
    "ReceiverDisconnectedError",
    "ReceiverError",
    "ReceiverNotFoundError",
    "ReceiverPermissionError",
    "ReceiverTimeoutError",
    "RecordError",
    "StoreError",
    "UploadError",
    "UploadRejectedError",
    "UploadUnavailableError",
]

EX_OK = 0
EX_USAGE = 64
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose.

    Args:
        message: what went wrong, for the user.
        hint: what to try next, printed on its own line by the CLI.
    """

    exit_code: int = EX_SOFTWARE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(BridgeError):
    """A setting is missing or invalid."""

    exit_code = EX_CONFIG


class ReceiverError(BridgeError):
    """Talking to the receiver failed."""

    exit_code = EX_IOERR


class ReceiverNotFoundError(ReceiverError):
    """No receiver is attached (no port matched, or the path does not exist)."""

    exit_code = EX_UNAVAILABLE


class ReceiverPermissionError(ReceiverError):
    """The receiver's port exists but this user may not open it."""

    exit_code = EX_NOPERM


class ReceiverBusyError(ReceiverError):
    """Another process holds the receiver's port (one process owns the receiver)."""

    exit_code = EX_TEMPFAIL


class ReceiverTimeoutError(ReceiverError, TimeoutError):
    """The receiver did not answer in time."""


class ReceiverDisconnectedError(ReceiverError):
    """The link disappeared (cable pulled, receiver reset)."""


class ProtocolError(ReceiverError):
    """A reply that cannot be accepted."""


class FrameError(ProtocolError):
    """Damaged or impossible framing."""


class CRCError(FrameError):
    """A packet, page-header or record CRC did not match."""


class NAKError(ProtocolError):
    """The receiver answered with a status other than ACK.

    Args:
        message: what was refused.
        status: the status byte the receiver sent.
    """

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class RecordError(ProtocolError):
    """A page or record that cannot be decoded."""


class StoreError(BridgeError):
    """The local store cannot be read or written."""

    exit_code = EX_IOERR


class UploadError(BridgeError):
    """An upload to Nightscout did not succeed.

    Args:
        message: what went wrong, for the user.
        hint: what to try next.
        status: the HTTP status, when there was an answer.
        retry_after_s: the server's Retry-After, when it gave one.
        delivered: how many leading documents were acknowledged before the failure.
    """

    exit_code = EX_TEMPFAIL

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status: int | None = None,
        retry_after_s: float | None = None,
        delivered: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.retry_after_s = retry_after_s
        self.delivered = delivered


class UploadRejectedError(UploadError):
    """Nightscout refused the upload (4xx other than 408/413/429): not retried."""

    exit_code = EX_NOPERM


class UploadUnavailableError(UploadError):
    """Nightscout cannot be reached right now: retry later."""
