"""`emulate --switches-from`: a factory-new chip starts with another emulator's switches, still
joined; a chip that has a state already keeps its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zigpy.types as t

from z2m_qbkg40lm.sim.emulator import EmulatorOptions, OptionsError, build_options, make_chip

RECORD_NETWORK = "dd:dd:01:02:03:04:05:06"


def _old_chip(path: Path) -> list[dict[str, object]]:
    """A Z-Stack emulator's state file with one joined switch (as its world writes it)."""
    options = EmulatorOptions(nvram=path, switches=1, chip="znp")
    chip, _port = make_chip(options)
    [node] = chip.world.nodes.values()
    node.network = t.EUI64.convert(RECORD_NETWORK)
    node.pairing = False
    chip.close()
    records: list[dict[str, object]] = json.loads(path.read_text(encoding="utf-8"))["switches"]
    return records


def test_a_new_chip_of_another_family_gets_the_switches_still_joined(tmp_path: Path) -> None:
    records = _old_chip(tmp_path / "znp.json")
    options = EmulatorOptions(nvram=tmp_path / "ezsp.json", chip="ezsp", switches_from=tmp_path / "znp.json")
    chip, _port = make_chip(options)
    try:
        [node] = chip.world.nodes.values()
        assert str(node.network) == RECORD_NETWORK and not node.pairing
        assert node.ieee_text == "0x" + str(records[0]["ieee"]).replace(":", "")
        assert f"0x{node.switch.nwk:04x}" == records[0]["nwk"]
    finally:
        chip.close()
    saved = json.loads((tmp_path / "ezsp.json").read_text(encoding="utf-8"))
    assert saved["chip"] == "ezsp" and saved["switches"][0]["network"] == RECORD_NETWORK


def test_a_chip_with_a_state_keeps_its_own_switches(tmp_path: Path) -> None:
    _old_chip(tmp_path / "znp.json")
    first, _port = make_chip(EmulatorOptions(nvram=tmp_path / "ezsp.json", chip="ezsp", switches=2))
    own = set(first.world.nodes)
    first.close()
    again, _port = make_chip(
        EmulatorOptions(nvram=tmp_path / "ezsp.json", chip="ezsp", switches_from=tmp_path / "znp.json")
    )
    try:
        assert set(again.world.nodes) == own
    finally:
        again.close()


def test_a_missing_or_foreign_source_is_an_error(tmp_path: Path) -> None:
    options = EmulatorOptions(nvram=tmp_path / "ezsp.json", chip="ezsp", switches_from=tmp_path / "none.json")
    with pytest.raises(ValueError, match="no emulator state file there"):
        make_chip(options)
    (tmp_path / "other.json").write_text('{"switches": 3}', encoding="utf-8")
    with pytest.raises(ValueError, match="no list of switches"):
        make_chip(
            EmulatorOptions(nvram=tmp_path / "ezsp.json", chip="ezsp", switches_from=tmp_path / "other.json")
        )
    with pytest.raises(OptionsError, match="own --nvram"):
        build_options(
            listen="tcp://127.0.0.1:0",
            nvram=tmp_path / "ezsp.json",
            switches=1,
            mqtt=None,
            base_topic=None,
            config=None,
            linkquality=160,
            switches_from=tmp_path / "ezsp.json",
        )
