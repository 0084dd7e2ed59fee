"""Command line: `z2m-qbkg40lm run`, `check-config`, `emulate`, `import-z2m` and `export-z2m`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from z2m_qbkg40lm import __version__
from z2m_qbkg40lm.config import RADIO_ADAPTERS, ConfigError, LoadedConfig, load_config
from z2m_qbkg40lm.deferred_imports import defer_unused_imports
from z2m_qbkg40lm.redaction import protect, redact

PRIVATE_UMASK = 0o077
"""Set by `run` and `emulate` for the whole process: whatever they (or zigpy, or SQLite) create
is readable by its owner alone, whatever umask the process was started with."""

_LOG_LEVELS = {
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="z2m-qbkg40lm",
        description="Aqara QBKG40LM wall switch to MQTT, speaking Zigbee2MQTT's API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", "-c", type=Path, required=True, help="configuration file (YAML)")
    run.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="zigpy database, state cache and generated secrets (default: the config file's folder)",
    )
    check = commands.add_parser("check-config", help="validate the configuration and exit")
    check.add_argument("--config", "-c", type=Path, required=True, help="configuration file (YAML)")
    _add_emulate(commands)
    _add_migrate(commands)
    return parser


def _add_migrate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    importing = commands.add_parser(
        "import-z2m",
        help="take over a Zigbee2MQTT installation (devices stay paired)",
        description="Read Zigbee2MQTT's data directory (configuration.yaml, secret.yaml, database.db, "
        "coordinator_backup.json, state.json) and write this daemon's configuration.yaml, zigbee.db, "
        "state.json and network_backup.json, so that it starts on the same network with every device "
        "already paired and interviewed. Stop Zigbee2MQTT first.",
    )
    importing.add_argument(
        "z2m_data_dir", type=Path, metavar="Z2M_DATA_DIR", help="Zigbee2MQTT's data directory"
    )
    importing.add_argument(
        "--data-dir",
        type=Path,
        default=Path(),
        help="where to write this daemon's configuration and data (default: the current directory)",
    )
    importing.add_argument(
        "--force",
        action="store_true",
        help="replace existing files, keeping each as <name>.before-import-<time>",
    )
    importing.add_argument(
        "--adapter",
        choices=RADIO_ADAPTERS,
        default=None,
        help="the daemon runs on another stick than Zigbee2MQTT did: its family (default: Zigbee2MQTT's)",
    )
    importing.add_argument("--port", default=None, help="the other stick's port (default: Zigbee2MQTT's)")
    exporting = commands.add_parser(
        "export-z2m",
        help="write a Zigbee2MQTT data directory from this daemon's (to go back)",
        description="Write configuration.yaml, database.db, coordinator_backup.json and state.json that "
        "Zigbee2MQTT 2.x starts from, on the same network with every device paired. Stop the daemon first.",
    )
    exporting.add_argument(
        "out_dir", type=Path, metavar="OUT_DIR", help="Zigbee2MQTT's data directory to write"
    )
    exporting.add_argument(
        "--config", "-c", type=Path, required=True, help="this daemon's configuration file"
    )
    exporting.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="this daemon's data directory (default: the config file's folder)",
    )
    exporting.add_argument(
        "--force",
        action="store_true",
        help="replace existing files, keeping each as <name>.before-export-<time>",
    )


def _import_z2m(args: argparse.Namespace) -> int:
    defer_unused_imports()
    from z2m_qbkg40lm.migrate.daemon_config import NewAdapter
    from z2m_qbkg40lm.migrate.errors import MigrationError
    from z2m_qbkg40lm.migrate.importer import run_import, summary_lines

    os.umask(PRIVATE_UMASK)
    try:
        new_adapter = NewAdapter(adapter=args.adapter, port=args.port)
        result = run_import(args.z2m_data_dir, args.data_dir, force=args.force, new_adapter=new_adapter)
    except MigrationError as exc:
        print(f"import-z2m: {redact(str(exc))}", file=sys.stderr)
        return 1
    for line in summary_lines(result):
        print(redact(line))
    return 0


def _export_z2m(args: argparse.Namespace) -> int:
    defer_unused_imports()
    from z2m_qbkg40lm.migrate.errors import MigrationError
    from z2m_qbkg40lm.migrate.exporter import run_export, summary_lines

    loaded = _load(args.config)
    if loaded is None:
        return 1
    data_dir = args.data_dir if args.data_dir is not None else args.config.resolve().parent
    os.umask(PRIVATE_UMASK)
    try:
        result = run_export(loaded, data_dir, args.out_dir, force=args.force)
    except MigrationError as exc:
        print(f"export-z2m: {redact(str(exc))}", file=sys.stderr)
        return 1
    for line in summary_lines(result):
        print(redact(line))
    return 0


def _add_emulate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    emulate = commands.add_parser(
        "emulate",
        help="emulate a coordinator stick (Z-Stack or EmberZNet) with simulated switches",
        description="Emulate a coordinator with simulated QBKG40LM switches: a Texas Instruments CC2652 "
        "running Z-Stack 3.30 (--chip znp; point the daemon at it with serial: {adapter: zstack, port: "
        "socket://HOST:PORT}), a CC2531 running Z-Stack Home 1.2 (--chip znp12; adapter: zstack) "
        "or a Silicon Labs EFR32 running EmberZNet (--chip ezsp; adapter: ember). "
        "The address to open is printed on stdout as the first line.",
    )
    emulate.add_argument(
        "--chip",
        choices=["znp", "znp12", "ezsp", "deconz"],
        default="znp",
        help="znp: Z-Stack 3.30 on a CC2652 (zigpy-znp); znp12: Z-Stack Home 1.2 on a CC2531 (zigpy-znp); "
        "ezsp: EmberZNet (bellows); deconz: a ConBee II (zigpy-deconz) (default: %(default)s)",
    )
    emulate.add_argument(
        "--ezsp-version",
        type=int,
        choices=[13, 14],
        default=13,
        help="with --chip ezsp: 13 (EmberZNet 7.4.4.0) or 14 (EmberZNet 8.0.2.0) (default: %(default)s)",
    )
    emulate.add_argument(
        "--listen",
        default="tcp://127.0.0.1:6638",
        help="tcp://HOST:PORT (port 0: any free port) or pty[:SYMLINK] (default: %(default)s)",
    )
    emulate.add_argument(
        "--nvram",
        type=Path,
        default=None,
        help="JSON file keeping the chip's NVRAM (or tokens) and the switches (missing: new)",
    )
    emulate.add_argument(
        "--switches",
        type=int,
        default=1,
        help="switches in pairing mode on a new NVRAM; they join when permit join opens (default: 1)",
    )
    emulate.add_argument(
        "--switches-from",
        type=Path,
        default=None,
        metavar="STATE_FILE",
        help="a new chip starts with the switches of another emulator's state file (any chip), still "
        "joined to their network, instead of --switches new ones: a move to a new stick",
    )
    emulate.add_argument(
        "--mqtt", default=None, help="broker for the simulation requests, e.g. mqtt://127.0.0.1:1883"
    )
    emulate.add_argument(
        "--base-topic",
        default=None,
        help="base topic of the simulation requests (default: the --config file's, else zigbee2mqtt)",
    )
    emulate.add_argument(
        "--config",
        "-c",
        type=Path,
        default=None,
        help="the daemon's configuration: broker and friendly names",
    )
    emulate.add_argument(
        "--linkquality", type=int, default=160, help="LQI of the switches' frames (default: 160)"
    )
    emulate.add_argument("--log-level", choices=list(_LOG_LEVELS), default="info", help="(default: info)")


def _emulate(args: argparse.Namespace) -> int:
    defer_unused_imports()
    from z2m_qbkg40lm.sim.emulator import OptionsError, build_options, run_emulator

    try:
        options = build_options(
            listen=args.listen,
            nvram=args.nvram,
            switches=args.switches,
            mqtt=args.mqtt,
            base_topic=args.base_topic,
            config=args.config,
            linkquality=args.linkquality,
            chip=args.chip,
            ezsp_version=args.ezsp_version,
            switches_from=args.switches_from,
        )
    except OptionsError as exc:
        print(f"emulate: {exc}", file=sys.stderr)
        return 1
    _setup_logging(args.log_level)
    os.umask(PRIVATE_UMASK)
    if args.nvram is not None and args.nvram.exists():
        from z2m_qbkg40lm.atomic_file import NEW_FILE_MODE
        from z2m_qbkg40lm.private_files import make_private

        make_private(args.nvram, NEW_FILE_MODE)  # the chip's NVRAM holds the network key

    def announce(address: str) -> None:
        print(address, flush=True)

    return asyncio.run(run_emulator(options, announce))


def _load(path: Path) -> LoadedConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(redact(problem), file=sys.stderr)
        return None


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=_LOG_LEVELS[level],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        protect(handler)
    # zigpy and the radio libraries are chatty at INFO; their warnings still show.
    if level != "debug":
        for noisy in ("zigpy", "zigpy_znp", "bellows", "zigpy_deconz", "aiosqlite"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and of `python -m z2m_qbkg40lm`."""
    args = _parser().parse_args(argv)
    if args.command == "emulate":
        return _emulate(args)
    if args.command == "import-z2m":
        return _import_z2m(args)
    if args.command == "export-z2m":
        return _export_z2m(args)
    loaded = _load(args.config)
    if loaded is None:
        return 1
    if args.command == "check-config":
        for warning in loaded.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"{args.config}: OK")
        return 0
    os.umask(PRIVATE_UMASK)
    _setup_logging(loaded.config.advanced.log_level)
    data_dir = args.data_dir if args.data_dir is not None else args.config.resolve().parent
    defer_unused_imports()
    from z2m_qbkg40lm.daemon import EXIT_RESTART, run_daemon  # imports zigpy: not for check-config

    code = asyncio.run(run_daemon(loaded, data_dir))
    if code == EXIT_RESTART:
        # bridge/request/restart: a fresh process, so that new settings and code take effect.
        logging.getLogger(__name__).info("Restarting")
        os.execv(sys.executable, [sys.executable, "-m", "z2m_qbkg40lm", *sys.argv[1:]])
    return code


if __name__ == "__main__":
    raise SystemExit(main())
