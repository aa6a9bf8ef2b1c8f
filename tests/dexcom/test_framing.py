"""FrameDecoder against real captured packets: whole, byte by byte, odd chunks, noise, bad CRCs.

The wire bytes come from ../shared/vectors (the 2013 Dexcom Studio capture, android-uploader
and ecc1 fixtures, a BLE capture); only the corruptions are made here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest

from bridge.dexcom.crc import crc16_xmodem
from bridge.dexcom.framing import MAX_FRAME_LEN, MIN_FRAME_LEN, SOF, Frame, FrameDecoder, encode_frame
from bridge.errors import CRCError, ProtocolError
from vectors import cases, load, unhex

CAPTURE = "capture_dexcom_studio_g4_2013.json"
CHUNK_SIZES = [None, 1, 3, 7, 64, 529]
NOISE = b"\x00\xff\x55\xaa\x13\x37"  # holds no SOF byte: it can never start a frame
PING_ACK = bytes.fromhex("0106000135d4")  # captured reply to PING


def chunks(data: bytes, size: int | None) -> Iterator[bytes]:
    """``data`` whole (size None) or in pieces of ``size`` bytes."""
    if size is None:
        yield data
        return
    for i in range(0, len(data), size):
        yield data[i : i + size]


def drain(decoder: FrameDecoder, parts: Iterable[bytes]) -> tuple[list[Frame], list[ProtocolError]]:
    """Feed every part, collecting frames and the protocol errors raised between them."""
    frames: list[Frame] = []
    errors: list[ProtocolError] = []
    for part in parts:
        decoder.feed(part)
        while True:
            try:
                frame = decoder.next_frame()
            except ProtocolError as exc:
                errors.append(exc)
                continue
            if frame is None:
                break
            frames.append(frame)
    return frames, errors


def expected_frame(wire: bytes) -> Frame:
    """The frame a captured packet holds, read by slicing (not by our decoder)."""
    return Frame(wire[3], wire[4:-2])


def capture_wires() -> list[bytes]:
    return [unhex(p["hex"]) for p in load(CAPTURE)["packets"]]


def all_good_wires() -> list[bytes]:
    """Every well-formed packet in the vectors: capture, requests, android responses, BLE."""
    wires = capture_wires()
    wires += [unhex(v["hex"]) for v in load("requests.json")["vectors"]]
    wires += [
        unhex(v["hex"]) for v in load("readdata_responses_android_uploader.json")["vectors"] if "decoded_packet" in v
    ]
    wires.append(unhex(load("ble_share_egv_page_g4sharespy.json")["hex"]))
    return wires


# --- every captured packet, one at a time -----------------------------------------------------


@pytest.mark.parametrize("packet", cases(CAPTURE, "packets", ids=lambda p: f"seq{p['seq']}-{p['dir']}"))
def test_decoder_decodes_every_captured_packet(packet: dict) -> None:
    wire = unhex(packet["hex"])
    decoded = packet["decoded"]
    frames, errors = drain(FrameDecoder(), [wire])
    assert errors == []
    assert frames == [expected_frame(wire)]
    assert frames[0].command == decoded["command_or_status"]
    assert len(frames[0].payload) == decoded["payload_len"] == decoded["length_field"] - MIN_FRAME_LEN
    assert decoded["crc_ok"] is True


def test_capture_holds_171_packets() -> None:
    packets = load(CAPTURE)["packets"]
    assert len(packets) == 171
    assert [p["seq"] for p in packets] == list(range(1, 172))


# --- the whole session as one stream -------------------------------------------------------------


@pytest.mark.parametrize("chunk", CHUNK_SIZES)
def test_decoder_survives_any_chunking(chunk: int | None) -> None:
    wires = all_good_wires()
    frames, errors = drain(FrameDecoder(), chunks(b"".join(wires), chunk))
    assert errors == []
    assert frames == [expected_frame(w) for w in wires]


@pytest.mark.parametrize("chunk", CHUNK_SIZES)
def test_decoder_skips_noise_before_and_between_frames(chunk: int | None) -> None:
    wires = capture_wires()
    stream = NOISE + NOISE.join(wires) + NOISE
    decoder = FrameDecoder()
    frames, errors = drain(decoder, chunks(stream, chunk))
    assert errors == []
    assert frames == [expected_frame(w) for w in wires]
    assert decoder.pending == 0  # trailing noise without SOF is discarded


@pytest.mark.parametrize("chunk", CHUNK_SIZES)
def test_decoder_resyncs_after_bad_crc(chunk: int | None) -> None:
    """Each captured reply, damaged, then the same reply intact: CRCError, then the good frame."""
    replies = [unhex(p["hex"]) for p in load(CAPTURE)["packets"] if p["dir"] == "in"]
    stream = bytearray()
    for wire in replies:
        bad = bytearray(wire)
        bad[-1] ^= 0x5A  # damage the CRC itself
        stream += bad + wire
    frames, errors = drain(FrameDecoder(), chunks(bytes(stream), chunk))
    assert frames == [expected_frame(w) for w in replies]
    assert len(errors) == len(replies)  # one CRCError per damaged reply, no more
    assert all(isinstance(e, CRCError) for e in errors)


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_decoder_resyncs_after_damaged_payload(chunk: int | None) -> None:
    """A flipped payload byte in a 4-page reply is caught; the next reply still decodes."""
    replies = [unhex(p["hex"]) for p in load(CAPTURE)["packets"] if p["dir"] == "in" and len(p["hex"]) > 4000]
    assert replies
    stream = bytearray()
    for wire in replies:
        bad = bytearray(wire)
        bad[len(bad) // 2] ^= 0x04
        stream += NOISE + bad + wire
    frames, errors = drain(FrameDecoder(), chunks(bytes(stream), chunk))
    assert frames == [expected_frame(w) for w in replies]
    assert len(errors) == len(replies)
    assert all(isinstance(e, CRCError) for e in errors)


def test_decoder_raises_crc_error_for_a_lone_bad_frame() -> None:
    bad = bytearray(PING_ACK)
    bad[-2] ^= 0xFF
    decoder = FrameDecoder()
    decoder.feed(bytes(bad))
    with pytest.raises(CRCError):
        decoder.next_frame()
    assert decoder.next_frame() is None
    decoder.feed(PING_ACK)
    assert decoder.next_frame() == Frame(0x01, b"")


def test_decoder_returns_back_to_back_frames_from_one_feed() -> None:
    decoder = FrameDecoder()
    decoder.feed(PING_ACK * 3)
    assert [decoder.next_frame() for _ in range(4)] == [Frame(1, b"")] * 3 + [None]


@pytest.mark.parametrize(
    "false_start",
    [
        b"\x01\xff\xff",  # length 65535: beyond any reply
        b"\x01\x00\x00",  # length 0
        b"\x01\x05\x00",  # length 5: shorter than the smallest packet
    ],
)
def test_decoder_drops_false_sof(false_start: bytes) -> None:
    frames, errors = drain(FrameDecoder(), [false_start + PING_ACK])
    assert frames == [Frame(1, b"")]
    assert errors == []


@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_decoder_false_sof_with_plausible_length_costs_one_crc_error(chunk: int | None) -> None:
    # 01 08 00 ...: noise that looks like an 8-byte packet and overlaps the real reply after it
    stream = b"\x01\x08\x00\x01\x99\x98" + PING_ACK * 2
    frames, errors = drain(FrameDecoder(), chunks(stream, chunk))
    assert frames == [Frame(1, b"")] * 2
    assert len(errors) == 1 and isinstance(errors[0], CRCError)


def test_decoder_lone_sof_before_a_frame_recovers_once_its_length_has_arrived() -> None:
    # 01 | 01 06 00 ...: the false SOF announces 0x0601 = 1537 bytes. A length-prefixed stream
    # cannot tell it from a real start until that many bytes are in (the link layer times out,
    # flushes and resends first); then it fails its CRC and the real reply is found.
    decoder = FrameDecoder()
    frames, errors = drain(decoder, [b"\x01" + PING_ACK])
    assert frames == [] and errors == []
    frames, errors = drain(decoder, [PING_ACK * 300])
    assert len(errors) == 1 and isinstance(errors[0], CRCError)
    assert frames == [Frame(1, b"")] * 301


def test_decoder_waits_for_the_rest_of_a_frame() -> None:
    wire = capture_wires()[6]  # 534-byte page reply
    decoder = FrameDecoder()
    decoder.feed(wire[:2])
    assert decoder.next_frame() is None
    assert decoder.needed() >= 1
    decoder.feed(wire[2:100])
    assert decoder.next_frame() is None
    assert decoder.needed() == len(wire) - 100
    decoder.feed(wire[100:])
    assert decoder.next_frame() == expected_frame(wire)
    assert decoder.pending == 0


def test_decoder_clear_forgets_a_partial_frame() -> None:
    decoder = FrameDecoder()
    decoder.feed(PING_ACK[:4])
    decoder.clear()
    decoder.feed(PING_ACK)
    assert decoder.next_frame() == Frame(1, b"")


# --- long replies ------------------------------------------------------------------------------


def test_decoder_accepts_four_page_replies() -> None:
    long_replies = [w for w in capture_wires() if len(w) == 6 + 4 * 528]
    assert len(long_replies) == 10  # Sensor 3, EGV 2, CalSet 1 and ReceiverLog 4 reads of 4 pages
    assert MAX_FRAME_LEN >= 6 + 4 * 528
    for wire in long_replies:
        assert wire[1:3] == (2118).to_bytes(2, "little")
        frames, errors = drain(FrameDecoder(), chunks(wire, 64))
        assert errors == []
        assert frames == [Frame(1, wire[4:-2])]
        assert len(frames[0].payload) == 4 * 528


def test_encode_frame_matches_captured_four_page_reply() -> None:
    wire = next(w for w in capture_wires() if len(w) == 2118)
    assert encode_frame(wire[3], wire[4:-2]) == wire


def test_encode_frame_refuses_oversized_packets() -> None:
    with pytest.raises(ProtocolError):
        encode_frame(1, bytes(MAX_FRAME_LEN))


# --- malformed vectors -----------------------------------------------------------------------------


@pytest.mark.parametrize("vec", cases("packets_android_readpackettest.json", ids=lambda v: v["fixture_name"]))
def test_android_readpacket_vectors(vec: dict) -> None:
    """Synthetic packets whose length field (0x0101 = 257) disagrees with their size.

    android-uploader ignores the length field and takes the CRC from the last two bytes read;
    we honour the length field (PROTOCOL.md §2.1), so these are never a frame for us: the
    decoder waits for the 257 bytes announced and then refuses them by CRC.
    """
    wire = unhex(vec["hex"])
    expected = vec["expected"]
    # the vector's own meaning, read by slicing
    assert wire[0] == SOF
    assert wire[3] == expected["command"]
    crc_ok = crc16_xmodem(wire[:-2]) == int.from_bytes(wire[-2:], "little")
    assert crc_ok is expected["crc_ok"]
    if crc_ok:
        assert wire[4:-2].hex() == expected["data_hex"]
    length = int.from_bytes(wire[1:3], "little")
    assert length == 257 != len(wire)

    decoder = FrameDecoder()
    frames, errors = drain(decoder, [wire])
    assert frames == [] and errors == []  # incomplete: 257 bytes announced
    frames, errors = drain(decoder, [bytes(length)])
    assert all(isinstance(e, CRCError) for e in errors) and len(errors) == 1
    assert frames == []


@pytest.mark.parametrize(
    "vec",
    cases(
        "readdata_responses_android_uploader.json",
        ids=lambda v: f"{v['test']}-{v['fixture_name']}",
        where=lambda v: "decoded_packet" not in v,
    ),
)
def test_android_malformed_responses_are_refused(vec: dict) -> None:
    """The synthetic ReadDataTest packets (length 0, bad SOF) are never taken as frames."""
    wire = unhex(vec["hex"])
    frames, errors = drain(FrameDecoder(), chunks(wire, 1))
    assert frames == []
    assert all(isinstance(e, ProtocolError) for e in errors)
    # and a good reply after the junk still comes through
    decoder = FrameDecoder()
    frames, errors = drain(decoder, [wire, PING_ACK])
    assert frames[-1:] == [Frame(1, b"")]
    assert all(isinstance(e, ProtocolError) for e in errors)


def test_ble_bad_crc_variant_fails() -> None:
    """G4ShareSpy: changing the last hex digit (the CRC) must make parsing fail."""
    text = load("ble_share_egv_page_g4sharespy.json")["hex"]
    assert len(text) == 2 * 534
    bad = text[:-1] + ("0" if text[-1] != "0" else "1")
    decoder = FrameDecoder()
    decoder.feed(unhex(bad))
    with pytest.raises(CRCError):
        decoder.next_frame()
    frames, _ = drain(decoder, [])
    assert frames == []
