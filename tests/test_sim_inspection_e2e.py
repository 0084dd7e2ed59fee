"""End to end: `simulation/inject` and `simulation/frames` through the real broker, on the virtual
adapter (served by the daemon) and on the Z-Stack emulator (served by `emulate`, the daemon on the
unmodified zigpy-znp path): an injected report is converted by the daemon like one from the device,
and what the daemon sends is seen decoded as the switch received it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import DaemonProcess, Watcher, clear_retained, random_base_topic, watching, write_config
from tests.test_end_to_end_zstack import ADAPTERS, Adapter, _first_start

LUMI = 0xFCC0
LUMI_CODE = 0x115F


@dataclass
class Running:
    daemon: DaemonProcess
    base: str
    ieee: str


@pytest.fixture(scope="module", params=["virtual", "zstack"])
def running(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Running]:
    """The daemon with one paired switch, on the adapter the parameter names."""
    adapter: Adapter = ADAPTERS[request.param]()
    base = random_base_topic()
    folder = tmp_path_factory.mktemp(f"inspect-{adapter.name}")
    config = folder / "configuration.yaml"
    write_config(config, base)  # the emulator takes the broker and base topic from it
    adapter.start(folder, config)
    write_config(config, base, serial=adapter.serial(), advanced={"log_level": "info", "channel": 15})
    daemon = DaemonProcess(config, folder / "data")
    daemon.start()
    try:
        ieee = asyncio.run(_first_start(base, adapter))
        yield Running(daemon, base, ieee)
    finally:
        code = daemon.stop()
        adapter.stop()
        clear_retained(base)
    assert code == 0, daemon.log()


async def _frames(watcher: Watcher, ieee: str, **options: Any) -> dict[str, Any]:
    response = await watcher.request("simulation/frames", {"id": ieee, **options})
    assert response["status"] == "ok", response
    data: dict[str, Any] = response["data"]
    assert data["id"] == ieee
    return data


async def _set(watcher: Watcher, ieee: str, payload: dict[str, Any]) -> dict[str, Any]:
    """`/set`, then the state message that shows the device acknowledged it."""
    position = watcher.mark()
    await watcher.publish(f"{ieee}/set", json.dumps(payload))
    return await watcher.wait_state(
        ieee, lambda s: all(s.get(key) == value for key, value in payload.items()), after=position
    )


def _writes(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The Write Attributes frames on the Lumi cluster (the daemon may write Basic on its own, to
    keep the switch from resetting itself)."""
    return [
        frame
        for frame in data["frames"]
        if frame.get("command_name") == "write_attributes" and frame["cluster"] == LUMI
    ]


async def test_the_configure_write_went_out_as_zigbee2mqtt_sends_it(running: Running) -> None:
    """After the interview the daemon switched the switch to event mode (Lumi 0x0009 = 1) with the
    manufacturer code and the disable-default-response bit set, as Zigbee2MQTT does. First in the
    file: the frames of the pairing are still waiting in the switch's log."""
    async with watching(running.base) as watcher:
        data = await _frames(watcher, running.ieee, cluster=LUMI)
    configure = [frame for frame in _writes(data) if [a["id"] for a in frame["attributes"]] == [0x0009]]
    assert len(configure) == 1, data
    assert configure[0]["attributes"][0]["value"] == 1
    assert configure[0]["manufacturer_code"] == LUMI_CODE
    assert configure[0]["disable_default_response"] is True


async def test_an_injected_heartbeat_is_converted_like_the_devices_own(running: Running) -> None:
    # A truncated heartbeat: chip temperature 45 °C (TLV 3, int8) and boot counter 8 (TLV 5, uint16).
    body = "03 28 2d 05 21 08 00"
    async with watching(running.base) as watcher:
        position = watcher.mark()
        response = await watcher.request(
            "simulation/inject",
            {
                "ieee": running.ieee,
                "endpoint": 1,
                "cluster": LUMI,
                "manufacturer_code": LUMI_CODE,
                "attributes": [{"id": 0x00F7, "type": 0x41, "value": body}],
            },
        )
        assert response["status"] == "ok", response
        data = response["data"]
        assert (data["id"], data["cluster"], data["manufacturer_code"], data["sent"]) == (
            running.ieee,
            LUMI,
            LUMI_CODE,
            True,
        )
        assert data["frame"].startswith("1c5f11")  # global, manufacturer-specific, server to client
        state = await watcher.wait_state(
            running.ieee, lambda s: s.get("device_temperature") == 45, after=position
        )
        assert state["power_outage_count"] == 7


async def test_an_injected_on_off_report_sets_the_state(running: Running) -> None:
    async with watching(running.base) as watcher:
        for value, published in ((True, "ON"), (False, "OFF")):
            position = watcher.mark()
            response = await watcher.request(
                "simulation/inject",
                {
                    "id": running.ieee,
                    "cluster": "on_off",
                    "attributes": [{"id": 0, "type": "bool", "value": value}],
                },
            )
            assert response["status"] == "ok", response
            await watcher.wait_state(running.ieee, lambda s, p=published: s.get("state") == p, after=position)


async def test_bad_inject_and_frames_requests_get_clear_errors(running: Running) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        (
            "inject",
            {"cluster": 6, "attributes": [{"id": 0, "type": 0x99, "value": 1}]},
            "unknown ZCL type id 0x99",
        ),
        (
            "inject",
            {"cluster": 6, "attributes": [{"id": 0, "type": 0x20, "value": 256}]},
            "256 does not fit uint8",
        ),
        (
            "inject",
            {"cluster": 6, "attributes": [{"id": 0, "type": 0x41, "value": "00" * 80}]},
            "one Zigbee frame",
        ),
        (
            "inject",
            {"cluster": 6, "endpoint": 0, "attributes": [{"id": 0, "type": 16, "value": True}]},
            "endpoint",
        ),
        ("inject", {"cluster": 6}, "attributes must be a non-empty list"),
        ("inject", {"cluster": 6, "attrs": []}, "unknown key(s) attrs"),
        ("frames", {"cluster": "lights"}, "unknown cluster name 'lights'"),
    ]
    async with watching(running.base) as watcher:
        for path, payload, error in cases:
            response = await watcher.request(f"simulation/{path}", {"id": running.ieee, **payload})
            assert response["status"] == "error", (payload, response)
            assert error in response["error"], (payload, response)
            assert response["data"] == {}
        unknown = await watcher.request(
            "simulation/inject",
            {"id": "nobody", "cluster": 6, "attributes": [{"id": 0, "type": 16, "value": 1}]},
        )
        assert unknown["status"] == "error" and "nobody" in unknown["error"], unknown
        # Both still serve.
        assert (await watcher.request("health_check", {}))["data"]["healthy"] is True
        assert (await watcher.request("simulation/frames", {"id": running.ieee}))["status"] == "ok"


async def test_frames_show_the_daemons_write_decoded_and_only_newer_ones_next_time(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _frames(watcher, running.ieee)  # what the interview and start-up sent
        await _set(watcher, running.ieee, {"power_outage_memory": True})
        data = await _frames(watcher, running.ieee)
        assert data["dropped"] == 0
        [write] = _writes(data)
        assert {
            key: write[key] for key in ("endpoint", "cluster", "cluster_name", "frame_type", "direction")
        } == {
            "endpoint": 1,
            "cluster": LUMI,
            "cluster_name": "manuSpecificLumi",
            "frame_type": "global",
            "direction": "client_to_server",
        }
        assert (write["manufacturer_code"], write["disable_default_response"], write["command"]) == (
            LUMI_CODE,
            True,
            2,
        )
        assert write["attributes"] == [
            {"id": 0x0201, "name": "power_outage_memory", "type": 0x10, "value": True}
        ]
        assert "error" not in write and write["raw"].startswith("145f11")

        again = await _frames(watcher, running.ieee)
        assert _writes(again) == []
        await _set(watcher, running.ieee, {"flip_indicator_light": "ON"})
        newer = await _frames(watcher, running.ieee)
        [write] = _writes(newer)
        assert write["attributes"] == [
            {"id": 0x00F0, "name": "flip_indicator_light", "type": 0x20, "value": 1}
        ]


async def test_frames_of_one_cluster_leave_the_others_for_later(running: Running) -> None:
    async with watching(running.base) as watcher:
        await _frames(watcher, running.ieee)
        position = watcher.mark()
        await watcher.publish(f"{running.ieee}/get", json.dumps({"state": ""}))
        before = await watcher.wait_state(running.ieee, lambda s: "state" in s, after=position)
        target = "OFF" if before["state"] == "ON" else "ON"
        await _set(watcher, running.ieee, {"state": target, "operation_mode": "decoupled"})
        on_off = await _frames(watcher, running.ieee, cluster=6)
        assert on_off["cluster"] == 6 and on_off["frames"], on_off
        assert {frame["cluster"] for frame in on_off["frames"]} == {6}
        commands = [frame["command_name"] for frame in on_off["frames"]]
        assert target.lower() in commands, commands
        rest = await _frames(watcher, running.ieee)
        assert 6 not in {frame["cluster"] for frame in rest["frames"]}, rest
        [write] = _writes(rest)
        assert write["attributes"] == [{"id": 0x0200, "name": "operation_mode", "type": 0x20, "value": 0}]


async def _sent_in_order(watcher: Watcher, ieee: str, payload: dict[str, Any]) -> list[str]:
    """What one `/set` put on the air, in the order the switch received it (reads left out)."""
    await _frames(watcher, ieee)
    transaction = f"order-{id(payload)}"
    position = watcher.mark()
    await watcher.publish(f"{ieee}/set", json.dumps({**payload, "transaction": transaction}))
    response = await watcher.wait_for(
        f"{ieee}/response/set", lambda m: m.json().get("transaction") == transaction, after=position
    )
    assert response.json()["status"] == "ok", response.json()
    sent = []
    for frame in (await _frames(watcher, ieee))["frames"]:
        if frame["command_name"] == "write_attributes" and frame["cluster"] == LUMI:
            sent.append("write " + ",".join(str(a["name"]) for a in frame["attributes"]))
        elif frame["cluster"] == 6:
            fields = frame.get("fields") or {}
            times = " ".join(f"{key}={fields[key]}" for key in ("on_time", "off_wait_time") if key in fields)
            sent.append(f"{frame['command_name']} {times}".strip())
    return sent


async def test_the_order_of_a_set_on_the_wire_is_zigbee2mqtts(running: Running) -> None:
    """`state` OFF goes last, after the settings; ON goes first; `on_time` rides with `state` as
    one OnWithTimedOff, in tenths of a second."""
    async with watching(running.base) as watcher:
        off_last = await _sent_in_order(
            watcher,
            running.ieee,
            {"state": "OFF", "flip_indicator_light": "ON", "power_outage_memory": False},
        )
        assert off_last == ["write flip_indicator_light", "write power_outage_memory", "off"]
        on_first = await _sent_in_order(
            watcher, running.ieee, {"flip_indicator_light": "OFF", "state": "ON", "on_time": 30}
        )
        assert on_first == ["on_with_timed_off on_time=300 off_wait_time=0", "write flip_indicator_light"]
        frames = await _frames(watcher, running.ieee, cluster=6)
        assert frames["frames"] == []  # taken by the call above; nothing else was sent since
        await _sent_in_order(watcher, running.ieee, {"state": "OFF"})  # no countdown left behind


async def test_the_daemon_answers_the_switchs_prevent_reset_report_on_the_wire(running: Running) -> None:
    """The switch asks (Basic 0xFFF0 `aa 10 05 41 87 …`); the daemon's write reaches it as
    Zigbee2MQTT sends it, and the switch counts it as answered."""
    async with watching(running.base) as watcher:
        await _frames(watcher, running.ieee, cluster=0)
        position = watcher.mark()
        asked = await watcher.request("simulation/firmware", {"id": running.ieee, "send_prevent_reset": True})
        assert asked["status"] == "ok", asked
        await watcher.wait_log(lambda r: "Answered the prevent reset request" in r["message"], after=position)
        basic = await _frames(watcher, running.ieee, cluster=0)
        [write] = [frame for frame in basic["frames"] if frame["command_name"] == "write_attributes"]
        assert write["endpoint"] == 1
        assert (write["manufacturer_code"], write["disable_default_response"]) == (LUMI_CODE, True)
        assert write["attributes"] == [
            {"id": 0xFFF0, "name": None, "type": 0x41, "value": "aa1005414701011001"}
        ]
        status = await watcher.request("simulation/firmware", {"id": running.ieee})
        cycle = status["data"]["prevent_reset"]
        assert (cycle["unanswered"], cycle["waiting_for"]) == (0, "periodic"), cycle
