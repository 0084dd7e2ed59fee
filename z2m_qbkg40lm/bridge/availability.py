"""<base>/<friendly_name>/availability: online/offline, with active checks of mains devices."""

from __future__ import annotations

from z2m_qbkg40lm.bridge.extension import Extension


class Availability(Extension):
    """Not implemented yet."""
