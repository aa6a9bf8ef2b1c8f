"""CRC-16/XMODEM for packets, page headers and records. Layer: dexcom, pure.

Uses crcmod's predefined ``xmodem`` function; crcmod-plus ships the C extension in its
wheels, and :data:`C_EXTENSION` says whether it is really in use.
"""

from __future__ import annotations

import crcmod.crcmod
import crcmod.predefined

__all__ = ["C_EXTENSION", "crc16_xmodem"]

#: poly 0x1021, init 0, no reflection, xorout 0; check("123456789") == 0x31C3.
crc16_xmodem = crcmod.predefined.mkCrcFun("xmodem")

#: True when crcmod computes in C (``crcmod._crcfunext``), not in pure Python.
C_EXTENSION: bool = bool(crcmod.crcmod._usingExtension)
