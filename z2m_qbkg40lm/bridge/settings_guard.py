"""Keeps operation_mode, flip_indicator_light and power_outage_memory as the user last set them."""

from __future__ import annotations

from z2m_qbkg40lm.bridge.extension import Extension


class SettingsGuard(Extension):
    """Not implemented yet."""
