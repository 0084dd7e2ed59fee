"""`import-z2m`: a Zigbee2MQTT data directory becomes a configuration and data the daemon starts on."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
import zigpy.appdb

from tests.migrate_samples import (
    BULB_IEEE,
    COORDINATOR_IEEE,
    MQTT_PASSWORD,
    NETWORK_KEY,
    PAN_ID,
    SWITCH_IEEE,
    configuration,
    coordinator_backup,
    write_adapter_holding_the_network,
    write_z2m_dir,
)
from tests.support import random_base_topic, watching
from z2m_qbkg40lm.bridge.state import StateStore
from z2m_qbkg40lm.cli import main
from z2m_qbkg40lm.config import load_config
from z2m_qbkg40lm.migrate.coordinator_backup import read_backup
from z2m_qbkg40lm.migrate.errors import MigrationError
from z2m_qbkg40lm.migrate.importer import run_import
from z2m_qbkg40lm.sim.virtual_radio import VirtualControllerApplication


def _imported(tmp_path: Path, **config: Any) -> Path:
    z2m = write_z2m_dir(tmp_path / "z2m", config=configuration(**config) if config else None)
    data = tmp_path / "daemon"
    run_import(z2m, data)
    return data


def test_configuration_loads_with_the_daemons_own_model(tmp_path: Path) -> None:
    data = _imported(tmp_path)

    config = load_config(data / "configuration.yaml").config

    assert config.mqtt.base_topic == "z2m_home"
    assert config.mqtt.password is not None and config.mqtt.password.get_secret_value() == MQTT_PASSWORD
    assert config.homeassistant.enabled and config.homeassistant.discovery_topic == "ha_disc"
    assert (config.serial.adapter, config.serial.port) == ("zstack", "tcp://127.0.0.1:6638")
    assert config.advanced.network_key == NETWORK_KEY
    assert (config.advanced.pan_id, config.advanced.channel) == (PAN_ID, 15)
    assert {ieee: device.friendly_name for ieee, device in config.devices.items()} == {
        SWITCH_IEEE: "hall/switch",
        BULB_IEEE: "kitchen bulb",
    }
    assert config.devices[SWITCH_IEEE].retain is True


def test_files_holding_keys_and_passwords_are_private(tmp_path: Path) -> None:
    data = _imported(tmp_path)

    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in data.iterdir()}

    assert modes == {
        name: 0o600 for name in ("configuration.yaml", "zigbee.db", "state.json", "network_backup.json")
    }
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


async def test_zigpy_loads_every_device_already_interviewed(tmp_path: Path) -> None:
    data = await asyncio.to_thread(_imported, tmp_path)
    app = VirtualControllerApplication(
        {"device": {"path": "virtual"}, "database_path": str(data / "zigbee.db")}
    )
    listener = await zigpy.appdb.PersistingListener.new(str(data / "zigbee.db"), app)
    try:
        await listener.load()
        devices = {"0x" + str(ieee).replace(":", ""): device for ieee, device in app.devices.items()}
        assert set(devices) == {SWITCH_IEEE, BULB_IEEE}
        switch = devices[SWITCH_IEEE]
        assert switch.is_initialized
        assert (switch.model, switch.manufacturer, switch.nwk) == ("lumi.switch.b1nc01", "LUMI", 0x1A2B)
        assert switch.node_desc.manufacturer_code == 4447 and switch.node_desc.is_router
        assert sorted(switch.endpoints) == [0, 1, 41, 242]
        assert sorted(switch.endpoints[1].in_clusters) == [0, 2, 3, 4, 5, 6, 9, 0xFCC0]
        assert switch.endpoints[1].in_clusters[0].get(0x4000) == "0.0.0_0029"
        assert devices[BULB_IEEE].is_initialized and devices[BULB_IEEE].model == "TRADFRI bulb E27 WW 806lm"
    finally:
        for device in app.devices.values():
            device.on_remove()
        await listener.shutdown()


def test_state_cache_is_kept_for_the_daemon(tmp_path: Path) -> None:
    data = _imported(tmp_path)
    store = StateStore(data / "state.json")

    store.load()

    assert store.get(SWITCH_IEEE)["state"] == "ON"
    assert store.get(SWITCH_IEEE)["operation_mode"] == "control_relay"


def test_network_backup_is_kept_in_the_open_format(tmp_path: Path) -> None:
    data = _imported(tmp_path)

    kept = read_backup(data / "network_backup.json")
    original = read_backup(tmp_path / "z2m" / "coordinator_backup.json")

    assert kept.network == original.network
    assert kept.coordinator_ieee == COORDINATOR_IEEE


def test_existing_data_is_not_overwritten_without_force(tmp_path: Path) -> None:
    data = tmp_path / "daemon"
    data.mkdir()
    (data / "state.json").write_text("{}")
    z2m = write_z2m_dir(tmp_path / "z2m")

    with pytest.raises(MigrationError, match=r"already holds state\.json: nothing was written"):
        run_import(z2m, data)

    assert [path.name for path in data.iterdir()] == ["state.json"]
    assert (data / "state.json").read_text() == "{}"


def test_force_keeps_a_copy_of_each_file_it_replaces(tmp_path: Path) -> None:
    data = tmp_path / "daemon"
    data.mkdir()
    (data / "state.json").write_text("{}")
    (data / "zigbee.db-wal").write_text("stale")  # would be replayed into the new database
    z2m = write_z2m_dir(tmp_path / "z2m")

    result = run_import(z2m, data, force=True)

    kept = {item.original.name: item.kept_as for item in result.replaced}
    assert set(kept) == {"state.json", "zigbee.db-wal"}
    assert kept["state.json"].read_text() == "{}"
    assert kept["state.json"].name.startswith("state.json.before-import-")
    # A kept database's companion keeps its suffix last, where SQLite looks for it.
    assert kept["zigbee.db-wal"].name.startswith("zigbee.db.before-import-")
    assert kept["zigbee.db-wal"].name.endswith("-wal")
    assert not (data / "zigbee.db-wal").exists()
    assert SWITCH_IEEE in json.loads((data / "state.json").read_text())


def test_a_data_directory_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    z2m = write_z2m_dir(tmp_path / "z2m")
    (tmp_path / "daemon").write_text("not a folder")

    with pytest.raises(MigrationError, match=r"daemon: cannot write there .*nothing was written"):
        run_import(z2m, tmp_path / "daemon")

    assert (tmp_path / "daemon").read_text() == "not a folder"


def _assert_nothing_written(data: Path) -> None:
    assert not data.exists()


def test_a_corrupt_database_line_writes_nothing(tmp_path: Path) -> None:
    z2m = write_z2m_dir(tmp_path / "z2m")
    with (z2m / "database.db").open("a") as handle:
        handle.write("\n{not json")

    with pytest.raises(MigrationError, match=r"database\.db: line 5 is not JSON"):
        run_import(z2m, tmp_path / "daemon")

    _assert_nothing_written(tmp_path / "daemon")


def test_a_network_key_that_does_not_match_the_backup_writes_nothing(tmp_path: Path) -> None:
    z2m = write_z2m_dir(tmp_path / "z2m")
    (z2m / "secret.yaml").write_text(yaml.safe_dump({"password": "x", "network_key": list(range(16))}))

    with pytest.raises(
        MigrationError, match=r"does not match coordinator_backup\.json: advanced\.network_key differs"
    ):
        run_import(z2m, tmp_path / "daemon")

    _assert_nothing_written(tmp_path / "daemon")


def test_a_newer_backup_version_writes_nothing(tmp_path: Path) -> None:
    z2m = write_z2m_dir(tmp_path / "z2m")
    document = coordinator_backup()
    document["metadata"]["version"] = 2
    (z2m / "coordinator_backup.json").write_text(json.dumps(document))

    with pytest.raises(MigrationError, match="newer than this tool reads"):
        run_import(z2m, tmp_path / "daemon")

    _assert_nothing_written(tmp_path / "daemon")


def test_a_backup_of_another_coordinator_writes_nothing(tmp_path: Path) -> None:
    z2m = write_z2m_dir(tmp_path / "z2m")
    (z2m / "coordinator_backup.json").write_text(
        json.dumps(coordinator_backup(coordinator_ieee="00124b0000000001"))
    )

    with pytest.raises(MigrationError, match="not the same installation"):
        run_import(z2m, tmp_path / "daemon")

    _assert_nothing_written(tmp_path / "daemon")


def test_settings_the_daemon_refuses_write_nothing(tmp_path: Path) -> None:
    settings = configuration()
    settings["devices"][SWITCH_IEEE]["friendly_name"] = "bridge"
    z2m = write_z2m_dir(tmp_path / "z2m", config=settings)

    with pytest.raises(
        MigrationError, match=r"this daemon cannot use these settings: devices.*'bridge' is reserved"
    ):
        run_import(z2m, tmp_path / "daemon")

    _assert_nothing_written(tmp_path / "daemon")


def test_a_missing_backup_says_how_to_get_one_and_writes_nothing(tmp_path: Path) -> None:
    z2m = write_z2m_dir(tmp_path / "z2m")
    (z2m / "coordinator_backup.json").unlink()

    with pytest.raises(MigrationError, match=r"coordinator_backup\.json: missing: Zigbee2MQTT writes it"):
        run_import(z2m, tmp_path / "daemon")

    _assert_nothing_written(tmp_path / "daemon")


def test_green_power_devices_are_left_out_with_a_warning(tmp_path: Path) -> None:
    z2m = write_z2m_dir(tmp_path / "z2m")
    green_power = {"id": 5, "type": "GreenPower", "ieeeAddr": "0x00000000017ab3c2", "nwkAddr": 0xB3C2,
                   "endpoints": {}, "interviewState": "SUCCESSFUL", "meta": {}}  # fmt: skip
    with (z2m / "database.db").open("a") as handle:
        handle.write("\n" + json.dumps(green_power))

    result = run_import(z2m, tmp_path / "daemon")

    assert "0x00000000017ab3c2" not in {device.ieee for device in result.plan.devices}
    assert any(
        "Green Power device 0x00000000017ab3c2 left out" in warning for warning in result.plan.warnings
    )


def test_another_adapter_replaces_zigbee2mqtts_serial_settings(tmp_path: Path) -> None:
    z2m = write_z2m_dir(tmp_path / "z2m")

    code = main(
        [
            "import-z2m",
            str(z2m),
            "--data-dir",
            str(tmp_path / "daemon"),
            "--adapter",
            "ember",
            "--port",
            "/dev/ttyUSB1",
        ]
    )

    assert code == 0
    serial = load_config(tmp_path / "daemon" / "configuration.yaml").config.serial
    assert (serial.adapter, serial.port, serial.baudrate) == ("ember", "/dev/ttyUSB1", 115200)


def test_the_zigbee2mqtt_folder_itself_is_refused(tmp_path: Path) -> None:
    z2m = write_z2m_dir(tmp_path / "z2m")

    with pytest.raises(MigrationError, match="is Zigbee2MQTT's own data directory"):
        run_import(z2m, z2m)


def test_command_prints_the_summary_and_lists_unsupported_devices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    z2m = write_z2m_dir(tmp_path / "z2m")

    code = main(["import-z2m", str(z2m), "--data-dir", str(tmp_path / "daemon")])

    out = capsys.readouterr().out
    assert code == 0
    assert "Imported 2 device(s): 1 supported, 1 not supported" in out
    assert f"kitchen bulb ({BULB_IEEE}, TRADFRI bulb E27 WW 806lm)" in out
    assert "warning: frontend: not supported by this daemon, left out" in out
    assert MQTT_PASSWORD not in out


def test_command_error_is_one_line_and_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["import-z2m", str(tmp_path / "absent"), "--data-dir", str(tmp_path / "daemon")])

    assert code == 1
    assert (
        capsys.readouterr().err.strip()
        == f"import-z2m: {tmp_path / 'absent'}: not a folder (give Zigbee2MQTT's data directory)"
    )


# --- End to end: the daemon on the same adapter -----------------------------------------------


async def test_daemon_starts_on_the_imported_network_and_the_switch_obeys_without_join_or_interview(
    tmp_path: Path,
) -> None:
    from z2m_qbkg40lm.daemon import EXIT_OK, Daemon

    base = random_base_topic()
    settings = configuration()
    settings["mqtt"]["base_topic"] = base
    settings["homeassistant"] = {"enabled": False}
    settings["availability"] = {"enabled": False}
    data = await asyncio.to_thread(_imported, tmp_path, **settings)
    config = yaml.safe_load((data / "configuration.yaml").read_text())
    config["serial"] = {"adapter": "virtual"}
    config["virtual"] = {"switches": 0}
    (data / "configuration.yaml").write_text(yaml.safe_dump(config))
    write_adapter_holding_the_network(data)
    daemon = Daemon(load_config(data / "configuration.yaml"), data)

    async with watching(base) as watcher:
        task = asyncio.get_running_loop().create_task(daemon.run())
        try:
            await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
            devices = (await watcher.wait_for("bridge/devices")).json()
            listed = {device["ieee_address"]: device for device in devices}
            assert listed[SWITCH_IEEE]["friendly_name"] == "hall/switch"
            assert (
                listed[SWITCH_IEEE]["interview_completed"] is True
                and listed[SWITCH_IEEE]["supported"] is True
            )
            assert (
                listed[BULB_IEEE]["friendly_name"] == "kitchen bulb"
                and listed[BULB_IEEE]["supported"] is False
            )
            position = watcher.mark()
            await watcher.publish("hall/switch/set", json.dumps({"state": "OFF"}))
            await watcher.wait_state("hall/switch", lambda s: s.get("state") == "OFF", after=position)
            radio = daemon._radio
            assert radio is not None
            [switch] = radio._app.simulated_switches
            position = watcher.mark()
            switch.send_own(switch.press("double"))
            await watcher.wait_state("hall/switch", lambda s: s.get("action") == "double", after=position)
            events = [message.json().get("type") for message in watcher.since(0, "bridge/event")]
            assert not {"device_joined", "device_interview", "device_announce"} & set(events)
        finally:
            daemon.stop()
            assert await asyncio.wait_for(task, 30) == EXIT_OK
