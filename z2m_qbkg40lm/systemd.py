"""systemd's notify protocol (READY, WATCHDOG, STOPPING): one datagram to $NOTIFY_SOCKET.

A no-op outside systemd. The watchdog is fed from the event loop, so a blocked loop trips it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

_LOGGER = logging.getLogger(__name__)


def notify(message: str) -> None:
    """Send one notification, e.g. "READY=1"; silently nothing without NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        _LOGGER.warning("Cannot notify systemd (%s): %s", message, exc)


def watchdog_interval_s() -> float | None:
    """Half of systemd's WatchdogSec for this process, or None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None


async def feed_watchdog_forever(interval_s: float) -> None:
    """Ping systemd's watchdog from the event loop."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval_s)
