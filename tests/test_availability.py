"""Availability: the check schedule (pure), the extension against a scripted radio, and end to end.

End to end: the daemon as a process with the virtual adapter and the real broker, availability on
with a 3 s timeout; a simulated switch made silent goes offline, and online again when it answers.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from tests.support import (
    DaemonProcess,
    Watcher,
    random_base_topic,
    watching,
    write_config,
)
from tests.test_homeassistant import clear_tree
from z2m_qbkg40lm.bridge.availability import (
    NAME_LEVELS,
    PING,
    Availability,
    AvailabilityTracker,
    stale_filters,
    stale_names,
)
from z2m_qbkg40lm.bridge.extension import Context
from z2m_qbkg40lm.config import ActiveAvailabilityConfig, Config, DeviceConfig
from z2m_qbkg40lm.devices.definition import ZclOperation
from z2m_qbkg40lm.zigbee import events as ev
from z2m_qbkg40lm.zigbee.executor import DeviceCommandError
from z2m_qbkg40lm.zigbee.radio import DeviceInfo

IEEE = "0x54ef441000abcdef"

# --- the schedule -------------------------------------------------------------------------------


def tracker(**settings: Any) -> AvailabilityTracker:
    config = ActiveAvailabilityConfig(**({"timeout": 1, "max_jitter": 0} | settings))
    return AvailabilityTracker(config, jitter=lambda: 1.0)


def test_a_new_device_is_unknown_and_due_at_once() -> None:
    schedule = tracker()
    schedule.add(IEEE, now=100.0)
    assert schedule.state(IEEE) is None
    assert schedule.due(100.0) == [IEEE]


def test_a_frame_means_online_and_a_check_after_the_timeout_plus_jitter() -> None:
    schedule = tracker(timeout=10, max_jitter=30000)
    schedule.add(IEEE, now=0.0)
    assert schedule.alive(IEEE, now=5.0) is True
    assert schedule.alive(IEEE, now=6.0) is False  # already online: no change to publish
    assert schedule.state(IEEE) == "online"
    assert schedule.due(6.0 + 600 + 29) == []
    assert schedule.next_due() == 6.0 + 600 + 30  # jitter() = 1.0 -> the whole 30 s


def test_failed_checks_back_off_up_to_six_timeouts() -> None:
    schedule = tracker()
    schedule.add(IEEE, now=0.0)
    assert schedule.check_failed(IEEE, now=0.0) is True
    assert schedule.state(IEEE) == "offline"
    waits = []
    now = 0.0
    for _ in range(8):
        due = schedule.next_due()
        assert due is not None
        waits.append(round(due - now, 3))
        now = due
        assert schedule.check_failed(IEEE, now) is False
    assert waits == [60.0, 90.0, 135.0, 202.5, 303.75, 360.0, 360.0, 360.0]


def test_without_backoff_an_offline_device_is_checked_every_timeout() -> None:
    schedule = tracker(backoff=False)
    schedule.check_failed(IEEE, now=0.0)
    schedule.check_failed(IEEE, now=60.0)
    assert schedule.next_due() == 120.0


def test_pings_pause_above_the_backoff_limit_until_the_device_speaks() -> None:
    schedule = tracker(pause_on_backoff_gt=2)
    schedule.check_failed(IEEE, now=0.0)  # factor 1
    schedule.check_failed(IEEE, now=60.0)  # 1.5
    assert schedule.next_due() is not None
    schedule.check_failed(IEEE, now=150.0)  # 2.25 > 2: paused
    assert schedule.next_due() is None
    assert schedule.due(10_000.0) == []
    assert schedule.alive(IEEE, now=10_000.0) is True
    assert schedule.next_due() == 10_060.0


def test_the_most_overdue_device_is_checked_first() -> None:
    schedule = tracker()
    schedule.add("0x02", now=5.0)
    schedule.add("0x01", now=3.0)
    schedule.add("0x03", now=50.0)
    assert schedule.due(10.0) == ["0x01", "0x02"]


# --- the extension against a scripted radio -------------------------------------------------------


class FakeMqtt:
    """Records publishes; tests wait for a message with `wait`."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bool, int]] = []
        self._changed = asyncio.Condition()
        self.can_publish = True
        self.retained: list[tuple[str, bytes]] = []

    async def read_retained(self, filters: list[str]) -> list[tuple[str, bytes]]:
        return list(self.retained)

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int = 0) -> bool:
        text = payload.decode() if isinstance(payload, bytes) else payload
        await asyncio.sleep(0)  # a real publish waits for the broker: others run meanwhile
        async with self._changed:
            self.sent.append((topic, text, retain, qos))
            self._changed.notify_all()
        return True

    async def wait(self, topic: str, payload: str, after: int = 0) -> int:
        """Wait for the message; returns its index."""

        def index() -> int | None:
            for i, (t, p, _, _) in enumerate(self.sent[after:], start=after):
                if (t, p) == (topic, payload):
                    return i
            return None

        async with asyncio.timeout(5), self._changed:
            await self._changed.wait_for(lambda: index() is not None)
        found = index()
        assert found is not None
        return found


class FakeRadio:
    def __init__(self) -> None:
        self.answering = True
        self.pings = 0
        self._pinged = asyncio.Condition()

    async def wait_pings(self, count: int) -> None:
        async with asyncio.timeout(5), self._pinged:
            await self._pinged.wait_for(lambda: self.pings >= count)

    def devices(self) -> list[DeviceInfo]:
        return [DeviceInfo(IEEE, 0x1234, "lumi.switch.b1nc01", "LUMI", True, 160)]

    def device(self, ieee: str) -> DeviceInfo | None:
        return self.devices()[0] if ieee == IEEE else None

    async def execute(self, ieee: str, operations: tuple[ZclOperation, ...]) -> None:
        assert operations == PING
        async with self._pinged:
            self.pings += 1
            self._pinged.notify_all()
        if not self.answering:
            raise DeviceCommandError("read of 0x0000/0x0004 failed: the device did not answer")


class FakeBridge:
    def __init__(self) -> None:
        self.settings: dict[str, DeviceConfig] = {IEEE: DeviceConfig(friendly_name="hall")}
        self.extensions: list[Any] = []

    def device_config(self, ieee: str) -> DeviceConfig:
        return self.settings.get(ieee) or DeviceConfig(friendly_name=ieee)

    def friendly_name(self, ieee: str) -> str:
        return self.device_config(ieee).friendly_name


@dataclass
class Scripted:
    extension: Availability
    mqtt: FakeMqtt
    radio: FakeRadio
    bridge: FakeBridge


def scripted(availability: dict[str, Any]) -> Scripted:
    config = Config.model_validate(
        {"mqtt": {"server": "mqtt://x", "base_topic": "z"}, "serial": {"adapter": "virtual"}}
        | {"availability": availability}
    )
    mqtt, radio, bridge = FakeMqtt(), FakeRadio(), FakeBridge()
    context = Context(
        config=config,
        config_path=Path("configuration.yaml"),
        data_dir=Path("."),
        bridge=cast(Any, bridge),
        radio=cast(Any, radio),
        mqtt=cast(Any, mqtt),
        request_restart=lambda: None,
    )
    return Scripted(Availability(context), mqtt, radio, bridge)


ONLINE = '{"state":"online"}'
OFFLINE = '{"state":"offline"}'
FAST = {"enabled": True, "active": {"timeout": 0.002, "max_jitter": 0, "retry_delay": 0.01, "backoff": False}}


async def test_checked_at_start_offline_after_two_unanswered_pings_online_on_a_frame() -> None:
    s = scripted(FAST)
    s.radio.answering = False
    await s.extension.start()
    try:
        await s.mqtt.wait("z/hall/availability", OFFLINE)
        assert s.radio.pings == 2
        assert s.mqtt.sent[-1][2:] == (True, 1)  # retained, QoS 1
        position = len(s.mqtt.sent)
        await s.extension.on_radio_event(ev.FrameReceived(IEEE, 150))
        assert s.mqtt.sent[position:] == [("z/hall/availability", ONLINE, True, 1)]
    finally:
        await s.extension.stop()


async def test_a_device_first_heard_later_gets_its_checks_too() -> None:
    s = scripted(FAST | {"enabled": False})
    await s.extension.start()
    try:
        for _ in range(3):  # let the check loop run up to its wait: nothing tracked, no deadline
            await asyncio.sleep(0)
        s.bridge.settings[IEEE] = DeviceConfig(friendly_name="hall", availability=True)
        s.radio.answering = False
        await s.extension.on_radio_event(ev.FrameReceived(IEEE, 150))
        await s.mqtt.wait("z/hall/availability", OFFLINE)
    finally:
        await s.extension.stop()


async def test_a_frame_from_the_coordinator_publishes_no_availability() -> None:
    s = scripted(FAST)
    await s.extension.start()
    try:
        await s.extension.on_radio_event(ev.FrameReceived("0x00124b0000000001", 150))
        await s.extension.on_radio_event(ev.FrameReceived(IEEE, 150))
        await s.mqtt.wait("z/hall/availability", ONLINE)
        assert {m[0] for m in s.mqtt.sent} == {"z/hall/availability"}
    finally:
        await s.extension.stop()


async def test_an_answered_ping_keeps_it_online_without_republishing() -> None:
    s = scripted(FAST)
    await s.extension.start()
    try:
        first = await s.mqtt.wait("z/hall/availability", ONLINE)
        await s.radio.wait_pings(s.radio.pings + 2)  # two more checks, answered: no new message
        assert [m for m in s.mqtt.sent[first + 1 :] if m[0] == "z/hall/availability"] == []
    finally:
        await s.extension.stop()


async def test_rename_moves_the_retained_message_and_remove_clears_it() -> None:
    s = scripted(FAST)
    await s.extension.on_radio_event(ev.FrameReceived(IEEE, 150))
    assert s.mqtt.sent == [("z/hall/availability", ONLINE, True, 1)]
    s.bridge.settings[IEEE] = DeviceConfig(friendly_name="kitchen")
    await s.extension.on_device_renamed(IEEE, "hall", "kitchen")
    assert s.mqtt.sent[1:] == [
        ("z/hall/availability", "", True, 1),
        ("z/kitchen/availability", ONLINE, True, 1),
    ]
    await s.extension.on_device_removed(IEEE, "kitchen")
    assert s.mqtt.sent[3:] == [("z/kitchen/availability", "", True, 1)]
    assert s.extension.state_of(IEEE) is None


async def test_nothing_without_availability_but_a_device_can_turn_it_on() -> None:
    s = scripted({"enabled": False})
    await s.extension.on_radio_event(ev.FrameReceived(IEEE, 150))
    assert s.mqtt.sent == []
    s.bridge.settings[IEEE] = DeviceConfig(friendly_name="hall", availability=True)
    await s.extension.on_radio_event(ev.FrameReceived(IEEE, 150))
    assert s.mqtt.sent == [("z/hall/availability", ONLINE, True, 1)]


async def test_reconnect_republishes_every_known_state() -> None:
    s = scripted(FAST)
    await s.extension.on_radio_event(ev.AttributeReceived(IEEE, 1, 6, 0, True, "report", 150))
    await s.extension.on_connected()
    await s.extension.stop()
    assert s.mqtt.sent == [("z/hall/availability", ONLINE, True, 1)] * 2


async def test_renames_in_flight_at_once_leave_one_retained_message_on_the_last_name() -> None:
    s = scripted(FAST)
    await s.extension.on_radio_event(ev.FrameReceived(IEEE, 150))
    names = ["hall", *(f"room {i}/switch" for i in range(8))]
    renames = []
    for old, new in itertools.pairwise(names):
        s.bridge.settings[IEEE] = DeviceConfig(friendly_name=new)
        renames.append(asyncio.create_task(s.extension.on_device_renamed(IEEE, old, new)))
    # A check finding the device offline, racing the renames.
    renames.append(asyncio.create_task(s.extension._publish(IEEE, "offline")))
    await asyncio.gather(*renames)
    retained = {topic: payload for topic, payload, _, _ in s.mqtt.sent}
    assert {topic: p for topic, p in retained.items() if p} == {f"z/{names[-1]}/availability": OFFLINE}, (
        s.mqtt.sent
    )


def test_stale_names_are_ours_and_no_device_has_them() -> None:
    online, offline = b'{"state":"online"}', b'{"state": "offline"}'
    retained = [
        ("z/old/availability", online),
        ("z/floor/old/availability", offline),
        ("z/hall/availability", online),  # a device's name
        ("z/0x00158d0000000001/availability", online),  # a device's address
        ("z/bridge/availability", online),  # the bridge's own tree
        ("z/plain/availability", b"online"),  # not our payload
        ("z/extra/availability", b'{"state":"online","since":1}'),
        ("z/odd/availability", b'{"state":"away"}'),
        ("z/broken/availability", b"{"),
        ("z/deep/availability", b"[" * 10_000),  # a hostile client's retained message
        ("z/latin/availability", b"\xff"),
        ("other/old/availability", online),  # not under the base topic
    ]
    current = {"hall", "0x00158d0000000001"}
    assert stale_names("z", retained, current) == ["floor/old", "old"]
    assert stale_filters("z")[:2] == ["z/+/availability", "z/+/+/availability"]
    assert len(stale_filters("z")) == NAME_LEVELS


async def test_stale_availability_is_cleared_once_after_the_first_connection() -> None:
    s = scripted({"enabled": True})
    s.mqtt.retained = [("z/old/availability", ONLINE.encode()), ("z/hall/availability", ONLINE.encode())]
    try:
        await s.extension.on_connected()
        await s.mqtt.wait("z/old", "")
        assert s.mqtt.sent == [("z/old/availability", "", True, 1), ("z/old", "", True, 1)]
        await s.extension.on_connected()
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(s.mqtt.sent) == 2, "once per run"
    finally:
        await s.extension.stop()


async def test_a_device_with_availability_off_loses_its_old_message_but_keeps_its_state() -> None:
    s = scripted({"enabled": False})
    s.mqtt.retained = [("z/hall/availability", OFFLINE.encode())]
    try:
        await s.extension.on_connected()
        await s.mqtt.wait("z/hall/availability", "")
        for _ in range(5):
            await asyncio.sleep(0)
        assert s.mqtt.sent == [("z/hall/availability", "", True, 1)]
    finally:
        await s.extension.stop()


# --- end to end -----------------------------------------------------------------------------------

TIMEOUT_MIN = 0.05  # 3 s
RETRY_S = 0.3


@dataclass
class Running:
    daemon: DaemonProcess
    base: str
    ieee: str
    config: Path
    data_dir: Path


def _start(config: Path, data_dir: Path) -> DaemonProcess:
    daemon = DaemonProcess(config, data_dir)
    daemon.start()
    return daemon


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    base = random_base_topic()
    folder = tmp_path_factory.mktemp("availability")
    availability = {
        "enabled": True,
        "active": {"timeout": TIMEOUT_MIN, "max_jitter": 0, "retry_delay": RETRY_S, "backoff": False},
    }
    config = write_config(folder / "configuration.yaml", base, availability=availability)
    data_dir = folder / "data"
    state = Running(_start(config, data_dir), base, "", config, data_dir)
    yield state
    code = state.daemon.stop()
    asyncio.run(clear_tree(base))
    assert code == 0, state.daemon.log()


async def _switch(watcher: Watcher) -> str:
    await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
    response = await watcher.request("simulation/switches", {})
    ieee: str = response["data"]["switches"][0]["ieee"]
    return ieee


def _is(state: str) -> Any:
    return lambda m: bool(m.payload) and m.json() == {"state": state}


async def test_availability_is_published_retained_at_start(running: Running) -> None:
    async with watching(running.base) as watcher:
        running.ieee = await _switch(watcher)
        await watcher.wait_for(f"{running.ieee}/availability", _is("online"))
    async with watching(running.base) as late:
        message = await late.wait_for(f"{running.ieee}/availability")
        assert message.retain
        assert message.json() == {"state": "online"}


async def test_offline_when_silent_online_when_it_answers_again(running: Running) -> None:
    async with watching(running.base) as watcher:
        ieee = running.ieee or await _switch(watcher)
        await watcher.wait_for(f"{ieee}/availability", _is("online"))
        silenced = watcher.mark()
        await watcher.request("simulation/responsive", {"id": ieee, "responsive": False})
        await watcher.wait_for(f"{ieee}/availability", _is("offline"), after=silenced)
        record = await watcher.wait_log(lambda r: "did not answer" in r["message"], after=silenced)
        assert record["level"] == "warning"
        back = watcher.mark()
        await watcher.request("simulation/responsive", {"id": ieee, "responsive": True})
        # Nothing is sent by the switch on its own: the next ping (3 s later) finds it.
        await watcher.wait_for(f"{ieee}/availability", _is("online"), after=back)
        # Only the changes were published: online -> offline -> online.
        states = [m.json()["state"] for m in watcher.since(silenced, f"{ieee}/availability")]
        assert states == ["offline", "online"]


async def test_after_a_restart_devices_are_checked_at_once(running: Running) -> None:
    async with watching(running.base) as watcher:
        ieee = running.ieee or await _switch(watcher)
        await watcher.wait_for(f"{ieee}/availability", _is("online"))
        # Silent, and stopped at once (the switch keeps its silence in the adapter's state file).
        await watcher.request("simulation/responsive", {"id": ieee, "responsive": False})
        assert running.daemon.stop() == 0, running.daemon.log()
        restarted = watcher.mark()
        running.daemon = _start(running.config, running.data_dir)
        online = await watcher.wait_for("bridge/state", _is("online"), after=restarted)
        started = time.monotonic()
        # Well before the 3 s timeout: a state not known since the start is checked at once.
        await watcher.wait_for(f"{ieee}/availability", _is("offline"), after=online.seq, timeout=2.5)
        assert time.monotonic() - started < TIMEOUT_MIN * 60
        back = watcher.mark()
        await watcher.request("simulation/responsive", {"id": ieee, "responsive": True})
        await watcher.wait_for(f"{ieee}/availability", _is("online"), after=back)
