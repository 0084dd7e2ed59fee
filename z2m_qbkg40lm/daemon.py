"""Wires the data path together: radio -> bridge -> MQTT, and runs it until asked to stop.

Exit codes follow Zigbee2MQTT: 0 after a clean stop, 1 when start-up fails (configuration, data
directory, adapter), 2 when the adapter goes away while running, so that a supervisor
(systemd `Restart=always`, compose `restart: unless-stopped`) starts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from z2m_qbkg40lm.bridge.bridge import Bridge, to_json
from z2m_qbkg40lm.bridge.logging_topic import MqttLogHandler
from z2m_qbkg40lm.bridge.requests import Requests
from z2m_qbkg40lm.bridge.state import STATE_FILE, StateStore
from z2m_qbkg40lm.config import ConfigError, LoadedConfig, resolve_network
from z2m_qbkg40lm.devices.registry import DEFINITIONS
from z2m_qbkg40lm.mqtt.client import MqttClient
from z2m_qbkg40lm.systemd import feed_watchdog_forever, notify, watchdog_interval_s
from z2m_qbkg40lm.zigbee.radio import Radio, RadioError

_LOGGER = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_START_FAILED = 1
EXIT_ADAPTER_LOST = 2

OFFLINE = to_json({"state": "offline"})


async def run_daemon(loaded: LoadedConfig, data_dir: Path) -> int:
    """Run until SIGTERM/SIGINT (exit 0) or until the adapter is lost (exit 2)."""
    config = loaded.config
    base = config.mqtt.base_topic
    for warning in loaded.warnings:
        _LOGGER.warning("%s", warning)
    try:
        network = resolve_network(config.advanced, data_dir)
    except ConfigError as exc:
        for problem in exc.problems:
            _LOGGER.error("%s", problem)
        return EXIT_START_FAILED

    state = StateStore(data_dir / STATE_FILE)
    state.load()
    radio = Radio(config, data_dir, network, DEFINITIONS)
    _LOGGER.info("Starting the %s adapter", config.serial.adapter)
    try:
        await radio.start()
    except RadioError as exc:
        _LOGGER.error("%s", exc)  # noqa: TRY400 - the message is the whole story for users
        return EXIT_START_FAILED

    stop = asyncio.Event()
    exit_code = EXIT_OK

    def adapter_lost(reason: str) -> None:
        nonlocal exit_code
        exit_code = EXIT_ADAPTER_LOST
        stop.set()

    bridge_ref: list[Bridge] = []

    async def on_connected() -> None:
        await bridge_ref[0].on_connected()

    async def on_message(topic: str, payload: bytes, retained: bool) -> None:
        await bridge_ref[0].on_message(topic, payload, retained)

    mqtt = MqttClient(
        config.mqtt,
        will_topic=f"{base}/bridge/state",
        will_payload=OFFLINE,
        on_connected=on_connected,
        on_message=on_message,
    )
    bridge = Bridge(config, radio, state, mqtt)
    bridge_ref.append(bridge)
    requests = Requests(bridge, mqtt, base, radio)
    bridge.request_handler = requests.handle
    bridge.on_radio_lost = adapter_lost
    mqtt.subscribe(f"{base}/#")

    loop = asyncio.get_running_loop()
    log_handler = MqttLogHandler(loop, max(logging.INFO, logging.getLogger().getEffectiveLevel()))
    logging.getLogger().addHandler(log_handler)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    tasks = [
        loop.create_task(mqtt.run(), name="mqtt"),
        loop.create_task(bridge.run_radio_events(), name="radio events"),
        loop.create_task(log_handler.publish_forever(mqtt, base), name="bridge logging"),
    ]
    watchdog = watchdog_interval_s()
    if watchdog:
        tasks.append(loop.create_task(feed_watchdog_forever(watchdog), name="watchdog"))
    try:
        await bridge.publish_startup_states()
        notify("READY=1")
        _LOGGER.info("Zigbee2MQTT-compatible bridge started, base topic '%s'", base)
        stop_wait = loop.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stop_wait and not task.cancelled() and task.exception() is not None:
                _LOGGER.error("Task '%s' crashed: %s", task.get_name(), task.exception())
                exit_code = exit_code or EXIT_START_FAILED
        stop_wait.cancel()
    finally:
        notify("STOPPING=1")
        _LOGGER.info("Stopping")
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await bridge.close()
        with contextlib.suppress(Exception):
            await mqtt.stop(final_messages=[(f"{base}/bridge/state", OFFLINE, True, 1)])
        logging.getLogger().removeHandler(log_handler)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await radio.stop()
        await state.close()
    return exit_code
