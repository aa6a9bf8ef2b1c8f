"""Nightscout upload: payload mapping, credentials, retry policy and the REST v1 client.

Layer: nightscout. :mod:`~bridge.nightscout.payloads`, :mod:`~bridge.nightscout.auth` and
:mod:`~bridge.nightscout.retry` are pure; :mod:`~bridge.nightscout.client` is the thin adapter
and the only module that imports httpx. The client is not imported here, so the pure modules
load without httpx.
"""

from __future__ import annotations

from bridge.nightscout.auth import Credentials
from bridge.nightscout.payloads import (
    cal_to_entry,
    device_name,
    devicestatus,
    egv_to_entry,
    event_to_treatment,
    insertion_to_treatment,
    meter_to_entry,
    pair_sensor,
)
from bridge.nightscout.retry import DEFAULT_RETRY, NO_RETRY, RetryPolicy

__all__ = [
    "DEFAULT_RETRY",
    "NO_RETRY",
    "Credentials",
    "RetryPolicy",
    "cal_to_entry",
    "device_name",
    "devicestatus",
    "egv_to_entry",
    "event_to_treatment",
    "insertion_to_treatment",
    "meter_to_entry",
    "pair_sensor",
]
