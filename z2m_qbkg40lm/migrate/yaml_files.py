"""Reading Zigbee2MQTT's YAML files: UTF-8, a mapping at the top, a clear error naming file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from z2m_qbkg40lm.migrate.errors import MigrationError, read_text_file


class _TaggedLoader(yaml.SafeLoader):
    """js-yaml (Zigbee2MQTT) and Home Assistant users write `!secret name` both quoted and as a tag;
    a tag is read as the same text, `"!secret name"`, and resolved like the quoted form."""


def _tag_as_text(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(None, None, f"!{suffix} must name one key", node.start_mark)
    return f"!{suffix} {loader.construct_scalar(node)}"


_TaggedLoader.add_multi_constructor("!", _tag_as_text)


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping in `path`; MigrationError when it is missing, not UTF-8, not YAML or not a mapping."""
    text = read_text_file(path)
    try:
        loaded = yaml.load(text, Loader=_TaggedLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise MigrationError(path, f"{where}not valid YAML ({problem})") from None
    except RecursionError:
        raise MigrationError(path, "not valid YAML (nested too deeply to read)") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise MigrationError(path, f"expected a mapping of settings, found {type(loaded).__name__}")
    return loaded


class _SettingsDumper(yaml.SafeDumper):
    """Sections as blocks, lists of numbers (keys, PAN ids) on one line: how people write them."""


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    flow = all(isinstance(item, int | float | str) for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_SettingsDumper.add_representer(list, _represent_list)


def dump_settings(settings: dict[str, Any]) -> str:
    """A settings mapping as YAML text, in the order given."""
    return yaml.dump(
        settings,
        Dumper=_SettingsDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=120,
    )
