"""Receiver session rules against real captured bytes, with scripted faults (no pty, no sleep)."""

from __future__ import annotations

import pytest

from bridge.dexcom.commands import Command
from bridge.dexcom.pages import decode_page
from bridge.errors import NAKError, ReceiverTimeoutError
from bridge.records import EGVRecord, RecordType

from tests.dexcom.fakes import FakeLink, make_receiver

EGV = RecordType.EGV_DATA


def _all_egv(link: FakeLink) -> list[EGVRecord]:
    records: list[EGVRecord] = []
    for number in sorted(link.pages[EGV]):
        records.extend(decode_page(link.pages[EGV][number]).records)  # type: ignore[arg-type]
    return records


def test_receiver_reads_every_record_of_the_real_egv_pages_oldest_first() -> None:
    link = FakeLink()
    result = make_receiver(link).read_records(EGV)
    assert result.complete and result.pages_read == 8
    assert result.records == _all_egv(link)
    page_reads = [p for c, p in link.requests if c == Command.READ_DATABASE_PAGES]
    assert [p[-1] for p in page_reads] == [4, 4]  # two 4-page reads for 8 pages


def test_receiver_incremental_read_stops_at_older_records() -> None:
    link = FakeLink()
    everything = _all_egv(link)
    since = everything[-5].system_seconds
    result = make_receiver(link, max_pages_per_read=1).read_records(EGV, since_system=since)
    assert result.records == [r for r in everything if r.system_seconds > since]
    assert result.pages_read == 1  # the newest page held an older record: nothing more read


def test_receiver_falls_back_to_single_pages_when_multi_page_reads_are_refused() -> None:
    link = FakeLink(max_pages=1)
    receiver = make_receiver(link)
    result = receiver.read_records(EGV)
    assert result.records == _all_egv(link) and result.complete
    assert receiver.max_pages_per_read == 1


@pytest.mark.parametrize("fault", ["silent", "crc", "nak", "garbage", "late"])
def test_receiver_command_survives_one_fault(fault: str) -> None:
    link = FakeLink({1: fault})
    receiver = make_receiver(link)
    assert receiver.read_u32(Command.READ_SYSTEM_TIME) == 148358601
    # the late reply of the first send never answers the next command
    assert receiver.read_s32(Command.READ_DISPLAY_TIME_OFFSET) == -25161


def test_receiver_gives_up_after_the_attempt_budget() -> None:
    link = FakeLink({1: "silent", 2: "silent", 3: "silent"})
    with pytest.raises(ReceiverTimeoutError):
        make_receiver(link).read_u32(Command.READ_SYSTEM_TIME)
    assert len(link.requests) == 3
    assert link.now == pytest.approx(3 * 1.5)  # each attempt bounded by its timeout


def test_receiver_does_not_resend_a_refused_command() -> None:
    link = FakeLink({1: "invalid_param"})
    with pytest.raises(NAKError):
        make_receiver(link).read_u32(Command.READ_SYSTEM_TIME)
    assert len(link.requests) == 1


def test_receiver_rereads_a_page_with_a_bad_record_and_loses_nothing() -> None:
    # request 1 = page range, 2 = first 4-page read (damaged), then single-page re-reads
    link = FakeLink({2: "badpage"})
    result = make_receiver(link).read_records(EGV)
    assert result.complete and result.records == _all_egv(link)


def test_receiver_skips_a_page_that_stays_bad_and_keeps_the_others() -> None:
    link = FakeLink({n: "silent" for n in range(3, 12)})  # 3 lone re-reads x 3 sends: no answer
    link.faults[2] = "badpage"
    result = make_receiver(link).read_records(EGV)
    assert len(result.skipped_pages) == 1
    assert result.pages_read == 7
    assert len(result.records) == len(_all_egv(link)) - 38  # one full page's records missing


def test_receiver_waits_for_an_unplugged_receiver_and_resumes() -> None:
    link = FakeLink({3: "unplug"})
    result = make_receiver(link).read_records(EGV)
    assert link.opened == 1 and result.complete
    assert result.records == _all_egv(link)


def test_receiver_reads_clock_and_identity_from_real_replies() -> None:
    receiver = make_receiver(FakeLink())
    clock = receiver.read_clock()
    assert clock.system_seconds == clock.rtc + clock.system_offset  # type: ignore[operator]
    assert clock.display_offset == -25161
    assert receiver.serial_number() == "sm30140752"
    assert receiver.transmitter_id() == "60HMW"
    assert receiver.firmware_header()["FirmwareVersion"] == "2.0.1.104"
    assert receiver.partitions()[RecordType.CAL_SET].record_length == 148


def test_receiver_reads_singly_after_multi_page_reads_keep_failing() -> None:
    link = FakeLink(ignore_multi_page=True)  # count > 1 is never answered, single pages are
    receiver = make_receiver(link)
    result = receiver.read_records(EGV)
    assert result.complete and result.records == _all_egv(link)
    assert receiver.max_pages_per_read == 1
    multi = [p for c, p in link.requests if c == Command.READ_DATABASE_PAGES and p[-1] > 1]
    assert len(multi) == 2 * 3  # two failed batches of three sends, then never again


def test_receiver_read_through_stops_before_a_hole() -> None:
    link = FakeLink({n: "silent" for n in range(3, 12)})
    link.faults[2] = "badpage"  # page 1469 (first of the newest batch) stays unreadable
    result = make_receiver(link).read_records(EGV)
    assert result.skipped_pages == [1469]
    before_hole = [r for r in _all_egv(link) if r in result.records]
    newest_before = max(r.system_seconds for r in decode_page(link.pages[EGV][1468]).records)
    assert result.read_through == newest_before
    assert len(before_hole) == len(result.records)


def test_receiver_read_through_covers_everything_when_whole() -> None:
    link = FakeLink()
    result = make_receiver(link).read_records(EGV)
    assert result.read_through == max(r.system_seconds for r in _all_egv(link))
    again = make_receiver(link).read_records(EGV, since_system=result.read_through)
    assert again.records == [] and again.read_through == result.read_through


def test_receiver_inclusive_read_keeps_every_record_sharing_the_cursor_second() -> None:
    link = FakeLink()
    records = _all_egv(link)
    twins = [(a, b) for a, b in zip(records, records[1:], strict=False)
             if b.display_only and b.system_seconds == a.system_seconds]
    assert twins, "the real capture has display-only duplicates written at their reading's second"
    normal, duplicate = twins[-1]
    since = normal.system_seconds
    inclusive = make_receiver(link).read_records(EGV, since_system=since, inclusive=True)
    exclusive = make_receiver(link).read_records(EGV, since_system=since)
    assert normal in inclusive.records and duplicate in inclusive.records
    assert normal not in exclusive.records and duplicate not in exclusive.records
    assert inclusive.records[2:] == exclusive.records  # the rest is the same
