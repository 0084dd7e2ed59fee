"""End to end: firmware updates (`bridge/request/device/ota_update/check` and `.../update`).

One daemon (`z2m-qbkg40lm run` as a process, virtual adapter, the real Mosquitto) serves the
module. Its one switch runs firmware 24; the tests put files in the configured image folder and
index as they go, in file order: no image, refused files, an image found, the update to 29 (with
a second request while it runs), then an update to 30 cut by a silent switch and by a power cycle.
The switch's OTA client is the simulated one (sim/ota_client.py): it speaks the ZCL OTA cluster
to zigpy exactly as a standalone device would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    DaemonProcess,
    Watcher,
    bridge_in_process,
    clear_retained,
    random_base_topic,
    seed_virtual_switch,
    watching,
    write_config,
)
from z2m_qbkg40lm.ota.image import BASE_HEADER_LENGTH, INTEGRITY_CODE_LENGTH, build_image

LUMI = 0x115F
QBKG40LM_IMAGE = 0x1888
HEADER_STRING = "ROUTERX-----JN5180--ENCRYPTED000"
REAL_SIZE = 289_744
"""The size of the published version 29 file (qbkg40lm-zigbee.md §10)."""
NAME = "hall_switch"
SILENCE_MS = 2500
UPDATE_TIMEOUT_S = 60.0


def firmware(version: int, *, image_type: int = QBKG40LM_IMAGE, size: int = REAL_SIZE) -> bytes:
    """A QBKG40LM upgrade file of `size` bytes with an image integrity code, as Lumi ships them."""
    overhead = BASE_HEADER_LENGTH + 6 + 6 + INTEGRITY_CODE_LENGTH
    payload = random.Random(version).randbytes(size - overhead)
    return build_image(
        manufacturer_code=LUMI,
        image_type=image_type,
        file_version=version,
        payload=payload,
        header_string=HEADER_STRING,
        with_integrity_code=True,
    )


@dataclass
class Running:
    daemon: DaemonProcess
    base: str
    data_dir: Path
    folder: Path
    index: Path
    ieee: str
    timings: dict[str, Any] = field(default_factory=dict)


async def _paired(base: str) -> None:
    async with watching(base) as watcher:
        await watcher.wait_for(NAME, lambda m: bool(m.payload) and "state" in m.json())
        await watcher.wait_for("bridge/groups")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    base = random_base_topic()
    folder = tmp_path_factory.mktemp("ota")
    data_dir = folder / "data"
    ieee = seed_virtual_switch(data_dir, firmware_version=24)
    images = data_dir / "firmware"
    images.mkdir()
    index = data_dir / "index" / "index.json"
    index.parent.mkdir()
    index.write_text("[]", encoding="utf-8")
    config = write_config(
        folder / "configuration.yaml",
        base,
        devices={ieee: {"friendly_name": NAME}},
        homeassistant={"enabled": True, "discovery_topic": f"{base}_ha"},
        ota={
            "image_folder": "firmware",
            "zigbee_ota_override_index_location": "index/index.json",
            "image_block_request_timeout": SILENCE_MS,
        },
    )
    daemon = DaemonProcess(config, data_dir)
    daemon.start()
    try:
        asyncio.run(_paired(base))
    except BaseException:
        daemon.stop()
        raise
    state = Running(daemon, base, data_dir, images, index, ieee)
    yield state
    code = daemon.stop()
    clear_retained(base)
    clear_retained(f"{base}_ha")
    assert code == 0, daemon.log()


def _updates(watcher: Watcher, since: int) -> list[dict[str, Any]]:
    """The `update` objects of the switch's state messages since a position."""
    return [m.json()["update"] for m in watcher.since(since, NAME) if m.payload and "update" in m.json()]


async def _switch(watcher: Watcher) -> dict[str, Any]:
    response = await watcher.request("simulation/switches", {})
    switch: dict[str, Any] = response["data"]["switches"][0]
    return switch


async def _still_works(watcher: Watcher, version: int) -> None:
    """The switch answers commands and runs its old firmware."""
    position = watcher.mark()
    await watcher.publish(f"{NAME}/set", json.dumps({"state": "TOGGLE"}))
    await watcher.wait_state(NAME, lambda s: s.get("state") in ("ON", "OFF"), after=position)
    assert (await _switch(watcher))["firmware_version"] == version


async def _updating(watcher: Watcher, after: int, minimum: float = 1.0) -> dict[str, Any]:
    """The first progress message at or beyond `minimum` percent."""
    state = await watcher.wait_state(
        NAME,
        lambda s: (
            s.get("update", {}).get("state") == "updating" and s["update"].get("progress", 0) >= minimum
        ),
        after=after,
    )
    update: dict[str, Any] = state["update"]
    return update


# --- requests that are refused at once -------------------------------------------------------------


async def test_requests_name_a_device_that_supports_updates(running: Running) -> None:
    async with watching(running.base) as watcher:
        unknown = await watcher.request("device/ota_update/check", {"id": "garage"})
        assert unknown["status"] == "error" and unknown["error"] == "Device 'garage' does not exist"
        invalid = await watcher.request("device/ota_update/update", {"device": NAME})
        assert invalid["status"] == "error" and invalid["error"].startswith("Invalid payload")
        download = await watcher.request(
            "device/ota_update/update", {"id": NAME, "url": "https://example.org/fw.ota"}
        )
        assert download["status"] == "error" and "never downloads" in download["error"]
        assert unknown["data"] == {} and "transaction" in unknown


async def test_home_assistant_gets_a_firmware_update_entity(running: Running) -> None:
    async with watching(f"{running.base}_ha") as discovery:
        message = await discovery.wait_for(f"update/{running.ieee}/update/config", lambda m: bool(m.payload))
    config = message.json()
    assert config["command_topic"] == f"{running.base}/bridge/request/device/ota_update/update"
    assert json.loads(config["payload_install"]) == {"id": running.ieee}
    assert config["state_topic"] == f"{running.base}/{NAME}"
    assert config["device_class"] == "firmware"


# --- checks ----------------------------------------------------------------------------------------


async def test_check_without_any_image(running: Running) -> None:
    async with watching(running.base) as watcher:
        position = watcher.mark()
        response = await watcher.request("device/ota_update/check", {"id": NAME})
        assert response["status"] == "ok", response
        assert response["data"] == {"downgrade": False, "id": NAME, "update_available": False}
        (update,) = _updates(watcher, position)
        assert update == {
            "installed_version": 24,
            "latest_release_notes": None,
            "latest_source": None,
            "latest_version": 24,
            "state": "idle",
        }


async def test_corrupt_files_and_files_for_other_devices_are_never_offered(running: Running) -> None:
    (running.folder / "truncated_0029.ota").write_bytes(firmware(29)[:-1000])
    (running.folder / "b2nc01_0030.ota").write_bytes(firmware(30, image_type=0x1908, size=5000))
    damaged = bytearray(firmware(31, size=6000))
    damaged[3000] ^= 0xFF
    (running.folder / "damaged_0031.ota").write_bytes(bytes(damaged))
    good = firmware(32, size=5000)
    (running.index.parent / "v32.ota").write_bytes(good)
    entry = {"url": "v32.ota", "fileVersion": 32, "fileSize": len(good), "sha512": "0" * 128}
    running.index.write_text(json.dumps([entry]), encoding="utf-8")
    async with watching(running.base) as watcher:
        position = watcher.mark()
        # A bare name works too (no transaction to match then).
        await watcher.publish("bridge/request/device/ota_update/check", NAME)
        message = await watcher.wait_for("bridge/response/device/ota_update/check", after=position)
        response = message.json()
        assert response["data"]["update_available"] is False, response
        # Awaited, not looked up: bridge/logging is published by a task of its own, so under load
        # the response can reach the broker before the log lines written before it.
        for words in (
            ("truncated_0029.ota", "truncated"),
            ("damaged_0031.ota", "integrity code"),
            ("entry 1", "SHA-512"),
        ):
            await watcher.wait_log(
                lambda r, words=words: (
                    r["level"] == "warning"
                    and "refused" in r["message"]
                    and all(w in r["message"] for w in words)
                ),
                after=position,
            )
        await watcher.wait_log(
            lambda r: "b2nc01_0030.ota" in r["message"] and "0x1908" in r["message"], after=position
        )
        update = await watcher.request("device/ota_update/update", {"id": NAME})
        assert update["status"] == "error"
        assert update["error"] == f"Update of '{NAME}' failed (No image currently available)"
        await _still_works(watcher, 24)
    running.index.write_text("[]", encoding="utf-8")
    for path in running.folder.iterdir():
        path.unlink()


async def test_check_finds_the_new_image(running: Running) -> None:
    image = firmware(29)
    (running.folder / "QBKG40LM_0029.ota").write_bytes(image)
    async with watching(running.base) as watcher:
        position = watcher.mark()
        response = await watcher.request("device/ota_update/check", {"id": running.ieee})
        assert response["status"] == "ok", response
        assert response["data"] == {
            "downgrade": False,
            "id": running.ieee,
            "source": "QBKG40LM_0029.ota",
            "update_available": True,
        }
        (update,) = _updates(watcher, position)
        assert (update["state"], update["installed_version"], update["latest_version"]) == (
            "available",
            24,
            29,
        )


# --- the update ------------------------------------------------------------------------------------


async def test_update_from_24_to_29(running: Running) -> None:
    async with watching(running.base) as watcher:
        position = watcher.mark()
        transaction = "full-update"
        started = time.monotonic()
        await watcher.publish(
            "bridge/request/device/ota_update/update", json.dumps({"id": NAME, "transaction": transaction})
        )
        first = await _updating(watcher, position, minimum=0.0)
        assert (first["installed_version"], first["latest_version"]) == (24, 29)

        # A second request while it runs is refused at once, the update goes on.
        for path in ("device/ota_update/update", "device/ota_update/check"):
            again = await watcher.request(path, {"id": NAME})
            assert again["status"] == "error"
            assert again["error"] == f"OTA update or check for update already in progress for '{NAME}'"

        message = await watcher.wait_for(
            "bridge/response/device/ota_update/update",
            lambda m: m.json().get("transaction") == transaction,
            after=position,
            timeout=UPDATE_TIMEOUT_S,
        )
        elapsed = time.monotonic() - started
        response = message.json()
        assert response["status"] == "ok", (response, running.daemon.log()[-3000:])
        assert response["data"] == {
            "from": {"date_code": "06-15-2022", "file_version": 24, "software_build_id": "0.0.0_0024"},
            "id": NAME,
            "to": {"date_code": "06-15-2022", "file_version": 29, "software_build_id": "0.0.0_0029"},
        }

        updates = _updates(watcher, position)
        progress = [u for u in updates if u["state"] == "updating"]
        figures = [u["progress"] for u in progress]
        assert figures == sorted(figures) and figures[0] == 0
        assert all(0 <= p <= 100 for p in figures)
        # At most one a second (plus the 0 % one), never one per block (5 795 blocks of 50 bytes).
        assert 1 <= len(progress) <= elapsed + 2, (len(progress), elapsed)
        assert all("remaining" in u for u in progress[1:])
        assert updates[-1] == {
            "installed_version": 29,
            "latest_release_notes": None,
            "latest_source": "QBKG40LM_0029.ota",
            "latest_version": 29,
            "state": "idle",
        }
        running.timings.update(seconds=round(elapsed, 1), progress_messages=len(progress))

        devices = await watcher.wait_for(
            "bridge/devices",
            lambda m: any(d.get("software_build_id") == "0.0.0_0029" for d in m.json()),
            after=position,
        )
        switch = next(d for d in devices.json() if d["ieee_address"] == running.ieee)
        assert switch["software_build_id"] == "0.0.0_0029"
        assert (await _switch(watcher))["firmware_version"] == 29

        # Checked again, nothing newer: idle with the new version.
        check = await watcher.request("device/ota_update/check", {"id": NAME})
        assert check["data"]["update_available"] is False
    print(f"\nOTA 24 -> 29, {REAL_SIZE} bytes: {running.timings}")


# --- updates that fail -----------------------------------------------------------------------------


async def test_a_switch_power_cycled_mid_transfer(running: Running) -> None:
    (running.folder / "QBKG40LM_0030.ota").write_bytes(firmware(30))
    async with watching(running.base) as watcher:
        position = watcher.mark()
        await watcher.publish("bridge/request/device/ota_update/update", json.dumps({"id": NAME}))
        await _updating(watcher, position)
        await watcher.request("simulation/power_cycle", {"id": NAME})
        message = await watcher.wait_for(
            "bridge/response/device/ota_update/update", after=position, timeout=UPDATE_TIMEOUT_S
        )
        response = message.json()
        assert response["status"] == "error", response
        assert response["error"].startswith(
            f"OTA update of '{NAME}' failed (the device restarted during the transfer"
        )
        assert response["error"].endswith("and keeps its firmware)")
        last = _updates(watcher, position)[-1]
        assert last["state"] == "available" and "progress" not in last
        await _still_works(watcher, 29)


async def test_a_switch_that_goes_silent_mid_transfer(running: Running) -> None:
    async with watching(running.base) as watcher:
        position = watcher.mark()
        await watcher.publish("bridge/request/device/ota_update/update", json.dumps({"id": NAME}))
        await _updating(watcher, position)
        silent = await watcher.request("simulation/responsive", {"id": NAME, "responsive": False})
        assert silent["status"] == "ok"
        message = await watcher.wait_for(
            "bridge/response/device/ota_update/update", after=position, timeout=UPDATE_TIMEOUT_S
        )
        response = message.json()
        assert response["status"] == "error", response
        assert response["error"].startswith(f"OTA update of '{NAME}' failed (the device stopped requesting")
        assert f"nothing for {SILENCE_MS / 1000:g} s" in response["error"]
        last = _updates(watcher, position)[-1]
        assert last["state"] == "available" and "progress" not in last and last["latest_version"] == 30
        await watcher.request("simulation/responsive", {"id": NAME, "responsive": True})
        await _still_works(watcher, 29)


# --- in process: the switch's own checks, and a restart during an update ---------------------------
#
# The radio (zigpy on the virtual adapter, with the simulated switch and its OTA client), the bridge
# and the OTA extension in this test's event loop; the broker is replaced by a recorder, because
# what is tested here is what the extension publishes when the *switch* starts a check.


class Recorder:
    """Stands in for the MQTT client: keeps what is published."""

    can_publish = True

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Condition()

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int = 0) -> bool:
        async with self._changed:
            self.messages.append((topic, json.loads(payload) if payload else {}))
            self._changed.notify_all()
        return True

    async def wait(self, predicate: Any, after: int = 0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((p for _, p in self.messages[after:] if predicate(p)), None)

        async with asyncio.timeout(15), self._changed:
            await self._changed.wait_for(lambda: found() is not None)
        result = found()
        assert result is not None
        return result


@dataclass
class InProcess:
    radio: Any
    bridge: Any
    extension: Any
    recorder: Recorder
    ieee: str


@contextlib.asynccontextmanager
async def in_process(data_dir: Path, ota: dict[str, Any], state: dict[str, Any] | None = None) -> Any:
    from z2m_qbkg40lm.bridge.ota import OtaUpdates

    ieee = seed_virtual_switch(data_dir, firmware_version=24)
    if state is not None:
        (data_dir / "state.json").write_text(json.dumps({ieee: state}), encoding="utf-8")
    raw = {"mqtt": {"server": "mqtt://localhost"}, "serial": {"adapter": "virtual"}, "ota": ota}
    recorder = Recorder()
    async with bridge_in_process(data_dir, raw, recorder, lambda context: [OtaUpdates(context)]) as run:
        yield InProcess(run.radio, run.bridge, run.extensions[0], recorder, ieee)


async def _own_query(run: InProcess) -> None:
    """The switch asks by itself; returns once zigpy has looked for images for it (the extension
    heard it in the same moment and decided whether to publish)."""
    from z2m_qbkg40lm.ota.transfer import IMAGE_AVAILABLE_EVENT, ota_cluster

    heard = asyncio.get_running_loop().create_future()
    cluster = ota_cluster(run.radio.zigpy_device(run.ieee))
    unsubscribe = cluster.on_event(
        IMAGE_AVAILABLE_EVENT, lambda event: heard.done() or heard.set_result(event)
    )
    try:
        await run.radio.simulation.ota_query(run.ieee)
        async with asyncio.timeout(15):
            await heard
    finally:
        unsubscribe()


def _available_logs(caplog: pytest.LogCaptureFixture) -> int:
    return sum(r.getMessage().startswith("OTA update available for") for r in caplog.records)


async def test_the_switchs_own_query_refreshes_the_update_state_once_an_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    images = tmp_path / "firmware"
    images.mkdir()
    (images / "v29.ota").write_bytes(firmware(29, size=8192))
    async with in_process(tmp_path, {"image_folder": "firmware", "update_check_interval": 60}) as run:
        await run.recorder.wait(lambda p: "state" in p)  # interviewed and read
        position = len(run.recorder.messages)
        await run.radio.simulation.ota_query(run.ieee)
        found = await run.recorder.wait(lambda p: "update" in p, after=position)
        assert (found["update"]["state"], found["update"]["installed_version"]) == ("available", 24)
        assert found["update"]["latest_version"] == 29
        # Asked again within the interval: left alone. Only the manual check says it again.
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="z2m_qbkg40lm.bridge.ota"):
            await _own_query(run)
            checked = await run.extension._check_request({"id": run.ieee})
        assert checked["update_available"] is True
        assert _available_logs(caplog) == 1


async def test_disabled_automatic_checks_leave_the_state_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    images = tmp_path / "firmware"
    images.mkdir()
    (images / "v29.ota").write_bytes(firmware(29, size=8192))
    async with in_process(
        tmp_path, {"image_folder": "firmware", "disable_automatic_update_check": True}
    ) as run:
        await run.recorder.wait(lambda p: "state" in p)
        with caplog.at_level(logging.INFO, logger="z2m_qbkg40lm.bridge.ota"):
            position = len(run.recorder.messages)
            await _own_query(run)
            assert not [p for _, p in run.recorder.messages[position:] if "update" in p]
            await run.extension._check_request(run.ieee)
        assert _available_logs(caplog) == 1  # the manual check's


async def test_an_update_cut_by_a_restart_of_the_daemon_is_idle_afterwards(tmp_path: Path) -> None:
    interrupted = {
        "state": "ON",
        "update": {
            "installed_version": 24,
            "latest_version": 29,
            "progress": 41.5,
            "remaining": 12,
            "state": "updating",
        },
    }
    async with in_process(tmp_path, {}, state=interrupted) as run:
        update = run.bridge.cached_state(run.ieee)["update"]
        assert update == {"installed_version": 24, "latest_version": 29, "state": "idle"}


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("invalid_image", "the device refused the image as invalid (INVALID_IMAGE)"),
        ("abort", "the device aborted the update"),
    ],
)
async def test_a_switch_that_refuses_or_gives_up_keeps_its_firmware(
    tmp_path: Path, fault: str, reason: str
) -> None:
    from z2m_qbkg40lm.bridge.extension import RequestError

    images = tmp_path / "firmware"
    images.mkdir()
    (images / "v29.ota").write_bytes(firmware(29, size=8192))
    async with in_process(tmp_path, {"image_folder": "firmware"}) as run:
        await run.recorder.wait(lambda p: "state" in p)
        await run.radio.simulation.inject_ota_fault(run.ieee, fault, 4000)
        with pytest.raises(RequestError) as failed:
            await run.extension._update_request({"id": run.ieee})
        assert str(failed.value) == f"OTA update of '{run.ieee}' failed ({reason})"
        update = run.bridge.cached_state(run.ieee)["update"]
        assert (update["state"], update["installed_version"], update["latest_version"]) == (
            "available",
            24,
            29,
        )
        assert "progress" not in update
        (switch,) = await run.radio.simulation.switches()
        assert switch["firmware_version"] == 24
