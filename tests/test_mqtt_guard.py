"""End to end: what an MQTT client may not do, through the real broker and a daemon process.

MQTT is not an administrator's channel: settings that move the broker connection or its
credentials, the adapter, files or topics are refused by `options` (only the file may set them);
JSON that is not standard (NaN, Infinity, 1e400, nested 10,000 deep) is refused with an answer;
an empty message (how a retained command or request is cleared) is ignored without a word.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    DaemonProcess,
    Watcher,
    clear_retained,
    discover_switch,
    random_base_topic,
    watching,
    write_config,
)
from z2m_qbkg40lm import strict_json


@dataclass
class Running:
    """The daemon under test."""

    daemon: DaemonProcess
    base: str
    ieee: str
    config: Path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One daemon, virtual adapter with one switch."""
    base = random_base_topic()
    folder = tmp_path_factory.mktemp("mqtt_guard")
    # Discovery under a prefix of this module's own: the shared broker's `homeassistant/` stays clean.
    discovery = {"enabled": True, "discovery_topic": f"{base}_ha", "status_topic": f"{base}_ha/status"}
    config = write_config(folder / "configuration.yaml", base, homeassistant=discovery)
    daemon = DaemonProcess(config, folder / "data")
    daemon.start()
    try:
        ieee = asyncio.run(discover_switch(base))
    except BaseException:
        daemon.stop()
        raise
    yield Running(daemon, base, ieee, config)
    code = daemon.stop()
    clear_retained(base)
    clear_retained(f"{base}_ha")
    assert code == 0, daemon.log()


async def _raw_request(watcher: Watcher, path: str, text: str) -> dict[str, Any]:
    """Publish `text` as is (it may be non-standard JSON); the next response on the path."""
    position = watcher.mark()
    await watcher.publish(f"bridge/request/{path}", text)
    message = await watcher.wait_for(f"bridge/response/{path}", after=position)
    response: dict[str, Any] = strict_json.loads(message.payload.decode())
    return response


def _error_of(response: dict[str, Any]) -> str:
    assert response["status"] == "error", response
    assert response["data"] == {}, response
    error: str = response["error"]
    return error


# --- options: only the allow-list ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"mqtt": {"server": "mqtt://attacker.example:1883"}}, "mqtt.server"),
        ({"mqtt": {"user": "someone"}}, "mqtt.user"),
        ({"mqtt": {"ca": "/etc/shadow"}}, "mqtt.ca"),
        ({"mqtt": {"base_topic": "hijacked"}}, "mqtt.base_topic"),
        ({"serial": {"port": "/dev/ttyS0"}}, "serial.port"),
        ({"serial": {"adapter": "zstack", "port": "tcp://attacker.example:6638"}}, "serial.adapter"),
        (
            {"ota": {"zigbee_ota_override_index_location": "/etc/shadow"}},
            "ota.zigbee_ota_override_index_location",
        ),
        ({"ota": {"image_folder": "/"}}, "ota.image_folder"),
        ({"homeassistant": {"discovery_topic": "elsewhere"}}, "homeassistant.discovery_topic"),
        ({"homeassistant": {"status_topic": "elsewhere/status"}}, "homeassistant.status_topic"),
    ],
)
async def test_options_refuse_what_only_the_file_may_set(
    running: Running, options: dict[str, Any], key: str
) -> None:
    before = running.config.read_bytes()
    async with watching(running.base) as watcher:
        response = await watcher.request("options", {"options": options})
        error = _error_of(response)
        assert error.startswith(f"Invalid options: '{key}' can only be set in the configuration file: ")
        assert response["transaction"]
    assert running.config.read_bytes() == before, "nothing written"


async def test_a_top_level_base_topic_is_refused_too(running: Running) -> None:
    async with watching(running.base) as watcher:
        error = _error_of(await watcher.request("options", {"options": {"base_topic": "hijacked"}}))
    assert error == "Invalid options: 'base_topic' is not supported by this daemon"


async def test_allowed_options_still_work(running: Running) -> None:
    async with watching(running.base) as watcher:
        position = watcher.mark()
        options = {"ota": {"update_check_interval": 60}, "settings_guard": {"check_interval": 30}}
        response = await watcher.request("options", {"options": options})
        assert response["status"] == "ok", response
        assert response["data"] == {"restart_required": True}
        info = await watcher.wait_for("bridge/info", lambda m: m.json()["restart_required"], after=position)
        assert info.json()["config"]["ota"]["update_check_interval"] == 60
    text = running.config.read_text(encoding="utf-8")
    assert "update_check_interval: 60" in text
    assert "check_interval: 30" in text


async def test_device_options_refuse_overrides_that_name_topics(running: Running) -> None:
    async with watching(running.base) as watcher:
        overrides = {"switch": {"command_topic": f"{running.base}/bridge/request/restart"}}
        request = {"id": running.ieee, "options": {"homeassistant": overrides}}
        error = _error_of(await watcher.request("device/options", request))
        assert error == (
            "Invalid options: 'homeassistant.switch.command_topic' can only be set in the configuration "
            "file: it points Home Assistant at another topic"
        )
        harmless = {"id": running.ieee, "options": {"homeassistant": {"expire_after": 30}}}
        response = await watcher.request("device/options", harmless)
        assert response["status"] == "ok", response
        assert response["data"]["to"]["homeassistant"] == {"expire_after": 30}


# --- non-standard JSON --------------------------------------------------------------------------------


async def test_a_set_with_non_standard_json_is_refused_and_answered(running: Running) -> None:
    async with watching(running.base) as watcher:
        position = watcher.mark()
        await watcher.publish(f"{running.ieee}/set", '{"state": NaN, "transaction": "t-nan"}')
        result = await watcher.wait_for(f"{running.ieee}/response/set", after=position)
        answer = strict_json.loads(result.payload.decode())
        assert answer["transaction"] == "t-nan"
        assert "NaN is not a JSON number (at 'state')" in _error_of(answer)
        await watcher.wait_log(
            lambda r: r["level"] == "error" and "NaN is not a JSON number" in r["message"], after=position
        )
        for payload, words in (
            ('{"state": "ON", "device_temperature": 1e400}', "1e400 is out of the range of a number"),
            ("Infinity", "Infinity is not a JSON number"),
            ("[" * 10_000 + "]" * 10_000, "nested deeper than 32 levels"),
        ):
            position = watcher.mark()
            topic = f"{running.ieee}/set/state" if payload == "Infinity" else f"{running.ieee}/set"
            await watcher.publish(topic, payload)
            record = await watcher.wait_log(lambda r: r["level"] == "error", after=position)
            assert words in record["message"], record
        # The daemon serves on.
        position = watcher.mark()
        await watcher.publish(f"{running.ieee}/set", json.dumps({"state": "ON"}))
        await watcher.wait_state(running.ieee, lambda s: s.get("state") == "ON", after=position)


async def test_requests_with_non_standard_json_are_refused_and_answered(running: Running) -> None:
    async with watching(running.base) as watcher:
        for number, words in (("NaN", "NaN is not a JSON number"), ("1e400", "out of the range")):
            transaction = uuid.uuid4().hex[:8]
            text = (
                f'{{"id": "{running.ieee}", "options": {{"device_temperature_calibration": {number}}}, '
                f'"transaction": "{transaction}"}}'
            )
            response = await _raw_request(watcher, "device/options", text)
            assert words in _error_of(response)
            assert response["transaction"] == transaction, "the transaction is echoed"
        # A timeout Python cannot divide would stop the next start.
        huge = '{"options": {"ota": {"image_block_request_timeout": 1' + "0" * 400 + "}}}"
        assert "(401 digits) is out of the range" in _error_of(await _raw_request(watcher, "options", huge))
        as_text = {"id": running.ieee, "options": {"device_temperature_calibration": "nan"}}
        response = await watcher.request("device/options", as_text)
        assert "Input should be a finite number" in _error_of(response)
        deep = await _raw_request(watcher, "options", '{"options":' + "[" * 10_000 + "]" * 10_000 + "}")
        assert "nested deeper than 32 levels" in _error_of(deep)
        # Not text: echoed in an error, it could not be encoded, and its failure stopped the daemon.
        lone = await _raw_request(watcher, "device/rename", '{"from": "x\\udc00", "to": "y"}')
        assert "lone UTF-16 surrogate" in _error_of(lone)
        health = await watcher.request("health_check", {})
        assert health["status"] == "ok", health
    async with watching(running.base) as fresh:
        info = await fresh.wait_for("bridge/info")
        config = strict_json.loads(info.payload.decode())["config"]
        assert "device_temperature_calibration" not in config["devices"].get(running.ieee, {})


# --- empty requests ------------------------------------------------------------------------------------


async def test_clearing_a_retained_command_or_request_is_ignored_quietly(running: Running) -> None:
    async with watching(running.base) as watcher:
        # Delivered live, a retained command is carried out (the broker clears the retain flag for
        # subscribers it already has); it would be ignored only on the daemon's next subscription.
        start = watcher.mark()
        await watcher.publish(f"{running.ieee}/set", '{"state": "ON"}', retain=True)
        await watcher.publish("bridge/request/health_check", "{}", retain=True)
        await watcher.wait_for("bridge/response/health_check", after=start)
        retained = [f"{running.ieee}/set", "bridge/request/health_check"]
        position = watcher.mark()
        # What a client sends to clear a retained message: an empty retained one.
        for topic in [*retained, f"{running.ieee}/set/state", f"{running.ieee}/get"]:
            await watcher.publish(topic, b"", retain=True)
        for path in ("restart", "permit_join", "device/remove"):
            await watcher.publish(f"bridge/request/{path}", b"")
        # The fence: a bad payload after them is logged as an error; everything before it is done.
        await watcher.publish(f"{running.ieee}/set", "{not json")
        fence = await watcher.wait_log(lambda r: "{not json" in r["message"], after=position)
        logged = [m.json() for m in watcher.since(position, "bridge/logging")]
        assert logged == [fence], logged
        responses = [m.topic for m in watcher.messages[position:] if "/bridge/response/" in m.topic]
        assert responses == []
        assert watcher.since(position, "bridge/state") == []
        # Read back at the next start: a retained discovery config nested 10,000 deep.
        deep = f"{running.base}_ha/switch/{running.ieee}/deep/config"
        await watcher.client.publish(deep, "[" * 10_000 + "]" * 10_000, retain=True, qos=1)
        # A real restart request as the fence: exactly one restart follows.
        assert (await watcher.request("restart", {}))["status"] == "ok"
        offline = await watcher.wait_for(
            "bridge/state", lambda m: m.json() == {"state": "offline"}, after=position
        )
        await watcher.wait_for(
            "bridge/state", lambda m: m.json() == {"state": "online"}, after=offline.seq, timeout=30
        )
        states = [m.json()["state"] for m in watcher.since(position, "bridge/state")]
        assert states.count("offline") == 1, states
        ignored = await watcher.wait_log(
            lambda r: r["level"] == "warning" and deep in r["message"], after=offline.seq
        )
        assert ignored["message"].endswith("nested deeper than 32 levels"), ignored
    assert running.daemon.running
