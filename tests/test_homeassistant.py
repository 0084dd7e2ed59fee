"""Home Assistant discovery: the extension against scripted parts, and end to end.

End to end: the daemon as a process (virtual adapter, real broker) with `homeassistant.enabled`
under a random discovery prefix and device availability on: every entity's config, device
triggers after presses with the bare value on `<base>/<FN>/action`, and the republish on Home
Assistant's birth message. Rename and remove go through the bridge requests when the daemon
serves them; the extension's own side of both is also tested against scripted parts.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from tests.support import (
    DaemonProcess,
    Message,
    Watcher,
    clear_retained,
    random_base_topic,
    watching,
    write_config,
)
from tests.test_ha_entities import ACCEPTED, AVAILABILITY_ENTRY_KEYS, DEVICE_KEYS, ORIGIN_KEYS
from z2m_qbkg40lm.bridge.extension import Context
from z2m_qbkg40lm.bridge.ha_entities import bridge_node_id
from z2m_qbkg40lm.bridge.homeassistant import HomeAssistant
from z2m_qbkg40lm.config import Config, ConfigError, DeviceConfig, parse_config
from z2m_qbkg40lm.devices.definition import DeviceDefinition, ZclOperation
from z2m_qbkg40lm.devices.registry import find_definition
from z2m_qbkg40lm.zigbee import events as ev
from z2m_qbkg40lm.zigbee.radio import DeviceInfo

IEEE = "0x54ef441000abcdef"
COORDINATOR = "0x00124b0012345678"
ENTITIES = (
    ("switch", "switch"),
    ("select", "operation_mode"),
    ("switch", "switch_power_outage_memory"),
    ("switch", "switch_flip_indicator_light"),
    ("sensor", "device_temperature"),
    ("sensor", "linkquality"),
    ("event", "action"),
)

# --- the extension against scripted parts ---------------------------------------------------------


class FakeMqtt:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bool, int]] = []
        self.filters: list[str] = []
        self.can_publish = True

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int = 0) -> bool:
        self.sent.append((topic, payload.decode() if isinstance(payload, bytes) else payload, retain, qos))
        return True

    def subscribe(self, topic_filter: str) -> None:
        self.filters.append(topic_filter)

    def take(self) -> list[tuple[str, str, bool, int]]:
        sent, self.sent = self.sent, []
        return sent


@dataclass
class FakeDetails:
    software_build_id: str | None


class FakeRadio:
    coordinator_type = "zStack3x0"

    def devices(self) -> list[DeviceInfo]:
        return [DeviceInfo(IEEE, 0x1234, "lumi.switch.b1nc01", "LUMI", True, 160)]

    def device(self, ieee: str) -> DeviceInfo | None:
        return self.devices()[0] if ieee == IEEE else None

    def details(self, ieee: str) -> FakeDetails | None:
        return FakeDetails("0.0.0_0029") if ieee == IEEE else None

    def network_summary(self) -> dict[str, Any]:
        return {"coordinator": COORDINATOR}

    async def execute(self, ieee: str, operations: tuple[ZclOperation, ...]) -> None:
        raise AssertionError("no Zigbee traffic expected")


class FakeBridge:
    def __init__(self) -> None:
        self.settings: dict[str, DeviceConfig] = {IEEE: DeviceConfig(friendly_name="hall")}
        self.extensions: list[Any] = []
        self.states: list[str] = []

    def device_config(self, ieee: str) -> DeviceConfig:
        return self.settings.get(ieee) or DeviceConfig(friendly_name=ieee)

    def friendly_name(self, ieee: str) -> str:
        return self.device_config(ieee).friendly_name

    def definition_of(self, device: DeviceInfo) -> DeviceDefinition | None:
        return find_definition(device.model_id)

    async def publish_state(self, ieee: str, partial: dict[str, Any], *, force: bool = False) -> None:
        self.states.append(ieee)


@dataclass
class Scripted:
    extension: HomeAssistant
    mqtt: FakeMqtt
    bridge: FakeBridge


async def scripted(**homeassistant: Any) -> Scripted:
    config = Config.model_validate(
        {
            "mqtt": {"server": "mqtt://x", "base_topic": "z"},
            "serial": {"adapter": "virtual"},
            "homeassistant": {"enabled": True, "discovery_topic": "ha"} | homeassistant,
        }
    )
    mqtt, bridge = FakeMqtt(), FakeBridge()
    context = Context(
        config=config,
        config_path=Path("configuration.yaml"),
        data_dir=Path("."),
        bridge=cast(Any, bridge),
        radio=cast(Any, FakeRadio()),
        mqtt=cast(Any, mqtt),
        request_restart=lambda: None,
    )
    extension = HomeAssistant(context)
    await extension.start()
    await extension.on_state_published(IEEE, {"state": "ON"})
    await extension.on_connected()
    return Scripted(extension, mqtt, bridge)


def configs(sent: list[tuple[str, str, bool, int]]) -> dict[str, Any]:
    """Discovery messages by topic (None for an empty, clearing one); all retained QoS 1."""
    found: dict[str, Any] = {}
    for topic, payload, retain, qos in sent:
        if topic.startswith("ha/"):
            assert (retain, qos) == (True, 1), topic
            found[topic] = json.loads(payload) if payload else None
    return found


async def test_connect_publishes_every_entity_and_then_the_state_once() -> None:
    s = await scripted()
    published = configs(s.mqtt.sent)
    for component, config_id in ENTITIES:
        assert f"ha/{component}/{IEEE}/{config_id}/config" in published
    assert s.bridge.states == [IEEE]  # the state again, now that the entities exist
    assert s.extension.topic_filters() == ["homeassistant/status", f"ha/+/{IEEE}/+/config"]
    s.mqtt.take()
    await s.extension.on_connected()  # a reconnect: everything again, the state not
    assert len(configs(s.mqtt.sent)) == len(published)
    assert s.bridge.states == [IEEE]


async def test_rename_republishes_under_the_same_topics_with_the_new_name() -> None:
    s = await scripted()
    await s.extension.on_state_published(IEEE, {"action": "single"})
    s.mqtt.take()
    s.bridge.settings[IEEE] = DeviceConfig(friendly_name="kitchen")
    await s.extension.on_device_renamed(IEEE, "hall", "kitchen")
    published = configs(s.mqtt.take())
    assert None not in published.values()  # the topics use the IEEE address: nothing to clear
    switch = published[f"ha/switch/{IEEE}/switch/config"]
    assert (switch["state_topic"], switch["command_topic"]) == ("z/kitchen", "z/kitchen/set")
    assert switch["device"]["name"] == "kitchen"
    assert switch["default_entity_id"] == "switch.kitchen"
    trigger = published[f"ha/device_automation/{IEEE}/action_single/config"]
    assert trigger["topic"] == "z/kitchen/action"


async def test_homeassistant_rename_clears_the_configs_before_publishing_them_again() -> None:
    s = await scripted()
    s.mqtt.take()
    s.bridge.settings[IEEE] = DeviceConfig(friendly_name="kitchen")
    await s.extension.on_device_renamed(IEEE, "hall", "kitchen", True)
    sent = [(topic, payload) for topic, payload, _, _ in s.mqtt.take() if topic.startswith("ha/")]
    switch_topic = f"ha/switch/{IEEE}/switch/config"
    payloads = [payload for topic, payload in sent if topic == switch_topic]
    # Cleared (Home Assistant drops the entity), then published with the new name (a new entity id).
    assert payloads[0] == ""
    assert json.loads(payloads[-1])["default_entity_id"] == "switch.kitchen"


async def test_options_changed_hook_republishes_discovery_at_once() -> None:
    s = await scripted()
    s.mqtt.take()
    s.bridge.settings[IEEE] = DeviceConfig(
        friendly_name="hall", homeassistant={"switch": {"icon": "mdi:power"}}
    )
    await s.extension.on_device_options_changed(IEEE)
    published = configs(s.mqtt.take())
    assert published[f"ha/switch/{IEEE}/switch/config"]["icon"] == "mdi:power"


async def test_remove_clears_every_config_of_the_device() -> None:
    s = await scripted()
    await s.extension.on_state_published(IEEE, {"action": "double"})
    before = set(configs(s.mqtt.take()))
    await s.extension.on_device_removed(IEEE, "hall")
    cleared = configs(s.mqtt.take())
    assert set(cleared) == {t for t in before if IEEE in t} | {
        f"ha/device_automation/{IEEE}/action_double/config"
    }
    assert set(cleared.values()) == {None}


async def test_press_publishes_the_trigger_once_then_the_bare_action() -> None:
    s = await scripted()
    s.mqtt.take()
    await s.extension.on_state_published(IEEE, {"action": "single", "state": "ON"})
    await s.extension.on_state_published(IEEE, {"action": "single", "state": "OFF"})
    sent = s.mqtt.take()
    assert [(t, p) for t, p, _, _ in sent if not t.startswith("ha/")] == [
        ("z/hall/action", "single"),
        ("z/hall/action", "single"),
    ]
    triggers = [t for t, _, _, _ in sent if "device_automation" in t]
    assert triggers == [f"ha/device_automation/{IEEE}/action_single/config"]
    assert sent[0][0] == triggers[0]  # the trigger exists before its first action arrives


async def test_options_changes_are_picked_up_and_null_overrides_remove() -> None:
    s = await scripted()
    s.mqtt.take()
    overrides = {"device_temperature": None, "switch": {"icon": "mdi:light-switch"}}
    s.bridge.settings[IEEE] = DeviceConfig(friendly_name="hall", homeassistant=overrides, availability=True)
    await s.extension.on_state_published(IEEE, {"state": "ON"})
    published = configs(s.mqtt.take())
    assert published[f"ha/sensor/{IEEE}/device_temperature/config"] is None
    switch = published[f"ha/switch/{IEEE}/switch/config"]
    assert switch["icon"] == "mdi:light-switch"
    assert switch["availability_mode"] == "all"  # the device's own availability option
    # `homeassistant: null` turns discovery off for the device: everything is cleared.
    s.bridge.settings[IEEE] = DeviceConfig.model_validate({"friendly_name": "hall", "homeassistant": None})
    await s.extension.on_state_published(IEEE, {"state": "ON"})
    assert set(configs(s.mqtt.take()).values()) == {None}


async def test_retained_configs_of_an_earlier_run_are_updated_or_cleared() -> None:
    s = await scripted()
    s.mqtt.take()
    old_trigger = {"subtype": "hold", "topic": "z/old_name/action", "type": "action", "payload": "hold"}
    await s.extension.on_message(
        f"ha/device_automation/{IEEE}/action_hold/config", json.dumps(old_trigger).encode(), True
    )
    stale = {"unique_id": f"{IEEE}_sensor_power_z", "state_topic": "z/hall"}
    await s.extension.on_message(f"ha/sensor/{IEEE}/power/config", json.dumps(stale).encode(), True)
    foreign = {"unique_id": f"{IEEE}_sensor_power_other", "state_topic": "other/hall"}
    await s.extension.on_message(f"ha/sensor/{IEEE}/energy/config", json.dumps(foreign).encode(), True)
    published = configs(s.mqtt.take())
    assert published[f"ha/device_automation/{IEEE}/action_hold/config"]["topic"] == "z/hall/action"
    assert published[f"ha/sensor/{IEEE}/power/config"] is None
    assert f"ha/sensor/{IEEE}/energy/config" not in published  # another bridge's: left alone


async def test_birth_republishes_discovery_at_once_and_the_rest_after_the_delay() -> None:
    s = await scripted(birth_republish_delay=0)
    s.mqtt.take()
    await s.extension.on_message("homeassistant/status", b"offline", False)
    assert s.mqtt.take() == []
    await s.extension.on_message("homeassistant/status", b" Online\n", False)
    assert s.extension._birth_task is not None
    await s.extension._birth_task
    sent = s.mqtt.take()
    assert f"ha/switch/{IEEE}/switch/config" in configs(sent)
    assert [m for m in sent if not m[0].startswith("ha/")] == [
        ("z/bridge/state", '{"state":"online"}', True, 1)
    ]
    assert sent[-1][0] == "z/bridge/state"  # discovery first
    assert s.bridge.states == [IEEE, IEEE]
    await s.extension.stop()


async def test_nothing_when_disabled() -> None:
    s = await scripted(enabled=False)
    await s.extension.on_state_published(IEEE, {"action": "single"})
    await s.extension.on_message("homeassistant/status", b"online", False)
    assert s.mqtt.sent == []
    assert s.extension.topic_filters() == []


async def test_interview_subscribes_and_publishes_and_firmware_changes_republish() -> None:
    s = await scripted()
    s.mqtt.take()
    await s.extension.on_radio_event(ev.DeviceInterviewed(IEEE, "lumi.switch.b1nc01", "LUMI"))
    assert f"ha/+/{IEEE}/+/config" in s.mqtt.filters
    assert s.mqtt.take() == []  # nothing changed since the connect
    await s.extension.on_radio_event(ev.DeviceLeft(IEEE))
    assert set(configs(s.mqtt.take()).values()) == {None}


# --- end to end -----------------------------------------------------------------------------------


@dataclass
class Running:
    daemon: DaemonProcess
    base: str
    prefix: str
    status: str
    ieee: str = ""
    name: str = ""


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    base = random_base_topic()
    prefix = f"{base}_ha"
    status = f"{base}_hastatus"
    folder = tmp_path_factory.mktemp("homeassistant")
    config = write_config(
        folder / "configuration.yaml",
        base,
        homeassistant={
            "enabled": True,
            "discovery_topic": prefix,
            "status_topic": status,
            "birth_republish_delay": 0,
        },
        availability={"enabled": True},
    )
    daemon = DaemonProcess(config, folder / "data")
    daemon.start()
    state = Running(daemon, base, prefix, status)
    yield state
    code = state.daemon.stop()
    asyncio.run(_clear_everything(state))
    assert code == 0, state.daemon.log()


async def _clear_everything(running: Running) -> None:
    await clear_tree(running.base)
    await clear_tree(running.prefix)


async def retained_topics(root: str) -> list[str]:
    """The topics under `root` (relative to it) that hold a retained message now."""
    async with watching(root) as watcher:
        # Retained messages come right after the subscription, before anything published later:
        # once our own marker is back, all of them are in.
        marker = f"end-of-retained-{uuid.uuid4().hex[:8]}"
        await watcher.publish(marker, "")
        await watcher.wait_for(marker)
        topics = {m.topic for m in watcher.messages if m.retain and m.payload}
    return sorted(topic.removeprefix(f"{root}/") for topic in topics)


async def clear_tree(root: str) -> None:
    """Empty every retained message under `root` (a test module's own base topic or prefix)."""
    clear_retained(root, await retained_topics(root))


@asynccontextmanager
async def both(running: Running) -> AsyncIterator[tuple[Watcher, Watcher]]:
    """Watchers of the base topic and of the discovery prefix."""
    async with AsyncExitStack() as stack:
        base = await stack.enter_async_context(watching(running.base))
        discovery = await stack.enter_async_context(watching(running.prefix))
        yield base, discovery


async def _ieee(running: Running, base: Watcher) -> str:
    if not running.ieee:
        await base.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
        response = await base.request("simulation/switches", {})
        running.ieee = response["data"]["switches"][0]["ieee"]
    return running.ieee


def _payload(message: Message) -> dict[str, Any]:
    payload: dict[str, Any] = message.json()
    return payload


def _with_version(message: Message) -> bool:
    return bool(message.payload) and "sw_version" in message.json()["device"]


def _check_keys(component: str, payload: dict[str, Any]) -> None:
    assert not set(payload) - ACCEPTED[component], payload
    assert not set(payload["device"]) - DEVICE_KEYS
    assert not set(payload["origin"]) - ORIGIN_KEYS
    for entry in payload.get("availability", []):
        assert not set(entry) - AVAILABILITY_ENTRY_KEYS


async def test_discovery_of_every_entity(running: Running) -> None:
    async with both(running) as (base, discovery):
        ieee = await _ieee(running, base)
        found = {
            config_id: _payload(
                await discovery.wait_for(f"{component}/{ieee}/{config_id}/config", _with_version)
            )
            for component, config_id in ENTITIES
        }
    state_topic = f"{running.base}/{ieee}"
    device = found["switch"]["device"]
    assert device["identifiers"] == [f"zigbee2mqtt_{ieee}"]
    assert (device["manufacturer"], device["model_id"], device["name"]) == ("Aqara", "QBKG40LM", ieee)
    assert device["model"] == "Smart wall switch E1 (with neutral, single rocker)"
    assert device["sw_version"] == "0.0.0_0029"  # Basic swBuildId of the simulated firmware
    assert device["via_device"].startswith("zigbee2mqtt_bridge_0x")
    for (component, config_id), payload in zip(ENTITIES, found.values(), strict=True):
        _check_keys(component, payload)
        assert payload["device"] == device
        assert payload["state_topic"] == state_topic
        assert payload["unique_id"] == f"{ieee}_{config_id}_{running.base}"
        assert payload["default_entity_id"] == f"{component}.{payload['object_id']}"
        assert payload["availability_mode"] == "all"
        assert [a["topic"] for a in payload["availability"]] == [
            f"{running.base}/bridge/state",
            f"{running.base}/{ieee}/availability",
        ]
    assert found["switch"]["command_topic"] == f"{state_topic}/set"
    assert found["switch"]["name"] is None
    assert found["operation_mode"]["command_topic"] == f"{state_topic}/set/operation_mode"
    assert found["operation_mode"]["options"] == ["control_relay", "decoupled"]
    assert found["switch_power_outage_memory"]["command_topic"] == f"{state_topic}/set/power_outage_memory"
    assert found["switch_flip_indicator_light"]["entity_category"] == "config"
    assert found["device_temperature"]["entity_category"] == "diagnostic"
    assert found["linkquality"]["entity_category"] == "diagnostic"
    assert found["action"]["event_types"] == ["single", "double"]
    # Retained: Home Assistant starting later finds them, and the bridge's own device and entity.
    coordinator = device["via_device"].removeprefix("zigbee2mqtt_bridge_")
    async with watching(running.prefix) as late:
        message = await late.wait_for(f"switch/{ieee}/switch/config")
        assert message.retain
        node = bridge_node_id(running.base, coordinator)
        connection = await late.wait_for(f"binary_sensor/{node}/connection_state/config")
    assert connection.retain
    payload = connection.json()
    _check_keys("binary_sensor", payload)
    assert payload["state_topic"] == f"{running.base}/bridge/state"
    assert payload["device"]["identifiers"] == [device["via_device"]]


async def test_presses_give_device_triggers_and_the_action_topic(running: Running) -> None:
    async with both(running) as (base, discovery):
        ieee = await _ieee(running, base)
        for kind in ("single", "double"):
            position, seen = base.mark(), discovery.mark()
            await base.request("simulation/press", {"id": ieee, "kind": kind})
            action = await base.wait_for(f"{ieee}/action", after=position)
            assert action.payload.decode() == kind and not action.retain
            trigger = await discovery.wait_for(f"device_automation/{ieee}/action_{kind}/config", after=seen)
            assert trigger.json() == {
                "automation_type": "trigger",
                "device": trigger.json()["device"],
                "origin": trigger.json()["origin"],
                "payload": kind,
                "subtype": kind,
                "topic": f"{running.base}/{ieee}/action",
                "type": "action",
            }
            assert trigger.json()["device"]["identifiers"] == [f"zigbee2mqtt_{ieee}"]
            _check_keys("device_automation", trigger.json())
        # The second single press: only the action, the trigger exists already.
        position, seen = base.mark(), discovery.mark()
        await base.request("simulation/press", {"id": ieee, "kind": "single"})
        await base.wait_for(f"{ieee}/action", after=position)
        assert discovery.since(seen, f"device_automation/{ieee}/action_single/config") == []


async def test_birth_message_republishes_state_availability_and_discovery(running: Running) -> None:
    async with both(running) as (base, discovery):
        ieee = await _ieee(running, base)
        await base.wait_for(f"{ieee}/availability", lambda m: m.json() == {"state": "online"})
        position, seen = base.mark(), discovery.mark()
        await base.client.publish(running.status, "online")
        bridge_state = await base.wait_for("bridge/state", after=position)
        assert bridge_state.json() == {"state": "online"}
        await base.wait_for(f"{ieee}/availability", lambda m: m.json() == {"state": "online"}, after=position)
        await base.wait_for(ieee, lambda m: "state" in m.json(), after=position)
        for component, config_id in ENTITIES:
            await discovery.wait_for(f"{component}/{ieee}/{config_id}/config", after=seen)


def _empty(message: Message) -> bool:
    return message.payload == b""


def _online(message: Message) -> bool:
    return bool(message.payload) and message.json() == {"state": "online"}


async def test_bridge_entities_send_requests_the_daemon_serves(running: Running) -> None:
    async with both(running) as (base, discovery):
        ieee = await _ieee(running, base)
        switch = await discovery.wait_for(f"switch/{ieee}/switch/config")
        coordinator = switch.json()["device"]["via_device"].removeprefix("zigbee2mqtt_bridge_")
        node = bridge_node_id(running.base, coordinator)
        entities = {}
        for component, name in (
            ("switch", "permit_join"),
            ("select", "log_level"),
            ("sensor", "version"),
            ("button", "restart"),
        ):
            entities[name] = (await discovery.wait_for(f"{component}/{node}/{name}/config")).json()
            _check_keys(component, entities[name])
            assert entities[name]["device"]["name"] == "Zigbee2MQTT Bridge"
        assert entities["restart"]["command_topic"] == f"{running.base}/bridge/request/restart"
        assert entities["version"]["state_topic"] == f"{running.base}/bridge/info"
        permit = entities["permit_join"]
        for payload, seconds in ((permit["payload_on"], 254), (permit["payload_off"], 0)):
            position = base.mark()
            await base.client.publish(permit["command_topic"], payload)
            response = await base.wait_for("bridge/response/permit_join", after=position)
            assert response.json() == {"data": {"time": seconds}, "status": "ok"}
            open_now = bool(seconds)
            await base.wait_for(
                "bridge/info", lambda m, want=open_now: m.json()["permit_join"] is want, after=position
            )
        level = entities["log_level"]
        assert level["options"] == ["error", "warning", "info", "debug"]
        position = base.mark()
        # What Home Assistant's command template renders for the option "info".
        await base.client.publish(
            level["command_topic"], level["command_template"].replace("{{ value }}", "info")
        )
        response = await base.wait_for("bridge/response/options", after=position)
        assert response.json()["status"] == "ok", response.json()


async def test_rename_moves_discovery_availability_and_triggers(running: Running) -> None:
    new = "ha_renamed_switch"
    async with both(running) as (base, discovery):
        ieee = await _ieee(running, base)
        await base.request("simulation/press", {"id": ieee, "kind": "single"})
        await discovery.wait_for(f"device_automation/{ieee}/action_single/config")
        await base.wait_for(f"{ieee}/availability", _online)
        position, seen = base.mark(), discovery.mark()
        response = await base.request("device/rename", {"from": ieee, "to": new})
        assert response["status"] == "ok", response
        running.name = new
        switch = await discovery.wait_for(
            f"switch/{ieee}/switch/config",
            lambda m: bool(m.payload) and m.json()["state_topic"] == f"{running.base}/{new}",
            after=seen,
        )
        payload = switch.json()
        assert payload["command_topic"] == f"{running.base}/{new}/set"
        assert (payload["device"]["name"], payload["default_entity_id"]) == (new, f"switch.{new}")
        assert f"{running.base}/{new}/availability" in [a["topic"] for a in payload["availability"]]
        trigger = await discovery.wait_for(f"device_automation/{ieee}/action_single/config", after=seen)
        assert trigger.json()["topic"] == f"{running.base}/{new}/action"
        await base.wait_for(f"{ieee}/availability", _empty, after=position)
        await base.wait_for(f"{new}/availability", _online, after=position)
    assert f"{ieee}/availability" not in await retained_topics(running.base)


async def test_remove_clears_discovery_availability_and_triggers(running: Running) -> None:
    """Last in this module: the switch leaves the network."""
    async with both(running) as (base, discovery):
        ieee = await _ieee(running, base)
        name = running.name or ieee
        await base.request("simulation/press", {"id": ieee, "kind": "double"})
        await discovery.wait_for(f"device_automation/{ieee}/action_double/config")
        await base.wait_for(f"{name}/availability", _online)
    ours = [topic for topic in await retained_topics(running.prefix) if f"/{ieee}/" in topic]
    assert len(ours) >= len(ENTITIES) + 1, ours
    async with both(running) as (base, discovery):
        position, seen = base.mark(), discovery.mark()
        response = await base.request("device/remove", {"id": name})
        assert response["status"] == "ok", response
        for topic in ours:
            await discovery.wait_for(topic, _empty, after=seen)
        await base.wait_for(f"{name}/availability", _empty, after=position)
    assert [topic for topic in await retained_topics(running.prefix) if f"/{ieee}/" in topic] == []
    assert f"{name}/availability" not in await retained_topics(running.base)


# --- configuration ----------------------------------------------------------------------------------


def _parse(**sections: Any) -> Config:
    raw = {"mqtt": {"server": "mqtt://x"}, "serial": {"adapter": "virtual"}} | sections
    return parse_config(raw, Path("configuration.yaml")).config


def test_configuration_keys_and_their_checks() -> None:
    config = _parse(
        homeassistant={"enabled": True, "birth_republish_delay": 0.5},
        availability={"enabled": True, "active": {"timeout": 0.05, "retry_delay": 0}},
    )
    assert config.homeassistant.birth_republish_delay == 0.5
    assert config.availability.active.timeout == 0.05
    assert _parse(homeassistant=True).homeassistant.enabled  # Zigbee2MQTT 1.x shorthand
    for bad, key in (
        ({"homeassistant": {"discovery_topic": "home/#"}}, "homeassistant.discovery_topic"),
        ({"homeassistant": {"status_topic": "/status"}}, "homeassistant.status_topic"),
        ({"homeassistant": {"birth_republish_delay": -1}}, "homeassistant.birth_republish_delay"),
        ({"availability": {"active": {"timeout": 0}}}, "availability.active.timeout"),
        ({"availability": {"active": {"max_jitter": -5}}}, "availability.active.max_jitter"),
    ):
        with pytest.raises(ConfigError) as raised:
            _parse(**bad)
        assert any(problem.startswith(f"{key}:") for problem in raised.value.problems), raised.value.problems
