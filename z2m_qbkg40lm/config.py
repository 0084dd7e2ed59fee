"""The configuration file: Zigbee2MQTT's own key names, validated by one pydantic model.

Defaults live here and nowhere else. Keys Zigbee2MQTT knows but this daemon does not implement are
reported as warnings; any other unknown key is an error, so a typo never passes silently.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from z2m_qbkg40lm.atomic_file import write_atomically
from z2m_qbkg40lm.redaction import redact_url_passwords, register_key, register_text

_LOGGER = logging.getLogger(__name__)

GENERATE: Literal["GENERATE"] = "GENERATE"
SECRETS_FILE = "secrets.yaml"

# Zigbee2MQTT's well-known default network key: never used, even if a user pastes it in.
WELL_KNOWN_NETWORK_KEY = (1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 13)

# Sections of Zigbee2MQTT's configuration.yaml this daemon accepts but does not act on.
_IGNORED_SECTIONS = (
    "frontend",
    "groups",
    "device_options",
    "health",
    "blocklist",
    "passlist",
    "map_options",
    "permit_join",
)

_IEEE_KEY = re.compile(r"^0x[0-9a-fA-F]{16}$")


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds one `key: reason` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Section(BaseModel):
    # allow_inf_nan: "nan" or ".inf" would otherwise pass as a number and reach published JSON.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class MqttConfig(_Section):
    """`mqtt:` the broker connection and the base topic."""

    base_topic: str = "zigbee2mqtt"
    server: str
    user: str | None = None
    password: SecretStr | None = None
    client_id: str | None = None
    keepalive: Annotated[int, Field(ge=5, le=65535)] = 60
    # Seconds the broker keeps the session (subscriptions, QoS 1 commands) while the daemon is away;
    # 0: a clean session on every connect, nothing kept (Zigbee2MQTT's behaviour).
    session_expiry_interval: Annotated[int, Field(ge=0, le=0xFFFFFFFF)] = 300
    version: Literal[3, 4, 5] = 4
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    reject_unauthorized: bool = True
    server_name: str | None = None

    @field_validator("base_topic")
    @classmethod
    def _check_base_topic(cls, value: str) -> str:
        if not value or value.startswith("/") or value.endswith("/") or any(c in value for c in "+#"):
            raise ValueError("must be a non-empty topic without leading or trailing '/', '+' or '#'")
        return value

    @field_validator("server")
    @classmethod
    def _check_server(cls, value: str) -> str:
        parts = urlsplit(value)
        shown = redact_url_passwords(value)  # the message may end up in a log or a terminal
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"'{shown}' must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"'{shown}' has no host name")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError(f"'{shown}' has an invalid port") from None
        return value

    @model_validator(mode="after")
    def _check_tls_files(self) -> MqttConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key must be given together")
        return self

    @property
    def tls(self) -> bool:
        """True when the server URL asks for TLS."""
        return urlsplit(self.server).scheme in ("mqtts", "ssl")

    @property
    def host(self) -> str:
        """The broker's host name."""
        return urlsplit(self.server).hostname or "localhost"

    @property
    def port(self) -> int:
        """The broker's port, 1883 or 8883 when not given."""
        return urlsplit(self.server).port or (8883 if self.tls else 1883)


Adapter = Literal["zstack", "ezsp", "ember", "deconz", "virtual"]
RADIO_ADAPTERS: tuple[str, ...] = tuple(name for name in get_args(Adapter) if name != "virtual")
"""The adapter families of real sticks (and their emulators)."""


class SerialConfig(_Section):
    """`serial:` which adapter and where it is plugged."""

    adapter: Adapter
    port: str | None = None
    baudrate: Annotated[int, Field(gt=0)] = 115200
    rtscts: bool = False
    disable_led: bool = False

    @model_validator(mode="after")
    def _port_for_hardware(self) -> SerialConfig:
        if self.adapter != "virtual" and not self.port:
            raise ValueError(f"port is required for adapter '{self.adapter}' (e.g. /dev/ttyUSB0)")
        return self


class VirtualConfig(_Section):
    """`virtual:` the simulated switches of the `virtual` adapter."""

    switches: Annotated[int, Field(ge=0, le=256)] = 1
    linkquality: Annotated[int, Field(ge=0, le=255)] = 160


class ActiveAvailabilityConfig(_Section):
    """`availability.active:` mains-powered devices (the QBKG40LM), pinged after silence."""

    timeout: Annotated[float, Field(gt=0, le=1440)] = 10
    """Minutes without any frame from the device before it is pinged (a read of Basic 0x0004);
    offline when neither the ping nor its retry is answered. Fractions are allowed (0.05 = 3 s)."""
    max_jitter: Annotated[int, Field(ge=0, le=3_600_000)] = 30000
    """Milliseconds: each check waits a random extra 0..max_jitter, so devices that went quiet
    together are not all pinged at the same moment."""
    backoff: bool = True
    """While a device stays offline, each failed check multiplies the wait before the next by 1.5
    (capped at 6 times the timeout); without it an offline device is pinged every timeout."""
    pause_on_backoff_gt: Annotated[float, Field(ge=0)] = 0
    """Stop pinging an offline device once the back-off factor exceeds this (0: never stop); the
    device then comes back online only by sending a frame itself."""
    retry_delay: Annotated[float, Field(ge=0, le=600)] = 3
    """Seconds between the ping and its one retry (not a Zigbee2MQTT key)."""


class PassiveAvailabilityConfig(_Section):
    """`availability.passive:` battery devices, never pinged (the daemon serves none yet)."""

    timeout: Annotated[float, Field(gt=0)] = 1500
    """Minutes without a frame before a battery device is offline."""


class AvailabilityConfig(_Section):
    """`availability:` the `<base>/<FN>/availability` topics."""

    enabled: bool = False
    active: ActiveAvailabilityConfig = ActiveAvailabilityConfig()
    passive: PassiveAvailabilityConfig = PassiveAvailabilityConfig()


def _check_discovery_topic(value: str) -> str:
    if not value or value.startswith("/") or value.endswith("/") or any(c in value for c in "+#"):
        raise ValueError("must be a non-empty topic without leading or trailing '/', '+' or '#'")
    return value


class HomeAssistantConfig(_Section):
    """`homeassistant:` MQTT discovery for Home Assistant."""

    enabled: bool = False
    discovery_topic: str = "homeassistant"
    status_topic: str = "homeassistant/status"
    experimental_event_entities: bool = False
    """Accepted for compatibility; the `event` entity for presses is always published."""
    legacy_action_sensor: bool = False
    """Accepted for compatibility; not supported (a warning is logged when true)."""
    birth_republish_delay: Annotated[float, Field(ge=0, le=3600)] = 30
    """Seconds between Home Assistant's `online` on `status_topic` and the republish of
    `bridge/state`, availability and device states (Zigbee2MQTT waits 30 s). Not a Zigbee2MQTT key."""

    @field_validator("discovery_topic", "status_topic")
    @classmethod
    def _check_topics(cls, value: str) -> str:
        return _check_discovery_topic(value)


class SettingsGuardConfig(_Section):
    """`settings_guard:` (not in Zigbee2MQTT) keeps the switch's settings as the user last set them.

    The QBKG40LM is reported to drop `operation_mode`, `flip_indicator_light` and
    `power_outage_memory` by itself; the daemon reads them back every `check_interval` minutes and
    after the device rejoins, and writes back a setting that drifted.
    """

    enabled: bool = True
    """Remember what the user last set and re-apply it when it drifted."""
    check_interval: Annotated[float, Field(gt=0, le=10080)] = 60
    """Minutes between two read-backs of every remembered setting (fractions allowed: 0.5 = 30 s);
    a device is also checked shortly after it announces itself or joins again."""


class OtaConfig(_Section):
    """`ota:` firmware updates from local files (never downloaded). Paths are relative to the data
    directory, as in Zigbee2MQTT."""

    zigbee_ota_override_index_location: str | None = None
    """An index file in Zigbee2MQTT's OTA index format; each entry's `url` is a local path,
    relative to the index (an `http(s)://` URL is looked for under its file name next to it)."""
    image_folder: str | None = None
    """A folder of `.ota` / `.zigbee` files, each offered by what its own header says (not a
    Zigbee2MQTT key)."""
    update_check_interval: Annotated[float, Field(gt=0)] = 1440
    """Minutes: when a device asks for new firmware by itself, its update state is refreshed at
    most this often."""
    disable_automatic_update_check: bool = False
    """Ignore the devices' own requests for new firmware; only `device/ota_update/check` checks."""
    image_block_request_timeout: Annotated[int, Field(gt=0)] = 30000
    """Milliseconds a device may stay silent during a check or an update (waiting for its Query
    Next Image Request or its next Image Block Request) before it fails. zigpy gives up on its own
    after 30 s without a block request, so larger values act as 30000."""
    image_block_response_delay: Annotated[int, Field(ge=0)] | None = None
    """Accepted for Zigbee2MQTT compatibility, not used: zigpy answers each block request at once."""
    default_maximum_data_size: Annotated[int, Field(gt=0, le=255)] | None = None
    """Accepted for Zigbee2MQTT compatibility, not used: zigpy sends at most 50 bytes per block to
    Lumi devices."""

    @field_validator("zigbee_ota_override_index_location", "image_folder")
    @classmethod
    def _check_local(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme in ("http", "https"):
            raise ValueError(
                "must be a local path: this daemon never downloads firmware (save the index and its "
                "files in a folder and give that path)"
            )
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value


NetworkKey = list[Annotated[int, Field(ge=0, le=255)]] | Literal["GENERATE"]


class AdvancedConfig(_Section):
    """`advanced:` network parameters, logging and state."""

    network_key: NetworkKey = GENERATE
    pan_id: Annotated[int, Field(ge=1, le=0xFFFE)] | Literal["GENERATE"] = GENERATE
    ext_pan_id: list[Annotated[int, Field(ge=0, le=255)]] | Literal["GENERATE"] = GENERATE
    channel: Annotated[int, Field(ge=11, le=26)] = 11
    log_level: Literal["error", "warning", "info", "debug"] = "info"
    last_seen: Literal["disable", "ISO_8601", "ISO_8601_local", "epoch"] = "disable"
    cache_state: bool = True

    @field_validator("log_level", mode="before")
    @classmethod
    def _migrate_warn(cls, value: Any) -> Any:
        return "warning" if value == "warn" else value

    @field_validator("network_key")
    @classmethod
    def _check_network_key(cls, value: list[int] | str) -> list[int] | str:
        if isinstance(value, list):
            if len(value) != 16:
                raise ValueError(f"should be 16 bytes or 'GENERATE', got {len(value)} bytes")
            if tuple(value) == WELL_KNOWN_NETWORK_KEY:
                raise ValueError("is the publicly known default key; use GENERATE")
        return value

    @field_validator("ext_pan_id")
    @classmethod
    def _check_ext_pan_id(cls, value: list[int] | str) -> list[int] | str:
        if isinstance(value, list) and len(value) != 8:
            raise ValueError(f"should be 8 bytes or 'GENERATE', got {len(value)} bytes")
        return value


class DeviceConfig(_Section):
    """`devices: {'0x…': …}`: per-device settings and converter options."""

    friendly_name: str
    retain: bool = False
    qos: Literal[0, 1, 2] = 0
    optimistic: bool = True
    description: str | None = None
    device_temperature_calibration: float | None = None
    device_temperature_precision: Annotated[int, Field(ge=0, le=3)] | None = None
    state_action: bool | None = None
    availability: bool | None = None
    """Overrides `availability.enabled` for this device."""
    homeassistant: dict[str, Any] | None = None
    """Overrides merged into this device's discovery payloads (`null` values delete keys)."""

    @field_validator("friendly_name")
    @classmethod
    def _check_friendly_name(cls, value: str) -> str:
        problem = friendly_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    def converter_options(self) -> dict[str, Any]:
        """The options the device definition's converters read, without unset ones."""
        options = {
            "device_temperature_calibration": self.device_temperature_calibration,
            "device_temperature_precision": self.device_temperature_precision,
            "state_action": self.state_action,
        }
        return {key: value for key, value in options.items() if value is not None}


def friendly_name_problem(name: str) -> str | None:
    """Why a friendly name is unusable as an MQTT topic segment, or None."""
    if not name:
        return "must not be empty"
    if name == "bridge" or name.startswith("bridge/"):
        return f"'{name}' is reserved: <base_topic>/bridge/... are the bridge's own topics"
    if name.startswith("/") or name.endswith("/"):
        return f"'{name}' must not start or end with '/'"
    if any(c in name for c in "+#") or any(ord(c) < 32 for c in name):
        return f"'{name}' must not contain '+', '#' or control characters"
    if re.search(r"/\d+$", name):
        return f"'{name}' must not end with '/<number>' (read as an endpoint)"
    if re.search(r"/(set|get)(/|$)", name):
        return f"'{name}' must not contain a '/set' or '/get' segment"
    return None


class Config(BaseModel):
    """The whole configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    version: int | None = None
    mqtt: MqttConfig
    serial: SerialConfig
    virtual: VirtualConfig = VirtualConfig()
    advanced: AdvancedConfig = AdvancedConfig()
    availability: AvailabilityConfig = AvailabilityConfig()
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()
    settings_guard: SettingsGuardConfig = SettingsGuardConfig()
    ota: OtaConfig = OtaConfig()
    devices: dict[str, DeviceConfig] = Field(default_factory=dict)

    @field_validator("availability", "homeassistant", mode="before")
    @classmethod
    def _accept_bool_shorthand(cls, value: Any) -> Any:
        # Zigbee2MQTT 1.x wrote `availability: true` and `homeassistant: true`.
        return {"enabled": value} if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _discovery_apart_from_base(self) -> Config:
        discovery = self.homeassistant.discovery_topic
        if discovery == self.mqtt.base_topic:
            raise ValueError("homeassistant.discovery_topic must differ from mqtt.base_topic")
        return self

    @field_validator("devices")
    @classmethod
    def _check_devices(cls, value: dict[str, DeviceConfig]) -> dict[str, DeviceConfig]:
        seen: dict[str, str] = {}
        for ieee, device in value.items():
            if not _IEEE_KEY.match(ieee):
                raise ValueError(f"'{ieee}' is not an IEEE address like 0x54ef441000abcdef")
            if device.friendly_name in seen:
                first = seen[device.friendly_name]
                raise ValueError(f"friendly_name '{device.friendly_name}' is used by {first} and {ieee}")
            seen[device.friendly_name] = ieee
        return {ieee.lower(): device for ieee, device in value.items()}


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration, with warnings about keys it does not act on."""

    config: Config
    path: Path
    warnings: tuple[str, ...]


def _format_location(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location)


def _is_union_branch(part: int | str) -> bool:
    """pydantic names the branch of a union in the location (`literal['GENERATE']`, `constrained-int`)."""
    return isinstance(part, str) and ("[" in part or part in ("constrained-int", "int", "str", "list"))


def _problems_from(error: ValidationError) -> list[str]:
    problems = []
    items = error.errors()
    for item in items:
        if (
            any(isinstance(part, str) and part.startswith("literal[") for part in item["loc"])
            and len(items) > 1
        ):
            # "Input should be 'GENERATE'" only repeats the other branch's complaint.
            continue
        location = _format_location(tuple(part for part in item["loc"] if not _is_union_branch(part)))
        if item["type"] == "extra_forbidden":
            problems.append(f"{location}: unknown key")
        elif item["type"] == "missing":
            problems.append(f"{location}: required")
        else:
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"{location}: {message}" if location else message)
    # A value echoed by a message may be a broker URL with its password.
    return _dedupe([redact_url_passwords(problem) for problem in problems])


def _dedupe(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(lines))


def parse_config(raw: Any, path: Path) -> LoadedConfig:
    """Validate a parsed YAML document; raise ConfigError with one line per problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the file must hold a mapping of sections (mqtt:, serial:, ...)"])
    warnings = [
        f"{section}: Zigbee2MQTT setting not supported by this daemon, ignored"
        for section in _IGNORED_SECTIONS
        if section in raw
    ]
    known = {key: value for key, value in raw.items() if key not in _IGNORED_SECTIONS}
    try:
        config = Config.model_validate(known)
    except ValidationError as exc:
        raise ConfigError(_problems_from(exc)) from None
    _register_secrets(config)
    return LoadedConfig(config=config, path=path, warnings=tuple(warnings))


def _register_secrets(config: Config) -> None:
    """Keep the configuration's secrets out of every log line from now on."""
    for name in type(config.mqtt).model_fields:
        value = getattr(config.mqtt, name)
        if isinstance(value, SecretStr):
            register_text(value.get_secret_value())
    register_text(urlsplit(config.mqtt.server).password)
    if isinstance(config.advanced.network_key, list):
        register_key(config.advanced.network_key)


def _read_text(path: Path) -> str:
    """A configuration or secrets file as text; ConfigError when it is missing or not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        byte = exc.object[exc.start]
        raise ConfigError(
            [f"{path}: line {line} is not UTF-8 text (byte 0x{byte:02x}); save the file as UTF-8"]
        ) from None


def _parse_yaml(text: str, path: Path) -> Any:
    """YAML text as data; ConfigError naming the file (and line) when it cannot be read."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError([f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    except RecursionError:
        # PyYAML reads nested collections by recursion: `[[[[…` a few thousand deep exhausts it.
        raise ConfigError([f"{path}: not valid YAML (nested too deeply to read)"]) from None


def load_config(path: Path) -> LoadedConfig:
    """Read and validate the configuration file."""
    return parse_config(_parse_yaml(_read_text(path), path), path)


# --- Network secrets: GENERATE resolved once, kept in the data directory ----------------------


@dataclass(frozen=True)
class NetworkSettings:
    """Concrete network parameters for the radio."""

    network_key: bytes
    pan_id: int
    ext_pan_id: bytes
    channel: int


def resolve_network(advanced: AdvancedConfig, data_dir: Path) -> NetworkSettings:
    """Turn GENERATE values into random ones, generated once and kept in `<data_dir>/secrets.yaml`."""
    secrets_path = data_dir / SECRETS_FILE
    stored = _read_secrets(secrets_path)
    changed = False

    def pick(name: str, configured: Any, generate: Any) -> Any:
        nonlocal changed
        if configured != GENERATE:
            return configured
        if name not in stored:
            stored[name] = generate()
            changed = True
            _LOGGER.info("Generated a random %s, kept in %s", name, secrets_path)
        return stored[name]

    key = pick("network_key", advanced.network_key, lambda: list(secrets.token_bytes(16)))
    pan_id = pick("pan_id", advanced.pan_id, lambda: secrets.randbelow(0xFFFE) + 1)
    register_key(key)
    ext_pan_id = pick("ext_pan_id", advanced.ext_pan_id, lambda: list(secrets.token_bytes(8)))
    if changed:
        write_atomically(secrets_path, yaml.safe_dump(stored, default_flow_style=None), mode=0o600)
    return NetworkSettings(
        network_key=bytes(key),
        pan_id=int(pan_id),
        ext_pan_id=bytes(ext_pan_id),
        channel=advanced.channel,
    )


def _read_secrets(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    text = _read_text(path)
    try:
        loaded = _parse_yaml(text, path)
    except ConfigError as exc:
        raise ConfigError([f"{problem}; restore it from a backup" for problem in exc.problems]) from None
    if not isinstance(loaded, dict):
        raise ConfigError([f"{path}: expected a mapping of network_key, pan_id, ext_pan_id"])
    problems = []
    key = loaded.get("network_key")
    if key is not None and not _is_byte_list(key, 16):
        problems.append(f"{path}: network_key must be 16 bytes")
    elif key is not None and tuple(key) == WELL_KNOWN_NETWORK_KEY:
        problems.append(
            f"{path}: network_key is Zigbee2MQTT's publicly known default key, which lets anyone "
            "nearby read and control the network; delete the network_key line to have a random key "
            "generated at the next start (the network is then formed again: pair the devices again)"
        )
    ext = loaded.get("ext_pan_id")
    if ext is not None and not _is_byte_list(ext, 8):
        problems.append(f"{path}: ext_pan_id must be 8 bytes")
    if problems:
        raise ConfigError(problems)
    return loaded


def _is_byte_list(value: Any, length: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == length
        and all(isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 255 for item in value)
    )
