"""Zigbee2MQTT's configuration.yaml as Zigbee2MQTT reads it: secrets resolved, device files merged."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.migrate_samples import (
    BULB_IEEE,
    CHANNEL,
    EXT_PAN_ID,
    MQTT_PASSWORD,
    NETWORK_KEY,
    PAN_ID,
    SWITCH_IEEE,
    configuration,
    write_z2m_dir,
)
from z2m_qbkg40lm.migrate.errors import MigrationError
from z2m_qbkg40lm.migrate.z2m_config import read_z2m_config


def _write_config(folder: Path, text: str) -> None:
    (folder / "configuration.yaml").write_text(text, encoding="utf-8")


def test_quoted_secret_references_are_resolved_from_secret_yaml(tmp_path: Path) -> None:
    config = read_z2m_config(write_z2m_dir(tmp_path))

    assert config.section("mqtt")["password"] == MQTT_PASSWORD
    assert config.network.network_key == bytes(NETWORK_KEY)
    assert config.network.pan_id == PAN_ID
    assert config.network.ext_pan_id == bytes(EXT_PAN_ID)
    assert config.network.channel == CHANNEL


def test_secret_written_as_a_yaml_tag_is_resolved_too(tmp_path: Path) -> None:
    write_z2m_dir(tmp_path)
    text = (tmp_path / "configuration.yaml").read_text().replace("'!secret password'", "!secret password")
    assert "password: !secret password" in text
    _write_config(tmp_path, text)

    assert read_z2m_config(tmp_path).section("mqtt")["password"] == MQTT_PASSWORD


def test_a_reference_to_another_file_reads_that_file(tmp_path: Path) -> None:
    settings = configuration()
    settings["mqtt"]["user"] = "!broker login"
    write_z2m_dir(tmp_path, config=settings)
    (tmp_path / "broker.yaml").write_text("login: house\n")

    assert read_z2m_config(tmp_path).section("mqtt")["user"] == "house"


def test_devices_in_separate_files_are_merged_in_order(tmp_path: Path) -> None:
    write_z2m_dir(
        tmp_path, config=configuration(devices=["devices.yaml", "more_devices.yaml", "absent.yaml"])
    )
    (tmp_path / "devices.yaml").write_text(
        yaml.safe_dump({SWITCH_IEEE: {"friendly_name": "first", "retain": True}})
    )
    (tmp_path / "more_devices.yaml").write_text(
        yaml.safe_dump({SWITCH_IEEE: {"friendly_name": "hall"}, BULB_IEEE: {"friendly_name": "bulb"}})
    )

    devices = read_z2m_config(tmp_path).devices

    assert devices == {
        SWITCH_IEEE: {"friendly_name": "hall", "retain": True},
        BULB_IEEE: {"friendly_name": "bulb"},
    }


def test_generate_leaves_the_network_open(tmp_path: Path) -> None:
    settings = configuration()
    settings["advanced"].update(network_key="GENERATE", pan_id="GENERATE", ext_pan_id="GENERATE")
    write_z2m_dir(tmp_path, config=settings)

    network = read_z2m_config(tmp_path).network

    assert (network.network_key, network.pan_id, network.ext_pan_id) == (None, None, None)


def test_missing_configuration_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match=r"configuration\.yaml: missing"):
        read_z2m_config(tmp_path)


def test_missing_secret_file_names_it(tmp_path: Path) -> None:
    write_z2m_dir(tmp_path)
    (tmp_path / "secret.yaml").unlink()

    with pytest.raises(
        MigrationError, match=r"mqtt\.password refers to '!secret password', but .*secret\.yaml is missing"
    ):
        read_z2m_config(tmp_path)


def test_missing_secret_key_names_the_secret_file_and_the_key(tmp_path: Path) -> None:
    write_z2m_dir(tmp_path)
    (tmp_path / "secret.yaml").write_text("password: x\n")

    with pytest.raises(MigrationError, match=r"secret\.yaml: has no 'network_key'"):
        read_z2m_config(tmp_path)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    _write_config(tmp_path, "mqtt:\n  server: [unclosed\nserial: {}\n")

    with pytest.raises(MigrationError, match=r"configuration\.yaml: line \d+: not valid YAML"):
        read_z2m_config(tmp_path)


def test_text_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "configuration.yaml").write_bytes(b"mqtt:\n  user: caf\xe9\n")

    with pytest.raises(MigrationError, match=r"line 2 is not UTF-8"):
        read_z2m_config(tmp_path)


def test_a_list_at_the_top_is_refused(tmp_path: Path) -> None:
    _write_config(tmp_path, "- mqtt\n")

    with pytest.raises(MigrationError, match="expected a mapping of settings"):
        read_z2m_config(tmp_path)


def test_a_network_key_of_the_wrong_length_is_refused(tmp_path: Path) -> None:
    write_z2m_dir(tmp_path)
    (tmp_path / "secret.yaml").write_text(yaml.safe_dump({"password": "x", "network_key": NETWORK_KEY[:15]}))

    with pytest.raises(MigrationError, match=r"advanced\.network_key: expected 16 numbers"):
        read_z2m_config(tmp_path)


def test_a_device_entry_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    write_z2m_dir(tmp_path, config=configuration(devices={SWITCH_IEEE: "hall"}))

    with pytest.raises(MigrationError, match=f"devices.{SWITCH_IEEE}: expected a mapping"):
        read_z2m_config(tmp_path)
