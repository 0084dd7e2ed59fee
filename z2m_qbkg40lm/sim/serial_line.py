"""An emulated chip's serial line: a TCP listener (as a network-attached coordinator offers) or a
pseudo-terminal (as a USB stick's /dev/ttyACM0 would be).

The line carries bytes; what they mean is the chip's business (`ChipPort`: Z-Stack's MT frames,
EmberZNet's ASH). Only one host is served at a time, like a real serial port: a new TCP connection
replaces the previous one. Dropping the line (a fault) closes the host's connection; on a
pseudo-terminal it is the stick unplugged and plugged in again: a new terminal behind the same
symlink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import urlsplit

LOGGER = logging.getLogger(__name__)

READ_SIZE: Final = 4096


class Line(Protocol):
    """The chip's end of one host's connection."""

    def write(self, data: bytes) -> None:
        """Send bytes to the host (lost, as on a wire, when nobody listens)."""

    def close(self) -> None:
        """Cut the connection (the host sees it lost)."""


class ChipPort(Protocol):
    """The chip behind the line: it gets the host's bytes and writes its own to the line."""

    def connected(self, line: Line) -> None:
        """A host opened the line (a previous one is cut by the chip)."""

    def received(self, line: Line, data: bytes) -> None:
        """Bytes from the host."""

    def disconnected(self, line: Line) -> None:
        """The host's connection ended."""


class _TcpHost(asyncio.Protocol):
    """One TCP connection from a host: the chip's serial port while it lasts."""

    def __init__(self, port: ChipPort) -> None:
        self._port = port
        self._transport: asyncio.Transport | None = None
        self._peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        LOGGER.info("Host connected from %s", self._peer)
        self._port.connected(self)

    def connection_lost(self, exc: Exception | None) -> None:
        LOGGER.info("Host %s disconnected%s", self._peer, f": {exc}" if exc else "")
        self._transport = None
        self._port.disconnected(self)

    def data_received(self, data: bytes) -> None:
        self._port.received(self, data)

    def write(self, data: bytes) -> None:
        """Send bytes to the host."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        """Cut the connection."""
        if self._transport is not None:
            self._transport.close()


class TcpLine:
    """A TCP listener serving the chip's serial port to one host at a time."""

    def __init__(self, port: ChipPort, host: str, tcp_port: int) -> None:
        self._port = port
        self._host = host
        self._tcp_port = tcp_port
        self._server: asyncio.Server | None = None
        self._hosts: set[_TcpHost] = set()

    async def start(self) -> str:
        """Listen; returns `tcp://host:port` with the port actually bound (useful with port 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accept, self._host, self._tcp_port)
        port = self._server.sockets[0].getsockname()[1]
        address = f"tcp://{self._host}:{port}"
        LOGGER.info("Listening on %s", address)
        return address

    def _accept(self) -> _TcpHost:
        host = _TcpHost(self._port)
        self._hosts.add(host)
        return host

    async def stop(self) -> None:
        """Stop listening and cut every host's connection."""
        if self._server is not None:
            self._server.close()
            for host in self._hosts:
                host.close()
            self._hosts.clear()
            await self._server.wait_closed()
            self._server = None


class PtyLine:
    """A pseudo-terminal whose far end the host opens like a USB serial adapter.

    With a `symlink`, that path points at the current /dev/pts/N; closing the line (a fault, as
    when a stick is unplugged) closes the terminal and opens a new one behind the same symlink.
    """

    def __init__(self, port: ChipPort, symlink: Path | None = None) -> None:
        self._port = port
        self._symlink = symlink
        self._master: int | None = None
        self._slave: int | None = None
        self.path = ""

    async def start(self) -> str:
        """Open the terminal; returns the path the host opens."""
        self._open()
        return str(self._symlink) if self._symlink is not None else self.path

    def _open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: a byte pipe like a serial port
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        if self._symlink is not None:
            with contextlib.suppress(FileNotFoundError):
                self._symlink.unlink()
            self._symlink.symlink_to(self.path)
        asyncio.get_running_loop().add_reader(master, self._readable)
        self._port.connected(self)
        LOGGER.info("Serial port %s%s", self.path, f" (linked from {self._symlink})" if self._symlink else "")

    def _readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            LOGGER.warning("Reading %s failed: %s", self.path, exc)
            return
        self._port.received(self, data)

    def write(self, data: bytes) -> None:
        """Send bytes (lost, as on a wire, when nobody reads the port)."""
        if self._master is None:
            return
        try:
            os.write(self._master, data)
        except OSError as exc:
            LOGGER.warning("Writing to %s failed (%s): bytes lost", self.path, exc)

    def close(self) -> None:
        """Fault: the stick is unplugged and plugged in again (a new terminal)."""
        self._close_fds()
        self._open()

    def _close_fds(self) -> None:
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
        if self._slave is not None:
            os.close(self._slave)
        was_open = self._master is not None
        self._master = self._slave = None
        if was_open:
            self._port.disconnected(self)

    async def stop(self) -> None:
        """Close the terminal and remove the symlink."""
        self._close_fds()
        if self._symlink is not None:
            with contextlib.suppress(FileNotFoundError):
                self._symlink.unlink()


def open_line(port: ChipPort, listen: str) -> TcpLine | PtyLine:
    """The line `--listen` names: `tcp://HOST:PORT` or `pty[:SYMLINK]`."""
    if listen.startswith("tcp://"):
        parts = urlsplit(listen)
        return TcpLine(port, parts.hostname or "127.0.0.1", parts.port or 0)
    symlink = listen.removeprefix("pty").removeprefix(":")
    return PtyLine(port, Path(symlink) if symlink else None)
