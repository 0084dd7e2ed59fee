"""Run the daemon with timestamp probes at its edges; SIGUSR1 writes the daemon-side latencies.

    python bench/probed_daemon.py OUT_FILE run --config FILE --data-dir DIR

The real daemon runs in this process (as `python -m z2m_qbkg40lm` would); before it starts, a few
methods at the edges of the data path are wrapped with a `time.perf_counter()` stamp:

- **command in**: paho hands a decoded message on `<base>/<name>/set` to the MQTT client
  (`mqtt.client._Client._on_message`, run as paho reads the socket), and the MQTT client hands it
  to the bridge (`Bridge.on_message`);
- **frame out**: zigpy hands a frame to the radio (`VirtualControllerApplication.send_packet`);
- **frame in**: the radio hands a frame to zigpy (`ControllerApplication.packet_received`);
- **publish**: paho takes a publish (`paho.Client.publish`) and writes its last byte to the socket
  (`paho.Client._packet_write`).

Correlated per device (by friendly name):

- **`/set` → radio**: from the command's arrival to the first frame sent to its device after it;
- **radio → publish**: from a frame of a device to the next state message of that device written
  to the socket (frames merged into one message each count; a frame that no message follows
  within `HORIZON_S`, such as a report that merely confirms a command, is counted as unpublished).
  The answers to a `/set` (its Default Response, the report of the relay) and the command's state
  message are counted apart from the frames the switches send on their own (reports), and the
  frames on other clusters (OTA queries: answered with a log line and an `update` state) apart
  from the reports.
- **radio round trip**: from a `/set`'s frame to the radio to the first frame back from its
  device: with the virtual adapter, the simulated switch's work (no part of the daemon on
  hardware, where the air and the device take tens of milliseconds instead).

SIGUSR1 writes the figures since the previous SIGUSR1 (or the start) to OUT_FILE as JSON and
starts a new window; the same is written at exit. Product code has no hooks for this: the probes
wrap methods from outside, so they measure the code as it ships, plus the probes' own few
microseconds. Used by bench_sweep.py (`--overhead`).
"""

from __future__ import annotations

import atexit
import json
import math
import runpy
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

HORIZON_S = 1.0
"""A frame not followed by a state message of its device within this long counts as unpublished."""
REPORT_CLUSTERS = frozenset({0xFCC0, 0x0006, 0x0002, 0x0012})
"""Clusters whose frames count as the switches' reports: Lumi (the heartbeat), On/Off, Device
Temperature, Multistate Input (a press). Others (OTA queries, answers to reads) are counted apart:
the simulated switches, all made at the same moment, query for firmware all at once."""

now = time.perf_counter


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (nan for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def summary(values: list[float]) -> dict[str, Any]:
    """n, p50, p99 and max, in ms."""
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 0.5),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms) if ms else math.nan,
    }


class Probes:
    """The stamps and their pairing; one instance per process."""

    def __init__(self) -> None:
        self.base = ""
        self.bridge: Any = None
        self.app: Any = None
        self._names: dict[int, str] = {}  # nwk -> friendly name
        self._set_at: dict[str, float] = {}  # name -> when paho handed on the /set
        self._set_bridge_at: dict[str, float] = {}  # name -> when the bridge got it
        self._frames: dict[str, deque[tuple[float, bool]]] = {}  # name -> (when, a report?) not yet published
        self._mids: dict[int, tuple[str, float]] = {}  # paho mid -> (state topic name, publish() time)
        self._commanded: set[str] = set()  # devices sent a /set's frame, its state message not yet written
        self._sent_at: dict[str, float] = {}  # name -> when a /set's frame went to the radio
        self.reset()

    def reset(self) -> None:
        """Start a new window of samples."""
        self.set_to_radio: list[float] = []
        self.set_queue: list[float] = []  # paho -> bridge (aiomqtt's queue and the loop)
        self.frame_to_publish: list[float] = []
        self.frame_to_publish_call: list[float] = []  # frame -> paho.publish() (the daemon's work)
        self.other_to_publish: list[float] = []  # frames on other clusters than REPORT_CLUSTERS
        self.answer_to_publish: list[float] = []  # the same for a /set's answer frames
        self.radio_answer: list[float] = []  # a /set's frame to the radio -> its first answer frame
        self.unpublished = 0
        self.sets_unsent = 0

    # --- names -------------------------------------------------------------------------------

    def name_of_nwk(self, nwk: int) -> str | None:
        name = self._names.get(nwk)
        if name is not None or self.app is None or self.bridge is None:
            return name
        for ieee, device in self.app.devices.items():
            if int(device.nwk) == nwk and ieee != self.app.state.node_info.ieee:
                text = "0x" + str(ieee).replace(":", "")
                name = str(self.bridge.friendly_name(text))
                self._names[nwk] = name
                return name
        return None

    def name_of_state_topic(self, topic: str) -> str | None:
        prefix = self.base + "/"
        if not self.base or not topic.startswith(prefix):
            return None
        rest = topic[len(prefix) :]
        return None if rest.startswith("bridge/") else rest

    # --- command direction -------------------------------------------------------------------

    def on_mqtt_message(self, topic: str) -> None:
        if self.base and topic.startswith(self.base + "/") and topic.endswith("/set"):
            name = topic[len(self.base) + 1 : -4]
            if name in self._set_at:
                self.sets_unsent += 1
            self._set_at[name] = now()

    def on_bridge_message(self, topic: str) -> None:
        if topic.endswith("/set"):
            name = topic[len(self.base) + 1 : -4]
            if name in self._set_at:
                self._set_bridge_at[name] = now()

    def on_send(self, packet: Any) -> None:
        at = now()
        dst = getattr(packet, "dst", None)
        if dst is None or not self._set_at:
            return
        try:
            name = self.name_of_nwk(int(dst.address))
        except (TypeError, ValueError):
            return
        began = self._set_at.pop(name, None) if name is not None else None
        if began is None:
            return
        self.set_to_radio.append(at - began)
        self._commanded.add(name or "")
        self._sent_at[name or ""] = at
        handed = self._set_bridge_at.pop(name or "", None)
        if handed is not None:
            self.set_queue.append(handed - began)

    # --- report direction --------------------------------------------------------------------

    def on_frame(self, packet: Any) -> None:
        at = now()
        src = getattr(packet, "src", None)
        if src is None:
            return
        try:
            name = self.name_of_nwk(int(src.address))
        except (TypeError, ValueError):
            return
        if name is not None:
            report = int(getattr(packet, "cluster_id", -1)) in REPORT_CLUSTERS
            self._frames.setdefault(name, deque()).append((at, report))
            sent = self._sent_at.pop(name, None)
            if sent is not None:
                self.radio_answer.append(at - sent)

    def on_publish_call(self, topic: str, mid: int) -> None:
        name = self.name_of_state_topic(topic)
        if name is not None and name in self._frames:
            self._mids[mid] = (name, now())

    def on_written(self, mid: int) -> None:
        at = now()
        entry = self._mids.pop(mid, None)
        if entry is None:
            return
        name, called = entry
        answer = name in self._commanded
        self._commanded.discard(name)
        frames = self._frames.get(name)
        while frames:
            frame_at, report = frames.popleft()
            if at - frame_at > HORIZON_S:
                self.unpublished += 1
            elif answer:
                self.answer_to_publish.append(at - frame_at)
            elif report:
                self.frame_to_publish.append(at - frame_at)
                self.frame_to_publish_call.append(called - frame_at)
            else:
                self.other_to_publish.append(at - frame_at)

    # --- output ------------------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        cutoff = now() - HORIZON_S
        for frames in self._frames.values():
            while frames and frames[0][0] < cutoff:
                frames.popleft()
                self.unpublished += 1
        return {
            "set_to_radio": summary(self.set_to_radio),
            "set_queue": summary(self.set_queue),
            "frame_to_publish": summary(self.frame_to_publish),
            "frame_to_publish_call": summary(self.frame_to_publish_call),
            "answer_to_publish": summary(self.answer_to_publish),
            "other_to_publish": summary(self.other_to_publish),
            "radio_answer": summary(self.radio_answer),
            "frames_unpublished": self.unpublished,
            "sets_not_sent": self.sets_unsent,
        }


PROBES = Probes()


def _wrap(owner: type, name: str, before: Callable[..., None]) -> None:
    """Replace owner.name with a function that calls `before(self, *args)` first."""
    original = getattr(owner, name)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        before(self, *args, **kwargs)
        return original(self, *args, **kwargs)

    wrapper.__name__ = getattr(original, "__name__", name)
    wrapper.__doc__ = original.__doc__
    setattr(owner, name, wrapper)


def install() -> None:
    """Wrap the edges (see the module docstring); before the daemon creates any of these objects."""
    import paho.mqtt.client as paho
    from paho.mqtt.client import PUBLISH

    from z2m_qbkg40lm.bridge.bridge import Bridge
    from z2m_qbkg40lm.mqtt.client import _Client
    from z2m_qbkg40lm.sim.virtual_radio import VirtualControllerApplication

    def bridge_init(bridge: Any, config: Any, *args: Any, **kwargs: Any) -> None:
        PROBES.bridge = bridge
        PROBES.base = config.mqtt.base_topic

    _wrap(Bridge, "__init__", bridge_init)
    _wrap(
        _Client,
        "_on_message",
        lambda client, paho_client, userdata, message: PROBES.on_mqtt_message(message.topic),
    )
    _wrap(Bridge, "on_message", lambda bridge, topic, *rest: PROBES.on_bridge_message(topic))

    def on_send(app: Any, packet: Any) -> None:
        PROBES.app = app
        PROBES.on_send(packet)

    def on_frame(app: Any, packet: Any) -> None:
        PROBES.app = app
        PROBES.on_frame(packet)

    _wrap(VirtualControllerApplication, "send_packet", on_send)
    _wrap(VirtualControllerApplication, "packet_received", on_frame)

    original_publish = paho.Client.publish

    def publish(self: Any, topic: str, *args: Any, **kwargs: Any) -> Any:
        info = original_publish(self, topic, *args, **kwargs)
        PROBES.on_publish_call(topic, info.mid)
        return info

    paho.Client.publish = publish  # type: ignore[method-assign]
    original_write = paho.Client._packet_write

    def packet_write(self: Any) -> Any:
        # A packet whose last byte went out has to_process == 0 (paho pops it from the queue).
        publishes = [p for p in self._out_packet if (p["command"] & 0xF0) == PUBLISH]
        result = original_write(self)
        for packet in publishes:
            if packet["to_process"] == 0:
                PROBES.on_written(packet["mid"])
        return result

    paho.Client._packet_write = packet_write  # type: ignore[method-assign]


def dump(out: Path) -> None:
    """Write the window's figures to `out` (atomically) and start a new window."""
    figures = PROBES.figures()
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out)
    PROBES.reset()


def main() -> None:
    """Install the probes and the handler, run the daemon's command line."""
    out = Path(sys.argv[1])

    def on_signal(signum: int, frame: FrameType | None) -> None:
        dump(out)

    install()
    signal.signal(signal.SIGUSR1, on_signal)
    atexit.register(dump, out)
    sys.argv = ["z2m_qbkg40lm", *sys.argv[2:]]
    runpy.run_module("z2m_qbkg40lm", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
