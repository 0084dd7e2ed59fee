"""Finding a device by friendly name or IEEE address, and its settings, as every command and frame
does: by name, by address in any spelling, after a rename, an options change and a removal, for a
device that joins after start and after the radio is re-initialised.

The look-ups are direct (a name index kept by the bridge's settings, zigpy's device table keyed by
address) rather than a walk over the network; these tests pin what they must still find. The
settings mapping alone is tested pure; the rest in process, the bridge in front of the virtual
adapter, writing `bridge.settings` as the rename and options requests do.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from zigpy.types import EUI64

from tests.support import PublishRecorder, bridge_in_process, seed_virtual_switch
from z2m_qbkg40lm.bridge.device_settings import DeviceSettings
from z2m_qbkg40lm.config import DeviceConfig
from z2m_qbkg40lm.zigbee.radio import ieee_string, parse_ieee

BASE = "z2m"
NAME = "hall"
WAIT_S = 30.0

# --- pure: the settings mapping and the address parser ---------------------------------------------

A = "0x54ef441000000001"
B = "0x54ef441000000002"


def test_the_name_index_follows_every_write_to_the_settings() -> None:
    settings = DeviceSettings({A: DeviceConfig(friendly_name="hall")})
    assert settings.named("hall") == A
    settings[A] = DeviceConfig(friendly_name="porch")
    assert settings.named("hall") is None
    assert settings.named("porch") == A
    settings.update({B: DeviceConfig(friendly_name="hall")})
    assert settings.named("hall") == B
    del settings[A]
    assert settings.named("porch") is None
    assert settings.pop(B).friendly_name == "hall"
    assert settings.named("hall") is None
    assert len(settings) == 0


def test_a_duplicate_name_goes_back_to_the_other_holder_when_one_lets_go() -> None:
    settings = DeviceSettings({A: DeviceConfig(friendly_name="hall")})
    settings[B] = DeviceConfig(friendly_name="hall")
    assert settings.named("hall") == B
    settings[B] = DeviceConfig(friendly_name="porch")
    assert settings.named("hall") == A


def test_an_unnamed_device_gets_one_default_config_named_by_its_address() -> None:
    settings = DeviceSettings()
    default = settings.config(A)
    assert default.friendly_name == A
    assert settings.config(A) is default
    assert A not in settings  # the defaults are not settings: nothing to write to the file
    settings[A] = DeviceConfig(friendly_name="hall", retain=True)
    assert settings.config(A).friendly_name == "hall"
    assert settings.config(A).retain is True


def test_only_the_bridges_spelling_of_an_address_parses_and_it_round_trips() -> None:
    address = parse_ieee(A)
    assert address is not None
    assert str(address) == "54:ef:44:10:00:00:00:01"
    assert ieee_string(address) == A
    assert ieee_string(EUI64.convert("54:EF:44:10:00:AB:CD:EF")) == "0x54ef441000abcdef"
    for bad in ("54ef441000000001", "0x54EF441000000001", "0x54ef44100000001", "0x54ef44100000000g", ""):
        assert parse_ieee(bad) is None, bad


# --- in process: the bridge in front of the virtual adapter ------------------------------------------


@dataclass
class Running:
    run: Any
    recorder: PublishRecorder
    ieee: str

    @property
    def bridge(self) -> Any:
        return self.run.bridge

    async def command(self, name: str, payload: dict[str, Any]) -> None:
        """A `/set` to `name`, done when a state message reaches the topic of `name`."""
        before = len(self.recorder.messages)
        await self.bridge.on_message(f"{BASE}/{name}/set", json.dumps(payload).encode(), False)
        await self.recorder.wait_for(
            lambda: any(m.topic == f"{BASE}/{name}" for m in self.recorder.messages[before:])
        )


@contextlib.asynccontextmanager
async def running(data_dir: Path) -> AsyncIterator[Running]:
    """The bridge in front of one seeded switch named `hall`, its state read once."""
    ieee = seed_virtual_switch(data_dir)
    raw = {
        "mqtt": {"server": "mqtt://localhost", "base_topic": BASE},
        "serial": {"adapter": "virtual"},
        "devices": {ieee: {"friendly_name": NAME}},
    }
    recorder = PublishRecorder(BASE, WAIT_S)
    async with bridge_in_process(data_dir, raw, recorder, lambda context: []) as run:
        await recorder.wait_for(lambda: any("state" in s for s in recorder.on(NAME)))
        yield Running(run, recorder, ieee)


def _spellings(ieee: str) -> list[str]:
    digits = ieee[2:]
    colons = ":".join(digits[i : i + 2] for i in range(0, 16, 2))
    return [ieee, ieee.upper(), "0x" + digits.upper(), digits, digits.upper(), colons, colons.upper()]


async def test_a_device_is_found_by_its_name_and_by_its_address_in_any_spelling(tmp_path: Path) -> None:
    async with running(tmp_path) as switch:
        bridge = switch.bridge
        assert bridge.resolve(NAME).ieee == switch.ieee
        for spelling in _spellings(switch.ieee):
            found = bridge.resolve(spelling)
            assert found is not None and found.ieee == switch.ieee, spelling
        # Friendly names are exact, as topics are.
        assert bridge.resolve(NAME.upper()) is None
        assert bridge.resolve("cellar") is None
        assert bridge.resolve("0xnot-an-address") is None
        assert bridge.known_names() == [NAME]


async def test_after_a_rename_the_new_name_finds_the_device_and_the_old_one_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(tmp_path) as switch:
        bridge = switch.bridge
        bridge.settings[switch.ieee] = DeviceConfig(friendly_name="porch")
        assert bridge.resolve(NAME) is None
        assert bridge.resolve("porch").ieee == switch.ieee
        assert bridge.resolve(switch.ieee).ieee == switch.ieee
        assert bridge.friendly_name(switch.ieee) == "porch"
        assert bridge.known_names() == ["porch"]
        await switch.command("porch", {"state": "ON"})
        assert switch.recorder.on("porch")[-1]["state"] == "ON"
        # Refused at once (the refusal is logged before `on_message` returns), nothing sent.
        caplog.clear()
        await bridge.on_message(f"{BASE}/{NAME}/set", b'{"state": "OFF"}', False)
        assert "Entity 'hall' is unknown (devices: porch)" in caplog.messages
        # The name is free again for another device, and renaming back finds it once more.
        bridge.settings[switch.ieee] = DeviceConfig(friendly_name=NAME)
        assert bridge.resolve("porch") is None
        assert bridge.resolve(NAME).ieee == switch.ieee


async def test_the_config_a_command_uses_follows_an_options_change(tmp_path: Path) -> None:
    async with running(tmp_path) as switch:
        bridge = switch.bridge
        assert bridge.device_config(switch.ieee).retain is False
        bridge.settings[switch.ieee] = DeviceConfig(friendly_name=NAME, retain=True, state_action=True)
        config = bridge.device_config(switch.ieee)
        assert config.retain is True
        assert config.converter_options() == {"state_action": True}
        await switch.command(NAME, {"state": "ON"})
        last = [m for m in switch.recorder.messages if m.topic == f"{BASE}/{NAME}"][-1]
        payload, retain = last.payload, last.retain
        assert payload["state"] == "ON"
        assert retain is True


async def test_a_removed_device_is_found_neither_by_name_nor_by_address(tmp_path: Path) -> None:
    async with running(tmp_path) as switch:
        bridge, radio = switch.bridge, switch.run.radio
        await radio.remove(switch.ieee, force=True)
        bridge.forget_device(switch.ieee)
        assert bridge.resolve(NAME) is None
        assert bridge.resolve(switch.ieee) is None
        assert radio.device(switch.ieee) is None
        assert bridge.known_names() == []
        # Its settings went with it: were it to join again, it would be known by its address.
        assert bridge.friendly_name(switch.ieee) == switch.ieee


async def test_a_device_that_joins_after_start_is_found_and_can_be_named(tmp_path: Path) -> None:
    async with running(tmp_path) as switch:
        bridge, radio = switch.bridge, switch.run.radio
        assert bridge.resolve("attic") is None
        await radio.permit_join(60)
        new = await radio.simulation.join_new_switch()
        await switch.recorder.wait_for(lambda: any("state" in s for s in switch.recorder.on(new)))
        assert bridge.resolve(new).ieee == new
        assert bridge.resolve(new.upper()).ieee == new
        assert bridge.friendly_name(new) == new
        assert bridge.device_config(new) is bridge.device_config(new)
        assert bridge.known_names() == sorted([NAME, new])
        bridge.settings[new] = DeviceConfig(friendly_name="attic")
        assert bridge.resolve("attic").ieee == new
        assert bridge.resolve(NAME).ieee == switch.ieee
        await switch.command("attic", {"state": "ON"})
        assert switch.recorder.on("attic")[-1]["state"] == "ON"


async def test_devices_are_found_after_the_radio_is_re_initialised(tmp_path: Path) -> None:
    async with running(tmp_path) as switch:
        bridge, radio = switch.bridge, switch.run.radio
        old_app = radio._app
        radio.restart("a test re-initialises the radio")
        assert radio._restart_task is not None
        await radio._restart_task
        assert radio.state == "running"
        assert radio._app is not old_app
        assert bridge.resolve(NAME).ieee == switch.ieee
        assert bridge.resolve(switch.ieee).ieee == switch.ieee
        before = len(switch.recorder.on(NAME))
        await switch.command(NAME, {"state": "ON"})
        # The command reached the switch through the new application. The bridge's read of the
        # relays after the re-initialisation runs in the device's line: its answer is published
        # before the command's message, never after it, so the last word is the command's ON.
        await switch.recorder.wait_for(
            lambda: any(message.get("state") == "ON" for message in switch.recorder.on(NAME)[before:])
        )
        assert switch.recorder.on(NAME)[-1]["state"] == "ON"
        assert radio._app.simulated_switches[0].relay is True
