"""Zigbee2MQTT's exposes format: typed descriptions of a device's properties."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Expose:
    """Placeholder until the exposes builders land."""

    json: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The expose as Zigbee2MQTT publishes it."""
        return dict(self.json)
