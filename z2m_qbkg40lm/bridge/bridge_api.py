"""bridge/info, bridge/devices, bridge/event and the device requests (rename, remove, options, ...)."""

from __future__ import annotations

from z2m_qbkg40lm.bridge.extension import Extension


class BridgeApi(Extension):
    """Not implemented yet."""
