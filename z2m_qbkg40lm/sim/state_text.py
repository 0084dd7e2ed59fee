"""The virtual adapter's state file as text, rebuilt from the switches that changed only.

The file is `json.dumps(document, indent=2)` of the coordinator, the network and one record per
switch. With 200 switches that is about 150 kB, and dumping it whole took ~3 ms of the event loop
every second a switch changed; here each switch's part is kept as text and dumped again only when
its record is a different one, so a save costs what changed. The text is the same, byte for byte,
as dumping the whole document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class StateText:
    """Builds the document's text; remembers each switch's part between calls."""

    def __init__(self) -> None:
        self._parts: dict[Any, tuple[dict[str, Any], str]] = {}

    def text(self, head: Mapping[str, Any], switches: Mapping[Any, dict[str, Any]]) -> str:
        """`json.dumps({**head, "switches": [records]}, indent=2)`, the records in `switches`' order.

        A record that is the very object given last time is not even compared; an equal one is
        not dumped again.
        """
        parts: dict[Any, tuple[dict[str, Any], str]] = {}
        for key, record in switches.items():
            known = self._parts.get(key)
            if known is None or (known[0] is not record and known[0] != record):
                # A list element of a top-level key sits four spaces deep.
                known = (record, _indented(json.dumps(record, indent=2), "    ", first=True))
            parts[key] = known
        self._parts = parts
        lines = [
            f"  {json.dumps(key)}: {_indented(json.dumps(value, indent=2), '  ')}"
            for key, value in head.items()
        ]
        if parts:
            body = ",\n".join(text for _, text in parts.values())
            lines.append(f'  "switches": [\n{body}\n  ]')
        else:
            lines.append('  "switches": []')
        return "{\n" + ",\n".join(lines) + "\n}"


def _indented(text: str, prefix: str, *, first: bool = False) -> str:
    """Every line of a dumped value but the first (or every line) indented by `prefix`."""
    indented = text.replace("\n", "\n" + prefix)
    return prefix + indented if first else indented
