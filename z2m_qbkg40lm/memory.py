"""Give back what start-up freed: one full garbage collection, then glibc's `malloc_trim(0)`.

Why, measured with 200 virtual switches on a cold start (tracemalloc, gc, /proc/PID/smaps):

- zigpy's database writer saves every newly interviewed device from a clone of it
  (`zigpy.appdb` `raw_device_initialized`); once saved, the clone, with its clusters, their
  attribute caches and event listeners, is reference-cycle garbage: about 80,000 objects (9 MB)
  at 200 switches, plus the tracebacks of the foreign-key errors zigpy meets on the way. CPython
  collects its oldest generation only when it has grown by a quarter since the last full
  collection, so after start-up that garbage stays until much later work triggers one.
- glibc keeps heap memory that was freed at the top of its arenas; `malloc_trim(0)` returns the
  unused pages (about 2 MB after start-up here). Python's own small-object arenas go back to the
  system only when wholly empty, which after start-up few are; the collection makes their free
  blocks reusable, so later work (commands, reports, a pairing session) grows the process less.

Per-thread malloc arenas are not the problem: the daemon runs three threads (the loop, zigpy's
SQLite writer, the loop's default executor) and glibc's arenas other than the main one hold
about 1 MB; `MALLOC_ARENA_MAX` or `PYTHONMALLOC=malloc` made no difference or made it worse.

The full collection takes about 0.1 s at 200 switches, so it runs once, after start-up has
settled, and never on the path of a command.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable

_LOGGER = logging.getLogger(__name__)

SETTLE_S = 10.0
"""Seconds after the bridge reported ready: joins, interviews and zigpy's database writes of a
cold start with 200 virtual switches are done within about 5 s."""


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library has none (musl, macOS)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only here: the daemon needs it for this one call

    try:
        # The symbols the process already has, the C library's among them; ctypes.util's
        # find_library would start `ldconfig` for the same answer.
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_unused_memory(trim: Callable[[int], int] | None = None) -> None:
    """Collect reference-cycle garbage, then hand the C heap's free pages back to the system.

    `trim` stands in for glibc's `malloc_trim` (tests); by default the C library's own is used,
    and where there is none only the collection runs."""
    collected = gc.collect()
    if trim is None:
        trim = _find_malloc_trim()
    returned = bool(trim(0)) if trim is not None else False
    _LOGGER.debug(
        "Released memory after start-up: %d unreachable objects collected, heap %s",
        collected,
        "trimmed" if returned else "not trimmed (nothing to return, or no glibc)",
    )
