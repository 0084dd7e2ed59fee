"""`simulation/heartbeats`: the simulated switches send a stream of heartbeats, round robin.

One request makes the switches send `count` FCC0 heartbeat reports (attribute 0x00F7, the
frame a real QBKG40LM sends every few minutes) without a request per frame, so that users can
load the daemon and their automations with reports as they arrive from a radio, and the
benchmark can measure inbound frames alone::

    {"count": 2000, "rate": 200, "ids": ["hall_switch", "0x54ef44…"]}

`count` (1-100,000) heartbeats in all, round robin over `ids` (friendly names or IEEE
addresses, each once; default: every switch of the network, in joining order). `rate`
(0.1-10,000 heartbeats a second) paces them; without it (or `null`) each heartbeat is sent as
soon as the daemon has published the state of the previous one, as fast as the daemon takes
them. A stream lasts at most `MAX_SECONDS` (`count / rate`). Every heartbeat carries the
switch's next transaction number and a chip temperature one degree above its last one (from
20 °C again after 60 °C: 41 values, prime to the 256 transaction numbers), so no two frames of a
switch are alike within 10,496 heartbeats and zigpy's duplicate filter drops none. The request is
answered once, when the stream is done.

This module checks the request's payload (the other simulation requests' checks are in
`requests.py`); the virtual adapter delivers the frames (`sim/virtual_radio.py`, with
`sim/heartbeat_stream.py` stepping the temperatures).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

MAX_COUNT: Final = 100_000
MIN_RATE: Final = 0.1
MAX_RATE: Final = 10_000.0
MAX_SECONDS: Final = 3600.0
"""The longest stream one request may start: a slow one still ends within the hour."""
MAX_IDS: Final = 1024
_KEYS: Final = frozenset({"count", "rate", "ids"})


class StreamError(ValueError):
    """A bad `simulation/heartbeats` request; the message names what is wrong."""


@dataclass(frozen=True)
class StreamRequest:
    """A checked `simulation/heartbeats`: how many, how fast (None: as fast as taken), which switches."""

    count: int
    rate: float | None
    ids: tuple[str, ...] | None


def parse_stream(message: Any) -> StreamRequest:
    """Check a `simulation/heartbeats` payload; StreamError names the first thing wrong."""
    if not isinstance(message, Mapping):
        raise StreamError(
            'Invalid payload: expected {"count": 1-100000, "rate": heartbeats per second (optional),'
            ' "ids": [switches] (optional)}'
        )
    unknown = sorted(set(message) - _KEYS - {"transaction"})
    if unknown:
        raise StreamError(
            f"Invalid payload: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})"
        )
    count = message.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise StreamError(
            f"Invalid payload: count must be a whole number from 1 to {MAX_COUNT}, not {count!r}"
        )
    rate = message.get("rate")
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate):
            raise StreamError(
                f"Invalid payload: rate must be a number of heartbeats per second, not {rate!r}"
            )
        if not MIN_RATE <= rate <= MAX_RATE:
            raise StreamError(
                f"Invalid payload: rate must be from {MIN_RATE:g} to {MAX_RATE:g} heartbeats per second"
                " (leave it out for as fast as the daemon takes them), not "
                f"{rate:g}"
            )
        if count / rate > MAX_SECONDS:
            raise StreamError(
                f"Invalid payload: {count} heartbeats at {rate:g} a second take {count / rate:.0f} s;"
                f" a stream may last at most {MAX_SECONDS:.0f} s"
            )
        rate = float(rate)
    return StreamRequest(count, rate, _ids(message.get("ids")))


def _ids(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or len(value) > MAX_IDS
        or any(not isinstance(name, str) or not name for name in value)
    ):
        raise StreamError(
            f"Invalid payload: ids must be a list of 1 to {MAX_IDS} switches (friendly names or IEEE"
            " addresses)"
        )
    if len(set(value)) != len(value):
        raise StreamError("Invalid payload: ids names a switch more than once")
    return tuple(value)
