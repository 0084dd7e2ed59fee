"""The state cache read back at start: only what fits the device definitions is kept."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from z2m_qbkg40lm.bridge.state import CORRUPT_STATE_FILE, StateStore

IEEE = "0x54ef441000abcdef"
GOOD: dict[str, Any] = {
    "state": "ON",
    "power_outage_memory": True,
    "flip_indicator_light": "OFF",
    "operation_mode": "decoupled",
    "device_temperature": 31.5,
    "linkquality": 160,
    "power_outage_count": 3,
    "update": {
        "installed_version": 29,
        "latest_release_notes": None,
        "latest_source": None,
        "latest_version": 30,
        "state": "available",
    },
}


def load(tmp_path: Path, content: str | bytes) -> tuple[StateStore, list[logging.LogRecord], Path]:
    path = tmp_path / "state.json"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    store = StateStore(path)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("z2m_qbkg40lm.bridge.state")
    logger.addHandler(handler)
    try:
        store.load()
    finally:
        logger.removeHandler(handler)
    return store, records, path


def test_a_state_that_fits_is_kept_whole(tmp_path: Path) -> None:
    store, records, _ = load(tmp_path, json.dumps({IEEE: GOOD}))
    assert store.get(IEEE) == GOOD
    assert records == []


def test_wrong_types_and_unknown_keys_are_dropped_with_one_warning(tmp_path: Path) -> None:
    other = "0x54ef441000000002"
    content = {
        IEEE: {"state": 5, "evil": "<script>", "linkquality": 120, "operation_mode": "sideways"},
        other: {
            "power_outage_memory": 1,  # 1 is not True
            "device_temperature": "hot",
            "linkquality": 300,
            "action": "single_left",  # an event, never cached
            "update": {"state": "pwned", "installed_version": 1},
            "flip_indicator_light": "ON",
        },
        "not-an-address": {"state": "ON"},
        "0x54ef441000000003": "ON",
    }
    store, records, path = load(tmp_path, json.dumps(content))
    assert store.get(IEEE) == {"linkquality": 120}
    assert store.get(other) == {"flip_indicator_light": "ON"}
    assert not store.has("not-an-address") and not store.has("0x54ef441000000003")
    [warning] = records
    assert warning.levelno == logging.WARNING
    message = warning.getMessage()
    assert str(path) in message
    for dropped in (
        f"{IEEE} state (5 is neither 'ON' nor 'OFF')",
        f"{IEEE} evil (unknown property)",
        f"{IEEE} operation_mode ('sideways' is not one of control_relay, decoupled)",
        f"{other} power_outage_memory (1 is neither True nor False)",
        f"{other} device_temperature ('hot' is not a number)",
        f"{other} linkquality (300 is above 255)",
        f"{other} action (unknown property)",
        f"{other} update (state: 'pwned' is not a state)",
        "'not-an-address' (not an IEEE address",
        "0x54ef441000000003 (not an object)",
    ):
        assert dropped in message, (dropped, message)


def test_a_long_value_is_shown_shortened(tmp_path: Path) -> None:
    _, records, _ = load(tmp_path, json.dumps({IEEE: {"state": "x" * 10_000}}))
    [warning] = records
    assert len(warning.getMessage()) < 300


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "Expecting property name"),
        ("[1, 2]", "not a JSON object but list"),
        ('"ON"', "not a JSON object but str"),
        (b'{"0x54ef441000abcdef": {"state": "\xff"}}', "can't decode byte 0xff"),
        # The RecursionError's own words differ ("maximum recursion depth exceeded" up to 3.13,
        # "Stack overflow (used … kB)" from 3.14); the part that says where is the same.
        ("[" * 100_000 + "]" * 100_000, "while decoding a JSON array"),
        ("", "Expecting value"),
    ],
)
def test_an_unreadable_file_is_kept_aside_with_a_warning_and_the_cache_starts_empty(
    tmp_path: Path, content: str | bytes, why: str
) -> None:
    store, records, path = load(tmp_path, content)
    assert not store.has(IEEE)
    [warning] = records
    message = warning.getMessage()
    assert warning.levelno == logging.WARNING
    assert str(path) in message and why in message and CORRUPT_STATE_FILE in message, message
    assert not path.exists() and (tmp_path / CORRUPT_STATE_FILE).exists()


async def test_what_was_dropped_is_gone_from_the_file_after_the_next_save(tmp_path: Path) -> None:
    store, _, path = load(tmp_path, json.dumps({IEEE: {"state": 5, "evil": "<script>", "linkquality": 9}}))
    store.update(IEEE, {"state": "OFF"})
    await store.close()
    assert json.loads(path.read_text(encoding="utf-8")) == {IEEE: {"linkquality": 9, "state": "OFF"}}
