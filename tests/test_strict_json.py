"""Standard JSON only: what comes in over MQTT is refused when too deep or not finite, and what
goes out never holds NaN or Infinity."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from z2m_qbkg40lm.bridge.bridge import to_json
from z2m_qbkg40lm.config import ConfigError, DeviceConfig, load_config
from z2m_qbkg40lm.sim.control import _payload as emulator_request_payload
from z2m_qbkg40lm.sim.virtual_radio import SimulationError
from z2m_qbkg40lm.strict_json import MAX_DEPTH, RefusedJson, finite_copy, loads


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_ten_thousand_deep_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(RefusedJson, match=f"nested deeper than {MAX_DEPTH} levels"):
        loads(nested(10_000))
    with pytest.raises(RefusedJson, match="nested deeper"):
        loads('{"a":' * 10_000 + "1" + "}" * 10_000)


def test_the_nesting_limit_is_exactly_max_depth() -> None:
    assert loads(nested(MAX_DEPTH)) is not None
    with pytest.raises(RefusedJson):
        loads(nested(MAX_DEPTH + 1))


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"name": "[" * 100 + '\\"{' * 50, "list": [[1]]})
    assert loads(text)["list"] == [[1]]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"brightness": NaN}', "NaN is not a JSON number (at 'brightness')"),
        ('{"a": [1, Infinity]}', "Infinity is not a JSON number (at 'a.1')"),
        ("-Infinity", "-Infinity is not a JSON number"),
        ('{"options": {"x": 1e400}}', "1e400 is out of the range of a number (at 'options.x')"),
        ("[-1E+400]", "-1E+400 is out of the range of a number (at '0')"),
        ("[" + "9" * 400 + "]", "999999999999… (400 digits) is out of the range of a number (at '0')"),
        ("1" + "0" * 5000, "100000000000… (5001 digits) is out of the range of a number"),
    ],
)
def test_non_finite_numbers_are_refused_with_where(text: str, problem: str) -> None:
    with pytest.raises(RefusedJson) as refused:
        loads(text)
    assert str(refused.value) == problem


def test_a_refusal_keeps_what_could_be_read_for_the_answer() -> None:
    with pytest.raises(RefusedJson) as refused:
        loads('{"transaction": "a1", "state": NaN}')
    assert refused.value.document == {"transaction": "a1", "state": None}


def test_a_lone_surrogate_is_refused_and_a_pair_is_text() -> None:
    with pytest.raises(RefusedJson) as refused:
        loads('{"from": "x\\udc00", "transaction": "t2"}')
    assert str(refused.value) == "a lone UTF-16 surrogate (\\udc00) is not text (at 'from')"
    assert refused.value.document == {"from": None, "transaction": "t2"}
    with pytest.raises(RefusedJson, match=r"at 'a\.0'"):
        loads('{"a": ["\\ud800"]}')
    with pytest.raises(RefusedJson, match="lone UTF-16 surrogate"):
        loads('{"\\udfff": 1}')
    assert loads('"\\ud83d\\ude00"') == "\U0001f600"


def test_integers_within_a_doubles_range_are_kept_exactly() -> None:
    assert loads("9" * 308) == int("9" * 308)
    assert loads("-12345678901234567890") == -12345678901234567890


def test_standard_json_and_not_json() -> None:
    assert loads('{"a": [1, 2.5, -1e300, "NaN", null, true]}') == {"a": [1, 2.5, -1e300, "NaN", None, True]}
    with pytest.raises(ValueError) as not_json:
        loads("ON")
    assert not isinstance(not_json.value, RefusedJson), "callers fall back to the raw text"


def test_finite_copy_replaces_only_non_finite_floats() -> None:
    copy, replaced = finite_copy({"a": float("nan"), "b": [1.5, float("-inf")], "c": "x"})
    assert copy == {"a": None, "b": [1.5, None], "c": "x"}
    assert replaced == ["a", "b.1"]


def test_to_json_never_writes_nan_or_infinity(caplog: pytest.LogCaptureFixture) -> None:
    payload = {"device_temperature": float("nan"), "power": float("inf"), "state": "ON"}
    with caplog.at_level(logging.ERROR):
        text = to_json(payload)
    assert text == '{"device_temperature":null,"power":null,"state":"ON"}'
    assert loads(text) == {"device_temperature": None, "power": None, "state": "ON"}
    assert [r.getMessage() for r in caplog.records] == [
        "Not a finite number, published as null: device_temperature, power"
    ]


def test_to_json_always_gives_text_that_can_be_sent() -> None:
    # A lone surrogate (from a hand-written "\\udc00" in the configuration, say) is not UTF-8:
    # written as its JSON escape, as JavaScript's JSON.stringify does.
    text = to_json({"name": "x\udc00", "other": "é"})
    assert text == '{"name":"x\\udc00","other":"é"}'
    assert text.encode("utf-8")


def test_to_json_of_finite_payloads_is_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    assert to_json({"b": 1.5, "a": "é"}) == '{"a":"é","b":1.5}'
    assert not caplog.records


def test_the_configuration_refuses_non_finite_numbers(tmp_path: Path) -> None:
    """YAML's `.nan` and `.inf`, and the strings "nan" / "inf" a request could send, are no numbers."""
    config = tmp_path / "configuration.yaml"
    config.write_text(
        "mqtt: {server: 'mqtt://localhost'}\nserial: {adapter: virtual}\n"
        "availability: {active: {timeout: .inf}}\n"
        "devices: {'0x54ef441000abcdef': {friendly_name: hall, device_temperature_calibration: .nan}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    assert refused.value.problems == [
        "availability.active.timeout: Input should be a finite number",
        "devices.0x54ef441000abcdef.device_temperature_calibration: Input should be a finite number",
    ]
    with pytest.raises(ValidationError, match="finite number"):
        DeviceConfig.model_validate({"friendly_name": "hall", "device_temperature_calibration": "nan"})


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"", "empty payload"),
        (b"[" * 10_000 + b"]" * 10_000, "nested deeper"),
        (b'{"ms": Infinity}', "Infinity is not a JSON number"),
    ],
)
def test_the_emulator_refuses_empty_and_non_standard_requests(payload: bytes, words: str) -> None:
    """An empty message on `fault/drop_link` (clearing a retained one) must not cut the link."""
    with pytest.raises(SimulationError, match=words):
        emulator_request_payload(payload)
    assert emulator_request_payload(b'{"ms": 5}') == {"ms": 5}


def test_a_non_finite_number_hidden_by_a_duplicate_key_is_refused_all_the_same() -> None:
    with pytest.raises(RefusedJson, match="NaN is not a JSON number") as refused:
        loads('{"state": NaN, "state": "ON", "transaction": 3}')
    assert refused.value.document == {"state": "ON", "transaction": 3}
