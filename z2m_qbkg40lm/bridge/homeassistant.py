"""Home Assistant MQTT discovery, and the republish on Home Assistant's birth message."""

from __future__ import annotations

from z2m_qbkg40lm.bridge.extension import Extension


class HomeAssistant(Extension):
    """Not implemented yet."""
