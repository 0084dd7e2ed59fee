"""`export-z2m`: the daemon's configuration and data become a Zigbee2MQTT data directory, and back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from tests.migrate_samples import (
    BULB_IEEE,
    CHANNEL,
    COORDINATOR_IEEE,
    EXT_PAN_ID,
    MQTT_PASSWORD,
    NETWORK_KEY,
    PAN_ID,
    SWITCH_IEEE,
    write_adapter_holding_the_network,
    write_z2m_dir,
)
from tests.support import random_base_topic, watching
from z2m_qbkg40lm.cli import main
from z2m_qbkg40lm.config import load_config
from z2m_qbkg40lm.migrate.coordinator_backup import read_backup
from z2m_qbkg40lm.migrate.errors import MigrationError
from z2m_qbkg40lm.migrate.exporter import run_export
from z2m_qbkg40lm.migrate.importer import run_import
from z2m_qbkg40lm.migrate.z2m_config import read_z2m_config
from z2m_qbkg40lm.migrate.z2m_database import read_z2m_database
from z2m_qbkg40lm.migrate.zigpy_store import read_network


def _imported(tmp_path: Path) -> Path:
    data = tmp_path / "daemon"
    run_import(write_z2m_dir(tmp_path / "z2m"), data)
    return data


def _export(data: Path, out: Path, *, force: bool = False) -> None:
    run_export(load_config(data / "configuration.yaml"), data, out, force=force)


def test_configuration_is_zigbee2mqtt_2x_with_the_network_and_names(tmp_path: Path) -> None:
    data = _imported(tmp_path)

    _export(data, tmp_path / "out")

    settings = yaml.safe_load((tmp_path / "out" / "configuration.yaml").read_text())
    assert settings["version"] == 5
    assert settings["mqtt"] == {
        "base_topic": "z2m_home",
        "server": "mqtt://127.0.0.1:1883",
        "user": "z2m",
        "password": MQTT_PASSWORD,
    }
    assert settings["serial"] == {"adapter": "zstack", "port": "tcp://127.0.0.1:6638", "baudrate": 115200}
    advanced = settings["advanced"]
    assert (advanced["channel"], advanced["pan_id"]) == (CHANNEL, PAN_ID)
    assert (advanced["network_key"], advanced["ext_pan_id"]) == (NETWORK_KEY, EXT_PAN_ID)
    assert settings["homeassistant"] == {
        "enabled": True,
        "discovery_topic": "ha_disc",
        "status_topic": "ha_disc/status",
    }
    assert settings["devices"][SWITCH_IEEE] == {"friendly_name": "hall/switch", "retain": True}
    assert settings["devices"][BULB_IEEE] == {"friendly_name": "kitchen bulb"}


def test_database_lines_are_herdsman_devices_interviewed(tmp_path: Path) -> None:
    _export(_imported(tmp_path), tmp_path / "out")

    lines = (tmp_path / "out" / "database.db").read_text().split("\n")

    entries = [json.loads(line) for line in lines]
    assert [entry["id"] for entry in entries] == [1, 2]
    by_address = {entry["ieeeAddr"]: entry for entry in entries}
    switch = by_address[SWITCH_IEEE]
    assert (switch["type"], switch["nwkAddr"], switch["manufId"]) == ("Router", 0x1A2B, 4447)
    assert (switch["modelId"], switch["manufName"], switch["powerSource"]) == (
        "lumi.switch.b1nc01",
        "LUMI",
        "Mains (single phase)",
    )
    assert switch["interviewCompleted"] is True and switch["interviewState"] == "SUCCESSFUL"
    assert switch["epList"] == [1, 41, 242]
    endpoint = switch["endpoints"]["1"]
    assert (endpoint["epId"], endpoint["profId"], endpoint["devId"]) == (1, 260, 256)
    assert endpoint["inClusterList"] == [0, 2, 3, 4, 5, 6, 9, 64704]
    assert endpoint["clusters"]["genBasic"]["attributes"]["modelId"] == "lumi.switch.b1nc01"


def test_backup_and_state_are_zigbee2mqtts(tmp_path: Path) -> None:
    _export(_imported(tmp_path), tmp_path / "out")

    backup = read_backup(tmp_path / "out" / "coordinator_backup.json")
    original = read_backup(tmp_path / "z2m" / "coordinator_backup.json")
    state = json.loads((tmp_path / "out" / "state.json").read_text())

    assert backup.network.is_compatible_with(original.network)
    assert backup.document["metadata"]["format"] == "zigpy/open-coordinator-backup"
    assert state[SWITCH_IEEE]["state"] == "ON"


async def test_export_then_import_gives_the_same(tmp_path: Path) -> None:
    data = await asyncio.to_thread(_imported, tmp_path)
    await asyncio.to_thread(_export, data, tmp_path / "out")
    again = tmp_path / "again"
    await asyncio.to_thread(run_import, tmp_path / "out", again)

    first, second = (
        load_config(data / "configuration.yaml").config,
        load_config(again / "configuration.yaml").config,
    )
    assert first.model_dump() == second.model_dump()
    assert (again / "state.json").read_text() == (data / "state.json").read_text()
    assert (
        read_backup(again / "network_backup.json").network
        == read_backup(data / "network_backup.json").network
    )
    before, after = await read_network(data / "zigbee.db"), await read_network(again / "zigbee.db")
    assert sorted(before.devices, key=lambda d: d.ieee) == sorted(after.devices, key=lambda d: d.ieee)


def test_existing_zigbee2mqtt_files_are_not_overwritten_without_force(tmp_path: Path) -> None:
    data = _imported(tmp_path)

    with pytest.raises(MigrationError, match=r"already holds configuration\.yaml, database\.db"):
        _export(data, tmp_path / "z2m")

    _export(data, tmp_path / "z2m", force=True)
    kept = sorted(path.name for path in (tmp_path / "z2m").iterdir() if ".before-export-" in path.name)
    assert [name.split(".before-")[0] for name in kept] == [
        "configuration.yaml",
        "coordinator_backup.json",
        "database.db",
        "state.json",
    ]
    assert read_z2m_config(tmp_path / "z2m").devices[SWITCH_IEEE]["friendly_name"] == "hall/switch"


def test_virtual_adapter_is_refused(tmp_path: Path) -> None:
    data = _imported(tmp_path)
    settings = yaml.safe_load((data / "configuration.yaml").read_text())
    settings["serial"] = {"adapter": "virtual"}
    (data / "configuration.yaml").write_text(yaml.safe_dump(settings))

    with pytest.raises(MigrationError, match="Zigbee2MQTT has no virtual adapter"):
        _export(data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_database_is_refused(tmp_path: Path) -> None:
    data = _imported(tmp_path)
    (data / "zigbee.db").unlink()

    with pytest.raises(MigrationError, match=r"zigbee\.db: missing"):
        _export(data, tmp_path / "out")


def test_a_network_key_that_is_not_the_backups_is_refused(tmp_path: Path) -> None:
    data = _imported(tmp_path)
    settings = yaml.safe_load((data / "configuration.yaml").read_text())
    settings["advanced"]["network_key"] = list(range(1, 17))
    (data / "configuration.yaml").write_text(yaml.safe_dump(settings))

    with pytest.raises(MigrationError, match="does not match the network in the daemon's backup"):
        _export(data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_command_exports_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _imported(tmp_path)

    code = main(["export-z2m", str(tmp_path / "out"), "--config", str(data / "configuration.yaml")])

    assert code == 0
    assert "Exported 2 device(s)" in capsys.readouterr().out


async def test_after_the_daemon_ran_the_coordinator_and_zigpys_newest_backup_are_exported(
    tmp_path: Path,
) -> None:
    from z2m_qbkg40lm.daemon import EXIT_OK, Daemon

    data = await asyncio.to_thread(_imported, tmp_path)
    settings = yaml.safe_load((data / "configuration.yaml").read_text())
    zstack = settings["serial"]
    base = random_base_topic()
    settings.update(serial={"adapter": "virtual"}, virtual={"switches": 0})
    settings["mqtt"]["base_topic"] = base
    settings["homeassistant"] = {"enabled": False}
    (data / "configuration.yaml").write_text(yaml.safe_dump(settings))
    write_adapter_holding_the_network(data)
    daemon = Daemon(load_config(data / "configuration.yaml"), data)
    async with watching(base) as watcher:
        task = asyncio.get_running_loop().create_task(daemon.run())
        try:
            await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
        finally:
            daemon.stop()
            assert await asyncio.wait_for(task, 30) == EXIT_OK
    settings["serial"] = zstack
    (data / "configuration.yaml").write_text(yaml.safe_dump(settings))

    await asyncio.to_thread(_export, data, tmp_path / "out")

    database = read_z2m_database(tmp_path / "out" / "database.db")
    assert database.devices[0].type == "Coordinator" and database.devices[0].ieee == COORDINATOR_IEEE
    assert {device.ieee for device in database.end_devices} == {SWITCH_IEEE, BULB_IEEE}
    backup = read_backup(tmp_path / "out" / "coordinator_backup.json")
    assert backup.network_key == bytes(NETWORK_KEY) and backup.pan_id == PAN_ID


def test_exporting_into_the_daemons_own_data_directory_is_refused(tmp_path: Path) -> None:
    data = _imported(tmp_path)
    before = (data / "configuration.yaml").read_text()

    with pytest.raises(MigrationError, match="is the daemon's own data directory"):
        _export(data, data, force=True)
    assert (data / "configuration.yaml").read_text() == before


def test_the_backup_exported_is_the_configured_networks_not_an_earlier_networks(tmp_path: Path) -> None:
    """zigbee.db keeps backups of an earlier network (zigpy replaces only the same network's): one
    with a higher frame counter must not win over the configured network's newest."""
    from tests.migrate_samples import coordinator_backup
    from z2m_qbkg40lm.migrate.coordinator_backup import parse_backup
    from z2m_qbkg40lm.migrate.exporter import _backup

    current = parse_backup(coordinator_backup(), tmp_path / "current.json").network
    earlier_document = coordinator_backup()
    earlier_document["network_key"] = {"key": "0f" * 16, "frame_counter": 9_000_000, "sequence_number": 0}
    earlier = parse_backup(earlier_document, tmp_path / "earlier.json").network

    chosen = _backup((earlier, current), tmp_path, bytes(NETWORK_KEY))

    assert chosen.network_key == bytes(NETWORK_KEY)
    with pytest.raises(MigrationError, match="all of another network than the configured one"):
        _backup((earlier,), tmp_path, bytes(NETWORK_KEY))
