"""Zigbee2MQTT's state.json: device states by IEEE address, checked against the daemon's devices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.migrate_samples import BULB_IEEE, SWITCH_IEEE, state
from z2m_qbkg40lm.migrate.errors import MigrationError
from z2m_qbkg40lm.migrate.z2m_state import daemon_states, read_z2m_state


def _write(folder: Path, text: str) -> Path:
    path = folder / "state.json"
    path.write_text(text, encoding="utf-8")
    return path


def test_device_states_by_address_and_groups_counted(tmp_path: Path) -> None:
    read = read_z2m_state(_write(tmp_path, json.dumps(state(), indent=4)))

    assert set(read.devices) == {SWITCH_IEEE, BULB_IEEE}
    assert read.devices[SWITCH_IEEE]["state"] == "ON"
    assert read.groups == 1


def test_missing_file_is_an_empty_state(tmp_path: Path) -> None:
    read = read_z2m_state(tmp_path / "state.json")

    assert (read.devices, read.groups) == ({}, 0)


def test_values_the_daemon_does_not_know_are_left_out_and_counted() -> None:
    kept, dropped = daemon_states({SWITCH_IEEE: state()[SWITCH_IEEE], BULB_IEEE: state()[BULB_IEEE]})

    assert kept[SWITCH_IEEE] == state()[SWITCH_IEEE]
    assert kept[BULB_IEEE] == {"state": "OFF", "linkquality": 90}
    assert dropped == 1  # the bulb's brightness


def test_not_json_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match=r"state\.json: not JSON"):
        read_z2m_state(_write(tmp_path, "{"))


def test_an_array_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="expected a JSON object of states, found list"):
        read_z2m_state(_write(tmp_path, "[]"))


def test_a_key_that_is_neither_device_nor_group_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="'hall' is neither an IEEE address nor a group number"):
        read_z2m_state(_write(tmp_path, '{"hall": {}}'))


def test_a_state_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match=f"the state of {SWITCH_IEEE} is not an object"):
        read_z2m_state(_write(tmp_path, json.dumps({SWITCH_IEEE: "ON"})))
