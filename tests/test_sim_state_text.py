"""The virtual adapter's state file text, rebuilt from cached parts, is json.dumps of the whole."""

from __future__ import annotations

import json
import random
from typing import Any

from z2m_qbkg40lm.sim.state_text import StateText
from z2m_qbkg40lm.sim.switch import SimulatedSwitch

HEAD: dict[str, Any] = {
    "version": 1,
    "coordinator_ieee": "02:11:22:33:44:55:66:77",
    "network": {"network_info": {"channel": 15, "key": [1, 2], "empty": {}}, "node_info": {"nwk": "0x0000"}},
}


def whole(head: dict[str, Any], records: dict[Any, dict[str, Any]]) -> str:
    return json.dumps({**head, "switches": list(records.values())}, indent=2)


def test_text_is_the_whole_document_dumped() -> None:
    """Byte for byte, with switches, after a change of one, after one leaves, and with none."""
    rng = random.Random(7)
    switches = [SimulatedSwitch.create(rng, taken_nwks=[0]) for _ in range(3)]
    records = {switch.ieee: switch.to_dict() for switch in switches}
    builder = StateText()
    assert builder.text(HEAD, records) == whole(HEAD, records)
    switches[1].relay = not switches[1].relay
    records[switches[1].ieee] = switches[1].to_dict()
    assert builder.text(HEAD, records) == whole(HEAD, records)
    del records[switches[0].ieee]
    assert builder.text({**HEAD, "network": None}, records) == whole({**HEAD, "network": None}, records)
    assert builder.text(HEAD, {}) == whole(HEAD, {})


def test_a_record_changed_in_place_is_not_missed() -> None:
    """An equal-looking record is compared, not trusted by key: a new record object is dumped."""
    builder = StateText()
    records: dict[Any, dict[str, Any]] = {"a": {"relay": False, "groups": []}}
    builder.text(HEAD, records)
    records = {"a": {"relay": True, "groups": [3]}}
    assert builder.text(HEAD, records) == whole(HEAD, records)
