"""The configuration file: validation messages, check-config, and GENERATE kept once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from z2m_qbkg40lm.config import (
    WELL_KNOWN_NETWORK_KEY,
    AdvancedConfig,
    ConfigError,
    load_config,
    parse_config,
    resolve_network,
)

MINIMAL = {"mqtt": {"server": "mqtt://localhost"}, "serial": {"adapter": "virtual"}}


def problems(raw: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, Path("configuration.yaml"))
    return caught.value.problems


def test_minimal_config_takes_zigbee2mqtt_defaults() -> None:
    config = parse_config(MINIMAL, Path("c.yaml")).config
    assert config.mqtt.base_topic == "zigbee2mqtt"
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("localhost", 1883, False)
    assert config.advanced.network_key == "GENERATE"
    assert config.advanced.channel == 11
    assert config.advanced.cache_state is True
    assert config.virtual.switches == 1


def test_mqtts_defaults_to_port_8883() -> None:
    config = parse_config({**MINIMAL, "mqtt": {"server": "mqtts://broker.lan"}}, Path("c.yaml")).config
    assert (config.mqtt.port, config.mqtt.tls) == (8883, True)


def test_each_problem_is_one_line_naming_the_key() -> None:
    found = problems(
        {
            "mqtt": {"server": "http://broker", "keepalive": "often", "colour": "blue"},
            "serial": {"adapter": "zigate"},
            "advanced": {"network_key": [1, 2, 3], "pan_id": 0, "channel": 30},
            "devices": {"0x1234": {"friendly_name": "x"}},
        }
    )
    assert any(line.startswith("mqtt.server: ") and "mqtt://" in line for line in found), found
    assert any(line.startswith("mqtt.keepalive: ") for line in found), found
    assert "mqtt.colour: unknown key" in found
    assert any(line.startswith("serial.adapter: ") for line in found), found
    assert any(line.startswith("advanced.network_key: ") and "16 bytes" in line for line in found), found
    assert any(line.startswith("advanced.pan_id: ") for line in found), found
    assert any(line.startswith("advanced.channel: ") for line in found), found
    assert any(line.startswith("devices: ") and "0x1234" in line for line in found), found


def test_missing_sections_are_named() -> None:
    assert problems({}) == ["mqtt: required", "serial: required"]


def test_hardware_adapter_needs_a_port() -> None:
    found = problems({**MINIMAL, "serial": {"adapter": "zstack"}})
    assert found == ["serial: port is required for adapter 'zstack' (e.g. /dev/ttyUSB0)"]


def test_the_well_known_network_key_is_refused() -> None:
    found = problems({**MINIMAL, "advanced": {"network_key": list(WELL_KNOWN_NETWORK_KEY)}})
    assert len(found) == 1
    assert found[0].startswith("advanced.network_key: ") and "GENERATE" in found[0]


def test_friendly_names_must_be_usable_topics() -> None:
    for name in ("/lead", "trail/", "a+b", "x/set", "lamp/2", ""):
        found = problems({**MINIMAL, "devices": {"0x54ef441000abcdef": {"friendly_name": name}}})
        assert found and found[0].startswith("devices.0x54ef441000abcdef.friendly_name: "), (name, found)


def test_duplicate_friendly_names_are_refused() -> None:
    devices = {"0x54ef441000000001": {"friendly_name": "a"}, "0x54ef441000000002": {"friendly_name": "a"}}
    found = problems({**MINIMAL, "devices": devices})
    assert any("'a'" in line for line in found), found


def test_zigbee2mqtt_sections_not_implemented_are_warnings() -> None:
    loaded = parse_config({**MINIMAL, "frontend": {"port": 8080}, "permit_join": True}, Path("c.yaml"))
    assert any(w.startswith("frontend: ") for w in loaded.warnings)
    assert any(w.startswith("permit_join: ") for w in loaded.warnings)


def test_yaml_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "configuration.yaml"
    path.write_text("mqtt:\n  server: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "line" in caught.value.problems[0]


def test_generate_is_random_once_and_kept(tmp_path: Path) -> None:
    first = resolve_network(AdvancedConfig(), tmp_path)
    second = resolve_network(AdvancedConfig(), tmp_path)
    assert first == second
    assert len(first.network_key) == 16 and len(first.ext_pan_id) == 8
    assert first.network_key != bytes(WELL_KNOWN_NETWORK_KEY)
    assert 1 <= first.pan_id <= 0xFFFE
    secrets_file = tmp_path / "secrets.yaml"
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load(secrets_file.read_text())["network_key"] == list(first.network_key)
    other = resolve_network(AdvancedConfig(), tmp_path / "elsewhere")
    assert other.network_key != first.network_key


def test_configured_values_win_over_the_secrets_file(tmp_path: Path) -> None:
    key = list(range(16))
    settings = resolve_network(AdvancedConfig(network_key=key, pan_id=0x1A62, channel=20), tmp_path)
    assert settings.network_key == bytes(key)
    assert settings.pan_id == 0x1A62
    assert settings.channel == 20


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "z2m_qbkg40lm", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_check_config_accepts_the_example(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "config.example.yaml"
    result = run_cli("check-config", "--config", str(example))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_config_reports_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "configuration.yaml"
    path.write_text(
        yaml.safe_dump({"mqtt": {"server": "ftp://x", "bogus": 1}, "serial": {"adapter": "virtual"}}),
        encoding="utf-8",
    )
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("mqtt.server: ")
    assert lines[1] == "mqtt.bogus: unknown key"


def test_check_config_on_a_missing_file(tmp_path: Path) -> None:
    result = run_cli("check-config", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr


def test_secrets_never_reach_the_log(tmp_path: Path) -> None:
    """A daemon that cannot reach its broker logs the broker, never the password."""
    path = tmp_path / "configuration.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "mqtt": {"server": "mqtt://127.0.0.1:1", "user": "u", "password": "hunter2-secret"},
                "serial": {"adapter": "zstack", "port": "/dev/does-not-exist"},
            }
        ),
        encoding="utf-8",
    )
    result = run_cli("run", "--config", str(path), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1
    assert "/dev/does-not-exist" in result.stderr
    assert "hunter2-secret" not in result.stderr
    key = yaml.safe_load((tmp_path / "data" / "secrets.yaml").read_text())["network_key"]
    assert str(key) not in result.stderr


def test_a_configuration_that_is_not_utf8_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "configuration.yaml"
    path.write_bytes(b"mqtt:\n  server: mqtt://localhost\n  user: J\xf6rg\nserial:\n  adapter: virtual\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"{path}: line 3 is not UTF-8 text (byte 0xf6); save the file as UTF-8"]
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 1
    assert result.stderr.strip() == caught.value.problems[0]


def test_a_secrets_file_that_is_not_utf8_is_one_clear_error(tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets.yaml"
    secrets_file.write_bytes(b"pan_id: 4242\n# \xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        resolve_network(AdvancedConfig(), tmp_path)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"{secrets_file}: line 2 is not UTF-8 text (byte 0xff)")


def test_the_well_known_network_key_is_refused_in_the_secrets_file_too(tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets.yaml"
    secrets_file.write_text(yaml.safe_dump({"network_key": list(WELL_KNOWN_NETWORK_KEY)}), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        resolve_network(AdvancedConfig(), tmp_path)
    [problem] = caught.value.problems
    assert problem.startswith(f"{secrets_file}: network_key is Zigbee2MQTT's publicly known default key")
    assert "delete the network_key line" in problem
    # A configured key does not read the stored one, but a broken secrets file is never ignored.
    with pytest.raises(ConfigError):
        resolve_network(AdvancedConfig(network_key=list(range(16))), tmp_path)


def test_a_secrets_file_with_values_that_are_not_bytes_is_refused(tmp_path: Path) -> None:
    key = [*range(15), 999]
    (tmp_path / "secrets.yaml").write_text(yaml.safe_dump({"network_key": key}), encoding="utf-8")
    with pytest.raises(ConfigError, match="network_key must be 16 bytes"):
        resolve_network(AdvancedConfig(), tmp_path)


@pytest.mark.parametrize(
    "server",
    [
        "mqtt://user:pa55-word@broker.lan:notaport",
        "ftp://user:pa55-word@broker.lan",
        "mqtt://user:pa55-word@",
    ],
)
def test_check_config_never_shows_a_password_from_the_broker_url(tmp_path: Path, server: str) -> None:
    path = tmp_path / "configuration.yaml"
    path.write_text(
        yaml.safe_dump({"mqtt": {"server": server, "bogus": server}, "serial": {"adapter": "virtual"}}),
        encoding="utf-8",
    )
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 1
    assert "mqtt.server: " in result.stderr
    assert "pa55-word" not in result.stderr + result.stdout
    assert "user:<redacted>@" in result.stderr
