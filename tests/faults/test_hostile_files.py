"""Hostile input that never touches MQTT: the configuration file and the heartbeat's Lumi TLV.

Property tests run by hypothesis itself (shrinking included): whatever the bytes, the configuration
loader gives a usable configuration or ConfigError with one line per problem, and the TLV decoder
keeps what it could read and says why it stopped (TlvError only in strict mode).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from tests.faults.harness import hypothesis_settings, record, scale
from tests.faults.hostile import json_values, tlv_bodies
from z2m_qbkg40lm.config import ConfigError, load_config, parse_config
from z2m_qbkg40lm.devices.lumi_tlv import TlvError, decode_tlv, parse_tlv

CASES = scale(ci=300, full=10_000)
PARSE = "hostile configuration documents (parse_config)"
TEXT = "hostile configuration text (load_config)"
BYTES = "hostile configuration bytes, not UTF-8 (load_config)"
TLV = "hostile heartbeat TLV (decode_tlv, parse_tlv)"
_RAN: dict[str, int] = {}
"""Cases run per property (hypothesis stops at the first failing one)."""


def _ran(scenario: str) -> None:
    _RAN[scenario] = _RAN.get(scenario, 0) + 1


NOT_UTF8_CASES = scale(ci=50, full=10_000)

SECTION_KEYS = {
    "mqtt": [
        "base_topic",
        "server",
        "user",
        "password",
        "client_id",
        "keepalive",
        "version",
        "ca",
        "cert",
        "key",
    ],
    "serial": ["adapter", "port", "baudrate", "rtscts"],
    "advanced": ["network_key", "pan_id", "ext_pan_id", "channel", "log_level", "last_seen", "cache_state"],
    "devices": ["0x54ef441000abcdef", "0xZZ", "friendly_name"],
    "availability": ["enabled", "active", "passive"],
    "homeassistant": ["enabled", "discovery_topic", "status_topic"],
    "ota": ["image_folder", "zigbee_ota_override_index_location", "update_check_interval"],
    "settings_guard": ["enabled", "check_interval"],
    "virtual": ["switches", "linkquality"],
    "frontend": ["port"],
}
scalars = st.sampled_from(
    [
        "GENERATE",
        "mqtt://127.0.0.1:1883",
        "mqtts://x",
        "virtual",
        "zstack",
        "info",
        "debug",
        True,
        0,
        15,
        -1,
        2**70,
    ]
)
values = scalars | json_values | st.lists(st.integers(-1, 300), max_size=20)


def _section(name: str) -> st.SearchStrategy[object]:
    keys = st.sampled_from(SECTION_KEYS[name]) | st.text(max_size=10)
    return (
        st.dictionaries(keys, values | st.dictionaries(st.text(max_size=8), values, max_size=3), max_size=5)
        | values
    )


documents = st.fixed_dictionaries({}, optional={name: _section(name) for name in SECTION_KEYS})

yaml_texts = st.one_of(
    documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.text(max_size=400),
    st.text(max_size=60).map(lambda s: f"mqtt:\n  server: mqtt://h\n  password: {s}\n"),
    st.sampled_from(
        ["a: &x [*x]", "!!python/object:os.system {}", "a: !!binary ZZZ", "? [a]\n: b", "%YAML 9.9\n---"]
    ),
    st.tuples(st.integers(10, 3000), st.sampled_from(["{", "[", "- ", "a:\n "])).map(lambda p: p[1] * p[0]),
).map(lambda text: text.encode("utf-8", "surrogatepass"))
undecodable = st.binary(max_size=200).map(lambda b: b"mqtt:\n  server: mqtt://h\n  user: \xff" + b)


@given(document=documents | st.one_of(values, st.text()))
@hypothesis_settings(CASES)
def test_parse_config_gives_a_configuration_or_config_error(document: object) -> None:
    """`parse_config` on any parsed YAML document: a configuration, or ConfigError whose problems
    are non-empty lines; never another exception."""
    _ran(PARSE)
    try:
        parse_config(document, Path("configuration.yaml"))
    except ConfigError as exc:
        assert exc.problems, "ConfigError without a problem"
        assert all(isinstance(p, str) and p for p in exc.problems)


def _loads_or_refuses(path: Path, raw: bytes) -> None:
    path.write_bytes(raw)
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.problems


@given(raw=yaml_texts)
@hypothesis_settings(CASES)
def test_load_config_on_any_text_gives_a_configuration_or_config_error(tmp_path: Path, raw: bytes) -> None:
    """`load_config` on any UTF-8 file content (random YAML documents, text, aliases, tags, nesting
    3,000 deep): a configuration or ConfigError, never another exception."""
    _ran(TEXT)
    _loads_or_refuses(tmp_path / "configuration.yaml", raw)


@given(raw=undecodable | st.binary(max_size=300))
@hypothesis_settings(NOT_UTF8_CASES)
def test_load_config_on_bytes_that_are_not_utf8_gives_config_error(tmp_path: Path, raw: bytes) -> None:
    """`load_config` on random bytes, not UTF-8 among them: ConfigError naming the file, never a
    UnicodeDecodeError."""
    _ran(BYTES)
    _loads_or_refuses(tmp_path / "configuration.yaml", raw)


@given(body=tlv_bodies)
@example(body=b"\r8\xcc\xfe\xcfe|\xff\xf9\x86L\x1btZ\x7f\xf2")  # a float item that is a NaN
@hypothesis_settings(CASES)
def test_tlv_decoder_never_raises_and_strict_mode_raises_only_tlv_error(body: bytes) -> None:
    """The heartbeat's TLV decoder on random and mangled bodies: `decode_tlv` never raises and
    keeps the items before a problem; `parse_tlv(strict=True)` raises only TlvError, exactly when
    the decoder found a problem; tolerant `parse_tlv` returns the same items."""
    _ran(TLV)
    decoded = decode_tlv(body)
    assert all(isinstance(k, int) and 0 <= k <= 255 for k in decoded.items)
    for value in decoded.items.values():
        assert isinstance(value, int | bool | bytes | float | str)
    try:
        strict = parse_tlv(body, strict=True)
    except TlvError as exc:
        assert decoded.problem is not None and str(exc) == decoded.problem
    else:
        assert decoded.problem is None and _same_items(strict, decoded.items)
    assert _same_items(parse_tlv(body), decoded.items)


def _same_items(left: dict[int, Any], right: dict[int, Any]) -> bool:
    """Equal TLV items, a NaN (a float item's bytes can be one) equal to a NaN."""

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return bool(a == b)

    return left.keys() == right.keys() and all(same(left[key], right[key]) for key in left)


@pytest.fixture(autouse=True, scope="module")
def _record_figures() -> Iterator[None]:
    began = time.monotonic()
    yield None
    seconds = round(time.monotonic() - began, 1)
    for scenario, target in ((PARSE, CASES), (TEXT, CASES), (BYTES, NOT_UTF8_CASES), (TLV, CASES)):
        ran = _RAN.get(scenario, 0)
        # Fewer than asked for: hypothesis stopped at the first failing case.
        record(
            scenario,
            runs=ran,
            figure=f"{ran} of {target} cases passed or ran (module {seconds} s)",
            cases=ran,
        )
