"""The emulated chip's serial line: a TCP listener (as a network-attached CC2652 offers) or a
pseudo-terminal (as a USB stick's /dev/ttyACM0 would be).

Both carry MT frames (`FE LEN CMD0 CMD1 DATA FCS`, framed with zigpy-znp's `TransportFrame`) to and
from a `ZStackFirmware`. Only one host is served at a time, like a real serial port: a new TCP
connection replaces the previous one.
"""

# zigpy-znp's wire types have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from pathlib import Path
from typing import Final

from zigpy_znp.exceptions import InvalidFrame
from zigpy_znp.frames import GeneralFrame, TransportFrame

from z2m_qbkg40lm.sim.znp.firmware import ZStackFirmware

LOGGER = logging.getLogger(__name__)

SOF: Final = 0xFE
MAX_LENGTH: Final = 250
READ_SIZE: Final = 4096


class MtFramer:
    """Cuts a byte stream into MT frames; garbage before a start-of-frame byte is skipped."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[GeneralFrame]:
        """Append bytes; return the complete frames they finish."""
        self._buffer += data
        frames: list[GeneralFrame] = []
        while True:
            start = self._buffer.find(SOF)
            if start < 0:
                self._buffer.clear()
                return frames
            del self._buffer[:start]
            if len(self._buffer) < 2:
                return frames
            length = self._buffer[1]
            if length > MAX_LENGTH:
                del self._buffer[:1]
                continue
            if len(self._buffer) < length + 5:
                return frames
            try:
                frame, _rest = TransportFrame.deserialize(bytes(self._buffer[: length + 5]))
            except InvalidFrame as exc:
                LOGGER.warning("Dropping a corrupt MT frame: %s", exc)
                del self._buffer[:1]
                continue
            del self._buffer[: length + 5]
            frames.append(frame.payload)


class _TcpHost(asyncio.Protocol):
    """One TCP connection from a host: the chip's serial port while it lasts."""

    def __init__(self, firmware: ZStackFirmware) -> None:
        self._firmware = firmware
        self._framer = MtFramer()
        self._transport: asyncio.Transport | None = None
        self._peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        LOGGER.info("Host connected from %s", self._peer)
        self._firmware.attach(self)

    def connection_lost(self, exc: Exception | None) -> None:
        LOGGER.info("Host %s disconnected%s", self._peer, f": {exc}" if exc else "")
        self._transport = None
        self._firmware.detach(self)

    def data_received(self, data: bytes) -> None:
        for frame in self._framer.feed(data):
            self._firmware.frame_received(frame)

    def send(self, frame: GeneralFrame) -> None:
        """Frame and write one MT frame."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(TransportFrame(frame).serialize())

    def close(self) -> None:
        """Cut the connection."""
        if self._transport is not None:
            self._transport.close()


class TcpLink:
    """A TCP listener serving the chip's serial port to one host at a time."""

    def __init__(self, firmware: ZStackFirmware, host: str, port: int) -> None:
        self._firmware = firmware
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        """Listen; returns `tcp://host:port` with the port actually bound (useful with port 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _TcpHost(self._firmware), self._host, self._port)
        port = self._server.sockets[0].getsockname()[1]
        address = f"tcp://{self._host}:{port}"
        LOGGER.info("Listening on %s", address)
        return address

    async def stop(self) -> None:
        """Stop listening and cut the host's connection."""
        if self._server is not None:
            self._server.close()
            self._firmware.drop_link(fault=False)
            await self._server.wait_closed()
            self._server = None


class PtyLink:
    """A pseudo-terminal whose far end the host opens like a USB serial adapter.

    With a `symlink`, that path points at the current /dev/pts/N; dropping the link (a fault, as
    when a stick is unplugged) closes the terminal and opens a new one behind the same symlink.
    """

    def __init__(self, firmware: ZStackFirmware, symlink: Path | None = None) -> None:
        self._firmware = firmware
        self._symlink = symlink
        self._framer = MtFramer()
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
        self._framer = MtFramer()
        self._firmware.attach(self)
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
        for frame in self._framer.feed(data):
            self._firmware.frame_received(frame)

    def send(self, frame: GeneralFrame) -> None:
        """Frame and write one MT frame (lost, as on a wire, when nobody reads the port)."""
        if self._master is None:
            return
        try:
            os.write(self._master, TransportFrame(frame).serialize())
        except OSError as exc:
            LOGGER.warning("Writing to %s failed (%s): frame lost", self.path, exc)

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
        self._master = self._slave = None
        self._firmware.detach(self)

    async def stop(self) -> None:
        """Close the terminal and remove the symlink."""
        self._close_fds()
        if self._symlink is not None:
            with contextlib.suppress(FileNotFoundError):
                self._symlink.unlink()
