"""find_receivers(): which ports hold a Dexcom receiver. Layer: dexcom adapter.

``serial.tools.list_ports`` by VID:PID 22a3:0047 first; pyusb only to tell a user that a
receiver is on the bus but has no tty (cdc_acm not loaded, or claimed by something else).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from serial.tools import list_ports

from bridge.errors import ReceiverNotFoundError

__all__ = ["DEXCOM_PID", "DEXCOM_VID", "PortInfo", "find_receivers", "reset_usb_receiver", "resolve_device"]

log = logging.getLogger(__name__)

DEXCOM_VID = 0x22A3
DEXCOM_PID = 0x0047
STABLE_LINK = "/dev/dexcom"  # made by udev/70-dexcom-bridge.rules


@dataclass(frozen=True, slots=True)
class PortInfo:
    """One receiver port found on this machine."""

    device: str
    description: str
    readable: bool


def find_receivers() -> list[PortInfo]:
    """Every tty whose USB VID:PID is a Dexcom receiver's, sorted by device path."""
    found = [
        PortInfo(p.device, p.description or "DexCom receiver", os.access(p.device, os.R_OK | os.W_OK))
        for p in list_ports.comports()
        if p.vid == DEXCOM_VID and p.pid == DEXCOM_PID
    ]
    return sorted(found, key=lambda p: p.device)


def _usb_receiver_present() -> bool:
    """True when pyusb sees a receiver on the bus (used only to explain a missing tty)."""
    try:
        import usb.core  # noqa: PLC0415 - optional USB-level identification

        return usb.core.find(idVendor=DEXCOM_VID, idProduct=DEXCOM_PID) is not None
    except Exception as exc:  # noqa: BLE001 - no libusb backend is not an error here
        log.debug("pyusb unavailable: %s", exc)
        return False


def resolve_device(device: str) -> str:
    """Turn ``--device`` into a port path: ``auto`` searches, anything else is used as given.

    Raises:
        ReceiverNotFoundError: ``auto`` found no receiver.
    """
    if device != "auto":
        return device
    ports = find_receivers()
    if ports:
        if len(ports) > 1:
            log.warning("several receivers found (%s); using %s", ", ".join(p.device for p in ports), ports[0].device)
        return ports[0].device
    if os.path.exists(STABLE_LINK):
        return STABLE_LINK
    if _usb_receiver_present():
        raise ReceiverNotFoundError(
            "a Dexcom receiver is on the USB bus but has no serial port",
            hint="load the cdc_acm kernel module (sudo modprobe cdc_acm) and replug the receiver",
        )
    raise ReceiverNotFoundError(
        "no Dexcom receiver found (USB 22a3:0047)",
        hint="plug the receiver in with a data cable (not a charge-only one) and switch it on, "
        "or pass --device PATH (or set BRIDGE_DEVICE)",
    )


def reset_usb_receiver() -> bool:
    """Reset the receiver on the USB bus (as a replug would), where this process may.

    Returns:
        True when a receiver was found and reset; False when none was found, pyusb has no
        backend, or the reset was not permitted.
    """
    try:
        import usb.core  # noqa: PLC0415 - USB-level access only for this last resort

        device = usb.core.find(idVendor=DEXCOM_VID, idProduct=DEXCOM_PID)
        if device is None:
            return False
        device.reset()
        return True
    except Exception as exc:  # noqa: BLE001 - no backend or no permission: the caller escalates
        log.warning("USB reset of the receiver not possible: %s", exc)
        return False
