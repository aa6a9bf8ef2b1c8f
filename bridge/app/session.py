"""open_receiver(): resolve --device, open the link, hand out a Receiver. Layer: app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bridge.dexcom import Receiver, SerialLink, Timeouts, resolve_device
from bridge.dexcom.receiver import DEFAULT_TIMEOUTS, RECONNECT_WAIT_S

__all__ = ["open_receiver"]


@contextmanager
def open_receiver(
    device: str = "auto",
    *,
    reconnect_wait_s: float = RECONNECT_WAIT_S,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    attempts: int = 3,
) -> Iterator[Receiver]:
    """Open the receiver at ``device`` (a path, a pyserial URL or ``auto``).

    With ``auto`` the port is searched again after an unplug, since it may come back under
    another name.

    Raises:
        bridge.errors.ReceiverNotFoundError: no receiver at that path / none found.
        bridge.errors.ReceiverPermissionError: the port cannot be opened by this user.
    """
    url = resolve_device(device)
    resolve = (lambda: resolve_device("auto")) if device == "auto" else None
    link = SerialLink(url, resolve=resolve)
    receiver = Receiver(link, reconnect_wait_s=reconnect_wait_s, timeouts=timeouts, attempts=attempts)
    link.open()
    try:
        yield receiver
    finally:
        link.close()
