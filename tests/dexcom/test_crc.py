"""CRC-16/XMODEM against crc16.json (captured packets, other projects' tests, the catalogue)."""

from __future__ import annotations

import struct

import pytest

from bridge.dexcom import crc
from bridge.dexcom.crc import crc16_xmodem
from vectors import cases, unhex


def test_crc_c_extension_is_in_use() -> None:
    assert crc.C_EXTENSION is True, "crcmod runs in pure Python: the C extension did not load"


def test_crc_catalogue_check_value() -> None:
    assert crc16_xmodem(b"123456789") == 0x31C3


def test_crc_empty_input_is_zero() -> None:
    assert crc16_xmodem(b"") == 0x0000


@pytest.mark.parametrize("vec", cases("crc16.json", ids=lambda v: v["data_hex"][:16]))
def test_crc_vector(vec: dict) -> None:
    value = crc16_xmodem(unhex(vec["data_hex"]))
    assert value == int(vec["crc16"], 16)
    assert struct.pack("<H", value).hex() == vec["crc_bytes_on_wire_hex"]


def test_crc_protocol_worked_examples() -> None:
    # PROTOCOL.md §2.2 table (bytes as captured from the real 2013 session)
    assert crc16_xmodem(bytes.fromhex("0106000A")) == 0x655E
    assert crc16_xmodem(bytes.fromhex("01060001")) == 0xD435
    assert crc16_xmodem(bytes.fromhex("0107001004")) == 0xB88B
    assert crc16_xmodem(bytes.fromhex("010C0011052600000001")) == 0xC35E
