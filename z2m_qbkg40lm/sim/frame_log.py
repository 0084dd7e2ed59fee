"""What a simulated device received: its last ZCL frames, kept until someone takes them.

`SimulatedSwitch.handle()` records every ZCL frame that reaches the switch's firmware, whichever
radio carried it, so the virtual adapter and the Z-Stack emulator show the same thing. The log is
bounded (`LIMIT` frames); frames pushed out before anyone took them are counted per cluster, so a
reader learns that it missed some. Frames are kept raw and decoded only when taken (an OTA
transfer passes hundreds a second).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Final

from z2m_qbkg40lm.sim.frames import ApsFrame

LIMIT: Final = 200


@dataclass(frozen=True, slots=True)  # slots: 80 B less a frame, up to 200 frames a switch
class ReceivedFrame:
    """One frame as it reached the device: the frame, whether it was broadcast, and when (epoch s)."""

    frame: ApsFrame
    broadcast: bool
    received_at: float


@dataclass(frozen=True)
class Taken:
    """The frames taken from a log, oldest first, and how many older ones were dropped unread."""

    frames: list[ReceivedFrame]
    dropped: int


class FrameLog:
    """The last `limit` frames a device received, oldest first."""

    def __init__(self, limit: int = LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"a frame log holds at least 1 frame, not {limit}")
        self._frames: deque[ReceivedFrame] = deque()
        self._limit = limit
        self._dropped: Counter[int] = Counter()  # by cluster id

    def __len__(self) -> int:
        return len(self._frames)

    def record(self, frame: ApsFrame, *, broadcast: bool = False) -> None:
        """Keep a received frame, pushing out the oldest when the log is full."""
        if len(self._frames) >= self._limit:
            oldest = self._frames.popleft()
            self._dropped[oldest.frame.cluster_id] += 1
        self._frames.append(ReceivedFrame(frame, broadcast, time.time()))

    def take(self, cluster_id: int | None = None) -> Taken:
        """Remove and return the frames (of one cluster, or all); the others stay for a later take."""
        if cluster_id is None:
            taken = Taken(list(self._frames), sum(self._dropped.values()))
            self._frames.clear()
            self._dropped.clear()
            return taken
        wanted = [each for each in self._frames if each.frame.cluster_id == cluster_id]
        self._frames = deque(each for each in self._frames if each.frame.cluster_id != cluster_id)
        return Taken(wanted, self._dropped.pop(cluster_id, 0))
