"""Which settings an MQTT client may change (`bridge/request/options`, `device/options`).

Anyone who may publish to the broker can send requests, so MQTT is a channel for operating the
switches, not for administering the daemon. An explicit allow-list names the settings that are
safe and useful to change from a dashboard; everything else can only be set in the configuration
file, and the refusal says why. Refused over MQTT, whatever the value:

- the whole `mqtt` section: where the broker is, the user and password sent to it, TLS files and
  checks, client id, keepalive and protocol version, the base topic. A wrong value sends the
  credentials to another host, or cuts the daemon off from its broker where only the file can
  bring it back;
- `serial` and `virtual`: which adapter the daemon drives and how;
- `advanced.network_key`, `pan_id`, `ext_pan_id`, `channel`: a new value forms a new network;
- anything naming a file or folder (`ota.zigbee_ota_override_index_location`, `ota.image_folder`);
- anything that moves where the daemon publishes or listens (`homeassistant.discovery_topic`,
  `homeassistant.status_topic`; `mqtt.base_topic` above), and in a device's Home Assistant
  overrides the keys that point Home Assistant at other topics;
- secrets wherever they appear, and `devices` (the device requests change those).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from z2m_qbkg40lm.bridge.bridge_info import is_secret_key
from z2m_qbkg40lm.config import Config

Path = tuple[str, ...]

# The settings `bridge/request/options` may change. Each is a bounded number, a flag or a choice
# that affects logging, state publishing, availability timing, discovery or firmware checks,
# and none moves data, credentials or topics. `permit_join` is handled apart (opens joining).
ALLOWED_OPTIONS: frozenset[Path] = frozenset(
    {
        ("advanced", "log_level"),
        ("advanced", "last_seen"),
        ("advanced", "cache_state"),
        ("availability", "enabled"),
        ("availability", "active", "timeout"),
        ("availability", "active", "max_jitter"),
        ("availability", "active", "backoff"),
        ("availability", "active", "pause_on_backoff_gt"),
        ("availability", "active", "retry_delay"),
        ("availability", "passive", "timeout"),
        # Turning discovery on publishes under the discovery topic the file configured.
        ("homeassistant", "enabled"),
        ("homeassistant", "experimental_event_entities"),
        ("homeassistant", "legacy_action_sensor"),
        ("homeassistant", "birth_republish_delay"),
        ("settings_guard", "enabled"),
        ("settings_guard", "check_interval"),
        ("ota", "update_check_interval"),
        ("ota", "disable_automatic_update_check"),
        ("ota", "image_block_request_timeout"),
        ("ota", "image_block_response_delay"),
        ("ota", "default_maximum_data_size"),
    }
)

_NETWORK = "a new value forms a new network and every device has to be paired again"
# Why each refused setting (or section: every key under it) is the file's alone; first match wins.
_REFUSED: tuple[tuple[Path, str], ...] = (
    (("mqtt", "base_topic"), "it moves every topic the daemon publishes and listens on"),
    (("mqtt",), "it sets the broker connection, its credentials and TLS files, or the topics"),
    (("serial",), "it chooses the adapter the daemon drives"),
    (("virtual",), "it shapes the simulated adapter the daemon drives"),
    (("advanced", "network_key"), _NETWORK),
    (("advanced", "pan_id"), _NETWORK),
    (("advanced", "ext_pan_id"), _NETWORK),
    (("advanced", "channel"), _NETWORK),
    (("ota", "zigbee_ota_override_index_location"), "it names a file to read"),
    (("ota", "image_folder"), "it names a folder to read"),
    (("homeassistant", "discovery_topic"), "it changes where the daemon publishes"),
    (("homeassistant", "status_topic"), "it changes where the daemon listens"),
    (("version",), "it is the file's format version"),
)


def model_settings(model: type[BaseModel] = Config, prefix: Path = ()) -> Iterator[Path]:
    """Every setting of the configuration model, as a path (`devices` as one)."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from model_settings(annotation, (*prefix, name))
        else:
            yield (*prefix, name)


_SETTINGS = frozenset(model_settings())


def options_refusal(path: Path) -> str | None:
    """Why `bridge/request/options` may not set (or, with null, remove) `path`; None if it may."""
    key = ".".join(path)
    secret = next((part for part in path if is_secret_key(part)), None)
    if secret is not None:
        return f"'{key}' is a secret and is not accepted over MQTT; edit the configuration file"
    if path[:1] == ("devices",):
        return "devices are changed with bridge/request/device/options and bridge/request/device/rename"
    if path in ALLOWED_OPTIONS:
        return None
    below = [setting for setting in _SETTINGS if setting[: len(path)] == path and setting != path]
    for refused, reason in _REFUSED:
        # A whole section (`"advanced": null`) would take its refused settings with it.
        if path[: len(refused)] == refused or any(s[: len(refused)] == refused for s in below):
            if len(path) < len(refused):
                held = ".".join(refused)
                return f"'{key}' holds '{held}', which can only be set in the configuration file: {reason}"
            return f"'{key}' can only be set in the configuration file: {reason}"
    if below:
        return f"'{key}' is a section: give the settings in it one by one (null resets one)"
    if path not in _SETTINGS:
        return f"'{key}': unknown key"
    return f"'{key}' can only be set in the configuration file"


# Keys of Home Assistant discovery that name topics (with their abbreviations: `~` is the base of
# abbreviated topics, `*_t` and `t` are abbreviated topics).
def _is_topic_key(key: str) -> bool:
    return key in {"~", "t"} or key.endswith(("topic", "topics", "_t"))


def overrides_refusal(overrides: Any, prefix: Path = ("homeassistant",)) -> str | None:
    """Why a device's Home Assistant overrides may not come over MQTT (they name topics), or None.

    Overrides are merged into the discovery configs; one naming a topic would have Home Assistant
    send commands to, or read states from, a topic of the sender's choosing.
    """
    items: list[tuple[str, Any]] = []
    if isinstance(overrides, dict):
        items = [(str(key), value) for key, value in overrides.items()]
    elif isinstance(overrides, list):
        items = [(str(index), value) for index, value in enumerate(overrides)]
    for key, value in items:
        path = (*prefix, key)
        if isinstance(overrides, dict) and _is_topic_key(key):
            return (
                f"'{'.'.join(path)}' can only be set in the configuration file: it points Home "
                "Assistant at another topic"
            )
        found = overrides_refusal(value, path)
        if found is not None:
            return found
    return None
