"""A result topic for every /set and /get that carries the caller's transaction id (not in Zigbee2MQTT)."""

from __future__ import annotations

from z2m_qbkg40lm.bridge.extension import Extension


class CommandFeedback(Extension):
    """Not implemented yet."""
