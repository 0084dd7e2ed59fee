"""The open coordinator backup as zigbee-herdsman writes it, read through zigpy's own code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.migrate_samples import (
    CHANNEL,
    COORDINATOR_IEEE,
    EXT_PAN_ID,
    NETWORK_KEY,
    PAN_ID,
    SWITCH_IEEE,
    coordinator_backup,
)
from z2m_qbkg40lm.migrate.coordinator_backup import backup_document, parse_backup, read_backup
from z2m_qbkg40lm.migrate.errors import MigrationError


def _write(folder: Path, document: Any) -> Path:
    path = folder / "coordinator_backup.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_herdsman_backup_is_read_with_its_unpadded_pan_id(tmp_path: Path) -> None:
    backup = read_backup(_write(tmp_path, coordinator_backup()))

    assert backup.pan_id == PAN_ID
    assert backup.document["pan_id"] == "0abc"
    assert backup.network_key == bytes(NETWORK_KEY)
    assert backup.ext_pan_id == bytes(EXT_PAN_ID)
    assert backup.channel == CHANNEL
    assert backup.coordinator_ieee == COORDINATOR_IEEE
    info = backup.network.network_info
    assert info.network_key.tx_counter == 48213
    assert str(info.extended_pan_id).replace(":", "") == bytes(EXT_PAN_ID).hex()
    [link_key] = info.key_table
    assert str(link_key.partner_ieee).replace(":", "") == SWITCH_IEEE.removeprefix("0x")
    assert link_key.tx_counter == 12
    assert len(info.nwk_addresses) == 2


def test_zigpy_written_backup_reads_back_the_same_network(tmp_path: Path) -> None:
    network = read_backup(_write(tmp_path, coordinator_backup())).network

    again = parse_backup(backup_document(network), tmp_path / "again.json")

    assert again.network.is_compatible_with(network)
    assert again.network.network_info.network_key.tx_counter == 48213


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    document = coordinator_backup()
    document["metadata"]["format"] = "zigbee2mqtt/legacy"

    with pytest.raises(MigrationError, match="unknown backup format 'zigbee2mqtt/legacy'"):
        read_backup(_write(tmp_path, document))


def test_legacy_zstack_backup_without_metadata_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="unknown backup format None"):
        read_backup(_write(tmp_path, {"adapterType": "zStack", "data": {"ZCD_NV_NIB": {}}}))


def test_newer_version_is_refused(tmp_path: Path) -> None:
    document = coordinator_backup()
    document["metadata"]["version"] = 2

    with pytest.raises(MigrationError, match="backup format version 2: newer than this tool reads"):
        read_backup(_write(tmp_path, document))


def test_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "coordinator_backup.json"
    path.write_text('{"metadata": ', encoding="utf-8")

    with pytest.raises(MigrationError, match=r"coordinator_backup\.json: not JSON"):
        read_backup(path)


def test_missing_network_key_is_refused(tmp_path: Path) -> None:
    document = coordinator_backup()
    del document["network_key"]

    with pytest.raises(MigrationError, match=r"network_key\.key is not 32 hexadecimal digits"):
        read_backup(_write(tmp_path, document))


def test_channel_out_of_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="channel 27 is not 11 to 26"):
        read_backup(_write(tmp_path, coordinator_backup(channel=27)))


def test_bad_device_address_is_refused(tmp_path: Path) -> None:
    document = coordinator_backup()
    document["devices"][0]["ieee_address"] = "xyz"

    with pytest.raises(MigrationError, match=r"devices\[1\]\.ieee_address 'xyz'"):
        read_backup(_write(tmp_path, document))


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match=r"coordinator_backup\.json: missing"):
        read_backup(tmp_path / "coordinator_backup.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["metadata"].update(internal="x"), "metadata.internal is not an object"),
        (
            lambda d: d["devices"][0].update(nwk_address=5),
            r"devices\[1\]\.nwk_address 5 is not 4 hexadecimal",
        ),
        (lambda d: d["devices"][0]["link_key"].update(tx_counter="x"), r"devices\[1\]\.link_key\.tx_counter"),
        (
            lambda d: d["network_key"].update(frame_counter=True),
            r"network_key\.frame_counter is not a number",
        ),
        (lambda d: d.update(channel_mask=["a"]), "channel_mask is not a list of channels"),
    ],
)
def test_a_field_zigpy_would_trip_over_is_named(tmp_path: Path, change: Any, message: str) -> None:
    """Each would otherwise end in a traceback from zigpy's reader (AttributeError) or in a restore
    that fails later."""
    document = coordinator_backup()
    change(document)

    with pytest.raises(MigrationError, match=message):
        read_backup(_write(tmp_path, document))
