"""The virtual adapter's state file as text, rebuilt only where a switch changed.

The file is `json.dumps(document, indent=2)` of the network and every switch's record. With the
`indent` option Python's encoder runs in pure Python: about 4 ms for 200 switches, and a record
(`SimulatedSwitch.to_dict()`) takes about 11 µs more per switch. `StateFileText` keeps each
switch's record and its text as it stands in the file, so a save re-encodes only the switches whose
record changed, and joins the rest: the same bytes as encoding the whole document.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol

_INDENT: Final = 2
_ITEM_PREFIX: Final = " " * (2 * _INDENT)
"""A record is an item of the list under the top-level "switches" key: two levels deep."""
_EMPTY_TAIL: Final = "[]\n}"


class Recorded(Protocol):
    """What the file holds of a switch: its record. Switches are told apart by identity: zigpy's
    EUI64 hashes by formatting its text (~4 µs), too slow to key 200 records on at every save."""

    def to_dict(self) -> dict[str, Any]:
        """Everything that survives a restart, as JSON-friendly values."""


@dataclass(frozen=True, slots=True)
class _Entry:
    record: dict[str, Any]
    text: str


def _item_text(record: dict[str, Any]) -> str:
    """The record as it stands in the file's "switches" list (every line indented two levels)."""
    return "\n".join(_ITEM_PREFIX + line for line in json.dumps(record, indent=_INDENT).split("\n"))


class StateFileText:
    """The switches' records and their text, kept between saves of the state file."""

    def __init__(self) -> None:
        self._entries: dict[Recorded, _Entry] = {}

    def record(self, switch: Recorded) -> dict[str, Any] | None:
        """The record last taken of a switch (None when it has none)."""
        entry = self._entries.get(switch)
        return None if entry is None else entry.record

    def forget(self) -> None:
        """Drop every record: the next `update()` takes them all again."""
        self._entries = {}

    def update(self, switches: Iterable[Recorded], changed: Container[Recorded] | None = None) -> None:
        """Take the records of `switches` (the network, in order): of every switch when `changed`
        is None, else only of those in `changed` and those without one; a record equal to the
        kept one keeps its text."""
        entries: dict[Recorded, _Entry] = {}
        for switch in switches:
            entry = self._entries.get(switch)
            if entry is None or changed is None or switch in changed:
                record = switch.to_dict()
                if entry is None or entry.record != record:
                    entry = _Entry(record, _item_text(record))
            entries[switch] = entry
        self._entries = entries

    def text(self, head: dict[str, Any]) -> str:
        """The whole file: `head` (whose last key is "switches", an empty list) with the records."""
        assert list(head)[-1] == "switches" and head["switches"] == []
        document = json.dumps(head, indent=_INDENT)
        if not self._entries:
            return document
        items = ",\n".join(entry.text for entry in self._entries.values())
        return f"{document[: -len(_EMPTY_TAIL)]}[\n{items}\n{' ' * _INDENT}]\n}}"
