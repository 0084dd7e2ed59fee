"""The configuration file editor: values changed in place, comments and key order kept."""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from z2m_qbkg40lm.bridge.config_writer import (
    ConfigEditError,
    Delete,
    Edit,
    SetValue,
    backup_path,
    save_edits,
    update_text,
)

IEEE = "0x54ef441000abcdef"
OTHER = "0x54ef441000000002"

FILE = f"""\
# My Zigbee setup: do not lose this comment
mqtt:
  base_topic: zigbee2mqtt   # the default
  server: mqtt://127.0.0.1:1883
  password: hunter2

serial:
  adapter: virtual

advanced:
  channel: 15
  log_level: info           # error, warning, info or debug

# Devices by IEEE address
devices:
  '{IEEE}':
    friendly_name: hall_switch    # next to the door
    retain: false
    homeassistant:
      name: Hall
  # the kitchen one
  '{OTHER}':
    friendly_name: 'kitchen # left'  # a '#' inside quotes

# end of file
"""


def _edited(text: str, *edits: Edit) -> str:
    result = update_text(text, list(edits))
    assert result.preserved, result.reason
    return result.text


def _comments(text: str) -> list[str]:
    return [line.split("#", 1)[1] for line in text.splitlines() if "#" in line and "'#" not in line]


def test_a_value_changes_in_place_with_its_comment() -> None:
    text = _edited(FILE, SetValue(("devices", IEEE, "friendly_name"), "upstairs/hall"))
    assert "    friendly_name: upstairs/hall    # next to the door\n" in text
    assert _comments(text) == _comments(FILE)
    assert text.replace("upstairs/hall", "hall_switch") == FILE


def test_a_value_with_a_hash_inside_quotes_is_not_cut() -> None:
    text = _edited(FILE, SetValue(("devices", OTHER, "friendly_name"), "kitchen"))
    assert "    friendly_name: kitchen  # a '#' inside quotes\n" in text
    assert yaml.safe_load(text)["devices"][OTHER]["friendly_name"] == "kitchen"


def test_a_new_key_goes_after_the_last_key_of_its_mapping() -> None:
    text = _edited(FILE, SetValue(("devices", IEEE, "qos"), 1))
    lines = text.splitlines()
    assert lines[lines.index("      name: Hall") + 1] == "    qos: 1"
    assert yaml.safe_load(text)["devices"][IEEE]["homeassistant"] == {"name": "Hall"}


def test_a_new_device_entry_is_added_with_a_quoted_ieee_key() -> None:
    new = "0x54ef441000000003"
    text = _edited(FILE, SetValue(("devices", new, "friendly_name"), "porch"))
    assert f"  '{new}':\n    friendly_name: porch\n" in text
    assert text.endswith("\n# end of file\n")
    assert list(yaml.safe_load(text)["devices"]) == [IEEE, OTHER, new]


def test_a_nested_mapping_is_replaced_whole() -> None:
    text = _edited(FILE, SetValue(("devices", IEEE, "homeassistant"), {"name": "Hall", "icon": "mdi:x"}))
    assert yaml.safe_load(text)["devices"][IEEE]["homeassistant"] == {"name": "Hall", "icon": "mdi:x"}
    assert "    retain: false\n    homeassistant:\n      name: Hall\n      icon: mdi:x\n" in text


def test_removing_an_entry_keeps_the_rest() -> None:
    text = _edited(FILE, Delete(("devices", IEEE)))
    assert "hall_switch" not in text
    assert "# Devices by IEEE address\ndevices:\n  # the kitchen one\n" in text
    assert list(yaml.safe_load(text)["devices"]) == [OTHER]


def test_removing_the_last_entry_leaves_an_empty_mapping_not_null() -> None:
    text = _edited(FILE, Delete(("devices", IEEE)), Delete(("devices", OTHER)))
    assert yaml.safe_load(text)["devices"] == {}
    assert "devices: {}\n" in text


def test_deleting_something_absent_changes_nothing() -> None:
    assert _edited(FILE, Delete(("devices", "0x0000000000000009"))) == FILE
    assert _edited(FILE, Delete(("frontend", "port"))) == FILE


def test_log_level_is_replaced_inserted_or_created() -> None:
    text = _edited(FILE, SetValue(("advanced", "log_level"), "debug"))
    assert "  log_level: debug           # error, warning, info or debug\n" in text
    without = FILE.replace("  log_level: info           # error, warning, info or debug\n", "")
    text = _edited(without, SetValue(("advanced", "log_level"), "warning"))
    assert "advanced:\n  channel: 15\n  log_level: warning\n" in text
    no_section = "mqtt:\n  server: mqtt://h\n# trailing\n"
    text = _edited(no_section, SetValue(("advanced", "log_level"), "error"))
    assert text == "mqtt:\n  server: mqtt://h\n# trailing\nadvanced:\n  log_level: error\n"


def test_an_inline_empty_mapping_is_opened() -> None:
    text = _edited(
        "mqtt:\n  server: mqtt://h\ndevices: {}  # none yet\n",
        SetValue(("devices", IEEE), {"friendly_name": "a"}),
    )
    assert text == f"mqtt:\n  server: mqtt://h\ndevices:  # none yet\n  '{IEEE}':\n    friendly_name: a\n"


def test_the_files_indentation_is_followed() -> None:
    four = "mqtt:\n    server: mqtt://h\ndevices:\n    '0x0000000000000001':\n        friendly_name: a\n"
    text = _edited(four, SetValue(("devices", IEEE), {"friendly_name": "b", "retain": True}))
    assert text.endswith(f"    '{IEEE}':\n        friendly_name: b\n        retain: true\n")


def test_windows_line_endings_are_kept() -> None:
    crlf = FILE.replace("\n", "\r\n")
    text = _edited(crlf, SetValue(("devices", IEEE, "qos"), 2))
    assert "\n" not in text.replace("\r\n", "")


def test_flow_style_elsewhere_in_the_file_does_not_matter() -> None:
    text = _edited("mqtt: {server: 'mqtt://h'}\n", SetValue(("advanced", "log_level"), "debug"))
    assert text == "mqtt: {server: 'mqtt://h'}\nadvanced:\n  log_level: debug\n"


def test_a_document_start_marker_is_fine() -> None:
    text = _edited("---\nmqtt:\n  server: mqtt://h\n", SetValue(("advanced", "log_level"), "debug"))
    assert text.startswith("---\nmqtt:")
    assert yaml.safe_load(text)["advanced"] == {"log_level": "debug"}


@pytest.mark.parametrize(
    "text",
    [
        f"mqtt: {{server: 'mqtt://h'}}\ndevices: {{'{IEEE}': {{friendly_name: a}}}}\n",
        f"defaults: &d\n  retain: true\ndevices:\n  '{IEEE}':\n    <<: *d\n    friendly_name: a\n",
        f"devices: !!map\n  '{IEEE}':\n    friendly_name: a\n",
    ],
    ids=["flow style", "anchors", "tags"],
)
def test_layouts_beyond_the_editor_are_rewritten_in_full(text: str) -> None:
    result = update_text(text, [SetValue(("devices", IEEE, "friendly_name"), "b")])
    loaded = yaml.safe_load(result.text)
    assert loaded["devices"][IEEE]["friendly_name"] == "b"
    expected: dict[str, Any] = yaml.safe_load(text)
    expected["devices"][IEEE]["friendly_name"] = "b"
    assert loaded == expected
    assert not result.preserved
    assert result.reason


def test_a_path_through_a_plain_value_is_refused() -> None:
    with pytest.raises(ConfigEditError, match=r"'advanced' .* not a mapping"):
        update_text("advanced: 5\n", [SetValue(("advanced", "log_level"), "debug")])


def test_a_broken_file_is_refused() -> None:
    with pytest.raises(ConfigEditError, match="not valid YAML"):
        update_text("mqtt: [\n", [SetValue(("advanced", "log_level"), "debug")])


def test_save_keeps_the_layout_and_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "configuration.yaml"
    path.write_text(FILE, encoding="utf-8")
    path.chmod(0o600)
    result = save_edits(path, [SetValue(("advanced", "log_level"), "warning")])
    assert result.preserved
    assert path.read_text(encoding="utf-8") == FILE.replace("log_level: info", "log_level: warning")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not backup_path(path).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["configuration.yaml"], "no temporary file left"


def test_save_falls_back_with_a_backup_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "configuration.yaml"
    flow = "mqtt: {server: 'mqtt://h', password: hunter2}\nadvanced: {channel: 15}\n"
    path.write_text(flow, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        result = save_edits(path, [SetValue(("advanced", "log_level"), "debug")])
    assert not result.preserved
    assert backup_path(path).read_text(encoding="utf-8") == flow
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == {
        "mqtt": {"server": "mqtt://h", "password": "hunter2"},
        "advanced": {"channel": 15, "log_level": "debug"},
    }
    assert any("Rewrote" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert "hunter2" not in caplog.text


def test_save_of_an_unwritable_place_says_why(tmp_path: Path) -> None:
    with pytest.raises(ConfigEditError, match="cannot read"):
        save_edits(tmp_path / "missing.yaml", [SetValue(("advanced", "log_level"), "debug")])


def test_block_sequences_at_the_keys_indentation_keep_the_layout() -> None:
    text = (
        "# my file\n"
        "blocklist:\n"
        "- '0x0000000000000001'\n"
        "advanced:\n"
        "  ext_pan_id:\n"
        "  - 1\n"
        "  - 2\n"
        "  log_level: info   # quiet\n"
        "devices:\n"
        f"  '{IEEE}':\n"
        "    friendly_name: a\n"
    )
    result = update_text(
        text,
        [SetValue(("devices", IEEE, "friendly_name"), "b"), SetValue(("advanced", "log_level"), "debug")],
    )
    assert result.preserved, result.reason
    assert result.text == text.replace("friendly_name: a", "friendly_name: b").replace(
        "log_level: info", "log_level: debug"
    )
