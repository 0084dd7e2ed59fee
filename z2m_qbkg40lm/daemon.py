"""Wires the data path together: radio -> bridge -> MQTT, and runs it until asked to stop.

Exit codes follow Zigbee2MQTT: 0 after a clean stop, 1 when start-up fails (configuration, data
directory, adapter), 2 when the adapter goes away while running, so that a supervisor
(systemd `Restart=always`, compose `restart: unless-stopped`) starts it again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from z2m_qbkg40lm.bridge.availability import Availability
from z2m_qbkg40lm.bridge.bridge import Bridge, to_json
from z2m_qbkg40lm.bridge.bridge_api import BridgeApi
from z2m_qbkg40lm.bridge.command_feedback import CommandFeedback
from z2m_qbkg40lm.bridge.device_responders import DeviceResponders
from z2m_qbkg40lm.bridge.extension import Context, Extension
from z2m_qbkg40lm.bridge.logging_topic import MqttLogHandler
from z2m_qbkg40lm.bridge.ota import OtaUpdates
from z2m_qbkg40lm.bridge.requests import Requests
from z2m_qbkg40lm.bridge.settings_guard import SettingsGuard
from z2m_qbkg40lm.bridge.state import STATE_FILE, StateStore
from z2m_qbkg40lm.bridge.timed_off import TIMED_OFF_FILE, TimedOffs
from z2m_qbkg40lm.bridge.topics import command_filters
from z2m_qbkg40lm.config import Config, ConfigError, LoadedConfig, resolve_network
from z2m_qbkg40lm.devices.registry import DEFINITIONS
from z2m_qbkg40lm.memory import SETTLE_S, release_unused_memory
from z2m_qbkg40lm.mqtt.client import MqttClient, MqttSetupError
from z2m_qbkg40lm.private_files import prepare_data_dir
from z2m_qbkg40lm.systemd import feed_watchdog_forever, notify, watchdog_interval_s
from z2m_qbkg40lm.zigbee.failures import handle_loop_exception
from z2m_qbkg40lm.zigbee.radio import Radio, RadioError

_LOGGER = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_START_FAILED = 1
EXIT_ADAPTER_LOST = 2
EXIT_RESTART = 3
"""Not a process exit code: `run` starts the daemon again in a fresh process (bridge/request/restart)."""


def extension_classes(config: Config) -> list[type[Extension]]:
    """The extensions a configuration runs, in order: one extension's output may feed another's
    (API topics before discovery). Home Assistant discovery does nothing while disabled (the
    default), so its modules are not even loaded then (about 0.2 MB)."""
    classes: list[type[Extension]] = [BridgeApi, Availability]
    if config.homeassistant.enabled:
        from z2m_qbkg40lm.bridge.homeassistant import HomeAssistant

        classes.append(HomeAssistant)
    classes += [CommandFeedback, SettingsGuard, OtaUpdates, DeviceResponders]
    return classes


OFFLINE = to_json({"state": "offline"})


class Daemon:
    """One running daemon: the radio, the bridge, the MQTT client and their tasks."""

    def __init__(self, loaded: LoadedConfig, data_dir: Path) -> None:
        self._config = loaded.config
        self._config_path = loaded.path
        self._warnings = loaded.warnings
        self._data_dir = data_dir
        self._base = self._config.mqtt.base_topic
        self._stop = asyncio.Event()
        self._exit_code = EXIT_OK
        self._tasks: list[asyncio.Task[None]] = []
        self._state = StateStore(data_dir / STATE_FILE)
        self._radio: Radio | None = None
        self._accepting = True

    def stop(self, exit_code: int = EXIT_OK) -> None:
        """Ask the daemon to stop; the first non-zero exit code wins."""
        self._exit_code = self._exit_code or exit_code
        self._stop.set()

    async def run(self) -> int:
        """Start, serve until stopped, shut down; returns the exit code."""
        loop = asyncio.get_running_loop()
        # For the loop's lifetime (a task may be collected while the loop closes).
        loop.set_exception_handler(handle_loop_exception)
        # From the first moment: a SIGTERM during start-up must still end in a clean shutdown.
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        try:
            return await self._run()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    async def _run(self) -> int:
        for warning in self._warnings:
            _LOGGER.warning("%s", warning)
        try:
            prepare_data_dir(self._data_dir, self._config_path)
        except OSError as exc:
            _LOGGER.error("Cannot prepare the data directory %s (%s)", self._data_dir, exc.strerror or exc)
            return EXIT_START_FAILED
        try:
            network = resolve_network(self._config.advanced, self._data_dir)
        except ConfigError as exc:
            for problem in exc.problems:
                _LOGGER.error("%s", problem)
            return EXIT_START_FAILED
        try:
            mqtt = MqttClient(
                self._config.mqtt,
                will_topic=f"{self._base}/bridge/state",
                will_payload=OFFLINE,
                on_connected=self._on_connected,
                on_message=self._on_message,
            )
        except MqttSetupError as exc:
            _LOGGER.error("%s", exc)
            return EXIT_START_FAILED
        self._state.load()
        radio = Radio(self._config, self._data_dir, network, DEFINITIONS)
        _LOGGER.info("Starting the %s adapter", self._config.serial.adapter)
        try:
            await radio.start()
        except RadioError as exc:
            _LOGGER.error("%s", exc)
            return EXIT_START_FAILED
        self._radio = radio
        try:
            await self._serve(radio, mqtt)
        finally:
            await radio.stop()
            await self._state.close()
        return self._exit_code

    async def _serve(self, radio: Radio, mqtt: MqttClient) -> None:
        loop = asyncio.get_running_loop()
        timed_offs = TimedOffs(self._data_dir / TIMED_OFF_FILE)
        self._bridge = bridge = Bridge(self._config, radio, self._state, mqtt, timed_offs)
        requests = Requests(bridge, mqtt, self._base, radio)
        bridge.request_handler = requests.handle
        bridge.on_radio_lost = lambda reason: self.stop(EXIT_ADAPTER_LOST)
        context = Context(
            config=self._config,
            config_path=self._config_path,
            data_dir=self._data_dir,
            bridge=bridge,
            radio=radio,
            mqtt=mqtt,
            request_restart=lambda: self.stop(EXIT_RESTART),
        )
        bridge.extensions = [extension(context) for extension in extension_classes(self._config)]
        names = [device.friendly_name for device in self._config.devices.values()]
        for topic_filter in command_filters(self._base, names):
            mqtt.subscribe(topic_filter)
        for extension in bridge.extensions:
            requests.register(extension.request_handlers())
            for topic_filter in extension.topic_filters():
                mqtt.subscribe(topic_filter)
        await bridge.notify("start")

        log_handler = MqttLogHandler(loop, max(logging.INFO, logging.getLogger().getEffectiveLevel()))
        logging.getLogger().addHandler(log_handler)
        self._start_task(mqtt.run(), "mqtt")
        self._start_task(bridge.run_radio_events(), "radio events")
        self._start_task(log_handler.publish_forever(mqtt, self._base, mqtt.wait_connected), "bridge logging")
        watchdog = watchdog_interval_s()
        if watchdog:
            self._start_task(feed_watchdog_forever(watchdog), "systemd watchdog")
        settle: asyncio.TimerHandle | None = None
        try:
            await bridge.publish_startup_states()
            # Offs pending from the last run (a switch without OnWithTimedOff): overdue ones now.
            await timed_offs.start()
            notify("READY=1")
            _LOGGER.info("Bridge started, base topic '%s'", self._base)
            # Once, when joins, interviews and zigpy's database writes are over (memory.py: why).
            settle = loop.call_later(SETTLE_S, release_unused_memory)
            await self._stop.wait()
        finally:
            if settle is not None:
                settle.cancel()
            notify("STOPPING=1")
            _LOGGER.info("Stopping")
            # Input first: no new command or radio event may start work while the rest stops.
            self._accepting = False
            for task in self._tasks:
                if task.get_name() == "radio events":
                    task.cancel()
            await bridge.notify("stop")
            await bridge.close()
            await mqtt.stop(final_messages=[(f"{self._base}/bridge/state", OFFLINE, True, 1)])
            logging.getLogger().removeHandler(log_handler)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start_task(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        task.add_done_callback(self._task_ended)
        self._tasks.append(task)

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._stop.is_set():
            return
        exc = task.exception()
        _LOGGER.error("Task '%s' ended unexpectedly: %s", task.get_name(), exc, exc_info=exc)
        self.stop(EXIT_START_FAILED)

    async def _on_connected(self) -> None:
        await self._bridge.on_connected()

    async def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if not self._accepting:
            return
        await self._bridge.on_message(topic, payload, retained)


async def run_daemon(loaded: LoadedConfig, data_dir: Path) -> int:
    """Run until SIGTERM/SIGINT (exit 0) or until the adapter is lost (exit 2)."""
    return await Daemon(loaded, data_dir).run()
