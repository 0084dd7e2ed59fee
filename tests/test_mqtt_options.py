"""Which settings MQTT may change: the allow-list, and the reason for every refusal."""

from __future__ import annotations

import pytest

from z2m_qbkg40lm.bridge.mqtt_options import (
    ALLOWED_OPTIONS,
    model_settings,
    options_refusal,
    overrides_refusal,
)

SETTINGS = set(model_settings())


def test_every_allowed_option_is_a_setting_of_the_model() -> None:
    assert ALLOWED_OPTIONS <= SETTINGS


def test_every_setting_is_decided_with_a_reason() -> None:
    """A new key of the model is refused until someone allows it; the refusal must say why."""
    for setting in SETTINGS - ALLOWED_OPTIONS - {("devices",)}:
        refusal = options_refusal(setting)
        assert refusal is not None
        assert "configuration file" in refusal, (setting, refusal)
        assert ": " in refusal or "is a secret" in refusal, f"{setting}: the refusal gives a reason"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        (("mqtt", "server"), "broker connection"),
        (("mqtt", "user"), "credentials"),
        (("mqtt", "ca"), "TLS files"),
        (("mqtt", "keepalive"), "broker connection"),
        (("mqtt", "base_topic"), "moves every topic"),
        (("serial", "port"), "adapter"),
        (("serial", "adapter"), "adapter"),
        (("ota", "zigbee_ota_override_index_location"), "names a file"),
        (("ota", "image_folder"), "names a folder"),
        (("homeassistant", "discovery_topic"), "where the daemon publishes"),
        (("homeassistant", "status_topic"), "where the daemon listens"),
        (("advanced", "channel"), "new network"),
    ],
)
def test_refused_settings_name_the_key_and_the_file(path: tuple[str, ...], reason: str) -> None:
    refusal = options_refusal(path)
    assert refusal is not None
    assert refusal.startswith(f"'{'.'.join(path)}' can only be set in the configuration file: ")
    assert reason in refusal


def test_secrets_sections_and_unknown_keys() -> None:
    assert "secret" in (options_refusal(("mqtt", "password")) or "")
    assert "secret" in (options_refusal(("advanced", "api_token")) or "")
    # Removing a whole section would take its refused settings with it.
    assert options_refusal(("mqtt",)) is not None
    advanced = options_refusal(("advanced",)) or ""
    assert advanced.startswith("'advanced' holds 'advanced.network_key', which can only be set")
    assert "one by one" in (options_refusal(("availability",)) or "")
    assert options_refusal(("advanced", "colour")) == "'advanced.colour': unknown key"
    assert "device/options" in (options_refusal(("devices",)) or "")


@pytest.mark.parametrize("path", sorted(ALLOWED_OPTIONS))
def test_allowed_settings_pass(path: tuple[str, ...]) -> None:
    assert options_refusal(path) is None


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"switch": {"command_topic": "elsewhere/set"}}, "homeassistant.switch.command_topic"),
        ({"state_topic": "elsewhere"}, "homeassistant.state_topic"),
        ({"cmd_t": "~/set"}, "homeassistant.cmd_t"),
        ({"~": "elsewhere"}, "homeassistant.~"),
        ({"availability": [{"topic": "x/availability"}]}, "homeassistant.availability.0.topic"),
        ({"avty": [{"t": "x"}]}, "homeassistant.avty.0.t"),
    ],
)
def test_device_overrides_naming_topics_are_refused(overrides: dict[str, object], where: str) -> None:
    refusal = overrides_refusal(overrides)
    assert refusal == (
        f"'{where}' can only be set in the configuration file: it points Home Assistant at another topic"
    )


def test_device_overrides_without_topics_pass() -> None:
    assert overrides_refusal(None) is None
    assert overrides_refusal({"expire_after": 30, "linkquality": {"enabled_by_default": True}}) is None
    assert overrides_refusal({"operation_mode": None, "device": {"suggested_area": "Hall"}}) is None
