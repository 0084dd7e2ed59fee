"""The commands waiting for one device: a bounded line, where a newer `/set` of a property takes
over from an older one that has not been sent yet.

Commands to one device run one at a time, in the order they arrived. Without a bound a flood of
commands (a script in a loop, a broken automation) queues for minutes, and a `/get` sent
meanwhile waits behind all of it. So at most `MAX_WAITING` commands wait for a device (besides
the one it is carrying out), and a `/set` only while fewer than `MAX_WAITING_SETS` do: the last
places are kept for `/get`, so that a flood of `/set` never keeps a user from reading the device.
A command beyond the bound is refused at once.

A waiting `/set` whose property a newer `/set` gives an absolute value (`ON`, `decoupled`) loses
that property, and the keys that go with it (`on_time` with `state`): only the newest value
matters, and the device is spared the ones in between. A relative value (`TOGGLE`) replaces
nothing, since two toggles are not one, and neither does a value the newer command cannot carry
out; an absolute value does replace an older waiting `TOGGLE`. A waiting `/get` is a fence: the
commands before it are never replaced, so that it reads what they did. A command left with
nothing to do leaves the line at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from z2m_qbkg40lm.bridge.topics import DeviceCommand
from z2m_qbkg40lm.devices.definition import DeviceDefinition
from z2m_qbkg40lm.devices.exposes import BinaryExpose, find_feature

MAX_WAITING = 50
"""Commands that may wait for one device. A QBKG40LM carries out a command in roughly 50 to
150 ms over Zigbee (a unicast and its answer; a read-back after `operation_mode`), so 50 waiting
commands are a few seconds of its work: the longest a newly sent command waits for its turn."""
MAX_WAITING_SETS = 40
"""A `/set` is refused once this many commands wait; the other places are for `/get`."""


def _alone(prop: str) -> frozenset[str]:
    return frozenset({prop})


@dataclass(eq=False)
class QueuedCommand:
    """One accepted `/set` or `/get`, waiting for its device's turn or being carried out."""

    command: DeviceCommand
    ieee: str
    properties: dict[str, Any]
    """The properties still to carry out (a newer `/set` may take some away while it waits)."""
    transaction: Any
    replaces_nothing: frozenset[str] = frozenset()
    """Properties that take nothing over from older commands: a value relative to the current one
    (TOGGLE), or one this command cannot carry out."""
    together: Callable[[str], frozenset[str]] = _alone
    """The keys that go with a property (`state`, `on_time`, `off_wait_time`): taken over together."""
    replaced: dict[str, Any] = field(default_factory=dict)
    """The properties a newer `/set` took over, with the values this command had for them."""

    @property
    def action(self) -> str:
        """`set` or `get`."""
        return self.command.action


@dataclass(frozen=True)
class Admission:
    """What happened to a command offered to the line."""

    waiting: int
    """Commands waiting when it came (those replaced by it not counted)."""
    accepted: bool
    ended: tuple[QueuedCommand, ...] = ()
    """Older commands left with nothing to do: replaced whole, out of the line."""


class CommandQueue:
    """The waiting commands of one device, oldest first."""

    def __init__(self) -> None:
        self._waiting: deque[QueuedCommand] = deque()
        self.draining = False
        """True while a task is carrying out this device's commands."""
        self._owed_answers = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def offer(self, queued: QueuedCommand) -> Admission:
        """Put a command in line (replacing what it makes pointless), or refuse it when full."""
        takes_over = (
            {
                key
                for prop in queued.properties
                if prop not in queued.replaces_nothing
                for key in queued.together(prop)
            }
            if queued.action == "set"
            else set()
        )
        touched: list[QueuedCommand] = []
        for older in reversed(self._waiting):
            if older.action == "get":
                # A read must see what the commands before it did: nothing before it is replaced.
                break
            if not takes_over.isdisjoint(older.properties):
                touched.append(older)
        emptied = [older for older in touched if set(older.properties) <= takes_over]
        waiting = len(self._waiting) - len(emptied)
        limit = MAX_WAITING_SETS if queued.action == "set" else MAX_WAITING
        if waiting >= limit:
            # Refused whole: the older commands keep everything.
            return Admission(waiting, accepted=False)
        for older in touched:
            for prop in [prop for prop in older.properties if prop in takes_over]:
                older.replaced[prop] = older.properties.pop(prop)
        for older in emptied:
            self._waiting.remove(older)
        # Each ended command is still owed its state message (one per command, see README).
        self._owed_answers += len(emptied)
        self._waiting.append(queued)
        return Admission(waiting, accepted=True, ended=tuple(emptied))

    def next(self) -> QueuedCommand | None:
        """The oldest waiting command, taken out of the line; None (and no longer draining) when
        none is left."""
        if not self._waiting:
            self.draining = False
            return None
        return self._waiting.popleft()

    def take_owed_answers(self) -> int:
        """How many state messages the commands ended by replacement are owed (now paid)."""
        owed, self._owed_answers = self._owed_answers, 0
        return owed


def relative_properties(definition: DeviceDefinition, properties: dict[str, Any]) -> frozenset[str]:
    """The properties whose value is a step from the current one (the expose's `value_toggle`)."""
    relative = set()
    for prop, value in properties.items():
        feature = find_feature(definition.exposes, prop)
        toggle = feature.value_toggle if isinstance(feature, BinaryExpose) else None
        if toggle is not None and str(value).upper() == str(toggle).upper():
            relative.add(prop)
    return frozenset(relative)
