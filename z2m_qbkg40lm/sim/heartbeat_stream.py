"""The temperatures of a `simulation/heartbeats` stream (its request: `bridge/heartbeats_request.py`).

Every heartbeat of a stream carries a chip temperature one degree above the switch's last one,
from 20 °C again after 60 °C: 41 values, prime to the 256 ZCL transaction numbers, so no two
frames of a switch are alike within 10,496 heartbeats and zigpy's duplicate filter (which
compares whole frames received within 10 s) drops none.
"""

from __future__ import annotations

import math
from typing import Final

LOW_TEMPERATURE: Final = 20
HIGH_TEMPERATURE: Final = 60


def next_temperature(temperature: float) -> int:
    """The chip temperature of a switch's next heartbeat in a stream: one degree up, 20 after 60."""
    whole = math.floor(temperature + 0.5)
    if not LOW_TEMPERATURE <= whole < HIGH_TEMPERATURE:
        return LOW_TEMPERATURE
    return whole + 1
