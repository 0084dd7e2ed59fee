"""The virtual adapter's state file text (sim/state_file.py): the bytes of encoding the whole
document, with each switch's record re-encoded only when it is taken again and changed."""

from __future__ import annotations

import json
from typing import Any

from z2m_qbkg40lm.sim.state_file import StateFileText


class FakeSwitch:
    """A switch as the file sees it: a record; counts how often its record is taken."""

    def __init__(self, ieee: str, **record: Any) -> None:
        self.ieee = ieee
        self.fields = {"ieee": ieee, **record}
        self.taken = 0

    def to_dict(self) -> dict[str, Any]:
        self.taken += 1
        record: dict[str, Any] = json.loads(json.dumps(self.fields))  # a fresh copy, as a real record is
        return record


def head() -> dict[str, Any]:
    return {"version": 1, "coordinator_ieee": "02:00", "network": {"a": [1, 2], "b": None}, "switches": []}


def whole(switches: list[FakeSwitch]) -> str:
    return json.dumps({**head(), "switches": [s.fields for s in switches]}, indent=2)


def test_the_text_is_the_whole_document_encoded_with_an_indent_of_two() -> None:
    switches = [
        FakeSwitch("aa", relay=True, groups=[], firmware={"x": 1, "nested": {"y": [1, "two"]}}),
        FakeSwitch("bb", relay=False, groups=[3, 4], firmware={}, text='quote " and ünïcode'),
    ]
    records = StateFileText()
    records.update(switches)
    assert records.text(head()) == whole(switches)
    assert json.loads(records.text(head()))["switches"] == [s.fields for s in switches]


def test_no_switches_is_an_empty_list() -> None:
    records = StateFileText()
    records.update([])
    assert records.text(head()) == whole([])


def test_only_the_switches_named_as_changed_are_taken_again() -> None:
    one, two = FakeSwitch("aa", relay=False), FakeSwitch("bb", relay=False)
    records = StateFileText()
    records.update([one, two])
    one.fields["relay"] = two.fields["relay"] = True
    records.update([one, two], changed={one})
    assert (one.taken, two.taken) == (2, 1)
    assert records.record(one) == {"ieee": "aa", "relay": True}
    assert records.record(two) == {"ieee": "bb", "relay": False}, "not taken: as last taken"
    records.update([one, two])  # every switch
    assert records.text(head()) == whole([one, two])


def test_a_switch_new_to_the_file_is_taken_and_a_gone_one_dropped() -> None:
    one, two = FakeSwitch("aa", relay=False), FakeSwitch("bb", relay=True)
    records = StateFileText()
    records.update([one])
    records.update([two], changed=set())
    assert records.record(one) is None
    assert records.text(head()) == whole([two])


def test_forget_takes_every_record_again() -> None:
    one = FakeSwitch("aa", relay=False)
    records = StateFileText()
    records.update([one])
    records.forget()
    records.update([one], changed=set())
    assert one.taken == 2
