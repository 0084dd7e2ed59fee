"""The README's shell examples, run as written against a real daemon (virtual adapter, the test broker).

A README code block runs here when the line before its fence is `<!-- readme-test: NAME -->`; each
NAME has a test below that says what the README promises it prints or does. The block runs in
bash, in a folder of its own whose `.venv/bin/python` and `.venv/bin/z2m-qbkg40lm` are the
interpreter under test, with the base topic `zigbee2mqtt` replaced by the test's own random one;
the simulated switch is named `hall_switch`, as in the README. What a block prints is compared with
the console lines after its command, or with the ```json block that follows it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import (
    BROKER_HOST,
    BROKER_PORT,
    WAIT_S,
    DaemonProcess,
    clear_retained,
    random_base_topic,
    seed_virtual_switch,
    watching,
    write_config,
)

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
MARKER = re.compile(r"^\s*<!-- readme-test: ([\w-]+) -->\s*$")
FENCE = re.compile(r"^(\s*)```(\w*)")
NAME = "hall_switch"
RUN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Block:
    """A marked code block: its language, text (dedented) and the ```json block right after it."""

    name: str
    language: str
    text: str
    line: int
    expected: str | None


def _fenced(lines: list[str], start: int) -> tuple[str, str, int]:
    """(language, dedented text, index after the closing fence) of the block opening at `start`."""
    opening = FENCE.match(lines[start])
    assert opening is not None, f"README line {start + 1}: a readme-test marker must precede a fence"
    indent, language = opening.groups()
    body: list[str] = []
    index = start + 1
    while not lines[index].strip().startswith("```"):
        body.append(lines[index][len(indent) :] if lines[index].startswith(indent) else lines[index])
        index += 1
    return language, "\n".join(body) + "\n", index + 1


def readme_blocks() -> dict[str, Block]:
    """The README's marked blocks by name."""
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks: dict[str, Block] = {}
    for number, line in enumerate(lines):
        marker = MARKER.match(line)
        if marker is None:
            continue
        language, text, after = _fenced(lines, number + 1)
        expected = None
        # What it prints: a ```json block next, at most a short line of prose ("prints") between.
        for ahead in range(after, min(after + 4, len(lines))):
            opening = FENCE.match(lines[ahead])
            if opening is not None:
                if opening.group(2) == "json":
                    expected = _fenced(lines, ahead)[1]
                break
        assert marker.group(1) not in blocks, f"README line {number + 1}: {marker.group(1)} marked twice"
        blocks[marker.group(1)] = Block(marker.group(1), language, text, number + 2, expected)
    return blocks


BLOCKS = readme_blocks()

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "mosquitto_pub", "mosquitto_rr")),
    reason="the README's examples need bash and Mosquitto's clients (apt-get install mosquitto-clients)",
)


def test_every_marked_block_has_a_test() -> None:
    """A marker without a test here (or a test whose block lost its marker) fails."""
    tested = {"check-config", "commands", "transaction", "settings-drift", "ota-image", "simulation"}
    assert set(BLOCKS) == tested


# --- running a block ------------------------------------------------------------------------------


def _workdir(folder: Path) -> Path:
    """A folder whose `.venv/bin` holds the interpreter under test and the command, as after
    `scripts/quickstart` (wrappers, not links: a link to a venv's python loses the venv)."""
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    wrappers = {
        "python": f'exec "{sys.executable}" "$@"',
        "z2m-qbkg40lm": f'exec "{sys.executable}" -m z2m_qbkg40lm "$@"',
    }
    for name, line in wrappers.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{line}\n", encoding="utf-8")
        path.chmod(0o755)
    return folder


@dataclass(frozen=True)
class Ran:
    """What a block printed."""

    code: int
    stdout: str
    stderr: str


async def run_block(block: Block, cwd: Path, base: str = "zigbee2mqtt") -> Ran:
    """Run a block in bash under `cwd`, the base topic replaced and the clients pointed at the test
    broker; `$ ` lines of a console block are its commands."""
    text = block.text
    if block.language == "console":
        text = "".join(line[2:] + "\n" for line in text.splitlines() if line.startswith("$ "))
    text = re.sub(r"\bzigbee2mqtt(?=/)", base, text)
    clients = "".join(
        f'{tool}() {{ command {tool} -h {BROKER_HOST} -p {BROKER_PORT} "$@"; }}\n'
        for tool in ("mosquitto_pub", "mosquitto_sub", "mosquitto_rr")
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        "set -euo pipefail\n" + clients + text,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(
            f"README block {block.name} (line {block.line}) still ran after {RUN_TIMEOUT_S} s"
        ) from None
    assert process.returncode is not None
    return Ran(process.returncode, stdout.decode(), stderr.decode())


def _published(block: Block, base: str) -> list[str]:
    """The topics a block's `mosquitto_pub -t` lines publish to, `$B` expanded, in order."""
    variables = dict(re.findall(r"^(\w+)=(\S+)$", block.text, flags=re.MULTILINE))
    topics = []
    for written in re.findall(r"mosquitto_pub -t (\S+)", block.text):
        topic = re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], written.strip("\"'"))
        topics.append(re.sub(r"^zigbee2mqtt(?=/)", base, topic))
    return topics


# --- the check-config example needs no daemon ----------------------------------------------------


async def test_check_config_prints_one_line_per_problem(tmp_path: Path) -> None:
    block = BLOCKS["check-config"]
    cwd = _workdir(tmp_path)
    # The file the README's output describes: a zstack adapter without a port, a misspelt key.
    (cwd / "configuration.yaml").write_text(
        "mqtt: {server: 'mqtt://127.0.0.1:1883'}\nserial: {adapter: zstack}\nadvanced: {pan_idd: 1}\n",
        encoding="utf-8",
    )
    ran = await run_block(block, cwd)
    printed = [line for line in block.text.splitlines()[1:] if line.strip()]
    assert ran.code == 1, ran
    assert sorted((ran.stdout + ran.stderr).splitlines()) == sorted(printed), ran


# --- the MQTT examples, against one daemon --------------------------------------------------------


@dataclass
class Running:
    """The daemon under test and the folder the blocks run in."""

    daemon: DaemonProcess
    base: str
    ieee: str
    cwd: Path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One daemon with one simulated switch named hall_switch, and an OTA image folder where the
    README's builder writes (`quickstart/firmware` under the blocks' folder)."""
    base = random_base_topic()
    folder = tmp_path_factory.mktemp("readme")
    cwd = _workdir(folder / "checkout")
    data = folder / "data"
    ieee = seed_virtual_switch(data)
    config = write_config(
        folder / "configuration.yaml",
        base,
        devices={ieee: {"friendly_name": NAME}},
        ota={"image_folder": str(cwd / "quickstart" / "firmware")},
    )
    daemon = DaemonProcess(config, data)
    daemon.start()
    try:
        asyncio.run(_online(base))
    except BaseException:
        daemon.stop()
        raise
    yield Running(daemon, base, ieee, cwd)
    code = daemon.stop()
    clear_retained(base)
    assert code == 0, daemon.log()


async def _online(base: str) -> None:
    async with watching(base) as watcher:
        await watcher.wait_for("bridge/state", lambda m: m.json() == {"state": "online"})
        await watcher.wait_for(NAME, lambda m: "state" in m.json())


def _problems(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    return [m for m in messages if m["level"] in ("warning", "error")]


async def test_the_command_examples_drive_the_switch(running: Running) -> None:
    block = BLOCKS["commands"]
    async with watching(running.base) as watcher:
        position = watcher.mark()
        ran = await run_block(block, running.cwd, running.base)
        assert ran.code == 0, ran
        # Six commands; the last, `/get/state` with an empty payload, reads the relay back.
        await watcher.wait_for(f"{NAME}/get/state", after=position)
        final = await watcher.wait_state(
            NAME,
            lambda s: s.get("operation_mode") == "decoupled" and s.get("power_outage_memory") is True,
            after=position,
        )
        # ON then `toggle`: off again; the indicator flipped on by the first command.
        assert final["state"] == "OFF" and final["flip_indicator_light"] == "ON", final
        logged = [m.json() for m in watcher.since(position, "bridge/logging")]
        assert _problems(logged) == [], logged


def readme_state_example() -> dict[str, object]:
    """The example state message of the MQTT API ("**State** on `base/FN`")."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index("**State** on `base/FN`") :]
    example: dict[str, object] = json.loads(
        after[after.index("```json") + 7 : after.index("```", after.index("```json") + 7)]
    )
    return example


async def test_the_example_state_message_has_the_keys_of_a_real_one(running: Running) -> None:
    async with watching(running.base) as watcher:
        position = watcher.mark()
        # `update` comes with the switch's first firmware query or a check, whichever is first.
        assert (await watcher.request("device/ota_update/check", {"id": NAME}))["status"] == "ok"
        # The heartbeat brings device_temperature and power_outage_count, as in the example.
        assert (await watcher.request("simulation/heartbeat", {"id": NAME}))["status"] == "ok"
        state = await watcher.wait_state(NAME, lambda s: "power_outage_count" in s, after=position)
    example = readme_state_example()
    assert sorted(example) == sorted(state), (example, state)
    assert isinstance(example["update"], dict) and isinstance(state["update"], dict)
    assert sorted(example["update"]) == sorted(state["update"]), (example, state)


def readme_error(start: str) -> str:
    """The error line of the README's list of errors (MQTT API) that starts with `start`."""
    found = [
        line.strip()
        for line in README.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith(start)
    ]
    assert len(found) == 1, (start, found)
    return found[0]


async def test_the_error_for_a_payload_that_is_not_json_is_as_shown(running: Running) -> None:
    shown = readme_error("Invalid payload for 'set'")
    async with watching(running.base) as watcher:
        position = watcher.mark()
        await watcher.publish(f"{NAME}/set", "{not json")
        logged = await watcher.wait_log(lambda r: r["level"] == "error", after=position)
    assert logged["message"] == shown


async def test_the_transaction_example_prints_its_result(running: Running) -> None:
    block = BLOCKS["transaction"]
    assert block.expected is not None
    # The README's first line is this command's answer, for a switch that was off.
    printed = json.loads(block.expected.splitlines()[0])
    async with watching(running.base) as watcher:
        position = watcher.mark()
        await watcher.publish(f"{NAME}/set", '{"state": "OFF"}')
        await watcher.wait_state(NAME, lambda s: s.get("state") == "OFF", after=position)
        ran = await run_block(block, running.cwd, running.base)
    assert ran.code == 0, ran
    assert json.loads(ran.stdout) == printed, ran


async def test_the_settings_drift_example_puts_the_setting_back(running: Running) -> None:
    block = BLOCKS["settings-drift"]
    async with watching(running.base) as watcher:
        position = watcher.mark()
        ran = await run_block(block, running.cwd, running.base)
        assert ran.code == 0, ran
        # "2 s later: bridge/event device_setting_reapplied" (one per setting the switch dropped;
        # the indicator and the outage memory set by the examples above come back too).
        event = await watcher.wait_for(
            "bridge/event",
            lambda m: (
                m.json().get("type") == "device_setting_reapplied"
                and m.json()["data"]["setting"] == "operation_mode"
            ),
            after=position,
        )
    assert event.json()["data"] == {
        "found": "control_relay",
        "friendly_name": NAME,
        "ieee_address": running.ieee,
        "setting": "operation_mode",
        "wanted": "decoupled",
    }


async def test_the_ota_example_builds_an_image_the_check_offers(running: Running) -> None:
    block = BLOCKS["ota-image"]
    assert block.expected is not None
    ran = await run_block(block, running.cwd, running.base)
    assert ran.code == 0, ran
    assert json.loads(ran.stdout) == json.loads(block.expected), ran


async def test_the_simulation_examples_are_each_answered(running: Running) -> None:
    """Last: the block makes the switch silent and lets a second one join."""
    block = BLOCKS["simulation"]
    requests = [t for t in _published(block, running.base) if "/bridge/request/" in t]
    assert len(requests) >= 6, requests
    async with watching(running.base) as watcher:
        position = watcher.mark()
        ran = await run_block(block, running.cwd, running.base)
        assert ran.code == 0, ran
        for topic in requests:
            path = topic.split("/bridge/request/", 1)[1]
            answer = await watcher.wait_for(f"bridge/response/{path}", after=position, timeout=WAIT_S)
            assert answer.json()["status"] == "ok", (topic, answer.json())
        # The new switch is interviewed and named by its IEEE address.
        joined = await watcher.wait_for(
            "bridge/event", lambda m: m.json().get("type") == "device_joined", after=position
        )
        assert joined.json()["data"]["friendly_name"].startswith("0x54ef44")
        silent = await watcher.request("simulation/switches", {})
        states = {s["friendly_name"]: s["responsive"] for s in silent["data"]["switches"]}
        assert states[NAME] is False, states
        # What a /set to the silent switch gives, as the README shows it (with its address).
        shown = readme_error(
            "Publish 'set' 'state' to 'hall_switch' failed: 'command 0x01 on cluster 0x0006 failed: sim"
        )
        position = watcher.mark()
        await watcher.publish(f"{NAME}/set", '{"state": "ON", "transaction": "s1"}')
        result = await watcher.wait_for(f"{NAME}/response/set", after=position)
    assert result.json()["error"] == shown.replace("0x54ef441000abcdef", running.ieee)
