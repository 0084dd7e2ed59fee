"""Zigbee2MQTT and this daemon side by side: one scenario (tests/side_by_side.py) on the Z-Stack
emulator, and the two MQTT transcripts compared (tests/transcript_facts.py).

Zigbee2MQTT's transcript is kept in tests/data (normalised), so the daemon's side runs in every
CI run; with `Z2M_ZIGBEE2MQTT=1` (Node.js >= 20 and npm at hand) Zigbee2MQTT itself plays the
scenario too, and its fresh transcript must still say what the kept one says. Every difference
between the two programs is either fixed in the daemon or in `EXPLAINED`, each entry with its
reason and the README's "Differences from Zigbee2MQTT" entry that tells users; a new difference
fails the test, and so does an entry nothing needs any more.

    Z2M_ZIGBEE2MQTT=1 .venv/bin/python -m pytest tests/test_zigbee2mqtt_side_by_side.py
    .venv/bin/python -m tests.side_by_side            # record Zigbee2MQTT's transcript again
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests import zigbee2mqtt_support
from tests.side_by_side import DAEMON, RECORDING, ZIGBEE2MQTT, Names, Run, load, play, transcript
from tests.transcript_facts import (
    ABSENT,
    Difference,
    Explained,
    differences,
    facts,
    flatten,
    unexplained,
    unused,
)
from tests.zigbee2mqtt_support import LIVE_ENV, ZIGBEE2MQTT_VERSION, live_requested, zigbee2mqtt_or_skip

HA_CONFIG = r"HA/\w+/(IEEE_DEVICE|BASE_CODES_IEEE_COORDINATOR)/\w+/config"
BRIDGE_ENTITY = r"HA/\w+/BASE_CODES_IEEE_COORDINATOR/\w+/config"
DEVICE_ENTITY = r"HA/\w+/IEEE_DEVICE/\w+/config"
SETTINGS = r"(device_temperature|flip_indicator_light|operation_mode|power_outage_memory|state)"
PRECISION_OPTION = "The `device_temperature_precision` option"

EXPLAINED: list[Explained] = [
    # bridge/info
    Explained(
        r"BASE/bridge/info config([.\[].*)?",
        "settings of Zigbee2MQTT's that the daemon does not have (frontend, groups, map options, "
        "log files, external converters, ...)",
        "`config` and `config_schema` describe this daemon's settings",
        daemon=ABSENT,
    ),
    Explained(
        r"BASE/bridge/info config([.\[].*)?",
        "settings of the daemon's that Zigbee2MQTT does not have (virtual, settings_guard, the MQTT "
        "session expiry, availability.active.retry_delay, serial.baudrate/rtscts echoed)",
        "`config` and `config_schema` describe this daemon's settings",
        zigbee2mqtt=ABSENT,
    ),
    Explained(
        r"BASE/bridge/info config\.ota\.image_block_request_timeout",
        "the daemon's default is zigpy's own limit, 30 s without a block request",
        "`config` and `config_schema` describe this daemon's settings",
        zigbee2mqtt="150000",
        daemon="30000",
    ),
    Explained(
        r"BASE/bridge/info config_schema([.\[].*)?",
        "each program's JSON schema of its own settings",
        "`config` and `config_schema` describe this daemon's settings",
    ),
    Explained(
        r"BASE/bridge/info (commit|zigbee_herdsman(_converters)?\.version|os\..*)",
        "Zigbee2MQTT's build, library versions and host; the daemon has none of them",
        "`bridge/info` has no `commit`",
        daemon=ABSENT,
    ),
    Explained(
        r"BASE/bridge/info coordinator\.(type|meta\..*)",
        "the coordinator as each radio library describes it: herdsman's MT version fields "
        "(majorrel, minorrel, maintrel, product, transportrev, a numeric revision, type ZStack3x0), "
        "zigpy's manufacturer, model and 'Z-Stack <build>' (type zStack3x0)",
        "The coordinator as the radio library describes it",
    ),
    # bridge/devices and the interview event
    Explained(
        r"BASE/bridge/devices \[IEEE_COORDINATOR\]\.(endpoints\..*|manufacturer|model_id)",
        "the coordinator's endpoints are those each radio library registers on the stick "
        "(herdsman: 1-13, 47, 110, 239, 242; zigpy-znp: 1, 2, 242 with their clusters); zigpy "
        "also names the coordinator's manufacturer and model",
        "The coordinator as the radio library describes it",
    ),
    Explained(
        r"(BASE/bridge/devices \[IEEE_DEVICE\]|event device_interview\[successful\] data)"
        r"\.definition\.options(\[\]|\[device_temperature_precision\]\..*)",
        "the daemon keeps Zigbee2MQTT 1.x's device_temperature_precision option, which 2.x dropped",
        PRECISION_OPTION,
    ),
    Explained(
        r"event device_announce\[\] .*",
        "on a first join herdsman reports the switch's Device_annce as an announcement too; zigpy "
        "takes it as part of the join, so the daemon publishes device_announce only when a known "
        "device announces itself again (power cycle, rejoin)",
        "`device_announce` only for a device that announces itself again",
        daemon=ABSENT,
    ),
    Explained(
        r"topic BASE/bridge/(converters|definitions|extensions)|BASE/bridge/(definitions keys|extensions \.)",
        "Zigbee2MQTT's frontend topics (the ZCL dictionary, external converters and extensions)",
        "Not published: `bridge/definitions`",
        daemon=ABSENT,
    ),
    # the device's state
    Explained(
        rf"state-key {SETTINGS}",
        "Zigbee2MQTT publishes every expose, null until known; the daemon publishes known values only",
        "Unknown values are left out of the state",
        zigbee2mqtt=r"NoneType,\w+",
    ),
    Explained(
        rf"checkpoint \w+ {SETTINGS}",
        "the same nulls; and the daemon reads the switch's settings when it configures it, so they "
        "are known from the start where Zigbee2MQTT has null until the switch reports them",
        "Unknown values are left out of the state",
        zigbee2mqtt="null",
    ),
    Explained(
        r"state-key update|checkpoint \w+ update\..*",
        "Zigbee2MQTT puts `update` (installed -1, latest -1, state null) in every state before any "
        "firmware check; the daemon adds `update` once a check or an update has something to say",
        "`update` appears in the state after the first firmware check",
        daemon=ABSENT,
    ),
    # Home Assistant discovery
    Explained(
        rf"{HA_CONFIG} origin\.(name|sw|sw_version|url)",
        "`origin` names the program that publishes the config (Home Assistant shows it); the "
        "daemon spells the version sw_version (Home Assistant reads both spellings)",
        "`origin` names this daemon",
    ),
    Explained(
        rf"{BRIDGE_ENTITY} device\.hw_version",
        "the bridge device's hardware version is the coordinator type (and herdsman's revision)",
        "The coordinator as the radio library describes it",
    ),
    Explained(
        rf"{DEVICE_ENTITY} device\.hw_version",
        "Zigbee2MQTT gives the Basic cluster's hwVersion; the daemon does not read it",
        "no `hw_version` in a device's discovery block",
        zigbee2mqtt="1",
        daemon=ABSENT,
    ),
    Explained(
        r"(topic )?HA/sensor/BASE_CODES_IEEE_COORDINATOR/network_map/config( .*)?",
        "the network map sensor reads bridge/response/networkmap, a request the daemon does not serve",
        "Zigbee2MQTT's network map sensor is left out",
        daemon=ABSENT,
    ),
    Explained(
        r"(topic )?HA/event/IEEE_DEVICE/action/config( .*)?",
        "the daemon always publishes the press event entity (Zigbee2MQTT only with "
        "experimental_event_entities)",
        "the press `event` entity is always published",
        zigbee2mqtt=ABSENT,
    ),
    Explained(
        r"HA/button/BASE_CODES_IEEE_COORDINATOR/restart/config payload_press",
        "an empty request is how a retained one is cleared, so the daemon's restart button sends {}",
        "a restart button (it sends `{}`",
        zigbee2mqtt='""',
        daemon='"{}"',
    ),
    Explained(
        r"HA/update/IEEE_DEVICE/update/config value_template",
        "the daemon's template tolerates a state without `update` (see above); same fields",
        "`update` appears in the state after the first firmware check",
    ),
]
"""Every difference between Zigbee2MQTT's transcript and the daemon's, reviewed. Each `readme`
phrase is in the README's "Differences from Zigbee2MQTT"."""


@pytest.fixture(scope="module")
def recording() -> dict[str, Any]:
    """Zigbee2MQTT's kept transcript (the test is skipped, before anything runs, without one)."""
    return _recording_or_skip()


def _recording_or_skip() -> dict[str, Any]:
    if not RECORDING.exists():
        pytest.skip(
            f"no recording of Zigbee2MQTT {ZIGBEE2MQTT_VERSION} yet (python -m tests.side_by_side records it)"
        )
    return load(RECORDING)


def _report(found: list[Difference]) -> str:
    return "\n".join(str(difference) for difference in found)


@pytest.fixture(scope="module")
def daemon_transcript(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The daemon's transcript of the scenario (played once for the module)."""
    run = Run(DAEMON, tmp_path_factory.mktemp("daemon"))
    messages = asyncio.run(play(run))
    return transcript(run, messages, "daemon")


# --- the comparison ------------------------------------------------------------------------------


def test_daemon_transcript_matches_zigbee2mqtt_or_is_explained(
    recording: dict[str, Any], daemon_transcript: dict[str, Any]
) -> None:
    found = differences(facts(recording), facts(daemon_transcript))
    new = unexplained(found, EXPLAINED)
    assert not new, f"{len(new)} differences from Zigbee2MQTT nobody explained:\n{_report(new)}"
    stale = unused(found, EXPLAINED)
    assert not stale, (
        "explained differences that are gone (remove them here and in the README):\n"
        + "\n".join(entry.pattern for entry in stale)
    )


def test_every_explanation_names_a_readme_entry() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Differences from Zigbee2MQTT", 1)[1].split("\n## ", 1)[0]
    missing = [entry.readme for entry in EXPLAINED if entry.readme not in section]
    assert not missing, missing


@pytest.mark.skipif(not live_requested(), reason=f"Zigbee2MQTT itself runs only with {LIVE_ENV}=1")
def test_zigbee2mqtt_still_says_what_the_recording_says(tmp_path: Path) -> None:
    zigbee2mqtt_or_skip()
    recorded = _recording_or_skip()
    run = Run(ZIGBEE2MQTT, tmp_path)
    fresh = transcript(run, asyncio.run(play(run)), ZIGBEE2MQTT_VERSION)
    changed = differences(facts(recorded), facts(fresh))
    assert not changed, f"Zigbee2MQTT no longer does what tests/data records:\n{_report(changed)}"


# --- the parts, without a broker -----------------------------------------------------------------


def test_names_replace_the_runs_own_addresses_topics_and_volatile_values() -> None:
    names = Names("z2mtest_ab", "ha_cd", "0x54ef441000000001", "0x00124b0000000002")
    payload = {
        "ieee_address": "0x54ef441000000001",
        "unique_id": "0x54ef441000000001_switch_zigbee2mqtt",
        "state_topic": "z2mtest_ab/hall_switch",
        "linkquality": 160,
        "last_seen": "2026-12-05T21:00:00.000Z",
        "port": "tcp://127.0.0.1:40123",
        "os": {"cpus": "2x Intel", "memory_mb": 3900},
        "origin": {"name": "Zigbee2MQTT", "sw": "2.14.1"},
        "list": [{"identifiers": ["zigbee2mqtt_bridge_0x00124b0000000002"]}],
    }
    assert names.payload(payload) == {
        "ieee_address": "IEEE_DEVICE",
        "unique_id": "IEEE_DEVICE_switch_zigbee2mqtt",
        "state_topic": "BASE/hall_switch",
        "linkquality": "<int>",
        "last_seen": "<str>",
        "port": "tcp://EMULATOR",
        "os": {"cpus": "<str>", "memory_mb": "<int>"},
        "origin": {"name": "Zigbee2MQTT", "sw": "<version>"},
        "list": [{"identifiers": ["zigbee2mqtt_bridge_IEEE_COORDINATOR"]}],
    }
    codes = "".join(str(ord(c)) for c in "z2mtest_ab")
    assert names.text(f"ha_cd/switch/{codes}_0x00124b0000000002/permit_join/config") == (
        "HA/switch/BASE_CODES_IEEE_COORDINATOR/permit_join/config"
    )


def test_lists_of_named_items_flatten_by_name_with_their_order_apart() -> None:
    exposes = [{"type": "switch"}, {"property": "action", "type": "enum"}]
    assert dict(flatten({"exposes": exposes})) == {
        "exposes[]": '["switch", "action"]',
        "exposes[switch].type": '"switch"',
        "exposes[action].property": '"action"',
        "exposes[action].type": '"enum"',
    }
    assert dict(flatten({"a": [1, "1"], "b": {}, "c": []})) == {
        "a[0]": "1",
        "a[1]": '"1"',
        "b": "{}",
        "c": "[]",
    }


def _transcript(*messages: tuple[str, bool, Any], **checkpoints: Any) -> dict[str, Any]:
    return {
        "steps": [
            {"step": "all", "messages": [{"topic": t, "retain": r, "payload": p} for t, r, p in messages]}
        ],
        "checkpoints": checkpoints,
    }


def test_facts_keep_behaviour_and_leave_out_timing_and_the_scenarios_own_messages() -> None:
    shown = facts(
        _transcript(
            ("BASE/bridge/request/permit_join", False, {"time": 60}),
            ("BASE/bridge/emulator", True, {"state": "online"}),
            ("BASE/bridge/logging", False, {"level": "info", "message": "x"}),
            ("BASE/bridge/info", True, {"permit_join": False}),
            ("BASE/bridge/info", True, {"permit_join": True}),
            ("BASE/hall_switch", False, {"state": "ON"}),
            ("BASE/hall_switch", False, {"state": "OFF", "action": "single"}),
            ("BASE/bridge/response/permit_join", False, {"status": "ok", "data": {"time": 60}}),
            ("BASE/bridge/event", False, {"type": "device_joined", "data": {"ieee_address": "IEEE_DEVICE"}}),
            ("BASE/hall_switch/action", False, "single"),
            ("HA/switch/IEEE_DEVICE/switch/config", True, ""),
            state_on={"state": "ON"},
        )
    )
    assert shown == {
        "topic BASE/bridge/info": "retained",
        "topic BASE/hall_switch": "not retained",
        "topic BASE/bridge/response/permit_join": "not retained",
        "topic BASE/bridge/event": "not retained",
        "clear HA/switch/IEEE_DEVICE/switch/config": "yes",
        "BASE/bridge/info permit_join": "true",
        "state-key state": "str",
        "state-key action": "str",
        "BASE/bridge/response/permit_join#0 data.time": "60",
        "BASE/bridge/response/permit_join#0 status": '"ok"',
        "event device_joined[] data.ieee_address": '"IEEE_DEVICE"',
        "event device_joined[] type": '"device_joined"',
        "topic BASE/hall_switch/action": "not retained",
        "BASE/hall_switch/action payloads": '["single"]',
        "checkpoint state_on state": '"ON"',
    }


def test_a_difference_nobody_explained_is_reported_and_a_stale_explanation_too() -> None:
    found = differences({"a 1": "1", "b": "true", "same": "0"}, {"a 1": '"1"', "c": "2", "same": "0"})
    assert [str(d) for d in found] == [
        'a 1: Zigbee2MQTT 1, daemon "1"',
        "b: Zigbee2MQTT true, daemon None",
        "c: Zigbee2MQTT None, daemon 2",
    ]
    entries = [
        Explained(r"a .*", "why", "entry", zigbee2mqtt="1", daemon='"1"'),
        Explained(r"b", "a value change is not covered", "entry", zigbee2mqtt="false"),
        Explained(r"c", "why", "entry", zigbee2mqtt=ABSENT),
        Explained(r"gone", "fixed since", "entry"),
    ]
    assert [d.key for d in unexplained(found, entries)] == ["b"]
    assert [e.pattern for e in unused(found, entries)] == ["b", "gone"]


def test_without_node_zigbee2mqtt_is_unavailable_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zigbee2mqtt_support.shutil, "which", lambda name: None)
    with pytest.raises(zigbee2mqtt_support.Unavailable, match=r"Node\.js is not installed"):
        zigbee2mqtt_support.ensure_zigbee2mqtt()


def test_the_cache_folder_and_the_installed_version_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(zigbee2mqtt_support.CACHE_ENV, str(tmp_path))
    assert zigbee2mqtt_support.install_dir() == tmp_path
    assert zigbee2mqtt_support.installed_version() is None
    manifest = tmp_path / "node_modules" / "zigbee2mqtt" / "package.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"name": "zigbee2mqtt", "version": "2.14.1"}', encoding="utf-8")
    assert zigbee2mqtt_support.installed_version() == ZIGBEE2MQTT_VERSION
