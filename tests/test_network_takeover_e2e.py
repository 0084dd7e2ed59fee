"""Taking over a network, end to end: emulators and daemons as processes, the real Mosquitto broker.

The daemon forms a network on the Z-Stack emulator and pairs a switch (an installation that
started with GENERATE). Its network is then taken as an open coordinator backup by zigpy-znp
(what Zigbee2MQTT's coordinator_backup.json holds). Then:

- the installation restarts as before (no restore, no refusal, no join);
- an import onto the same stick (configuration, zigbee.db and network_backup.json of its network)
  starts at once, restoring nothing;
- a daemon configured with another network key than the adapter's is refused, the adapter's
  state file untouched;
- the switches move to a factory-new EmberZNet (or Z-Stack, or deCONZ) chip (`emulate
  --switches-from`), and a fresh daemon data directory holding only the configuration (the
  backup's network), zigbee.db and network_backup.json restores the network onto it: the switch
  obeys `/set` and its press arrives, with no join and no interview, and the coordinator keeps
  its IEEE address;
- the same with the real importer: Zigbee2MQTT's files for that network (shaped as in
  tests/migrate_samples.py), `import-z2m --adapter ember --port …`, and the daemon on the new chip.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
import zigpy.types as t

from tests import migrate_samples as samples
from tests.support import (
    BROKER_HOST,
    BROKER_PORT,
    DaemonProcess,
    Message,
    Watcher,
    clear_retained,
    random_base_topic,
    watching,
    write_config,
)
from tests.test_end_to_end_zstack import START_S, EmulatorProcess, ZStackAdapter
from z2m_qbkg40lm.zigbee.network_takeover import NETWORK_BACKUP_FILE

CHANNEL = 15
REFUSED_S = 30.0
SWITCH_NAME = "hall/switch"
RESTORE_S = 60.0
"""A restore onto the EmberZNet emulator takes about 8 s: bellows resets the NCP three times and
waits 2 s at each reset over socket://."""
RETAINED = ["bridge/state", "bridge/emulator", "bridge/info", "bridge/devices"]


@dataclass
class Installation:
    """The daemon's first installation on the Z-Stack emulator, and its network as a backup."""

    folder: Path
    base: str
    config: Path
    data_dir: Path
    emulator: EmulatorProcess
    ieee: str
    backup: dict[str, Any]


def _online(message: Message) -> bool:
    return bool(message.json() == {"state": "online"})


def _running(emulator: EmulatorProcess) -> bool:
    process = emulator._process
    return process is not None and process.poll() is None


def _socket(address: str) -> str:
    return "socket://" + address.removeprefix("tcp://")


async def _pair(base: str, adapter: ZStackAdapter) -> str:
    async with watching(base) as watcher:
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"}, timeout=START_S)
        return await adapter.pair_first_switch(watcher)


async def _coordinator_backup(address: str) -> dict[str, Any]:
    """The network on the Z-Stack chip as an open coordinator backup, read by zigpy-znp as
    Zigbee2MQTT reads it for coordinator_backup.json: devices, link keys and frame counter too."""
    from zigpy_znp.zigbee.application import ControllerApplication

    app = ControllerApplication({"device": {"path": _socket(address)}})
    await app.connect()
    try:
        await app.load_network_info(load_devices=True)
        backup = app.backups.from_network_state()
    finally:
        await app.disconnect()
    # As a file holds it: zigpy's dictionary keeps its own integer types.
    return dict(json.loads(json.dumps(backup.as_open_coordinator_json())))


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    folder = tmp_path_factory.mktemp("takeover")
    base = random_base_topic()
    config = folder / "configuration.yaml"
    data_dir = folder / "data"
    write_config(config, base)
    adapter = ZStackAdapter()
    adapter.start(folder, config)
    assert adapter.emulator is not None
    write_config(config, base, serial=adapter.serial(), advanced={"log_level": "info", "channel": CHANNEL})
    daemon = DaemonProcess(config, data_dir)
    daemon.start()
    try:
        ieee = asyncio.run(_pair(base, adapter))
    finally:
        assert daemon.stop() == 0, daemon.log()
    try:
        backup = asyncio.run(_coordinator_backup(adapter.emulator.address))
        yield Installation(folder, base, config, data_dir, adapter.emulator, ieee, backup)
    finally:
        if _running(adapter.emulator):
            adapter.emulator.stop()
        clear_retained(base, [*RETAINED, ieee])


def _state_file(emulator: EmulatorProcess) -> Any:
    return json.loads(emulator.nvram.read_text(encoding="utf-8"))


def _joins_or_interviews(watcher: Watcher, position: int) -> list[Any]:
    events = [message.json() for message in watcher.since(position, "bridge/event")]
    return [event for event in events if event["type"] in ("device_joined", "device_interview")]


async def _obeys_and_reports(watcher: Watcher, ieee: str, name: str | None = None) -> None:
    """`/set` reaches the switch and its press reaches the daemon (`name`: its friendly name)."""
    name = name or ieee
    for state in ("ON", "OFF"):
        position = watcher.mark()
        await watcher.publish(f"{name}/set", json.dumps({"state": state}))
        await watcher.wait_state(name, lambda s, want=state: s.get("state") == want, after=position)
    position = watcher.mark()
    response = await watcher.request("simulation/press", {"id": ieee, "kind": "single"})
    assert response["status"] == "ok", response
    await watcher.wait_state(name, lambda s: s.get("action") == "single", after=position)


def _network_settings(backup: dict[str, Any]) -> dict[str, Any]:
    """The `advanced:` network of an open coordinator backup, as import-z2m writes it."""
    return {
        "channel": backup["channel"],
        "pan_id": int(backup["pan_id"], 16),
        "ext_pan_id": list(bytes.fromhex(backup["extended_pan_id"])),
        "network_key": list(bytes.fromhex(backup["network_key"]["key"])),
    }


def test_backup_holds_the_network_and_the_switch(installation: Installation) -> None:
    backup = installation.backup
    assert backup["metadata"]["format"] == "zigpy/open-coordinator-backup"
    assert backup["channel"] == CHANNEL
    assert [device["ieee_address"] for device in backup["devices"]] == [installation.ieee.removeprefix("0x")]


async def test_an_install_with_generated_network_starts_as_before(installation: Installation) -> None:
    emulator = installation.emulator
    if not _running(emulator):
        emulator.start()
    daemon = DaemonProcess(installation.config, installation.data_dir)
    async with watching(installation.base) as watcher:
        position = watcher.mark()
        daemon.start()
        try:
            await watcher.wait_for(
                "bridge/state", lambda m: m.json() == {"state": "online"}, after=position, timeout=START_S
            )
            await watcher.wait_for(
                "bridge/emulator", lambda m: m.json() == {"state": "online"}, after=position
            )
            await _obeys_and_reports(watcher, installation.ieee)
            assert _joins_or_interviews(watcher, position) == []
        finally:
            assert daemon.stop() == 0, daemon.log()
    log = daemon.log()
    for word in ("restor", "another Zigbee network", "joined", "nterview"):
        assert word not in log, log


def _imported_data_dir(installation: Installation, data_dir: Path) -> None:
    """What import-z2m leaves in a data directory besides the configuration: zigbee.db with the
    devices interviewed, and the network as network_backup.json."""
    data_dir.mkdir(parents=True)
    for each in installation.data_dir.glob("zigbee.db*"):
        shutil.copy(each, data_dir / each.name)
    (data_dir / NETWORK_BACKUP_FILE).write_text(json.dumps(installation.backup), encoding="utf-8")


async def test_an_import_onto_the_same_adapter_starts_without_restoring(installation: Installation) -> None:
    emulator = installation.emulator
    if not _running(emulator):
        emulator.start()
    folder = installation.folder / "same-adapter"
    folder.mkdir()
    base = installation.base  # the emulator's simulation requests live there
    config = write_config(
        folder / "configuration.yaml",
        base,
        serial={"adapter": "zstack", "port": _socket(emulator.address)},
        advanced={"log_level": "info", **_network_settings(installation.backup)},
    )
    data_dir = folder / "data"
    _imported_data_dir(installation, data_dir)
    daemon = DaemonProcess(config, data_dir)
    try:
        async with watching(base) as watcher:
            position = watcher.mark()
            daemon.start()
            await watcher.wait_for("bridge/state", _online, after=position, timeout=START_S)
            await _obeys_and_reports(watcher, installation.ieee)
            assert _joins_or_interviews(watcher, position) == []
    finally:
        code = daemon.stop()
    log = daemon.log()
    assert code == 0, log
    assert "restoring" not in log and "joined" not in log and "nterview" not in log, log
    assert "holds the configured network already" in log, log
    assert not (data_dir / NETWORK_BACKUP_FILE).exists()
    assert len(list(data_dir.glob(f"{NETWORK_BACKUP_FILE}.not-needed-*"))) == 1


async def test_an_adapter_holding_another_network_is_refused_and_left_alone(
    installation: Installation,
) -> None:
    emulator = installation.emulator
    if not _running(emulator):
        emulator.start()
    before = _state_file(emulator)
    network = _network_settings(installation.backup)
    wrong_key = [(byte + 1) % 256 for byte in network["network_key"]]
    folder = installation.folder / "refused"
    folder.mkdir()
    config = write_config(
        folder / "configuration.yaml",
        random_base_topic(),
        serial={"adapter": "zstack", "port": _socket(emulator.address)},
        advanced={"log_level": "info", **network, "network_key": wrong_key},
    )
    daemon = DaemonProcess(config, folder / "data")
    daemon.start()
    assert daemon._process is not None
    try:
        code = await asyncio.to_thread(daemon._process.wait, REFUSED_S)
    except subprocess.TimeoutExpired:
        daemon.stop()
        raise AssertionError(f"the daemon did not give up; log:\n{daemon.log()}") from None
    log = daemon.log()
    assert code == 1, log
    assert "another Zigbee network than the configured one" in log, log
    [refusal] = [line for line in log.splitlines() if "another Zigbee network" in line]
    assert "network key (the keys are not shown)" in refusal and "PAN id" not in refusal, refusal
    for key in (network["network_key"], wrong_key):
        assert bytes(key).hex() not in log.lower()
    emulator.stop()
    assert _state_file(emulator) == before, "nothing may be written to the adapter"


@dataclass
class Moved:
    """A network restored onto a new chip: what the daemon and the chip said."""

    log: str
    coordinator: dict[str, Any]
    emulator: EmulatorProcess
    data_dir: Path


async def _move_to_new_chip(installation: Installation, chip: str, adapter: str) -> Moved:
    """The switches move to a factory-new `chip` (`--switches-from`); a fresh daemon data directory
    as import-z2m leaves it restores the network onto it; /set and a press work, nothing joins."""
    if _running(installation.emulator):
        installation.emulator.stop()
    folder = installation.folder / f"to-{chip}"
    folder.mkdir()
    base = random_base_topic()
    config = folder / "configuration.yaml"
    write_config(config, base)
    emulator = EmulatorProcess(folder, config, chip, "--switches-from", str(installation.emulator.nvram))
    emulator.start()
    write_config(
        config,
        base,
        serial={"adapter": adapter, "port": _socket(emulator.address)},
        advanced={"log_level": "info", **_network_settings(installation.backup)},
    )
    data_dir = folder / "data"
    _imported_data_dir(installation, data_dir)
    daemon = DaemonProcess(config, data_dir)
    try:
        async with watching(base) as watcher:
            position = watcher.mark()
            daemon.start()
            await watcher.wait_for("bridge/state", _online, after=position, timeout=RESTORE_S)
            await watcher.wait_for("bridge/emulator", _online, after=position)
            info = await watcher.wait_for("bridge/info", lambda m: "coordinator" in m.json(), after=position)
            await _obeys_and_reports(watcher, installation.ieee)
            assert _joins_or_interviews(watcher, position) == []
    finally:
        code = daemon.stop()
        emulator.stop()
        clear_retained(base, [*RETAINED, installation.ieee])
    log = daemon.log()
    assert code == 0, log
    assert "restoring the network from" in log, log
    assert "joined" not in log and "nterview" not in log, log
    assert not (data_dir / NETWORK_BACKUP_FILE).exists(), "a restored backup is set aside"
    assert len(list(data_dir.glob(f"{NETWORK_BACKUP_FILE}.restored-*"))) == 1
    emulator_log = emulator.log()
    assert "moved in from" in emulator_log and "joins as" not in emulator_log, emulator_log
    return Moved(log, info.json()["coordinator"], emulator, data_dir)


async def test_network_restored_onto_a_new_ember_chip_keeps_the_switch(installation: Installation) -> None:
    moved = await _move_to_new_chip(installation, "ezsp", "ember")
    assert moved.coordinator["type"] == "EmberZNet"
    assert moved.coordinator["ieee_address"] == "0x" + installation.backup["coordinator_ieee"]
    chip = json.loads(moved.emulator.nvram.read_text(encoding="utf-8"))
    assert chip["tokens"]["network"]["pan_id"] == int(installation.backup["pan_id"], 16)
    # The trust-centre link key of the switch came along, and the network key's frame counter went
    # on from the old coordinator's, 10 000 further (zigpy's step), so the switch accepts the frames.
    assert [key["partner"] for key in chip["tokens"]["link_keys"]] == [
        str(t.EUI64.convert(installation.backup["devices"][0]["ieee_address"]))
    ]
    counter = int.from_bytes(
        bytes.fromhex(chip["stack"]["nv3_tokens"]["NVM3KEY_STACK_NONCE_COUNTER/0"]), "little"
    )
    assert counter >= installation.backup["network_key"]["frame_counter"] + 10_000


@pytest.mark.parametrize(
    ("chip", "adapter", "kind"), [("znp", "zstack", "zStack3x0"), ("deconz", "deconz", "ConBee/RaspBee")]
)
async def test_network_restored_onto_another_new_chip_keeps_the_switch(
    installation: Installation, chip: str, adapter: str, kind: str
) -> None:
    moved = await _move_to_new_chip(installation, chip, adapter)
    assert moved.coordinator["type"] == kind
    assert moved.coordinator["ieee_address"] == "0x" + installation.backup["coordinator_ieee"]


def _zigbee2mqtt_dir(installation: Installation, folder: Path, base: str) -> Path:
    """Zigbee2MQTT's data directory for the installation's network: its configuration, database.db
    (the coordinator and the switch, interviewed) and coordinator_backup.json (the network read
    off the Z-Stack chip), in the shapes Zigbee2MQTT 2.x writes (tests/migrate_samples.py)."""
    backup = installation.backup
    network = _network_settings(backup)
    config = samples.configuration(
        mqtt={"base_topic": base, "server": f"mqtt://{BROKER_HOST}:{BROKER_PORT}"},
        homeassistant={"enabled": False},
        serial={"port": installation.emulator.address, "adapter": "zstack"},
        advanced={"log_level": "info", **network},
        devices={installation.ieee: {"friendly_name": SWITCH_NAME}},
    )
    del config["groups"]
    entries = samples.database_entries()
    coordinator, switch = entries[0], entries[1]
    coordinator["ieeeAddr"] = "0x" + backup["coordinator_ieee"]
    switch["ieeeAddr"] = installation.ieee
    [device] = backup["devices"]
    switch["nwkAddr"] = int(device["nwk_address"], 16)
    for endpoint in switch["endpoints"].values():
        for bind in endpoint["binds"]:
            bind["deviceIeeeAddress"] = coordinator["ieeeAddr"]
    folder.mkdir()
    (folder / "configuration.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    (folder / "database.db").write_text(samples.database_text([coordinator, switch]), encoding="utf-8")
    (folder / "coordinator_backup.json").write_text(json.dumps(backup, indent=4), encoding="utf-8")
    (folder / "state.json").write_text(json.dumps({installation.ieee: {"state": "OFF"}}), encoding="utf-8")
    return folder


def _import_z2m(z2m_dir: Path, data_dir: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = ["import-z2m", str(z2m_dir), "--data-dir", str(data_dir), *options]
    return subprocess.run(
        [sys.executable, "-m", "z2m_qbkg40lm", *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


async def test_import_z2m_then_a_new_ember_chip_keeps_the_switch(installation: Installation) -> None:
    """The whole move with the real importer: `import-z2m --adapter ember --port …` from Zigbee2MQTT's
    files, then the daemon restores the network onto the blank chip the switches moved to."""
    if _running(installation.emulator):
        installation.emulator.stop()
    folder = installation.folder / "import"
    folder.mkdir()
    base = random_base_topic()
    emulator = EmulatorProcess(
        folder,
        write_config(folder / "emulator.yaml", base),
        "ezsp",
        "--switches-from",
        str(installation.emulator.nvram),
    )
    emulator.start()
    data_dir = folder / "data"
    z2m_dir = _zigbee2mqtt_dir(installation, folder / "zigbee2mqtt", base)
    imported = _import_z2m(z2m_dir, data_dir, "--adapter", "ember", "--port", emulator.address)
    if imported.returncode != 0:
        emulator.stop()
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert (data_dir / NETWORK_BACKUP_FILE).exists()
    daemon = DaemonProcess(data_dir / "configuration.yaml", data_dir)
    try:
        async with watching(base) as watcher:
            position = watcher.mark()
            daemon.start()
            await watcher.wait_for("bridge/state", _online, after=position, timeout=RESTORE_S)
            await watcher.wait_for("bridge/emulator", _online, after=position)
            await _obeys_and_reports(watcher, installation.ieee, SWITCH_NAME)
            assert _joins_or_interviews(watcher, position) == []
    finally:
        code = daemon.stop()
        emulator.stop()
        clear_retained(base, [*RETAINED, SWITCH_NAME])
    log = daemon.log()
    assert code == 0, log
    assert "restoring the network from" in log, log
    assert "joined" not in log and "nterview" not in log, log
    assert len(list(data_dir.glob(f"{NETWORK_BACKUP_FILE}.restored-*"))) == 1
