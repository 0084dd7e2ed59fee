"""The take-over decision and the backup file, without a radio: what start-up does with the adapter
for each combination of adapter, configuration, network_backup.json and zigpy's own record."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import zigpy.types as zt

from z2m_qbkg40lm.config import NetworkSettings
from z2m_qbkg40lm.zigbee.network_takeover import (
    Action,
    Network,
    NetworkTakeoverError,
    plan,
    read_backup_file,
    set_aside_name,
)

KEY = bytes(range(1, 17))
EXT_PAN = bytes([0xDD, 0xDD, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06])
CONFIGURED = Network.configured(
    NetworkSettings(network_key=KEY, pan_id=0x1A62, ext_pan_id=EXT_PAN, channel=15)
)


def _other(**changes: Any) -> Network:
    fields = {
        "pan_id": CONFIGURED.pan_id,
        "extended_pan_id": CONFIGURED.extended_pan_id,
        "network_key": CONFIGURED.network_key,
        "channel": CONFIGURED.channel,
        **changes,
    }
    return Network(**fields)


ANOTHER_KEY = _other(network_key=bytes(16 * [0x42]))


def test_configured_network_reads_the_extended_pan_id_as_written() -> None:
    # The order the configuration lists the bytes in is the order zigpy prints them.
    assert str(CONFIGURED.extended_pan_id) == "dd:dd:01:02:03:04:05:06"


def test_blank_adapter_without_a_backup_file_is_left_to_zigpy() -> None:
    assert plan(CONFIGURED, None, None, None).action is Action.START


def test_blank_adapter_gets_a_backup_of_the_configured_network_restored() -> None:
    decision = plan(CONFIGURED, None, CONFIGURED, None)
    assert decision.action is Action.RESTORE and decision.reason == ""
    moved = plan(CONFIGURED, None, _other(channel=20), None)
    assert moved.action is Action.RESTORE and "channel 20" in moved.reason


def test_a_backup_of_another_network_is_not_restored() -> None:
    decision = plan(CONFIGURED, None, _other(pan_id=0x1234, network_key=bytes(16)), None)
    assert decision.action is Action.REFUSE
    assert "PAN id: backup 0x1234, configured 0x1a62" in decision.reason
    assert "network key (the keys are not shown)" in decision.reason
    assert KEY.hex() not in decision.reason and bytes(16).hex() not in decision.reason


def test_adapter_holding_the_configured_network_starts() -> None:
    assert plan(CONFIGURED, CONFIGURED, None, None) == plan(CONFIGURED, CONFIGURED, None, CONFIGURED)
    assert plan(CONFIGURED, CONFIGURED, None, None).action is Action.START
    moved = plan(CONFIGURED, _other(channel=25), None, None)
    assert moved.action is Action.START and "channel 25" in moved.reason


def test_a_backup_file_the_adapter_does_not_need_is_set_aside() -> None:
    decision = plan(CONFIGURED, CONFIGURED, CONFIGURED, None)
    assert decision.action is Action.START and decision.set_aside_backup


def test_adapter_holding_another_network_is_refused_naming_what_differs() -> None:
    decision = plan(CONFIGURED, ANOTHER_KEY, None, None)
    assert decision.action is Action.REFUSE
    assert "network key (the keys are not shown)" in decision.reason and "PAN id" not in decision.reason
    assert KEY.hex() not in decision.reason and ANOTHER_KEY.network_key.hex() not in decision.reason
    other_pan = _other(extended_pan_id=zt.EUI64.convert("00:11:22:33:44:55:66:77"))
    assert (
        "extended PAN id: adapter 00:11:22:33:44:55:66:77, configured dd:dd:01"
        in plan(CONFIGURED, other_pan, None, None).reason
    )


def test_a_backup_of_the_configured_network_is_not_restored_over_another_network() -> None:
    decision = plan(CONFIGURED, ANOTHER_KEY, CONFIGURED, None)
    assert decision.action is Action.REFUSE and "only onto a blank adapter" in decision.reason


def test_an_install_that_ran_the_adapters_network_keeps_starting() -> None:
    # zigpy ran the adapter's network all along (its newest backup says so): as before, with a warning.
    decision = plan(CONFIGURED, ANOTHER_KEY, None, ANOTHER_KEY)
    assert decision.action is Action.START and "as before" in decision.reason
    assert plan(CONFIGURED, ANOTHER_KEY, None, CONFIGURED).action is Action.REFUSE


# --- the backup file ---------------------------------------------------------------------------


def _open_coordinator_backup(**changes: Any) -> dict[str, Any]:
    """An open coordinator backup shaped as Zigbee2MQTT's coordinator_backup.json (values made up)."""
    backup: dict[str, Any] = {
        "metadata": {
            "format": "zigpy/open-coordinator-backup",
            "version": 1,
            "source": "zigbee-herdsman@10.9.2",
            "internal": {"date": "2026-12-01T10:00:00.000Z", "znpVersion": 2},
        },
        "stack_specific": {"zstack": {"tclk_seed": "0f" * 16}},
        "coordinator_ieee": "00124b0024c2a1b2",
        "pan_id": "1a62",
        "extended_pan_id": "dddd010203040506",
        "nwk_update_id": 0,
        "security_level": 5,
        "channel": 15,
        "channel_mask": [15],
        "network_key": {"key": KEY.hex(), "sequence_number": 0, "frame_counter": 123456},
        "devices": [
            {
                "ieee_address": "54ef441000a1b2c3",
                "nwk_address": "4f2a",
                "is_child": False,
                "link_key": {"key": "aa" * 16, "rx_counter": 0, "tx_counter": 9},
            }
        ],
    }
    backup.update(changes)
    return backup


def _write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_a_zigbee2mqtt_backup_file_is_read(tmp_path: Path) -> None:
    backup = read_backup_file(_write(tmp_path / "network_backup.json", _open_coordinator_backup()))
    assert backup is not None
    assert Network.of(backup.network_info) == CONFIGURED
    assert backup.network_info.network_key.tx_counter == 123456
    assert [str(key.partner_ieee) for key in backup.network_info.key_table] == ["54:ef:44:10:00:a1:b2:c3"]
    assert str(backup.node_info.ieee) == "00:12:4b:00:24:c2:a1:b2"


def test_no_backup_file_is_none(tmp_path: Path) -> None:
    assert read_backup_file(tmp_path / "network_backup.json") is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        ([1, 2], "not a JSON object"),
        ({"version": 1, "network_info": {}}, "unknown backup format None"),
        (
            _open_coordinator_backup(metadata={"format": "zigpy/open-coordinator-backup", "version": 2}),
            "version 2: newer than",
        ),
        (_open_coordinator_backup(pan_id="zz"), "pan_id 'zz' is not 4 hexadecimal digits"),
        (_open_coordinator_backup(channel=0), "channel 0 is not 11 to 26"),
        (
            _open_coordinator_backup(
                metadata={"format": "zigpy/open-coordinator-backup", "version": 1, "internal": "x"}
            ),
            "metadata.internal is not an object",
        ),
        (
            _open_coordinator_backup(metadata={"format": "zigpy/open-coordinator-backup", "version": 1}),
            "cannot be read",
        ),
        ("[" * 100_000, "is not JSON"),
    ],
)
def test_a_bad_backup_file_is_a_clear_error(tmp_path: Path, content: Any, message: str) -> None:
    path = _write(tmp_path / "network_backup.json", content)
    with pytest.raises(NetworkTakeoverError, match=message):
        read_backup_file(path)
    assert path.exists(), "a bad file is left where it is"


def test_a_set_aside_backup_is_named_by_why_and_when(tmp_path: Path) -> None:
    when = datetime(2026, 12, 5, 21, 30, 5, tzinfo=UTC)
    path = tmp_path / "network_backup.json"
    assert set_aside_name(path, "restored", when).name == "network_backup.json.restored-20261205T213005Z"


def test_zigbee2mqtts_own_file_with_its_unpadded_pan_id_is_read(tmp_path: Path) -> None:
    """zigbee-herdsman writes PAN id 0x0abc as "abc": the file copied in as it is still restores."""
    backup = read_backup_file(
        _write(tmp_path / "network_backup.json", _open_coordinator_backup(pan_id="abc"))
    )
    assert backup is not None
    assert int(backup.network_info.pan_id) == 0x0ABC
