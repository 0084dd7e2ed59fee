"""Pre-paired switches announce themselves a window at a time, as zigpy finishes with earlier ones.

On a first start every pre-paired switch announces itself. The simulated switches answer within
the same loop iteration, so with all of them announced at once zigpy interviews them in lockstep:
every loop iteration then advances every interview by one step, about 0.1-0.25 s per iteration at
200 switches, and whatever else waits on the loop (the MQTT connection, its subscriptions, the
first `bridge/state`) waits that long per step. Real switches never announce in the same
millisecond. With at most `size` interviews under way the iterations stay short and the total work
is the same.

A slot is freed when zigpy reports the switch initialised or its initialisation failed, or, should
zigpy report neither (a switch it already knew), after `wait_s`.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Hashable
from typing import Final, Generic, TypeVar

from z2m_qbkg40lm.sim.ota_client import Timer

WINDOW: Final = 32
"""Interviews under way at most. 16-64 all keep the loop's iterations short at 200 switches."""
WAIT_S: Final = 5.0
"""How long a slot stays taken when zigpy says nothing about the switch."""

Item = TypeVar("Item")


class JoinWindow(Generic[Item]):
    """Items (a switch and its announcement) handed to `announce` at most `size` at a time.

    `announce` returns False when it sent nothing (the switch went silent or away meanwhile):
    its slot is free again at once.
    """

    def __init__(
        self,
        announce: Callable[[Item], bool],
        call_later: Callable[[float, Callable[[], None]], Timer],
        *,
        size: int | None = None,
        wait_s: float = WAIT_S,
    ) -> None:
        self._announce = announce
        self._call_later = call_later
        self._size = WINDOW if size is None else size
        self._wait_s = wait_s
        self._waiting: deque[tuple[Hashable, Item]] = deque()
        self._under_way: dict[Hashable, Timer] = {}

    def __len__(self) -> int:
        """Items not yet announced."""
        return len(self._waiting)

    def add(self, key: Hashable, item: Item) -> None:
        """Queue an announcement; it goes out at once while the window has room."""
        self._waiting.append((key, item))
        self._fill()

    def settled(self, key: Hashable) -> None:
        """zigpy is done with the switch (initialised, or given up): the next one may announce."""
        timer = self._under_way.pop(key, None)
        if timer is not None:
            timer.cancel()
            self._fill()

    def clear(self) -> None:
        """Forget everything (the adapter stops): nothing more is announced."""
        self._waiting.clear()
        for timer in self._under_way.values():
            timer.cancel()
        self._under_way.clear()

    def _fill(self) -> None:
        while self._waiting and len(self._under_way) < self._size:
            key, item = self._waiting.popleft()
            # Taken before announcing: zigpy may settle the switch within the call.
            self._under_way[key] = self._call_later(self._wait_s, functools.partial(self.settled, key))
            if not self._announce(item):
                self._under_way.pop(key).cancel()
