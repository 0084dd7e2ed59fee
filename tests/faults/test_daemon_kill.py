"""`kill -9` of the daemon under load, then a restart: nothing the user set is lost, no debris is left.

The daemon runs as a process (virtual adapter, the test broker). Each round renames the switch over
MQTT (every other name with a `/`), changes its options with `device/options`, sets its three settings
with `/set` and waits until the state cache has them; then it loads the daemon with `/set` commands
and `device/options` writes (each a configuration file rewrite) and kills it with SIGKILL at a
random moment. The next start must show the last name, options and settings, and leave no temporary
file of an atomic write in the configuration folder or the data directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import time
from pathlib import Path
from typing import Any

import yaml

from tests.faults.harness import record, scale, temporary_files
from tests.support import (
    DaemonProcess,
    Watcher,
    clear_retained,
    random_base_topic,
    seed_virtual_switch,
    watching,
    write_config,
)
from z2m_qbkg40lm.atomic_file import TEMP_SUFFIX

KILLS = scale(ci=2, full=10)
SETTINGS = (
    {"operation_mode": "decoupled", "flip_indicator_light": "ON", "power_outage_memory": True},
    {"operation_mode": "control_relay", "flip_indicator_light": "OFF", "power_outage_memory": False},
)


class KillableDaemon(DaemonProcess):
    """The daemon process, which a test may end with SIGKILL (no shutdown code runs)."""

    def kill_9(self) -> None:
        """SIGKILL and reap."""
        process = self._process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()


async def _load(watcher: Watcher, ieee: str, precisions: list[int], stop: asyncio.Event) -> None:
    """Commands until `stop` is set: `/set` toggles, and now and then a `device/options` write.

    Not ended by cancelling alone: Python 3.11's `asyncio.wait_for` (inside aiomqtt's publish) can
    swallow a cancellation that meets the publish's completion, and the load would go on for ever.
    """
    count = 0
    while not stop.is_set():
        count += 1
        await watcher.publish(f"{ieee}/set", json.dumps({"state": "TOGGLE", "transaction": f"load{count}"}))
        if count % 4 == 0:
            precision = count // 4 % 4
            precisions.append(precision)
            body = {"id": ieee, "options": {"device_temperature_precision": precision}}
            await watcher.publish("bridge/request/device/options", json.dumps(body))
        await asyncio.sleep(0.02)  # the load's pace, not a synchronisation


def _device_on_file(config: Path, ieee: str) -> dict[str, Any]:
    entry: dict[str, Any] = yaml.safe_load(config.read_text(encoding="utf-8"))["devices"][ieee]
    return entry


def _leave_debris(config: Path, data_dir: Path) -> list[Path]:
    """What a kill between an atomic write's temporary file and its rename leaves (the kills of the
    load hit that moment only by chance): one per file the daemon rewrites, named as the writer
    names them."""
    debris = [
        config.parent / f".{config.name}.k9x1a2b3{TEMP_SUFFIX}",
        data_dir / f".state.json.k9x1a2b3{TEMP_SUFFIX}",
        data_dir / f".settings_guard.json.k9x1a2b3{TEMP_SUFFIX}",
    ]
    for path in debris:
        path.write_text("half", encoding="utf-8")
    return debris


async def _check_restarted(
    watcher: Watcher, position: int, ieee: str, expected: dict[str, Any], *, config: Path, data_dir: Path
) -> int | None:
    """What the restarted daemon publishes and keeps matches what was confirmed before the kill;
    returns the precision on file."""
    name = expected["name"]
    await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"}, after=position)

    def listed(message: Any) -> bool:
        devices = {d["ieee_address"]: d for d in message.json()}
        return ieee in devices and devices[ieee]["friendly_name"] == name

    devices = {
        d["ieee_address"]: d
        for d in (await watcher.wait_for("bridge/devices", listed, after=position)).json()
    }
    assert devices[ieee].get("description") == expected["description"], devices[ieee]
    state = await watcher.wait_state(name, lambda s: "operation_mode" in s, after=position)
    for key, value in expected["settings"].items():
        assert state.get(key) == value, (
            f"{key}: {state.get(key)!r} after the restart, {value!r} before the kill"
        )
    on_file = _device_on_file(config, ieee)
    assert on_file["friendly_name"] == name and on_file["description"] == expected["description"], on_file
    assert on_file.get("device_temperature_calibration") == expected["calibration"], on_file
    assert on_file.get("device_temperature_precision") in expected["precisions"], on_file
    left = temporary_files(config.parent, data_dir)
    assert not left, f"temporary files left after the restart: {[p.name for p in left]}"
    precision: int | None = on_file.get("device_temperature_precision")
    return precision


async def _confirmed_changes(watcher: Watcher, ieee: str, round_: int, name: str) -> dict[str, Any]:
    """Rename, options and settings over MQTT, each confirmed; returns what must survive."""
    new = f"floor{round_}/kill_{round_}" if round_ % 2 else f"kill_{round_}"
    renamed = await watcher.request("device/rename", {"from": name, "to": new})
    assert renamed["status"] == "ok", renamed
    description = f"round {round_} of {KILLS}"
    calibration = round_ / 2
    options = {"description": description, "device_temperature_calibration": calibration}
    changed = await watcher.request("device/options", {"id": ieee, "options": options})
    assert changed["status"] == "ok", changed
    settings = SETTINGS[round_ % 2]
    position = watcher.mark()
    await watcher.publish(f"{ieee}/set", json.dumps({**settings, "transaction": f"settle{round_}"}))
    answer = await watcher.wait_for(
        f"{ieee}/response/set", lambda m: m.json().get("transaction") == f"settle{round_}", after=position
    )
    assert answer.json()["status"] == "ok", answer.json()
    return {"name": new, "description": description, "calibration": calibration, "settings": settings}


async def _cached(data_dir: Path, ieee: str, settings: dict[str, Any]) -> None:
    """Wait until the state cache on disk holds the settings (it is written a second after a change)."""
    async with asyncio.timeout(10):
        while True:
            with contextlib.suppress(OSError, ValueError):
                cached = json.loads((data_dir / "state.json").read_text(encoding="utf-8")).get(ieee, {})
                if all(cached.get(k) == v for k, v in settings.items()):
                    return
            await asyncio.sleep(0.1)  # another process's file: nothing to await


async def _kill_under_load(watcher: Watcher, daemon: KillableDaemon, ieee: str, after: float) -> list[int]:
    """Load the daemon, SIGKILL it `after` seconds into the load; returns the precisions sent."""
    precisions: list[int] = []
    stop = asyncio.Event()
    load = asyncio.get_running_loop().create_task(_load(watcher, ieee, precisions, stop))
    await asyncio.sleep(after)  # kill at a random moment of the load
    daemon.kill_9()
    stop.set()
    load.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        async with asyncio.timeout(10):
            await load
    return precisions


async def test_kill_9_under_load_keeps_names_options_and_states_and_leaves_no_temporary_files(
    tmp_path: Path,
) -> None:
    """SIGKILL under a load of `/set` commands and configuration writes, then a restart: the device
    is still listed under its last name, its options and settings are as last confirmed (the
    precision one of those in flight), and no `.configuration.yaml.*`, `.state.json.*` or
    `.settings_guard.json.*` temporary file is left once the daemon is up again (besides any the
    kill left, one of each is put there as a kill in mid-write leaves it)."""
    rng = random.Random(8)
    base = random_base_topic()
    data_dir = tmp_path / "data"
    ieee = seed_virtual_switch(data_dir)
    config = write_config(
        tmp_path / "configuration.yaml", base, devices={ieee: {"friendly_name": "kill_start"}}
    )
    name = "kill_start"
    expected: dict[str, Any] | None = None
    previous_precision: int | None = None
    left_by_kills = 0
    kills = 0
    outcome = "all restarts intact, no temporary file after them"
    began = time.monotonic()
    try:
        async with watching(base) as watcher:
            for round_ in range(KILLS + 1):
                daemon = KillableDaemon(config, data_dir)
                position = watcher.mark()
                daemon.start()
                try:
                    if expected is None:
                        await watcher.wait_for(name, lambda m: b"state" in m.payload, after=position)
                    else:
                        previous_precision = await _check_restarted(
                            watcher, position, ieee, expected, config=config, data_dir=data_dir
                        )
                except BaseException:
                    daemon.stop()
                    raise
                if round_ == KILLS:
                    assert daemon.stop() == 0, daemon.log()
                    break
                confirmed = await _confirmed_changes(watcher, ieee, round_, name)
                await _cached(data_dir, ieee, confirmed["settings"])
                name = confirmed["name"]
                precisions = await _kill_under_load(watcher, daemon, ieee, rng.uniform(0.3, 1.2))
                kills += 1
                left_by_kills += len(temporary_files(tmp_path, data_dir))
                _leave_debris(config, data_dir)
                # The file keeps the value it had before this load, or one of those in flight.
                confirmed["precisions"] = [previous_precision, *precisions]
                expected = confirmed
    except AssertionError as exc:
        outcome = f"failed after kill {kills}: {str(exc).splitlines()[0][:120]}"
        raise
    finally:
        clear_retained(base)
        seconds = round(time.monotonic() - began, 1)
        record(
            "daemon kill -9 under load",
            runs=kills,
            figure=f"{kills} of {KILLS} kills, {outcome}; {left_by_kills} temporary file(s) left by the "
            f"kills themselves, {seconds} s",
            kills=kills,
            temporary_files_left_by_kills=left_by_kills,
            seconds=seconds,
        )
