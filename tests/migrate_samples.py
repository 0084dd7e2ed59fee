"""A Zigbee2MQTT 2.x data directory as Zigbee2MQTT writes it, made up for the migration tests.

The shapes follow zigbee-herdsman 10.x and Zigbee2MQTT 2.14 (one device per line in database.db,
the open coordinator backup with herdsman's unpadded PAN id, `!secret` references); the values
(addresses, keys) are invented here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

COORDINATOR_IEEE = "0x00124b0029c0ffee"
SWITCH_IEEE = "0x54ef441000c0ffee"
BULB_IEEE = "0x000b57fffec0ffee"
NETWORK_KEY = [0x3A, 0x91, 0x0C, 0x47, 0xD2, 0x5E, 0x18, 0xB6, 0x7F, 0x23, 0xE8, 0x04, 0x9D, 0x61, 0xCA, 0x35]
PAN_ID = 0x0ABC  # herdsman writes it "abc", without the leading zero
EXT_PAN_ID = [0xDD, 0x4E, 0x21, 0x9A, 0x07, 0xB3, 0x5C, 0xF0]
CHANNEL = 15
MQTT_PASSWORD = "s3cret-broker-pass"


def configuration(**overrides: Any) -> dict[str, Any]:
    """configuration.yaml as Zigbee2MQTT 2.x keeps it after its first start (GENERATE replaced)."""
    settings: dict[str, Any] = {
        "version": 5,
        "homeassistant": {"enabled": True, "discovery_topic": "ha_disc", "status_topic": "ha_disc/status"},
        "frontend": {"enabled": True, "port": 8080},
        "mqtt": {
            "base_topic": "z2m_home",
            "server": "mqtt://127.0.0.1:1883",
            "user": "z2m",
            "password": "!secret password",
            "include_device_information": True,
        },
        "serial": {"port": "tcp://127.0.0.1:6638", "adapter": "zstack", "baudrate": 115200},
        "advanced": {
            "log_level": "info",
            "channel": CHANNEL,
            "network_key": "!secret network_key",
            "pan_id": PAN_ID,
            "ext_pan_id": EXT_PAN_ID,
            "last_seen": "ISO_8601",
            "transmit_power": 20,
        },
        "availability": {"enabled": True, "active": {"timeout": 10}},
        "devices": {
            SWITCH_IEEE: {"friendly_name": "hall/switch", "retain": True, "power_outage_memory": True},
            BULB_IEEE: {"friendly_name": "kitchen bulb"},
        },
        "groups": {"1": {"friendly_name": "downstairs"}},
    }
    settings.update(overrides)
    return settings


def secrets() -> dict[str, Any]:
    """secret.yaml, which the configuration refers to."""
    return {"password": MQTT_PASSWORD, "network_key": NETWORK_KEY}


def _basic(model: str, manufacturer: str, power: int, **more: Any) -> dict[str, Any]:
    return {"attributes": {"modelId": model, "manufacturerName": manufacturer, "powerSource": power, **more}}


def database_entries() -> list[dict[str, Any]]:
    """database.db's objects: the coordinator, a QBKG40LM, a bulb the daemon does not support, a group."""
    coordinator = {
        "id": 1,
        "type": "Coordinator",
        "ieeeAddr": COORDINATOR_IEEE,
        "nwkAddr": 0,
        "manufId": 0,
        "epList": [1, 2],
        "endpoints": {
            "1": {"profId": 260, "epId": 1, "devId": 5, "inClusterList": [], "outClusterList": [],
                  "clusters": {}, "binds": [], "configuredReportings": [], "meta": {}},
            "2": {"profId": 257, "epId": 2, "devId": 5, "inClusterList": [], "outClusterList": [],
                  "clusters": {}, "binds": [], "configuredReportings": [], "meta": {}},
        },
        "interviewCompleted": True,
        "interviewState": "SUCCESSFUL",
        "meta": {},
    }  # fmt: skip
    switch = {
        "id": 2,
        "type": "Router",
        "ieeeAddr": SWITCH_IEEE,
        "nwkAddr": 0x1A2B,
        "manufId": 4447,
        "manufName": "LUMI",
        "powerSource": "Mains (single phase)",
        "modelId": "lumi.switch.b1nc01",
        "epList": [1, 41, 242],
        "endpoints": {
            "1": {
                "profId": 260, "epId": 1, "devId": 256,
                "inClusterList": [0, 2, 3, 4, 5, 6, 9, 64704], "outClusterList": [10, 25],
                "clusters": {
                    "genBasic": _basic("lumi.switch.b1nc01", "LUMI", 1, appVersion=29, dateCode="06-15-2022",
                                       swBuildId="0.0.0_0029", zclVersion=3),
                    "genOnOff": {"attributes": {"onOff": 1}},
                },
                "binds": [
                    {"cluster": 6, "type": "endpoint", "deviceIeeeAddress": COORDINATOR_IEEE, "endpointID": 1}
                ],
                "configuredReportings": [],
                "meta": {},
            },
            "41": {"profId": 260, "epId": 41, "devId": 0, "inClusterList": [18], "outClusterList": [],
                   "clusters": {}, "binds": [], "configuredReportings": [], "meta": {}},
            "242": {"profId": 41440, "epId": 242, "devId": 97, "inClusterList": [], "outClusterList": [33],
                    "clusters": {}, "binds": [], "configuredReportings": [], "meta": {}},
        },
        "appVersion": 29,
        "stackVersion": 2,
        "hwVersion": 1,
        "dateCode": "06-15-2022",
        "swBuildId": "0.0.0_0029",
        "zclVersion": 3,
        "interviewCompleted": True,
        "interviewState": "SUCCESSFUL",
        "meta": {"configured": 332242049},
        "lastSeen": 1764950000000,
    }  # fmt: skip
    bulb = {
        "id": 3,
        "type": "Router",
        "ieeeAddr": BULB_IEEE,
        "nwkAddr": 0x5C3D,
        "manufId": 4476,
        "manufName": "IKEA of Sweden",
        "powerSource": "Mains (single phase)",
        "modelId": "TRADFRI bulb E27 WW 806lm",
        "epList": [1],
        "endpoints": {
            "1": {"profId": 260, "epId": 1, "devId": 256, "inClusterList": [0, 3, 4, 5, 6, 8, 4096],
                  "outClusterList": [5, 25, 32, 4096],
                  "clusters": {"genBasic": _basic("TRADFRI bulb E27 WW 806lm", "IKEA of Sweden", 1)},
                  "binds": [], "configuredReportings": [], "meta": {}},
        },
        "interviewCompleted": True,
        "interviewState": "SUCCESSFUL",
        "meta": {},
        "lastSeen": 1764950100000,
    }  # fmt: skip
    group = {"id": 4, "type": "Group", "groupID": 1, "members": [], "meta": {}}
    return [coordinator, switch, bulb, group]


def database_text(entries: list[dict[str, Any]] | None = None) -> str:
    """database.db's text as herdsman writes it: compact lines, no newline after the last."""
    return "\n".join(json.dumps(entry, separators=(",", ":")) for entry in entries or database_entries())


def coordinator_backup(**overrides: Any) -> dict[str, Any]:
    """coordinator_backup.json as zigbee-herdsman's Z-Stack adapter writes it."""
    backup: dict[str, Any] = {
        "metadata": {
            "format": "zigpy/open-coordinator-backup",
            "version": 1,
            "source": "zigbee-herdsman@10.9.2",
            "internal": {"date": "2026-12-05T20:00:00.000Z", "znpVersion": 2},
        },
        "stack_specific": {"zstack": {"tclk_seed": "a1b2c3d4e5f60718293a4b5c6d7e8f90"}},
        "coordinator_ieee": COORDINATOR_IEEE.removeprefix("0x"),
        "pan_id": f"{PAN_ID:x}",
        "extended_pan_id": bytes(EXT_PAN_ID).hex(),
        "nwk_update_id": 0,
        "security_level": 5,
        "channel": CHANNEL,
        "channel_mask": [CHANNEL],
        "network_key": {"key": bytes(NETWORK_KEY).hex(), "sequence_number": 0, "frame_counter": 48213},
        "devices": [
            {"nwk_address": "1a2b", "ieee_address": SWITCH_IEEE.removeprefix("0x"), "is_child": False,
             "link_key": {"key": "5f8e2d1c0b9a8f7e6d5c4b3a29181706", "rx_counter": 0, "tx_counter": 12}},
            {"nwk_address": "5c3d", "ieee_address": BULB_IEEE.removeprefix("0x"), "is_child": False},
        ],
    }  # fmt: skip
    backup.update(overrides)
    return backup


def state() -> dict[str, Any]:
    """state.json: the switch's and the bulb's last states, and a group's."""
    return {
        SWITCH_IEEE: {
            "state": "ON",
            "linkquality": 120,
            "operation_mode": "control_relay",
            "power_outage_memory": True,
            "device_temperature": 31,
            "update": {"state": "idle", "installed_version": 29, "latest_version": 29},
        },
        BULB_IEEE: {"state": "OFF", "brightness": 200, "linkquality": 90},
        "1": {"state": "OFF"},
    }


def write_z2m_dir(folder: Path, *, config: dict[str, Any] | None = None) -> Path:
    """Write a whole Zigbee2MQTT data directory into `folder`; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config or configuration(), sort_keys=False)
    (folder / "configuration.yaml").write_text(text, encoding="utf-8")
    (folder / "secret.yaml").write_text(yaml.safe_dump(secrets()), encoding="utf-8")
    (folder / "database.db").write_text(database_text(), encoding="utf-8")
    (folder / "coordinator_backup.json").write_text(
        json.dumps(coordinator_backup(), indent=4), encoding="utf-8"
    )
    (folder / "state.json").write_text(json.dumps(state(), indent=4), encoding="utf-8")
    return folder


def write_adapter_holding_the_network(data: Path) -> None:
    """The virtual adapter's state as the adapter Zigbee2MQTT ran on: the network of the imported
    backup (`<data>/network_backup.json`), the switch joined to it."""
    from z2m_qbkg40lm.migrate.coordinator_backup import read_backup  # imports zigpy

    backup = read_backup(data / "network_backup.json").network
    switch = {
        "ieee": ":".join(SWITCH_IEEE[i : i + 2] for i in range(2, 18, 2)),
        "nwk": "0x1a2b",
        "joined": True,
    }
    adapter = {
        "version": 1,
        "coordinator_ieee": str(backup.node_info.ieee),
        "network": {"network_info": backup.network_info.as_dict(), "node_info": backup.node_info.as_dict()},
        "switches": [switch],
    }
    (data / "virtual_adapter.json").write_text(json.dumps(adapter))
