"""`z2m-qbkg40lm emulate`: a coordinator stick, emulated, with simulated Aqara QBKG40LM switches
around it.

- `--chip znp` (the default): a Texas Instruments CC2652 running Z-Stack 3.30. The unmodified
  zigpy-znp library (and so the daemon with `serial: {adapter: zstack, port:
  "socket://127.0.0.1:PORT"}`) drives it.
- `--chip znp12`: a Texas Instruments CC2531 running Z-Stack Home 1.2 (build 20211115), which
  zigpy-znp drives along its 1.2 path (no BDB, its own NVRAM items and start-up).
- `--chip ezsp`: a Silicon Labs EFR32 running EmberZNet's NCP firmware (7.4.4.0, EZSP 13; or
  8.0.2.0, EZSP 14, with `--ezsp-version 14`). The unmodified bellows library (the daemon with
  `adapter: ember` or `ezsp`) drives it.
- `--chip deconz`: a dresden elektronik ConBee II with deCONZ firmware 0x26780700. The unmodified
  zigpy-deconz library (the daemon with `adapter: deconz`) drives it.

Whichever the chip, the host starts, forms or resumes a network, permits joins, interviews the
switches and exchanges ZCL frames with them through it, exactly as with a stick on a USB port.
The chips are front-ends over one simulated world (`sim.world`): the same switches, the same
control API.

- `--listen tcp://HOST:PORT` (port 0: any free port) or `--listen pty[:SYMLINK]`; the address a
  host opens is printed on stdout as the first line once it can be opened.
- `--nvram FILE`: the chip's non-volatile memory (Z-Stack's NVRAM, EmberZNet's tokens, deCONZ's
  network parameters) and the
  simulated switches, as JSON; a missing or empty file is a factory-new chip (the host forms a
  network), a formed one is resumed. Without it, nothing is kept.
- `--switches N`: on a factory-new chip, N switches wait in pairing mode; each joins as soon as the
  coordinator permits joining (the daemon's `bridge/request/permit_join`). More join on request.
- `--switches-from STATE_FILE`: moving house to a new stick. A factory-new chip (of any family)
  starts with the switches of another emulator's state file, still joined to their network (its
  extended PAN id, PAN id, key, their NWK addresses), instead of `--switches` new ones. They talk
  to this chip once its host restores that network onto it (the daemon does, from the
  `network_backup.json` that `import-z2m` writes); until then their frames are lost, as a real
  switch's would be. On a chip whose state file already holds a chip, the option is ignored (said
  in the log), so the same command line resumes the new chip next time.
- `--mqtt URL` (or the `mqtt:` section of `--config`): serve `<base>/bridge/request/simulation/…`.

Parts: `sim.world` (the switches and the air), `sim.znp`, `sim.ezsp` and `sim.deconz` (the chips),
`sim.serial_line` (TCP, pty), `sim.control` (scripting and its MQTT front end).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from z2m_qbkg40lm.config import ConfigError, MqttConfig, load_config
from z2m_qbkg40lm.sim.chip_state import ChipStateFile, switches_of
from z2m_qbkg40lm.sim.control import EmulatorControl, FriendlyNames, MqttControl
from z2m_qbkg40lm.sim.emulated_chip import EmulatedChip
from z2m_qbkg40lm.sim.serial_line import ChipPort, PtyLine, TcpLine, open_line
from z2m_qbkg40lm.sim.world import DEFAULT_LINKQUALITY

CHIPS = ("znp", "znp12", "ezsp", "deconz")
EZSP_VERSIONS = (13, 14)

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmulatorOptions:
    """What `z2m-qbkg40lm emulate` was asked for."""

    listen: str = "tcp://127.0.0.1:0"
    nvram: Path | None = None
    switches: int = 1
    mqtt: MqttConfig | None = None
    base_topic: str | None = None
    config: Path | None = None
    linkquality: int = DEFAULT_LINKQUALITY
    chip: str = "znp"
    ezsp_version: int = 13
    switches_from: Path | None = None


class OptionsError(ValueError):
    """Command-line options that cannot work; the message says which and why."""


def build_options(
    *,
    listen: str,
    nvram: Path | None,
    switches: int,
    mqtt: str | None,
    base_topic: str | None,
    config: Path | None,
    linkquality: int,
    chip: str = "znp",
    ezsp_version: int = 13,
    switches_from: Path | None = None,
) -> EmulatorOptions:
    """Options from the command line; the daemon's configuration file supplies `mqtt:` if given."""
    if not (listen == "pty" or listen.startswith(("pty:", "tcp://"))):
        raise OptionsError(f"--listen {listen!r}: expected tcp://HOST:PORT or pty[:SYMLINK]")
    if switches < 0:
        raise OptionsError("--switches must be 0 or more")
    if not 0 <= linkquality <= 255:
        raise OptionsError("--linkquality must be 0 to 255")
    if chip not in CHIPS:
        raise OptionsError(f"--chip {chip!r}: expected one of {', '.join(CHIPS)}")
    if ezsp_version not in EZSP_VERSIONS:
        raise OptionsError(f"--ezsp-version {ezsp_version}: the EZSP emulator speaks 13 or 14")
    if switches_from is not None and nvram is not None and switches_from.resolve() == nvram.resolve():
        raise OptionsError("--switches-from names the chip's own --nvram file")
    mqtt_config: MqttConfig | None = None
    if config is not None:
        try:
            loaded = load_config(config)
        except ConfigError as exc:
            raise OptionsError("; ".join(exc.problems)) from None
        mqtt_config = loaded.config.mqtt
    base = base_topic or (mqtt_config.base_topic if mqtt_config is not None else "zigbee2mqtt")
    if mqtt is not None:
        try:
            mqtt_config = MqttConfig(server=mqtt, base_topic=base)
        except ValueError as exc:
            raise OptionsError(f"--mqtt {mqtt!r}: {exc}") from None
    return EmulatorOptions(
        listen, nvram, switches, mqtt_config, base, config, linkquality, chip, ezsp_version, switches_from
    )


def make_chip(options: EmulatorOptions, rng: random.Random | None = None) -> tuple[EmulatedChip, ChipPort]:
    """The chip the options name and its end of the serial line (only its radio library is imported);
    with `switches_from`, a factory-new one gets the switches of that state file."""
    moved = _moved_switches(options)
    if moved is not None:
        options = dataclasses.replace(options, switches=0)
    chip, port = _make_chip(options, rng)
    if moved is not None:
        chip.world.load(moved)
        chip.save()
        LOGGER.info(
            "%d switch(es) moved in from %s, still on their network: %s",
            len(moved),
            options.switches_from,
            ", ".join(node.ieee_text for node in chip.world.nodes.values()) or "none",
        )
    return chip, port


def _moved_switches(options: EmulatorOptions) -> list[dict[str, Any]] | None:
    """The switch records `--switches-from` brings, or None (not asked, or the chip is not new)."""
    if options.switches_from is None:
        return None
    if ChipStateFile(options.nvram, dict).read() is not None:
        LOGGER.info(
            "--switches-from %s ignored: %s holds this chip's state already (its own switches)",
            options.switches_from,
            options.nvram,
        )
        return None
    return switches_of(options.switches_from)


def _make_chip(options: EmulatorOptions, rng: random.Random | None) -> tuple[EmulatedChip, ChipPort]:
    if options.chip == "deconz":
        from z2m_qbkg40lm.sim.deconz.chip import DeconzChip

        conbee = DeconzChip(
            options.nvram, switches=options.switches, linkquality=options.linkquality, rng=rng
        )
        return conbee, conbee.serial_port()
    if options.chip == "ezsp":
        from z2m_qbkg40lm.sim.ezsp.chip import EzspChip

        ncp = EzspChip(
            options.nvram,
            switches=options.switches,
            linkquality=options.linkquality,
            protocol_version=options.ezsp_version,
            rng=rng,
        )
        return ncp, ncp.serial_port()
    from z2m_qbkg40lm.sim.znp.firmware import ZStackFirmware
    from z2m_qbkg40lm.sim.znp.firmware12 import ZStack12Firmware
    from z2m_qbkg40lm.sim.znp.link import MtPort

    firmware_class = ZStack12Firmware if options.chip == "znp12" else ZStackFirmware
    firmware = firmware_class(
        options.nvram, switches=options.switches, linkquality=options.linkquality, rng=rng
    )
    return firmware, MtPort(firmware)


class Emulator:
    """The emulator as an object: chip, serial line and (optionally) MQTT control."""

    def __init__(self, options: EmulatorOptions, *, rng: random.Random | None = None) -> None:
        self.options = options
        self.chip, port = make_chip(options, rng)
        self.control = EmulatorControl(self.chip, FriendlyNames(options.config))
        self._link: TcpLine | PtyLine = open_line(port, options.listen)
        self._mqtt: MqttControl | None = None
        self._mqtt_task: asyncio.Task[None] | None = None
        self.address = ""

    async def start(self) -> str:
        """Open the serial line (and connect to the broker in the background); returns its address."""
        self.address = await self._link.start()
        if self.options.mqtt is not None:
            self._mqtt = MqttControl(self.control, self.options.mqtt, self.options.base_topic)
            self._mqtt_task = asyncio.get_running_loop().create_task(self._mqtt.run(), name="emulator-mqtt")
        return self.address

    async def stop(self) -> None:
        """Close everything and save the NVRAM."""
        if self._mqtt is not None:
            await self._mqtt.stop()
        if self._mqtt_task is not None:
            self._mqtt_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mqtt_task
        await self._link.stop()
        self.chip.close()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def run_emulator(options: EmulatorOptions, announce: Callable[[str], Any] = print) -> int:
    """Run until SIGINT or SIGTERM; `announce` gets the serial address once it can be opened."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        emulator = Emulator(options)
    except (OSError, ValueError) as exc:
        LOGGER.error("%s", exc)
        return 1
    try:
        address = await emulator.start()
    except OSError as exc:
        LOGGER.error("Cannot listen on %s: %s", options.listen, exc)
        emulator.chip.close()
        return 1
    announce(address)
    try:
        await stopping.wait()
    finally:
        LOGGER.info("Stopping the emulator")
        await emulator.stop()
    return 0
