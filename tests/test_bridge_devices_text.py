"""`bridge/devices` is built from each device's element encoded once and kept until the device
changes: the text is the whole list encoded at once, also after a rename and a description."""

from __future__ import annotations

import json
from pathlib import Path

from tests.in_process import daemon_in_process
from z2m_qbkg40lm.bridge.bridge import to_json
from z2m_qbkg40lm.bridge.bridge_api import BridgeApi


async def test_the_kept_elements_give_the_list_encoded_whole(tmp_path: Path) -> None:
    async with daemon_in_process(tmp_path) as running:
        [api] = [e for e in running.daemon._bridge.extensions if isinstance(e, BridgeApi)]
        assert api.devices_text() == to_json(api.devices())

        response = await running.watcher.request("device/rename", {"from": running.ieee, "to": "hall/left"})
        assert response["status"] == "ok", response
        text = api.devices_text()
        assert text == to_json(api.devices())
        assert json.loads(text)[1]["friendly_name"] == "hall/left"

        response = await running.watcher.request(
            "device/options", {"id": "hall/left", "options": {"description": "by the door"}}
        )
        assert response["status"] == "ok", response
        text = api.devices_text()
        assert text == to_json(api.devices())
        assert json.loads(text)[1]["description"] == "by the door"
        assert api.devices_text() == text, "unchanged devices: the same text again"
