"""The pure builders of `bridge/devices` elements and `bridge/info` (no daemon, no broker)."""

from __future__ import annotations

import json
from pathlib import Path

from z2m_qbkg40lm.bridge.bridge_info import (
    info_payload,
    running_config,
    server_without_credentials,
    whole_numbers_as_integers,
    without_secrets,
)
from z2m_qbkg40lm.bridge.devices_info import (
    cluster_name,
    coordinator_json,
    device_json,
    interview_state,
)
from z2m_qbkg40lm.config import DeviceConfig, parse_config
from z2m_qbkg40lm.devices.qbkg40lm import QBKG40LM
from z2m_qbkg40lm.zigbee.radio import DeviceDetails, EndpointDetails

IEEE = "0x54ef441000abcdef"
KEY = [11, 22, 33, 44, 55, 66, 77, 88, 99, 110, 121, 132, 143, 154, 165, 176]

SWITCH = DeviceDetails(
    ieee=IEEE,
    nwk=0x1234,
    logical_type="Router",
    manufacturer="LUMI",
    model_id="lumi.switch.b1nc01",
    power_source=1,
    date_code="06-15-2022",
    software_build_id="0.0.0_0029",
    interviewed=True,
    interviewing=False,
    endpoints=(
        EndpointDetails(1, 0x0104, 0x0100, (0x0000, 0x0006, 0xFCC0, 0x1234), (0x000A, 0x0019)),
        EndpointDetails(41, 0x0104, 0x0000, (0x0012,), ()),
    ),
)


def test_clusters_get_herdsman_names_and_unknown_ones_their_number() -> None:
    assert cluster_name(0x0000) == "genBasic"
    assert cluster_name(0x0012) == "genMultistateInput"
    assert cluster_name(0xFCC0) == "manuSpecificLumi"
    assert cluster_name(0x1234) == "4660"


def test_a_supported_device_element() -> None:
    element = device_json(
        SWITCH, friendly_name="hall", definition=QBKG40LM, state="SUCCESSFUL", description="Hall"
    )
    assert element["friendly_name"] == "hall"
    assert element["type"] == "Router"
    assert element["network_address"] == 0x1234
    assert element["power_source"] == "Mains (single phase)"
    assert element["date_code"] == "06-15-2022"
    assert element["software_build_id"] == "0.0.0_0029"
    assert element["description"] == "Hall"
    assert (element["interview_state"], element["interview_completed"], element["interviewing"]) == (
        "SUCCESSFUL",
        True,
        False,
    )
    assert element["endpoints"]["1"]["clusters"] == {
        "input": ["genBasic", "genOnOff", "manuSpecificLumi", "4660"],
        "output": ["genTime", "genOta"],
    }
    assert element["endpoints"]["41"] == {
        "bindings": [],
        "clusters": {"input": ["genMultistateInput"], "output": []},
        "configured_reportings": [],
        "scenes": [],
    }
    definition = element["definition"]
    assert (definition["model"], definition["vendor"], definition["source"]) == (
        "QBKG40LM",
        "Aqara",
        "native",
    )
    assert [e.get("name", e["type"]) for e in definition["exposes"]][-1] == "linkquality"
    json.dumps(element)  # plain JSON all the way down


def test_unknown_details_are_left_out_and_unsupported_devices_have_no_definition() -> None:
    bare = DeviceDetails(IEEE, 7, None, None, None, None, None, None, False, True, ())
    element = device_json(bare, friendly_name=IEEE, definition=None, state=interview_state(bare))
    for key in ("date_code", "manufacturer", "model_id", "power_source", "software_build_id", "definition"):
        assert key not in element
    assert element["supported"] is False
    assert element["type"] == "Unknown"
    assert element["interview_state"] == "IN_PROGRESS"
    assert interview_state(DeviceDetails(IEEE, 7, None, None, None, None, None, None, False, False, ())) == (
        "PENDING"
    )


def test_the_coordinator_element() -> None:
    details = DeviceDetails(
        "0x00124b0012345678", 0, "Coordinator", None, None, None, None, None, True, False, ()
    )
    element = coordinator_json(details)
    assert element["friendly_name"] == "Coordinator"
    assert element["type"] == "Coordinator"
    assert element["supported"] is True
    assert "definition" not in element


def test_secrets_are_dropped_at_any_depth() -> None:
    tree = {
        "mqtt": {"password": "x", "user": "u"},
        "advanced": {"network_key": KEY, "pan_id": 5},
        "frontend": {"auth_token": "t", "nested": [{"client_secret": "s", "ok": 1}]},
    }
    assert without_secrets(tree) == {
        "mqtt": {"user": "u"},
        "advanced": {"pan_id": 5},
        "frontend": {"nested": [{"ok": 1}]},
    }


def test_credentials_in_the_broker_url_are_cut() -> None:
    assert server_without_credentials("mqtt://me:pw@broker:1883") == "mqtt://broker:1883"
    assert server_without_credentials("mqtts://broker") == "mqtts://broker"


def test_running_config_has_no_secret_and_the_current_settings() -> None:
    loaded = parse_config(
        {
            "mqtt": {"server": "mqtt://me:pw-123@broker", "password": "pw-123", "user": "me"},
            "serial": {"adapter": "virtual"},
            "advanced": {"network_key": KEY, "log_level": "info"},
        },
        Path("c.yaml"),
    )
    config = running_config(
        loaded.config,
        log_level="debug",
        devices={IEEE: DeviceConfig(friendly_name="hall", retain=True)},
        changes={"advanced": {"last_seen": "epoch"}},
    )
    text = json.dumps(config)
    assert "pw-123" not in text
    assert json.dumps(KEY) not in text
    assert config["mqtt"]["server"] == "mqtt://broker"
    assert config["advanced"]["log_level"] == "debug"
    assert config["advanced"]["last_seen"] == "epoch"
    assert config["devices"] == {IEEE: {"friendly_name": "hall", "retain": True}}
    # Whole numbers as Zigbee2MQTT shows them (10, not 10.0); fractions stay.
    assert config["availability"]["active"]["timeout"] == 10
    assert isinstance(config["availability"]["active"]["timeout"], int)
    assert whole_numbers_as_integers({"a": [0.5, 2.0, True], "b": 1500.0}) == {"a": [0.5, 2, True], "b": 1500}


def test_info_has_permit_join_end_only_while_open() -> None:
    common = {
        "version": "0.1.0",
        "coordinator": {"ieee_address": "0x00124b0012345678", "meta": {}, "type": "zStack3x0"},
        "network": {"channel": 11, "extended_pan_id": "0xdddddddddddddddd", "pan_id": 6754},
        "log_level": "info",
        "restart_required": False,
        "mqtt_server": "mqtt://u:p@localhost",
        "mqtt_version": 4,
        "config": {},
    }
    closed = info_payload(permit_join_end_ms=None, **common)
    assert closed["permit_join"] is False
    assert "permit_join_end" not in closed
    assert closed["mqtt"] == {"server": "mqtt://localhost", "version": 4}
    opened = info_payload(permit_join_end_ms=1_800_000_000_000, **common)
    assert opened["permit_join"] is True
    assert opened["permit_join_end"] == 1_800_000_000_000
