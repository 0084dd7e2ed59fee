"""Zigbee2MQTT itself as a test subject: found or installed with npm, started as a process on a
data folder, stopped with SIGTERM, its log kept.

Zigbee2MQTT is never vendored: `npm install zigbee2mqtt@VERSION` puts it into a cache folder
(`~/.cache/z2m-qbkg40lm/zigbee2mqtt-VERSION`, or `$Z2M_ZIGBEE2MQTT_CACHE`) the first time, about
11 s; no install scripts run (serialport ships prebuilt binaries, and a `tcp://` port never opens a
serial device). When Node.js (>= 20), npm or the registry is missing, `zigbee2mqtt_or_skip()`
skips the test and says which.

One configuration serves both programs (`shared_configuration`): Zigbee2MQTT's key names are the
daemon's, so the side-by-side scenario hands both the very same `configuration.yaml`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.support import BROKER_HOST, BROKER_PORT, terminate

ZIGBEE2MQTT_VERSION = "2.14.1"
NODE_MAJOR_MIN = 20
INSTALL_TIMEOUT_S = 300.0
LIVE_ENV = "Z2M_ZIGBEE2MQTT"
"""`Z2M_ZIGBEE2MQTT=1` runs the tests that start Zigbee2MQTT itself (`0` or unset: skipped)."""
CACHE_ENV = "Z2M_ZIGBEE2MQTT_CACHE"

# Fixed network settings: both programs start on the same network, so their transcripts agree on
# channel and PAN ids. The key is not the publicly known default (the daemon refuses that one).
NETWORK = {
    "channel": 15,
    "pan_id": 0x1A62,
    "ext_pan_id": [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF],
    "network_key": [
        0x11,
        0x22,
        0x33,
        0x44,
        0x55,
        0x66,
        0x77,
        0x88,
        0x99,
        0xAA,
        0xBB,
        0xCC,
        0xDD,
        0xEE,
        0xFF,
        0x01,
    ],
}


SETTINGS_VERSION = 5
"""Zigbee2MQTT 2.14's settings format: with it, Zigbee2MQTT starts without migrating the file."""


class Unavailable(Exception):
    """Zigbee2MQTT cannot run here; the message says what is missing."""


def live_requested() -> bool:
    """True when the environment asks for the tests that run Zigbee2MQTT itself."""
    return os.environ.get(LIVE_ENV, "0") not in ("", "0", "false", "no")


def install_dir() -> Path:
    """Where Zigbee2MQTT is (or will be) installed with npm."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "z2m-qbkg40lm" / f"zigbee2mqtt-{ZIGBEE2MQTT_VERSION}"


def node_executable() -> str:
    """The Node.js binary, if it is recent enough for Zigbee2MQTT 2.x."""
    node = shutil.which("node")
    if node is None:
        raise Unavailable("Node.js is not installed (Zigbee2MQTT 2.x needs node >= 20)")
    result = subprocess.run([node, "--version"], capture_output=True, text=True, check=False, timeout=30)
    found = re.match(r"v(\d+)\.", result.stdout.strip())
    if found is None or int(found.group(1)) < NODE_MAJOR_MIN:
        raise Unavailable(f"Node.js {result.stdout.strip() or '?'} is too old (Zigbee2MQTT 2.x needs >= 20)")
    return node


def entry_point(folder: Path | None = None) -> Path:
    """Zigbee2MQTT's `index.js` inside an install folder."""
    return (folder or install_dir()) / "node_modules" / "zigbee2mqtt" / "index.js"


def installed_version(folder: Path | None = None) -> str | None:
    """The version npm installed there, or None."""
    manifest = entry_point(folder).parent / "package.json"
    if not manifest.exists():
        return None
    found = re.search(r'"version"\s*:\s*"([^"]+)"', manifest.read_text(encoding="utf-8"))
    return found.group(1) if found else None


def ensure_zigbee2mqtt() -> Path:
    """`index.js` of Zigbee2MQTT ZIGBEE2MQTT_VERSION, installed with npm into the cache folder if
    it is not there yet; `Unavailable` when node, npm or the registry is missing."""
    node_executable()
    folder = install_dir()
    if installed_version(folder) == ZIGBEE2MQTT_VERSION:
        return entry_point(folder)
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable("npm is not installed (it installs Zigbee2MQTT into " + str(folder) + ")")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--omit=dev", f"zigbee2mqtt@{ZIGBEE2MQTT_VERSION}"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
            timeout=INSTALL_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(
            f"npm install zigbee2mqtt@{ZIGBEE2MQTT_VERSION} took over {INSTALL_TIMEOUT_S} s"
        ) from None
    if result.returncode != 0 or installed_version(folder) != ZIGBEE2MQTT_VERSION:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise Unavailable(
            f"npm install zigbee2mqtt@{ZIGBEE2MQTT_VERSION} failed (no registry?): " + " | ".join(tail)
        )
    return entry_point(folder)


def zigbee2mqtt_or_skip() -> Path:
    """For a test: Zigbee2MQTT's `index.js`, or the test skipped with the reason."""
    import pytest

    if not live_requested():
        pytest.skip(f"Zigbee2MQTT itself runs only with {LIVE_ENV}=1 (it needs Node.js >= 20 and npm)")
    try:
        return ensure_zigbee2mqtt()
    except Unavailable as missing:
        pytest.skip(str(missing))


def shared_configuration(base_topic: str, discovery_topic: str, port: str, **advanced: Any) -> dict[str, Any]:
    """A `configuration.yaml` both Zigbee2MQTT and the daemon run from, on the Z-Stack emulator at
    `port` (`tcp://127.0.0.1:PORT`): Home Assistant discovery on a topic of its own, availability
    on, the frontend off, the network fixed (`NETWORK`)."""
    return {
        "version": SETTINGS_VERSION,
        "homeassistant": {"enabled": True, "discovery_topic": discovery_topic},
        "availability": {"enabled": True},
        "frontend": {"enabled": False},
        "mqtt": {"base_topic": base_topic, "server": f"mqtt://{BROKER_HOST}:{BROKER_PORT}"},
        "serial": {"adapter": "zstack", "port": port},
        "advanced": {"log_level": "info", **NETWORK, **advanced},
    }


class Zigbee2MQTTProcess:
    """`node index.js` with ZIGBEE2MQTT_DATA set: Zigbee2MQTT on its own data folder."""

    def __init__(self, data_dir: Path, configuration: dict[str, Any], index_js: Path | None = None) -> None:
        self.data_dir = data_dir
        self.configuration = configuration
        self.index_js = index_js or entry_point()
        self.log_path = data_dir / f"zigbee2mqtt-{uuid.uuid4().hex[:6]}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The node process's id (for RSS and CPU figures)."""
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        """Write `configuration.yaml` unless it is there (Zigbee2MQTT edits it: a rename, the
        generated network settings) and start Zigbee2MQTT; wait for `bridge/state` to know it is up."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "configuration.yaml"
        if not config.exists():
            # Its log goes to stdout, kept in log_path. Zigbee2MQTT's own log file is left out: a
            # line logged after its file transport closed (the adapter's port closing, at a stop
            # soon after the start) crashes Zigbee2MQTT 2.14.1 with "write after end", exit code 1.
            advanced = {**self.configuration.get("advanced", {}), "log_output": ["console"]}
            written = {**self.configuration, "advanced": advanced}
            config.write_text(yaml.safe_dump(written), encoding="utf-8")
        environment = {**os.environ, "ZIGBEE2MQTT_DATA": str(self.data_dir), "NO_COLOR": "1"}
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [node_executable(), str(self.index_js)],
                cwd=self.index_js.parent,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (Zigbee2MQTT disables joining, backs up the coordinator, says offline), then wait."""
        assert self._process is not None
        return terminate(self._process, "Zigbee2MQTT", timeout, self.log)

    def log(self) -> str:
        """Everything Zigbee2MQTT printed so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
