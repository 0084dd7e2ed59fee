"""End to end: one firmware update through each real radio library: zigpy-znp against the Z-Stack
emulator (Z-Stack 3.30 and Home 1.2), bellows against the EmberZNet emulator, zigpy-deconz against
the deCONZ emulator.

The emulator runs as a process (`z2m-qbkg40lm emulate`) with one switch in pairing mode, the
daemon runs with `adapter: zstack` (or `ember`) over `socket://`, the real Mosquitto carries the
requests. The
switch joins, then gets version 30 of a smaller image than the real one (each block is a few
Z-Stack frames each way over the socket; the image size only multiplies that, it proves nothing
more), and runs it afterwards.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.support import DaemonProcess, clear_retained, random_base_topic, watching, write_config
from tests.test_end_to_end_zstack import START_S, DeconzAdapter, EmberAdapter, ZStack12Adapter, ZStackAdapter
from tests.test_ota import firmware

IMAGE_SIZE = 16_384
UPDATE_TIMEOUT_S = 60.0


async def _update_over_zstack(base: str, adapter: ZStackAdapter, images: Path) -> None:
    async with watching(base) as watcher:
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"}, timeout=START_S)
        ieee = await adapter.pair_first_switch(watcher)
        switches = await watcher.request("simulation/switches", {})
        before = next(s for s in switches["data"]["switches"] if s["ieee"] == ieee)["firmware_version"]
        version = before + 1
        (images / f"QBKG40LM_{version:04d}.ota").write_bytes(firmware(version, size=IMAGE_SIZE))

        check = await watcher.request("device/ota_update/check", {"id": ieee})
        assert check["data"]["update_available"] is True, check
        started = time.monotonic()
        response = await watcher.request("device/ota_update/update", {"id": ieee}, timeout=UPDATE_TIMEOUT_S)
        elapsed = time.monotonic() - started
        assert response["status"] == "ok", response
        assert response["data"]["from"]["file_version"] == before
        assert response["data"]["to"] == {
            "date_code": response["data"]["from"]["date_code"],
            "file_version": version,
            "software_build_id": f"0.0.0_{version:04d}",
        }
        state = await watcher.wait_state(ieee, lambda s: s.get("update", {}).get("state") == "idle")
        assert state["update"]["installed_version"] == version
        switches = await watcher.request("simulation/switches", {})
        assert (
            next(s for s in switches["data"]["switches"] if s["ieee"] == ieee)["firmware_version"] == version
        )
        print(f"\nOTA over {adapter.name} and the emulator, {IMAGE_SIZE} bytes: {elapsed:.1f} s")


@pytest.mark.parametrize(
    "adapter",
    [ZStackAdapter(), ZStack12Adapter(), EmberAdapter(), DeconzAdapter()],
    ids=["zstack", "zstack12", "ember", "deconz"],
)
def test_an_update_through_the_radio_library(tmp_path: Path, adapter: ZStackAdapter) -> None:
    base = random_base_topic()
    config = tmp_path / "configuration.yaml"
    data_dir = tmp_path / "data"
    images = data_dir / "firmware"
    images.mkdir(parents=True)
    write_config(config, base)
    adapter.start(tmp_path, config)
    write_config(
        config,
        base,
        serial=adapter.serial(),
        ota={"image_folder": "firmware", "image_block_request_timeout": 10000},
    )
    daemon = DaemonProcess(config, data_dir)
    daemon.start()
    try:
        asyncio.run(_update_over_zstack(base, adapter, images))
    finally:
        code = daemon.stop()
        adapter.stop()
        clear_retained(base)
    assert code == 0, daemon.log()
