"""How many state messages the bridge sends: one per /set, every /get answered, every report published,
presses never merged.

A unit test of the bridge with a recording publisher and a scripted radio port (the end-to-end tests
run with `last_seen`, where every message differs by its timestamp).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from z2m_qbkg40lm.bridge.bridge import Bridge
from z2m_qbkg40lm.bridge.state import StateStore
from z2m_qbkg40lm.config import Config
from z2m_qbkg40lm.devices.definition import ClusterCommand, ReadAttributes, ZclOperation
from z2m_qbkg40lm.zigbee import events as ev
from z2m_qbkg40lm.zigbee.radio import DeviceInfo

IEEE = "0x54ef441000abcdef"
BASE = "z"


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    @property
    def can_publish(self) -> bool:
        return True

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int = 0) -> bool:
        self.sent.append((topic, json.loads(payload)))
        return True

    def states(self) -> list[dict[str, Any]]:
        return [payload for topic, payload in self.sent if topic == f"{BASE}/{IEEE}"]


class ScriptedRadio:
    """Answers commands like the switch: the On/Off report, before or after the acknowledgement."""

    def __init__(self, bridge_ref: list[Bridge], report_first: bool) -> None:
        self.events: asyncio.Queue[ev.RadioEvent] = asyncio.Queue()
        self._bridge_ref = bridge_ref
        self._report_first = report_first
        self.relay = False

    def devices(self) -> list[DeviceInfo]:
        return [DeviceInfo(IEEE, 0x1234, "lumi.switch.b1nc01", "LUMI", True, 160)]

    def device(self, ieee: str) -> DeviceInfo | None:
        return self.devices()[0] if ieee == IEEE else None

    async def execute(self, ieee: str, operations: tuple[ZclOperation, ...]) -> None:
        for operation in operations:
            if isinstance(operation, ClusterCommand):
                self.relay = {0x00: False, 0x01: True, 0x02: not self.relay}[operation.command_id]
                report = self._on_off("report")
                if self._report_first:
                    bridge = self._bridge_ref[0]
                    await bridge.handle_radio_event(report)
                    await bridge.flush_pending_states()
                else:
                    self.events.put_nowait(report)
            elif isinstance(operation, ReadAttributes):
                self.events.put_nowait(self._on_off("read"))

    def _on_off(self, kind: str) -> ev.AttributeReceived:
        return ev.AttributeReceived(
            IEEE, 1, 0x0006, 0x0000, self.relay, "read" if kind == "read" else "report", 160
        )


async def make_bridge(tmp_path: Path, report_first: bool) -> tuple[Bridge, ScriptedRadio, RecordingPublisher]:
    config = Config.model_validate(
        {"mqtt": {"server": "mqtt://x", "base_topic": BASE}, "serial": {"adapter": "virtual"}}
    )
    ref: list[Bridge] = []
    radio = ScriptedRadio(ref, report_first)
    publisher = RecordingPublisher()
    bridge = Bridge(config, radio, StateStore(tmp_path / "state.json"), publisher)
    ref.append(bridge)
    # Real frames carry a link quality before any attribute does.
    await bridge.handle_radio_event(ev.FrameReceived(IEEE, 160))
    return bridge, radio, publisher


async def finish(bridge: Bridge) -> None:
    await bridge.close()
    await bridge._state.close()


async def drain(bridge: Bridge, radio: ScriptedRadio) -> None:
    """Let command tasks finish and handle the radio events they caused."""
    while True:
        await asyncio.sleep(0)
        if radio.events.empty() and not bridge._tasks:
            return
        while not radio.events.empty():
            await bridge.handle_radio_event(radio.events.get_nowait())
        await bridge.flush_pending_states()


async def command(bridge: Bridge, radio: ScriptedRadio, action: str, payload: dict[str, Any]) -> None:
    await bridge.on_message(f"{BASE}/{IEEE}/{action}", json.dumps(payload).encode(), retained=False)
    await drain(bridge, radio)


async def test_each_set_gives_exactly_one_state_message(tmp_path: Path) -> None:
    for report_first in (False, True):
        bridge, radio, publisher = await make_bridge(tmp_path / str(report_first), report_first)
        await command(bridge, radio, "set", {"state": "ON"})
        assert [s["state"] for s in publisher.states()] == ["ON"], report_first
        # Setting the value it already has is still answered, once.
        await command(bridge, radio, "set", {"state": "ON"})
        assert [s["state"] for s in publisher.states()] == ["ON", "ON"], report_first
        await command(bridge, radio, "set", {"state": "TOGGLE"})
        assert [s["state"] for s in publisher.states()] == ["ON", "ON", "OFF"], report_first
        await finish(bridge)


async def test_every_get_is_answered_even_when_nothing_changed(tmp_path: Path) -> None:
    bridge, radio, publisher = await make_bridge(tmp_path, report_first=False)
    await command(bridge, radio, "get", {"state": ""})
    await command(bridge, radio, "get", {"state": ""})
    assert [s["state"] for s in publisher.states()] == ["OFF", "OFF"]
    await finish(bridge)


async def test_every_report_is_published_also_when_it_changes_nothing(tmp_path: Path) -> None:
    # As Zigbee2MQTT does: an unchanged report is a sign of life that consumers wait for.
    bridge, _, publisher = await make_bridge(tmp_path, report_first=False)
    report = ev.AttributeReceived(IEEE, 1, 0x0006, 0x0000, True, "report", 160)
    for _ in range(3):
        await bridge.handle_radio_event(report)
        await bridge.flush_pending_states()
    assert publisher.states() == [{"linkquality": 160, "state": "ON"}] * 3
    await finish(bridge)


async def test_a_report_that_only_confirms_a_set_is_left_out_once(tmp_path: Path) -> None:
    bridge, radio, publisher = await make_bridge(tmp_path, report_first=False)
    await command(bridge, radio, "set", {"state": "ON"})
    assert [s["state"] for s in publisher.states()] == ["ON"]
    # The switch reports ON again (a late second report): that one is published.
    await bridge.handle_radio_event(ev.AttributeReceived(IEEE, 1, 0x0006, 0x0000, True, "report", 160))
    await bridge.flush_pending_states()
    assert [s["state"] for s in publisher.states()] == ["ON", "ON"]
    await finish(bridge)


async def test_identical_presses_are_separate_messages(tmp_path: Path) -> None:
    bridge, _, publisher = await make_bridge(tmp_path, report_first=False)
    press = ev.AttributeReceived(IEEE, 41, 0x0012, 0x0055, 1, "report", 160)
    # Two presses in one burst, and a third one later: three messages, none merged or dropped.
    await bridge.handle_radio_event(press)
    await bridge.handle_radio_event(press)
    await bridge.flush_pending_states()
    await bridge.handle_radio_event(press)
    await bridge.flush_pending_states()
    assert [s.get("action") for s in publisher.states()] == ["single", "single", "single"]
    await finish(bridge)


async def test_back_to_back_toggles_are_planned_against_the_current_state(tmp_path: Path) -> None:
    bridge, radio, publisher = await make_bridge(tmp_path, report_first=False)
    await command(bridge, radio, "set", {"state": "OFF"})
    # Both arrive before the first is carried out.
    for _ in range(2):
        await bridge.on_message(f"{BASE}/{IEEE}/set", b'{"state": "TOGGLE"}', retained=False)
    await drain(bridge, radio)
    assert radio.relay is False
    assert [s["state"] for s in publisher.states()] == ["OFF", "ON", "OFF"]
    await finish(bridge)


async def test_with_cache_state_off_a_set_publishes_just_its_keys_once(tmp_path: Path) -> None:
    config = Config.model_validate(
        {
            "mqtt": {"server": "mqtt://x", "base_topic": BASE},
            "serial": {"adapter": "virtual"},
            "advanced": {"cache_state": False},
        }
    )
    ref: list[Bridge] = []
    radio = ScriptedRadio(ref, report_first=False)
    publisher = RecordingPublisher()
    bridge = Bridge(config, radio, StateStore(tmp_path / "state.json"), publisher)
    ref.append(bridge)
    await command(bridge, radio, "set", {"flip_indicator_light": "ON", "state": "ON"})
    assert publisher.states() == [{"flip_indicator_light": "ON", "state": "ON"}]
    await finish(bridge)
