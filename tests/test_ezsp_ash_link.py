"""The EZSP emulator's ASH link, driven by bellows's own ASH protocol over an in-memory serial line:
reset, frames both ways in order, a corrupt frame, a lost frame, a reset of the NCP by itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bellows import ash as bellows_ash
from bellows.types import NcpResetCode

from z2m_qbkg40lm.sim.ezsp.ash import FLAG, Frame, ResetReason, data_frame, encode
from z2m_qbkg40lm.sim.ezsp.ash_link import NcpAshLink

TIMEOUT = 5.0


@dataclass
class HostSide:
    """What bellows's ASH protocol hands up to its EZSP layer."""

    frames: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    resets: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    errors: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)

    def connection_made(self, _ash: object) -> None:
        pass

    def connection_lost(self, _exc: object) -> None:
        pass

    def eof_received(self) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        self.frames.put_nowait(bytes(data))

    def reset_received(self, code: Any) -> None:
        self.resets.put_nowait(code)

    def error_received(self, code: Any) -> None:
        self.errors.put_nowait(code)


class Line:
    """A serial line: each direction delivers on the next loop turn; `drop_host`/`mangle_host`
    act on the host's next write, `drop_ncp` on the NCP's next DATA frame."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.host = HostSide()
        self.protocol = bellows_ash.AshProtocol(self.host)
        self.delivered: asyncio.Queue[bytes] = asyncio.Queue()
        self.link = NcpAshLink(self._to_host, self.delivered.put_nowait, loop.call_later, ack_timeout_s=0.05)
        self.mangle_host: Callable[[bytes], bytes] | None = None
        self.drop_ncp_data = 0
        self.ncp_controls: list[int] = []  # the control byte of every frame the NCP wrote
        self.protocol.connection_made(self)

    # the transport bellows writes to
    def write(self, data: bytes) -> None:
        data = bytes(data)
        if self.mangle_host is not None:
            data, self.mangle_host = self.mangle_host(data), None
        asyncio.get_running_loop().call_soon(self.link.receive, data)

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def _to_host(self, data: bytes) -> None:
        self.ncp_controls.append(data[0])
        if self.drop_ncp_data and not data[0] & 0x80:
            self.drop_ncp_data -= 1
            return
        asyncio.get_running_loop().call_soon(self.protocol.data_received, data)

    async def connect(self) -> Any:
        self.protocol.send_reset()
        return await asyncio.wait_for(self.host.resets.get(), TIMEOUT)


async def test_a_reset_is_answered_with_the_reason_of_the_last_reset() -> None:
    line = Line()
    assert await line.connect() == NcpResetCode.RESET_POWER_ON
    assert line.link.connected


async def test_frames_go_both_ways_in_order() -> None:
    line = Line()
    await line.connect()
    for n in range(10):  # more than the 8 frame numbers
        await asyncio.wait_for(line.protocol.send_data(bytes((n, 0xAA, 0x7E))), TIMEOUT)
        assert await asyncio.wait_for(line.delivered.get(), TIMEOUT) == bytes((n, 0xAA, 0x7E))
    for n in range(12):  # more than the window
        line.link.send(bytes((n, 0x11, 0x13)))
    got = [await asyncio.wait_for(line.host.frames.get(), TIMEOUT) for _ in range(12)]
    assert got == [bytes((n, 0x11, 0x13)) for n in range(12)]


async def test_a_corrupt_frame_from_the_host_is_refused_and_its_resend_delivered_once() -> None:
    line = Line()
    await line.connect()

    def corrupt(data: bytes) -> bytes:
        return data[:1] + bytes((data[1] ^ 0x40,)) + data[2:]

    line.mangle_host = corrupt
    began = len(line.ncp_controls)
    await asyncio.wait_for(line.protocol.send_data(b"\x01\x02\x03"), TIMEOUT)  # NAK, then resent
    assert await asyncio.wait_for(line.delivered.get(), TIMEOUT) == b"\x01\x02\x03"
    assert line.ncp_controls[began:] == [0xA0, 0x81]  # NAK 0 at once (no waiting for a timeout), ACK 1
    await asyncio.wait_for(line.protocol.send_data(b"\x04"), TIMEOUT)
    assert await asyncio.wait_for(line.delivered.get(), TIMEOUT) == b"\x04"
    assert line.delivered.empty()


async def test_a_frame_lost_on_its_way_to_the_host_is_sent_again() -> None:
    line = Line()
    await line.connect()
    line.drop_ncp_data = 1
    line.link.send(b"\x09\x08")
    assert await asyncio.wait_for(line.host.frames.get(), TIMEOUT) == b"\x09\x08"
    assert line.ncp_controls[-2:] == [0x00, 0x08]  # DATA 0 (lost), then DATA 0 marked retransmitted


async def test_a_resent_frame_already_delivered_is_acknowledged_not_delivered_again() -> None:
    line = Line()
    await line.connect()
    written: list[bytes] = []
    line.link._write = written.append
    line.link.receive(encode(data_frame(0, 0, b"\x05")))
    line.link.receive(encode(data_frame(0, 0, b"\x05", retransmitted=True)))
    assert [line.delivered.get_nowait()] == [b"\x05"] and line.delivered.empty()
    assert written == [encode(Frame(0x81)), encode(Frame(0x81))]  # ACK 1, twice


async def test_out_of_sequence_frames_get_one_nak() -> None:
    line = Line()
    await line.connect()
    written: list[bytes] = []
    line.link._write = written.append
    for _ in range(3):
        line.link.receive(encode(data_frame(4, 0, b"\x05")))
    assert written == [encode(Frame(0xA0))]  # NAK 0, once
    assert line.delivered.empty()


async def test_nothing_but_a_reset_is_answered_before_the_first_one() -> None:
    line = Line()
    written: list[bytes] = []
    line.link._write = written.append
    line.link.receive(encode(data_frame(0, 0, b"\x05")) + bytes((FLAG,)))
    line.link.send(b"\x01")
    assert written == [] and line.delivered.empty()


async def test_an_ncp_that_resets_by_itself_tells_the_host() -> None:
    line = Line()
    await line.connect()
    line.link.reset_by_itself(ResetReason.WATCHDOG)
    assert await asyncio.wait_for(line.host.resets.get(), TIMEOUT) == NcpResetCode.RESET_WATCHDOG
    await asyncio.wait_for(line.protocol.send_data(b"\x07"), TIMEOUT)  # numbering starts again
    assert await asyncio.wait_for(line.delivered.get(), TIMEOUT) == b"\x07"


async def test_a_host_that_never_acknowledges_gets_an_error_frame() -> None:
    line = Line()
    await line.connect()
    line.drop_ncp_data = 100
    line.link.send(b"\x01")
    code = await asyncio.wait_for(line.host.errors.get(), TIMEOUT)
    assert code == NcpResetCode.ERROR_EXCEEDED_MAXIMUM_ACK_TIMEOUT_COUNT
    assert not line.link.connected
    line.drop_ncp_data = 0
    assert await line.connect() == NcpResetCode.ERROR_EXCEEDED_MAXIMUM_ACK_TIMEOUT_COUNT


class _RecordedTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def test_a_closed_line_leaves_no_resend_timer() -> None:
    timers: list[_RecordedTimer] = []

    def call_later(_delay: float, _callback: Callable[[], None]) -> _RecordedTimer:
        timers.append(_RecordedTimer())
        return timers[-1]

    written: list[bytes] = []
    link = NcpAshLink(written.append, lambda _data: None, call_later)
    link.receive(encode(Frame(0xC0)))  # RST
    link.send(b"\x01")  # waits for its ACK: the resend timer runs
    assert len(timers) == 1 and not timers[0].cancelled
    link.close()
    assert timers[0].cancelled and not link.connected
    link.send(b"\x02")
    assert len(written) == 2  # RSTACK and the first DATA frame, nothing after the close
