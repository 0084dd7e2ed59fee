"""The data directory is private and no log line shows a key: real daemons, started under umask 000
at `log_level: debug`, on the virtual adapter and through zigpy-znp against the Z-Stack emulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import yaml

from tests.support import (
    DaemonProcess,
    Watcher,
    clear_retained,
    random_base_topic,
    seed_virtual_switch,
    watching,
    write_config,
)
from tests.test_end_to_end_zstack import EmulatorProcess
from tests.test_redaction import AWKWARD_KEY, key_forms
from z2m_qbkg40lm.atomic_file import TEMP_SUFFIX
from z2m_qbkg40lm.redaction import REDACTED

PASSWORD = "broker-pass-7e1f"
PRIVATE_FILES = ("zigbee.db", "secrets.yaml", "state.json", "virtual_adapter.json", "settings_guard.json")


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """The umask a child process inherits (this process's, for the moment of the start)."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_no_key(text: str, where: str) -> None:
    for form in key_forms(AWKWARD_KEY):
        assert form not in text, f"{form!r} in {where}"
    assert PASSWORD not in text, where


def debug_config(folder: Path, base: str, **sections: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = write_config(folder / "configuration.yaml", base, **sections)
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["advanced"]["log_level"] = "debug"
    # The password is refused by the test broker's anonymous listener only if it checks; it does not.
    config["mqtt"].update(user="z2m", password=PASSWORD)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def run_until_online(daemon: DaemonProcess, base: str) -> list[str]:
    """Start the daemon under umask 000, wait for it to be online, stop it; its MQTT log lines."""
    async with watching(base) as watcher:
        with umask(0):
            daemon.start()
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"}, timeout=30)
        await settle(watcher)
        assert daemon.stop() == 0, daemon.log()
        return [m.payload.decode() for m in watcher.messages if m.topic.startswith(f"{base}/bridge/")]


async def settle(watcher: Watcher) -> None:
    """A bridge request answered: the daemon has worked through its start."""
    response = await watcher.request("health_check", {})
    assert response["status"] == "ok", response


async def test_a_debug_start_on_the_virtual_adapter_keeps_files_private_and_logs_no_key(
    tmp_path: Path,
) -> None:
    base = random_base_topic()
    data_dir = tmp_path / "data"
    ieee = seed_virtual_switch(data_dir)
    config = debug_config(tmp_path / "conf", base, devices={ieee: {"friendly_name": "wall"}})
    # Left by earlier versions: open modes, the key in secrets.yaml, and a killed writer's files.
    data_dir.chmod(0o755)
    (data_dir / "secrets.yaml").write_text(yaml.safe_dump({"network_key": list(AWKWARD_KEY)}))
    (data_dir / "settings_guard.json").write_text(json.dumps({"devices": {}, "version": 1}))
    for name in ("secrets.yaml", "settings_guard.json", "virtual_adapter.json"):
        (data_dir / name).chmod(0o644)
    stale = [
        config.parent / f".configuration.yaml.k3j_9x0a{TEMP_SUFFIX}",
        data_dir / f".settings_guard.json.abcdefgh{TEMP_SUFFIX}",
        data_dir / f".state.json.0123_567{TEMP_SUFFIX}",
    ]
    unrelated = config.parent / ".configuration.yaml.swp"
    for path in [*stale, unrelated]:
        path.write_text("half")
    daemon = DaemonProcess(config, data_dir)
    try:
        mqtt_log = await run_until_online(daemon, base)
    finally:
        clear_retained(base)
    log = daemon.log()
    assert "DEBUG zigpy" in log and f"network_key=Key(key={REDACTED}" in log, "the key was printed, hidden"
    assert_no_key(log, "the daemon's log")
    assert_no_key("\n".join(mqtt_log), "bridge/logging")
    assert mode(data_dir) == 0o700
    for name in PRIVATE_FILES:
        assert mode(data_dir / name) == 0o600, name
    for path in data_dir.iterdir():
        if path != daemon.log_path:
            assert mode(path) & 0o077 == 0, path  # SQLite's -wal/-shm too, while they exist
    assert not any(path.exists() for path in stale)
    assert unrelated.read_text() == "half", "a file of another program is left alone"


async def test_files_made_public_are_private_again_after_a_start(tmp_path: Path) -> None:
    base = random_base_topic()
    data_dir = tmp_path / "data"
    config = write_config(tmp_path / "configuration.yaml", base)
    daemon = DaemonProcess(config, data_dir)
    try:
        await run_until_online(daemon, base)
        (data_dir / "state.json").write_text("{}")  # the cache after a start with nothing cached
        names = [p.name for p in data_dir.iterdir() if p != daemon.log_path]
        assert {"zigbee.db", "secrets.yaml", "virtual_adapter.json", "state.json"} <= set(names)
        data_dir.chmod(0o755)
        for name in names:
            (data_dir / name).chmod(0o666)
        await run_until_online(daemon, base)
    finally:
        clear_retained(base)
    assert mode(data_dir) == 0o700
    for name in names:
        if (data_dir / name).exists():
            assert mode(data_dir / name) == 0o600, name


async def test_a_debug_start_through_zigpy_znp_logs_no_key(tmp_path: Path) -> None:
    base = random_base_topic()
    folder = tmp_path / "zstack"
    config = debug_config(folder, base, advanced={"channel": 15, "network_key": list(AWKWARD_KEY)})
    with umask(0):
        emulator = EmulatorProcess(folder, config)
        address = emulator.start()
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["serial"] = {"adapter": "zstack", "port": "socket://" + address.removeprefix("tcp://")}
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    daemon = DaemonProcess(config, folder / "data")
    try:
        mqtt_log = await run_until_online(daemon, base)
    finally:
        assert emulator.stop() == 0, emulator.log()
        clear_retained(base)
    log = daemon.log()
    # The network was formed: zigpy-znp wrote the key to the chip's NVRAM and read it back.
    assert "OSALNVWriteExt.Req(Id=<OsalNvIds.PRECFGKEY" in log and f"Value=b'{REDACTED}'" in log
    assert_no_key(log, "the daemon's log")
    assert_no_key("\n".join(mqtt_log), "bridge/logging")
    assert mode(emulator.nvram) == 0o600


async def test_the_adapters_own_key_is_hidden_when_it_is_not_the_configured_one(tmp_path: Path) -> None:
    """A stick that already has another network than the configured one is refused, not taken over
    (README "The adapter's network"); with no zigbee.db nothing has named the stick's key before
    zigpy-znp prints the chip's NVRAM as raw bytes, and neither key is in the refusal."""
    base = random_base_topic()
    data_dir = tmp_path / "data"
    config = debug_config(tmp_path, base, advanced={"channel": 15})
    data_dir.mkdir()
    (data_dir / "secrets.yaml").write_text(yaml.safe_dump({"network_key": list(AWKWARD_KEY)}))
    emulator = EmulatorProcess(tmp_path, config)
    address = emulator.start()
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    document["serial"] = {"adapter": "zstack", "port": "socket://" + address.removeprefix("tcp://")}
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    try:
        daemon = DaemonProcess(config, data_dir)
        await run_until_online(daemon, base)
        # Another key in secrets.yaml, and zigpy's database lost: the stick's network (and its key)
        # stays as it was, and the daemon refuses to run another network than the configured one.
        for database in data_dir.glob("zigbee.db*"):
            database.unlink()
        (data_dir / "secrets.yaml").write_text(yaml.safe_dump({"network_key": list(range(1, 17))}))
        daemon = DaemonProcess(config, data_dir)
        daemon.start()
        assert daemon._process is not None
        code = await asyncio.to_thread(daemon._process.wait, 60)
    finally:
        assert emulator.stop() == 0, emulator.log()
        clear_retained(base)
    log = daemon.log()
    assert code == 1, log
    assert "network key (the keys are not shown)" in log, log
    assert f"SYS.OSALNVReadExt.Rsp(Status=<Status.SUCCESS: 0>, Value=b'{REDACTED}')" in log
    assert_no_key(log, "the second start's log")
