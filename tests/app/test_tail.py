"""`bridge tail`: reading lines (terminal and piped), and the receiver, store and Nightscout sources.

No real sleeping: sources take a ``sleep`` that records (and drives the fake world); the
Nightscout site is pytest-httpx; the receiver is the emulator on a pty.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from pytest_httpx import HTTPXMock

from bridge.app.tail import (
    ARROWS,
    SPECIAL_DISPLAY,
    Reading,
    TailView,
    choose_source,
    format_line,
    nightscout_batches,
    reading_from_entry,
    receiver_batches,
    sparkline,
    store_batches,
    tail_lines,
)
from bridge.app.session import open_receiver
from bridge.commands.tail import tail
from bridge.config import Settings
from bridge.emulator import ReceiverEmulator
from bridge.nightscout.auth import Credentials
from bridge.nightscout.client import NightscoutClient
from bridge.nightscout.retry import NO_RETRY
from bridge.records import EGVRecord
from bridge.store import Outbox

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
DEXCOM_EPOCH = datetime(2009, 1, 1, tzinfo=UTC)
BASE_S = int((NOW - DEXCOM_EPOCH).total_seconds())
SERIAL = "SM12345678"
SITE = "https://ns.example.org"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def at(minutes_before: float, glucose: int, trend: int = 4, **kw: bool) -> Reading:
    return Reading(NOW - timedelta(minutes=minutes_before), glucose, trend, **kw)


def line(reading: Reading, **kw: object) -> str:
    kw.setdefault("now", NOW)
    kw.setdefault("tz", UTC)
    return click.unstyle(format_line(reading, **kw))  # type: ignore[arg-type]


# --- formatting ----------------------------------------------------------------------------


@pytest.mark.parametrize(("glucose", "colour"), [(65, 31), (69, 31), (70, 32), (180, 32), (181, 33), (39, 31)])
def test_line_coloured_by_range_on_a_terminal(glucose: int, colour: int) -> None:
    styled = format_line(at(0, glucose), now=NOW, tz=UTC)
    assert f"\x1b[{colour}m" in styled
    assert not ANSI.search(click.unstyle(styled))


def test_line_mgdl_fields() -> None:
    text = line(at(7, 123, 3), previous=at(12, 119))
    assert re.fullmatch(r"11:53 +123 mg/dL ↗ +\+4 +7 min ago +▂", text), text


def test_line_mmol_one_decimal_and_delta() -> None:
    text = line(at(0, 123, 4), previous=at(5, 119), units="mmol")
    assert "6.8 mmol/L →" in text and "+0.2" in text and "mg/dL" not in text
    assert "5.6 mmol/L" in line(at(0, 100), units="mmol")
    assert "±0.0" in line(at(0, 100), previous=at(5, 100), units="mmol")
    assert "-0.1" in line(at(0, 99), previous=at(5, 100), units="mmol")


def test_line_local_time_and_date_when_not_today() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert line(at(0, 120), tz=plus2).startswith("14:00  ")
    assert line(at(26 * 60, 120)).startswith("2024-05-31 10:00  ")


@pytest.mark.parametrize("trend", [*range(10), 12])
def test_arrow_for_each_trend(trend: int) -> None:
    arrow = ARROWS.get(trend, " ")
    assert f"120 mg/dL {arrow} " in line(at(0, 120, trend))


def test_arrows_are_distinct_for_known_trends() -> None:
    assert len({ARROWS[t] for t in range(10)}) == 10
    assert [ARROWS[t] for t in (1, 2, 3, 4, 5, 6, 7)] == ["⇈", "↑", "↗", "→", "↘", "↓", "⇊"]


@pytest.mark.parametrize(
    ("previous", "current", "shown"),
    [(100, 104, "+4"), (104, 100, "-4"), (100, 100, "±0"), (60, 141, "+81")],
)
def test_delta_sign(previous: int, current: int, shown: str) -> None:
    assert re.search(rf" {re.escape(shown)} ", line(at(0, current), previous=at(5, previous)))


def test_no_delta_across_a_gap_or_a_special_value() -> None:
    assert not re.search(r"[+±-]\d", line(at(0, 120), previous=at(20, 100)))  # three readings missed
    assert not re.search(r"[+±-]\d", line(at(0, 120), previous=at(5, 5)))  # previous was ?NC
    assert not re.search(r"[+±-]\d", line(at(0, 120)))


@pytest.mark.parametrize(("minutes", "shown"), [(0, "0 min ago"), (7.9, "7 min ago"), (119, "119 min ago"),
                                                 (180, "3 h ago"), (3 * 24 * 60, "3 d ago"), (-2, "0 min ago")])
def test_age(minutes: float, shown: str) -> None:
    assert line(at(minutes, 120)).endswith(f"  {shown}  ▂")  # 85-129 mg/dL


@pytest.mark.parametrize(
    ("mgdl", "block"),
    [(40, "▁"), (20, "▁"), (84, "▁"), (85, "▂"), (220, "▅"), (354, "▇"), (355, "█"), (400, "█"), (450, "█")],
)
def test_sparkline_scaled_40_to_400(mgdl: int, block: str) -> None:
    assert sparkline([mgdl]) == block


def test_sparkline_gaps_and_window() -> None:
    assert sparkline([40, None, 400]) == "▁ █"
    history = [at(m, 400) for m in range(200, 0, -5)]  # 200 min of highs, oldest first
    spark = line(at(0, 40), history=history).rsplit("  ", 1)[1]
    assert spark == "█" * 35 + "▁"  # 3 h of 5-min readings, at most 36 characters
    history = [at(m, 400) for m in (190, 185, 30)]
    assert line(at(0, 40), history=history).endswith("  █▁")  # older than 3 h: not drawn


@pytest.mark.parametrize("code", [*range(13), 20, 38])
def test_special_value_shown_as_meaning_never_a_number(code: int) -> None:
    shown, meaning = SPECIAL_DISPLAY.get(code, (f"?{code}", "unknown error code"))
    styled = format_line(at(2, code, 8), previous=at(7, 120), history=[at(7, 120)], now=NOW, tz=UTC)
    text = click.unstyle(styled)
    assert f"{shown} {meaning}" in text
    assert "mg/dL" not in text and "\x1b[3" not in styled  # no unit, no range colour
    middle = text[len("11:58  "): text.index("2 min ago")]
    assert not re.search(r"(?<![?\d])\d", middle), middle  # every digit is part of a ?-code
    assert text.endswith("2 min ago  ▂")  # the special value is a gap (trailing blanks stripped)
    after = click.unstyle(format_line(at(0, 120), history=[at(7, 120), at(2, code)], now=NOW))
    assert after.endswith("▂ ▂") and not re.search(r"[+±-]\d", after)
    assert "mmol/L" not in line(at(2, code, 8), units="mmol")


def test_special_codes_follow_protocol() -> None:
    assert "?NC sensor not calibrated" in line(at(0, 5))
    assert "?SN sensor not active" in line(at(0, 1))
    assert "?RF bad RF" in line(at(0, 12))
    assert "?AD absolute deviation" in line(at(0, 9))
    assert "??0 no reading" in line(at(0, 0))


def test_low_and_high_are_words() -> None:
    assert "LOW" in line(at(0, 39)) and "39" not in line(at(0, 39))[5:]
    assert "HIGH" in line(at(0, 401), units="mmol") and "22.3" not in line(at(0, 401), units="mmol")


def test_view_skips_display_only_and_repeats() -> None:
    view = TailView(tz=UTC)
    assert view.add(at(10, 110), NOW) is not None
    assert view.add(at(7, 300, display_only=True), NOW) is None
    second = view.add(at(5, 112), NOW)
    assert second is not None and " +2 " in click.unstyle(second)  # delta from 110, not 300
    assert view.add(at(5, 112), NOW) is None
    assert view.add(at(6, 130), NOW) is None


def test_tail_lines_last_count_of_history_then_everything_new() -> None:
    batches = [[at(m, 100 + m) for m in (20, 15, 10, 5)], [at(0, 99, display_only=True)], [at(0, 90)]]
    lines = [click.unstyle(x) for x in tail_lines(batches, count=2, now=lambda: NOW, tz=UTC)]
    assert [x[:5] for x in lines] == ["11:50", "11:55", "12:00"]
    assert " -5 " in lines[0]  # the delta uses history that was not printed
    assert " -15 " in lines[2]  # from 105: the display-only 99 is not a reading
    assert list(tail_lines(batches[:1], count=0, now=lambda: NOW)) == []


# --- sources -------------------------------------------------------------------------------


def egv(minutes_before: int, glucose: int, *, display_only: bool = False) -> EGVRecord:
    s = BASE_S - minutes_before * 60
    return EGVRecord(s, s - 3600, glucose, display_only, 4, 1)


def to_utc(system_seconds: int) -> datetime:
    return DEXCOM_EPOCH + timedelta(seconds=system_seconds)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox.open(tmp_path / "outbox.sqlite3") as box:
        box.add(SERIAL, [egv(m, 150 - m) for m in range(300, -1, -5)], to_utc, destinations=[])
        box.add("SM00000001", [egv(600, 80)], to_utc, destinations=[])  # an older receiver
        yield box


def test_store_source_history_then_new_records(store: Outbox) -> None:
    sleeps: list[float] = []
    new = iter([[], [egv(-5, 155, display_only=True), egv(-5, 156)], [egv(-10, 40)]])

    def sleep(s: float) -> None:
        sleeps.append(s)
        store.add(SERIAL, next(new), to_utc, destinations=[])

    batches = store_batches(store, count=3, follow=True, poll_s=5, sleep=sleep)
    first = next(batches)
    assert len(first) == 40 and first[-1] == Reading(NOW, 150, 4)  # a full sparkline and a delta
    assert [r.glucose for r in next(batches)] == [155, 156]
    assert [r.glucose for r in next(batches)] == [40]
    assert sleeps == [5, 5, 5]  # the empty poll yielded nothing
    lines = list(tail_lines([first], count=3, now=lambda: NOW, tz=UTC))
    assert [click.unstyle(x)[:20] for x in lines] == ["11:50    140 mg/dL →", "11:55    145 mg/dL →",
                                                      "12:00    150 mg/dL →"]


def test_store_source_empty_store_waits_for_a_receiver(tmp_path: Path) -> None:
    with Outbox.open(tmp_path / "outbox.sqlite3") as box:
        polls = iter([[], [egv(0, 120)]])
        batches = store_batches(box, count=5, follow=True, poll_s=1,
                                sleep=lambda _s: box.add(SERIAL, next(polls), to_utc, destinations=[]))
        assert next(batches) == []
        assert [r.glucose for r in next(batches)] == [120]
        assert list(store_batches(box, count=5, follow=False, poll_s=1, sleep=lambda _s: None)) == [
            [Reading(NOW, 120, 4)]]


def entry(minutes_before: int, sgv: int, direction: str = "Flat", device: str = "xDrip") -> dict[str, object]:
    when = NOW - timedelta(minutes=minutes_before)
    return {"type": "sgv", "sgv": sgv, "direction": direction, "date": int(when.timestamp() * 1000),
            "device": device}


def ns_client() -> NightscoutClient:
    return NightscoutClient(SITE, Credentials.from_secret("correct-horse-battery"), retry=NO_RETRY,
                            sleep=lambda _s: None)


def test_reading_from_entry() -> None:
    assert reading_from_entry(entry(0, 120, "FortyFiveDown")) == Reading(NOW, 120, 5)
    assert reading_from_entry(entry(0, 120, "OUT OF RANGE")) == Reading(NOW, 120, 9)
    assert reading_from_entry({"sgv": 120, "trend": 2, "date": NOW.timestamp() * 1000}) == Reading(NOW, 120, 2)
    assert reading_from_entry({"sgv": 5, "date": NOW.timestamp() * 1000}) == Reading(NOW, 5, 0)
    assert reading_from_entry({"type": "mbg", "mbg": 100, "date": 1}) is None
    assert reading_from_entry({"sgv": "120", "date": 1}) is None


def test_nightscout_source_follows_new_entries(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{SITE}/api/v1/entries.json?count=40&find%5Btype%5D=sgv",
                            json=[entry(0, 120), entry(5, 118, device="dexcom"), entry(10, 5, "NOT COMPUTABLE")])
    follow_url = f"{SITE}/api/v1/entries.json?count=12&find%5Btype%5D=sgv"
    httpx_mock.add_response(url=follow_url, json=[entry(0, 120), entry(5, 118)])  # nothing new
    httpx_mock.add_response(url=follow_url, status_code=503)  # the site is down: keep polling
    httpx_mock.add_response(url=follow_url, json=[entry(-5, 125, "FortyFiveUp"), entry(-5, 125), entry(0, 120)])
    sleeps: list[float] = []
    with ns_client() as client:
        batches = nightscout_batches(client, count=12, follow=True, poll_s=30, sleep=sleeps.append)
        first = next(batches)
        assert [r.glucose for r in first] == [5, 118, 120]
        new = next(batches)
        assert [(r.glucose, r.trend) for r in new] == [(125, 3), (125, 4)]
        lines = list(tail_lines([first, new], count=12, now=lambda: NOW + timedelta(minutes=5), tz=UTC))
    assert sleeps == [30, 30, 30]
    text = [click.unstyle(x) for x in lines]
    assert len(text) == 4  # the duplicate 125 from a second uploader is not a new reading
    assert "?NC sensor not calibrated" in text[0] and text[3].startswith("12:05    125 mg/dL ↗     +5")


def test_receiver_source_against_the_emulator(tmp_path: Path) -> None:
    clock = [NOW.timestamp()]
    with ReceiverEmulator(days=0.2, seed=1, latency=False, link_path=tmp_path / "dexcom", interval_s=300,
                          now=lambda: clock[0]) as emulator, open_receiver(str(tmp_path / "dexcom")) as rx:

        def sleep(s: float) -> None:
            clock[0] += s

        batches = receiver_batches(rx, count=5, follow=True, poll_s=150, sleep=sleep)
        first = next(batches)
        held = [r for r in emulator.records["egv"] if isinstance(r, EGVRecord)]
        assert [r.glucose for r in first] == [r.glucose for r in held[-len(first):]]
        new = list(itertools.islice(batches, 2))
        held = [r for r in emulator.records["egv"] if isinstance(r, EGVRecord)]
        assert [[r.glucose for r in b] for b in new] == [[held[-2].glucose], [held[-1].glucose]]
        assert clock[0] - NOW.timestamp() in (450, 600)  # polled every 150 s until each appeared


# --- the command ---------------------------------------------------------------------------


def test_cli_receiver_once_piped_and_on_a_terminal(tmp_path: Path) -> None:
    runner = CliRunner()
    with ReceiverEmulator(days=0.2, seed=1, latency=False, link_path=tmp_path / "dexcom"):
        args = ["--device", str(tmp_path / "dexcom"), "--once", "--count", "4"]
        piped = runner.invoke(tail, args)
        coloured = runner.invoke(tail, [*args, "--units", "mmol"], color=True)
    assert piped.exit_code == 0, piped.output
    lines = piped.output.splitlines()
    assert len(lines) == 4 and not ANSI.search(piped.output)
    assert all(re.match(r"\d\d:\d\d +(\d+ mg/dL .|\?\S+ .+?) .* min ago  [▁-█ ]+$", x) for x in lines), lines
    assert coloured.exit_code == 0 and ANSI.search(coloured.output) and "mmol/L" in coloured.output


def test_cli_defaults_to_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRIDGE_DEVICE", raising=False)
    with Outbox.open(tmp_path / "outbox.sqlite3") as box:
        box.add(SERIAL, [egv(10, 100), egv(5, 104, display_only=True), egv(5, 103)], to_utc, destinations=[])
    result = CliRunner().invoke(tail, ["--state-dir", str(tmp_path), "--once", "--count", "5"])
    assert result.exit_code == 0, result.output
    values = [re.search(r"(\d+) mg/dL", x).group(1) for x in result.output.splitlines()]  # type: ignore[union-attr]
    assert values == ["100", "103"]
    assert " +3 " in result.output.splitlines()[1]


def test_cli_nightscout_once(httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_SECRET", "correct-horse-battery")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    httpx_mock.add_response(json=[entry(0, 12, "NONE"), entry(5, 250, "SingleUp")])
    result = CliRunner().invoke(tail, ["--nightscout-url", SITE, "--once", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    first, second = result.output.splitlines()
    assert "250 mg/dL ↑" in first and "?RF bad RF" in second and "mg/dL" not in second
    assert httpx_mock.get_request().headers["api-secret"]  # type: ignore[union-attr]


def test_cli_rejects_two_sources() -> None:
    result = CliRunner().invoke(tail, ["--device", "/dev/null", "--nightscout-url", SITE, "--once"])
    assert result.exit_code == 2 and "not both" in result.output


def test_choose_source(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    assert choose_source(settings, device=None, nightscout_url=None) == "receiver"  # no store yet
    Outbox.open(settings.store_path).close()
    assert choose_source(settings, device=None, nightscout_url=None) == "store"
    assert choose_source(settings, device="auto", nightscout_url=None) == "receiver"
    assert choose_source(settings, device=None, nightscout_url=SITE) == "nightscout"
