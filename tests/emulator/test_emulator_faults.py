"""Fault injection: every kind happens with a seed, and never touches the stored records."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from bridge.dexcom import commands
from bridge.dexcom.commands import Command, Status
from bridge.dexcom.framing import FrameDecoder
from bridge.dexcom.pages import decode_page, split_pages
from bridge.emulator import FAULT_KINDS, FaultInjector, FaultSpec
from bridge.emulator.faults import SLOW_DELAY_S
from bridge.errors import CRCError
from bridge.records import RecordType

ALL = "crc=0.1,header=0.1,record=0.1,truncate=0.1,slow=0.1,nak=0.1,unplug=0.1"


def test_fault_spec_parses_and_rejects() -> None:
    spec = FaultSpec.parse("crc=0.02, header=0.01,unplug=0.003")
    assert (spec.crc, spec.header, spec.unplug, spec.nak) == (0.02, 0.01, 0.003, 0.0)
    assert FaultSpec.parse(str(spec)) == spec
    assert FaultSpec.parse(None).total == 0 and FaultSpec.parse("").total == 0
    for bad in ("boom=0.1", "crc", "crc=x", "crc=1.5", "crc=0.6,nak=0.6"):
        with pytest.raises(ValueError):
            FaultSpec.parse(bad)


def test_one_draw_picks_at_most_one_fault_with_the_given_rates() -> None:
    injector = FaultInjector(FaultSpec.parse("crc=0.2,nak=0.1"), random.Random(1))
    draws = Counter(injector.draw() for _ in range(20000))
    assert set(draws) == {None, "crc", "nak"}
    assert draws["crc"] / 20000 == pytest.approx(0.2, abs=0.02)
    assert draws["nak"] / 20000 == pytest.approx(0.1, abs=0.02)


def _page_read(emulator):
    first, _ = emulator.database.partition(RecordType.EGV_DATA).page_range()
    return commands.read_pages(RecordType.EGV_DATA, first, 4)


def test_each_fault_kind_occurs_and_looks_like_its_kind(make_emulator) -> None:
    emulator = make_emulator(faults=ALL)
    request = _page_read(emulator)
    seen: dict[str, bytes] = {}
    slow_delays = []
    for _ in range(300):
        (reply,) = emulator.device.receive(request)
        if reply.fault is not None:
            seen.setdefault(reply.fault, reply.data)
            if reply.fault == "slow":
                slow_delays.append(reply.delay_s)
            if reply.fault == "unplug":
                assert reply.unplug and reply.data == b""
    assert set(seen) == set(FAULT_KINDS)
    assert emulator.faults_injected.keys() == set(FAULT_KINDS)
    assert slow_delays and min(slow_delays) >= SLOW_DELAY_S

    decoder = FrameDecoder()
    decoder.feed(seen["crc"])
    with pytest.raises(CRCError):
        decoder.next_frame()
    assert len(seen["truncate"]) < 6 + 4 * 528
    decoder = FrameDecoder()
    decoder.feed(seen["nak"])
    nak = decoder.next_frame()
    assert (nak.command, nak.payload) == (Status.NAK, b"")

    for kind in ("header", "record"):
        decoder = FrameDecoder()
        decoder.feed(seen[kind])
        pages = split_pages(commands.check_reply(decoder.next_frame(), Command.READ_DATABASE_PAGES))
        outcomes = []
        for raw in pages:
            try:
                outcomes.append(decode_page(raw).bad_records)
            except CRCError:
                outcomes.append("header")
        if kind == "header":
            assert outcomes.count("header") == 1 and outcomes.count(0) == 3
        else:
            assert sorted(outcomes) == [0, 0, 0, 1]


def test_page_faults_do_not_apply_to_other_replies(make_emulator) -> None:
    emulator = make_emulator(faults="header=0.5,record=0.5")
    for _ in range(50):
        (reply,) = emulator.device.receive(commands.build_request(Command.PING))
        assert reply.fault is None and reply.data == bytes.fromhex("0106000135d4")


def test_faults_never_corrupt_the_stored_records(make_emulator, ask) -> None:
    faulty = make_emulator(faults=ALL)
    truth_before = faulty.truth()["records"]
    request = _page_read(faulty)
    for _ in range(200):
        faulty.device.receive(request)
    assert sum(faulty.faults_injected.values()) > 50
    faulty.device.faults = None  # a clean re-read
    first, last = faulty.database.partition(RecordType.EGV_DATA).page_range()
    egvs = []
    for n in range(first, last + 1):
        egvs.extend(decode_page(ask(faulty.device, commands.read_pages(4, n, 1)).payload).records)
    assert egvs == faulty.records["egv"]
    assert faulty.truth()["records"] == truth_before
    clean = make_emulator()
    assert clean.truth()["records"] == truth_before  # faults draw from their own random source


def test_a_seed_makes_faults_repeatable(make_emulator) -> None:
    runs = []
    for _ in range(2):
        emulator = make_emulator(faults=ALL, seed=11)
        request = _page_read(emulator)
        runs.append([(r.fault, r.data) for _ in range(100) for r in emulator.device.receive(request)])
    assert runs[0] == runs[1]
